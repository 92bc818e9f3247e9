use std::convert::Infallible;
use std::task::{Context as TaskContext, Poll};

use tower::{Layer, Service};

use super::{EventFuture, EventRequest};
use crate::outcome::Outcome;

/// Answers `Retry` when the layers below take longer than the route's timeout
/// (the subscription's own, else the server's). The handler's future is
/// dropped, cancelling it at its next await point.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeoutLayer;

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout { inner }
    }
}

/// See [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
}

impl<S> Service<EventRequest> for Timeout<S>
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
        let Some(limit) = request.route.timeout() else {
            return Box::pin(self.inner.call(request));
        };
        let kept = request.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(limit, future).await {
                Ok(result) => result,
                Err(_) => {
                    let timeout_ms = limit.as_millis() as u64;
                    tracing::warn!(event.id = %kept.ids(), handler = kept.handler(), timeout_ms, "handler timed out; retried");
                    Ok(kept.every(Outcome::Retry))
                }
            }
        })
    }
}
