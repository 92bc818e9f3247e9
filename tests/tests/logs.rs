//! One log line per event outcome, at its level, with the event id, topic
//! and reason; the error's message once.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Order, builder, order, start};
use eventbus::testing::CloudEvent;
use eventbus::{Event, HandlerError, Subscription, handler};

/// Every line the subscriber writes, kept.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn mentioning(&self, id: &str) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines().filter(|line| line.contains(&format!("\"event.id\":\"{id}\""))).map(str::to_owned).collect()
    }
}

#[tokio::test]
async fn each_outcome_is_one_line_with_id_topic_and_reason() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = start(
        builder()
            .consumer(handler(Subscription::new("orders"), |event: Event<Order>| async move {
                match event.data.order_id.as_str() {
                    "later" => Err(HandlerError::transient("database unavailable")),
                    _ => Ok(()),
                }
            }))
            .max_message_size(1024),
    )
    .await;
    let sidecar = app.sidecar().await;
    let publish = |id: &'static str, event: CloudEvent| {
        let sidecar = &sidecar;
        async move { sidecar.publish("orders", event.id(id)).await.unwrap() }
    };
    publish("e-ok", CloudEvent::json(&order("fine"))).await;
    publish("e-later", CloudEvent::json(&order("later"))).await;
    publish("e-bad", CloudEvent::json(&serde_json::json!({"order_id": 7}))).await;
    publish("e-big", CloudEvent::bytes("application/json", vec![b' '; 2048])).await;

    for (id, level, outcome, reason) in [
        ("e-ok", "DEBUG", "success", "handled"),
        ("e-later", "WARN", "retry", "handler"),
        ("e-bad", "ERROR", "drop", "decode"),
        ("e-big", "ERROR", "drop", "oversize"),
    ] {
        let found = lines.mentioning(id);
        assert_eq!(found.len(), 1, "one line for {id}: {found:#?}");
        let line: serde_json::Value = serde_json::from_str(&found[0]).unwrap();
        assert_eq!(line["level"], level, "{line}");
        assert_eq!(line["fields"]["topic"], "orders", "{line}");
        assert_eq!(line["fields"]["outcome"], outcome, "{line}");
        assert_eq!(line["fields"]["reason"], reason, "{line}");
    }
    let bad = lines.mentioning("e-bad").remove(0);
    assert_eq!(bad.matches("invalid type: integer `7`").count(), 1, "the cause once: {bad}");
}
