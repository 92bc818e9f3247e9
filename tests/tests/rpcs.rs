//! Every AppCallback and AppCallbackAlpha RPC is answered, never with a panic.
#![allow(clippy::unwrap_used)]

mod common;

use common::{builder, start};
use eventbus::HandlerError;
use eventbus::binding::BindingEvent;
use eventbus::grpc::proto::runtime::JobEventRequest;
use eventbus::invoke::Json;
use eventbus::server::Job;
use eventbus::status::{Code, Status};

async fn app() -> common::App {
    start(
        builder()
            .invocation("stock", |sku: String| async move { format!("stock of {sku}") })
            .invocation("double", |Json(n): Json<u64>| async move {
                n.checked_mul(2).map(Json).ok_or_else(|| Status::out_of_range("too large"))
            })
            .binding("orders-queue", |event: BindingEvent| async move {
                if event.data.as_ref() == b"payload" {
                    Ok(())
                } else {
                    Err(Status::invalid_argument("not the payload"))
                }
            })
            .job("nightly", |job: Job| async move {
                if job.data.as_ref() == b"fail" {
                    Err(HandlerError::transient(anyhow::anyhow!("failed")))
                } else {
                    Ok(())
                }
            }),
    )
    .await
}

#[tokio::test]
async fn invocation_registered_and_unregistered() {
    let app = app().await;
    let sidecar = app.sidecar().await;
    let response = sidecar.invoke("stock", b"sku-1").await.unwrap();
    assert_eq!(response.data, &b"stock of sku-1"[..]);
    assert_eq!(sidecar.invoke("nope", b"").await.unwrap_err().code(), Code::Unimplemented);
}

#[tokio::test]
async fn typed_invocations_decode_requests_and_encode_answers() {
    let app = app().await;
    let sidecar = app.sidecar().await;
    let doubled = sidecar.invoke("double", b"21").await.unwrap();
    assert_eq!(doubled.content_type, "application/json");
    assert_eq!(doubled.data, &b"42"[..]);
    let bad = sidecar.invoke("double", b"twenty-one").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("double: the request is not the expected JSON"), "{}", bad.message());
    assert_eq!(sidecar.invoke("double", u64::MAX.to_string().as_bytes()).await.unwrap_err().code(), Code::OutOfRange);
}

#[tokio::test]
async fn bindings_listed_and_delivered() {
    let app = app().await;
    let sidecar = app.sidecar().await;
    let listed = sidecar.app().list_input_bindings(()).await.unwrap().into_inner();
    assert_eq!(listed.bindings, vec!["orders-queue".to_string()]);
    sidecar.binding(BindingEvent::new("orders-queue", &b"payload"[..])).await.unwrap();
    let refused = sidecar.binding(BindingEvent::new("orders-queue", &b"other"[..])).await.unwrap_err();
    assert_eq!((refused.code(), refused.message()), (Code::InvalidArgument, "not the payload"));
    let unknown = sidecar.binding(BindingEvent::new("other", &b""[..])).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn jobs_on_the_stable_and_alpha_rpcs() {
    let app = app().await;
    let sidecar = app.sidecar().await;
    sidecar.trigger_job("nightly", b"ok").await.unwrap();
    assert_eq!(sidecar.trigger_job("nightly", b"fail").await.unwrap_err().code(), Code::Internal);
    assert_eq!(sidecar.trigger_job("unknown", b"").await.unwrap_err().code(), Code::NotFound);
    // The name may arrive only in `method` ("job/<name>").
    let by_method = JobEventRequest { method: "job/nightly".into(), ..Default::default() };
    #[allow(deprecated)]
    let alpha = sidecar.app_alpha().on_job_event_alpha1(by_method).await;
    alpha.unwrap();
}

#[tokio::test]
async fn list_topic_subscriptions_and_health_with_nothing_registered() {
    let app = start(builder()).await;
    let sidecar = app.sidecar().await;
    assert!(sidecar.subscriptions().is_empty());
    sidecar.health().await.unwrap();
}
