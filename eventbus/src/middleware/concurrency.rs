use crate::status::Code;

call_layer! {
    /// Caps the handler calls in flight per route: per topic (or per handler,
    /// when its subscription sets `concurrency`), per method, binding or job;
    /// a batch takes one permit. The sidecar does not throttle gRPC pub/sub,
    /// so this is the app's protection: a call over the limit is answered at
    /// once rather than queued (`Retry`, or `ResourceExhausted`), and the
    /// sidecar's retry policy backs off.
    ConcurrencyLimitLayer wraps in ConcurrencyLimit;

    fn call(inner, request) {
        let Some(limiter) = request.route.limiter().cloned() else {
            return Box::pin(inner.call(request));
        };
        let Ok(permit) = limiter.try_acquire_owned() else {
            tracing::warn!(event.id = %request.ids(), topic = request.topic(), outcome = "retry", reason = %crate::outcome::Reason::Overload, handler = request.handler(), "concurrency limit reached");
            let refused = request.refuse(Code::ResourceExhausted, format!("{} is at its concurrency limit", request.name()));
            return Box::pin(std::future::ready(Ok(refused)));
        };
        let future = inner.call(request);
        Box::pin(async move {
            let result = future.await;
            drop(permit);
            result
        })
    }
}
