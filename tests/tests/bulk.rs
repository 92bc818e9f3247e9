//! Bulk delivery: every entry gets a status, through the same pipeline.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Order, builder, order, start};
use eventbus::grpc::proto::runtime::topic_event_bulk_request_entry::Event as BulkEvent;
use eventbus::grpc::proto::runtime::{TopicEventBulkRequest, TopicEventBulkRequestEntry};
use eventbus::handler::Answers;
use eventbus::testing::{Attempt, CloudEvent, Settlement};
use eventbus::{Batch, Event, HandlerError, Outcome, Subscription, handler};

fn mixed() -> eventbus::ServerBuilder {
    builder().consumer(handler(
        Subscription::new("orders").dead_letter("orders.dlq").bulk(100, 50),
        |event: Event<Order>| async move {
            match event.data.order_id.as_str() {
                "retry" => Err(HandlerError::transient(anyhow::anyhow!("busy"))),
                "drop" => Err(HandlerError::permanent(anyhow::anyhow!("poison"))),
                "panic" => panic!("bug"),
                _ => Ok(()),
            }
        },
    ))
}

#[tokio::test]
async fn mixed_outcomes_and_an_undecodable_entry_each_get_their_status() {
    let app = start(mixed()).await;
    let sidecar = app.sidecar().await.max_attempts(2);
    let events = vec![
        CloudEvent::json(&order("ok-1")).id("e1"),
        CloudEvent::json(&order("retry")).id("e2"),
        CloudEvent::json(&order("drop")).id("e3"),
        CloudEvent::bytes("application/json", b"not json".to_vec()).id("e4"),
        CloudEvent::json(&order("panic")).id("e5"),
        CloudEvent::json(&order("ok-2")).id("e6"),
    ];
    let deliveries = sidecar.publish_bulk("orders", events).await.unwrap();
    let got: Vec<(&str, &[Attempt], &Settlement)> =
        deliveries.iter().map(|d| (d.event_id.as_str(), d.attempts.as_slice(), &d.settlement)).collect();
    let dlq = Settlement::DeadLettered("orders.dlq".into());
    assert_eq!(
        got,
        vec![
            ("e1", &[Ok(Outcome::Success)][..], &Settlement::Acked),
            ("e2", &[Ok(Outcome::Retry), Ok(Outcome::Retry)][..], &dlq),
            ("e3", &[Ok(Outcome::Drop)][..], &dlq),
            ("e4", &[Ok(Outcome::Drop)][..], &dlq),
            ("e5", &[Ok(Outcome::Retry), Ok(Outcome::Retry)][..], &dlq),
            ("e6", &[Ok(Outcome::Success)][..], &Settlement::Acked),
        ]
    );
}

#[tokio::test]
async fn every_entry_id_is_answered_including_raw_and_empty_entries() {
    let app = start(mixed()).await;
    let sidecar = app.sidecar().await;
    let entry = |id: &str, event: Option<BulkEvent>| TopicEventBulkRequestEntry {
        entry_id: id.into(),
        content_type: "application/json".into(),
        metadata: Default::default(),
        event,
    };
    let request = TopicEventBulkRequest {
        id: "b1".into(),
        entries: vec![
            entry("raw-ok", Some(BulkEvent::Bytes(serde_json::to_vec(&order("x")).unwrap()))),
            entry("raw-bad", Some(BulkEvent::Bytes(b"\xff".to_vec()))),
            entry("empty", None),
        ],
        topic: "orders".into(),
        pubsub_name: "pubsub".into(),
        path: "orders".into(),
        ..Default::default()
    };
    let response = sidecar.app().on_bulk_topic_event(request.clone()).await.unwrap().into_inner();
    let statuses: Vec<(String, Outcome)> =
        response.statuses.into_iter().map(|s| (s.entry_id, Outcome::from_status(s.status))).collect();
    assert_eq!(
        statuses,
        vec![("raw-ok".into(), Outcome::Success), ("raw-bad".into(), Outcome::Drop), ("empty".into(), Outcome::Drop)]
    );

    // The Alpha1 RPC, which daprd ≤ 1.17 calls, answers the same.
    #[allow(deprecated)]
    let alpha = sidecar.app_alpha().on_bulk_topic_event_alpha1(request).await.unwrap().into_inner();
    assert_eq!(alpha.statuses.len(), 3);
}

