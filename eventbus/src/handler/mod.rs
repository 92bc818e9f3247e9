//! Handlers: async functions whose arguments are extractors.
//!
//! A [`Handler`] handles one event: every argument implements
//! [`FromEvent`] (the event, parts of it, state), in any order, up to
//! eight. A [`BatchHandler`] handles a bulk batch at once: one argument is
//! `Vec<Event<T>>`, the others implement [`FromContext`]. Both return
//! anything that implements [`IntoOutcome`] (a batch handler, one per event).
//! `#[subscribe]` follows the same rules.

use std::future::Future;
use std::sync::Arc;

use crate::event::{Envelope, Event, EventData};
use crate::extract::{Context, FromContext, FromEvent, MissingState};
use crate::outcome::{HandlerError, HandlerResult, IntoOutcome};

/// An async function usable as a handler of single events.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event handler",
    label = "a handler is an `async fn` (or closure) of up to 8 arguments that implement `FromEvent`, returning `()`, `Outcome` or `Result<_, E>`",
    note = "a handler of whole bulk batches takes `Vec<Event<T>>`: register it with `eventbus::batch`"
)]
pub trait Handler<Args>: crate::sealed::Handler<Args> + Clone + Send + Sync + 'static {
    /// Extracts the arguments and calls the function.
    fn call(&self, envelope: Arc<Envelope>, ctx: &Context) -> impl Future<Output = HandlerResult> + Send;

    /// Checks when the server is built that every argument can be supplied.
    fn check(ctx: &Context) -> Result<(), MissingState>;
}

/// Takes the arguments with `?` and calls the function: the first argument
/// that cannot be taken is the answer.
fn taking<Fut>(call: impl FnOnce() -> Result<Fut, HandlerError>) -> Result<Fut, HandlerError> {
    call()
}

/// Calls `$m!` with every tuple length a handler supports (axum's `all_the_tuples!`).
macro_rules! all_the_tuples {
    ($m:ident) => {
        $m!();
        $m!(A1);
        $m!(A1, A2);
        $m!(A1, A2, A3);
        $m!(A1, A2, A3, A4);
        $m!(A1, A2, A3, A4, A5);
        $m!(A1, A2, A3, A4, A5, A6);
        $m!(A1, A2, A3, A4, A5, A6, A7);
        $m!(A1, A2, A3, A4, A5, A6, A7, A8);
    };
}

macro_rules! impl_handler {
    ($($arg:ident),*) => {
        impl<F, Fut, R, $($arg,)*> crate::sealed::Handler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoOutcome,
            $($arg: FromEvent,)*
        {
        }

        #[diagnostic::do_not_recommend]
        #[allow(non_snake_case, unused_variables)]
        impl<F, Fut, R, $($arg,)*> Handler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoOutcome,
            $($arg: FromEvent,)*
        {
            fn call(&self, envelope: Arc<Envelope>, ctx: &Context) -> impl Future<Output = HandlerResult> + Send {
                let called = taking(|| Ok((self)($($arg::from_event(&envelope, ctx)?),*)));
                async move { called?.await.into_outcome() }
            }

            fn check(ctx: &Context) -> Result<(), MissingState> {
                $(<$arg as FromEvent>::check(ctx)?;)*
                Ok(())
            }
        }
    };
}

all_the_tuples!(impl_handler);

/// The entries of one batch while a batch handler's arguments are taken:
/// the `Vec<Event<T>>` argument decodes them and marks those that fail.
#[derive(Debug)]
pub struct Batch<'a> {
    envelopes: &'a [Arc<Envelope>],
    /// Per entry: its result when it is settled before the call (did not decode).
    settled: Vec<Option<HandlerResult>>,
}

impl<'a> Batch<'a> {
    /// A batch of `envelopes`, none settled.
    pub fn new(envelopes: &'a [Arc<Envelope>]) -> Self {
        Batch { envelopes, settled: envelopes.iter().map(|_| None).collect() }
    }

    /// The entries, in delivery order.
    pub fn envelopes(&self) -> &'a [Arc<Envelope>] {
        self.envelopes
    }

    /// Decodes every entry that is not settled yet; an entry that does not
    /// decode is settled with its (permanent) error and left out.
    pub fn decode<T: EventData>(&mut self) -> Vec<Event<T>> {
        let mut events = Vec::with_capacity(self.envelopes.len());
        for (envelope, slot) in self.envelopes.iter().zip(&mut self.settled) {
            if slot.is_some() {
                continue;
            }
            match Event::<T>::decode(envelope.clone()) {
                Ok(event) => events.push(event),
                Err(error) => *slot = Some(Err(error)),
            }
        }
        events
    }

    /// Every entry's result: the handler's `results`, in order, for the
    /// entries it was given; their own error for the others. A missing
    /// result is a transient error.
    pub fn finish<R: IntoOutcome>(self, results: Vec<R>) -> Vec<HandlerResult> {
        let mut results = results.into_iter();
        self.settled
            .into_iter()
            .map(|slot| {
                slot.unwrap_or_else(|| match results.next() {
                    Some(result) => result.into_outcome(),
                    None => Err(HandlerError::transient("the batch handler returned no result for this event")),
                })
            })
            .collect()
    }

    /// Every entry fails with a copy of `error`, of the same kind (a
    /// permanent error stays permanent: it must not turn into a retry loop).
    pub fn fail(self, error: HandlerError) -> Vec<HandlerResult> {
        let (kind, message) = (error.kind(), error.to_string());
        (0..self.envelopes.len()).map(|_| Err(HandlerError::new(kind, message.clone()))).collect()
    }
}

