use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_util::FutureExt;
use tower::Service;

use super::{Answer, Call, CallFuture, Events, Request, Response};
use crate::event::DecodeError;
use crate::extract::Context;
use crate::outcome::{HandlerResult, Outcome, Reason, report_drop};
use crate::registry::{Route, Target};
use crate::status::Status;

/// The innermost service of the server's stack: runs the route's own
/// layers ([`ConsumerExt::layer`](crate::consumer::ConsumerExt::layer)) when
/// it has some, around [`CallHandler`]; else calls the handler.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HandlerService;

impl Service<Request> for HandlerService {
    type Response = Response;
    type Error = Infallible;
    type Future = CallFuture;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match request.route.stack() {
            Some(stack) => Box::pin(super::run(stack.clone(), request).map(Ok)),
            None => Box::pin(call_handler(request).map(Ok)),
        }
    }
}

/// The innermost service of a route's own layers: calls the handler.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CallHandler;

impl Service<Request> for CallHandler {
    type Response = Response;
    type Error = Infallible;
    type Future = CallFuture;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        Box::pin(call_handler(request).map(Ok))
    }
}

/// Calls the route's handler (for events, once per event, or once with the
/// whole batch for a consumer that takes batches) and turns its result into
/// the answer, logging errors with the event id.
async fn call_handler(request: Request) -> Response {
    let (call, route, context) = request.into_parts();
    let answer = match (call, route.target()) {
        (Call::Events(events), Target::Consumer(_)) => {
            let (outcomes, reasons) = handle_events(&route, events, &context).await;
            Answer::Events(outcomes, reasons)
        }
        (Call::Invocation(mut invocation), Target::Invocation(handler)) => {
            invocation.extensions = context.into_extensions();
            Answer::Reply(handler(invocation).await)
        }
        (Call::Binding(mut event), Target::Binding(handler)) => {
            event.extensions = context.into_extensions();
            Answer::Done(handler(event).await)
        }
        (Call::Job(mut job), Target::Job(handler)) => {
            job.extensions = context.into_extensions();
            let name = job.name.clone();
            Answer::Done(handler(job).await.map_err(|error| {
                tracing::warn!(job = %name, error = %error, "job failed");
                Status::internal(format!("job {name:?} failed: {error}"))
            }))
        }
        // The registry builds every route with its own kind of call.
        (_, _) => Answer::Done(Err(Status::internal("the call does not match its route"))),
    };
    Response(answer)
}

/// The consumer's outcome for each event, in order, and why.
async fn handle_events(route: &Arc<Route>, events: Events, context: &Context) -> (Vec<Outcome>, Vec<Reason>) {
    let Target::Consumer(consumer) = route.target() else { return (Vec::new(), Vec::new()) };
    // The events as a slice, without copying the batch or boxing the one.
    let envelopes: &[Arc<crate::event::Envelope>] = match &events {
        Events::One(envelope) => std::slice::from_ref(envelope),
        Events::Batch(envelopes) => envelopes,
    };
    // A consumer of single events gets the entries of a bulk request one by
    // one, each through the stack: a batch reaches here only when it takes batches.
    let results = match crate::handler::Delivery::new(envelopes) {
        Some(delivery) => consumer.handle(delivery, context).await.into_results(envelopes.len()),
        None => Vec::new(),
    };
    envelopes
        .iter()
        .zip(results)
        .map(|(envelope, result)| {
            let answer = answer_of(result, envelope, route.name());
            if let Some(why) = &answer.dropped {
                report_drop(context, &envelope.pubsub, &envelope.topic, &envelope.id, why);
            }
            (answer.outcome, answer.reason)
        })
        .unzip()
}

/// A handler's result as the sidecar's answer.
struct HandlerAnswer {
    outcome: Outcome,
    reason: Reason,
    /// For a drop, what the dead letter says.
    dropped: Option<String>,
    /// The handler's error, for the log.
    error: Option<String>,
}

/// The answer for a handler's result, logged once: success at debug level,
/// `RETRY` at warn, `DROP` at error, each with the event id, topic and reason.
fn answer_of(result: HandlerResult, envelope: &crate::event::Envelope, handler: &str) -> HandlerAnswer {
    let answer = decide(result, handler);
    let (id, topic, outcome, reason) = (&envelope.id, &envelope.topic, answer.outcome, answer.reason);
    match (outcome, &answer.error) {
        (Outcome::Success, _) => {
            tracing::debug!(event.id = %id, topic = %topic, %outcome, %reason, handler, "event handled")
        }
        (Outcome::Retry, error) => {
            tracing::warn!(event.id = %id, topic = %topic, %outcome, %reason, handler, error, "event will be delivered again")
        }
        (Outcome::Drop, error) => {
            tracing::error!(event.id = %id, topic = %topic, %outcome, %reason, handler, error, "event dropped to the dead-letter topic")
        }
    }
    answer
}

fn decide(result: HandlerResult, handler: &str) -> HandlerAnswer {
    match result {
        Ok(Outcome::Success) => {
            HandlerAnswer { outcome: Outcome::Success, reason: Reason::Handled, dropped: None, error: None }
        }
        Ok(Outcome::Drop) => HandlerAnswer {
            outcome: Outcome::Drop,
            reason: Reason::Handler,
            dropped: Some(format!("{handler} answered DROP")),
            error: None,
        },
        Ok(outcome) => HandlerAnswer { outcome, reason: Reason::Handler, dropped: None, error: None },
        Err(error) => {
            let outcome = error.outcome();
            let reason = if error.source_error().is::<DecodeError>() { Reason::Decode } else { Reason::Handler };
            let error = error.to_string();
            HandlerAnswer {
                outcome,
                reason,
                dropped: (outcome == Outcome::Drop).then(|| error.clone()),
                error: Some(error),
            }
        }
    }
}
