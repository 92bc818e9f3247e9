//! Isolating the bad entries of a batch.
//!
//! A batch consumer that writes a whole batch at once (one transaction,
//! multi-row statements) fails as a whole when one entry is bad, and a
//! failed batch is delivered again, failing again: a poison loop that holds
//! every good entry hostage. [`isolate`] splits such a batch until each
//! entry is answered for itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::outcome::{ErrorKind, HandlerError};

/// Runs `attempt` on `items`; when it fails as a whole with a *permanent*
/// error, runs it again on each half, recursively, so that only the entries
/// that fail on their own get that error, and every other entry gets its own
/// result from a successful smaller attempt. A *transient* whole-batch error
/// (database unreachable, timeout) is not split: splitting cannot help, so
/// every entry gets it and the batch is retried.
///
/// `attempt` gets the items as a shared slice (`Arc<[T]>`: handing it over
/// copies nothing; items are cloned only when a failed batch is split) and
/// returns one result per item, in order (a missing one is answered as a
/// transient error). A batch with one bad entry among `n` costs about
/// `2·log2(n)` extra attempts.
///
/// ```
/// use eventbus::{HandlerError, isolate};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // A "database" that refuses any batch containing a negative amount.
/// let results = isolate(vec![5, -1, 7, 9], |batch: std::sync::Arc<[i64]>| async move {
///     if batch.iter().any(|&n| n < 0) {
///         return Err(HandlerError::permanent("amount out of range"));
///     }
///     Ok(batch.iter().map(|n| Ok(n * 100)).collect())
/// })
/// .await;
/// assert_eq!(results[0].as_ref().ok(), Some(&500));
/// assert!(results[1].as_ref().is_err_and(|e| e.is_permanent()));
/// assert_eq!(results[3].as_ref().ok(), Some(&900));
/// # });
/// ```
pub async fn isolate<T, R, F, Fut>(items: impl Into<Arc<[T]>>, attempt: F) -> Vec<Result<R, HandlerError>>
where
    T: Clone + Send + Sync,
    R: Send,
    F: Fn(Arc<[T]>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Vec<Result<R, HandlerError>>, HandlerError>> + Send,
{
    split(items.into(), &attempt).await
}

/// One result per entry.
type Results<R> = Vec<Result<R, HandlerError>>;

fn split<'a, T, R, F, Fut>(items: Arc<[T]>, attempt: &'a F) -> Pin<Box<dyn Future<Output = Results<R>> + Send + 'a>>
where
    T: Clone + Send + Sync + 'a,
    R: Send + 'a,
    F: Fn(Arc<[T]>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Vec<Result<R, HandlerError>>, HandlerError>> + Send + 'a,
{
    Box::pin(async move {
        let len = items.len();
        if len == 0 {
            return Vec::new();
        }
        match attempt(items.clone()).await {
            Ok(mut results) => {
                results.truncate(len);
                while results.len() < len {
                    results.push(Err(HandlerError::transient("no result for this entry")));
                }
                results
            }
            Err(error) if error.kind() == ErrorKind::Permanent && len > 1 => {
                tracing::debug!(entries = len, %error, "batch failed; splitting it to find the bad entries");
                let (left, right) = items.split_at(len / 2);
                let (left, right): (Arc<[T]>, Arc<[T]>) = (left.into(), right.into());
                let mut results = split(left, attempt).await;
                results.extend(split(right, attempt).await);
                results
            }
            Err(error) if len == 1 => vec![Err(error)],
            Err(error) => {
                let message = error.to_string();
                (0..len).map(|_| Err(HandlerError::transient(message.clone()))).collect()
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails permanently when any item is negative, transiently when any is zero.
    async fn store(batch: Arc<[i64]>) -> Result<Vec<Result<i64, HandlerError>>, HandlerError> {
        if batch.contains(&0) {
            return Err(HandlerError::transient("connection refused"));
        }
        if batch.iter().any(|&n| n < 0) {
            return Err(HandlerError::permanent("out of range"));
        }
        Ok(batch.iter().copied().map(Ok).collect())
    }

    #[tokio::test]
    async fn only_the_bad_entries_fail_and_the_order_is_kept() {
        let items: Vec<i64> = (1..=100).map(|n| if n % 37 == 0 { -n } else { n }).collect();
        let results = isolate(items.clone(), store).await;
        assert_eq!(results.len(), 100);
        for (item, result) in items.iter().zip(&results) {
            match result {
                Ok(value) => assert_eq!(value, item),
                Err(error) => assert!(*item < 0 && error.is_permanent(), "{item}: {error}"),
            }
        }
    }

    #[tokio::test]
    async fn a_transient_failure_is_not_split_and_keeps_its_kind() {
        let results = isolate(vec![1, 0, -3], store).await;
        assert!(results.iter().all(|r| r.as_ref().is_err_and(|e| !e.is_permanent())));
    }

    #[tokio::test]
    async fn missing_results_are_transient_errors() {
        let results = isolate(vec![1, 2, 3], |_batch: Arc<[i64]>| async { Ok(vec![Ok(1)]) }).await;
        assert!(results[0].is_ok());
        assert!(results[1..].iter().all(|r| r.as_ref().is_err_and(|e| !e.is_permanent())));
    }
}
