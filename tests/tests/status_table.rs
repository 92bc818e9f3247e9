//! Every row of the README's status table (what each situation is
//! answered), over real gRPC.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Order, builder, order, start};
use eventbus::grpc::proto::runtime::TopicEventRequest;
use eventbus::testing::{CloudEvent, Settlement};
use eventbus::{Event, HandlerError, Outcome, Subscription, handler};

fn subscription(topic: &str) -> Subscription {
    Subscription::new(topic).dead_letter(format!("{topic}.dlq"))
}

#[tokio::test]
async fn handler_ok_is_success() {
    let app = start(builder().consumer(handler(subscription("ok"), |event: Event<Order>| async move {
        assert_eq!(event.data.order_id, "o-1");
    })))
    .await;
    let delivery = app.sidecar().await.publish("ok", CloudEvent::json(&order("o-1"))).await.unwrap();
    assert_eq!(delivery.attempts, vec![Ok(Outcome::Success)]);
    assert_eq!(delivery.settlement, Settlement::Acked);
}

#[tokio::test]
async fn transient_error_is_retry_then_dead_letter() {
    let app = start(builder().consumer(handler(subscription("flaky"), |_: Event<Order>| async move {
        Err::<(), _>(std::io::Error::other("database unavailable"))
    })))
    .await;
    let delivery = app.sidecar().await.max_attempts(3).publish("flaky", CloudEvent::json(&order("o-1"))).await.unwrap();
    assert_eq!(delivery.attempts, vec![Ok(Outcome::Retry); 3]);
    assert_eq!(delivery.settlement, Settlement::DeadLettered("flaky.dlq".into()));
}

#[tokio::test]
async fn anyhow_error_is_retry_and_without_dead_letter_goes_back_to_the_broker() {
    let app = start(builder().consumer(handler(Subscription::new("anyhow"), |_: Event<Order>| async move {
        Err::<(), anyhow::Error>(anyhow::anyhow!("later"))
    })))
    .await;
    let delivery =
        app.sidecar().await.max_attempts(2).publish("anyhow", CloudEvent::json(&order("o-1"))).await.unwrap();
    assert_eq!(delivery.attempts, vec![Ok(Outcome::Retry); 2]);
    assert_eq!(delivery.settlement, Settlement::Nacked);
}

#[tokio::test]
async fn permanent_error_is_drop_to_dead_letter_at_once() {
    let app = start(builder().consumer(handler(subscription("poison"), |_: Event<Order>| async move {
        Err::<(), _>(HandlerError::permanent(anyhow::anyhow!("negative total")))
    })))
    .await;
    let delivery = app.sidecar().await.publish("poison", CloudEvent::json(&order("o-1"))).await.unwrap();
    assert_eq!(delivery.attempts, vec![Ok(Outcome::Drop)]);
    assert_eq!(delivery.settlement, Settlement::DeadLettered("poison.dlq".into()));
}

#[tokio::test]
async fn explicit_outcome_is_answered_as_is() {
    let app = start(builder().consumer(handler(subscription("explicit"), |event: Event<Order>| async move {
        if event.data.total > 1000 { Outcome::Drop } else { Outcome::Success }
    })))
    .await;
    let sidecar = app.sidecar().await;
    let small =
        sidecar.publish("explicit", CloudEvent::json(&serde_json::json!({"order_id": "a", "total": 5}))).await.unwrap();
    let big = sidecar.publish("explicit", CloudEvent::json(&order("b"))).await.unwrap();
    assert_eq!(small.settlement, Settlement::Acked);
    assert_eq!(big.attempts, vec![Ok(Outcome::Drop)]);
}

#[tokio::test]
async fn undecodable_payload_is_drop_without_calling_the_handler() {
    let app = start(builder().consumer(handler(subscription("typed"), |_: Event<Order>| async move {
        if true {
            panic!("must not be called with a bad payload");
        }
    })))
    .await;
    let sidecar = app.sidecar().await;
    let missing_field =
        sidecar.publish("typed", CloudEvent::json(&serde_json::json!({"order_id": "o-1"}))).await.unwrap();
    let not_json = sidecar.publish("typed", CloudEvent::bytes("application/json", b"{oops".to_vec())).await.unwrap();
    for delivery in [missing_field, not_json] {
        assert_eq!(delivery.attempts, vec![Ok(Outcome::Drop)]);
        assert_eq!(delivery.settlement, Settlement::DeadLettered("typed.dlq".into()));
    }
}

