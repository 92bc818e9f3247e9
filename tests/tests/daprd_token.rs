//! `APP_API_TOKEN` on daprd and on the app: every delivery passes, and which
//! RPCs the real daprd sends the token on. Skipped without daprd and
//! redis-server, unless `EVENTBUS_REQUIRE_DAPRD=1`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use common::daprd::{TEST_RESOURCES, sidecar, until_settled};
use common::{Order, builder};
use daprd_harness::{self as daprd, eventually};
use eventbus::{Event, Subscription, handler};
use serde_json::json;

const TOKEN: &str = "app-token-for-tests";

/// For each RPC path: how many calls carried the right token, and how many none.
type Seen = Arc<Mutex<BTreeMap<String, (usize, usize)>>>;

/// Records, per RPC, whether the `dapr-api-token` header came with the call.
#[derive(Clone)]
struct RecordToken<S> {
    inner: S,
    seen: Seen,
}

impl<S, B> tower::Service<http::Request<B>> for RecordToken<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let rpc = request.uri().path().rsplit('/').next().unwrap_or_default().to_owned();
        let with_token = request.headers().get("dapr-api-token").is_some_and(|v| v == TOKEN);
        let mut seen = self.seen.lock().unwrap();
        let counts = seen.entry(rpc).or_default();
        if with_token {
            counts.0 += 1
        } else {
            counts.1 += 1
        }
        drop(seen);
        self.inner.call(request)
    }
}

#[tokio::test]
async fn with_app_api_token_on_both_sides_every_delivery_passes() {
    if !daprd::available() {
        return;
    }
    let (events, ticks) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (counted_events, counted_ticks) = (events.clone(), ticks.clone());
    let server = builder()
        .default_pubsub("pubsub-redis")
        .api_token(Some(TOKEN.to_owned()))
        .consumer(handler(Subscription::new("single").dead_letter("single.dlq"), {
            let events = counted_events.clone();
            move |_: Event<Order>| {
                let events = events.clone();
                async move {
                    events.fetch_add(1, Ordering::Relaxed);
                }
            }
        }))
        .consumer(handler(Subscription::new("bulk").dead_letter("bulk.dlq").bulk(10, 100), move |_: Event<Order>| {
            let events = counted_events.clone();
            async move {
                events.fetch_add(1, Ordering::Relaxed);
            }
        }))
        .binding("tick", move |_| {
            let ticks = counted_ticks.clone();
            async move {
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        })
        .invocation("ping", |_: String| async {})
        .build()
        .unwrap();

    // The app's routes behind the recording layer, on a port of its own.
    let seen = Seen::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let recording = seen.clone();
    let app_channel = eventbus::grpc::app_channel(&server);
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(tower::layer::layer_fn(move |inner| RecordToken { inner, seen: recording.clone() }))
            .serve_with_incoming(app_channel, tonic::transport::server::TcpIncoming::from(listener)),
    );
    let (redis, daprd) = sidecar("token", port, |b| {
        b.env("APP_API_TOKEN", TOKEN)
            .arg("--enable-app-health-check")
            .arg("--app-health-probe-interval=1")
            .resources(format!("{TEST_RESOURCES}/cron-binding.yaml"))
    })
    .await;
    daprd.wait_for_subscriptions(2).await.unwrap();

    let order = json!({"order_id": "o-1", "total": 5});
    daprd.publish_json("pubsub-redis", "single", &order).await.unwrap();
    daprd.publish_json("pubsub-redis", "bulk", &order).await.unwrap();
    daprd.invoke("token", "ping", "application/json", "{}").await.unwrap();
    until_settled(&redis, "single", "token").await;
    until_settled(&redis, "bulk", "token").await;
    eventually("a tick and two health probes", || async {
        let probes = seen.lock().unwrap().get("HealthCheck").map_or(0, |(with, without)| with + without);
        (ticks.load(Ordering::Relaxed) >= 1 && probes >= 2).then_some(())
    })
    .await;
    assert_eq!(events.load(Ordering::Relaxed), 2, "both events handled, none rejected");
    assert!(redis.stream("single.dlq").await.unwrap().is_empty() && redis.stream("bulk.dlq").await.unwrap().is_empty());

    // What daprd v1.18.3 sends: the token on every data-plane call, none on
    // discovery and health (so the app must not demand it there).
    let seen = seen.lock().unwrap().clone();
    for rpc in ["OnTopicEvent", "OnBulkTopicEvent", "OnBindingEvent", "OnInvoke"] {
        let (with, without) = seen.get(rpc).copied().unwrap_or_default();
        assert!(with >= 1 && without == 0, "{rpc}: {with} calls with the token, {without} without");
    }
    for rpc in ["ListTopicSubscriptions", "ListInputBindings", "HealthCheck"] {
        let (with, without) = seen.get(rpc).copied().unwrap_or_default();
        assert!(with == 0 && without >= 1, "{rpc}: {with} calls with the token, {without} without");
    }
}
