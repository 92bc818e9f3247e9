//! Streaming subscriptions under the real daprd: the app has no port and
//! dials daprd's gRPC API. Delivery, RETRY delivered again, DROP to the
//! dead-letter topic, and a daprd killed and restarted mid-stream with no
//! event lost. Skipped without daprd and redis-server, unless
//! `EVENTBUS_REQUIRE_DAPRD=1`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use common::builder;
use common::daprd::{RESOURCES, Seen, by_kind, dead_letter_ids, order_event, until_settled};
use eventbus::server::DaprEndpoint;
use eventbus::testing::daprd::{self, Daprd, Redis, eventually};
use eventbus::{Event, Outcome, Subscription, handler};
use serde_json::json;
use tokio::sync::{Semaphore, oneshot};

const PUBSUB: &str = "pubsub-redis";

/// daprd without an app channel, on a Redis of its own.
async fn daprd_without_app(app_id: &str) -> (Redis, Daprd) {
    let redis = Redis::start().await.unwrap();
    let daprd = Daprd::builder(app_id)
        .resources(RESOURCES)
        .replace_in_resources("localhost:6379", redis.address())
        .start()
        .await
        .unwrap();
    (redis, daprd)
}

/// Serves `server` by streaming subscriptions to `daprd`, until the sender fires.
async fn serve_streaming(
    server: eventbus::Server,
    daprd: &Daprd,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<Result<(), eventbus::Error>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let endpoint = DaprEndpoint::new(daprd.grpc_endpoint());
    let app = tokio::spawn(server.serve_streaming(endpoint, async {
        let _ = stopped.await;
    }));
    daprd.wait_for_subscriptions(1).await.unwrap();
    (stop, app)
}

#[tokio::test]
async fn streamed_events_are_delivered_retried_and_dead_lettered_by_daprd() {
    if !daprd::available() {
        return;
    }
    let (redis, daprd) = daprd_without_app("streaming").await;
    let seen = Seen::default();
    let server = builder()
        .default_pubsub(PUBSUB)
        .consumer(handler(Subscription::new("orders").dead_letter("orders.dlq"), by_kind(&seen)))
        .build()
        .unwrap();
    let (stop, app) = serve_streaming(server, &daprd).await;

    for (id, kind) in [("s-1", "ok"), ("s-2", "flaky"), ("s-3", "poison")] {
        daprd.publish_cloud_event(PUBSUB, "orders", &order_event(id, json!({"kind": kind}))).await.unwrap();
    }
    until_settled(&redis, "orders", "streaming").await;
    assert_eq!(dead_letter_ids(&redis, "orders.dlq").await, vec!["s-3"]);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen["s-1"], [Outcome::Success]);
    assert_eq!(seen["s-2"], [Outcome::Retry, Outcome::Success], "RETRY is delivered again on the stream");
    assert_eq!(seen["s-3"], [Outcome::Drop]);

    let _ = stop.send(());
    app.await.unwrap().unwrap();
}

#[tokio::test]
async fn daprd_killed_mid_stream_loses_nothing() {
    if !daprd::available() {
        return;
    }
    let (_redis, mut daprd) = daprd_without_app("streaming-restart").await;
    // Handlers wait for a permit: the test decides how many finish before the kill.
    let gate = Arc::new(Semaphore::new(0));
    // Completed handler calls per event id.
    let handled: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let server = builder()
        .default_pubsub(PUBSUB)
        .consumer(handler(Subscription::new("orders"), {
            let (gate, handled) = (gate.clone(), handled.clone());
            move |event: Event<serde_json::Value>| {
                let (gate, handled) = (gate.clone(), handled.clone());
                async move {
                    gate.acquire().await.unwrap().forget();
                    *handled.lock().unwrap().entry(event.id().to_owned()).or_default() += 1;
                }
            }
        }))
        .build()
        .unwrap();
    let (stop, app) = serve_streaming(server, &daprd).await;

    let ids = |range: std::ops::Range<u32>| range.map(|n| format!("r-{n}")).collect::<Vec<_>>();
    for id in ids(0..30) {
        daprd.publish_cloud_event(PUBSUB, "orders", &order_event(&id, json!({}))).await.unwrap();
    }
    gate.add_permits(10);
    eventually("ten events handled", || async { (handled.lock().unwrap().len() >= 10).then_some(()) }).await;

    // Killed while the other twenty wait in the handler: their answers
    // cannot reach daprd any more.
    let unanswered: BTreeSet<String> =
        ids(0..30).into_iter().filter(|id| !handled.lock().unwrap().contains_key(id)).collect();
    assert_eq!(unanswered.len(), 20);
    daprd.restart().await.unwrap();
    gate.add_permits(1_000);
    daprd.wait_for_subscriptions(1).await.unwrap();
    for id in ids(30..40) {
        daprd.publish_cloud_event(PUBSUB, "orders", &order_event(&id, json!({}))).await.unwrap();
    }
    // Every event is handled, and each one whose answer was lost is delivered
    // again by the restarted daprd on the reopened stream.
    eventually("every event handled, the unanswered ones again", || async {
        let handled = handled.lock().unwrap();
        let all = ids(0..40).iter().all(|id| handled.contains_key(id));
        let again = unanswered.iter().all(|id| handled.get(id).is_some_and(|&n| n >= 2));
        (all && again).then_some(())
    })
    .await;

    let _ = stop.send(());
    app.await.unwrap().unwrap();
}
