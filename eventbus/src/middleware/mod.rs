//! Middleware: tower layers around every call of a handler.
//!
//! Every callback the sidecar makes runs through the same stack once: topic
//! events (one, or the entries of a bulk request for a consumer that takes
//! whole batches), service invocations, input binding events and jobs. The
//! stack is a `tower::Service<`[`Request`]`, Response = `[`Response`]`>`
//! that never fails: whatever goes wrong becomes an answer ([`Outcome`]s
//! for events, a [`Status`] for the others). The server stacks, outermost
//! first:
//!
//! | layer | does | when it refuses: events / invocation, binding, job |
//! |---|---|---|
//! | [`TraceLayer`] | a `tracing` span per call (`event`, `invocation`, `binding`, `job`) | – |
//! | [`MetricsLayer`] | counts, durations, in flight (see [`MetricsLayer`]) | – |
//! | [`ConcurrencyLimitLayer`] | per-route limit, one permit per call | `Retry` / `ResourceExhausted` |
//! | [`CatchPanicLayer`] | contains a panicking handler | `Retry` / `Internal` |
//! | [`TimeoutLayer`] | the route's timeout | `Retry` / `DeadlineExceeded` |
//! | your layers ([`ServerBuilder::layer`](crate::ServerBuilder::layer)) | anything, e.g. put a value in [`Request::extensions_mut`] for handlers to take | anything |
//! | the handler | extract, call, map its results | its answer |
//!
//! Layers of one consumer alone go on the consumer
//! ([`ConsumerExt::layer`](crate::consumer::ConsumerExt::layer)), inside
//! these. An invocation, binding or job handler has no layers of its own: a
//! server layer that looks at [`Request::kind`] and [`Request::name`] is
//! one for it alone.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_util::future::BoxFuture;
use tower::util::BoxCloneSyncService;

use crate::binding::BindingEvent;
use crate::event::Envelope;
use crate::extract::Context;
use crate::invoke::{Invocation, Reply};
use crate::outcome::{Outcome, Reason};
use crate::pipeline::invocation::Job;
use crate::registry::Route;
use crate::status::{Code, Status};

/// Declares a unit layer (`$layer`), the service it wraps the rest of the
/// stack in (`$service<S>`), and that service's `call`, whose body sees the
/// rest of the stack as `$inner` (`&mut S`) and the request as `$request`.
macro_rules! call_layer {
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

        impl<S> tower::Service<$crate::middleware::Request> for $service<S>
        where
            S: tower::Service<
                    $crate::middleware::Request,
                    Response = $crate::middleware::Response,
                    Error = std::convert::Infallible,
                >,
            S::Future: Send + 'static,
        {
            type Response = $crate::middleware::Response;
            type Error = std::convert::Infallible;
            type Future = $crate::middleware::CallFuture;

            fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
                self.inner.poll_ready(cx)
            }

            fn call(&mut self, $request: $crate::middleware::Request) -> Self::Future {
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
pub(crate) use handler::{CallHandler, HandlerService};
pub use metrics::{LATENCY_BUCKETS, Metrics, MetricsLayer};
pub use timeout::{Timeout, TimeoutLayer};
pub use trace::{Trace, TraceLayer};

/// Which callback a [`Request`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Topic events: one, or a bulk batch.
    Event,
    /// Service invocation.
    Invocation,
    /// An input binding's event.
    Binding,
    /// A Dapr job.
    Job,
}

impl Kind {
    /// `event`, `invocation`, `binding` or `job` (the `kind` label of metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Invocation => "invocation",
            Kind::Binding => "binding",
            Kind::Job => "job",
        }
    }
}

/// Values a layer hands to the handler of one call (a tenant, an auth
/// principal, a transaction), one per type; the handler takes them with
/// [`Extension<T>`](crate::extract::Extension), or from the `extensions` of an
/// [`Invocation`], [`BindingEvent`] or [`Job`].
///
/// ```
/// use eventbus::middleware::Extensions;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct Tenant(&'static str);
///
/// let mut extensions = Extensions::default();
/// extensions.insert(Tenant("eu"));
/// assert_eq!(extensions.get::<Tenant>(), Some(&Tenant("eu")));
/// ```
#[derive(Clone, Default)]
pub struct Extensions(http::Extensions);

