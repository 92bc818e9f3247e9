//! The status table under the real daprd, side by side with the test sidecar:
//! each scenario must settle the same way on both (attempts, acked or
//! dead-lettered). Skipped without daprd and redis-server, unless
//! `EVENTBUS_REQUIRE_DAPRD=1`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::daprd::{dead_letter_ids, sidecar_with_short_retries, until_settled};
use common::{Order, builder, start};
use daprd_harness as daprd;
use eventbus::testing::{CloudEvent, Settlement};
use eventbus::{Event, HandlerError, Subscription, handler};
use serde_json::json;

/// daprd's retries in `tests/resources/short-retries/resiliency.yaml`: 10, so 11 attempts.
const ATTEMPTS: u32 = 11;

/// How each scenario's handler answers, by topic.
const SCENARIOS: &[&str] =
    &["ok", "transient", "permanent", "undecodable", "panic", "timeout", "recovers", "drop-no-dlq"];

type Attempts = Arc<Mutex<HashMap<String, u32>>>;

fn app(attempts: &Attempts) -> eventbus::ServerBuilder {
    let mut builder = builder().default_pubsub("pubsub-redis").timeout(Duration::from_millis(200));
    for &topic in SCENARIOS {
        let subscription = if topic == "drop-no-dlq" {
            Subscription::new(topic)
        } else {
            Subscription::new(topic).dead_letter(format!("{topic}.dlq"))
        };
        let attempts = attempts.clone();
        builder = builder.consumer(handler(subscription, move |event: Event<Order>| {
            let attempts = attempts.clone();
            async move {
                let n = {
                    let mut map = attempts.lock().unwrap();
                    let n = map.entry(event.id().to_owned()).or_default();
                    *n += 1;
                    *n
                };
                match event.topic() {
                    "transient" => Err(HandlerError::transient(anyhow::anyhow!("database unavailable"))),
                    "permanent" | "drop-no-dlq" => Err(HandlerError::permanent(anyhow::anyhow!("negative total"))),
                    "panic" => panic!("handler bug"),
                    "timeout" => {
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                    "recovers" if n < 3 => Err(HandlerError::transient(anyhow::anyhow!("not yet"))),
                    _ => Ok(()),
                }
            }
        }));
    }
    builder
}

/// The payload of a scenario: an order, or a JSON string for `undecodable`.
fn data(topic: &str) -> serde_json::Value {
    if topic == "undecodable" { json!("not an order") } else { json!({"order_id": "o-1", "total": 5}) }
}

/// What an event's fate looks like from outside: (handler calls, dead-lettered).
type Fate = (u32, bool);

#[tokio::test]
async fn the_status_table_settles_the_same_under_daprd_and_the_test_sidecar() {
    if !daprd::available() {
        return;
    }
    let attempts = Attempts::default();
    let app = start(app(&attempts)).await;

    // The test sidecar.
    let test_sidecar = app.sidecar().await.max_attempts(ATTEMPTS);
    let mut expected: HashMap<&str, Fate> = HashMap::new();
    for &topic in SCENARIOS {
        let event = CloudEvent::json(&data(topic)).id(format!("ts-{topic}"));
        let delivery = test_sidecar.publish(topic, event).await.unwrap();
        let calls = attempts.lock().unwrap().get(&format!("ts-{topic}")).copied().unwrap_or(0);
        let dead_lettered = matches!(delivery.settlement, Settlement::DeadLettered(_));
        assert!(!matches!(delivery.settlement, Settlement::Nacked), "{topic}: every scenario settles");
        expected.insert(topic, (calls, dead_lettered));
    }

    // daprd, from Redis.
    let (redis, daprd) = sidecar_with_short_retries("fidelity", app.address.port(), |b| b).await;
    daprd.wait_for_subscriptions(SCENARIOS.len()).await.unwrap();
    for &topic in SCENARIOS {
        let cloud_event = json!({
            "specversion": "1.0", "id": format!("d-{topic}"), "source": "fidelity", "type": "test",
            "datacontenttype": "application/json", "data": data(topic),
        });
        daprd.publish_cloud_event("pubsub-redis", topic, &cloud_event).await.unwrap();
    }
    let mut seen: HashMap<&str, Fate> = HashMap::new();
    for &topic in SCENARIOS {
        until_settled(&redis, topic, "fidelity").await;
        let calls = attempts.lock().unwrap().get(&format!("d-{topic}")).copied().unwrap_or(0);
        let dead_lettered = dead_letter_ids(&redis, &format!("{topic}.dlq")).await.contains(&format!("d-{topic}"));
        seen.insert(topic, (calls, dead_lettered));
    }
    for &topic in SCENARIOS {
        eprintln!("{topic}: daprd {:?}, test sidecar {:?}", seen[topic], expected[topic]);
        assert_eq!(seen[topic], expected[topic], "{topic}: daprd (calls, dead-lettered) vs the test sidecar");
    }
}
