//! Consumers: what handles the events of one subscription.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::extract::{Context, MissingState};
use crate::handler::{Answers, Delivery, Handler};
use crate::middleware::{BoxService, Request, Response, TimeoutLayer};
use crate::subscription::Subscription;
use tower::{Layer, Service};

/// Something that handles the events of one [`Subscription`].
///
/// Most consumers come from `#[subscribe]` or [`handler`]; implement the
/// trait by hand for full control over decoding. `handle` is an `async fn`
/// (its future must be `Send`) that answers every event of its
/// [`Delivery`]:
///
/// ```
/// use eventbus::consumer::Consumer;
/// use eventbus::extract::Context;
/// use eventbus::handler::{Answers, Delivery};
/// use eventbus::{Outcome, Server, Subscription};
///
/// struct CountBytes;
///
/// impl Consumer for CountBytes {
///     fn name(&self) -> &str { "count_bytes" }
///     fn subscription(&self) -> Subscription { Subscription::new("blobs").raw_payload() }
///     async fn handle(&self, delivery: Delivery<'_>, _: &Context) -> Answers {
///         tracing::info!(bytes = delivery.envelope().data.len(), "blob");
///         delivery.answer(Outcome::Success)
///     }
/// }
///
/// let server = Server::builder().consumer(CountBytes).build().unwrap();
/// assert_eq!(server.subscriptions()[0].topic, "blobs");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a consumer",
    label = "register a `#[subscribe]` function as `name {{}}` (or with `eventbus::consumers![name]`), or build one with `eventbus::handler(subscription, function)`"
)]
pub trait Consumer: Send + Sync + 'static {
    /// A name for logs, metrics and error messages.
    fn name(&self) -> &str;

    /// What to subscribe to. Read once, when the server is built.
    fn subscription(&self) -> Subscription;

    /// Handles the events of one call and answers each of them: one event,
    /// or, when [`takes_batches`](Consumer::takes_batches), the entries of a
    /// bulk request.
    fn handle<'a>(&'a self, delivery: Delivery<'a>, ctx: &'a Context) -> impl Future<Output = Answers> + Send + 'a;

    /// Checks when the server is built that the [`Context`] holds what the
    /// handler needs.
    fn check(&self, _ctx: &Context) -> Result<(), MissingState> {
        Ok(())
    }

    /// `true` when the entries of a bulk request reach
    /// [`handle`](Consumer::handle) together (e.g. to write them in one
    /// transaction); `false`, the default, when each entry goes through the
    /// middleware and `handle` on its own.
    fn takes_batches(&self) -> bool {
        false
    }

    /// The layers of this consumer alone; see [`ConsumerExt::layer`].
    #[doc(hidden)]
    fn route_layers(&self) -> RouteLayers {
        RouteLayers::default()
    }
}

/// A consumer of any type, as the server keeps it: what [`consumers!`](crate::consumers!),
/// [`ConsumerGroup`] and [`IntoConsumers`] hand over. Cheap to clone.
#[derive(Clone)]
pub struct BoxedConsumer(Arc<dyn ErasedConsumer>);

impl BoxedConsumer {
    /// Boxes `consumer`.
    pub fn new(consumer: impl Consumer) -> Self {
        BoxedConsumer(Arc::new(consumer))
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    pub(crate) fn subscription(&self) -> Subscription {
        self.0.subscription()
    }

    pub(crate) fn check(&self, ctx: &Context) -> Result<(), MissingState> {
        self.0.check(ctx)
    }

    pub(crate) fn takes_batches(&self) -> bool {
        self.0.takes_batches()
    }

    pub(crate) fn route_layers(&self) -> RouteLayers {
        self.0.route_layers()
    }

    pub(crate) fn handle<'a>(&'a self, delivery: Delivery<'a>, ctx: &'a Context) -> BoxFuture<'a, Answers> {
        self.0.handle(delivery, ctx)
    }
}

impl std::fmt::Debug for BoxedConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BoxedConsumer").field(&self.name()).finish()
    }
}

/// [`Consumer`] with its futures boxed, so that consumers of different types
/// share one list.
trait ErasedConsumer: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn subscription(&self) -> Subscription;
    fn check(&self, ctx: &Context) -> Result<(), MissingState>;
    fn takes_batches(&self) -> bool;
    fn route_layers(&self) -> RouteLayers;
    fn handle<'a>(&'a self, delivery: Delivery<'a>, ctx: &'a Context) -> BoxFuture<'a, Answers>;
}

