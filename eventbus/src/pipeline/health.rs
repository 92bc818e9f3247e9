//! Readiness as `grpc.health.v1` reports it: tonic-health's reporter, fed
//! by what happens rather than by a timer.
//!
//! The readiness probe ([`ServerBuilder::readiness`](crate::ServerBuilder::readiness))
//! is a question ("does the database answer?"), so it runs when someone
//! asks: daprd's `HealthCheck`, a `grpc.health.v1` `Check` or the start of
//! a `Watch`, `/healthz`,
//! [`ServerHandle::ready`](crate::server::ServerHandle::ready). Each answer
//! that differs from the last, and the start of draining, is pushed to the
//! reporter; `Watch` streams see the change at once. Nothing polls: a
//! client that only watches sees a failing probe when the next check runs
//! (daprd and Kubernetes check periodically).

use tonic_health::ServingStatus;
use tonic_health::server::{HealthReporter, HealthService};

/// The services `grpc.health.v1.Health` knows, besides the empty name (the whole server).
const SERVICES: [&str; 4] = [
    "",
    "dapr.proto.runtime.v1.AppCallback",
    "dapr.proto.runtime.v1.AppCallbackAlpha",
    "dapr.proto.runtime.v1.AppCallbackHealthCheck",
];

/// The reporter and the last status it was given.
pub(crate) struct Health {
    reporter: HealthReporter,
    /// Held while the reporter is updated, so that two answers computed at
    /// once reach it in the order they are recorded here.
    last: tokio::sync::Mutex<Option<ServingStatus>>,
}

impl Health {
    pub(crate) fn new() -> Self {
        Health { reporter: HealthReporter::new(), last: tokio::sync::Mutex::new(None) }
    }

    /// The `grpc.health.v1.Health` service, answering from the reporter.
    pub(crate) fn service(&self) -> HealthService {
        HealthService::from_health_reporter(self.reporter.clone())
    }

    /// Reports the readiness just computed, when it changed.
    pub(crate) async fn report(&self, ready: bool) {
        metrics::gauge!("eventbus_ready").set(if ready { 1.0 } else { 0.0 });
        let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
        let mut last = self.last.lock().await;
        if *last == Some(status) {
            return;
        }
        *last = Some(status);
        for service in SERVICES {
            self.reporter.set_service_status(service, status).await;
        }
    }
}
