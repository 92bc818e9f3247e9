//! # eventbus
//!
//! Consume Dapr pub/sub events over gRPC with typed handlers and the right
//! acknowledgement semantics.
//!
//! The Dapr sidecar delivers each event to your app by calling its
//! `AppCallback` gRPC service. `eventbus` implements every RPC of it
//! (topics, bulk, invocation, bindings, jobs, health), decodes events into
//! your types, runs them through tower middleware, and answers each one so
//! the sidecar acknowledges, retries or dead-letters it as it should:
//!
//! | your handler | the sidecar gets | and does |
//! |---|---|---|
//! | `Ok(())` | `SUCCESS` | acknowledges |
//! | `Err(e)` (any error, via `?`) | `RETRY` | retries, then dead-letters |
//! | `Err(HandlerError::permanent(e))` | `DROP` | dead-letters at once |
//! | payload does not decode | `DROP` | dead-letters at once (logged with the event id) |
//! | panics, times out, over its concurrency limit | `RETRY` | retries; the server keeps serving |
//! | no handler for the topic | `DROP` (or `RETRY`, see [`ServerBuilder::unknown_topic`]) | |
//! | no CloudEvent `id` | `DROP` (or `RETRY`, see [`ServerBuilder::missing_id`]), before any handler | dead-letters |
//! | still running at the shutdown drain deadline | `RETRY` | retries |
//!
//! ## Poison events
//!
//! An event that fails the same way on every delivery must be `DROP`, never
//! `RETRY`: the sidecar would redeliver it forever and delay its
//! neighbours. So decode failures, oversize events and events without an id
//! are dropped by the framework, and a handler marks what cannot succeed as
//! permanent ([`HandlerError::permanent`], [`ResultExt::permanent`]).
//! A batch consumer that writes a bulk batch at once (one transaction) fails
//! as a whole when one entry is bad; [`isolate`] splits such a batch until
//! only the entries that fail on their own fail, and leaves transient
//! failures (the database is down) whole, to be retried.
//!
//! ```no_run
//! use eventbus::{Event, HandlerError, Server, State, Transport, subscribe};
//!
//! #[derive(serde::Deserialize)]
//! struct OrderCompleted { order_id: String, customer_id: String }
//!
//! #[derive(Clone)]
//! struct Greeting(&'static str);
//!
//! #[subscribe("order.completed", dead_letter = "order.completed.dlq")]
//! async fn on_order_completed(event: Event<OrderCompleted>, State(greeting): State<Greeting>) -> Result<(), HandlerError> {
//!     tracing::info!(id = event.id(), order = %event.data.order_id, "{}", greeting.0);
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), eventbus::Error> {
//!     Server::builder()
//!         .default_pubsub("pubsub-redis")
//!         .state(Greeting("order completed"))
//!         .consumer(on_order_completed {})
//!         .build()?
//!         .serve(Transport::grpc("0.0.0.0:5005".parse().unwrap())) // until SIGTERM, then drains
//!         .await
//! }
//! ```
//!
//! ## Pieces
//!
//! - [`event`]: [`Event<T>`], the CloudEvent attributes plus `data: T`,
//!   decoded as JSON (any serde type), [`Protobuf<M>`] or [`Raw`] bytes.
//! - [`extract`]: what handler arguments are taken from (the event, its id,
//!   metadata and trace context, a whole [`Batch<T>`], [`State<S>`], your
//!   own), through one trait, [`FromEvent`](extract::FromEvent).
//! - [`handler`](mod@handler) and [`consumer`](mod@consumer): async functions
//!   become consumers with [`subscribe`] or [`fn@handler`];
//!   [`Subscription`] says what they subscribe to (routing rules, dead-letter
//!   topic, metadata, bulk).
//! - [`server`]: three ways in for the same consumers, chosen by value in
//!   [`Server::serve`]: the gRPC app channel ([`Transport::grpc`]), the HTTP
//!   app channel (`Transport::http`, feature `http`) and streaming
//!   subscriptions (`Transport::streaming`, feature `client`); with limits (timeout, per-topic
//!   concurrency, message size), the `APP_API_TOKEN` check, a readiness
//!   probe, graceful shutdown, and [`Server::dispatch`] to run the pipeline
//!   without a socket; [`invoke`] types service invocation.
//! - [`middleware`]: the tower layers every callback runs through once
//!   (events single or in a batch, invocations, binding events, jobs); add
//!   your own with [`ServerBuilder::layer`], and hand handlers values
//!   through the request's extensions ([`extract::Extension`]).
//! - [`publisher`]: publish events through the sidecar, or in memory in tests.
//! - `redrive` (feature `client`): dead letters back to their topic, chosen by id, time or
//!   anything else of the event, with a dry run that lists them first.
//! - `testing` (feature `testing`): a sidecar for tests that drives your app
//!   the way daprd does, over gRPC, HTTP or streaming subscriptions.
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `client` | no | the sidecar's API: `publisher::DaprPublisher`, streaming subscriptions (`Transport::streaming`), `redrive` |
//! | `tls` | no | (with `client`) TLS to the sidecar's API (`https://`, `?tls=true`): rustls, system roots or a CA file |
//! | `testing` | no | (with `client`) [`testing::TestSidecar`] over gRPC, HTTP (with `http`) or streaming subscriptions, for your integration tests |
//! | `http` | no | the HTTP app channel on axum: `Transport::http`, and `http::router` to mount it in your own axum app |
//! | `check-rules` | no (on with `testing`) | routing rules (CEL) are parsed when the server is built, so a typo fails at start-up |
//! | `opentelemetry` | no | each event's span is a child of the incoming W3C trace context (with a `tracing-opentelemetry` layer installed); `DaprPublisher` sends the current context on |

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "client")]
mod backoff;
pub mod binding;
pub mod consumer;
mod error;
pub mod event;
pub mod extract;
pub mod grpc;
pub mod handler;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod invoke;
mod isolate;
pub mod middleware;
pub mod outcome;
mod pipeline;
pub mod publisher;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod redrive;
mod registry;
mod sealed;
pub mod server;
pub mod sidecar;
pub mod status;
pub mod subscription;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod transport;

