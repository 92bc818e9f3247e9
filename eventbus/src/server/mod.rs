//! The server: builder, the three gRPC services, graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::grpc::proto::runtime as pb;
use crate::grpc::proto::runtime::{BindingEventRequest, BindingEventResponse};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::Status;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder};

use crate::consumer::{BoxedConsumer, Consumer, IntoConsumers};
use crate::event::Envelope;
use crate::extract::Context;
use crate::invoke::{FromInvocation, IntoInvokeResponse};
use crate::middleware::{
    CatchPanicLayer, ConcurrencyLimitLayer, EventRequest, EventService, HandlerService, MetricsLayer, TimeoutLayer,
    TraceLayer,
};
use crate::outcome::{DropHook, Dropped, HandlerError, Outcome};
use crate::registry::{Defaults, Registry};

mod callback;
mod error;
#[cfg(feature = "http")]
mod http;
mod invocation;
pub(crate) mod streaming;
mod token;

use callback::{Callback, Shared};
pub use error::Error;
pub use invocation::Job;
pub use streaming::DaprEndpoint;
pub use token::{TOKEN_ENV, TOKEN_HEADER};

/// The default gRPC port of a Dapr app (`dapr.io/app-port`).
pub const DEFAULT_PORT: u16 = 5005;
/// The default largest event payload: tonic's and daprd's 4 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// After the drain deadline, how long the events still in flight get to send
/// their RETRY answers before the server stops.
const ANSWER_GRACE: Duration = Duration::from_secs(1);
/// The largest HTTP/2 header list the server accepts: 4 MiB. daprd appends a
/// `traceparent` and a `grpc-trace-bin` header for every entry of a bulk call
/// (about 180 bytes each), so hyper's default 16 KiB refuses bulk calls of
/// more than about 90 entries, and daprd retries them forever. 4 MiB holds
/// the headers of about 20,000 entries.
pub const MAX_HEADER_LIST_SIZE: u32 = 4 * 1024 * 1024;

type LayerFn = Box<dyn FnOnce(EventService) -> EventService + Send>;

/// Builds a [`Server`]; see [`Server::builder`].
#[must_use]
pub struct ServerBuilder {
    consumers: Vec<BoxedConsumer>,
    defaults: Defaults,
    context: Context,
    layers: Vec<LayerFn>,
    invocations: Vec<(String, invocation::InvocationFn)>,
    bindings: Vec<(String, invocation::BindingFn)>,
    jobs: Vec<(String, invocation::JobFn)>,
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
            invocations: Vec::new(),
            bindings: Vec::new(),
            jobs: Vec::new(),
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
    /// [`handler`](crate::handler())/[`batch`](crate::batch()) consumer, or
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

    /// A readiness probe for `HealthCheck` (e.g. "the database answers").
    pub fn readiness<F, Fut>(mut self, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.readiness = Some(invocation::box_readiness(probe));
        self
    }

    /// Adds a tower layer around every event's handler, inside the built-in
    /// layers (tracing, metrics, concurrency, catch-panic, timeout). Layers
    /// added first are outermost.
    ///
    /// Every event passes through the layers once: alone, or in the batch
    /// of a consumer that takes whole batches ([`EventRequest::events`]).
    ///
    /// ```
    /// use eventbus::Server;
    /// use eventbus::middleware::{EventRequest, EventService};
    /// use eventbus::tower::{self, ServiceExt};
    ///
    /// let builder = Server::builder().layer(tower::layer::layer_fn(|inner: EventService| {
    ///     tower::service_fn(move |request: EventRequest| {
    ///         for event in request.events() {
    ///             tracing::info!(id = %event.id, topic = request.topic(), "audit");
    ///         }
    ///         inner.clone().oneshot(request)
    ///     })
    /// }));
    /// ```
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<EventService> + Send + 'static,
        L::Service: Service<EventRequest, Response = Vec<Outcome>, Error = std::convert::Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<EventRequest>>::Future: Send + 'static,
    {
        self.layers.push(Box::new(move |inner| BoxCloneSyncService::new(layer.layer(inner))));
        self
    }

