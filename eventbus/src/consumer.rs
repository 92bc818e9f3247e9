//! Consumers: the handlers of events, and how plain async functions become one.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::error::HandlerError;
use crate::event::{Envelope, Event, EventData};
use crate::outcome::{HandlerResult, IntoOutcome};
use crate::subscription::Subscription;

/// Something that handles the events of one [`Subscription`].
///
/// Most consumers come from `#[subscribe]` or [`handler`]; implement the trait
/// by hand for full control over decoding.
///
/// ```
/// use std::sync::Arc;
/// use eventbus::{Consumer, Context, Envelope, HandlerResult, Outcome, Subscription};
/// use futures_util::future::BoxFuture;
///
/// struct CountBytes;
///
/// impl Consumer for CountBytes {
///     fn name(&self) -> &str { "count_bytes" }
///     fn subscription(&self) -> Subscription { Subscription::new("blobs").raw_payload() }
///     fn handle<'a>(&'a self, envelope: Arc<Envelope>, _: &'a Context) -> BoxFuture<'a, HandlerResult> {
///         Box::pin(async move {
///             tracing::info!(bytes = envelope.data.len(), "blob");
///             Ok(Outcome::Success)
///         })
///     }
/// }
/// ```
pub trait Consumer: Send + Sync + 'static {
    /// A name for logs, metrics and error messages.
    fn name(&self) -> &str;

    /// What to subscribe to. Read once, when the server is built.
    fn subscription(&self) -> Subscription;

    /// Handles one event.
    fn handle<'a>(&'a self, envelope: Arc<Envelope>, ctx: &'a Context) -> BoxFuture<'a, HandlerResult>;

    /// Checks at build time that the [`Context`] holds what the handler needs.
    fn check(&self, _ctx: &Context) -> Result<(), String> {
        Ok(())
    }

    /// Handles the entries of one bulk request together (e.g. in one database
    /// transaction): one result per envelope, in order.
    ///
    /// `None`, the default, means each entry goes through
    /// [`handle`](Consumer::handle) and the middleware on its own. A batch gets
    /// the route's timeout, concurrency permit and panic containment as a whole.
    /// Handlers taking `Vec<Event<T>>` get this from `#[subscribe]` or [`batch`].
    fn handle_batch<'a>(
        &'a self,
        _envelopes: &'a [Arc<Envelope>],
        _ctx: &'a Context,
    ) -> Option<BoxFuture<'a, Vec<HandlerResult>>> {
        None
    }
}

/// Shared values handlers can ask for with [`State<S>`], one per type.
///
/// ```
/// use eventbus::Context;
/// let mut ctx = Context::default();
/// ctx.insert(42u32);
/// assert_eq!(ctx.get::<u32>(), Some(42));
/// ```
#[derive(Default)]
pub struct Context {
    values: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl Context {
    /// Stores a value, replacing one of the same type.
    pub fn insert<S: Clone + Send + Sync + 'static>(&mut self, value: S) {
        self.values.insert(TypeId::of::<S>(), Box::new(value));
    }

    /// A clone of the stored value of type `S`.
    pub fn get<S: Clone + Send + Sync + 'static>(&self) -> Option<S> {
        self.get_ref::<S>().cloned()
    }

    /// The stored value of type `S`.
    pub fn get_ref<S: Send + Sync + 'static>(&self) -> Option<&S> {
        self.values.get(&TypeId::of::<S>()).and_then(|v| v.downcast_ref())
    }

    /// `true` when a value of type `S` is stored.
    pub fn contains<S: Send + Sync + 'static>(&self) -> bool {
        self.values.contains_key(&TypeId::of::<S>())
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("values", &self.values.len()).finish()
    }
}

/// A handler argument taken from the [`Context`]: the value given to
/// [`ServerBuilder::state`](crate::ServerBuilder::state).
///
/// ```
/// use eventbus::{Event, State};
///
/// #[derive(Clone)]
/// struct Store;
///
/// async fn on_order(event: Event<serde_json::Value>, State(store): State<Store>) {
///     let _ = (event, store);
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct State<S>(pub S);

/// A handler argument the framework can supply besides the event.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler argument",
    label = "handlers take `Event<T>` and values that implement `FromContext`, such as `State<S>`"
)]
pub trait FromContext: Sized + Send + 'static {
    /// Takes the value from the context.
    fn from_context(ctx: &Context) -> Result<Self, HandlerError>;

    /// Checks at build time that the context can supply it; names what is missing.
    fn check(_ctx: &Context) -> Result<(), String> {
        Ok(())
    }
}

