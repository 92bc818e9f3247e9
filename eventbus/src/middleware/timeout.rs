use std::time::Duration;

use super::{CallFuture, Request, Response};
use crate::status::Code;

/// Answers when the layers below take longer than a limit: `Retry` for
/// events, `DeadlineExceeded` for the other calls. The handler's future is
/// dropped, cancelling it at its next await point.
///
/// [`TimeoutLayer::new`] has its own limit; the server's (its
/// [`Default`]) takes each route's: the subscription's `timeout`, else the
/// server's. On one consumer
/// ([`ConsumerExt::layer`](crate::consumer::ConsumerExt::layer)) a
/// `TimeoutLayer::new` replaces the server's for it.
///
/// ```
/// use std::time::Duration;
/// use eventbus::Server;
/// use eventbus::middleware::TimeoutLayer;
///
/// // Every call, inside the server's own timeout.
/// let builder = Server::builder().layer(TimeoutLayer::new(Duration::from_secs(5)));
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeoutLayer {
    /// `None`: the route's.
    limit: Option<Duration>,
}

impl TimeoutLayer {
    /// A timeout of `limit`.
    pub fn new(limit: Duration) -> Self {
        TimeoutLayer { limit: Some(limit) }
    }
}

impl<S> tower::Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout { inner, limit: self.limit }
    }
}

/// See [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Option<Duration>,
}

impl<S> tower::Service<Request> for Timeout<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = CallFuture;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(limit) = self.limit.or_else(|| request.route.timeout()) else {
            return Box::pin(self.inner.call(request));
        };
        let refusal = request.refusal();
        let future = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(limit, future).await {
                Ok(result) => result,
                Err(_) => {
                    let timeout_ms = limit.as_millis() as u64;
                    let handler = refusal.handler();
                    tracing::warn!(event.id = %refusal.ids(), topic = refusal.topic(), outcome = "retry", reason = %crate::outcome::Reason::Timeout, handler, timeout_ms, "handler timed out");
                    Ok(refusal.refuse(
                        crate::outcome::Reason::Timeout,
                        Code::DeadlineExceeded,
                        format!("{handler} timed out after {timeout_ms} ms"),
                    ))
                }
            }
        })
    }
}
