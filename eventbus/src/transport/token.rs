//! The `dapr-api-token` check on data-plane calls: one layer in front of
//! each app channel.

use std::convert::Infallible;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tonic::Status;

use crate::sidecar::TOKEN_HEADER;

/// Compares in time that does not depend on where the tokens first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Whether the token `given` is the `expected` one; when not, why.
fn verify(expected: &str, given: Option<&[u8]>) -> Result<(), &'static str> {
    match given {
        Some(given) if constant_time_eq(given, expected.as_bytes()) => Ok(()),
        Some(_) => Err("invalid dapr-api-token"),
        None => Err("missing dapr-api-token"),
    }
}

/// The RPCs daprd calls without the token: the lists it reads at start, and health.
const EXEMPT_RPCS: [&str; 3] = ["ListTopicSubscriptions", "ListInputBindings", "HealthCheck"];

/// The token check of the gRPC app channel, as one layer in front of its
/// services: every data-plane RPC needs the token; the lists and health do
/// not. A refused call is answered `Unauthenticated` (daprd retries it).
#[derive(Clone)]
pub(crate) struct RequireToken<S> {
    inner: S,
    token: Option<Arc<str>>,
}

impl<S> RequireToken<S> {
    pub(crate) fn new(inner: S, token: Option<&str>) -> Self {
        RequireToken { inner, token: token.map(Arc::from) }
    }
}

impl<S, B> tower::Service<http::Request<B>> for RequireToken<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(expected) = &self.token {
            let rpc = request.uri().path().rsplit('/').next().unwrap_or_default();
            if !EXEMPT_RPCS.contains(&rpc) {
                let given = request.headers().get(TOKEN_HEADER).map(|v| v.as_bytes());
                if let Err(reason) = verify(expected, given) {
                    tracing::warn!(rpc, reason, "rejected");
                    return Box::pin(std::future::ready(Ok(Status::unauthenticated(reason).into_http())));
                }
            }
        }
        Box::pin(self.inner.call(request))
    }
}

/// The token check of the HTTP app channel, as an axum middleware: every
/// request but `GET /dapr/subscribe`, `/dapr/config`, `/healthz` and
/// daprd's `OPTIONS` probes needs it; a refused one is answered `401`.
#[cfg(feature = "http")]
pub(crate) async fn require_token_http(
    axum::extract::State(token): axum::extract::State<Option<Arc<str>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let exempt = request.method() == http::Method::OPTIONS
        || ["/dapr/subscribe", "/dapr/config", "/healthz"].contains(&request.uri().path());
    if let (Some(expected), false) = (token.as_deref(), exempt) {
        let given = request.headers().get(TOKEN_HEADER).map(|v| v.as_bytes());
        if let Err(reason) = verify(expected, given) {
            tracing::warn!(path = request.uri().path(), reason, "rejected");
            return (http::StatusCode::UNAUTHORIZED, reason).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn a_missing_or_wrong_token_says_which() {
        assert_eq!(verify("t", None), Err("missing dapr-api-token"));
        assert_eq!(verify("t", Some(b"x")), Err("invalid dapr-api-token"));
        assert_eq!(verify("t", Some(b"t")), Ok(()));
    }
}