/// An argument of a batch handler: the batch itself (`Vec<Event<T>>`), or
/// any [`FromContext`] value such as `State<S>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument of a batch handler",
    label = "batch handlers take `Vec<Event<T>>` and values that implement `FromContext`, such as `State<S>`"
)]
pub trait FromBatch: crate::sealed::FromBatch + Sized + Send + 'static {
    /// Takes the value for one batch.
    fn from_batch(batch: &mut Batch<'_>, ctx: &Context) -> Result<Self, HandlerError>;

    /// Checks when the server is built that the context can supply it.
    fn check(_ctx: &Context) -> Result<(), MissingState> {
        Ok(())
    }
}

impl<T: FromContext> crate::sealed::FromBatch for T {}
impl<T: FromContext> FromBatch for T {
    fn from_batch(_: &mut Batch<'_>, ctx: &Context) -> Result<Self, HandlerError> {
        T::from_context(ctx)
    }

    fn check(ctx: &Context) -> Result<(), MissingState> {
        <T as FromContext>::check(ctx)
    }
}

/// The entries that decode; the others are dropped before the call.
impl<T: EventData> crate::sealed::FromBatch for Vec<Event<T>> {}
impl<T: EventData> FromBatch for Vec<Event<T>> {
    fn from_batch(batch: &mut Batch<'_>, _: &Context) -> Result<Self, HandlerError> {
        Ok(batch.decode())
    }
}

/// An async function usable as a handler of whole bulk batches: one result
/// per event it is given, in order.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a batch handler",
    label = "a batch handler is an `async fn` taking `Vec<Event<T>>` (and up to 7 `FromContext` values) and returning one result per event"
)]
pub trait BatchHandler<Args>: crate::sealed::BatchHandler<Args> + Clone + Send + Sync + 'static {
    /// Extracts the arguments, calls the function, and answers every entry.
    fn call(&self, envelopes: &[Arc<Envelope>], ctx: &Context) -> impl Future<Output = Vec<HandlerResult>> + Send;

    /// Checks when the server is built that every argument can be supplied.
    fn check(ctx: &Context) -> Result<(), MissingState>;
}

macro_rules! impl_batch_handler {
    ($($arg:ident),*) => {
        impl<F, Fut, R, $($arg,)*> crate::sealed::BatchHandler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = Vec<R>> + Send + 'static,
            R: IntoOutcome + Send,
            $($arg: FromBatch,)*
        {
        }

        #[diagnostic::do_not_recommend]
        #[allow(non_snake_case, unused_variables, unused_mut)]
        impl<F, Fut, R, $($arg,)*> BatchHandler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = Vec<R>> + Send + 'static,
            R: IntoOutcome + Send,
            $($arg: FromBatch,)*
        {
            fn call(&self, envelopes: &[Arc<Envelope>], ctx: &Context) -> impl Future<Output = Vec<HandlerResult>> + Send {
                let mut batch = Batch::new(envelopes);
                let called = taking(|| Ok((self)($($arg::from_batch(&mut batch, ctx)?),*)));
                async move {
                    match called {
                        Ok(future) => batch.finish(future.await),
                        Err(error) => batch.fail(error),
                    }
                }
            }

            fn check(ctx: &Context) -> Result<(), MissingState> {
                $(<$arg as FromBatch>::check(ctx)?;)*
                Ok(())
            }
        }
    };
}

all_the_tuples!(impl_batch_handler);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;

    fn envelope(data: &'static str) -> Arc<Envelope> {
        Arc::new(Envelope { data: data.as_bytes().into(), ..Envelope::default() })
    }

    #[test]
    fn a_failed_batch_keeps_the_error_kind() {
        let envelopes = [envelope("1"), envelope("2"), envelope("3")];
        let permanent = Batch::new(&envelopes).fail(HandlerError::permanent("bad"));
        assert!(permanent.iter().all(|r| r.as_ref().is_err_and(|e| e.is_permanent() && e.to_string() == "bad")));
        let transient = Batch::new(&envelopes).fail(HandlerError::transient("later"));
        assert!(transient.iter().all(|r| r.as_ref().is_err_and(|e| !e.is_permanent())));
    }

    #[test]
    fn undecodable_entries_keep_their_place_and_missing_results_retry() {
        let envelopes = [envelope("1"), envelope("{nope"), envelope("3"), envelope("4")];
        let mut batch = Batch::new(&envelopes);
        let events: Vec<Event<u32>> = batch.decode();
        assert_eq!(events.iter().map(|e| e.data).collect::<Vec<_>>(), [1, 3, 4]);
        // Two results for three events: the last is missing.
        let results = batch.finish(vec![Outcome::Success, Outcome::Drop]);
        assert_eq!(results[0].as_ref().ok(), Some(&Outcome::Success));
        assert!(results[1].as_ref().is_err_and(HandlerError::is_permanent));
        assert_eq!(results[2].as_ref().ok(), Some(&Outcome::Drop));
        assert!(results[3].as_ref().is_err_and(|e| !e.is_permanent()));
    }
}
