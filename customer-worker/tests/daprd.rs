//! The worker behind the real daprd (built by `tools/daprd/build.sh`), on
//! Redis streams and PostgreSQL. Skipped without daprd, redis-server or
//! `TEST_DATABASE_URL`; a failure instead under `EVENTBUS_REQUIRE_DAPRD=1`
//! and `EVENTBUS_REQUIRE_POSTGRES=1` (CI).
#![allow(clippy::unwrap_used)]

mod common;

use common::daprd::{PUBSUB, WorkerProcess, cloud_event, postgres_and_daprd, sidecar};
use customer_worker::store::{Store, Table};
use eventbus::publisher::{DaprPublisher, Message, Publisher};
use eventbus::testing::daprd::eventually;
use serde_json::json;

async fn store(db: &common::TestDb) -> Store {
    Store::connect(&common::config(db).data.database).await.unwrap()
}

fn completed(order: &str, customer: &str, amount: &str) -> serde_json::Value {
    json!({"order_id": order, "customer_id": customer, "total_amount": amount, "currency": "EUR", "completed_at": "2026-11-20T10:00:00Z"})
}

#[tokio::test]
async fn every_topic_lands_once_and_poison_goes_to_its_dead_letter_topic() {
    let Some(db) = postgres_and_daprd().await else { return };
    let worker = WorkerProcess::start(&db, &[]).await;
    let (redis, mut daprd) = sidecar(&worker, |b| b).await;
    let store = store(&db).await;

    // The five topics, published by DaprPublisher through daprd (the round trip).
    let publisher = DaprPublisher::connect_to(daprd.grpc_endpoint()).await.unwrap();
    let events = [
        ("order.completed", completed("o-1", "c-1", "100.00")),
        ("order.completed", completed("o-2", "c-1", "50.00")),
        ("order.cancelled", json!({"order_id": "o-2", "customer_id": "c-1", "total_amount": "50.00", "currency": "EUR", "cancelled_at": "2026-11-21T10:00:00Z"})),
        ("order.returned", json!({"order_id": "o-1", "customer_id": "c-1", "refund_amount": "30.00", "currency": "EUR", "returned_at": "2026-11-22T10:00:00Z"})),
        ("auth.login", json!({"customer_id": "c-1", "login_at": "2026-11-23T08:00:00Z"})),
        ("auth.password_changed", json!({"customer_id": "c-1", "changed_at": "2026-11-23T09:00:00Z", "ip_address": "10.0.0.1"})),
    ];
    for (topic, data) in &events {
        publisher.publish(Message::json(PUBSUB, *topic, data).unwrap()).await.unwrap();
    }
    let customer = eventually("the six events applied", || async {
        let inbox = store.count(Table::Inbox).await.ok()?;
        (inbox == 6).then_some(())?;
        store.customer("c-1").await.ok()?
    })
    .await;
    assert_eq!((customer.order_count, customer.cancelled_count, customer.returned_count), (1, 1, 1));
    assert_eq!((customer.total_spent_minor, customer.refunded_minor), (7000, 3000));
    assert_eq!(customer.last_login_at, Some(customer_worker::store::millis("2026-11-23T08:00:00Z".parse().unwrap())));
    assert_eq!(store.count(Table::SecurityEvents).await.unwrap(), 1);

    // The same CloudEvent published twice counts once.
    let twice = cloud_event("login-twice", "auth.login", json!({"customer_id": "c-2", "login_at": "2026-11-24T08:00:00Z"}));
    daprd.publish_cloud_event(PUBSUB, "auth.login", &twice).await.unwrap();
    daprd.publish_cloud_event(PUBSUB, "auth.login", &twice).await.unwrap();
    eventually("both deliveries answered", || async {
        (worker.events_total(&["topic=\"auth.login\"", "outcome=\"success\""]).await >= 3).then_some(())
    })
    .await;
    assert_eq!(store.count(Table::Inbox).await.unwrap(), 7, "the duplicate changed nothing");

    // A malformed event (no total_amount) goes to order.cancelled.dlq and changes nothing.
    let malformed = cloud_event("bad-1", "order.cancelled", json!({"order_id": "o-9", "customer_id": "c-1", "currency": "EUR"}));
    daprd.publish_cloud_event(PUBSUB, "order.cancelled", &malformed).await.unwrap();
    let dead = redis.wait_for_stream("order.cancelled.dlq", 1).await.unwrap();
    assert_eq!(dead[0].cloud_event().unwrap()["id"], "bad-1");
    assert_eq!(store.count(Table::Inbox).await.unwrap(), 7);
    assert_eq!(store.customer("c-1").await.unwrap().unwrap(), customer);
}

#[tokio::test]
async fn a_bulk_delivery_settles_each_entry_on_its_own() {
    let Some(db) = postgres_and_daprd().await else { return };
    let worker = WorkerProcess::start(&db, &[]).await;
    let (redis, mut daprd) = sidecar(&worker, |b| b).await;
    let store = store(&db).await;

    // 40 orders in one bulk publish; daprd's bulk subscriber hands them to
    // the worker in batches (up to 100, or what arrived in 100 ms: 32 and 8
    // when this was written). The fifth has an amount that can never be read.
    let mut batch: Vec<serde_json::Value> = (0..40)
        .map(|i| cloud_event(&format!("bulk-{i}"), "order.completed", completed(&format!("o-{i}"), "c-1", "10.00")))
        .collect();
    batch[4] = cloud_event("bulk-4", "order.completed", completed("o-4", "c-1", "ten euros"));
    daprd.publish_bulk(PUBSUB, "order.completed", &batch).await.unwrap();

    let dead = redis.wait_for_stream("order.completed.dlq", 1).await.unwrap();
    assert_eq!(dead.iter().map(|e| e.cloud_event().unwrap()["id"].clone()).collect::<Vec<_>>(), vec!["bulk-4"]);
    let customer = eventually("the 39 good entries applied", || async {
        let customer = store.customer("c-1").await.ok()??;
        (customer.order_count == 39).then_some(customer)
    })
    .await;
    assert_eq!(customer.total_spent_minor, 39_000);
    assert_eq!(store.count(Table::Inbox).await.unwrap(), 39, "each good entry once, the bad one never");
}
