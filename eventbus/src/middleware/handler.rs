use std::convert::Infallible;
use std::task::{Context as TaskContext, Poll};

use tower::Service;

use super::{EventFuture, EventRequest};
use crate::outcome::{HandlerResult, Outcome};

/// The innermost service: calls the route's consumer and turns its error into
/// an outcome, logging it with the event id.
#[derive(Debug, Clone, Copy, Default)]
pub struct HandlerService;

impl Service<EventRequest> for HandlerService {
    type Response = Outcome;
    type Error = Infallible;
    type Future = EventFuture;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: EventRequest) -> Self::Future {
        Box::pin(async move {
            let EventRequest { envelope, route, context } = request;
            let result = route.consumer().handle(envelope.clone(), &context).await;
            Ok(outcome_of(result, &envelope.id, route.name()))
        })
    }
}

/// The outcome of a handler's result; errors are logged with the event id.
pub(crate) fn outcome_of(result: HandlerResult, id: &str, handler: &str) -> Outcome {
    match result {
        Ok(outcome) => outcome,
        Err(error) => {
            let outcome = error.outcome();
            if error.is_permanent() {
                tracing::error!(event.id = %id, handler, %outcome, error = %error, "event dropped: permanent error");
            } else {
                tracing::warn!(event.id = %id, handler, %outcome, error = %error, "event will be retried");
            }
            outcome
        }
    }
}
