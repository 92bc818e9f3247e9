//! The examples behind the real daprd: routing rules evaluated by daprd
//! (pricing), dead letters and service invocation (warehouse), a raw
//! payload, and a cron input binding. Skipped without daprd and
//! redis-server, unless `EVENTBUS_REQUIRE_DAPRD=1`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::daprd::{TEST_RESOURCES, dead_letter_ids, sidecar, until_settled};
use common::{builder, start, start_server};
use daprd_harness::{self as daprd, eventually};
use eventbus::{Event, Raw, Subscription, handler};
use serde_json::json;

const PUBSUB: &str = "pubsub-redis";

fn cloud_event(id: &str, event_type: &str, data: serde_json::Value) -> serde_json::Value {
    json!({"specversion": "1.0", "id": id, "source": "daprd-suite", "type": event_type,
           "datacontenttype": "application/json", "data": data})
}

#[tokio::test]
async fn pricing_routing_rules_are_evaluated_by_daprd() {
    if !daprd::available() {
        return;
    }
    let book = example_pricing::PriceBook::default();
    let app = start_server(example_pricing::server(book.clone()).unwrap()).await;
    let (redis, daprd) = sidecar("pricing", app.address.port(), |b| b).await;
    daprd.wait_for_subscriptions(1).await.unwrap();

    // No rule matches the type: the default path (v1, a decimal string).
    let events = [
        cloud_event("p-1", "price.changed", json!({"sku": "apple", "price": "1.25"})),
        cloud_event("p-2", "price.changed.v2", json!({"sku": "pear", "cents": 300})),
    ];
    for event in &events {
        daprd.publish_cloud_event(PUBSUB, "price.changed", event).await.unwrap();
    }
    until_settled(&redis, "price.changed", "pricing").await;
    assert_eq!((book.price("apple"), book.price("pear")), (Some(125), Some(300)));
    let discount = cloud_event("p-3", "price.discount", json!({"sku": "pear", "percent": 10}));
    daprd.publish_cloud_event(PUBSUB, "price.changed", &discount).await.unwrap();
    until_settled(&redis, "price.changed", "pricing").await;
    assert_eq!(book.price("pear"), Some(270), "the discount rule's handler ran");

    // A v2 event with a negative price is poison: dead-lettered by its rule's handler.
    let poison = cloud_event("p-4", "price.changed.v2", json!({"sku": "pear", "cents": -1}));
    daprd.publish_cloud_event(PUBSUB, "price.changed", &poison).await.unwrap();
    until_settled(&redis, "price.changed", "pricing").await;
    assert_eq!(dead_letter_ids(&redis, "price.changed.dlq").await, vec!["p-4"]);
    assert_eq!(book.price("pear"), Some(270));
}

#[tokio::test]
async fn warehouse_dead_letters_and_stock_queries_through_daprd() {
    if !daprd::available() {
        return;
    }
    let warehouse = example_warehouse::Warehouse::with_stock([("apple", 10), ("pear", 2)]);
    let app = start_server(example_warehouse::server(warehouse.clone()).unwrap()).await;
    let (redis, daprd) = sidecar("warehouse", app.address.port(), |b| b).await;
    daprd.wait_for_subscriptions(2).await.unwrap();

    let order = json!({"order_id": "o-1", "items": [{"sku": "apple", "quantity": 3}]});
    let unknown = json!({"order_id": "o-2", "items": [{"sku": "plum", "quantity": 1}]});
    daprd.publish_cloud_event(PUBSUB, "order.created", &cloud_event("w-1", "order.created", order)).await.unwrap();
    daprd.publish_cloud_event(PUBSUB, "order.created", &cloud_event("w-2", "order.created", unknown)).await.unwrap();
    until_settled(&redis, "order.created", "warehouse").await;
    assert_eq!(dead_letter_ids(&redis, "order.created.dlq").await, vec!["w-2"]);

    // Service invocation through daprd reaches OnInvoke.
    let answer = daprd.invoke("warehouse", "stock", "text/plain", "apple").await.unwrap();
    let level: example_warehouse::Level = serde_json::from_slice(&answer.data.unwrap().value).unwrap();
    assert_eq!(level, example_warehouse::Level { available: 7, reserved: 3 });
    let missing = daprd.invoke("warehouse", "stock", "text/plain", "plum").await.unwrap_err();
    assert!(missing.to_string().contains("unknown sku"), "{missing}");
}

