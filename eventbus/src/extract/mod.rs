//! Extractors: where a handler's arguments come from.
//!
//! Every argument of a handler is an extractor, in any order: the event
//! ([`Event<T>`], decoded), parts of it ([`EventId`], [`Metadata`],
//! [`TraceContext`], [`Extensions`], the whole [`Envelope`]), a whole bulk
//! batch ([`Batch<T>`]), shared state ([`State<S>`]) or what a layer put in
//! the request ([`Extension<T>`]). One trait, [`FromEvent`], covers them
//! all; write your own for anything else, such as a header:
//!
//! ```
//! use eventbus::{Event, HandlerError};
//! use eventbus::extract::{Context, FromEvent};
//! use eventbus::handler::Delivery;
//!
//! /// The `tenant` CloudEvent extension, required.
//! struct Tenant(String);
//!
//! impl FromEvent for Tenant {
//!     fn from_event(delivery: &mut Delivery<'_>, _: &Context) -> Result<Self, HandlerError> {
//!         match delivery.envelope().extensions.get_str("tenant") {
//!             Some(tenant) => Ok(Tenant(tenant.to_owned())),
//!             None => Err(HandlerError::permanent("no tenant extension")),
//!         }
//!     }
//! }
//!
//! async fn on_order(Tenant(tenant): Tenant, event: Event<serde_json::Value>) {
//!     tracing::info!(%tenant, id = event.id(), "order");
//! }
//! # let _ = eventbus::handler(eventbus::Subscription::new("orders"), on_order);
//! ```
//!
//! An extractor that fails answers for the event: a permanent error drops
//! it, a transient one retries it; the handler is not called.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

pub use crate::event::Metadata;
use crate::event::{Envelope, Event, EventData, Extensions};
use crate::handler::Delivery;
use crate::outcome::HandlerError;

mod batch;
pub use batch::Batch;

/// What a handler's arguments are taken from besides the event: the shared
/// values handlers ask for with [`State<S>`], one per type, filled by
/// [`ServerBuilder::state`](crate::ServerBuilder::state); and, for one call,
/// the [`Extensions`](crate::middleware::Extensions) layers put in the
/// request, taken with [`Extension<T>`].
///
/// ```
/// use eventbus::extract::Context;
/// let mut ctx = Context::default();
/// ctx.insert(42u32);
/// assert_eq!(ctx.get::<u32>(), Some(42));
/// ```
#[derive(Default, Clone)]
pub struct Context {
    values: Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    extensions: crate::middleware::Extensions,
}

impl Context {
    /// Stores a value, replacing one of the same type.
    pub fn insert<S: Clone + Send + Sync + 'static>(&mut self, value: S) {
        Arc::make_mut(&mut self.values).insert(TypeId::of::<S>(), Arc::new(value));
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

    /// What the layers put in this call's request.
    pub fn extensions(&self) -> &crate::middleware::Extensions {
        &self.extensions
    }

    /// The shared values with one call's extensions (reference counts).
    pub(crate) fn with_extensions(&self, extensions: crate::middleware::Extensions) -> Context {
        Context { values: self.values.clone(), extensions }
    }

    pub(crate) fn into_extensions(self) -> crate::middleware::Extensions {
        self.extensions
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("values", &self.values.len()).field("extensions", &self.extensions).finish()
    }
}

/// Why a handler cannot be built: an extractor needs state the server was
/// not given, or its arguments do not go together (a whole batch beside
/// one event's parts). Reported by
/// [`ServerBuilder::build`](crate::ServerBuilder::build), naming the handler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MissingState {
    message: String,
}

impl MissingState {
    /// `State<S>` is missing.
    pub fn state<S>() -> Self {
        Self::new(format!("State<{}>", std::any::type_name::<S>()))
    }

    /// Something else is missing, described by `what`.
    pub fn new(what: impl Into<String>) -> Self {
        MissingState {
            message: format!("needs `{}`, which the server builder was not given (use `.state(..)`)", what.into()),
        }
    }

    /// The arguments do not go together.
    pub(crate) fn conflict(message: String) -> Self {
        MissingState { message }
    }
}

/// What a handler argument is taken from: it decides whether the handler
/// gets one event per call or a whole bulk batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One event (`Event<T>`, `EventId`, `Metadata`, …): the handler is
    /// called once per event, the entries of a bulk request one by one.
    Event,
    /// The whole batch ([`Batch<T>`]): the handler gets each bulk request
    /// in one call (a single event as a batch of one).
    Batch,
    /// Neither: the server's state or the request's extensions (`State<S>`,
    /// `Extension<T>`), good beside either.
    Context,
}

/// A handler argument: taken from the [`Delivery`] being handled and the
/// shared [`Context`]. See the [module documentation](self).
///
/// An extractor that fails answers for the whole call: a permanent error
/// drops the event(s), a transient one retries; the handler is not called.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler argument",
    label = "handler arguments implement `FromEvent`: `Event<T>`, `Batch<T>`, `State<S>`, `Extension<T>`, `EventId`, `Metadata`, `TraceContext`, …"
)]
pub trait FromEvent: Sized + Send + 'static {
    /// What the argument is taken from; [`Scope::Event`] unless it says otherwise.
    const SCOPE: Scope = Scope::Event;

    /// Takes the value for one call.
    fn from_event(delivery: &mut Delivery<'_>, ctx: &Context) -> Result<Self, HandlerError>;

    /// Checks when the server is built that the context can supply it.
    fn check(_ctx: &Context) -> Result<(), MissingState> {
        Ok(())
    }
}

