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
use daprd_harness::{self as daprd, Daprd, Redis, eventually};
use eventbus::sidecar::DaprEndpoint;
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
    let app = tokio::spawn(server.serve(eventbus::Transport::streaming(endpoint)).with_graceful_shutdown(async {
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

/// `STREAM_BURST_PAIRS` (default 150) and the steady load after it (each
/// event takes the handler 20 ms):
/// `STREAM_STEADY_EVENTS` (default 400) at `STREAM_STEADY_RATE` a second (default 200).
fn burst_size() -> (usize, usize, u64) {
    let read = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    (
        read("STREAM_BURST_PAIRS", 150) as usize,
        read("STREAM_STEADY_EVENTS", 400) as usize,
        read("STREAM_STEADY_RATE", 200),
    )
}

/// Pairs of one event id published at once (as a producer that publishes
/// twice, or a broker that redelivers, makes them), then a steady stream,
/// over a streaming subscription with the shipped local resources (their
/// 15 s resiliency timeout). daprd matches streamed answers by id, so the
/// earlier copy of each pair cannot be answered and waits for that timeout
/// (README, "Streaming subscriptions and repeated ids"); the app handles each
/// pair once and answers once. Every event is handled, none is
/// dead-lettered; the delays are printed (figures in RELIABILITY.md).
#[tokio::test]
async fn pairs_of_one_id_then_steady_load_lose_nothing() {
    if !daprd::available() {
        return;
    }
    let (pairs, steady, rate) = burst_size();
    let (redis, daprd) = daprd_without_app("streaming-pairs").await;
    // When each event id was first handled.
    let handled: Arc<Mutex<HashMap<String, std::time::Instant>>> = Arc::default();
    let server = builder()
        .default_pubsub(PUBSUB)
        .consumer(handler(Subscription::new("orders").dead_letter("orders.dlq"), {
            let handled = handled.clone();
            move |event: Event<serde_json::Value>| {
                handled.lock().unwrap().entry(event.id().to_owned()).or_insert_with(std::time::Instant::now);
                // The work of a handler that writes to a database: the two
                // copies of a pair are in flight together.
                tokio::time::sleep(std::time::Duration::from_millis(20))
            }
        }))
        .build()
        .unwrap();
    let (stop, app) = serve_streaming(server, &daprd).await;

    let started = std::time::Instant::now();
    let burst: Vec<_> =
        (0..pairs * 2).map(|n| order_event(&format!("pair-{}", n / 2), json!({"copy": n % 2}))).collect();
    daprd.publish_bulk(PUBSUB, "orders", &burst).await.unwrap();
    let mut published = HashMap::new();
    let mut ticks = tokio::time::interval(std::time::Duration::from_micros(1_000_000 / rate));
    for n in 0..steady {
        ticks.tick().await;
        let id = format!("steady-{n}");
        published.insert(id.clone(), std::time::Instant::now());
        daprd.publish_cloud_event(PUBSUB, "orders", &order_event(&id, json!({}))).await.unwrap();
    }
    until_settled(&redis, "orders", "streaming-pairs").await;
    let settled = started.elapsed();
    {
        let handled = handled.lock().unwrap();
        let missing: Vec<_> = (0..pairs)
            .map(|n| format!("pair-{n}"))
            .chain(published.keys().cloned())
            .filter(|id| !handled.contains_key(id))
            .collect();
        assert!(missing.is_empty(), "never handled: {missing:?}");
        let mut delays: Vec<f64> = published
            .iter()
            .map(|(id, at)| handled[id].saturating_duration_since(*at).as_secs_f64() * 1000.0)
            .collect();
        delays.sort_by(f64::total_cmp);
        let at = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize];
        eprintln!(
            "{pairs} same-id pairs, then {steady} events at {rate}/s: settled {:.1} s after the burst; \
             publish-to-handled of the steady events p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
             answers daprd could not match (its log): {}",
            settled.as_secs_f64(),
            at(0.5),
            at(0.99),
            at(1.0),
            daprd.log().matches("no client stream expecting publish response").count(),
        );
    }
    assert!(dead_letter_ids(&redis, "orders.dlq").await.is_empty(), "nothing dead-lettered");
    let _ = stop.send(());
    app.await.unwrap().unwrap();
}
