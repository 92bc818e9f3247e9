//! The worker behind the real daprd (built by `tools/daprd/build.sh`), on
//! Redis streams and PostgreSQL. Skipped without daprd, redis-server or
//! `TEST_DATABASE_URL`; a failure instead under `EVENTBUS_REQUIRE_DAPRD=1`
//! and `EVENTBUS_REQUIRE_POSTGRES=1` (CI).
#![allow(clippy::unwrap_used)]

mod common;

use common::daprd::{
    PUBSUB, WorkerProcess, cloud_event, postgres_and_daprd, set_database_reachable, sidecar, until_settled,
};
use customer_worker::customers::anonymous_id;
use customer_worker::store::{Store, Table};
use daprd_harness::eventually;
use eventbus::publisher::{DaprPublisher, Message, Publisher};
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
    let (redis, daprd) = sidecar(&worker, |b| b).await;
    let store = store(&db).await;

    // The five topics, published by DaprPublisher through daprd (the round trip).
    let publisher = DaprPublisher::connect_to(daprd.grpc_endpoint()).await.unwrap();
    let events = [
        ("order.completed", completed("o-1", "c-1", "100.00")),
        ("order.completed", completed("o-2", "c-1", "50.00")),
        (
            "order.cancelled",
            json!({"order_id": "o-2", "customer_id": "c-1", "total_amount": "50.00", "currency": "EUR", "cancelled_at": "2026-11-21T10:00:00Z"}),
        ),
        (
            "order.returned",
            json!({"order_id": "o-1", "customer_id": "c-1", "refund_amount": "30.00", "currency": "EUR", "returned_at": "2026-11-22T10:00:00Z"}),
        ),
        ("auth.login", json!({"customer_id": "c-1", "login_at": "2026-11-23T08:00:00Z"})),
        (
            "auth.password_changed",
            json!({"customer_id": "c-1", "changed_at": "2026-11-23T09:00:00Z", "ip_address": "10.0.0.1"}),
        ),
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
    let twice =
        cloud_event("login-twice", "auth.login", json!({"customer_id": "c-2", "login_at": "2026-11-24T08:00:00Z"}));
    daprd.publish_cloud_event(PUBSUB, "auth.login", &twice).await.unwrap();
    daprd.publish_cloud_event(PUBSUB, "auth.login", &twice).await.unwrap();
    eventually("both deliveries answered", || async {
        (worker.events_total(&["topic=\"auth.login\"", "outcome=\"success\""]).await >= 3).then_some(())
    })
    .await;
    assert_eq!(store.count(Table::Inbox).await.unwrap(), 7, "the duplicate changed nothing");

    // A malformed event (no total_amount) goes to order.cancelled.dlq and changes nothing.
    let malformed =
        cloud_event("bad-1", "order.cancelled", json!({"order_id": "o-9", "customer_id": "c-1", "currency": "EUR"}));
    daprd.publish_cloud_event(PUBSUB, "order.cancelled", &malformed).await.unwrap();
    let dead = redis.wait_for_stream("order.cancelled.dlq", 1).await.unwrap();
    assert_eq!(dead[0].cloud_event().unwrap()["id"], "bad-1");
    assert_eq!(store.count(Table::Inbox).await.unwrap(), 7);
    assert_eq!(store.customer("c-1").await.unwrap().unwrap(), customer);

    // The sixth topic: customer.deleted erases c-1 (figures kept under an
    // anonymous key), and a later login for c-1 goes to its dead-letter topic.
    let erase = cloud_event(
        "erase-c-1",
        "customer.deleted",
        json!({"customer_id": "c-1", "deleted_at": "2026-11-25T08:00:00Z"}),
    );
    daprd.publish_cloud_event(PUBSUB, "customer.deleted", &erase).await.unwrap();
    let anonymous = eventually("c-1 erased", || async { store.customer(&anonymous_id("erase-c-1")).await.ok()? }).await;
    assert_eq!((anonymous.total_spent_minor, anonymous.last_login_at), (7000, None));
    assert!(store.customer("c-1").await.unwrap().is_none());
    assert_eq!(store.count(Table::SecurityEvents).await.unwrap(), 0, "c-1's security log is gone");
    let late =
        cloud_event("late-login", "auth.login", json!({"customer_id": "c-1", "login_at": "2026-11-26T08:00:00Z"}));
    daprd.publish_cloud_event(PUBSUB, "auth.login", &late).await.unwrap();
    let dead = redis.wait_for_stream("auth.login.dlq", 1).await.unwrap();
    assert_eq!(dead[0].cloud_event().unwrap()["id"], "late-login");
}

