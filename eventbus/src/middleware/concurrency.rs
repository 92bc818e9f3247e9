use std::convert::Infallible;
use std::task::{Context as TaskContext, Poll};

use tower::{Layer, Service};

use super::{EventFuture, EventRequest};
use crate::outcome::Outcome;

/// Caps the handler calls in flight per topic (or per handler, when its
/// subscription sets `concurrency`); a batch takes one permit. The sidecar does not throttle gRPC pub/sub, so this is
/// the app's protection: an event over the limit is answered `Retry` at once
/// rather than queued, and the sidecar's retry policy backs off.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConcurrencyLimitLayer;

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;
    fn layer(&self, inner: S) -> ConcurrencyLimit<S> {
        ConcurrencyLimit { inner }
    }
}

/// See [`ConcurrencyLimitLayer`].
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit<S> {
    inner: S,
}

impl<S> Service<EventRequest> for ConcurrencyLimit<S>
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
        let Some(limiter) = request.route.limiter().cloned() else {
            return Box::pin(self.inner.call(request));
        };
        let Ok(permit) = limiter.try_acquire_owned() else {
            tracing::warn!(event.id = %request.ids(), topic = request.topic(), "concurrency limit reached; retried");
            return Box::pin(std::future::ready(Ok(request.every(Outcome::Retry))));
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            drop(permit);
            result
        })
    }
}
