//! `eventbus_events_total` counts every answer with its reason, handlers'
//! and the server's own (no route, no id, too large, unreadable), and the
//! duration histograms render with second-based buckets.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Order, builder, order, start};
use eventbus::grpc::proto::runtime::TopicEventRequest;
use eventbus::middleware::{BoxService, LATENCY_BUCKETS, Request};
use eventbus::outcome::Reason;
use eventbus::publisher::{DaprPublisher, Message, Publisher};
use eventbus::sidecar::DaprEndpoint;
use eventbus::status::Code;
use eventbus::testing::CloudEvent;
use eventbus::testing::TestSidecar;
use eventbus::{Event, HandlerError, Subscription, handler};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower::ServiceExt;

fn raw(topic: &str, id: &str) -> TopicEventRequest {
    TopicEventRequest {
        id: id.into(),
        topic: topic.into(),
        pubsub_name: "pubsub".into(),
        data: br#"{"order_id":"o","total":1}"#.to_vec(),
        data_content_type: "application/json".into(),
        ..Default::default()
    }
}

/// The process-wide recorder, installed once for this test binary.
fn recorder() -> &'static PrometheusHandle {
    static RECORDER: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    RECORDER.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .unwrap()
            .install_recorder()
            .unwrap()
    })
}

#[tokio::test]
async fn publish_attempts_and_stream_reconnects_are_counted() {
    let recorder = recorder();
    let sidecar = TestSidecar::start_api().await.unwrap();
    let publisher = DaprPublisher::connect_to(sidecar.endpoint()).await.unwrap().retries(2, Duration::ZERO);
    sidecar.fail_publishes(1, Code::Unavailable);
    publisher.publish(Message::json("pubsub", "published", &1).unwrap()).await.unwrap();

    let server =
        builder().consumer(handler(Subscription::new("streamed"), |_: Event<Order>| async {})).build().unwrap();
    let serving = tokio::spawn(server.serve(eventbus::Transport::streaming(DaprEndpoint::new(sidecar.endpoint()))));
    sidecar.wait_for_streams(1).await.unwrap();
    sidecar.close_streams();
    sidecar.wait_for_streams(1).await.unwrap();
    serving.abort();

    let rendered = recorder.render();
    for expected in [
        r#"eventbus_publish_attempts_total{pubsub="pubsub",topic="published",outcome="retry"} 1"#,
        r#"eventbus_publish_attempts_total{pubsub="pubsub",topic="published",outcome="success"} 1"#,
        r#"eventbus_stream_reconnects_total{pubsub="pubsub",topic="streamed"} 1"#,
    ] {
        assert!(rendered.contains(expected), "missing {expected} in:\n{rendered}");
    }
}

#[tokio::test]
async fn every_answer_is_counted_with_its_reason() {
    let recorder = recorder();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<()>();
    let handler_gate = gate.clone();
    let mut app = start(
        builder()
            // A layer of the user's that refuses one topic.
            .layer(tower::layer::layer_fn(|inner: BoxService| {
                tower::service_fn(move |request: Request| {
                    let refused = (request.topic() == "closed")
                        .then(|| request.refuse(Code::PermissionDenied, "closed for maintenance"));
                    let inner = inner.clone();
                    async move {
                        match refused {
                            Some(refused) => Ok(refused),
                            None => inner.oneshot(request).await,
                        }
                    }
                })
            }))
            .consumer(handler(Subscription::new("closed"), |_: Event<Order>| async {}))
            .consumer(handler(Subscription::new("limited").concurrency(1), move |_: Event<Order>| {
                let (gate, started) = (handler_gate.clone(), started_tx.clone());
                async move {
                    let _ = started.send(());
                    let _permit = gate.acquire().await;
                }
            }))
            .max_message_size(1024)
            .consumer(handler(Subscription::new("ok"), |_: Event<Order>| async {}))
            .consumer(handler(Subscription::new("fails"), |_: Event<Order>| async {
                Err::<(), _>(std::io::Error::other("database unavailable"))
            }))
            .consumer(handler(Subscription::new("poison"), |_: Event<Order>| async {
                Err::<(), _>(HandlerError::permanent("negative total"))
            }))
            .consumer(handler(Subscription::new("panics"), |_: Event<Order>| async {
                if true {
                    panic!("handler bug");
                }
            }))
            .consumer(handler(Subscription::new("slow").timeout(Duration::from_millis(20)), |_: Event<Order>| {
                std::future::pending::<()>()
            })),
    )
    .await;
    let sidecar = app.sidecar().await;
    for topic in ["ok", "fails", "poison", "panics", "slow", "closed"] {
        sidecar.publish(topic, CloudEvent::json(&order("o-1"))).await.unwrap();
    }
    sidecar.publish("ok", CloudEvent::json(&serde_json::json!({"order_id": 7}))).await.unwrap();
    sidecar.publish("ok", CloudEvent::bytes("application/json", vec![b' '; 2048])).await.unwrap();
    sidecar.app().on_topic_event(raw("ok", "")).await.unwrap();
    sidecar.app().on_topic_event(raw("nobody-subscribes", "e-1")).await.unwrap();
    // One event holds the only permit: the next is refused, and once the
    // server drains, the one after that too.
    let sidecar = std::sync::Arc::new(sidecar);
    let held = tokio::spawn({
        let sidecar = sidecar.clone();
        async move { sidecar.publish("limited", CloudEvent::json(&order("held"))).await.unwrap() }
    });
    started.recv().await.unwrap();
    sidecar.publish("limited", CloudEvent::json(&order("refused"))).await.unwrap();
    app.signal_shutdown();
    app.until_draining().await;
    sidecar.publish("limited", CloudEvent::json(&order("late"))).await.unwrap();
    gate.add_permits(1);
    held.await.unwrap();

    let rendered = recorder.render();
    for (topic, outcome, reason) in [
        ("ok", "success", Reason::Handled),
        ("fails", "retry", Reason::Handler),
        ("poison", "drop", Reason::Handler),
        ("panics", "retry", Reason::Panic),
        ("slow", "retry", Reason::Timeout),
        ("closed", "retry", Reason::Refused),
        ("ok", "drop", Reason::Decode),
        ("ok", "drop", Reason::Oversize),
        ("ok", "drop", Reason::MissingId),
        ("nobody-subscribes", "drop", Reason::UnknownRoute),
        ("limited", "success", Reason::Handled),
        ("limited", "retry", Reason::Overload),
        ("limited", "retry", Reason::Draining),
    ] {
        let line = format!(
            r#"eventbus_events_total{{pubsub="pubsub",topic="{topic}",outcome="{outcome}",reason="{reason}"}} 1"#
        );
        assert!(rendered.contains(&line), "missing {line} in:\n{rendered}");
    }
    for expected in [
        r#"eventbus_handler_duration_seconds_bucket{pubsub="pubsub",topic="ok",le="0.0005"}"#,
        "# TYPE eventbus_handler_duration_seconds histogram",
        "# TYPE eventbus_events_total counter",
        r#"eventbus_handler_panics_total{pubsub="pubsub",topic="panics"} 1"#,
    ] {
        assert!(rendered.contains(expected), "missing {expected} in:\n{rendered}");
    }
}