    /// Handles service invocation of `method` (`OnInvoke`) with a typed
    /// handler (see [`invoke`](crate::invoke)): it takes `Json<T>`,
    /// `String`, `Bytes`, `Invocation` or `InvokeRequest`, and answers
    /// `Result<R, Status>` (or `R`) where `R` is `Json<T>`, `String`, `Bytes`,
    /// `Vec<u8>`, `()` or `InvokeResponse`. Unregistered methods get
    /// `Unimplemented`.
    pub fn invocation<F, Fut, Req, Resp>(mut self, method: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Resp> + Send + 'static,
        Req: FromInvocation,
        Resp: IntoInvokeResponse,
    {
        self.invocations.push((method.into(), invocation::box_invocation(handler)));
        self
    }

    /// Handles the input binding `name` (`OnBindingEvent`); it is listed in
    /// `ListInputBindings`.
    pub fn binding<F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(BindingEventRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<BindingEventResponse, Status>> + Send + 'static,
    {
        self.bindings.push((name.into(), invocation::box_binding(handler)));
        self
    }

    /// Handles the Dapr job `name` (`OnJobEvent`). An error answers
    /// `Internal`, so the scheduler applies the job's failure policy.
    pub fn job<F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.jobs.push((name.into(), invocation::box_job(handler)));
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
        let registry = Registry::build(&self.consumers, &self.defaults, &self.context)?;
        let mut service: EventService = BoxCloneSyncService::new(HandlerService);
        for layer in self.layers.into_iter().rev() {
            service = layer(service);
        }
        let service = BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(TraceLayer)
                .layer(MetricsLayer)
                .layer(ConcurrencyLimitLayer)
                .layer(CatchPanicLayer)
                .layer(TimeoutLayer)
                .service(service),
        );
        let shared = Shared {
            registry,
            service,
            context: Arc::new(self.context),
            invocations: unique("invocation", self.invocations)?,
            bindings: unique("binding", self.bindings)?,
            jobs: unique("job", self.jobs)?,
            token: self.token,
            unknown_topic: self.unknown_topic,
            missing_id: self.missing_id,
            bulk_concurrency: self.bulk_concurrency,
            max_message_size: self.max_message_size,
            readiness: self.readiness,
            draining: AtomicBool::new(false),
            in_flight: TaskTracker::new(),
            past_drain_deadline: CancellationToken::new(),
        };
        Ok(Server {
            callback: Callback(Arc::new(shared)),
            drain_timeout: self.drain_timeout,
            default_pubsub: self.defaults.pubsub,
        })
    }
}

fn unique<T>(kind: &'static str, entries: Vec<(String, T)>) -> Result<HashMap<String, T>, Error> {
    let mut map = HashMap::with_capacity(entries.len());
    for (name, value) in entries {
        if map.contains_key(&name) {
            return Err(Error::DuplicateHandler { kind, name });
        }
        map.insert(name, value);
    }
    Ok(map)
}

/// The `AppCallback` gRPC server the Dapr sidecar delivers events to.
///
/// ```no_run
/// use eventbus::{Event, Server, Subscription, handler};
///
/// # async fn run() -> Result<(), eventbus::Error> {
/// let server = Server::builder()
///     .default_pubsub("pubsub-redis")
///     .consumer(handler(Subscription::new("order.completed"), |event: Event<serde_json::Value>| async move {
///         tracing::info!(id = event.id(), "completed");
///     }))
///     .build()?;
/// server.serve("0.0.0.0:5005".parse().unwrap()).await // until SIGTERM or ctrl-c
/// # }
/// ```
pub struct Server {
    callback: Callback,
    drain_timeout: Duration,
    default_pubsub: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("registry", &self.callback.0.registry).finish()
    }
}

