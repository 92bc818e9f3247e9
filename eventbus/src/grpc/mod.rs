//! Interop with gRPC: Dapr's protocol types, generated from Dapr's own
//! `.proto` files (`proto/dapr/`, v1.18.3) with tonic's code generator.
//!
//! This is the one module whose public items are other crates' types
//! (`prost` messages, `tonic` clients and servers): reach for it to talk to
//! the sidecar yourself or to mount eventbus in a tonic server of your own.
//! Everything else in eventbus speaks its own types.

#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all, rust_2018_idioms)]
mod generated {
    include!("proto/mod.rs");
}

/// The Dapr protocol types (`dapr.proto.*`).
pub mod proto {
    pub use super::generated::dapr::proto::common::v1 as common;
    pub use super::generated::dapr::proto::runtime::v1 as runtime;
    pub use prost_types::Any;
}

pub use crate::transport::grpc::{AppChannel, MAX_HEADER_LIST_SIZE};

/// The gRPC app channel of `server` (`AppCallback`, `AppCallbackAlpha`,
/// `AppCallbackHealthCheck` and `grpc.health.v1.Health`), to serve with a
/// tonic server of your own. You then own shutdown, which
/// [`Server::serve`](crate::Server::serve) does for you, and should raise
/// `http2_max_header_list_size` to [`MAX_HEADER_LIST_SIZE`] for bulk
/// deliveries. Beside services of your own, mount it under the paths of
/// [`AppChannel::SERVICES`] in your router.
///
/// ```
/// use eventbus::{Server, grpc};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::builder().build()?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// tonic::transport::Server::builder()
///     .http2_max_header_list_size(grpc::MAX_HEADER_LIST_SIZE)
///     .serve_with_incoming(grpc::app_channel(&server), tonic::transport::server::TcpIncoming::from(listener))
///     .await?;
/// # Ok(())
/// # }
/// ```
pub fn app_channel(server: &crate::Server) -> AppChannel {
    AppChannel::new(server.pipeline())
}
