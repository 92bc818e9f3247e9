//! Publishing over real gRPC to a stand-in of the sidecar's API.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use eventbus::publisher::{DaprPublisher, Message, PublishError, Publisher};
use eventbus::testing::TestSidecar;

#[tokio::test]
async fn publishes_through_the_sidecar_api() {
    let stub = TestSidecar::start_api().await.unwrap();
    let publisher = DaprPublisher::connect_to(format!("http://{}", stub.address())).await.unwrap();
    example_publish::publish(
        &publisher,
        "pubsub-redis",
        "order.created",
        r#"{"order_id":"o-1"}"#,
        &["ttlInSeconds=60".into()],
    )
    .await
    .unwrap();
    let published = stub.published();
    assert_eq!(published.len(), 1);
    assert_eq!((published[0].pubsub.as_str(), published[0].topic.as_str()), ("pubsub-redis", "order.created"));
    assert_eq!(published[0].content_type, "application/json");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&published[0].data).unwrap()["order_id"], "o-1");
    assert_eq!(published[0].metadata.get("ttlInSeconds").map(String::as_str), Some("60"));

    let error = example_publish::publish(&publisher, "p", "t", "{not json", &[]).await.unwrap_err();
    assert!(error.to_string().contains("not JSON"));
}

#[tokio::test]
async fn an_unreachable_sidecar_is_named_with_its_cause() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("http://127.0.0.1:{port}");
    let error = DaprPublisher::connect_to(address.clone()).await.unwrap_err();
    assert!(error.to_string().contains(&address), "{error}");
    assert!(std::error::Error::source(&error).is_some(), "the cause is kept: {error:?}");
}

#[tokio::test]
async fn a_failure_that_may_pass_is_retried_and_a_refusal_is_not() {
    let stub = TestSidecar::start_api().await.unwrap();
    let publisher = DaprPublisher::connect_to(format!("http://{}", stub.address()))
        .await
        .unwrap()
        .retries(3, Duration::from_millis(1));
    let message = || Message::json("pubsub", "order.created", &serde_json::json!({"order_id": "o-1"})).unwrap();

    // The sidecar restarting: two failures, then the third call lands.
    stub.fail_publishes(2, eventbus::status::Code::Unavailable);
    publisher.publish(message()).await.unwrap();
    assert_eq!((stub.failed_publishes(), stub.published().len()), (2, 1));

    // Still down after every attempt: the error says where and how often.
    stub.fail_publishes(5, eventbus::status::Code::Unavailable);
    let error = publisher.publish(message()).await.unwrap_err();
    assert!(matches!(error, PublishError::Sidecar { attempts: 3, .. }), "{error:?}");
    assert!(error.to_string().contains(&stub.address().to_string()), "{error}");

    // A refusal does not pass by retrying: one call.
    stub.fail_publishes(5, eventbus::status::Code::NotFound);
    let error = publisher.publish(message()).await.unwrap_err();
    assert!(matches!(error, PublishError::Sidecar { attempts: 1, .. }), "{error:?}");
    assert_eq!(stub.failed_publishes(), 1);
}
