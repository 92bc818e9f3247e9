//! Handlers: async functions whose arguments are extractors.
//!
//! One model for every handler of topic events: each argument implements
//! [`FromEvent`], in any order, up to eight; the return value is anything
//! that implements [`IntoOutcome`] (`()`, [`Outcome`], `Result<_, E>`), or
//! [`Answers`] for a handler of whole batches. An argument's
//! [`Scope`] says what it is taken from: one event
//! (`Event<T>`, `EventId`, …), the whole bulk batch ([`Batch<T>`]), or
//! neither (`State<S>`, `Extension<T>`). A handler with a `Batch<T>`
//! argument gets each bulk request whole; any other gets one event per call.
//! `#[subscribe]` registers a function through the same [`Handler`] trait.
//!
//! [`Outcome`]: crate::Outcome
//! [`Batch<T>`]: crate::Batch

use std::future::Future;
use std::sync::Arc;

use crate::event::Envelope;
use crate::extract::{Context, FromEvent, MissingState, Scope};
use crate::outcome::{HandlerError, HandlerResult, IntoOutcome};

/// The events of one call of a handler: one event, or the entries of a bulk
/// request for a handler that takes whole batches. Never empty.
///
/// Extractors take their values from it ([`FromEvent::from_event`]); a
/// hand-written [`Consumer`](crate::consumer::Consumer) answers it with
/// [`Delivery::answer`].
#[derive(Debug)]
pub struct Delivery<'a> {
    envelope: &'a Arc<Envelope>,
    envelopes: &'a [Arc<Envelope>],
    /// Per entry: its answer when it is known before the call (an entry of a
    /// batch that did not decode).
    answers: Answers,
}

impl<'a> Delivery<'a> {
    /// The delivery of `envelopes`, or `None` when there are none.
    pub fn new(envelopes: &'a [Arc<Envelope>]) -> Option<Self> {
        let envelope = envelopes.first()?;
        Some(Delivery { envelope, envelopes, answers: Answers::unanswered(envelopes.len()) })
    }

    /// The event: the only one of a single delivery, the first of a batch.
    pub fn envelope(&self) -> &'a Arc<Envelope> {
        self.envelope
    }

    /// Every entry, in delivery order.
    pub fn envelopes(&self) -> &'a [Arc<Envelope>] {
        self.envelopes
    }

    /// Answers the entry at `index` before the handler runs (an extractor
    /// that leaves it out of the batch it hands over); ignored out of range.
    pub fn settle(&mut self, index: usize, result: HandlerResult) {
        self.answers.set(index, result);
    }

    /// `true` when the entry at `index` is answered already.
    pub fn is_settled(&self, index: usize) -> bool {
        self.answers.is_set(index)
    }

    /// Every entry not answered yet gets `result` (an error is copied with
    /// its kind: a permanent error stays permanent).
    pub fn answer(self, result: impl IntoOutcome) -> Answers {
        let mut answers = self.answers;
        answers.fill(result.into_outcome());
        answers
    }
}

/// The answer of every entry of a [`Delivery`], keyed by entry: what a
/// hand-written consumer returns, and what a handler of whole batches builds
/// with [`Batch::answers`](crate::Batch::answers).
#[derive(Debug, Default)]
pub struct Answers {
    entries: Vec<Option<HandlerResult>>,
}

impl Answers {
    pub(crate) fn unanswered(len: usize) -> Self {
        Answers { entries: (0..len).map(|_| None).collect() }
    }

    pub(crate) fn set(&mut self, index: usize, result: HandlerResult) {
        if let Some(slot) = self.entries.get_mut(index) {
            *slot = Some(result);
        }
    }

    fn is_set(&self, index: usize) -> bool {
        self.entries.get(index).is_some_and(Option::is_some)
    }

    /// The entries still unanswered get `result`: the last of them the
    /// error itself (so a single event keeps its error's type, e.g. a
    /// [`DecodeError`](crate::event::DecodeError)), the others a copy.
    fn fill(&mut self, result: HandlerResult) {
        let copy = |result: &HandlerResult| match result {
            Ok(outcome) => Ok(*outcome),
            Err(error) => Err(HandlerError::new(error.kind(), error.to_string())),
        };
        let mut unanswered: Vec<&mut Option<HandlerResult>> =
            self.entries.iter_mut().filter(|slot| slot.is_none()).collect();
        if let Some(last) = unanswered.pop() {
            for slot in unanswered {
                *slot = Some(copy(&result));
            }
            *last = Some(result);
        }
    }

