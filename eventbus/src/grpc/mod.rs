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
