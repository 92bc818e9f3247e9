use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::task::{Context as TaskContext, Poll};

use futures_util::FutureExt;
use tower::{Layer, Service};

use super::{EventFuture, EventRequest};
use crate::outcome::Outcome;

/// Contains a panic in the layers below: the event is answered `Retry` and the
/// server keeps serving.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic { inner }
    }
}

/// See [`CatchPanicLayer`].
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S> Service<EventRequest> for CatchPanic<S>
where
    S: Service<EventRequest, Response = Outcome, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Outcome;
    type Error = Infallible;
    type Future = EventFuture;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: EventRequest) -> Self::Future {
        // Reference counts, not copies: they are only read if it panics.
        let (envelope, route) = (request.envelope.clone(), request.route.clone());
        // A panic may come from `call` itself or from polling the future.
        let future = match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => future,
            Err(panic) => return Box::pin(std::future::ready(Ok(panicked(&envelope.id, route.name(), &*panic)))),
        };
        Box::pin(async move {
            match AssertUnwindSafe(future).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => Ok(panicked(&envelope.id, route.name(), &*panic)),
            }
        })
    }
}

fn panicked(id: &str, handler: &str, panic: &(dyn std::any::Any + Send)) -> Outcome {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic)");
    tracing::error!(event.id = %id, handler, panic = message, "handler panicked; event will be retried");
    metrics::counter!("eventbus_handler_panics_total", "handler" => handler.to_owned()).increment(1);
    Outcome::Retry
}