    /// `self` where it has an answer, else `other`'s.
    fn or(mut self, other: Answers) -> Answers {
        for (slot, theirs) in self.entries.iter_mut().zip(other.entries) {
            if slot.is_none() {
                *slot = theirs;
            }
        }
        self
    }

    /// One result per entry, in order. An entry left unanswered (a batch
    /// handler gave fewer results than it got events) is retried: the
    /// handler did not say it was done.
    pub(crate) fn into_results(self, len: usize) -> Vec<HandlerResult> {
        let mut entries = self.entries.into_iter();
        (0..len)
            .map(|_| {
                entries
                    .next()
                    .flatten()
                    .unwrap_or_else(|| Err(HandlerError::transient("the handler gave no answer for this event")))
            })
            .collect()
    }
}

/// What a handler returns: anything [`IntoOutcome`] (one answer for every
/// event of the call), or the [`Answers`] of a batch.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a handler return type",
    label = "return `()`, `Outcome`, `Result<(), E>` where `E: Into<HandlerError>`, or, from a handler of a `Batch<T>`, `Answers`"
)]
pub trait IntoAnswers: crate::sealed::IntoAnswers {
    /// Answers every entry of `delivery` not answered yet.
    #[doc(hidden)]
    fn into_answers(self, delivery: Delivery<'_>) -> Answers;
}

impl<R: IntoOutcome> crate::sealed::IntoAnswers for R {}
impl<R: IntoOutcome> IntoAnswers for R {
    fn into_answers(self, delivery: Delivery<'_>) -> Answers {
        delivery.answer(self)
    }
}

impl crate::sealed::IntoAnswers for Answers {}
impl IntoAnswers for Answers {
    fn into_answers(self, delivery: Delivery<'_>) -> Answers {
        delivery.answers.or(self)
    }
}

/// A whole-batch error answers every entry with it.
impl<E: Into<HandlerError>> crate::sealed::IntoAnswers for Result<Answers, E> {}
impl<E: Into<HandlerError>> IntoAnswers for Result<Answers, E> {
    fn into_answers(self, delivery: Delivery<'_>) -> Answers {
        match self {
            Ok(answers) => answers.into_answers(delivery),
            Err(error) => delivery.answer(Err::<(), HandlerError>(error.into())),
        }
    }
}

/// The arguments of a handler, as a tuple of extractors.
trait Extractors {
    /// Checks when the server is built that every argument can be supplied,
    /// and that the handler does not take both a whole batch and one event's
    /// parts.
    fn check(ctx: &Context) -> Result<(), MissingState>;

    /// `true` when an argument is the whole batch.
    fn takes_batches() -> bool;
}

/// An async function usable as a handler of topic events.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event handler",
    label = "a handler is an `async fn` (or closure) of up to 8 arguments that implement `FromEvent`, returning `()`, `Outcome`, `Result<(), E>` or `Answers`"
)]
pub trait Handler<Args>: crate::sealed::Handler<Args> + Clone + Send + Sync + 'static {
    /// Extracts the arguments from `delivery`, calls the function, and
    /// answers every entry.
    fn call<'a>(&'a self, delivery: Delivery<'a>, ctx: &'a Context) -> impl Future<Output = Answers> + Send + 'a;

    /// Checks when the server is built that every argument can be supplied.
    fn check(ctx: &Context) -> Result<(), MissingState>;

    /// `true` when the handler takes a whole batch ([`Batch<T>`](crate::Batch)).
    fn takes_batches() -> bool;
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

