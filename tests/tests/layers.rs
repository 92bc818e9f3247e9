//! One stack for every callback: a layer of the user's, the built-in
//! timeout and panic containment, and a value a layer hands the handler are
//! seen by topic events, bulk batches, service invocations, binding events
//! and jobs alike.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{builder, start};
use eventbus::binding::BindingEvent;
use eventbus::extract::Extension;
use eventbus::invoke::Invocation;
use eventbus::middleware::{BoxService, Kind, Request};
use eventbus::server::Job;
use eventbus::status::{Code, Status};
use eventbus::testing::{CloudEvent, Settlement};
use eventbus::tower::{self, ServiceExt};
use eventbus::{Batch, Event, HandlerError, Outcome, ServerBuilder, Subscription, handler};

/// What a layer hands the handlers.
#[derive(Clone, Debug, PartialEq)]
struct Tenant(&'static str);

type Seen = Arc<Mutex<Vec<String>>>;

/// A layer that records each call's kind and name and hands on a tenant.
fn tenant_layer(builder: ServerBuilder, calls: &Seen) -> ServerBuilder {
    let calls = calls.clone();
    builder.layer(tower::layer::layer_fn(move |inner: BoxService| {
        let calls = calls.clone();
        tower::service_fn(move |mut request: Request| {
            calls.lock().unwrap().push(format!("{:?}:{}", request.kind(), request.name()));
            request.extensions_mut().insert(Tenant("eu"));
            inner.clone().oneshot(request)
        })
    }))
}

fn note(seen: &Seen, what: String) {
    seen.lock().unwrap().push(what);
}

#[tokio::test]
async fn a_users_layer_and_its_extension_reach_every_kind_of_call() {
    let (calls, seen) = (Seen::default(), Seen::default());
    let (single, batched, invoked, bound, jobbed) =
        (seen.clone(), seen.clone(), seen.clone(), seen.clone(), seen.clone());
    let app = start(
        tenant_layer(builder(), &calls)
            .consumer(handler(
                Subscription::new("orders"),
                move |_: Event<serde_json::Value>, Extension(t): Extension<Tenant>| {
                    note(&single, format!("event {}", t.0));
                    async {}
                },
            ))
            .consumer(handler(
                Subscription::new("products").bulk(10, 10),
                move |events: Batch<serde_json::Value>, Extension(t): Extension<Tenant>| {
                    note(&batched, format!("batch of {} {}", events.len(), t.0));
                    async move { events.answers(events.iter().map(|_| Outcome::Success)) }
                },
            ))
            .invocation("stock", move |invocation: Invocation| {
                let tenant = invocation.extensions.get::<Tenant>().cloned();
                note(&invoked, format!("invocation {tenant:?}"));
                async {}
            })
            .binding("queue", move |event: BindingEvent| {
                note(&bound, format!("binding {:?}", event.extensions.get::<Tenant>()));
                async {}
            })
            .job("nightly", move |job: Job| {
                note(&jobbed, format!("job {:?}", job.extensions.get::<Tenant>()));
                async { Ok::<(), HandlerError>(()) }
            }),
    )
    .await;
    let sidecar = app.sidecar().await;
    let event = || CloudEvent::json(&serde_json::json!({}));
    assert_eq!(sidecar.publish("orders", event()).await.unwrap().settlement, Settlement::Acked);
    let bulk = sidecar.publish_bulk("products", vec![event(), event()]).await.unwrap();
    assert!(bulk.iter().all(|d| d.settlement == Settlement::Acked));
    sidecar.invoke("stock", b"{}").await.unwrap();
    sidecar.binding(BindingEvent::new("queue", &b"{}"[..])).await.unwrap();
    sidecar.trigger_job("nightly", b"{}").await.unwrap();

    assert_eq!(
        *seen.lock().unwrap(),
        [
            "event eu",
            "batch of 2 eu",
            "invocation Some(Tenant(\"eu\"))",
            "binding Some(Tenant(\"eu\"))",
            "job Some(Tenant(\"eu\"))"
        ]
    );
    assert_eq!(
        *calls.lock().unwrap(),
        ["Event:orders", "Event:products", "Invocation:stock", "Binding:queue", "Job:nightly"]
    );
}

#[tokio::test]
async fn an_extension_no_layer_added_retries_the_event_and_names_the_type() {
    let app = start(builder().consumer(handler(Subscription::new("orders"), |_: Extension<Tenant>| async {}))).await;
    let sidecar = app.sidecar().await.max_attempts(2);
    let delivery = sidecar.publish("orders", CloudEvent::json(&serde_json::json!({}))).await.unwrap();
    assert_eq!(delivery.attempts, [Ok(Outcome::Retry), Ok(Outcome::Retry)], "a missing layer never dead-letters");
}

fn boom() {
    panic!("boom")
}

#[tokio::test]
async fn timeouts_and_panics_are_answered_for_every_kind_of_call() {
    let never = || std::future::pending::<()>();
    let app = start(
        builder()
            .timeout(Duration::from_millis(50))
            .consumer(handler(Subscription::new("slow"), move |_: Event<serde_json::Value>| never()))
            .invocation("slow", move |_: Invocation| never())
            .binding("slow", move |_: BindingEvent| never())
            .job("slow", move |_: Job| async move {
                never().await;
                Ok::<(), HandlerError>(())
            })
            .invocation("boom", |_: Invocation| async { boom() })
            .binding("boom", |_: BindingEvent| async { boom() })
            .job("boom", |_: Job| async {
                boom();
                Ok::<(), HandlerError>(())
            }),
    )
    .await;
    let sidecar = app.sidecar().await.max_attempts(1);
    let slow = sidecar.publish("slow", CloudEvent::json(&serde_json::json!({}))).await.unwrap();
    assert_eq!(slow.attempts, [Ok(Outcome::Retry)]);
    let code = |result: Result<(), Status>| result.unwrap_err().code();
    assert_eq!(sidecar.invoke("slow", b"{}").await.unwrap_err().code(), Code::DeadlineExceeded);
    assert_eq!(code(sidecar.binding(BindingEvent::new("slow", &b""[..])).await), Code::DeadlineExceeded);
    assert_eq!(code(sidecar.trigger_job("slow", b"{}").await), Code::DeadlineExceeded);
    assert_eq!(sidecar.invoke("boom", b"{}").await.unwrap_err().code(), Code::Internal);
    assert_eq!(code(sidecar.binding(BindingEvent::new("boom", &b""[..])).await), Code::Internal);
    assert_eq!(code(sidecar.trigger_job("boom", b"{}").await), Code::Internal);
    // The server is still serving.
    sidecar.health().await.unwrap();
}

#[tokio::test]
async fn a_layer_can_refuse_any_call_with_the_answer_of_its_kind() {
    let app = start(
        builder()
            .layer(tower::layer::layer_fn(|inner: BoxService| {
                tower::service_fn(move |request: Request| {
                    let refuse = request.kind() != Kind::Event && request.name() == "closed";
                    let refused = request.refuse(Code::PermissionDenied, "closed for maintenance");
                    let inner = inner.clone();
                    async move { if refuse { Ok(refused) } else { inner.oneshot(request).await } }
                })
            }))
            .invocation("closed", |_: Invocation| async {})
            .invocation("open", |_: Invocation| async {}),
    )
    .await;
    let sidecar = app.sidecar().await;
    let refused = sidecar.invoke("closed", b"{}").await.unwrap_err();
    assert_eq!((refused.code(), refused.message()), (Code::PermissionDenied, "closed for maintenance"));
    sidecar.invoke("open", b"{}").await.unwrap();
}

#[tokio::test]
async fn a_consumers_own_layers_and_timeout_are_its_alone() {
    use eventbus::consumer::ConsumerExt;
    use eventbus::middleware::TimeoutLayer;

    let tenant = |inner: BoxService| {
        tower::service_fn(move |mut request: Request| {
            request.extensions_mut().insert(Tenant("eu"));
            inner.clone().oneshot(request)
        })
    };
    let app = start(
        builder()
            .timeout(Duration::from_millis(50))
            // Longer than the server's: its own replaces it.
            .consumer(
                handler(Subscription::new("patient"), |_: Event<serde_json::Value>| async {
                    tokio::time::sleep(Duration::from_millis(200)).await; // the work outlasts the server's 50 ms
                })
                .layer(TimeoutLayer::new(Duration::from_secs(30))),
            )
            // Shorter than the server's default would be: answered at its own limit.
            .consumer(
                handler(Subscription::new("stuck"), |_: Event<serde_json::Value>| std::future::pending::<()>())
                    .layer(TimeoutLayer::new(Duration::from_millis(20))),
            )
            .consumer(
                handler(
                    Subscription::new("tenanted"),
                    |_: Event<serde_json::Value>, Extension(t): Extension<Tenant>| {
                        assert_eq!(t, Tenant("eu"));
                        async {}
                    },
                )
                .layer(tower::layer::layer_fn(tenant)),
            )
            .consumer(handler(Subscription::new("untenanted"), |_: Extension<Tenant>| async {})),
    )
    .await;
    let sidecar = app.sidecar().await.max_attempts(1);
    let publish = |topic: &'static str| {
        let sidecar = &sidecar;
        async move { sidecar.publish(topic, CloudEvent::json(&serde_json::json!({}))).await.unwrap().attempts }
    };
    assert_eq!(publish("patient").await, [Ok(Outcome::Success)]);
    assert_eq!(publish("stuck").await, [Ok(Outcome::Retry)]);
    assert_eq!(publish("tenanted").await, [Ok(Outcome::Success)]);
    assert_eq!(publish("untenanted").await, [Ok(Outcome::Retry)], "another consumer's layer is not this one's");
}
