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
    S: Service<EventRequest, Response = Vec<Outcome>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Vec<Outcome>;
    type Error = Infallible;
    type Future = EventFuture;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: EventRequest) -> Self::Future {
        // A clone of reference counts, read only if it panics.
        let kept = request.clone();
        // A panic may come from `call` itself or from polling the future.
        let future = match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => future,
            Err(panic) => return Box::pin(std::future::ready(Ok(panicked(&kept, &*panic)))),
        };
        Box::pin(async move {
            match AssertUnwindSafe(future).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => Ok(panicked(&kept, &*panic)),
            }
        })
    }
}

fn panicked(request: &EventRequest, panic: &(dyn std::any::Any + Send)) -> Vec<Outcome> {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic)");
    let handler = request.handler();
    tracing::error!(event.id = %request.ids(), handler, panic = message, "handler panicked; retried");
    request.route.metrics().panics.increment(1);
    request.every(Outcome::Retry)
}
