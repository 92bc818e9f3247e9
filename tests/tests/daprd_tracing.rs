//! Under the real daprd with tracing on, a trace goes from the publisher
//! (`DaprPublisher` sends the current span's context) through daprd to the
//! app: the event span has the publisher's trace id, and daprd's delivery
//! span (the `traceparent` header it sends) as parent. Skipped without daprd and
//! redis-server, unless `EVENTBUS_REQUIRE_DAPRD=1`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::daprd::{RESOURCES, TEST_RESOURCES, until_settled};
use common::{builder, start};
use daprd_harness::{self as daprd, Daprd, Redis};
use eventbus::extract::Metadata;
use eventbus::publisher::{DaprPublisher, Message, Publisher};
use eventbus::{Event, Subscription, handler};
use opentelemetry::trace::{SpanId, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use serde_json::json;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

const PUBSUB: &str = "pubsub-redis";

#[tokio::test]
async fn the_event_span_is_a_child_of_daprds_delivery_span() {
    if !daprd::available() {
        return;
    }
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    // The test runs on one thread, so the server's tasks see this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let headers: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = headers.clone();
    let app = start(builder().default_pubsub(PUBSUB).consumer(handler(
        Subscription::new("orders"),
        move |_: Event<serde_json::Value>, metadata: Metadata| {
            let traceparent = metadata.get("traceparent").map(str::to_owned);
            seen.lock().unwrap().extend(traceparent);
            async {}
        },
    )))
    .await;
    let redis = Redis::start().await.unwrap();
    let daprd = Daprd::builder("traced")
        .app_port(app.address.port())
        .resources(RESOURCES)
        .resources(format!("{TEST_RESOURCES}/tracing/config.yaml"))
        .replace_in_resources("localhost:6379", redis.address())
        .start()
        .await
        .unwrap();
    daprd.wait_for_subscriptions(1).await.unwrap();

    // The publisher's span: DaprPublisher sends its context with the call.
    let publisher = DaprPublisher::connect_to(daprd.grpc_endpoint()).await.unwrap();
    let publish = tracing::info_span!("publish");
    let message = Message::json(PUBSUB, "orders", &json!({"order_id": "o-1"})).unwrap();
    publisher.publish(message).instrument(publish.clone()).await.unwrap();
    let published = publish.context().span().span_context().clone();
    until_settled(&redis, "orders", "traced").await;
    provider.force_flush().unwrap();

    let header = headers.lock().unwrap().first().cloned().expect("daprd sent a traceparent header");
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(parts[1], published.trace_id().to_string(), "daprd continued the publisher's trace: {header}");
    assert_ne!(parts[2], published.span_id().to_string(), "the header names daprd's own span: {header}");
    let spans = exporter.get_finished_spans().unwrap();
    let ours = spans.iter().find(|s| s.name == "process orders").expect("the event span was exported");
    assert_eq!(ours.span_context.trace_id(), published.trace_id(), "the publisher's trace");
    assert_eq!(ours.parent_span_id, SpanId::from_hex(parts[2]).unwrap(), "a child of daprd's delivery span");
    assert_eq!(ours.span_kind, opentelemetry::trace::SpanKind::Consumer);
    // The conventions' attributes, from what daprd really sends.
    let attributes: std::collections::HashMap<String, String> =
        ours.attributes.iter().map(|kv| (kv.key.to_string(), kv.value.to_string())).collect();
    for (key, value) in [
        ("messaging.system", Some("dapr")),
        ("messaging.operation.type", Some("process")),
        ("messaging.destination.name", Some("orders")),
        ("dapr.pubsub.name", Some(PUBSUB)),
        ("cloudevents.event_spec_version", Some("1.0")),
        ("cloudevents.event_type", Some("com.dapr.event.sent")),
    ] {
        assert_eq!(attributes.get(key).map(String::as_str), value, "{key} in {attributes:?}");
    }
    for key in ["messaging.message.id", "cloudevents.event_id", "cloudevents.event_source"] {
        assert!(attributes.get(key).is_some_and(|v| !v.is_empty()), "{key} in {attributes:?}");
    }
    let producer = spans.iter().find(|s| s.name == "publish orders").expect("the producer span was exported");
    assert_eq!(producer.span_kind, opentelemetry::trace::SpanKind::Producer);
    assert_eq!(producer.span_context.trace_id(), published.trace_id());
}
