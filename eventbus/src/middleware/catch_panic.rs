use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::{Refusal, Response};
use crate::outcome::Reason;
use crate::status::Code;

call_layer! {
    /// Contains a panic in the layers below: events are answered `Retry`,
    /// other calls `Internal`, and the server keeps serving.
    CatchPanicLayer wraps in CatchPanic;

    fn call(inner, request) {
        // Reference counts, read only if it panics.
        let refusal = request.refusal();
        // A panic may come from `call` itself or from polling the future.
        let future = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(request))) {
            Ok(future) => future,
            Err(panic) => return Box::pin(std::future::ready(Ok(panicked(&refusal, &*panic)))),
        };
        Box::pin(async move {
            match AssertUnwindSafe(future).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => Ok(panicked(&refusal, &*panic)),
            }
        })
    }
}

fn panicked(refusal: &Refusal, panic: &(dyn std::any::Any + Send)) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic)");
    let handler = refusal.handler();
    tracing::error!(event.id = %refusal.ids(), topic = refusal.topic(), outcome = "retry", reason = %Reason::Panic, handler, panic = message, "handler panicked");
    refusal.route().metrics().panics.increment(1);
    refusal.refuse(Reason::Panic, Code::Internal, format!("{handler} panicked"))
}
