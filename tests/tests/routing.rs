//! Subscriptions as the sidecar reads them, and routing by path.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Order, builder, order, start};
use eventbus::testing::{CloudEvent, Settlement};
use eventbus::{Event, Subscription, handler};

type Seen = Arc<Mutex<Vec<String>>>;

fn recorder(
    seen: &Seen,
    name: &'static str,
) -> impl Fn(Event<Order>) -> std::future::Ready<()> + Clone + Send + Sync + 'static {
    let seen = seen.clone();
    move |event: Event<Order>| {
        seen.lock().unwrap().push(format!("{name}:{}:{}", event.path(), event.data.order_id));
        std::future::ready(())
    }
}

#[tokio::test]
async fn list_topic_subscriptions_carries_rules_dead_letter_metadata_and_bulk() {
    let seen = Seen::default();
    let app = start(
        builder()
            .default_pubsub("pubsub-redis")
            .consumer(handler(
                Subscription::new("prices").rule(r#"event.type == "price.v2""#, "/prices/v2").dead_letter("prices.dlq"),
                recorder(&seen, "v2"),
            ))
            .consumer(handler(
                Subscription::new("prices").rule(r#"event.type == "price.v3""#, "/prices/v3"),
                recorder(&seen, "v3"),
            ))
            .consumer(handler(Subscription::new("prices").path("/prices"), recorder(&seen, "default")))
            .consumer(handler(
                Subscription::new("search").pubsub("kafka").raw_payload().bulk(50, 200),
                recorder(&seen, "search"),
            )),
    )
    .await;
    let sidecar = app.sidecar().await;
    let subscriptions = sidecar.subscriptions();
    assert_eq!(subscriptions.len(), 2);

    let prices = &subscriptions[0];
    assert_eq!((prices.pubsub_name.as_str(), prices.topic.as_str()), ("pubsub-redis", "prices"));
    assert_eq!(prices.dead_letter_topic, "prices.dlq");
    let routes = prices.routes.as_ref().unwrap();
    let rules: Vec<(&str, &str)> = routes.rules.iter().map(|r| (r.r#match.as_str(), r.path.as_str())).collect();
    assert_eq!(
        rules,
        vec![(r#"event.type == "price.v2""#, "/prices/v2"), (r#"event.type == "price.v3""#, "/prices/v3")]
    );
    assert_eq!(routes.default, "/prices");

    let search = &subscriptions[1];
    assert_eq!(search.pubsub_name, "kafka");
    assert_eq!(search.metadata.get("rawPayload").map(String::as_str), Some("true"));
    let bulk = search.bulk_subscribe.unwrap();
    assert!(bulk.enabled);
    assert_eq!((bulk.max_messages_count, bulk.max_await_duration_ms), (50, 200));
}

#[tokio::test]
async fn events_reach_the_handler_of_the_rule_that_matched() {
    let seen = Seen::default();
    let app = start(
        builder()
            .consumer(handler(
                Subscription::new("prices").rule(r#"event.type == "price.v2""#, "/v2"),
                recorder(&seen, "v2"),
            ))
            .consumer(handler(Subscription::new("prices"), recorder(&seen, "default"))),
    )
    .await;
    let sidecar = app.sidecar().await;
    sidecar.publish("prices", CloudEvent::json(&order("a")).event_type("price.v2")).await.unwrap();
    sidecar.publish("prices", CloudEvent::json(&order("b")).event_type("price.v1")).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), vec!["v2:/v2:a".to_string(), "default:prices:b".to_string()]);
}

#[tokio::test]
async fn rules_on_the_data_are_evaluated_as_daprd_does() {
    let seen = Seen::default();
    let app = start(
        builder()
            .consumer(handler(
                Subscription::new("orders")
                    .rule("event.data.total >= 1000 && event.type.startsWith('order.')", "/large")
                    .rule("event.data.order_id in ['vip-1', 'vip-2']", "/vip"),
                recorder(&seen, "rules"),
            ))
            .consumer(handler(Subscription::new("orders"), recorder(&seen, "default"))),
    )
    .await;
    let sidecar = app.sidecar().await;
    let event = |id: &str, total: i64, kind: &str| {
        CloudEvent::json(&serde_json::json!({"order_id": id, "total": total})).event_type(kind)
    };
    sidecar.publish("orders", event("big", 1250, "order.completed")).await.unwrap();
    sidecar.publish("orders", event("vip-2", 5, "order.completed")).await.unwrap();
    sidecar.publish("orders", event("small", 5, "order.completed")).await.unwrap();
    sidecar.publish("orders", event("big-other", 1250, "invoice.paid")).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["rules:/large:big", "rules:/vip:vip-2", "default:orders:small", "default:orders:big-other"]
    );
}

#[tokio::test]
async fn an_event_no_rule_matches_without_a_default_route_is_dead_lettered_by_the_sidecar() {
    let seen = Seen::default();
    let app = start(builder().consumer(handler(
        Subscription::new("prices").rule(r#"event.type == "price.v2""#, "/v2").dead_letter("prices.dlq"),
        recorder(&seen, "v2"),
    )))
    .await;
    let delivery =
        app.sidecar().await.publish("prices", CloudEvent::json(&order("x")).event_type("other")).await.unwrap();
    assert_eq!(delivery.settlement, Settlement::DeadLettered("prices.dlq".into()));
    assert!(delivery.attempts.is_empty());
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn dead_lettered_events_reach_a_dead_letter_subscriber() {
    let seen = Seen::default();
    let app = start(
        builder()
            .consumer(handler(Subscription::new("orders").dead_letter("orders.dlq"), |_: Event<Order>| async {
                eventbus::Outcome::Drop
            }))
            .consumer(handler(Subscription::new("orders.dlq"), recorder(&seen, "dlq"))),
    )
    .await;
    let sidecar = app.sidecar().await;
    sidecar.publish("orders", CloudEvent::json(&order("p")).id("poison-1")).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), vec!["dlq:orders.dlq:p".to_string()]);
    assert_eq!(sidecar.dead_letters().len(), 1);
    assert_eq!(sidecar.dead_letters()[0].event_id, "poison-1");
}

#[tokio::test]
async fn event_attributes_extensions_and_metadata_reach_the_handler() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let app = start(builder().consumer(handler(Subscription::new("attrs"), move |event: Event<Order>| {
        let _ = tx.send((
            event.id().to_owned(),
            event.event_type().to_owned(),
            event.source().to_owned(),
            event.subject().map(str::to_owned),
            event.time().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|t| t.as_secs()),
            event.envelope().traceparent().map(str::to_owned),
            event.metadata().get("kafka-key").map(str::to_owned),
            event.pubsub().to_owned(),
        ));
        std::future::ready(())
    })))
    .await;
    let event = CloudEvent::json(&order("o"))
        .id("evt-9")
        .event_type("order.completed")
        .extension("subject", "customer/7")
        .extension("time", "2026-11-27T10:00:00Z")
        .extension("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        .metadata("kafka-key", "k1");
    app.sidecar().await.publish("attrs", event).await.unwrap();
    let got = rx.recv().await.unwrap();
    assert_eq!(
        got,
        (
            "evt-9".into(),
            "order.completed".into(),
            "test-sidecar".into(),
            Some("customer/7".into()),
            Some(1_795_773_600), // 2026-11-27T10:00:00Z
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            Some("k1".into()),
            "pubsub".into(),
        )
    );
}

#[tokio::test]
async fn raw_payload_subscriptions_decode_the_publishers_bytes() {
    let seen = Seen::default();
    let app = start(builder().consumer(handler(Subscription::new("raw").raw_payload(), recorder(&seen, "raw")))).await;
    let sidecar = app.sidecar().await;
    assert_eq!(sidecar.subscription("raw").unwrap().metadata.get("rawPayload").map(String::as_str), Some("true"));
    // daprd wraps a raw payload as application/octet-stream.
    let bytes = serde_json::to_vec(&order("r-1")).unwrap();
    let delivery = sidecar.publish("raw", CloudEvent::bytes("application/octet-stream", bytes)).await.unwrap();
    assert_eq!(delivery.settlement, Settlement::Acked);
    assert_eq!(*seen.lock().unwrap(), vec!["raw:raw:r-1".to_string()]);
}

#[tokio::test]
async fn rule_priority_decides_the_order_the_sidecar_tries_rules() {
    let seen = Seen::default();
    // Registered catch-all first; its priority puts it after the specific rule.
    let app = start(
        builder()
            .consumer(handler(Subscription::new("prices").prioritized_rule(10, "true", "/any"), recorder(&seen, "any")))
            .consumer(handler(
                Subscription::new("prices").prioritized_rule(-1, r#"event.type == "v2""#, "/v2"),
                recorder(&seen, "v2"),
            )),
    )
    .await;
    let sidecar = app.sidecar().await;
    let rules = sidecar.subscriptions()[0].routes.clone().unwrap().rules;
    assert_eq!(rules.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/v2", "/any"]);
    sidecar.publish("prices", CloudEvent::json(&order("o-1")).event_type("v2")).await.unwrap();
    sidecar.publish("prices", CloudEvent::json(&order("o-2")).event_type("v1")).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), ["v2:/v2:o-1", "any:/any:o-2"]);
}

/// The topic a `#[subscribe]` handler is registered under is an expression,
/// evaluated when the server is built: here, one chosen at run time.
static RUNTIME_TOPIC: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[eventbus::subscribe(topic = RUNTIME_TOPIC.get().cloned().unwrap_or_default())]
async fn on_runtime_topic(event: Event<Order>, eventbus::State(seen): eventbus::State<Seen>) {
    seen.lock().unwrap().push(format!("{}:{}", event.topic(), event.data.order_id));
}

#[tokio::test]
async fn a_handler_registered_under_a_topic_chosen_at_run_time() {
    let topic = RUNTIME_TOPIC.get_or_init(|| format!("orders-{}", std::process::id()));
    let seen = Seen::default();
    let app = start(builder().state(seen.clone()).consumer(on_runtime_topic {})).await;
    let sidecar = app.sidecar().await;
    assert_eq!(sidecar.subscriptions()[0].topic, *topic);
    let delivery = sidecar.publish(topic, CloudEvent::json(&order("o-1"))).await.unwrap();
    assert_eq!(delivery.settlement, Settlement::Acked);
    assert_eq!(*seen.lock().unwrap(), [format!("{topic}:o-1")]);
}
