//! `#[subscribe]` and `#[eventbus::consumer]` end to end through the test sidecar.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Order, builder, order, start};
use eventbus::handler::Answers;
use eventbus::testing::{CloudEvent, Settlement};
use eventbus::{Batch, Event, HandlerError, Outcome, State, subscribe};

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn push(&self, entry: String) {
        self.0.lock().unwrap().push(entry);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Prices of the second version.
#[subscribe("prices", rule(match = r#"event.type == "price.v2""#, path = "/prices/v2"), dead_letter = "prices.dlq")]
async fn price_v2(State(seen): State<Seen>, event: Event<Order>) -> Result<(), HandlerError> {
    seen.push(format!("v2:{}", event.data.order_id));
    Ok(())
}

#[subscribe("prices", path = "/prices")]
async fn price_default(event: Event<Order>, State(seen): State<Seen>) -> Outcome {
    seen.push(format!("default:{}", event.data.order_id));
    if event.data.total < 0 { Outcome::Drop } else { Outcome::Success }
}

#[subscribe("search.index", bulk(max_messages = 10, max_await_ms = 100))]
async fn index(event: Event<Order>, State(seen): State<Seen>) {
    seen.push(format!("index:{}", event.data.order_id));
}

struct OrderConsumer {
    seen: Seen,
}

#[eventbus::consumer]
impl OrderConsumer {
    #[subscribe("order.completed")]
    async fn completed(&self, event: Event<Order>) -> eventbus::Result {
        self.seen.push(format!("completed:{}", event.data.order_id));
        Ok(())
    }

    #[subscribe("order.cancelled", dead_letter = "order.cancelled.dlq")]
    async fn cancelled(&self, event: Event<Order>) -> eventbus::Result {
        Err(HandlerError::permanent(anyhow::anyhow!("cannot cancel {}", event.data.order_id)))
    }

    /// A plain helper method is left alone.
    fn label(&self) -> &'static str {
        "orders"
    }
}

async fn app(seen: &Seen) -> common::App {
    let group = Arc::new(OrderConsumer { seen: seen.clone() });
    assert_eq!(group.label(), "orders");
    start(
        builder()
            .state(seen.clone())
            .consumer(price_v2 {})
            .consumer(price_default {})
            .consumer(index {})
            .consumers(group),
    )
    .await
}

#[tokio::test]
async fn subscriptions_from_both_forms_reach_the_sidecar() {
    let seen = Seen::default();
    let app = app(&seen).await;
    let sidecar = app.sidecar().await;
    let subscriptions = sidecar.subscriptions();
    let topics: Vec<&str> = subscriptions.iter().map(|s| s.topic.as_str()).collect();
    assert_eq!(topics, vec!["prices", "search.index", "order.completed", "order.cancelled"]);

    let prices = sidecar.subscription("prices").unwrap();
    let routes = prices.routes.as_ref().unwrap();
    assert_eq!(routes.rules.len(), 1);
    assert_eq!(routes.rules[0].path, "/prices/v2");
    assert_eq!(routes.default, "/prices");
    assert_eq!(prices.dead_letter_topic, "prices.dlq");

    let bulk = sidecar.subscription("search.index").unwrap().bulk_subscribe.unwrap();
    assert_eq!((bulk.enabled, bulk.max_messages_count, bulk.max_await_duration_ms), (true, 10, 100));
    assert_eq!(sidecar.subscription("order.cancelled").unwrap().dead_letter_topic, "order.cancelled.dlq");
}

#[tokio::test]
async fn events_flow_through_rules_bulk_methods_and_dead_letters() {
    let seen = Seen::default();
    let app = app(&seen).await;
    let sidecar = app.sidecar().await;

    sidecar.publish("prices", CloudEvent::json(&order("a")).event_type("price.v2")).await.unwrap();
    sidecar.publish("prices", CloudEvent::json(&order("b"))).await.unwrap();
    let negative = serde_json::json!({"order_id": "c", "total": -1});
    let dropped = sidecar.publish("prices", CloudEvent::json(&negative)).await.unwrap();
    assert_eq!(dropped.settlement, Settlement::DeadLettered("prices.dlq".into()));

    let batch = vec![
        CloudEvent::json(&order("i1")),
        CloudEvent::bytes("application/json", b"bad".to_vec()),
        CloudEvent::json(&order("i2")),
    ];
    let deliveries = sidecar.publish_bulk("search.index", batch).await.unwrap();
    let outcomes: Vec<_> = deliveries.iter().map(|d| d.attempts[0]).collect();
    assert_eq!(outcomes, vec![Ok(Outcome::Success), Ok(Outcome::Drop), Ok(Outcome::Success)]);

    sidecar.publish("order.completed", CloudEvent::json(&order("o1"))).await.unwrap();
    let cancelled = sidecar.publish("order.cancelled", CloudEvent::json(&order("o2"))).await.unwrap();
    assert_eq!(cancelled.settlement, Settlement::DeadLettered("order.cancelled.dlq".into()));

    assert_eq!(seen.take(), vec!["v2:a", "default:b", "default:c", "index:i1", "index:i2", "completed:o1"]);
}

#[tokio::test]
async fn the_handler_stays_an_ordinary_callable_function() {
    let seen = Seen::default();
    let envelope = eventbus::Envelope { id: "e1".into(), ..Default::default() };
    let event = Event::new(envelope, Order { order_id: "direct".into(), total: 5 });
    // `#[subscribe]` leaves the function as written: tests call it directly.
    assert_eq!(price_default(event.clone(), State(seen.clone())).await, Outcome::Success);
    price_v2(State(seen.clone()), event).await.unwrap();
    assert_eq!(seen.take(), vec!["default:direct", "v2:direct"]);
}

/// A whole bulk batch at once; the index state counts calls.
#[subscribe("batched", bulk(max_messages = 50))]
async fn batched(events: Batch<Order>, State(seen): State<Seen>) -> Answers {
    seen.push(format!("batch of {}", events.len()));
    events.answers(
        events
            .iter()
            .map(|e| if e.data.total < 0 { Err(HandlerError::permanent(anyhow::anyhow!("negative"))) } else { Ok(()) }),
    )
}

#[tokio::test]
async fn a_batch_handler_gets_the_bulk_request_at_once_and_single_events_as_batches_of_one() {
    let seen = Seen::default();
    let app = start(builder().state(seen.clone()).consumer(batched {})).await;
    let sidecar = app.sidecar().await.max_attempts(1);
    let events = vec![
        CloudEvent::json(&order("a")),
        CloudEvent::json(&serde_json::json!({"order_id": "n", "total": -1})),
        CloudEvent::bytes("application/json", b"x".to_vec()),
        CloudEvent::json(&order("b")),
    ];
    let deliveries = sidecar.publish_bulk("batched", events).await.unwrap();
    let attempts: Vec<_> = deliveries.iter().map(|d| d.attempts[0]).collect();
    assert_eq!(attempts, vec![Ok(Outcome::Success), Ok(Outcome::Drop), Ok(Outcome::Drop), Ok(Outcome::Success)]);
    sidecar.publish("batched", CloudEvent::json(&order("c"))).await.unwrap();
    // The undecodable entry never reached the handler.
    assert_eq!(seen.take(), vec!["batch of 3", "batch of 1"]);
}
