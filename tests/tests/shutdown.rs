//! Graceful shutdown: health turns not-serving, late events get RETRY,
//! in-flight handlers finish, then the server returns.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Order, builder, order, start};
use eventbus::testing::{CloudEvent, Settlement};
use eventbus::{Event, Outcome, Subscription, handler};
use tokio::sync::{Semaphore, mpsc};
use tonic::Code;

fn gated(gate: Arc<Semaphore>, started: mpsc::UnboundedSender<String>) -> eventbus::ServerBuilder {
    builder().consumer(handler(Subscription::new("orders"), move |event: Event<Order>| {
        let gate = gate.clone();
        let started = started.clone();
        async move {
            let _ = started.send(event.data.order_id.clone());
            let _permit = gate.acquire().await;
        }
    }))
}

#[tokio::test]
async fn in_flight_handler_finishes_and_a_late_event_gets_retry() {
    let gate = Arc::new(Semaphore::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let mut app = start(gated(gate.clone(), started_tx)).await;
    let sidecar = Arc::new(app.sidecar().await.max_attempts(1));
    sidecar.health().await.unwrap();

    let in_flight = tokio::spawn({
        let sidecar = sidecar.clone();
        async move { sidecar.publish("orders", CloudEvent::json(&order("early"))).await.unwrap() }
    });
    assert_eq!(started.recv().await.unwrap(), "early");

    app.signal_shutdown();
    app.until_draining().await;
    assert_eq!(sidecar.health().await.unwrap_err().code(), eventbus::status::Code::Unavailable);
    let late = sidecar.publish("orders", CloudEvent::json(&order("late"))).await.unwrap();
    assert_eq!(late.attempts, vec![Ok(Outcome::Retry)]);

    gate.add_permits(1);
    assert_eq!(in_flight.await.unwrap().settlement, Settlement::Acked);
    app.join().await.unwrap();
    assert!(started.try_recv().is_err(), "the late event never reached the handler");
}

#[tokio::test]
async fn at_the_drain_deadline_a_stuck_handler_is_answered_retry() {
    let gate = Arc::new(Semaphore::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let mut app = start(gated(gate, started_tx).drain_timeout(Duration::from_millis(100))).await;
    let sidecar = app.sidecar().await.max_attempts(1);
    let stuck = tokio::spawn(async move { sidecar.publish("orders", CloudEvent::json(&order("stuck"))).await });
    started.recv().await.unwrap();
    app.signal_shutdown();
    // Returns although the handler never finishes (the guard turns a hang into a failure).
    tokio::time::timeout(Duration::from_secs(60), app.join()).await.expect("serve returned").unwrap();
    // The stuck event was answered RETRY at the deadline, not cut off.
    let stuck = stuck.await.unwrap().unwrap();
    assert_eq!(stuck.attempts, vec![Ok(Outcome::Retry)]);
}

/// A server whose readiness probe says "database unreachable" until `ready` is set.
async fn start_with_readiness() -> (common::App, Arc<std::sync::atomic::AtomicBool>) {
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = ready.clone();
    let app = start(builder().readiness(move || {
        let ready = probe.load(std::sync::atomic::Ordering::SeqCst);
        async move { if ready { Ok(()) } else { Err("database unreachable".to_string()) } }
    }))
    .await;
    (app, ready)
}

#[tokio::test]
async fn readiness_probe_decides_health() {
    let (app, ready) = start_with_readiness().await;
    let sidecar = app.sidecar().await;
    let error = sidecar.health().await.unwrap_err();
    assert_eq!(error.code(), eventbus::status::Code::Unavailable);
    assert_eq!(error.message(), "database unreachable");
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    sidecar.health().await.unwrap();
    app.stop().await.unwrap();
}

#[tokio::test]
async fn grpc_health_v1_follows_readiness_for_kubernetes_probes() {
    use futures_util::StreamExt;
    use tonic::Request;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let (app, ready) = start_with_readiness().await;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", app.address)).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    let check = |service: &str| Request::new(HealthCheckRequest { service: service.into() });
    let status = |r: tonic_health::pb::HealthCheckResponse| ServingStatus::try_from(r.status).unwrap();

    let mut watch = health.watch(check("")).await.unwrap().into_inner();
    assert_eq!(status(watch.next().await.unwrap().unwrap()), ServingStatus::NotServing);
    assert_eq!(status(health.check(check("")).await.unwrap().into_inner()), ServingStatus::NotServing);
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    let serving = health.check(check("dapr.proto.runtime.v1.AppCallback")).await.unwrap().into_inner();
    assert_eq!(status(serving), ServingStatus::Serving);
    assert_eq!(status(watch.next().await.unwrap().unwrap()), ServingStatus::Serving, "the watch sees the change");
    let unknown = health.check(check("no.such.Service")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    // The drain is pushed to the watch: nothing has to check again.
    let mut app = app;
    app.signal_shutdown();
    assert_eq!(status(watch.next().await.unwrap().unwrap()), ServingStatus::NotServing, "the watch sees the drain");
    drop((watch, health)); // an open stream would hold the connection through shutdown
    app.join().await.unwrap();
}
