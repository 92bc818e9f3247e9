//! One status table, run on every transport: the gRPC app channel, the HTTP
//! app channel and streaming subscriptions answer every situation the same.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Order, builder, order};
use eventbus::sidecar::DaprEndpoint;
use eventbus::testing::{CloudEvent, Delivery, Settlement, TestSidecar};
use eventbus::{Event, HandlerError, Outcome, ServerBuilder, Subscription, handler};
use tokio::sync::oneshot;

const ATTEMPTS: u32 = 3;

/// The app of the table: one topic per situation, each with a dead-letter topic.
fn app() -> ServerBuilder {
    let topic = |name: &str| Subscription::new(name).dead_letter(format!("{name}.dlq"));
    builder()
        .consumer(handler(topic("ok"), |_: Event<Order>| async {}))
        .consumer(handler(topic("transient"), |_: Event<Order>| async {
            Err::<(), _>(std::io::Error::other("database unavailable"))
        }))
        .consumer(handler(topic("permanent"), |_: Event<Order>| async {
            Err::<(), _>(HandlerError::permanent(anyhow::anyhow!("negative total")))
        }))
        .consumer(handler(topic("explicit-drop"), |_: Event<Order>| async { Outcome::Drop }))
        .consumer(handler(topic("panics"), |_: Event<Order>| async {
            if true {
                panic!("bug");
            }
        }))
        .consumer(handler(topic("slow").timeout(Duration::from_millis(20)), |_: Event<Order>| {
            std::future::pending::<()>()
        }))
}

/// (topic, event, attempts, settlement): what every transport must answer.
fn table() -> Vec<(&'static str, CloudEvent, Vec<Outcome>, Settlement)> {
    let dlq = |topic: &str| Settlement::DeadLettered(format!("{topic}.dlq"));
    let retried = vec![Outcome::Retry; ATTEMPTS as usize];
    vec![
        ("ok", CloudEvent::json(&order("o-1")), vec![Outcome::Success], Settlement::Acked),
        ("transient", CloudEvent::json(&order("o-2")), retried.clone(), dlq("transient")),
        ("permanent", CloudEvent::json(&order("o-3")), vec![Outcome::Drop], dlq("permanent")),
        ("explicit-drop", CloudEvent::json(&order("o-4")), vec![Outcome::Drop], dlq("explicit-drop")),
        ("ok", CloudEvent::bytes("application/json", b"{oops".to_vec()), vec![Outcome::Drop], dlq("ok")),
        ("ok", CloudEvent::json(&serde_json::json!({"order_id": "no total"})), vec![Outcome::Drop], dlq("ok")),
        ("panics", CloudEvent::json(&order("o-6")), retried.clone(), dlq("panics")),
        ("slow", CloudEvent::json(&order("o-7")), retried, dlq("slow")),
    ]
}

fn check(transport: &str, deliveries: Vec<Delivery>) {
    for ((topic, _, attempts, settlement), delivery) in table().into_iter().zip(deliveries) {
        let expected: Vec<_> = attempts.into_iter().map(Ok).collect();
        assert_eq!((delivery.attempts, delivery.settlement), (expected, settlement), "{transport}: {topic}");
    }
}

#[tokio::test]
async fn grpc_app_channel() {
    let app = common::start(app()).await;
    let sidecar = app.sidecar().await.max_attempts(ATTEMPTS);
    let mut deliveries = Vec::new();
    for (topic, event, _, _) in table() {
        deliveries.push(sidecar.publish(topic, event).await.unwrap());
    }
    check("grpc", deliveries);
}

#[tokio::test]
async fn http_app_channel() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        app().build().unwrap().serve(eventbus::Transport::http_listener(listener)).with_graceful_shutdown(async {
            let _ = stopped.await;
        }),
    );
    let sidecar = TestSidecar::connect_http(address).await.unwrap().max_attempts(ATTEMPTS);
    let mut deliveries = Vec::new();
    for (topic, event, _, _) in table() {
        deliveries.push(sidecar.publish(topic, event).await.unwrap());
    }
    check("http", deliveries);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn streaming_subscriptions() {
    let stub = TestSidecar::start_api().await.unwrap().max_attempts(ATTEMPTS);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        app()
            .build()
            .unwrap()
            .serve(eventbus::Transport::streaming(DaprEndpoint::new(stub.endpoint())))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            }),
    );
    stub.wait_for_streams(6).await.unwrap();
    let mut deliveries = Vec::new();
    for (topic, event, _, _) in table() {
        deliveries.push(stub.publish_to("pubsub", topic, event).await.unwrap());
    }
    check("streaming", deliveries);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