/// Reads the serving state of a running [`Server`], e.g. for an HTTP `/readyz`.
#[derive(Clone)]
pub struct ServerHandle(Arc<Shared>);

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

    /// The subscriptions, as `ListTopicSubscriptions` answers them.
    pub fn subscriptions(&self) -> &[pb::TopicSubscription] {
        self.callback.0.registry.subscriptions()
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
        self.callback.0.dispatch(Arc::new(envelope)).await
    }

    /// Runs the events of one topic the way `OnBulkTopicEvent` does: one
    /// call for a consumer that takes whole batches, else each event on its
    /// own; one outcome per event, in order. The topic, pub/sub and path are
    /// the first event's.
    pub async fn dispatch_bulk(&self, envelopes: Vec<Envelope>) -> Vec<Outcome> {
        let Some(first) = envelopes.first() else { return Vec::new() };
        let first = self.defaulted(first.clone());
        let entries = envelopes.into_iter().map(|envelope| Ok(Arc::new(self.defaulted(envelope)))).collect();
        self.callback.0.deliver(&first.pubsub, &first.topic, &first.path, entries).await
    }

    fn defaulted(&self, mut envelope: Envelope) -> Envelope {
        if envelope.pubsub.is_empty() {
            envelope.pubsub = self.default_pubsub.clone();
        }
        envelope
    }

    /// A handle to watch the server while it runs.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle(self.callback.0.clone())
    }

    /// The gRPC services (`AppCallback`, `AppCallbackAlpha`,
    /// `AppCallbackHealthCheck` and `grpc.health.v1.Health`), to mount in a tonic server of your own (you
    /// then own shutdown, which [`Server::serve_with_shutdown`] does for you,
    /// and should raise `http2_max_header_list_size` to
    /// [`MAX_HEADER_LIST_SIZE`] for bulk deliveries).
    pub fn routes(&self) -> Routes {
        let limit = self.callback.0.max_message_size.saturating_mul(4).max(DEFAULT_MAX_MESSAGE_SIZE);
        let mut routes = Routes::default();
        routes = routes.add_service(
            pb::app_callback_server::AppCallbackServer::new(self.callback.clone()).max_decoding_message_size(limit),
        );
        routes = routes.add_service(
            pb::app_callback_alpha_server::AppCallbackAlphaServer::new(self.callback.clone())
                .max_decoding_message_size(limit),
        );
        routes = routes.add_service(pb::app_callback_health_check_server::AppCallbackHealthCheckServer::new(
            self.callback.clone(),
        ));
        // grpc.health.v1, for Kubernetes gRPC probes: the same answer as HealthCheck.
        routes.add_service(tonic_health::pb::health_server::HealthServer::new(self.callback.clone()))
    }

    /// Serves on `address` until SIGTERM or ctrl-c, then shuts down gracefully.
    pub async fn serve(self, address: SocketAddr) -> Result<(), Error> {
        self.serve_with_shutdown(address, shutdown_signal()).await
    }

    /// Serves on `address` until `signal` completes, then shuts down gracefully.
    pub async fn serve_with_shutdown(
        self,
        address: SocketAddr,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let listener = TcpListener::bind(address).await.map_err(|source| Error::Bind { address, source })?;
        self.serve_with_listener(listener, signal).await
    }

    /// Serves on a bound listener (tests bind `127.0.0.1:0`) until `signal`.
    ///
    /// Shutdown: health turns not-serving and new events get `Retry` at once;
    /// in-flight handlers get up to the drain timeout to finish; then the
    /// gRPC server stops and this returns.
    pub async fn serve_with_listener(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let address = listener.local_addr().ok();
        let routes = self.routes();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .http2_max_header_list_size(MAX_HEADER_LIST_SIZE)
            .add_routes(routes)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), async {
                let _ = stopped.await;
            });
        tracing::info!(?address, subscriptions = self.subscriptions().len(), "eventbus server listening");
        self.until_drained("gRPC app channel", server, stop, signal, Error::from).await
    }

    /// The shutdown of an app channel: serve until `signal`, drain the events
    /// in flight, tell the `server` to stop (`stop`), and wait for its
    /// connections to close, at most 5 s (the sidecar may keep its own open).
    async fn until_drained<E>(
        &self,
        channel: &str,
        server: impl Future<Output = Result<(), E>>,
        stop: tokio::sync::oneshot::Sender<()>,
        signal: impl Future<Output = ()>,
        error: fn(E) -> Error,
    ) -> Result<(), Error> {
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => return result.map_err(error),
            () = signal => {}
        }
        tokio::select! {
            result = &mut server => return result.map_err(error),
            () = self.drain() => {}
        }
        let _ = stop.send(());
        match tokio::time::timeout(Duration::from_secs(5), server).await {
            Ok(result) => result.map_err(error)?,
            Err(_) => tracing::warn!(channel, "connections still open after shutdown; exiting anyway"),
        }
        tracing::info!(channel, "eventbus server stopped");
        Ok(())
    }
}