impl<C: Consumer> ErasedConsumer for C {
    fn name(&self) -> &str {
        Consumer::name(self)
    }
    fn subscription(&self) -> Subscription {
        Consumer::subscription(self)
    }
    fn check(&self, ctx: &Context) -> Result<(), MissingState> {
        Consumer::check(self, ctx)
    }
    fn takes_batches(&self) -> bool {
        Consumer::takes_batches(self)
    }
    fn route_layers(&self) -> RouteLayers {
        Consumer::route_layers(self)
    }
    fn handle<'a>(&'a self, delivery: Delivery<'a>, ctx: &'a Context) -> BoxFuture<'a, Answers> {
        Box::pin(Consumer::handle(self, delivery, ctx))
    }
}

/// A [`Consumer`] made of a [`Subscription`] and a [`Handler`]; see [`handler`].
pub struct HandlerConsumer<H, Args> {
    name: String,
    subscription: Subscription,
    handler: H,
    _args: PhantomData<fn() -> Args>,
}

impl<H, Args> HandlerConsumer<H, Args> {
    /// The name used in logs, metrics and errors (default: the function's type name).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl<H, Args> std::fmt::Debug for HandlerConsumer<H, Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerConsumer")
            .field("name", &self.name)
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}

/// Makes a consumer of an async function or closure whose arguments are
/// extractors ([`FromEvent`](crate::extract::FromEvent)), in any order. It
/// gets one event per call, or each bulk request whole when an argument is
/// a [`Batch<T>`](crate::Batch).
///
/// ```
/// use eventbus::{handler, Event, Subscription, State, HandlerError};
/// use eventbus::extract::EventId;
///
/// #[derive(serde::Deserialize)]
/// struct OrderCompleted { order_id: String }
///
/// async fn on_completed(State(prefix): State<String>, EventId(id): EventId, event: Event<OrderCompleted>) -> Result<(), HandlerError> {
///     println!("{prefix}{id} {}", event.data.order_id);
///     Ok(())
/// }
///
/// let consumer = handler(Subscription::new("order.completed"), on_completed).name("on_completed");
/// ```
pub fn handler<H, Args>(subscription: Subscription, handler: H) -> HandlerConsumer<H, Args>
where
    H: Handler<Args>,
{
    HandlerConsumer { name: std::any::type_name::<H>().to_owned(), subscription, handler, _args: PhantomData }
}

impl<H, Args> Consumer for HandlerConsumer<H, Args>
where
    H: Handler<Args>,
    Args: 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn subscription(&self) -> Subscription {
        self.subscription.clone()
    }

    fn handle<'a>(&'a self, delivery: Delivery<'a>, ctx: &'a Context) -> impl Future<Output = Answers> + Send + 'a {
        self.handler.call(delivery, ctx)
    }

    fn check(&self, ctx: &Context) -> Result<(), MissingState> {
        H::check(ctx)
    }

    fn takes_batches(&self) -> bool {
        H::takes_batches()
    }
}

/// A group of consumers registered together, such as the methods of a type
/// marked `#[eventbus::consumer]`.
pub trait ConsumerGroup: crate::__private::SealedGroup + Send + Sync + 'static {
    /// The group's consumers, sharing `self`.
    fn consumers(self: Arc<Self>) -> Vec<BoxedConsumer>;
}

/// Anything [`ServerBuilder::consumers`](crate::ServerBuilder::consumers) takes.
pub trait IntoConsumers: crate::sealed::IntoConsumers {
    /// The consumers.
    fn into_consumers(self) -> Vec<BoxedConsumer>;
}

impl<G: ConsumerGroup> crate::sealed::IntoConsumers for Arc<G> {}
impl<G: ConsumerGroup> IntoConsumers for Arc<G> {
    fn into_consumers(self) -> Vec<BoxedConsumer> {
        self.consumers()
    }
}

impl crate::sealed::IntoConsumers for Vec<BoxedConsumer> {}
impl IntoConsumers for Vec<BoxedConsumer> {
    fn into_consumers(self) -> Vec<BoxedConsumer> {
        self
    }
}

