//! Producers in other languages: camelCase JSON (the protobuf JSON default of
//! Go and Python) and protobuf-encoded events are applied like snake_case JSON.
#![allow(clippy::unwrap_used)]

mod common;

use common::{databases, worker};
use customer_worker::contracts::descriptors;
use eventbus::testing::{CloudEvent, Settlement};
use prost::Message;
use prost_reflect::{DynamicMessage, Value};

#[tokio::test]
async fn camel_case_json_and_protobuf_events_are_applied() {
    for db in databases().await {
        let w = worker(&db).await;
        let camel = CloudEvent::json(&serde_json::json!({
            "orderId": "o-1", "customerId": "c-1", "totalAmount": "20.00", "currency": "EUR",
            "completedAt": "2026-11-20T10:00:00Z"
        }));
        assert_eq!(w.sidecar.publish("order.completed", camel).await.unwrap().settlement, Settlement::Acked);

        let descriptor = descriptors().unwrap().get_message_by_name("customer.v1.OrderCompleted").unwrap();
        let mut message = DynamicMessage::new(descriptor);
        for (field, value) in [
            ("order_id", "o-2"),
            ("customer_id", "c-1"),
            ("total_amount", "5.50"),
            ("currency", "EUR"),
            ("completed_at", "2026-11-21T10:00:00Z"),
        ] {
            message.set_field_by_name(field, Value::String(value.to_owned()));
        }
        let protobuf = CloudEvent::bytes("application/protobuf", message.encode_to_vec());
        assert_eq!(w.sidecar.publish("order.completed", protobuf).await.unwrap().settlement, Settlement::Acked);

        let not_the_message = CloudEvent::bytes("application/protobuf", vec![0xff, 0xff]);
        let dropped = w.sidecar.publish("order.completed", not_the_message).await.unwrap();
        assert_eq!(dropped.settlement, Settlement::DeadLettered("order.completed.dlq".into()));

        let customer = w.store.customer("c-1").await.unwrap().unwrap();
        assert_eq!((customer.order_count, customer.total_spent_minor), (2, 2550), "{}", db.label);
        w.running.shutdown();
        w.running.wait().await.unwrap();
    }
}
