//! The transports: thin adapters from the ways Dapr delivers (the gRPC app
//! channel, the HTTP app channel, streaming subscriptions) to the
//! [pipeline](crate::pipeline). None imports another.

pub(crate) mod grpc;
#[cfg(feature = "http")]
pub(crate) mod http;
#[cfg(feature = "client")]
pub(crate) mod streaming;
mod token;
