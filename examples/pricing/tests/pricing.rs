//! Pricing through the test sidecar: routing by event type, and the nightly job.
#![allow(clippy::unwrap_used)]

use eventbus::testing::{CloudEvent, Settlement, TestSidecar};
use example_pricing::{PriceBook, server};
use serde_json::json;

#[tokio::test]
async fn events_are_routed_by_type_and_the_nightly_job_reprices() {
    let book = PriceBook::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        server(book.clone())
            .unwrap()
            .serve(eventbus::Transport::grpc_listener(listener))
            .with_graceful_shutdown(std::future::pending()),
    );
    let sidecar = TestSidecar::connect(address).await.unwrap().max_attempts(1);

    let routes = sidecar.subscription("price.changed").unwrap().routes.clone().unwrap();
    assert_eq!(
        routes.rules.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        vec!["/prices/v2", "/prices/discount"]
    );
    assert_eq!(routes.default, "/prices");

    let v1 = sidecar.publish("price.changed", CloudEvent::json(&json!({"sku": "a", "price": "12.5"}))).await.unwrap();
    assert_eq!((v1.path.as_str(), &v1.settlement), ("/prices", &Settlement::Acked));
    assert_eq!(book.price("a"), Some(1250));

    let v2 = CloudEvent::json(&json!({"sku": "b", "cents": 2000})).event_type("price.changed.v2");
    assert_eq!(sidecar.publish("price.changed", v2).await.unwrap().path, "/prices/v2");
    assert_eq!(book.price("b"), Some(2000));

    let discount = CloudEvent::json(&json!({"sku": "b", "percent": 25})).event_type("price.discount");
    sidecar.publish("price.changed", discount).await.unwrap();
    assert_eq!(book.price("b"), Some(1500));

    // A v1 event with a garbled price is poison.
    let bad =
        sidecar.publish("price.changed", CloudEvent::json(&json!({"sku": "c", "price": "twelve"}))).await.unwrap();
    assert_eq!(bad.settlement, Settlement::DeadLettered("price.changed.dlq".into()));

    sidecar.trigger_job("nightly-repricing", br#"{"percent": 10}"#).await.unwrap();
    assert_eq!((book.price("a"), book.price("b")), (Some(1125), Some(1350)));
}
