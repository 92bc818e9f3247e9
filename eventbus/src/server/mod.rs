//! The server: builder, the three gRPC services, graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{Layer, Service, ServiceBuilder};

use crate::binding::{BindingEvent, IntoBindingAnswer};
use crate::consumer::{BoxedConsumer, Consumer, IntoConsumers};
use crate::event::Envelope;
use crate::extract::Context;
use crate::invoke::{FromInvocation, IntoReply};
use crate::middleware::{
    BoxService, CatchPanicLayer, ConcurrencyLimitLayer, HandlerService, MetricsLayer, Request, Response, TimeoutLayer,
    TraceLayer,
};
use crate::outcome::{DropHook, Dropped, HandlerError, Outcome};
use crate::registry::{Calls, Defaults, Registry};

use crate::error::Error;
use crate::pipeline::{Pipeline, invocation};
use crate::sidecar::TOKEN_ENV;

mod serve;

pub use crate::pipeline::invocation::Job;
pub use serve::{Serve, Transport};

/// The default gRPC port of a Dapr app (`dapr.io/app-port`).
pub const DEFAULT_PORT: u16 = 5005;
/// The default largest event payload: tonic's and daprd's 4 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

type LayerFn = Box<dyn FnOnce(BoxService) -> BoxService + Send>;

/// Builds a [`Server`]; see [`Server::builder`].
#[must_use]
pub struct ServerBuilder {
    consumers: Vec<BoxedConsumer>,
    defaults: Defaults,
    context: Context,
    layers: Vec<LayerFn>,
    calls: Calls,
    token: Option<String>,
    unknown_topic: Outcome,
    missing_id: Outcome,
    bulk_concurrency: usize,
    max_message_size: usize,
    drain_timeout: Duration,
    readiness: Option<invocation::ReadinessFn>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("consumers", &self.consumers.len())
            .field("unknown_topic", &self.unknown_topic)
            .field("missing_id", &self.missing_id)
            .field("max_message_size", &self.max_message_size)
            .field("drain_timeout", &self.drain_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            consumers: Vec::new(),
            defaults: Defaults {
                pubsub: "pubsub".into(),
                timeout: Some(Duration::from_secs(30)),
                concurrency: Some(256),
            },
            context: Context::default(),
            layers: Vec::new(),
            calls: Calls::default(),
            token: std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()),
            unknown_topic: Outcome::Drop,
            missing_id: Outcome::Drop,
            bulk_concurrency: 16,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            drain_timeout: Duration::from_secs(25),
            readiness: None,
        }
    }
}

impl ServerBuilder {
    /// Adds a consumer: `name {}` for a `#[subscribe]` function, a
    /// [`handler`](crate::handler()) consumer, or
    /// any [`Consumer`].
    pub fn consumer(mut self, consumer: impl Consumer) -> Self {
        self.consumers.push(BoxedConsumer::new(consumer));
        self
    }

    /// Adds a group of consumers: `Arc<T>` for a type marked
    /// `#[eventbus::consumer]`, or `consumers![a, b]` for `#[subscribe]`
    /// functions.
    pub fn consumers(mut self, consumers: impl IntoConsumers) -> Self {
        self.consumers.extend(consumers.into_consumers());
        self
    }

    /// The pub/sub of subscriptions that name none (default `"pubsub"`).
    pub fn default_pubsub(mut self, pubsub: impl Into<String>) -> Self {
        self.defaults.pubsub = pubsub.into();
        self
    }