fn raw_event(topic: &str, path: &str) -> TopicEventRequest {
    TopicEventRequest {
        id: "raw-1".into(),
        topic: topic.into(),
        pubsub_name: "pubsub".into(),
        path: path.into(),
        data: br#"{"order_id":"o","total":1}"#.to_vec(),
        data_content_type: "application/json".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn unknown_topic_is_drop_by_default_never_unimplemented() {
    let app = start(builder().consumer(handler(Subscription::new("known"), |_: Event<Order>| async {}))).await;
    let sidecar = app.sidecar().await;
    for (topic, path) in [("unknown", "unknown"), ("known", "/no/such/path")] {
        let response = sidecar.app().on_topic_event(raw_event(topic, path)).await.unwrap();
        assert_eq!(Outcome::from_status(response.into_inner().status), Outcome::Drop);
    }
    // An empty path (older sidecars) reaches the default route.
    let response = sidecar.app().on_topic_event(raw_event("known", "")).await.unwrap();
    assert_eq!(Outcome::from_status(response.into_inner().status), Outcome::Success);
}

#[tokio::test]
async fn unknown_topic_can_be_configured_to_retry() {
    let app = start(builder().unknown_topic(Outcome::Retry)).await;
    let response = app.sidecar().await.app().on_topic_event(raw_event("unknown", "unknown")).await.unwrap();
    assert_eq!(Outcome::from_status(response.into_inner().status), Outcome::Retry);
}

#[tokio::test]
async fn panicking_handler_is_retry_and_the_server_keeps_serving() {
    let app = start(builder().consumer(handler(Subscription::new("panics"), |event: Event<Order>| async move {
        if event.data.order_id == "boom" {
            panic!("handler bug");
        }
    })))
    .await;
    let sidecar = app.sidecar().await.max_attempts(2);
    let boom = sidecar.publish("panics", CloudEvent::json(&order("boom"))).await.unwrap();
    assert_eq!(boom.attempts, vec![Ok(Outcome::Retry); 2]);
    let fine = sidecar.publish("panics", CloudEvent::json(&order("fine"))).await.unwrap();
    assert_eq!(fine.settlement, Settlement::Acked);
}

#[tokio::test]
async fn handler_over_its_timeout_is_retry() {
    let app = start(
        builder().consumer(handler(Subscription::new("slow").timeout(Duration::from_millis(50)), |_: Event<Order>| {
            std::future::pending::<()>()
        })),
    )
    .await;
    let delivery = app.sidecar().await.max_attempts(1).publish("slow", CloudEvent::json(&order("o"))).await.unwrap();
    assert_eq!(delivery.attempts, vec![Ok(Outcome::Retry)]);
}

#[tokio::test]
async fn full_concurrency_limit_is_retry() {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let (started_tx, started_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let handler_gate = gate.clone();
    let app =
        start(builder().consumer(handler(Subscription::new("limited").concurrency(1), move |_: Event<Order>| {
            let gate = handler_gate.clone();
            let started = started_tx.clone();
            async move {
                let _ = started.send(());
                let _permit = gate.acquire().await;
            }
        })))
        .await;
    let sidecar = std::sync::Arc::new(app.sidecar().await.max_attempts(1));
    let first = tokio::spawn({
        let sidecar = sidecar.clone();
        async move { sidecar.publish("limited", CloudEvent::json(&order("first"))).await.unwrap() }
    });
    let mut started_rx = started_rx;
    started_rx.recv().await.unwrap();
    let second = sidecar.publish("limited", CloudEvent::json(&order("second"))).await.unwrap();
    assert_eq!(second.attempts, vec![Ok(Outcome::Retry)]);
    gate.add_permits(1);
    assert_eq!(first.await.unwrap().settlement, Settlement::Acked);
}

#[tokio::test]
async fn events_without_an_id_are_drop_and_never_reach_the_handler() {
    for (configured, want) in [(None, Outcome::Drop), (Some(Outcome::Retry), Outcome::Retry)] {
        let mut server = builder().consumer(handler(Subscription::new("orders"), |_: Event<Order>| async {
            if true {
                panic!("an event without an id must not reach the handler");
            }
        }));
        if let Some(outcome) = configured {
            server = server.missing_id(outcome);
        }
        let app = start(server).await;
        let sidecar = app.sidecar().await;
        // Two different events, both without an id: neither may be taken for the other.
        for total in [1, 2] {
            let mut event = raw_event("orders", "orders");
            event.id = String::new();
            event.data = format!(r#"{{"order_id":"o-{total}","total":{total}}}"#).into_bytes();
            let status = sidecar.app().on_topic_event(event).await.unwrap().into_inner().status;
            assert_eq!(Outcome::from_status(status), want, "configured {configured:?}");
        }
    }
}
