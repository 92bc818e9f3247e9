//! OpenTelemetry (feature `opentelemetry`): the event span continues the
//! publisher's trace, read with the W3C propagator from the event.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::event::Envelope;

/// The trace context of an event: `traceparent` (the sidecar's gRPC header,
/// else the CloudEvent extension) and `tracestate`.
struct EventContext<'a>(&'a Envelope);

impl Extractor for EventContext<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.0.traceparent(),
            "tracestate" => self.0.tracestate(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// Makes `span` a child of the event's trace context, when it has one.
pub(crate) fn continue_trace(span: &tracing::Span, envelope: &Envelope) {
    let parent = TraceContextPropagator::new().extract(&EventContext(envelope));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Links `span` (one handler call for a whole batch) to each entry's trace.
pub(crate) fn link_traces(span: &tracing::Span, envelopes: &[std::sync::Arc<Envelope>]) {
    let propagator = TraceContextPropagator::new();
    for envelope in envelopes {
        let context = propagator.extract(&EventContext(envelope));
        let span_context = context.span().span_context().clone();
        if span_context.is_valid() {
            span.add_link(span_context);
        }
    }
}

/// The current span's W3C trace context as `(header, value)` pairs, to send on.
pub(crate) fn current_trace_headers() -> Vec<(&'static str, String)> {
    struct Headers(Vec<(&'static str, String)>);
    impl opentelemetry::propagation::Injector for Headers {
        fn set(&mut self, key: &str, value: String) {
            match key {
                "traceparent" => self.0.push(("traceparent", value)),
                "tracestate" if !value.is_empty() => self.0.push(("tracestate", value)),
                _ => {}
            }
        }
    }
    let mut headers = Headers(Vec::new());
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut headers);
    headers.0
}
