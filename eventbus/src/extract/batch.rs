//! [`Batch<T>`]: a whole bulk request as one handler argument.

use std::sync::Arc;

use super::{Context, FromEvent, Scope};
use crate::event::{Event, EventData};
use crate::handler::{Answers, Delivery};
use crate::outcome::{HandlerError, IntoOutcome};

/// The events of one bulk request, decoded as `T` (a slice of [`Event<T>`]
/// in delivery order, through `Deref`): the argument that makes
/// a handler take whole batches (to write them in one transaction, one
/// multi-row statement, one call to a search engine). A single event
/// arrives as a batch of one. An entry whose payload does not decode is
/// dropped to the dead-letter topic before the call and is not in the batch.
///
/// The handler answers with [`Batch::answers`] (one result per event, in
/// the batch's order), or with one result for the whole batch
/// (`Result<(), E>`).
///
/// ```
/// use eventbus::handler::Answers;
/// use eventbus::{Batch, HandlerError, Subscription, handler};
///
/// #[derive(serde::Deserialize)]
/// struct Product { sku: String }
///
/// async fn index(products: Batch<Product>) -> Answers {
///     // e.g. one multi-row INSERT for the whole batch, one result per row
///     let results = products.iter().map(|p| {
///         if p.data.sku.is_empty() { Err(HandlerError::permanent("no sku")) } else { Ok(()) }
///     });
///     products.answers(results)
/// }
///
/// let consumer = handler(Subscription::new("product.updated").bulk(100, 500), index);
/// # let _ = consumer;
/// ```
#[derive(Debug)]
pub struct Batch<T> {
    events: Vec<Event<T>>,
    /// Per event: its entry in the delivery.
    entries: Vec<usize>,
    /// How many entries the delivery had.
    delivered: usize,
}

impl<T> Batch<T> {
    /// One result per event, in the batch's order: the `i`-th result
    /// answers the `i`-th event. An event with no result (fewer results than
    /// events) is retried: the handler did not say it was done.
    pub fn answers<R: IntoOutcome>(&self, results: impl IntoIterator<Item = R>) -> Answers {
        let mut answers = Answers::unanswered(self.delivered);
        for (&entry, result) in self.entries.iter().zip(results) {
            answers.set(entry, result.into_outcome());
        }
        answers
    }
}

impl<T> std::ops::Deref for Batch<T> {
    type Target = [Event<T>];

    fn deref(&self) -> &[Event<T>] {
        &self.events
    }
}

impl<'a, T> IntoIterator for &'a Batch<T> {
    type Item = &'a Event<T>;
    type IntoIter = std::slice::Iter<'a, Event<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.events.iter()
    }
}

/// The entries that decode; the others are answered with their (permanent)
/// error before the call.
impl<T: EventData> FromEvent for Batch<T> {
    const SCOPE: Scope = Scope::Batch;

    fn from_event(delivery: &mut Delivery<'_>, _: &Context) -> Result<Self, HandlerError> {
        let envelopes: &[Arc<crate::Envelope>] = delivery.envelopes();
        let mut batch =
            Batch { events: Vec::with_capacity(envelopes.len()), entries: Vec::new(), delivered: envelopes.len() };
        for (entry, envelope) in envelopes.iter().enumerate() {
            if delivery.is_settled(entry) {
                continue;
            }
            match Event::<T>::decode(envelope.clone()) {
                Ok(event) => {
                    batch.events.push(event);
                    batch.entries.push(entry);
                }
                Err(error) => delivery.settle(entry, Err(error)),
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Envelope;
    use crate::handler::IntoAnswers;
    use crate::outcome::Outcome;

    #[test]
    fn undecodable_entries_keep_their_place_and_missing_results_retry() {
        let envelopes: Vec<Arc<Envelope>> = ["1", "{nope", "3", "4"]
            .into_iter()
            .map(|data| Arc::new(Envelope { data: data.as_bytes().into(), ..Envelope::default() }))
            .collect();
        let Some(mut delivery) = Delivery::new(&envelopes) else { panic!("not empty") };
        let Ok(batch) = Batch::<u32>::from_event(&mut delivery, &Context::default()) else { panic!("extracts") };
        assert_eq!(batch.iter().map(|e| e.data).collect::<Vec<_>>(), [1, 3, 4]);
        // Two results for three events: the last is missing.
        let results = batch.answers([Outcome::Success, Outcome::Drop]).into_answers(delivery).into_results(4);
        assert_eq!(results[0].as_ref().ok(), Some(&Outcome::Success));
        assert!(results[1].as_ref().is_err_and(HandlerError::is_permanent));
        assert_eq!(results[2].as_ref().ok(), Some(&Outcome::Drop));
        assert!(results[3].as_ref().is_err_and(|e| !e.is_permanent()));
    }
}
