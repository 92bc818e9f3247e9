//! What building or running the server returns when it fails.

/// Errors of building and running a [`Server`](crate::Server).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two handlers claim the same (pubsub, topic, path).
    #[error("duplicate subscription {route}: handled by both `{first}` and `{second}`")]
    DuplicateRoute {
        /// `pubsub/topic` and path.
        route: String,
        /// The handler registered first.
        first: String,
        /// The handler registered second.
        second: String,
    },
    /// A subscription is not valid on its own (empty topic, empty pubsub, …).
    #[error("invalid subscription of `{handler}`: {reason}")]
    InvalidSubscription {
        /// The handler's name.
        handler: String,
        /// What is wrong.
        #[source]
        reason: crate::subscription::SubscriptionError,
    },
    /// Two handlers of one topic disagree on a topic-wide setting.
    #[error("conflicting settings for topic {topic}: `{first}` and `{second}` differ in {setting}")]
    ConflictingSubscription {
        /// `pubsub/topic`.
        topic: String,
        /// The setting (dead-letter topic, metadata, bulk).
        setting: &'static str,
        /// One handler.
        first: String,
        /// The other.
        second: String,
    },
    /// A handler needs state that was not given to the builder, or its
    /// arguments do not go together.
    #[error("handler `{handler}` {missing}")]
    MissingState {
        /// The handler's name.
        handler: String,
        /// What is missing.
        #[source]
        missing: crate::extract::MissingState,
    },
    /// Two invocation, binding or job handlers share a name.
    #[error("duplicate {kind} handler `{name}`")]
    DuplicateHandler {
        /// `invocation`, `binding` or `job`.
        kind: &'static str,
        /// The method, binding or job name.
        name: String,
    },
    /// A subscription needs what the chosen transport cannot do (routing
    /// rules on a stream subscription).
    #[error("subscription {subscription} cannot be served over {transport}: {what}")]
    Unsupported {
        /// `pubsub/topic`.
        subscription: String,
        /// `streaming`, `http`.
        transport: &'static str,
        /// What is missing, and what to do instead.
        what: &'static str,
    },
    /// Binding the listening socket failed.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server failed")]
    Serve {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server failed: {source}")]
    Transport {
        /// The cause.
        #[source]
        source: crate::outcome::BoxError,
    },
    /// The sidecar's endpoint cannot be dialled as given (a bad address, or
    /// TLS without the `tls` feature).
    #[error("{reason}")]
    Endpoint {
        /// Why.
        reason: String,
    },
}