impl Server {
    /// Subscribes through daprd's gRPC API with streaming subscriptions
    /// (`SubscribeTopicEventsAlpha1`, one stream per subscription) instead of
    /// serving the app channel: the app needs no port. Runs until `signal`,
    /// then stops reading, finishes the events in flight (up to the drain
    /// timeout; after it they are answered `RETRY`), answers them and closes
    /// the streams.
    ///
    /// Fails at once on a subscription with routing rules, which daprd does
    /// not evaluate on a stream. Bulk settings of a consumer that takes whole
    /// batches are honoured by the app (see the [`streaming` notes](DaprEndpoint)).
    /// Streams carry pub/sub only: invocation, bindings and jobs need the app
    /// channel ([`Server::serve`]).
    ///
    /// ```no_run
    /// use eventbus::server::{DaprEndpoint, shutdown_signal};
    /// # async fn run(server: eventbus::Server) -> Result<(), eventbus::Error> {
    /// server.serve_streaming(DaprEndpoint::from_env(), shutdown_signal()).await
    /// # }
    /// ```
    pub async fn serve_streaming(
        self,
        endpoint: DaprEndpoint,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let shared = self.callback.0.clone();
        let streams = streaming::streams(&shared)?;
        let stop = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        tracing::info!(endpoint = endpoint.address(), streams = streams.len(), "eventbus streaming subscriptions");
        for stream in streams {
            tasks.spawn(streaming::run(shared.clone(), endpoint.clone(), Arc::new(stream), stop.clone()));
        }
        signal.await;
        tracing::info!(in_flight = shared.in_flight.len(), "shutting down: finishing the events in flight");
        shared.draining.store(true, Ordering::Release);
        stop.cancel();
        let finished = async {
            while tasks.join_next().await.is_some() {}
            // Handlers left running by a stream that broke earlier.
            shared.in_flight.close();
            shared.in_flight.wait().await;
        };
        tokio::pin!(finished);
        if tokio::time::timeout(self.drain_timeout, &mut finished).await.is_err() {
            tracing::warn!(
                in_flight = shared.in_flight.len(),
                "drain timeout passed; answering the events in flight RETRY"
            );
            shared.past_drain_deadline.cancel();
            let _ = tokio::time::timeout(ANSWER_GRACE, finished).await;
        }
        tracing::info!("eventbus streaming subscriptions closed");
        Ok(())
    }
}

impl Server {
    /// Shutdown's first part, the same on every transport: readiness turns
    /// not-ready and new events get `RETRY`; the events in flight get up to
    /// the drain timeout to finish; after it they are answered `RETRY`, with
    /// a short grace for the answers to go out.
    async fn drain(&self) {
        let shared = &self.callback.0;
        shared.draining.store(true, Ordering::Release);
        shared.in_flight.close();
        tracing::info!(in_flight = shared.in_flight.len(), "shutting down: draining in-flight events");
        if tokio::time::timeout(self.drain_timeout, shared.in_flight.wait()).await.is_err() {
            // Answer the stuck events RETRY rather than cutting their
            // connections: the sidecar gets an answer, not a transport error.
            tracing::warn!(
                in_flight = shared.in_flight.len(),
                "drain timeout passed; answering the events in flight RETRY"
            );
            shared.past_drain_deadline.cancel();
            let _ = tokio::time::timeout(ANSWER_GRACE, shared.in_flight.wait()).await;
        }
    }
}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl Server {
    /// The HTTP app channel (`--app-protocol http`) as an axum router, to
    /// mount in a server of your own; see [`Server::serve_http`].
    pub fn http_router(&self) -> axum::Router {
        http::router(self.callback.0.clone(), self.default_pubsub.clone())
    }

    /// Serves Dapr's HTTP app protocol on `address` until `signal`: the same
    /// consumers and answers as the gRPC app channel (`GET /dapr/subscribe`,
    /// the event and bulk routes, `/dapr/config`, `/healthz`), then shuts
    /// down as [`Server::serve_with_listener`] does. Invocation and bindings
    /// stay on the gRPC app channel.
    pub async fn serve_http(self, address: SocketAddr, signal: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let listener = TcpListener::bind(address).await.map_err(|source| Error::Bind { address, source })?;
        self.serve_http_with_listener(listener, signal).await
    }

    /// [`Server::serve_http`] on a bound listener (tests bind `127.0.0.1:0`).
    pub async fn serve_http_with_listener(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let address = listener.local_addr().ok();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(listener, self.http_router()).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        tracing::info!(?address, subscriptions = self.subscriptions().len(), "eventbus HTTP app channel listening");
        let serve_error = |source| Error::Serve { source };
        self.until_drained("HTTP app channel", server.into_future(), stop, signal, serve_error).await
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
