//! What only the HTTP app channel has: `/dapr/subscribe` in Dapr's JSON,
//! routing rules by path, the bulk route's per-entry statuses, the token as
//! a header, health.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Order, builder, order};
use eventbus::testing::{CloudEvent, HttpSidecar, Settlement};
use eventbus::{Event, Outcome, ServerBuilder, Subscription, batch, handler};
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
    let sidecar = HttpSidecar::connect(app.address).await.unwrap();
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
    let app = serve(builder().consumer(batch(
        Subscription::new("orders").bulk(100, 10),
        |events: Vec<Event<Order>>| async move {
            events.iter().map(|e| if e.data.total < 0 { Outcome::Drop } else { Outcome::Success }).collect::<Vec<_>>()
        },
    )))
    .await;
    let sidecar = HttpSidecar::connect(app.address).await.unwrap();
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
    let without = HttpSidecar::connect(app.address).await.unwrap().max_attempts(2);
    let refused = without.publish("orders", CloudEvent::json(&order("o-1"))).await.unwrap();
    assert_eq!(refused.attempts, vec![Ok(Outcome::Retry); 2], "401 is retried by daprd");
    let with = HttpSidecar::connect(app.address).await.unwrap().token("s3cret");
    assert_eq!(with.publish("orders", CloudEvent::json(&order("o-1"))).await.unwrap().settlement, Settlement::Acked);
    let (status, answer) = with.post("/orders", &json!(["not", "an", "event"])).await.unwrap();
    assert_eq!((status, answer), (200, json!({"status": "DROP"})));
    app.stop().await;
}