impl<S: Clone + Send + Sync + 'static> FromContext for State<S> {
    fn from_context(ctx: &Context) -> Result<Self, HandlerError> {
        // `check` runs at build time, so this only fails if it was skipped.
        ctx.get::<S>()
            .map(State)
            .ok_or_else(|| HandlerError::transient(anyhow::anyhow!("no state {}", std::any::type_name::<S>())))
    }

    fn check(ctx: &Context) -> Result<(), String> {
        if ctx.contains::<S>() { Ok(()) } else { Err(format!("`State<{}>`", std::any::type_name::<S>())) }
    }
}

/// An async function usable as a handler: `Fn(Event<T>, A1, …, An)` where
/// every `Ai` is [`FromContext`] (up to four) and the result is [`IntoOutcome`].
pub trait Handler<T, Args>: Clone + Send + Sync + 'static {
    /// Decodes the event, gathers the arguments and calls the function.
    fn call(&self, envelope: Arc<Envelope>, ctx: &Context) -> BoxFuture<'static, HandlerResult>;

    /// Checks that every argument can be supplied.
    fn check(ctx: &Context) -> Result<(), String>;
}

macro_rules! impl_handler {
    ($($arg:ident),*) => {
        #[allow(non_snake_case, unused_variables)]
        impl<F, Fut, T, R, $($arg,)*> Handler<T, ($($arg,)*)> for F
        where
            F: Fn(Event<T>, $($arg),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoOutcome,
            T: EventData,
            $($arg: FromContext,)*
        {
            fn call(&self, envelope: Arc<Envelope>, ctx: &Context) -> BoxFuture<'static, HandlerResult> {
                let event = match Event::<T>::decode(envelope) {
                    Ok(event) => event,
                    Err(error) => return Box::pin(std::future::ready(Err(error))),
                };
                $(
                    let $arg = match $arg::from_context(ctx) {
                        Ok(value) => value,
                        Err(error) => return Box::pin(std::future::ready(Err(error))),
                    };
                )*
                let future = (self)(event, $($arg),*);
                Box::pin(async move { future.await.into_outcome() })
            }

            fn check(ctx: &Context) -> Result<(), String> {
                $($arg::check(ctx)?;)*
                Ok(())
            }
        }
    };
}

impl_handler!();
impl_handler!(A1);
impl_handler!(A1, A2);
impl_handler!(A1, A2, A3);
impl_handler!(A1, A2, A3, A4);

/// A [`Consumer`] made of a [`Subscription`] and a [`Handler`]; see [`handler`].
pub struct HandlerConsumer<H, T, Args> {
    name: String,
    subscription: Subscription,
    handler: H,
    _types: PhantomData<fn() -> (T, Args)>,
}

impl<H, T, Args> std::fmt::Debug for HandlerConsumer<H, T, Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerConsumer")
            .field("name", &self.name)
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}

/// Makes a consumer of an async function or closure.
///
/// ```
/// use eventbus::{handler, Event, Subscription, State, HandlerError};
///
/// #[derive(serde::Deserialize)]
/// struct OrderCompleted { order_id: String }
///
/// async fn on_completed(event: Event<OrderCompleted>, State(prefix): State<String>) -> Result<(), HandlerError> {
///     println!("{prefix}{}", event.data.order_id);
///     Ok(())
/// }
///
/// let consumer = handler(Subscription::new("order.completed"), on_completed).name("on_completed");
/// ```
pub fn handler<H, T, Args>(subscription: Subscription, handler: H) -> HandlerConsumer<H, T, Args>
where
    H: Handler<T, Args>,
{
    HandlerConsumer { name: std::any::type_name::<H>().to_owned(), subscription, handler, _types: PhantomData }
}

impl<H, T, Args> HandlerConsumer<H, T, Args> {
    /// The name used in logs, metrics and errors (default: the function's type name).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl<H, T, Args> Consumer for HandlerConsumer<H, T, Args>
where
    H: Handler<T, Args>,
    T: 'static,
    Args: 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn subscription(&self) -> Subscription {
        self.subscription.clone()
    }

    fn handle<'a>(&'a self, envelope: Arc<Envelope>, ctx: &'a Context) -> BoxFuture<'a, HandlerResult> {
        self.handler.call(envelope, ctx)
    }

    fn check(&self, ctx: &Context) -> Result<(), String> {
        H::check(ctx)
    }
}

/// A group of consumers registered together, such as the methods of a type
/// marked `#[eventbus::consumer]`.
pub trait ConsumerGroup: Send + Sync + 'static {
    /// The group's consumers, sharing `self`.
    fn consumers(self: Arc<Self>) -> Vec<Arc<dyn Consumer>>;
}

