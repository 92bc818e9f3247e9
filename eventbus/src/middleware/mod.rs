//! Middleware: tower layers around every call of a handler.
//!
//! Every event, single or from a bulk request, runs through one
//! [`EventService`] once: a `tower::Service<EventRequest, Response =
//! Vec<Outcome>>` that never fails: whatever goes wrong becomes an
//! [`Outcome`]. A request holds one event, or, for a consumer that takes
//! whole batches, the entries of one bulk request; the response has one
//! outcome per event, in order. The server stacks, outermost first:
//!
//! | layer | does | answers |
//! |---|---|---|
//! | [`TraceLayer`] | a `tracing` span per request (topic, pubsub, handler, entries; id, type and trace ids of a single event) | – |
//! | [`MetricsLayer`] | `eventbus_events_total`, `eventbus_handler_duration_seconds`, `eventbus_events_in_flight` | – |
//! | [`ConcurrencyLimitLayer`] | per-topic (or per-handler) limit, one permit per request | `Retry` when full |
//! | [`CatchPanicLayer`] | contains a panicking handler | `Retry` |
//! | [`TimeoutLayer`] | the handler's timeout | `Retry` |
//! | your layers ([`ServerBuilder::layer`](crate::ServerBuilder::layer)) | anything | anything |
//! | the handler | extract, call, map its results | `Success` / `Retry` / `Drop` |

use std::convert::Infallible;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tower::util::BoxCloneSyncService;

use crate::event::Envelope;
use crate::extract::Context;
use crate::outcome::Outcome;
use crate::registry::Route;

/// Declares a unit layer (`$layer`), the service it wraps the rest of the
/// stack in (`$service<S>`), and that service's `call`, whose body sees the
/// rest of the stack as `$inner` (`&mut S`) and the request as `$request`.
macro_rules! event_layer {
    (
        $(#[$doc:meta])*
        $layer:ident wraps in $service:ident;

        fn call($inner:ident, $request:ident) $body:block
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $layer;

        impl<S> tower::Layer<S> for $layer {
            type Service = $service<S>;
            fn layer(&self, inner: S) -> $service<S> {
                $service { inner }
            }
        }

        #[doc = concat!("See [`", stringify!($layer), "`].")]
        #[derive(Debug, Clone)]
        pub struct $service<S> {
            inner: S,
        }

        impl<S> tower::Service<$crate::middleware::EventRequest> for $service<S>
        where
            S: tower::Service<
                    $crate::middleware::EventRequest,
                    Response = Vec<$crate::outcome::Outcome>,
                    Error = std::convert::Infallible,
                >,
            S::Future: Send + 'static,
        {
            type Response = Vec<$crate::outcome::Outcome>;
            type Error = std::convert::Infallible;
            type Future = $crate::middleware::EventFuture;

            fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
                self.inner.poll_ready(cx)
            }

            fn call(&mut self, $request: $crate::middleware::EventRequest) -> Self::Future {
                let $inner = &mut self.inner;
                $body
            }
        }
    };
}

mod catch_panic;
mod concurrency;
mod handler;
mod metrics;
#[cfg(feature = "opentelemetry")]
pub(crate) mod otel;
mod timeout;
mod trace;

pub use catch_panic::{CatchPanic, CatchPanicLayer};
pub use concurrency::{ConcurrencyLimit, ConcurrencyLimitLayer};
pub(crate) use handler::HandlerService;
pub use metrics::{Metrics, MetricsLayer};
pub use timeout::{Timeout, TimeoutLayer};
pub use trace::{Trace, TraceLayer};

/// The events of one handler call on their way through the middleware.
#[derive(Clone)]
#[non_exhaustive]
pub struct EventRequest {
    events: Events,
    route: Arc<Route>,
    context: Arc<Context>,
}

/// One event (the common case, without a slice to allocate) or a batch.
#[derive(Clone)]
pub(crate) enum Events {
    One(Arc<Envelope>),
    Batch(Arc<[Arc<Envelope>]>),
}

impl EventRequest {
    pub(crate) fn new(events: Events, route: Arc<Route>, context: Arc<Context>) -> Self {
        EventRequest { events, route, context }
    }

    /// The events: one, or the entries of a bulk request for a consumer that
    /// takes whole batches. The response has one outcome per event, in order.
    pub fn events(&self) -> &[Arc<Envelope>] {
        match &self.events {
            Events::One(event) => std::slice::from_ref(event),
            Events::Batch(events) => events,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        self.route.topic()
    }

    /// The pub/sub component.
    pub fn pubsub(&self) -> &str {
        self.route.pubsub()
    }

    /// The name of the consumer that handles them.
    pub fn handler(&self) -> &str {
        self.route.name()
    }

    /// The request's answer when every event gets `outcome` (e.g. a layer
    /// that refuses the whole request).
    pub fn every(&self, outcome: Outcome) -> Vec<Outcome> {
        vec![outcome; self.events().len()]
    }

    /// The event ids, for logs: the id, or the first ids and how many more.
    pub(crate) fn ids(&self) -> Ids<'_> {
        Ids(self.events())
    }
}

impl std::fmt::Debug for EventRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRequest")
            .field("ids", &format_args!("{}", self.ids()))
            .field("topic", &self.topic())
            .field("handler", &self.handler())
            .finish()
    }
}

/// The ids of a request's events, displayed briefly for logs.
pub(crate) struct Ids<'a>(&'a [Arc<Envelope>]);

impl std::fmt::Display for Ids<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 3;
        for (n, envelope) in self.0.iter().take(SHOWN).enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            f.write_str(&envelope.id)?;
        }
        if self.0.len() > SHOWN {
            write!(f, " and {} more", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// The boxed service every event runs through.
pub type EventService = BoxCloneSyncService<EventRequest, Vec<Outcome>, Infallible>;

/// The future of the built-in layers.
pub(crate) type EventFuture = BoxFuture<'static, Result<Vec<Outcome>, Infallible>>;

/// Runs `service` for `request`; the service is infallible by construction.
pub(crate) async fn run(service: EventService, request: EventRequest) -> Vec<Outcome> {
    use tower::ServiceExt;
    match service.oneshot(request).await {
        Ok(outcome) => outcome,
        Err(never) => match never {},
    }
}