/// The consumers of `#[subscribe]` functions, for
/// [`ServerBuilder::consumers`](crate::ServerBuilder::consumers).
///
/// `#[subscribe]` leaves the function as it is and puts its registration in
/// a struct of the same name (types and functions have separate
/// namespaces); `consumers![a, b]` is
/// `vec![BoxedConsumer::new(a {}), BoxedConsumer::new(b {})]`.
///
/// ```
/// use eventbus::{Event, Server, consumers, subscribe};
///
/// #[subscribe("order.completed")]
/// async fn completed(_event: Event<serde_json::Value>) {}
///
/// #[subscribe("order.cancelled")]
/// async fn cancelled(_event: Event<serde_json::Value>) {}
///
/// let server = Server::builder().consumers(consumers![completed, cancelled]).build().unwrap();
/// assert_eq!(server.subscriptions().len(), 2);
/// ```
#[macro_export]
macro_rules! consumers {
    ($($($segment:ident)::+),* $(,)?) => {
        ::std::vec![$($crate::consumer::BoxedConsumer::new($($segment)::+ {})),*]
    };
}

/// A consumer's own layers, innermost last (what [`ConsumerExt::layer`]
/// added); not something to build by hand.
#[doc(hidden)]
#[derive(Clone, Default)]
pub struct RouteLayers {
    pub(crate) layers: Vec<Arc<dyn Fn(BoxService) -> BoxService + Send + Sync>>,
    /// A [`TimeoutLayer`](crate::middleware::TimeoutLayer) is among them: the
    /// server's default timeout then stays off this consumer.
    pub(crate) own_timeout: bool,
}

impl std::fmt::Debug for RouteLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteLayers")
            .field("layers", &self.layers.len())
            .field("own_timeout", &self.own_timeout)
            .finish()
    }
}

/// A consumer with layers of its own; see [`ConsumerExt::layer`].
#[derive(Debug)]
pub struct Layered<C> {
    consumer: C,
    layers: RouteLayers,
}

/// Adds tower layers to one consumer, as axum's `Handler::layer`.
pub trait ConsumerExt: Consumer + Sized {
    /// Wraps this consumer's calls alone in `layer`, inside the server's
    /// layers (tracing, metrics, concurrency, catch-panic, the server's
    /// timeout, [`ServerBuilder::layer`](crate::ServerBuilder::layer)s):
    /// for a timeout, a tenant or an audit line of this consumer only. Layers
    /// added first are outermost. A
    /// [`TimeoutLayer::new`](crate::middleware::TimeoutLayer::new) here
    /// replaces the server's timeout for this consumer, longer or shorter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use eventbus::consumer::ConsumerExt;
    /// use eventbus::middleware::TimeoutLayer;
    /// use eventbus::{Event, Server, Subscription, handler};
    ///
    /// let slow = handler(Subscription::new("reports"), |_: Event<serde_json::Value>| async {})
    ///     .layer(TimeoutLayer::new(Duration::from_secs(120)));
    /// let server = Server::builder().timeout(Duration::from_secs(30)).consumer(slow).build().unwrap();
    /// # let _ = server;
    /// ```
    fn layer<L>(self, layer: L) -> Layered<Self>
    where
        L: Layer<BoxService> + Send + Sync + 'static,
        L::Service:
            Service<Request, Response = Response, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        Layered { consumer: self, layers: RouteLayers::default() }.layer(layer)
    }
}

impl<C: Consumer> ConsumerExt for C {}

impl<C: Consumer> Layered<C> {
    /// Adds another layer, inside the ones already added.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<BoxService> + Send + Sync + 'static,
        L::Service:
            Service<Request, Response = Response, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.layers.own_timeout |= std::any::TypeId::of::<L>() == std::any::TypeId::of::<TimeoutLayer>();
        self.layers.layers.push(Arc::new(move |inner| BoxService::new(layer.layer(inner))));
        self
    }
}

impl<C: Consumer> Consumer for Layered<C> {
    fn name(&self) -> &str {
        self.consumer.name()
    }
    fn subscription(&self) -> Subscription {
        self.consumer.subscription()
    }
    fn check(&self, ctx: &Context) -> Result<(), MissingState> {
        self.consumer.check(ctx)
    }
    fn takes_batches(&self) -> bool {
        self.consumer.takes_batches()
    }
    fn route_layers(&self) -> RouteLayers {
        self.layers.clone()
    }
    fn handle<'a>(&'a self, delivery: Delivery<'a>, ctx: &'a Context) -> impl Future<Output = Answers> + Send + 'a {
        self.consumer.handle(delivery, ctx)
    }
}