#[tokio::test]
async fn a_bulk_delivery_settles_each_entry_on_its_own() {
    let Some(db) = postgres_and_daprd().await else { return };
    let worker = WorkerProcess::start(&db, &[]).await;
    let (redis, daprd) = sidecar(&worker, |b| b).await;
    let store = store(&db).await;

    // 300 orders in one bulk publish; daprd's bulk subscriber hands them to
    // the worker in batches of up to 100 (the component's concurrency and
    // the subscription's max_messages), each call carrying two trace headers
    // per entry. The fifth order has an amount that can never be read.
    let mut batch: Vec<serde_json::Value> = (0..300)
        .map(|i| cloud_event(&format!("bulk-{i}"), "order.completed", completed(&format!("o-{i}"), "c-1", "10.00")))
        .collect();
    batch[4] = cloud_event("bulk-4", "order.completed", completed("o-4", "c-1", "ten euros"));
    daprd.publish_bulk(PUBSUB, "order.completed", &batch).await.unwrap();

    let dead = redis.wait_for_stream("order.completed.dlq", 1).await.unwrap();
    assert_eq!(dead.iter().map(|e| e.cloud_event().unwrap()["id"].clone()).collect::<Vec<_>>(), vec!["bulk-4"]);
    let customer = eventually("the 299 good entries applied", || async {
        let customer = store.customer("c-1").await.ok()??;
        (customer.order_count == 299).then_some(customer)
    })
    .await;
    until_settled(&redis, "order.completed").await;
    assert_eq!(customer.total_spent_minor, 299_000);
    assert_eq!(store.count(Table::Inbox).await.unwrap(), 299, "each good entry once, the bad one never");
}

fn login(customer: &str, at: &str) -> serde_json::Value {
    json!({"customer_id": customer, "login_at": at})
}

#[tokio::test]
async fn a_database_outage_is_retried_by_daprd_and_applied_once() {
    let Some(db) = postgres_and_daprd().await else { return };
    let worker = WorkerProcess::start(&db, &[]).await;
    let (redis, daprd) = sidecar(&worker, |b| b).await;

    set_database_reachable(&db, false).await;
    let event = cloud_event("outage-1", "auth.login", login("c-1", "2026-11-24T08:00:00Z"));
    daprd.publish_cloud_event(PUBSUB, "auth.login", &event).await.unwrap();
    eventually("a RETRY answered while the database is gone", || async {
        (worker.events_total(&["topic=\"auth.login\"", "outcome=\"retry\""]).await >= 1).then_some(())
    })
    .await;
    set_database_reachable(&db, true).await;

    // daprd's resiliency policy delivers it again; it lands once.
    let store = store(&db).await;
    eventually("the login applied after the outage", || async {
        (store.customer("c-1").await.ok()??.last_login_at.is_some()).then_some(())
    })
    .await;
    until_settled(&redis, "auth.login").await;
    assert_eq!(store.count(Table::Inbox).await.unwrap(), 1);
    assert!(redis.stream("auth.login.dlq").await.unwrap().is_empty(), "retried, not dead-lettered");
}

#[tokio::test]
async fn with_app_health_checks_daprd_pauses_while_the_database_is_gone_and_loses_nothing() {
    let Some(db) = postgres_and_daprd().await else { return };
    let worker = WorkerProcess::start(&db, &[]).await;
    let (redis, daprd) = sidecar(&worker, |b| {
        b.arg("--enable-app-health-check").arg("--app-health-probe-interval=1").arg("--app-health-threshold=1")
    })
    .await;
    let store = store(&db).await;

    set_database_reachable(&db, false).await;
    eventually("daprd sees the app unhealthy", || async {
        daprd.log().contains("App entered un-healthy status").then_some(())
    })
    .await;
    for i in 0..5 {
        let event = cloud_event(&format!("paused-{i}"), "auth.login", login(&format!("c-{i}"), "2026-11-24T08:00:00Z"));
        daprd.publish_cloud_event(PUBSUB, "auth.login", &event).await.unwrap();
    }
    // Two more failed probes later, daprd has still not delivered them.
    let probes = worker.log().matches("HealthCheck: not ready").count();
    eventually("two more health probes", || async {
        (worker.log().matches("HealthCheck: not ready").count() >= probes + 2).then_some(())
    })
    .await;
    assert_eq!(worker.events_total(&["topic=\"auth.login\""]).await, 0, "nothing delivered while unhealthy");

    set_database_reachable(&db, true).await;
    eventually("daprd sees the app healthy again", || async {
        daprd.log().matches("App entered healthy status").nth(1).map(|_| ())
    })
    .await;
    until_settled(&redis, "auth.login").await;
    eventually("the five logins applied", || async { (store.count(Table::Inbox).await.ok()? == 5).then_some(()) })
        .await;
    assert!(redis.stream("auth.login.dlq").await.unwrap().is_empty());
}

