use crate::outcome::Outcome;

event_layer! {
    /// Caps the handler calls in flight per topic (or per handler, when its
    /// subscription sets `concurrency`); a batch takes one permit. The sidecar does not throttle gRPC pub/sub, so this is
    /// the app's protection: an event over the limit is answered `Retry` at once
    /// rather than queued, and the sidecar's retry policy backs off.
    ConcurrencyLimitLayer wraps in ConcurrencyLimit;

    fn call(inner, request) {
        let Some(limiter) = request.route.limiter().cloned() else {
            return Box::pin(inner.call(request));
        };
        let Ok(permit) = limiter.try_acquire_owned() else {
            tracing::warn!(event.id = %request.ids(), topic = request.topic(), "concurrency limit reached; retried");
            return Box::pin(std::future::ready(Ok(request.every(Outcome::Retry))));
        };
        let future = inner.call(request);
        Box::pin(async move {
            let result = future.await;
            drop(permit);
            result
        })
    }
}
