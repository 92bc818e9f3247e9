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

/// Spans go to an in-memory exporter through `tracing-opentelemetry`, on
/// this thread's runtime, while it lives.
struct Traced {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
    runtime: tokio::runtime::Runtime,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Traced {
    fn new() -> Traced {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("eventbus-test")));
        let _guard = tracing::subscriber::set_default(subscriber);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Traced { exporter, provider, runtime, _guard }
    }
}

#[test]
fn the_event_span_is_a_child_of_the_incoming_trace_for_single_and_bulk_events() {
    let Traced { exporter, provider, runtime, _guard } = Traced::new();
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
    let events: Vec<_> = spans.iter().filter(|s| s.name == "process orders").collect();
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

/// The attributes of a span, by key, as strings.
fn attributes(span: &opentelemetry_sdk::trace::SpanData) -> std::collections::HashMap<String, String> {
    span.attributes.iter().map(|kv| (kv.key.to_string(), kv.value.to_string())).collect()
}

#[test]
fn spans_follow_the_messaging_and_cloudevents_conventions() {
    use opentelemetry::trace::{SpanKind, Status};

    let Traced { exporter, provider, runtime, _guard } = Traced::new();
    runtime.block_on(async {
        let server = Server::builder()
            .api_token(None)
            .consumer(handler(Subscription::new("orders"), |event: Event<u32>| async move {
                if event.data == 0 { Err(eventbus::HandlerError::permanent("zero")) } else { Ok(()) }
            }))
            .consumer(handler(Subscription::new("batched").bulk(10, 10), |batch: eventbus::Batch<u32>| async move {
                let results = batch.iter().map(|_| Ok::<(), eventbus::HandlerError>(()));
                batch.answers(results)
            }))
            .build()
            .unwrap();
        let mut single = traced("single", 0xa1, 0xb1);
        single.source = "checkout".into();
        single.event_type = "order.v1".into();
        single.spec_version = "1.0".into();
        single.extensions.insert("subject", "o-1");
        server.dispatch(single).await;
        let mut poison = traced("poison", 0xa4, 0xb4);
        poison.data = b"0".as_slice().into();
        server.dispatch(poison).await;
        let mut undecodable = traced("undecodable", 0xa5, 0xb5);
        undecodable.data = b"\"text\"".as_slice().into();
        server.dispatch(undecodable).await;
        let batched =
            |id: &str, trace: u128, parent: u64| Envelope { topic: "batched".into(), ..traced(id, trace, parent) };
        server.dispatch_bulk(vec![batched("bulk-1", 0xa2, 0xb2), batched("bulk-2", 0xa3, 0xb3)]).await;
    });
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let by_message = |id: &str| {
        spans
            .iter()
            .find(|s| attributes(s).get("messaging.message.id").map(String::as_str) == Some(id))
            .unwrap_or_else(|| panic!("no span of {id}: {spans:?}"))
    };

    let single = by_message("single");
    assert_eq!(single.name, "process orders");
    assert_eq!(single.span_kind, SpanKind::Consumer);
    assert_eq!(single.status, Status::Unset);
    let single = attributes(single);
    for (key, value) in [
        ("messaging.system", "dapr"),
        ("messaging.operation.type", "process"),
        ("messaging.operation.name", "process"),
        ("messaging.destination.name", "orders"),
        ("cloudevents.event_id", "single"),
        ("cloudevents.event_source", "checkout"),
        ("cloudevents.event_type", "order.v1"),
        ("cloudevents.event_spec_version", "1.0"),
        ("cloudevents.event_subject", "o-1"),
    ] {
        assert_eq!(single.get(key).map(String::as_str), Some(value), "{key} in {single:?}");
    }

    for (id, error_type) in [("poison", "handler"), ("undecodable", "decode")] {
        let span = by_message(id);
        assert!(matches!(&span.status, Status::Error { description } if description.contains(error_type)), "{span:?}");
        assert_eq!(attributes(span).get("error.type").map(String::as_str), Some(error_type), "{id}");
    }

    let batch =
        spans.iter().find(|s| attributes(s).get("messaging.batch.message_count").map(String::as_str) == Some("2"));
    let batch = batch.unwrap_or_else(|| panic!("no span of the bulk delivery: {spans:?}"));
    assert_eq!(batch.name, "process batched");
    assert_eq!(batch.links.len(), 2, "linked to each entry's trace");
}

#[test]
fn publishing_is_a_producer_span_whose_context_daprd_receives() {
    use eventbus::publisher::{DaprPublisher, Message, Publisher};
    use eventbus::testing::TestSidecar;
    use opentelemetry::trace::SpanKind;

    let Traced { exporter, provider, runtime, _guard } = Traced::new();
    let sidecar = runtime.block_on(async {
        let sidecar = TestSidecar::start_api().await.unwrap();
        let publisher =
            DaprPublisher::connect_to(sidecar.endpoint()).await.unwrap().retries(1, std::time::Duration::ZERO);
        publisher.publish(Message::json("pubsub", "orders", &1).unwrap()).await.unwrap();
        sidecar.fail_publishes(1, eventbus::status::Code::Unavailable);
        publisher.publish(Message::json("pubsub", "orders", &2).unwrap()).await.unwrap_err();
        sidecar
    });
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let publishes: Vec<_> = spans.iter().filter(|s| s.name == "publish orders").collect();
    assert_eq!(publishes.len(), 2, "{spans:?}");
    for span in &publishes {
        assert_eq!(span.span_kind, SpanKind::Producer);
        let attributes = attributes(span);
        assert_eq!(attributes.get("messaging.operation.type").map(String::as_str), Some("send"));
        assert_eq!(attributes.get("messaging.destination.name").map(String::as_str), Some("orders"));
        assert_eq!(attributes.get("dapr.pubsub.name").map(String::as_str), Some("pubsub"));
    }
    assert_eq!(attributes(publishes[1]).get("error.type").map(String::as_str), Some("UNAVAILABLE"));
    // daprd gets the producer span's context and puts it in the CloudEvent.
    let traceparent = sidecar.published()[0].traceparent.clone();
    let sent = publishes[0].span_context.span_id().to_string();
    assert!(traceparent.as_deref().is_some_and(|t| t.contains(&sent)), "{traceparent:?} names {sent}");
}