/// The handler's arguments conflict: a whole batch and one event's parts,
/// or two batches.
fn check_scopes(scopes: &[(Scope, &'static str)]) -> Result<(), MissingState> {
    let batches: Vec<&str> = scopes.iter().filter(|(s, _)| *s == Scope::Batch).map(|(_, t)| *t).collect();
    let events: Vec<&str> = scopes.iter().filter(|(s, _)| *s == Scope::Event).map(|(_, t)| *t).collect();
    match (batches.as_slice(), events.first()) {
        ([first, second, ..], _) => {
            Err(MissingState::conflict(format!("takes two batches, `{first}` and `{second}`: one is the call's")))
        }
        ([batch], Some(event)) => Err(MissingState::conflict(format!(
            "takes `{event}` beside `{batch}`: a handler of whole batches takes no single event's part"
        ))),
        _ => Ok(()),
    }
}

macro_rules! impl_handler {
    ($($arg:ident),*) => {
        #[allow(unused_variables)]
        impl<$($arg: FromEvent,)*> Extractors for ($($arg,)*) {
            fn check(ctx: &Context) -> Result<(), MissingState> {
                $(<$arg as FromEvent>::check(ctx)?;)*
                check_scopes(&[$((<$arg as FromEvent>::SCOPE, std::any::type_name::<$arg>()),)*])
            }

            fn takes_batches() -> bool {
                false $(|| <$arg as FromEvent>::SCOPE == Scope::Batch)*
            }
        }

        impl<F, Fut, R, $($arg,)*> crate::sealed::Handler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoAnswers,
            $($arg: FromEvent,)*
        {
        }

        #[diagnostic::do_not_recommend]
        #[allow(non_snake_case, unused_variables, unused_mut)]
        impl<F, Fut, R, $($arg,)*> Handler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoAnswers,
            $($arg: FromEvent,)*
        {
            fn call<'a>(&'a self, mut delivery: Delivery<'a>, ctx: &'a Context) -> impl Future<Output = Answers> + Send + 'a {
                let called = taking(|| Ok((self)($($arg::from_event(&mut delivery, ctx)?),*)));
                async move {
                    match called {
                        Ok(future) => future.await.into_answers(delivery),
                        Err(error) => delivery.answer(Err::<(), _>(error)),
                    }
                }
            }

            fn check(ctx: &Context) -> Result<(), MissingState> {
                <($($arg,)*) as Extractors>::check(ctx)
            }

            fn takes_batches() -> bool {
                <($($arg,)*) as Extractors>::takes_batches()
            }
        }
    };
}

all_the_tuples!(impl_handler);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;

    fn envelope(data: &'static str) -> Arc<Envelope> {
        Arc::new(Envelope { data: data.as_bytes().into(), ..Envelope::default() })
    }

    #[test]
    fn an_answer_for_the_whole_delivery_keeps_the_error_kind() {
        let envelopes = [envelope("1"), envelope("2"), envelope("3")];
        let answer = |result: HandlerResult| Delivery::new(&envelopes).map(|d| d.answer(result).into_results(3));
        let permanent = answer(Err(HandlerError::permanent("bad"))).unwrap_or_default();
        assert!(permanent.iter().all(|r| r.as_ref().is_err_and(|e| e.is_permanent() && e.to_string() == "bad")));
        let transient = answer(Err(HandlerError::transient("later"))).unwrap_or_default();
        assert_eq!(transient.len(), 3);
        assert!(transient.iter().all(|r| r.as_ref().is_err_and(|e| !e.is_permanent())));
    }

    #[test]
    fn settled_entries_keep_their_answer_and_unanswered_ones_retry() {
        let envelopes = [envelope("1"), envelope("2"), envelope("3")];
        let Some(mut delivery) = Delivery::new(&envelopes) else { panic!("not empty") };
        delivery.settle(1, Err(HandlerError::permanent("did not decode")));
        let mut answers = Answers::unanswered(3);
        answers.set(0, Ok(Outcome::Drop));
        let results = answers.into_answers(delivery).into_results(3);
        assert_eq!(results[0].as_ref().ok(), Some(&Outcome::Drop));
        assert!(results[1].as_ref().is_err_and(HandlerError::is_permanent));
        assert!(results[2].as_ref().is_err_and(|e| !e.is_permanent()));
    }

    #[test]
    fn a_handler_takes_one_batch_and_no_single_event_part() {
        let batch = (Scope::Batch, "Batch<u8>");
        assert!(check_scopes(&[batch, (Scope::Context, "State<u8>")]).is_ok());
        assert!(check_scopes(&[(Scope::Event, "Event<u8>"), (Scope::Event, "EventId")]).is_ok());
        let mixed = check_scopes(&[batch, (Scope::Event, "EventId")]).unwrap_err();
        assert!(mixed.to_string().contains("`EventId` beside `Batch<u8>`"), "{mixed}");
        assert!(check_scopes(&[batch, batch]).is_err());
    }

    #[test]
    fn there_is_no_delivery_of_nothing() {
        assert!(Delivery::new(&[]).is_none());
    }
}
