//! The warehouse through the test sidecar over gRPC.
#![allow(clippy::unwrap_used)]

use eventbus::status::Code;
use eventbus::testing::{CloudEvent, Settlement, TestSidecar};
use example_warehouse::{Level, Warehouse, server};
use serde_json::json;

async fn start(warehouse: Warehouse) -> TestSidecar {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = server(warehouse).unwrap();
    tokio::spawn(
        server.serve(eventbus::Transport::grpc_listener(listener)).with_graceful_shutdown(std::future::pending()),
    );
    TestSidecar::connect(address).await.unwrap()
}

#[tokio::test]
async fn reserve_release_query_and_dead_letter() {
    let warehouse = Warehouse::with_stock([("apple", 10), ("pear", 2)]);
    let sidecar = start(warehouse.clone()).await;

    let order = json!({"order_id": "o-1", "items": [{"sku": "apple", "quantity": 3}, {"sku": "pear", "quantity": 2}]});
    let created = sidecar.publish("order.created", CloudEvent::json(&order)).await.unwrap();
    assert_eq!(created.settlement, Settlement::Acked);
    sidecar.publish("order.created", CloudEvent::json(&order)).await.unwrap(); // redelivery: no change
    assert_eq!(warehouse.level("apple"), Some(Level { available: 7, reserved: 3 }));

    let answer = sidecar.invoke("stock", b"pear").await.unwrap();
    let level: Level = serde_json::from_slice(&answer.data).unwrap();
    assert_eq!(level, Level { available: 0, reserved: 2 });
    assert_eq!(sidecar.invoke("stock", b"plum").await.unwrap_err().code(), Code::NotFound);

    // Not enough pears left: poison, to the dead letter; nothing changes.
    let greedy = json!({"order_id": "o-2", "items": [{"sku": "apple", "quantity": 1}, {"sku": "pear", "quantity": 1}]});
    let refused = sidecar.publish("order.created", CloudEvent::json(&greedy)).await.unwrap();
    assert_eq!(refused.settlement, Settlement::DeadLettered("order.created.dlq".into()));
    assert_eq!(warehouse.level("apple"), Some(Level { available: 7, reserved: 3 }));

    sidecar.publish("order.cancelled", CloudEvent::json(&json!({"order_id": "o-1"}))).await.unwrap();
    assert_eq!(warehouse.level("apple"), Some(Level { available: 10, reserved: 0 }));
    assert_eq!(warehouse.level("pear"), Some(Level { available: 2, reserved: 0 }));
}
