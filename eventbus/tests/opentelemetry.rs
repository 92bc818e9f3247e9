//! With the `opentelemetry` feature, each event's span continues the trace
//! that arrived with it: same trace id, the incoming span as parent, for a
//! single event and for each entry of a bulk delivery.
#![allow(clippy::unwrap_used)]

use eventbus::{Envelope, Event, Server, Subscription, handler};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;

fn traced(id: &str, trace: u128, parent: u64) -> Envelope {
    let mut envelope = Envelope {
        id: id.into(),
        topic: "orders".into(),
        data: b"1".as_slice().into(),
        data_content_type: "application/json".into(),
        ..Envelope::default()
    };
    envelope.extensions.insert("traceparent", format!("00-{trace:032x}-{parent:016x}-01"));
    envelope.extensions.insert("tracestate", "vendor=value");
    envelope
}

#[test]
fn the_event_span_is_a_child_of_the_incoming_trace_for_single_and_bulk_events() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("eventbus-test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let server = Server::builder()
            .api_token(None)
            .consumer(handler(Subscription::new("orders"), |_: Event<u32>| async {}))
            .build()
            .unwrap();
        server.dispatch(traced("single", 0xa1, 0xb1)).await;
        server.dispatch_bulk(vec![traced("bulk-1", 0xa2, 0xb2), traced("bulk-2", 0xa3, 0xb3)]).await;
    });
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let events: Vec<_> = spans.iter().filter(|s| s.name == "event").collect();
    assert_eq!(events.len(), 3, "one span per handler call: {spans:?}");
    for (trace, parent) in [(0xa1u128, 0xb1u64), (0xa2, 0xb2), (0xa3, 0xb3)] {
        let span = events
            .iter()
            .find(|s| s.span_context.trace_id() == opentelemetry::trace::TraceId::from(trace))
            .unwrap_or_else(|| panic!("no span in trace {trace:x}: {events:?}"));
        assert_eq!(span.parent_span_id, opentelemetry::trace::SpanId::from(parent));
        assert_eq!(span.span_context.trace_state().get("vendor"), Some("value"));
    }
}
