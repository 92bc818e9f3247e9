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

pub use crate::transport::grpc::MAX_HEADER_LIST_SIZE;

/// The gRPC services of `server` (`AppCallback`, `AppCallbackAlpha`,
/// `AppCallbackHealthCheck` and `grpc.health.v1.Health`), to mount in a tonic
/// server of your own. You then own shutdown, which
/// [`Server::serve`](crate::Server::serve) does for you, and should raise
/// `http2_max_header_list_size` to [`MAX_HEADER_LIST_SIZE`] for bulk
/// deliveries.
///
/// ```
/// use eventbus::{Server, grpc};
///
/// let server = Server::builder().build().unwrap();
/// let router = tonic::transport::Server::builder()
///     .http2_max_header_list_size(grpc::MAX_HEADER_LIST_SIZE)
///     .add_routes(grpc::routes(&server));
/// # drop(router);
/// ```
pub fn routes(server: &crate::Server) -> tonic::service::Routes {
    crate::transport::grpc::routes(server.pipeline())
}
