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
//!
//! ```no_run
//! use eventbus::{Event, HandlerError, Server, State, subscribe};
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
//!         .consumer(on_order_completed)
//!         .build()?
//!         .serve("0.0.0.0:5005".parse().unwrap()) // until SIGTERM, then drains
//!         .await
//! }
//! ```
//!
//! ## Pieces
//!
//! - [`Event<T>`]: the CloudEvent attributes plus `data: T`, decoded as JSON
//!   (any serde type), [`Protobuf<M>`] or [`Raw`] bytes.
//! - [`Consumer`] and [`Subscription`]: what a handler subscribes to, with
//!   routing rules, dead-letter topic, metadata and bulk settings; plain async
//!   functions become consumers with [`subscribe`] or [`handler`].
//! - [`Server`]: the gRPC server, with limits (timeout, per-topic
//!   concurrency, message size), the `APP_API_TOKEN` check, a readiness probe
//!   and graceful shutdown.
//! - [`middleware`]: the tower layers every event runs through; add your own
//!   with [`ServerBuilder::layer`].
//! - [`publisher`]: publish events through the sidecar, or in memory in tests.
//! - `testing` (feature `testing`): a sidecar for tests that drives your app
//!   over real gRPC the way daprd does.
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `testing` | no | [`testing::TestSidecar`], for your integration tests |

#![warn(missing_docs)]

mod consumer;
mod error;
mod event;
pub mod middleware;
mod outcome;
pub mod publisher;
mod registry;
mod server;
mod subscription;
#[cfg(feature = "testing")]
pub mod testing;

pub use consumer::{
    Consumer, ConsumerGroup, Context, FromContext, Handler, HandlerConsumer, IntoConsumers, State, handler,
};
pub use error::{Error, ErrorKind, HandlerError, Result, ResultExt};
pub use event::{DecodeError, Envelope, Event, EventData, Extensions, Protobuf, Raw};
pub use eventbus_macros::{consumer, subscribe};
pub use outcome::{ACK, HandlerResult, IntoOutcome, Outcome};
pub use registry::{Registry, Route};
pub use server::{
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_PORT, Job, Server, ServerBuilder, ServerHandle, TOKEN_ENV, TOKEN_HEADER,
    shutdown_signal,
};
pub use subscription::{Bulk, Rule, Subscription};

/// The Dapr protocol types (`dapr.proto.*`), from the `dapr` crate.
pub mod proto {
    pub use dapr::dapr::proto::common::v1 as common;
    pub use dapr::dapr::proto::runtime::v1 as runtime;
}

#[doc(hidden)]
pub mod __private {
    //! Used by the macros; not public API.
    pub use futures_util::future::BoxFuture;
}