impl Extensions {
    /// Stores `value`, returning the one of its type it replaces.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.0.insert(value)
    }

    /// The value of type `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.get()
    }

    /// The value of type `T`, to change it.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.0.get_mut()
    }

    /// Takes the value of type `T` out.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        self.0.remove()
    }

    /// `true` when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extensions").field("len", &self.0.len()).finish()
    }
}

/// One call of a handler on its way through the middleware.
#[non_exhaustive]
pub struct Request {
    pub(crate) call: Call,
    pub(crate) route: Arc<Route>,
    pub(crate) context: Arc<Context>,
    extensions: Extensions,
}

/// What is called.
pub(crate) enum Call {
    Events(Events),
    Invocation(Invocation),
    Binding(BindingEvent),
    Job(Job),
}

/// One event (the common case, without a slice to allocate) or a batch.
#[derive(Clone)]
pub(crate) enum Events {
    One(Arc<Envelope>),
    Batch(Arc<[Arc<Envelope>]>),
}

impl Request {
    pub(crate) fn new(call: Call, route: Arc<Route>, context: Arc<Context>) -> Self {
        Request { call, route, context, extensions: Extensions::default() }
    }

    /// Which callback this is.
    pub fn kind(&self) -> Kind {
        self.route.kind()
    }

    /// The events, for topic events: one, or the entries of a bulk request
    /// for a consumer that takes whole batches (the response has one outcome
    /// per event, in order). Empty for the other kinds.
    pub fn events(&self) -> &[Arc<Envelope>] {
        match &self.call {
            Call::Events(Events::One(event)) => std::slice::from_ref(event),
            Call::Events(Events::Batch(events)) => events,
            _ => &[],
        }
    }

    /// The invocation, for service invocation.
    pub fn invocation(&self) -> Option<&Invocation> {
        match &self.call {
            Call::Invocation(invocation) => Some(invocation),
            _ => None,
        }
    }

    /// The topic (events), method (invocation), binding or job name.
    pub fn name(&self) -> &str {
        self.route.target_name()
    }

    /// The topic, for events (else empty).
    pub fn topic(&self) -> &str {
        self.route.topic()
    }

    /// The pub/sub component, for events (else empty).
    pub fn pubsub(&self) -> &str {
        self.route.pubsub()
    }

    /// The name of the handler.
    pub fn handler(&self) -> &str {
        self.route.name()
    }

    /// What layers hand to the handler.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// What layers hand to the handler, to add to.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// The request's answer when a layer refuses it: every event `Retry`
    /// (the sidecar delivers them again), and for the other kinds a failed
    /// [`Status`] of `code`. The events' [`Reason`]
    /// follows from `code`: `DeadlineExceeded` is `timeout`,
    /// `ResourceExhausted` is `overload`, `Unavailable` is `draining`, any
    /// other is `refused`.
    pub fn refuse(&self, code: Code, message: impl Into<String>) -> Response {
        let reason = match code {
            Code::DeadlineExceeded => Reason::Timeout,
            Code::ResourceExhausted => Reason::Overload,
            Code::Unavailable => Reason::Draining,
            _ => Reason::Refused,
        };
        self.refusal().refuse(reason, code, message)
    }

    /// What a layer keeps to answer for the request once it has passed it on
    /// (reference counts, no copy of the events).
    pub(crate) fn refusal(&self) -> Refusal {
        let events = match &self.call {
            Call::Events(events) => Some(events.clone()),
            _ => None,
        };
        Refusal { route: self.route.clone(), events }
    }

    /// The request's parts, for the handler: what is called, and the
    /// context with the extensions layers added.
    pub(crate) fn into_parts(self) -> (Call, Arc<Route>, Context) {
        let context = self.context.with_extensions(self.extensions);
        (self.call, self.route, context)
    }

    /// The ids for logs: of the events (the first ones and how many more),
    /// or the name of the call.
    pub(crate) fn ids(&self) -> Ids<'_> {
        Ids(self.events(), self.name())
    }
}

/// A request's answer-to-be, for a layer that passed the request on.
#[derive(Clone)]
pub(crate) struct Refusal {
    route: Arc<Route>,
    events: Option<Events>,
}

