use std::convert::Infallible;
use std::task::{Context as TaskContext, Poll};

use tower::Service;

use super::{EventFuture, EventRequest};
use crate::outcome::{HandlerResult, Outcome, report_drop};

/// The innermost service: calls the route's consumer (once per event, or
/// once with the whole batch for a consumer that takes batches) and turns
/// each result into an outcome, logging errors with the event id.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HandlerService;

impl Service<EventRequest> for HandlerService {
    type Response = Vec<Outcome>;
    type Error = Infallible;
    type Future = EventFuture;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: EventRequest) -> Self::Future {
        Box::pin(async move {
            let (consumer, context) = (request.route.consumer(), &request.context);
            let results = match request.events() {
                [envelope] if !request.route.takes_batches() => {
                    vec![consumer.handle(envelope.clone(), context).await]
                }
                events => consumer.handle_batch(events, context).await,
            };
            let mut results = results.into_iter();
            let outcomes = request
                .events()
                .iter()
                .map(|envelope| {
                    let result = results
                        .next()
                        .unwrap_or_else(|| Err(crate::HandlerError::transient("the consumer returned no result")));
                    let outcome = outcome_of(result, &envelope.id, request.handler());
                    if let (Outcome::Drop, Some(reason)) = &outcome {
                        report_drop(context, &envelope.pubsub, &envelope.topic, &envelope.id, reason);
                    }
                    outcome.0
                })
                .collect();
            Ok(outcomes)
        })
    }
}

/// The outcome of a handler's result and, for a drop, why; errors are
/// logged with the event id.
fn outcome_of(result: HandlerResult, id: &str, handler: &str) -> (Outcome, Option<String>) {
    match result {
        Ok(Outcome::Drop) => (Outcome::Drop, Some(format!("{handler} answered DROP"))),
        Ok(outcome) => (outcome, None),
        Err(error) => {
            let outcome = error.outcome();
            if error.is_permanent() {
                tracing::error!(event.id = %id, handler, %outcome, error = %error, "event dropped: permanent error");
            } else {
                tracing::warn!(event.id = %id, handler, %outcome, error = %error, "event will be retried");
            }
            (outcome, (outcome == Outcome::Drop).then(|| error.to_string()))
        }
    }
}