    /// A value handlers receive as [`State<S>`](crate::State).
    pub fn state<S: Clone + Send + Sync + 'static>(mut self, state: S) -> Self {
        self.context.insert(state);
        self
    }

    /// The handler timeout of subscriptions that set none (default 30 s;
    /// `None` for no timeout). A handler over it gets `Retry`.
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.defaults.timeout = timeout.into();
        self
    }

    /// Events in flight per topic, for subscriptions that set no limit of
    /// their own (default 256; `None` for no limit). Beyond it events get `Retry`.
    pub fn concurrency_limit(mut self, limit: impl Into<Option<usize>>) -> Self {
        self.defaults.concurrency = limit.into();
        self
    }

    /// Entries of one bulk request handled at once (default 16).
    pub fn bulk_concurrency(mut self, limit: usize) -> Self {
        self.bulk_concurrency = limit.max(1);
        self
    }

    /// The largest event payload (default 4 MiB). A bigger event is answered
    /// `Drop` with an error log naming it, so it reaches the dead-letter topic
    /// instead of looping through retries. gRPC messages up to four times the
    /// limit are read to be able to answer so.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Calls `hook` for every event answered `DROP`, with why: daprd sends
    /// such an event to its dead-letter topic without a reason, so this is
    /// where an app keeps one (a table, a metric, a log of its own) for the
    /// people who inspect and re-drive dead letters ([`crate::redrive`]).
    /// Called on the event's task: keep it short, or spawn.
    ///
    /// ```
    /// use eventbus::{Server, outcome::Dropped};
    ///
    /// let server = Server::builder()
    ///     .on_drop(|dropped: &Dropped| eprintln!("{} {} dropped: {}", dropped.topic, dropped.id, dropped.reason))
    ///     .build();
    /// # let _ = server;
    /// ```
    pub fn on_drop(mut self, hook: impl Fn(&Dropped) + Send + Sync + 'static) -> Self {
        self.context.insert(DropHook(Arc::new(hook)));
        self
    }

    /// What an event for an unknown pubsub/topic/path gets: `Drop` (default)
    /// or `Retry`. `Success` is allowed but loses the event silently.
    pub fn unknown_topic(mut self, outcome: Outcome) -> Self {
        self.unknown_topic = outcome;
        self
    }

    /// What an event without a CloudEvent `id` gets: `Drop` (default) or
    /// `Retry`. The id is the deduplication key, so such an event cannot be
    /// applied exactly once; it never reaches a handler.
    pub fn missing_id(mut self, outcome: Outcome) -> Self {
        self.missing_id = outcome;
        self
    }

    /// The `dapr-api-token` required on data-plane RPCs (default: the
    /// `APP_API_TOKEN` environment variable; `None` to require none).
    pub fn api_token(mut self, token: impl Into<Option<String>>) -> Self {
        self.token = token.into().filter(|t| !t.is_empty());
        self
    }

    /// How long shutdown waits for in-flight handlers (default 25 s, inside
    /// Kubernetes' default 30 s grace period).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// A readiness probe (e.g. "the database answers"), run when asked:
    /// daprd's `HealthCheck`, a `grpc.health.v1` `Check` or new `Watch`,
    /// `/healthz`, [`ServerHandle::ready`]. Its answers, and the start of
    /// draining, are pushed to `grpc.health.v1` watchers as they change
    /// (tonic-health's reporter; no timer polls the probe).
    pub fn readiness<F, Fut>(mut self, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.readiness = Some(invocation::box_readiness(probe));
        self
    }

    /// Adds a tower layer around every handler call, inside the built-in
    /// layers (tracing, metrics, concurrency, catch-panic, timeout): topic
    /// events (alone, or the batch of a consumer that takes whole batches),
    /// service invocations, binding events and jobs alike
    /// ([`Request::kind`](crate::middleware::Request::kind)). Layers added
    /// first are outermost. A layer can refuse a call
    /// ([`Request::refuse`](crate::middleware::Request::refuse)) or hand the
    /// handler a value through
    /// [`Request::extensions_mut`](crate::middleware::Request::extensions_mut),
    /// which an event handler takes as
    /// [`Extension<T>`](crate::extract::Extension) and the others find in
    /// their `extensions`.
    ///
    /// ```
    /// use eventbus::Server;
    /// use eventbus::middleware::{BoxService, Request};
    /// use eventbus::tower::{self, ServiceExt};
    ///
    /// #[derive(Clone)]
    /// struct Tenant(String);
    ///
    /// let builder = Server::builder().layer(tower::layer::layer_fn(|inner: BoxService| {
    ///     tower::service_fn(move |mut request: Request| {
    ///         for event in request.events() {
    ///             tracing::info!(id = %event.id, topic = request.topic(), "audit");
    ///         }
    ///         request.extensions_mut().insert(Tenant("eu".into()));
    ///         inner.clone().oneshot(request)
    ///     })
    /// }));
    /// ```
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<BoxService> + Send + 'static,
        L::Service:
            Service<Request, Response = Response, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.layers.push(Box::new(move |inner| BoxService::new(layer.layer(inner))));
        self
    }

    /// Handles service invocation of `method` (`OnInvoke`) with a typed
    /// handler (see [`invoke`](crate::invoke)): it takes `Json<T>`,
    /// `String`, `Bytes` or `Invocation`, and answers `Result<R, Status>`
    /// (or `R`) where `R` is `Json<T>`, `String`, `Bytes`, `Vec<u8>`, `()`
    /// or `Reply`. Unregistered methods get `Unimplemented`.
    pub fn invocation<F, Fut, Req, Resp>(mut self, method: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Resp> + Send + 'static,
        Req: FromInvocation,
        Resp: IntoReply,
    {
        self.calls.invocations.push((method.into(), invocation::box_invocation(handler)));
        self
    }

    /// Handles the input binding `name` (`OnBindingEvent`; see
    /// [`binding`](crate::binding)); it is listed in `ListInputBindings`.
    /// The handler answers `()` or `Result<(), Status>`.
    pub fn binding<F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(BindingEvent) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoBindingAnswer,
    {
        self.calls.bindings.push((name.into(), invocation::box_binding(handler)));
        self
    }

    /// Handles the Dapr job `name` (`OnJobEvent`). An error answers
    /// `Internal`, so the scheduler applies the job's failure policy.
    pub fn job<F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.calls.jobs.push((name.into(), invocation::box_job(handler)));
        self
    }

    /// Validates the subscriptions and builds the server.
    ///
    /// Fails on a duplicate (pubsub, topic, path), naming both handlers; on an
    /// empty topic or pubsub; on handlers of one topic that disagree on its
    /// dead-letter topic, metadata or bulk settings; on a handler whose
    /// `State<S>` was not given.
    pub fn build(self) -> Result<Server, Error> {
        crate::registry::describe_metrics();
        let registry = Registry::build(&self.consumers, self.calls, &self.defaults, &self.context)?;
        let mut service = BoxService::new(HandlerService);
        for layer in self.layers.into_iter().rev() {
            service = layer(service);
        }
        let service = BoxService::new(
            ServiceBuilder::new()
                .layer(TraceLayer)
                .layer(MetricsLayer)
                .layer(ConcurrencyLimitLayer)
                .layer(CatchPanicLayer)
                .layer(TimeoutLayer::default())
                .service(service),
        );
        let shared = Pipeline {
            registry,
            service,
            context: Arc::new(self.context),
            token: self.token,
            unknown_topic: self.unknown_topic,
            missing_id: self.missing_id,
            bulk_concurrency: self.bulk_concurrency,
            max_message_size: self.max_message_size,
            readiness: self.readiness,
            draining: AtomicBool::new(false),
            health: crate::pipeline::Health::new(),
            in_flight: TaskTracker::new(),
            past_drain_deadline: CancellationToken::new(),
        };
        Ok(Server {
            pipeline: Arc::new(shared),
            drain_timeout: self.drain_timeout,
            default_pubsub: self.defaults.pubsub,
        })
    }
}