#[tokio::test]
async fn raw_payloads_arrive_as_the_publishers_bytes() {
    if !daprd::available() {
        return;
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let app = start(builder().default_pubsub(PUBSUB).consumer(handler(
        Subscription::new("raw").raw_payload(),
        move |event: Event<Raw>| {
            let seen = recorded.clone();
            async move { seen.lock().unwrap().push(event.data.0.to_vec()) }
        },
    )))
    .await;
    let (redis, daprd) = sidecar("raw", app.address.port(), |b| b).await;
    daprd.wait_for_subscriptions(1).await.unwrap();
    let bytes = b"\x00\x01 not a cloud event \xff".to_vec();
    let metadata = [("rawPayload".to_owned(), "true".to_owned())].into();
    daprd.publish(PUBSUB, "raw", "application/octet-stream", bytes.clone(), metadata).await.unwrap();
    until_settled(&redis, "raw", "raw").await;
    assert_eq!(*seen.lock().unwrap(), vec![bytes]);
}

#[tokio::test]
async fn a_cron_input_binding_reaches_on_binding_event() {
    if !daprd::available() {
        return;
    }
    let ticks = Arc::new(AtomicUsize::new(0));
    let counted = ticks.clone();
    let app = start(builder().binding("tick", move |_request| {
        let ticks = counted.clone();
        async move {
            ticks.fetch_add(1, Ordering::Relaxed);
        }
    }))
    .await;
    let (_redis, _daprd) =
        sidecar("cron", app.address.port(), |b| b.resources(format!("{TEST_RESOURCES}/cron-binding.yaml"))).await;
    eventually("two ticks of the cron binding", || async { (ticks.load(Ordering::Relaxed) >= 2).then_some(()) }).await;
}

/// Rules of one topic from two consumers, registered in the reverse of
/// their priority: daprd is given them by priority, and routes by it.
#[tokio::test]
async fn rule_priority_reaches_daprd() {
    if !daprd::available() {
        return;
    }
    let (specific, catch_all) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (counted_specific, counted_catch_all) = (specific.clone(), catch_all.clone());
    let app = start(
        builder()
            .default_pubsub(PUBSUB)
            .consumer(handler(
                Subscription::new("prices").prioritized_rule(10, "true", "/any"),
                move |_: Event<Raw>| {
                    counted_catch_all.fetch_add(1, Ordering::Relaxed);
                    async {}
                },
            ))
            .consumer(handler(
                Subscription::new("prices").prioritized_rule(0, r#"event.type == "v2""#, "/v2"),
                move |_: Event<Raw>| {
                    counted_specific.fetch_add(1, Ordering::Relaxed);
                    async {}
                },
            )),
    )
    .await;
    let (redis, daprd) = sidecar("priority", app.address.port(), |b| b).await;
    daprd.wait_for_subscriptions(1).await.unwrap();
    daprd.publish_cloud_event(PUBSUB, "prices", &cloud_event("r-1", "v2", json!({}))).await.unwrap();
    daprd.publish_cloud_event(PUBSUB, "prices", &cloud_event("r-2", "v1", json!({}))).await.unwrap();
    until_settled(&redis, "prices", "priority").await;
    assert_eq!((specific.load(Ordering::Relaxed), catch_all.load(Ordering::Relaxed)), (1, 1));
}

/// A layer of the user's hands a value to the handlers of an event, an
/// invocation and a binding event, all delivered by daprd.
#[tokio::test]
async fn a_layers_extension_reaches_events_invocations_and_bindings_under_daprd() {
    use eventbus::binding::BindingEvent;
    use eventbus::extract::Extension;
    use eventbus::invoke::Invocation;
    use eventbus::middleware::{BoxService, Request};
    use eventbus::tower::{self, ServiceExt};

    #[derive(Clone)]
    struct Tenant(&'static str);

    if !daprd::available() {
        return;
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (by_event, by_binding) = (seen.clone(), seen.clone());
    let app = start(
        builder()
            .default_pubsub(PUBSUB)
            .layer(tower::layer::layer_fn(|inner: BoxService| {
                tower::service_fn(move |mut request: Request| {
                    request.extensions_mut().insert(Tenant("eu"));
                    inner.clone().oneshot(request)
                })
            }))
            .consumer(handler(Subscription::new("orders"), move |_: Event<Raw>, Extension(t): Extension<Tenant>| {
                by_event.lock().unwrap().push(format!("event {}", t.0));
                async {}
            }))
            .invocation("tenant", |invocation: Invocation| async move {
                invocation.extensions.get::<Tenant>().map(|t| t.0.to_owned()).unwrap_or_default()
            })
            .binding("tick", move |event: BindingEvent| {
                let tenant = event.extensions.get::<Tenant>().map(|t| t.0).unwrap_or_default();
                by_binding.lock().unwrap().push(format!("binding {tenant}"));
                async {}
            }),
    )
    .await;
    let (redis, daprd) =
        sidecar("layers", app.address.port(), |b| b.resources(format!("{TEST_RESOURCES}/cron-binding.yaml"))).await;
    daprd.wait_for_subscriptions(1).await.unwrap();
    daprd.publish_cloud_event(PUBSUB, "orders", &cloud_event("l-1", "order", json!({}))).await.unwrap();
    until_settled(&redis, "orders", "layers").await;
    let reply = daprd.invoke("layers", "tenant", "application/json", "{}").await.unwrap();
    assert_eq!(reply.data.map(|any| any.value).unwrap_or_default(), b"eu");
    eventually("a binding event with the tenant", || async {
        seen.lock().unwrap().iter().any(|s| s == "binding eu").then_some(())
    })
    .await;
    assert!(seen.lock().unwrap().contains(&"event eu".to_owned()));
}
