use crate::outcome::Outcome;

event_layer! {
    /// Answers `Retry` when the layers below take longer than the route's timeout
    /// (the subscription's own, else the server's). The handler's future is
    /// dropped, cancelling it at its next await point.
    TimeoutLayer wraps in Timeout;

    fn call(inner, request) {
        let Some(limit) = request.route.timeout() else {
            return Box::pin(inner.call(request));
        };
        let kept = request.clone();
        let future = inner.call(request);
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
