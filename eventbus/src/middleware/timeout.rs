use crate::status::Code;

call_layer! {
    /// Answers when the layers below take longer than the route's timeout
    /// (the registration's own, else the server's): `Retry` for events,
    /// `DeadlineExceeded` for the other calls. The handler's future is
    /// dropped, cancelling it at its next await point.
    TimeoutLayer wraps in Timeout;

    fn call(inner, request) {
        let Some(limit) = request.route.timeout() else {
            return Box::pin(inner.call(request));
        };
        let refusal = request.refusal();
        let future = inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(limit, future).await {
                Ok(result) => result,
                Err(_) => {
                    let timeout_ms = limit.as_millis() as u64;
                    let handler = refusal.handler();
                    tracing::warn!(event.id = %refusal.ids(), handler, timeout_ms, "handler timed out; retried");
                    Ok(refusal.refuse(Code::DeadlineExceeded, format!("{handler} timed out after {timeout_ms} ms")))
                }
            }
        })
    }
}