#[tokio::test]
async fn sigterm_under_a_steady_stream_then_a_restart_applies_every_event_once() {
    const EVENTS: usize = 400;
    let Some(db) = postgres_and_daprd().await else { return };
    let mut worker = WorkerProcess::start(&db, &[]).await;
    let (redis, daprd) = sidecar(&worker, |b| {
        b.arg("--enable-app-health-check").arg("--app-health-probe-interval=1").arg("--app-health-threshold=1")
    })
    .await;
    let store = store(&db).await;

    // A steady stream: every other event a bulk-delivered order, the others single password changes.
    let publisher = DaprPublisher::connect_to(daprd.grpc_endpoint()).await.unwrap();
    let stream = tokio::spawn(async move {
        for i in 0..EVENTS {
            let message = if i % 2 == 0 {
                Message::json(PUBSUB, "order.completed", &completed(&format!("o-{i}"), "c-1", "1.00"))
            } else {
                Message::json(
                    PUBSUB,
                    "auth.password_changed",
                    &json!({"customer_id": "c-1", "changed_at": "2026-11-23T09:00:00Z"}),
                )
            };
            publisher.publish(message.unwrap()).await.unwrap();
            // Pacing the producer, not waiting for the consumer.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });

    eventually("a quarter of the stream applied", || async {
        (store.count(Table::Inbox).await.ok()? >= (EVENTS / 4) as i64).then_some(())
    })
    .await;
    let status = worker.terminate().await;
    assert!(status.success(), "the worker drains and exits 0 on SIGTERM: {status}\n{}", worker.log());
    let applied_before_restart = store.count(Table::Inbox).await.unwrap();
    worker.restart().await;
    stream.await.unwrap();

    eventually("every event applied", || async {
        (store.count(Table::Inbox).await.ok()? == EVENTS as i64).then_some(())
    })
    .await;
    until_settled(&redis, "order.completed").await;
    until_settled(&redis, "auth.password_changed").await;
    let customer = store.customer("c-1").await.unwrap().unwrap();
    assert_eq!((customer.order_count, customer.total_spent_minor), ((EVENTS / 2) as i64, (EVENTS / 2 * 100) as i64));
    assert_eq!(store.count(Table::SecurityEvents).await.unwrap(), (EVENTS / 2) as i64);
    assert_eq!(store.count(Table::Inbox).await.unwrap(), EVENTS as i64, "nothing applied twice");
    for dlq in ["order.completed.dlq", "auth.password_changed.dlq"] {
        assert!(redis.stream(dlq).await.unwrap().is_empty(), "{dlq}: nothing dead-lettered");
    }
    eprintln!("applied before the restart: {applied_before_restart} of {EVENTS}");
}

/// Valid events dead-lettered by an outage longer than daprd's retries (a
/// retry budget of 2 s here, `tests/resources/short-retries`, so the test
/// need not outlast the shipped minutes) come back with `redrive`: listed by
/// a dry run that changes nothing, re-driven by `--apply` (only those
/// chosen), applied once, and a second re-drive of one of them changes
/// nothing. A poison event stays on the dead-letter topic.
#[tokio::test]
async fn dead_letters_are_listed_then_redriven_once_and_poison_stays() {
    use customer_worker::redrive::{Options, Summary, run};
    use std::time::Duration;
    let Some(db) = postgres_and_daprd().await else { return };
    let worker = WorkerProcess::start(&db, &[]).await;
    let resources = common::daprd::RESOURCES;
    let short_retries = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/resources/short-retries/resiliency.yaml");
    let (redis, daprd) = common::daprd::sidecar_with(&worker, |b| {
        b.resources(format!("{resources}/pubsub-redis.yaml"))
            .resources(format!("{resources}/config.yaml"))
            .resources(short_retries)
    })
    .await;
    let store = store(&db).await;

    // One poison event (no login time) and five valid logins while the database is gone.
    let poison = cloud_event("poison", "auth.login", json!({"customer_id": "c-9"}));
    daprd.publish_cloud_event(PUBSUB, "auth.login", &poison).await.unwrap();
    set_database_reachable(&db, false).await;
    let valid: Vec<_> = (0..5)
        .map(|i| cloud_event(&format!("v-{i}"), "auth.login", login(&format!("c-{i}"), "2026-11-24T08:00:00Z")))
        .collect();
    for event in &valid {
        daprd.publish_cloud_event(PUBSUB, "auth.login", event).await.unwrap();
    }
    redis.wait_for_stream("auth.login.dlq", 6).await.unwrap();
    set_database_reachable(&db, true).await;

    let mut config = common::config(&db);
    config.server.dapr_grpc_endpoint = Some(daprd.grpc_endpoint());
    // Long enough for the events a run left in flight to come back (the
    // local component's processingTimeout, 5 s, and redeliverInterval, 1 s),
    // with room for a loaded machine.
    let idle = Duration::from_secs(12);
    let topics = vec!["auth.login".to_owned()];
    let valid_ids: Vec<String> = (0..5).map(|i| format!("v-{i}")).collect();

    // The dry run lists all six with why, chooses the five (by id, and by
    // reason: the ones daprd gave up on), changes nothing.
    let mut out = Vec::new();
    let options = Options {
        topics: topics.clone(),
        ids: valid_ids.clone(),
        reason: Some("retries ran out".into()),
        idle,
        ..Options::default()
    };
    let summary = run(&config, &store, &options, &mut out).await.unwrap();
    let listing = String::from_utf8(out).unwrap();
    assert_eq!(summary, Summary { seen: 6, chosen: 5, redriven: 0, failed: 0 }, "{listing}");
    assert_eq!(listing.matches("WOULD-REDRIVE").count(), 5, "{listing}");
    let poison_line = listing.lines().find(|l| l.contains(" poison ")).unwrap_or_default();
    assert!(poison_line.starts_with("KEPT") && poison_line.contains("login_at"), "the worker's reason: {listing}");
    assert_eq!(listing.matches("retries ran out").count(), 5, "{listing}");
    assert_eq!(store.count(Table::Inbox).await.unwrap(), 0, "a dry run re-drives nothing");

    // --apply: the five go back and are applied once; the poison stays.
    let mut out = Vec::new();
    let summary = run(&config, &store, &Options { apply: true, ..options.clone() }, &mut out).await.unwrap();
    let listing = String::from_utf8(out).unwrap();
    assert_eq!(summary, Summary { seen: 6, chosen: 5, redriven: 5, failed: 0 }, "{listing}\n{}", daprd.log());
    eventually("the five logins applied", || async { (store.count(Table::Inbox).await.ok()? == 5).then_some(()) })
        .await;
    until_settled(&redis, "auth.login").await;

    // A second copy of a re-driven event on the dead-letter topic: re-driven
    // again, applied no second time.
    daprd.publish_cloud_event(PUBSUB, "auth.login.dlq", &valid[0]).await.unwrap();
    let mut out = Vec::new();
    let all = Options { topics, apply: true, idle, ..Options::default() };
    let summary = run(&config, &store, &Options { ids: vec!["v-0".into()], ..all.clone() }, &mut out).await.unwrap();
    let listing = String::from_utf8(out).unwrap();
    assert_eq!(summary, Summary { seen: 2, chosen: 1, redriven: 1, failed: 0 }, "{listing}");
    eventually("the second copy answered", || async {
        (worker.events_total(&["topic=\"auth.login\"", "outcome=\"success\""]).await >= 6).then_some(())
    })
    .await;
    until_settled(&redis, "auth.login").await;
    assert_eq!(store.count(Table::Inbox).await.unwrap(), 5, "re-driven twice, applied once");

    // What is left: the poison event only.
    let mut out = Vec::new();
    let summary = run(&config, &store, &Options { apply: false, ..all }, &mut out).await.unwrap();
    assert_eq!(summary, Summary { seen: 1, chosen: 1, redriven: 0, failed: 0 }, "{}", String::from_utf8(out).unwrap());
}
