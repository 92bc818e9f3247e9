//! Middleware: tower layers around the handling of one event.
//!
//! Every event, single or from a bulk batch, runs through one
//! [`EventService`]: a `tower::Service<EventRequest, Response = Outcome>`
//! that never fails: whatever goes wrong becomes an [`Outcome`]. The server
//! stacks, outermost first:
//!
//! | layer | does | answers |
//! |---|---|---|
//! | [`TraceLayer`] | a `tracing` span per event (topic, pubsub, id, type, trace id) | – |
//! | [`MetricsLayer`] | `eventbus_events_total`, `eventbus_handler_duration_seconds`, `eventbus_events_in_flight` | – |
//! | [`ConcurrencyLimitLayer`] | per-topic (or per-handler) limit | `Retry` when full |
//! | [`CatchPanicLayer`] | contains a panicking handler | `Retry` |
//! | [`TimeoutLayer`] | the handler's timeout | `Retry` |
//! | your layers ([`ServerBuilder::layer`](crate::ServerBuilder::layer)) | anything | anything |
//! | the handler | decode, call, map its result | `Success` / `Retry` / `Drop` |

use std::convert::Infallible;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tower::util::BoxCloneSyncService;

use crate::consumer::Context;
use crate::event::Envelope;
use crate::outcome::Outcome;
use crate::registry::Route;

mod catch_panic;
mod concurrency;
mod handler;
mod metrics;
mod timeout;
mod trace;

pub use catch_panic::{CatchPanic, CatchPanicLayer};
pub use concurrency::{ConcurrencyLimit, ConcurrencyLimitLayer};
pub use handler::HandlerService;
pub(crate) use handler::outcome_of;
pub use metrics::{Metrics, MetricsLayer};
pub use timeout::{Timeout, TimeoutLayer};
pub use trace::{Trace, TraceLayer};

/// One event on its way to its handler.
#[derive(Clone)]
pub struct EventRequest {
    /// The event as delivered.
    pub envelope: Arc<Envelope>,
    /// The route the registry chose.
    pub route: Arc<Route>,
    /// Shared state for handler arguments.
    pub context: Arc<Context>,
}

impl std::fmt::Debug for EventRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRequest")
            .field("id", &self.envelope.id)
            .field("topic", &self.envelope.topic)
            .field("route", &self.route)
            .finish()
    }
}

/// The boxed service every event runs through.
pub type EventService = BoxCloneSyncService<EventRequest, Outcome, Infallible>;

/// The future of the built-in layers.
pub type EventFuture = BoxFuture<'static, Result<Outcome, Infallible>>;

/// Runs `service` for `request`; the service is infallible by construction.
pub(crate) async fn run(service: EventService, request: EventRequest) -> Outcome {
    use tower::ServiceExt;
    match service.oneshot(request).await {
        Ok(outcome) => outcome,
        Err(never) => match never {},
    }
}
