//! The HTTP app channel under the real daprd (`--app-protocol http`):
//! subscriptions from `GET /dapr/subscribe`, the status table, a bulk
//! subscription, and daprd's reading of bare HTTP status codes. Skipped
//! without daprd and redis-server, unless `EVENTBUS_REQUIRE_DAPRD=1`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::routing::post;
use common::builder;
use common::daprd::{Seen, by_kind, dead_letter_ids, order_event, sidecar_with_short_retries, until_settled};
use daprd_harness::{self as daprd, eventually};
use eventbus::{Batch, Event, Outcome, Subscription, handler};
use serde_json::json;
use tokio::sync::oneshot;

const PUBSUB: &str = "pubsub-redis";

#[tokio::test]
async fn daprd_delivers_over_http_with_the_same_answers() {
    if !daprd::available() {
        return;
    }
    let seen = Seen::default();
    let batches = Arc::new(Mutex::new(Vec::new()));
    let raw_calls = Arc::new(AtomicUsize::new(0));
    let sizes = batches.clone();
    let server = builder()
        .default_pubsub(PUBSUB)
        .consumer(handler(Subscription::new("orders").dead_letter("orders.dlq"), by_kind(&seen)))
        .consumer(handler(
            Subscription::new("products").dead_letter("products.dlq").bulk(50, 100),
            move |events: Batch<serde_json::Value>| {
                sizes.lock().unwrap().push(events.len());
                async move {
                    events.answers(
                        events.iter().map(|e| if e.data["bad"] == true { Outcome::Drop } else { Outcome::Success }),
                    )
                }
            },
        ))
        // Two routes answered by plain axum handlers, to see how daprd reads bare status codes.
        .consumer(handler(
            Subscription::new("codes404").path("/codes404").dead_letter("codes404.dlq"),
            |_: Event<serde_json::Value>| async {},
        ))
        .consumer(handler(
            Subscription::new("codes500").path("/codes500").dead_letter("codes500.dlq"),
            |_: Event<serde_json::Value>| async {},
        ))
        .build()
        .unwrap();
    let calls = raw_calls.clone();
    let router = eventbus::http::router(&server).route("/codes404", post(|| async { StatusCode::NOT_FOUND })).route(
        "/codes500",
        post(move || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { StatusCode::INTERNAL_SERVER_ERROR }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = oneshot::channel::<()>();
    let app = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    // Short retries: the 500 route is watched until daprd gives up on it.
    let (redis, daprd) = sidecar_with_short_retries("http-app", port, |b| b.app_protocol("http")).await;
    daprd.wait_for_subscriptions(4).await.unwrap();

    for (id, kind) in [("h-1", "ok"), ("h-2", "flaky"), ("h-3", "poison")] {
        daprd.publish_cloud_event(PUBSUB, "orders", &order_event(id, json!({"kind": kind}))).await.unwrap();
    }
    let products: Vec<_> = (0..20).map(|n| order_event(&format!("p-{n}"), json!({"bad": n == 7}))).collect();
    daprd.publish_bulk(PUBSUB, "products", &products).await.unwrap();
    daprd.publish_cloud_event(PUBSUB, "codes404", &order_event("c-404", json!({}))).await.unwrap();
    daprd.publish_cloud_event(PUBSUB, "codes500", &order_event("c-500", json!({}))).await.unwrap();

    until_settled(&redis, "orders", "http-app").await;
    until_settled(&redis, "products", "http-app").await;
    assert_eq!(dead_letter_ids(&redis, "orders.dlq").await, vec!["h-3"]);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen["h-1"], [Outcome::Success]);
        assert_eq!(seen["h-2"], [Outcome::Retry, Outcome::Success], "RETRY in the body is retried");
        assert_eq!(seen["h-3"], [Outcome::Drop]);
    }
    assert_eq!(dead_letter_ids(&redis, "products.dlq").await, vec!["p-7"], "one bad entry, its neighbours acked");
    assert_eq!(batches.lock().unwrap().iter().sum::<usize>(), 20);
    eventually("404 dead-lettered", || async {
        (dead_letter_ids(&redis, "codes404.dlq").await == ["c-404"]).then_some(())
    })
    .await;
    eventually("500 retried, then dead-lettered", || async {
        (dead_letter_ids(&redis, "codes500.dlq").await == ["c-500"]).then_some(())
    })
    .await;
    assert!(raw_calls.load(Ordering::SeqCst) >= 2, "a 500 is delivered again");

    let _ = stop.send(());
    app.await.unwrap().unwrap();
}

/// Service invocation and an input binding reach an app served over HTTP:
/// daprd calls `POST /<method>` and `OPTIONS` then `POST /tick`.
#[tokio::test]
async fn daprd_invokes_and_delivers_bindings_over_http() {
    use daprd_harness::HarnessError;
    use eventbus::HandlerError;
    use eventbus::binding::BindingEvent;
    use eventbus::invoke::Json;
    use eventbus::status::Status;

    if !daprd::available() {
        return;
    }
    let ticks = Arc::new(AtomicUsize::new(0));
    let counted = ticks.clone();
    let server = builder()
        .invocation("double", |Json(n): Json<u64>| async move { Json(n * 2) })
        .invocation("missing", |_: String| async { Err::<(), _>(Status::not_found("no such sku")) })
        .binding("tick", move |event: BindingEvent| {
            let ticks = counted.clone();
            async move {
                // The cron binding's data is empty; what matters is the call.
                let _ = event.data;
                ticks.fetch_add(1, Ordering::Relaxed);
                Ok::<(), Status>(())
            }
        })
        .job("never", |_| async { Err::<(), HandlerError>(HandlerError::transient("not scheduled here")) })
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = oneshot::channel::<()>();
    let app = tokio::spawn(server.serve(eventbus::Transport::http_listener(listener)).with_graceful_shutdown(async {
        let _ = stopped.await;
    }));
    let cron = format!("{}/cron-binding.yaml", common::daprd::TEST_RESOURCES);
    let (_redis, daprd) = common::daprd::sidecar("http-invoke", port, |b| b.app_protocol("http").resources(cron)).await;

    let doubled = daprd.invoke("http-invoke", "double", "application/json", "21").await.unwrap();
    assert_eq!(doubled.data.map(|any| any.value).unwrap_or_default(), b"42");
    assert_eq!(doubled.content_type, "application/json");
    match daprd.invoke("http-invoke", "missing", "text/plain", "plum").await {
        Err(HarnessError::Api(status)) => assert_eq!(status.code(), tonic::Code::NotFound, "{status}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    eventually("two ticks of the cron binding over HTTP", || async {
        (ticks.load(Ordering::Relaxed) >= 2).then_some(())
    })
    .await;

    let _ = stop.send(());
    app.await.unwrap().unwrap();
}