impl Refusal {
    fn events(&self) -> &[Arc<Envelope>] {
        match &self.events {
            Some(Events::One(event)) => std::slice::from_ref(event),
            Some(Events::Batch(events)) => events,
            None => &[],
        }
    }

    /// Every event `Retry` for `reason`, or a failed status of `code`.
    pub(crate) fn refuse(&self, reason: Reason, code: Code, message: impl Into<String>) -> Response {
        match self.route.kind() {
            Kind::Event => {
                let count = self.events().len();
                Response::events(vec![Outcome::Retry; count], vec![reason; count])
            }
            Kind::Invocation => Response(Answer::Reply(Err(Status::new(code, message)))),
            Kind::Binding | Kind::Job => Response(Answer::Done(Err(Status::new(code, message)))),
        }
    }

    pub(crate) fn ids(&self) -> Ids<'_> {
        Ids(self.events(), self.route.target_name())
    }

    pub(crate) fn handler(&self) -> &str {
        self.route.name()
    }

    pub(crate) fn topic(&self) -> &str {
        self.route.topic()
    }

    pub(crate) fn route(&self) -> &Route {
        &self.route
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("kind", &self.kind())
            .field("ids", &format_args!("{}", self.ids()))
            .field("name", &self.name())
            .field("handler", &self.handler())
            .finish_non_exhaustive()
    }
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub struct Response(pub(crate) Answer);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// One outcome per event, in order, and why.
    Events(Vec<Outcome>, Vec<Reason>),
    /// An invocation's reply.
    Reply(Result<Reply, Status>),
    /// A binding's or a job's.
    Done(Result<(), Status>),
}

impl Response {
    pub(crate) fn events(outcomes: Vec<Outcome>, reasons: Vec<Reason>) -> Self {
        Response(Answer::Events(outcomes, reasons))
    }

    /// The outcomes of topic events, one per event, in order.
    pub fn outcomes(&self) -> Option<&[Outcome]> {
        match &self.0 {
            Answer::Events(outcomes, _) => Some(outcomes),
            _ => None,
        }
    }

    /// Why each topic event got its outcome, in order.
    pub fn reasons(&self) -> Option<&[Reason]> {
        match &self.0 {
            Answer::Events(_, reasons) => Some(reasons),
            _ => None,
        }
    }

    /// Why an invocation, binding event or job failed.
    pub fn status(&self) -> Option<&Status> {
        match &self.0 {
            Answer::Reply(Err(status)) | Answer::Done(Err(status)) => Some(status),
            _ => None,
        }
    }

    /// `true` when every event succeeded, or the call did.
    pub fn is_success(&self) -> bool {
        match &self.0 {
            Answer::Events(outcomes, _) => outcomes.iter().all(|o| *o == Outcome::Success),
            Answer::Reply(result) => result.is_ok(),
            Answer::Done(result) => result.is_ok(),
        }
    }
}

/// The ids of a request's events, or its name, displayed briefly for logs.
pub(crate) struct Ids<'a>(&'a [Arc<Envelope>], &'a str);

impl std::fmt::Display for Ids<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 3;
        let events = self.0;
        if events.is_empty() {
            return f.write_str(self.1);
        }
        for (n, envelope) in events.iter().take(SHOWN).enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            f.write_str(&envelope.id)?;
        }
        if events.len() > SHOWN {
            write!(f, " and {} more", events.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// The boxed stack every call runs through; [`ServerBuilder::layer`](crate::ServerBuilder::layer)
/// wraps layers around one.
#[derive(Clone)]
pub struct BoxService(BoxCloneSyncService<Request, Response, Infallible>);

impl BoxService {
    /// Boxes `service`.
    pub fn new<S>(service: S) -> Self
    where
        S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        BoxService(BoxCloneSyncService::new(service))
    }
}

impl std::fmt::Debug for BoxService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxService")
    }
}

impl tower::Service<Request> for BoxService {
    type Response = Response;
    type Error = Infallible;
    type Future = CallFuture;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> CallFuture {
        self.0.call(request)
    }
}

/// The future of the built-in layers and of [`BoxService`].
pub type CallFuture = BoxFuture<'static, Result<Response, Infallible>>;

/// Runs `service` for `request`; the service is infallible by construction.
pub(crate) async fn run(service: BoxService, request: Request) -> Response {
    use tower::ServiceExt;
    match service.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
