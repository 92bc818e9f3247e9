//! What only the HTTP app channel has: `/dapr/subscribe` in Dapr's JSON,
//! routing rules by path, the bulk route's per-entry statuses, the token as
//! a header, health.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Order, builder, order};
use eventbus::testing::{CloudEvent, Settlement, TestSidecar};
use eventbus::{Batch, Event, Outcome, ServerBuilder, Subscription, handler};
use serde_json::json;
use tokio::sync::oneshot;

struct HttpApp {
    address: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), eventbus::Error>>,
}

async fn serve(builder: ServerBuilder) -> HttpApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(
        builder.build().unwrap().serve(eventbus::Transport::http_listener(listener)).with_graceful_shutdown(async {
            let _ = stopped.await;
        }),
    );
    HttpApp { address, stop: Some(stop), task }
}

impl HttpApp {
    async fn stop(mut self) {
        let _ = self.stop.take().map(|stop| stop.send(()));
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn rules_route_by_path_and_the_default_catches_the_rest() {
    let app = serve(
        builder()
            .consumer(handler(
                Subscription::new("prices").rule("event.type == \"v2\"", "/v2"),
                |_: Event<Order>| async { Outcome::Drop },
            ))
            .consumer(handler(Subscription::new("prices"), |_: Event<Order>| async {})),
    )
    .await;
    let sidecar = TestSidecar::connect_http(app.address).await.unwrap();
    let routes = sidecar.subscriptions()[0].routes.clone().unwrap();
    assert_eq!((routes.rules[0].path.as_str(), routes.default.as_str()), ("/v2", "/prices"));
    let v2 = sidecar.publish("prices", CloudEvent::json(&order("o-1")).event_type("v2")).await.unwrap();
    assert_eq!((v2.path.as_str(), v2.attempts.as_slice()), ("/v2", &[Ok(Outcome::Drop)][..]));
    let v1 = sidecar.publish("prices", CloudEvent::json(&order("o-2")).event_type("v1")).await.unwrap();
    assert_eq!((v1.path.as_str(), v1.settlement), ("/prices", Settlement::Acked));
    app.stop().await;
}

#[tokio::test]
async fn a_bulk_request_gets_one_status_per_entry() {
    let app = serve(builder().consumer(handler(
        Subscription::new("orders").bulk(100, 10),
        |events: Batch<Order>| async move {
            events.answers(events.iter().map(|e| if e.data.total < 0 { Outcome::Drop } else { Outcome::Success }))
        },
    )))
    .await;
    let sidecar = TestSidecar::connect_http(app.address).await.unwrap();
    let bulk = sidecar.subscriptions()[0].clone();
    assert_eq!(bulk.topic, "orders");
    let ce = |id: &str, data: serde_json::Value| {
        json!({"entryId": format!("entry-{id}"), "contentType": "application/cloudevents+json",
               "event": {"id": id, "specversion": "1.0", "type": "t", "source": "s",
                         "datacontenttype": "application/json", "data": data}})
    };
    let request = json!({
        "pubsubname": "pubsub", "topic": "orders", "type": "com.dapr.event.sent.bulk",
        "entries": [ce("a", order("o-1")), ce("b", json!({"order_id": "o-2", "total": -1})),
                    ce("c", json!("not an order")), {"entryId": "entry-d", "contentType": "application/json", "event": order("o-4")}],
    });
    let (status, answer) = sidecar.post("/orders", &request).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"statuses": [
            {"entryId": "entry-a", "status": "SUCCESS"},
            {"entryId": "entry-b", "status": "DROP"},
            {"entryId": "entry-c", "status": "DROP"},
            {"entryId": "entry-d", "status": "SUCCESS"},
        ]})
    );
    app.stop().await;
}