/// Anything [`ServerBuilder::consumers`](crate::ServerBuilder::consumers) takes.
pub trait IntoConsumers {
    /// The consumers.
    fn into_consumers(self) -> Vec<Arc<dyn Consumer>>;
}

impl<G: ConsumerGroup> IntoConsumers for Arc<G> {
    fn into_consumers(self) -> Vec<Arc<dyn Consumer>> {
        self.consumers()
    }
}

impl IntoConsumers for Vec<Arc<dyn Consumer>> {
    fn into_consumers(self) -> Vec<Arc<dyn Consumer>> {
        self
    }
}

/// Decodes a batch for a handler that takes `Vec<Event<T>>`: entries that do
/// not decode get a permanent error at their place (they are dropped to the
/// dead letter); the others go to `call` in order, and its results (one per
/// event) are put back in place. A missing result is a transient error.
pub async fn decode_batch<T, R, Fut>(
    envelopes: &[Arc<Envelope>],
    call: impl FnOnce(Vec<Event<T>>) -> Fut,
) -> Vec<HandlerResult>
where
    T: EventData,
    R: IntoOutcome,
    Fut: Future<Output = Vec<R>>,
{
    let mut results: Vec<Option<HandlerResult>> = Vec::with_capacity(envelopes.len());
    let mut events = Vec::with_capacity(envelopes.len());
    for envelope in envelopes {
        match Event::<T>::decode(envelope.clone()) {
            Ok(event) => {
                events.push(event);
                results.push(None);
            }
            Err(error) => results.push(Some(Err(error))),
        }
    }
    let mut outcomes = call(events).await.into_iter();
    results
        .into_iter()
        .map(|slot| {
            slot.unwrap_or_else(|| match outcomes.next() {
                Some(result) => result.into_outcome(),
                None => Err(HandlerError::transient(anyhow::anyhow!("the batch handler returned too few results"))),
            })
        })
        .collect()
}

/// A [`Consumer`] of whole bulk batches, made of a [`Subscription`] and an
/// async function of `Vec<Event<T>>`; see [`batch`].
pub struct BatchConsumer<F, T> {
    name: String,
    subscription: Subscription,
    handler: F,
    _types: PhantomData<fn() -> T>,
}

impl<F, T> std::fmt::Debug for BatchConsumer<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchConsumer")
            .field("name", &self.name)
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}

/// Makes a consumer that takes a bulk batch at once: `Vec<Event<T>>` in, one
/// result per event out. Single events arrive as a batch of one.
///
/// ```
/// use eventbus::{batch, Event, HandlerError, Subscription};
///
/// let consumer = batch(Subscription::new("product.updated").bulk(100, 500), |events: Vec<Event<serde_json::Value>>| async move {
///     // e.g. one multi-row INSERT for the whole batch
///     events.iter().map(|_| Ok::<(), HandlerError>(())).collect::<Vec<_>>()
/// })
/// .name("index_products");
/// ```
pub fn batch<F, T, R, Fut>(subscription: Subscription, handler: F) -> BatchConsumer<F, T>
where
    F: Fn(Vec<Event<T>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<R>> + Send + 'static,
    R: IntoOutcome,
    T: EventData,
{
    BatchConsumer { name: std::any::type_name::<F>().to_owned(), subscription, handler, _types: PhantomData }
}

impl<F, T> BatchConsumer<F, T> {
    /// The name used in logs, metrics and errors.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl<F, T, R, Fut> Consumer for BatchConsumer<F, T>
where
    F: Fn(Vec<Event<T>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<R>> + Send + 'static,
    R: IntoOutcome + Send + 'static,
    T: EventData,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn subscription(&self) -> Subscription {
        self.subscription.clone()
    }

    fn handle<'a>(&'a self, envelope: Arc<Envelope>, _ctx: &'a Context) -> BoxFuture<'a, HandlerResult> {
        Box::pin(async move {
            let mut results = decode_batch(std::slice::from_ref(&envelope), &self.handler).await;
            results.pop().unwrap_or_else(|| Err(HandlerError::transient(anyhow::anyhow!("no result"))))
        })
    }

    fn handle_batch<'a>(
        &'a self,
        envelopes: &'a [Arc<Envelope>],
        _ctx: &'a Context,
    ) -> Option<BoxFuture<'a, Vec<HandlerResult>>> {
        Some(Box::pin(decode_batch(envelopes, &self.handler)))
    }
}