/// The `AppCallback` gRPC server the Dapr sidecar delivers events to.
///
/// ```no_run
/// use eventbus::{Event, Server, Subscription, Transport, handler};
///
/// # async fn run() -> Result<(), eventbus::Error> {
/// let server = Server::builder()
///     .default_pubsub("pubsub-redis")
///     .consumer(handler(Subscription::new("order.completed"), |event: Event<serde_json::Value>| async move {
///         tracing::info!(id = event.id(), "completed");
///     }))
///     .build()?;
/// server.serve(Transport::grpc("0.0.0.0:5005".parse().unwrap())).await // until SIGTERM or ctrl-c
/// # }
/// ```
pub struct Server {
    pipeline: Arc<Pipeline>,
    drain_timeout: Duration,
    default_pubsub: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("registry", &self.pipeline.registry).finish()
    }
}

/// Reads the serving state of a running [`Server`], e.g. for an HTTP `/readyz`.
#[derive(Clone)]
pub struct ServerHandle(Arc<Pipeline>);

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("draining", &self.is_draining())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl ServerHandle {
    /// `true` once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Acquire)
    }
    /// `Ok` when not draining and the readiness probe passes.
    pub async fn ready(&self) -> Result<(), String> {
        self.0.ready().await
    }
    /// Events and calls being handled now.
    pub fn in_flight(&self) -> usize {
        self.0.in_flight.len()
    }
}

impl Server {
    /// A builder with the defaults: pubsub `"pubsub"`, 30 s timeout, 256 events
    /// in flight per topic, 4 MiB messages, unknown topics dropped, token from
    /// `APP_API_TOKEN`.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The subscriptions, one per topic, as the sidecar is told them.
    pub fn subscriptions(&self) -> &[crate::subscription::TopicSubscription] {
        self.pipeline.registry.subscriptions()
    }