/// The event, its payload decoded as `T`. A payload that does not decode is a
/// permanent error: the event is dropped to the dead-letter topic.
impl<T: EventData> FromEvent for Event<T> {
    fn from_event(delivery: &mut Delivery<'_>, _: &Context) -> Result<Self, HandlerError> {
        Event::decode(delivery.envelope().clone())
    }
}

/// The whole event as delivered, undecoded.
impl FromEvent for Arc<Envelope> {
    fn from_event(delivery: &mut Delivery<'_>, _: &Context) -> Result<Self, HandlerError> {
        Ok(delivery.envelope().clone())
    }
}

/// The CloudEvent extension attributes.
impl FromEvent for Extensions {
    fn from_event(delivery: &mut Delivery<'_>, _: &Context) -> Result<Self, HandlerError> {
        Ok(delivery.envelope().extensions.clone())
    }
}

/// The value given to [`ServerBuilder::state`](crate::ServerBuilder::state);
/// a handler taking a `State<S>` that was not given fails the build.
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

impl<S: Clone + Send + Sync + 'static> FromEvent for State<S> {
    const SCOPE: Scope = Scope::Context;

    fn from_event(_: &mut Delivery<'_>, ctx: &Context) -> Result<Self, HandlerError> {
        // `check` runs at build time, so this only fails if it was skipped.
        ctx.get::<S>().map(State).ok_or_else(|| HandlerError::transient(MissingState::state::<S>()))
    }

    fn check(ctx: &Context) -> Result<(), MissingState> {
        if ctx.contains::<S>() { Ok(()) } else { Err(MissingState::state::<S>()) }
    }
}

/// A value a layer put in the call's
/// [`Extensions`](crate::middleware::Extensions) (a tenant, an auth
/// principal, a transaction), as axum's `Extension`. When no layer put one
/// there, the event is retried (a missing layer is a deployment mistake,
/// not the event's) and the error names the type.
///
/// ```
/// use eventbus::extract::Extension;
/// use eventbus::{Event, Subscription, handler};
///
/// #[derive(Clone)]
/// struct Tenant(String);
///
/// async fn on_order(Extension(tenant): Extension<Tenant>, event: Event<serde_json::Value>) {
///     tracing::info!(tenant = %tenant.0, id = event.id(), "order");
/// }
/// # let _ = handler(Subscription::new("orders"), on_order);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<T>(pub T);

impl<T: Clone + Send + Sync + 'static> FromEvent for Extension<T> {
    const SCOPE: Scope = Scope::Context;

    fn from_event(_: &mut Delivery<'_>, ctx: &Context) -> Result<Self, HandlerError> {
        match ctx.extensions().get::<T>() {
            Some(value) => Ok(Extension(value.clone())),
            None => Err(HandlerError::transient(format!(
                "no `{}` in the request's extensions: is the layer that adds it installed?",
                std::any::type_name::<T>()
            ))),
        }
    }
}

/// The CloudEvent `id`: the deduplication key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventId(pub String);

impl FromEvent for EventId {
    fn from_event(delivery: &mut Delivery<'_>, _: &Context) -> Result<Self, HandlerError> {
        Ok(EventId(delivery.envelope().id.clone()))
    }
}

/// The gRPC metadata or HTTP headers of the delivery (broker metadata,
/// trace headers, …).
impl FromEvent for Metadata {
    fn from_event(delivery: &mut Delivery<'_>, _: &Context) -> Result<Self, HandlerError> {
        Ok(delivery.envelope().metadata.clone())
    }
}

/// The W3C trace context that arrived with the event, to continue the
/// publisher's trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceContext {
    /// `traceparent`: the gRPC header when the sidecar traced the call, else
    /// the CloudEvent extension.
    pub traceparent: Option<String>,
    /// `tracestate`, when present.
    pub tracestate: Option<String>,
}

impl FromEvent for TraceContext {
    fn from_event(delivery: &mut Delivery<'_>, _: &Context) -> Result<Self, HandlerError> {
        let envelope = delivery.envelope();
        Ok(TraceContext {
            traceparent: envelope.traceparent().map(str::to_owned),
            tracestate: envelope.tracestate().map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_parts_are_extracted() {
        let mut envelope = Envelope { id: "e-1".into(), ..Envelope::default() };
        envelope.extensions.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let envelopes = [Arc::new(envelope)];
        let Some(mut delivery) = Delivery::new(&envelopes) else { panic!("not empty") };
        let ctx = Context::default();
        assert_eq!(EventId::from_event(&mut delivery, &ctx).ok(), Some(EventId("e-1".into())));
        let trace = TraceContext::from_event(&mut delivery, &ctx).unwrap_or_default();
        assert_eq!(trace.traceparent.as_deref(), Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
        assert_eq!(trace.tracestate, None);
    }

    #[test]
    fn missing_state_is_named_at_check_and_transient_at_run() {
        let ctx = Context::default();
        let missing = <State<u8> as FromEvent>::check(&ctx).unwrap_err();
        assert!(missing.to_string().starts_with("needs `State<u8>`"), "{missing}");
        let envelopes = [Arc::new(Envelope::default())];
        let Some(mut delivery) = Delivery::new(&envelopes) else { panic!("not empty") };
        assert!(State::<u8>::from_event(&mut delivery, &ctx).is_err_and(|e| !e.is_permanent()));
    }
}
