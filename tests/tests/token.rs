//! `dapr-api-token`: checked on data-plane RPCs, not on list and health.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Order, builder, order, start};
use eventbus::binding::BindingEvent;
use eventbus::grpc::proto::runtime::TopicEventBulkRequest;
use eventbus::invoke::Invocation;
use eventbus::status::Code;
use eventbus::testing::{CloudEvent, Settlement};
use eventbus::{Event, Subscription, handler};

async fn app() -> common::App {
    start(
        builder()
            .api_token(Some("s3cret".to_string()))
            .consumer(handler(Subscription::new("orders"), |_: Event<Order>| async {}))
            .invocation("stock", |_: Invocation| async {})
            .binding("cron-binding", |_| async {})
            .job("nightly", |_| async { Ok(()) }),
    )
    .await
}

#[tokio::test]
async fn right_token_is_accepted_everywhere() {
    let app = app().await;
    let sidecar = app.sidecar().await.token("s3cret");
    assert_eq!(sidecar.publish("orders", CloudEvent::json(&order("o"))).await.unwrap().settlement, Settlement::Acked);
    assert_eq!(
        sidecar.publish_bulk("orders", vec![CloudEvent::json(&order("b"))]).await.unwrap()[0].settlement,
        Settlement::Acked
    );
    sidecar.invoke("stock", b"{}").await.unwrap();
    sidecar.trigger_job("nightly", b"{}").await.unwrap();
    sidecar.binding(BindingEvent::new("cron-binding", &b""[..])).await.unwrap();
}

#[tokio::test]
async fn absent_or_wrong_token_is_unauthenticated_on_every_data_plane_rpc() {
    let app = app().await;
    for sidecar in [app.sidecar().await.max_attempts(1), app.sidecar().await.max_attempts(1).token("wrong")] {
        let delivery = sidecar.publish("orders", CloudEvent::json(&order("o"))).await.unwrap();
        assert_eq!(delivery.attempts, vec![Err(Code::Unauthenticated)]);
        let bulk = TopicEventBulkRequest { topic: "orders".into(), pubsub_name: "pubsub".into(), ..Default::default() };
        assert_eq!(
            sidecar.app().on_bulk_topic_event(sidecar.request(bulk)).await.unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(sidecar.invoke("stock", b"{}").await.unwrap_err().code(), Code::Unauthenticated);
        assert_eq!(sidecar.trigger_job("nightly", b"{}").await.unwrap_err().code(), Code::Unauthenticated);
        let binding = sidecar.binding(BindingEvent::new("cron-binding", &b""[..])).await;
        assert_eq!(binding.unwrap_err().code(), Code::Unauthenticated);
    }
}

#[tokio::test]
async fn list_and_health_rpcs_need_no_token() {
    let app = app().await;
    // `connect` itself calls ListTopicSubscriptions without a token.
    let sidecar = app.sidecar().await;
    assert_eq!(sidecar.subscriptions().len(), 1);
    sidecar.health().await.unwrap();
    let bindings = sidecar.app().list_input_bindings(()).await.unwrap().into_inner();
    assert_eq!(bindings.bindings, vec!["cron-binding".to_string()]);
}