    /// Runs one event through the same registry, middleware and handlers as
    /// `OnTopicEvent`, without a socket: for replaying recorded or
    /// dead-lettered events, and for tests that need no gRPC.
    ///
    /// An empty `pubsub` is taken as the default pub/sub and an empty path as
    /// the topic's default route.
    ///
    /// ```
    /// use eventbus::{Envelope, Event, Outcome, Server, Subscription, handler};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = Server::builder()
    ///     .consumer(handler(Subscription::new("orders"), |event: Event<u32>| async move {
    ///         if event.data > 0 { Outcome::Success } else { Outcome::Drop }
    ///     }))
    ///     .build()
    ///     .unwrap();
    /// let event = |data: &'static str| Envelope { id: "e-1".into(), topic: "orders".into(), data: data.into(), ..Envelope::default() };
    /// assert_eq!(server.dispatch(event("7")).await, Outcome::Success);
    /// assert_eq!(server.dispatch(event("0")).await, Outcome::Drop);
    /// assert_eq!(server.dispatch(event("oops")).await, Outcome::Drop);
    /// # });
    /// ```
    pub async fn dispatch(&self, envelope: Envelope) -> Outcome {
        let envelope = self.defaulted(envelope);
        self.pipeline.dispatch(Arc::new(envelope)).await
    }

    /// Runs the events of one topic the way `OnBulkTopicEvent` does: one
    /// call for a consumer that takes whole batches, else each event on its
    /// own; one outcome per event, in order. The topic, pub/sub and path are
    /// the first event's.
    pub async fn dispatch_bulk(&self, envelopes: Vec<Envelope>) -> Vec<Outcome> {
        let Some(first) = envelopes.first() else { return Vec::new() };
        let first = self.defaulted(first.clone());
        let entries = envelopes.into_iter().map(|envelope| Ok(Arc::new(self.defaulted(envelope)))).collect();
        self.pipeline.deliver(&first.pubsub, &first.topic, &first.path, entries).await
    }

    fn defaulted(&self, mut envelope: Envelope) -> Envelope {
        if envelope.pubsub.is_empty() {
            envelope.pubsub = self.default_pubsub.clone();
        }
        envelope
    }

    pub(crate) fn pipeline(&self) -> std::sync::Arc<Pipeline> {
        self.pipeline.clone()
    }

    #[cfg(feature = "http")]
    pub(crate) fn default_pubsub(&self) -> &str {
        &self.default_pubsub
    }

    /// A handle to watch the server while it runs.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle(self.pipeline.clone())
    }

    /// Serves `transport` until SIGTERM or ctrl-c (or the signal given to
    /// [`Serve::with_graceful_shutdown`]), then shuts down gracefully:
    /// readiness turns not-ready and new events get `RETRY` at once; the
    /// events in flight get up to the drain timeout to finish (after it they
    /// are answered `RETRY`); then the transport closes and this returns.
    ///
    /// ```no_run
    /// use eventbus::server::{Server, Transport};
    /// # #[cfg(feature = "client")]
    /// use eventbus::sidecar::DaprEndpoint;
    ///
    /// # async fn run(server: Server, other: Server, listener: tokio::net::TcpListener) -> Result<(), eventbus::Error> {
    /// // The gRPC app channel, until SIGTERM:
    /// server.serve(Transport::grpc("0.0.0.0:5005".parse().unwrap())).await?;
    /// // Streaming subscriptions (feature `client`), until a signal of your own:
    /// # #[cfg(feature = "client")] {
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// other
    ///     .serve(Transport::streaming(DaprEndpoint::from_env()))
    ///     .with_graceful_shutdown(async move { let _ = stopped.await; })
    ///     .await?;
    /// # drop(stop); }
    /// # Ok(()) }
    /// ```
    pub fn serve(self, transport: Transport) -> Serve {
        Serve::new(self, transport)
    }
}

/// Completes on ctrl-c or, on Unix, SIGTERM. SIGTERM is caught from the
/// call on (not from the first poll), so a process that calls this before it
/// starts serving cannot be killed by a SIGTERM that arrives in between.
/// Call it inside a Tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let terminate = async move {
            match terminate {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {}
            () = terminate => {}
        }
    }
}