// What a handler or a `main` names; everything else is in its module.
pub use consumer::handler;
pub use error::Error;
pub use event::{Envelope, Event, Protobuf, Raw};
pub use extract::{Batch, State};
pub use isolate::isolate;
pub use outcome::{HandlerError, Outcome, Result, ResultExt};
pub use server::{Server, ServerBuilder, Transport};
pub use subscription::Subscription;

/// Turns an async handler into a consumer of a topic.
///
/// On a function, the function stays exactly as written (call it in your
/// tests as before); its registration is a struct of the same name (types
/// and functions live in separate namespaces, as Rocket's routes do):
/// register it with `.consumer(name {})`, or several with
/// `.consumers(consumers![a, b])`.
///
/// The handler follows the rules of [`fn@handler`]: its arguments are
/// extractors ([`extract`]), in any order: [`Event<T>`] (its payload type
/// decides decoding), [`State<S>`], [`EventId`](extract::EventId),
/// [`Metadata`](extract::Metadata), [`TraceContext`](extract::TraceContext)
/// or your own [`FromEvent`](extract::FromEvent); it returns `()`,
/// [`Outcome`] or `Result<T, E>` with `E: Into<HandlerError>`.
///
/// ```
/// use eventbus::{Event, HandlerError, Outcome, Server, State, subscribe};
///
/// #[derive(serde::Deserialize)]
/// struct PriceChanged { sku: String, cents: i64 }
///
/// #[derive(Clone)]
/// struct Catalog;
///
/// /// Reprices one product.
/// #[subscribe(
///     "price.changed",
///     pubsub = "pubsub-kafka",                                   // default: the server's
///     rule(match = "event.type == \"price.v2\"", path = "/v2"),  // rules, in order; several allowed
///     rule(match = "event.type == \"price.v3\"", path = "/v3"),
///     dead_letter = "price.changed.dlq",
///     metadata(rawPayload = "false", "consumerID" = "pricing"),
///     bulk(max_messages = 100, max_await_ms = 500),
///     timeout = "5s",                                            // "500ms", "5s", "2m"
///     concurrency = 32,
///     crate = "eventbus",                                        // when re-exported by another crate
/// )]
/// async fn on_price(event: Event<PriceChanged>, State(_catalog): State<Catalog>) -> Result<Outcome, HandlerError> {
///     if event.data.cents < 0 {
///         return Ok(Outcome::Drop);
///     }
///     let _ = event.data.sku;
///     Ok(Outcome::Success)
/// }
///
/// #[subscribe("order.completed", raw_payload, path = "/orders")]
/// async fn on_order(_event: Event<serde_json::Value>) {}
///
/// // The topic and the pubsub may be constants, or any expression (read
/// // when the server is built, so chosen at run time); rules may carry a
/// // priority (lower first, across every consumer of the topic).
/// const RETURNS: &str = "order.returned";
/// #[subscribe(topic = RETURNS, pubsub = std::env::var("RETURNS_PUBSUB").unwrap_or("pubsub".into()),
///             rule(match = "event.type == \"v2\"", path = "/returns/v2", priority = -1))]
/// async fn on_return(_event: Event<serde_json::Value>) {}
///
/// let server = Server::builder().state(Catalog).consumer(on_price {}).consumer(on_order {}).consumer(on_return {}).build().unwrap();
/// assert_eq!(server.subscriptions().len(), 3);
/// ```
///
/// On the methods of an impl block marked [`#[consumer]`](macro@consumer), each
/// `#[subscribe]` method stays a plain method; `Arc<Self>` registers them all
/// with `.consumers(..)`:
///
/// ```
/// use std::sync::Arc;
/// use eventbus::{Event, Server, subscribe};
///
/// struct OrderConsumer { shop: String }
///
/// #[eventbus::consumer]
/// impl OrderConsumer {
///     #[subscribe("order.completed")]
///     async fn completed(&self, event: Event<serde_json::Value>) -> eventbus::Result {
///         tracing::info!(shop = %self.shop, id = event.id(), "completed");
///         Ok(())
///     }
///
///     #[subscribe("order.cancelled", dead_letter = "order.cancelled.dlq")]
///     async fn cancelled(&self, _event: Event<serde_json::Value>) -> eventbus::Result {
///         Ok(())
///     }
/// }
///
/// let consumer = Arc::new(OrderConsumer { shop: "eu".into() });
/// let server = Server::builder().consumers(consumer).build().unwrap();
/// assert_eq!(server.subscriptions().len(), 2);
/// ```
///
/// A handler that takes a [`Batch<T>`] (and answers with
/// [`Batch::answers`], one result per event) receives each bulk request
/// whole, so it can write the batch in one transaction; single events reach
/// it as a batch of one, and entries that do not decode are dropped before
/// the call:
///
/// ```
/// use eventbus::handler::Answers;
/// use eventbus::{Batch, HandlerError, subscribe};
///
/// #[subscribe("product.updated", bulk(max_messages = 100, max_await_ms = 200))]
/// async fn index(products: Batch<serde_json::Value>) -> Answers {
///     products.answers(products.iter().map(|_| Ok::<(), HandlerError>(())))
/// }
/// ```
///
/// `#[subscribe]` writes the registration only (topic, pubsub, options);
/// the call goes through the [`Handler`](handler::Handler) trait, as for
/// [`handler()`].
///
/// Mistakes are compile errors on the offending token: a missing, empty or
/// spaced topic; an unknown or repeated option; a non-async or generic
/// function; a payload type that cannot decode; an argument that is not an
/// extractor; an unsupported return type (the last three are followed by a
/// second error saying that the function is not a handler). Arguments that
/// do not go together (a `Batch<T>` beside an `EventId`) fail
/// [`ServerBuilder::build`], naming the handler.
pub use eventbus_macros::subscribe;