#[tokio::test]
async fn bulk_to_an_unknown_topic_drops_every_entry() {
    let app = start(mixed()).await;
    let request = TopicEventBulkRequest {
        id: "b2".into(),
        entries: vec![TopicEventBulkRequestEntry {
            entry_id: "a".into(),
            event: Some(BulkEvent::Bytes(b"{}".to_vec())),
            ..Default::default()
        }],
        topic: "nobody".into(),
        pubsub_name: "pubsub".into(),
        ..Default::default()
    };
    let response = app.sidecar().await.app().on_bulk_topic_event(request).await.unwrap().into_inner();
    assert_eq!(response.statuses.len(), 1);
    assert_eq!(Outcome::from_status(response.statuses[0].status), Outcome::Drop);
}

mod batches {
    use super::*;

    fn app(behaviour: &'static str) -> eventbus::ServerBuilder {
        builder().consumer(
            handler(
                Subscription::new("orders").dead_letter("orders.dlq").bulk(100, 50),
                move |events: Batch<Order>| async move {
                    match behaviour {
                        "panic" => panic!("batch bug"),
                        "hang" => std::future::pending::<Answers>().await,
                        _ => events.answers(events.iter().map(|e| match e.data.order_id.as_str() {
                            "retry" => Outcome::Retry,
                            "drop" => Outcome::Drop,
                            _ => Outcome::Success,
                        })),
                    }
                },
            )
            .name("orders_batch"),
        )
    }

    #[tokio::test]
    async fn a_batch_consumer_answers_every_entry_and_undecodable_ones_are_dropped() {
        let app = start(app("normal")).await;
        let sidecar = app.sidecar().await.max_attempts(1);
        let events = vec![
            CloudEvent::json(&order("ok")).id("b1"),
            CloudEvent::bytes("application/json", b"{".to_vec()).id("b2"),
            CloudEvent::json(&order("retry")).id("b3"),
            CloudEvent::json(&order("drop")).id("b4"),
            CloudEvent::json(&order("ok")).id("b5"),
        ];
        let deliveries = sidecar.publish_bulk("orders", events).await.unwrap();
        let attempts: Vec<Attempt> = deliveries.iter().map(|d| d.attempts[0]).collect();
        assert_eq!(
            attempts,
            vec![Ok(Outcome::Success), Ok(Outcome::Drop), Ok(Outcome::Retry), Ok(Outcome::Drop), Ok(Outcome::Success)]
        );
        // A single event reaches the same consumer as a batch of one.
        let single = sidecar.publish("orders", CloudEvent::json(&order("drop"))).await.unwrap();
        assert_eq!(single.attempts, vec![Ok(Outcome::Drop)]);
    }

    #[tokio::test]
    async fn a_panicking_or_hanging_batch_is_retried_whole() {
        for (behaviour, builder) in
            [("panic", app("panic")), ("hang", app("hang").timeout(std::time::Duration::from_millis(50)))]
        {
            let app = start(builder).await;
            let sidecar = app.sidecar().await.max_attempts(1);
            let deliveries = sidecar
                .publish_bulk("orders", vec![CloudEvent::json(&order("a")), CloudEvent::json(&order("b"))])
                .await
                .unwrap();
            for delivery in deliveries {
                assert_eq!(delivery.attempts, vec![Ok(Outcome::Retry)], "{behaviour}");
            }
            // The server keeps serving.
            sidecar.health().await.unwrap();
        }
    }
}

/// daprd appends a `traceparent` and a `grpc-trace-bin` header for every
/// entry of a bulk call; past about 90 entries that is more than HTTP/2's
/// usual 16 KiB header list, which a server must accept (seen under the real
/// daprd: every bulk of 100 failed and was retried forever).
#[tokio::test]
async fn a_bulk_of_a_thousand_entries_with_their_trace_headers_is_accepted() {
    let app = start(mixed()).await;
    let sidecar = app.sidecar().await.max_attempts(1);
    let events: Vec<CloudEvent> = (0..1000).map(|i| CloudEvent::json(&order(&format!("ok-{i}")))).collect();
    let deliveries = sidecar.publish_bulk("orders", events).await.unwrap();
    assert_eq!(deliveries.len(), 1000);
    assert!(deliveries.iter().all(|d| d.settlement == Settlement::Acked), "{:?}", deliveries[0]);
}