#[tokio::test]
async fn the_token_is_required_as_a_header_and_bad_bodies_are_dropped() {
    let app = serve(
        builder()
            .api_token(Some("s3cret".to_owned()))
            .consumer(handler(Subscription::new("orders"), |_: Event<Order>| async {})),
    )
    .await;
    let without = TestSidecar::connect_http(app.address).await.unwrap().max_attempts(2);
    let refused = without.publish("orders", CloudEvent::json(&order("o-1"))).await.unwrap();
    assert_eq!(refused.attempts, vec![Ok(Outcome::Retry); 2], "401 is retried by daprd");
    let with = TestSidecar::connect_http(app.address).await.unwrap().token("s3cret");
    assert_eq!(with.publish("orders", CloudEvent::json(&order("o-1"))).await.unwrap().settlement, Settlement::Acked);
    let (status, answer) = with.post("/orders", &json!(["not", "an", "event"])).await.unwrap();
    assert_eq!((status, answer), (200, json!({"status": "DROP"})));
    app.stop().await;
}

/// Service invocation, input bindings and jobs as daprd calls them over HTTP
/// (`pkg/channel/http/http_channel.go`, `pkg/runtime/processor/binding/send.go`).
#[tokio::test]
async fn invocation_bindings_and_jobs_are_served_as_daprd_calls_them() {
    use eventbus::binding::BindingEvent;
    use eventbus::invoke::{Invocation, Json};
    use eventbus::server::Job;
    use eventbus::status::Status;

    let app = serve(
        builder()
            .api_token(Some("s3cret".into()))
            .invocation("double", |Json(n): Json<u64>| async move {
                n.checked_mul(2).map(Json).ok_or_else(|| Status::out_of_range("too large"))
            })
            .invocation("verb", |invocation: Invocation| async move {
                format!("{} {}", invocation.http_verb.unwrap_or_default(), invocation.querystring.unwrap_or_default())
            })
            .binding("orders-queue", |event: BindingEvent| async move {
                if event.data.as_ref() == b"ok" { Ok(()) } else { Err(Status::invalid_argument("not ok")) }
            })
            .job("nightly", |job: Job| async move {
                if job.data.as_ref() == b"{}" { Ok(()) } else { Err(eventbus::HandlerError::transient("failed")) }
            }),
    )
    .await;
    let sidecar = TestSidecar::connect_http(app.address).await.unwrap().token("s3cret");
    assert_eq!(sidecar.invoke("POST", "double", b"21").await.unwrap(), (200, b"42".to_vec()));
    assert_eq!(sidecar.invoke("POST", "double", b"twenty").await.unwrap().0, 400);
    assert_eq!(sidecar.invoke("POST", "double", u64::MAX.to_string().as_bytes()).await.unwrap().0, 400);
    assert_eq!(sidecar.invoke("GET", "verb?a=1", b"").await.unwrap(), (200, b"GET a=1".to_vec()));
    assert_eq!(sidecar.invoke("GET", "nope", b"").await.unwrap().0, 404);
    assert_eq!(sidecar.binding("orders-queue", b"ok").await.unwrap(), 200);
    assert_eq!(sidecar.binding("orders-queue", b"bad").await.unwrap(), 400);
    assert_eq!(sidecar.binding("no-such-binding", b"ok").await.unwrap(), 404, "the probe finds no endpoint");
    assert_eq!(sidecar.trigger_job("nightly", b"{}").await.unwrap(), 200);
    assert_eq!(sidecar.trigger_job("nightly", b"[]").await.unwrap(), 500);
    assert_eq!(sidecar.trigger_job("unknown", b"{}").await.unwrap(), 404);

    let stranger = TestSidecar::connect_http(app.address).await.unwrap();
    assert_eq!(stranger.invoke("POST", "double", b"21").await.unwrap().0, 401);
    assert_eq!(stranger.binding("orders-queue", b"ok").await.unwrap(), 401);
    assert_eq!(stranger.trigger_job("nightly", b"{}").await.unwrap(), 401);
    app.stop().await;
}

#[tokio::test]
async fn an_event_route_that_is_also_an_invocation_path_is_refused_at_start() {
    let server = builder()
        .consumer(handler(Subscription::new("stock"), |_: Event<Order>| async {}))
        .invocation("stock", |_: String| async {})
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = server.serve(eventbus::Transport::http_listener(listener)).await.unwrap_err();
    assert!(error.to_string().contains("pubsub/stock cannot be served over http"), "{error}");
}
