//! The write path of the consumers: group commit. The effects of events that
//! arrive together are written in one transaction, so one durable commit
//! (one fsync) acknowledges many events. No event is answered before the
//! commit that holds its effect. Every event's write goes through this one
//! queue; the store ([`crate::store`]) runs the transactions and knows
//! nothing of events' answers.
//!
//! A committer task hands every write queued (up to [`MAX_JOBS`]) to a
//! writer as one batch ([`Store::write_transaction`]: the same few
//! statements whatever the batch's size), in transactions of at most
//! [`MAX_EVENTS_PER_TRANSACTION`]. A transaction the database refuses as a
//! whole is split until each event is answered for itself
//! ([`eventbus::isolate`]): events queued together by different consumers
//! share a transaction, so the splitting happens here, where they meet. While a transaction is in flight, new events queue up
//! and make the next batch bigger, not later: under load the batches grow
//! and the cost per event falls. On PostgreSQL spare writers take the queue
//! while a transaction is in flight once it holds [`SPARE_WRITER_BATCH`]
//! events (a burst, a slow commit), so one commit's round trips and fsync do
//! not hold back the next batch; SQLite has one writer at a time anyway, so
//! it gets one.

use std::sync::Arc;

use eventbus::{HandlerError, isolate};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::store::{Applied, Backend, Item, MAX_EVENTS_PER_TRANSACTION, Store, StoreError};

/// Most queued writes (a single event, or a bulk request) taken into one batch.
const MAX_JOBS: usize = 256;

/// The queue of the committer; cheap to clone.
#[derive(Debug, Clone)]
pub struct Writer {
    commits: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the committer of `store`; it stops when every clone is dropped.
    pub fn start(store: Store) -> Writer {
        let writers = writers(store.backend(), store.max_connections());
        Writer { commits: start(store, writers) }
    }

    /// Writes the events' effects, each with its inbox claim, together with
    /// the other events queued now (group commit); one result per item, in
    /// order, once the commit that holds it is durable. An id already
    /// claimed by its consumer is [`Applied::Duplicate`] and writes nothing;
    /// an event the database or a business rule refuses fails alone, with a
    /// permanent error; a database failure is transient.
    pub async fn write(&self, items: Vec<Item>) -> Vec<Result<Applied, HandlerError>> {
        let len = items.len();
        let (reply, result) = oneshot::channel();
        let stopped = || (0..len).map(|_| Err(HandlerError::transient("the store's writer has stopped"))).collect();
        if self.commits.send(Job { items, reply }).await.is_err() {
            return stopped();
        }
        result.await.unwrap_or_else(|_| stopped())
    }
}

/// Events (one, or a bulk request's) and where their results go.
struct Job {
    pub items: Vec<Item>,
    pub reply: oneshot::Sender<Vec<Result<Applied, HandlerError>>>,
}

/// How many transactions write at once: one on SQLite (one writer at a
/// time), else half the pool, at most four, so that readiness probes and
/// the jobs still find a connection.
fn writers(backend: Backend, max_connections: u32) -> usize {
    match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => usize::try_from(max_connections / 2).unwrap_or(1).clamp(1, 4),
    }
}

/// Events a batch needs before a second writer takes it while another
/// transaction is in flight. Below it, the batch waits for the busy writer:
/// a steady trickle is written by one writer in batches that grow with the
/// load (fewer round trips per event); the extra writers take the backlog of
/// a burst or a slow commit.
const SPARE_WRITER_BATCH: usize = 16;

/// Starts the committer with `writers` transactions at most in flight; it
/// stops when every sender is dropped.
fn start(store: Store, writers: usize) -> mpsc::Sender<Job> {
    let (sender, mut receiver) = mpsc::channel::<Job>(MAX_JOBS * 4);
    tokio::spawn(async move {
        let free = Arc::new(Semaphore::new(writers));
        let finished = Arc::new(Notify::new());
        let mut jobs = Vec::with_capacity(MAX_JOBS);
        let mut open = true;
        while open || !jobs.is_empty() {
            if jobs.is_empty() && receiver.recv_many(&mut jobs, MAX_JOBS).await == 0 {
                break;
            }
            let writer = loop {
                let idle = free.available_permits() == writers;
                let events: usize = jobs.iter().map(|job: &Job| job.items.len()).sum();
                if (idle || events >= SPARE_WRITER_BATCH || !open)
                    && let Ok(writer) = free.clone().try_acquire_owned()
                {
                    break writer;
                }
                tokio::select! {
                    () = finished.notified() => {}
                    received = receiver.recv_many(&mut jobs, MAX_JOBS), if open && jobs.len() < MAX_JOBS => {
                        open = received > 0;
                    }
                }
            };
            let batch = std::mem::take(&mut jobs);
            let turn = Turn { writer: Some(writer), finished: finished.clone() };
            let store = store.clone();
            tokio::spawn(async move {
                commit(&store, batch).await;
                drop(turn);
            });
        }
    });
    sender
}

/// A writer's turn: when it ends, even by a panic, the writer is free again
/// and the committer is woken to look at the queue.
struct Turn {
    writer: Option<OwnedSemaphorePermit>,
    finished: Arc<Notify>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.writer.take());
        self.finished.notify_one();
    }
}

/// Every event of `jobs`, written together; each job gets its own results back.
async fn commit(store: &Store, jobs: Vec<Job>) {
    let sizes: Vec<usize> = jobs.iter().map(|job| job.items.len()).collect();
    let (items, replies): (Vec<Vec<Item>>, Vec<_>) = jobs.into_iter().map(|job| (job.items, job.reply)).unzip();
    let mut results = write_items(store, items.into_iter().flatten().collect()).await.into_iter();
    for (size, reply) in sizes.into_iter().zip(replies) {
        let _ = reply.send(results.by_ref().take(size).collect());
    }
}

/// Writes `items` in transactions of at most [`MAX_EVENTS_PER_TRANSACTION`];
/// one result per item, in order. An event the database or a business rule
/// refuses fails alone.
async fn write_items(store: &Store, items: Vec<Item>) -> Vec<Result<Applied, HandlerError>> {
    let mut results = Vec::with_capacity(items.len());
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        // Moved, not cloned: items are copied only if a chunk has to be split.
        let chunk: Vec<Item> = items.by_ref().take(MAX_EVENTS_PER_TRANSACTION).collect();
        let written = isolate(chunk, |items| async move {
            match store.write_transaction(&items).await {
                Ok(results) => Ok(results
                    .into_iter()
                    .map(|result| result.map_err(|refusal| answer(StoreError::Rejected(refusal))))
                    .collect()),
                Err(error) => Err(answer(error)),
            }
        });
        results.extend(written.await);
    }
    results
}

/// A store error as the event's answer: a database failure is retried;
/// what the database or a rule refuses is dropped to the dead letter.
fn answer(error: StoreError) -> HandlerError {
    if error.is_permanent() { HandlerError::permanent(error) } else { HandlerError::transient(error) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_failures_retry_and_refusals_drop() {
        assert!(!answer(StoreError::Database(sqlx::Error::PoolTimedOut)).is_permanent());
        assert!(answer(StoreError::Rejected("refund beyond the order".into())).is_permanent());
    }

    #[test]
    fn sqlite_has_one_writer_and_postgres_up_to_four() {
        assert_eq!(writers(Backend::Sqlite, 10), 1);
        assert_eq!(writers(Backend::Postgres, 2), 1);
        assert_eq!(writers(Backend::Postgres, 32), 4);
    }
}
