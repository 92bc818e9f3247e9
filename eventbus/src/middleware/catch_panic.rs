use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::EventRequest;
use crate::outcome::Outcome;

event_layer! {
    /// Contains a panic in the layers below: the event is answered `Retry` and the
    /// server keeps serving.
    CatchPanicLayer wraps in CatchPanic;

    fn call(inner, request) {
        // A clone of reference counts, read only if it panics.
        let kept = request.clone();
        // A panic may come from `call` itself or from polling the future.
        let future = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(request))) {
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