/// Makes the `#[subscribe]` methods of an inherent impl block consumers; see
/// [`macro@subscribe`]. Takes `crate = "path"` when `eventbus` is re-exported
/// by another crate (a renamed dependency is found in your `Cargo.toml`).
pub use eventbus_macros::consumer;

/// The protobuf crate [`Protobuf<M>`] decodes with: derive `prost::Message`
/// through this re-export to stay on the version eventbus uses.
pub use prost;
/// The middleware crate of [`ServerBuilder::layer`]: write your layers
/// against this re-export to stay on the version eventbus uses.
pub use tower;

#[doc(hidden)]
pub mod __private {
    //! What the macros expand to; not public API.
    pub use crate::consumer::{BoxedConsumer, Consumer, ConsumerGroup};
    pub use crate::extract::{Context, FromEvent, MissingState};
    pub use crate::handler::{Answers, Delivery, Handler, IntoAnswers};
    pub use crate::subscription::Subscription;

    /// What `#[consumer]` implements beside `ConsumerGroup`, which users do
    /// not implement by hand.
    pub trait SealedGroup {}

    /// `T` is a handler argument (checked on the argument's own token).
    pub fn extractor<T: FromEvent>() {}

    /// `R` is a handler return type (checked on its own token).
    pub fn returns<R: IntoAnswers>() {}

    /// [`Handler::check`] of a handler whose type cannot be named.
    pub fn check<A, H: Handler<A>>(_: &H, ctx: &Context) -> Result<(), MissingState> {
        H::check(ctx)
    }

    /// [`Handler::takes_batches`] of a handler whose type cannot be named.
    pub fn takes_batches<A, H: Handler<A>>(_: &H) -> bool {
        H::takes_batches()
    }
}
