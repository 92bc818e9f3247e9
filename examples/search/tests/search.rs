//! Search through the test sidecar: a bulk batch with a bad entry.
#![allow(clippy::unwrap_used)]

use eventbus::Outcome;
use eventbus::testing::{CloudEvent, Settlement, TestSidecar};
use example_search::{SearchIndex, server};
use serde_json::json;

#[tokio::test]
async fn a_bad_entry_does_not_fail_its_batch() {
    let index = SearchIndex::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        server(index.clone())
            .unwrap()
            .serve(eventbus::Transport::grpc_listener(listener))
            .with_graceful_shutdown(std::future::pending()),
    );
    let sidecar = TestSidecar::connect(address).await.unwrap();
    let bulk = sidecar.subscription("product.updated").unwrap().bulk_subscribe.unwrap();
    assert!(bulk.enabled && bulk.max_messages_count == 100);

    let mut batch: Vec<CloudEvent> = (0..50)
        .map(|n| {
            CloudEvent::json(&json!({"sku": format!("s-{n}"), "name": format!("Red Shirt {n}"), "tags": ["cotton"]}))
        })
        .collect();
    batch.insert(10, CloudEvent::json(&json!({"sku": "s-bad", "name": "  "})));
    batch.insert(20, CloudEvent::bytes("application/json", b"not json".to_vec()));
    let deliveries = sidecar.publish_bulk("product.updated", batch).await.unwrap();
    assert_eq!(deliveries.len(), 52);
    let dropped: Vec<usize> = (0..52).filter(|&i| deliveries[i].attempts == vec![Ok(Outcome::Drop)]).collect();
    assert_eq!(dropped, vec![10, 20]);
    assert!(deliveries.iter().enumerate().all(|(i, d)| dropped.contains(&i) || d.settlement == Settlement::Acked));
    assert_eq!(index.search("shirt").len(), 50);
    assert_eq!(index.search("cotton").len(), 50);
}
