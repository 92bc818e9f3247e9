//! Errors: what a handler returns ([`HandlerError`]) and what building or
//! running the server returns ([`Error`]).

use std::fmt;

use crate::outcome::Outcome;

/// Whether a failed event is worth delivering again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// May succeed later (database down, timeout): the sidecar retries.
    Transient,
    /// Will never succeed (malformed payload, broken invariant): the event is
    /// dropped to the dead-letter topic.
    Permanent,
}

/// The error a handler returns.
///
/// `?` converts any `std::error::Error` and any `anyhow::Error` into a
/// *transient* error (the event is retried). Mark an error permanent with
/// [`HandlerError::permanent`] or [`ResultExt::permanent`] to drop it to the
/// dead-letter topic instead.
///
/// ```
/// use eventbus::{HandlerError, ResultExt, Outcome};
///
/// fn parse(amount: &str) -> Result<i64, HandlerError> {
///     let cents: i64 = amount.parse().permanent()?; // bad input: never retried
///     Ok(cents)
/// }
/// assert_eq!(parse("x").unwrap_err().outcome(), Outcome::Drop);
///
/// fn store() -> Result<(), HandlerError> {
///     Err(std::io::Error::other("connection refused"))?; // transient by default
///     Ok(())
/// }
/// assert_eq!(store().unwrap_err().outcome(), Outcome::Retry);
/// ```
pub struct HandlerError {
    kind: ErrorKind,
    error: anyhow::Error,
}

impl HandlerError {
    /// An error worth retrying.
    pub fn transient(error: impl Into<anyhow::Error>) -> Self {
        HandlerError { kind: ErrorKind::Transient, error: error.into() }
    }

    /// An error that retrying cannot fix: the event goes to the dead-letter topic.
    pub fn permanent(error: impl Into<anyhow::Error>) -> Self {
        HandlerError { kind: ErrorKind::Permanent, error: error.into() }
    }

    /// Transient or permanent.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// `true` for permanent errors.
    pub fn is_permanent(&self) -> bool {
        self.kind == ErrorKind::Permanent
    }

    /// The status the sidecar gets: `Retry` for transient, `Drop` for permanent.
    pub fn outcome(&self) -> Outcome {
        match self.kind {
            ErrorKind::Transient => Outcome::Retry,
            ErrorKind::Permanent => Outcome::Drop,
        }
    }

    /// The underlying error.
    pub fn source_error(&self) -> &anyhow::Error {
        &self.error
    }
}

// Like anyhow, `HandlerError` is not itself a `std::error::Error`; that is what
// lets `?` convert every error type into it.
impl<E: Into<anyhow::Error>> From<E> for HandlerError {
    fn from(error: E) -> Self {
        HandlerError::transient(error)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError").field("kind", &self.kind).field("error", &self.error).finish()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{:#}` prints the whole context chain on one line.
        write!(f, "{:#}", self.error)
    }
}

/// Marks the error of a `Result` as transient or permanent.
///
/// ```
/// use eventbus::ResultExt;
/// let r: Result<u32, _> = "12".parse::<u32>().permanent();
/// assert_eq!(r.unwrap(), 12);
/// ```
pub trait ResultExt<T> {
    /// On error, a permanent [`HandlerError`] (the event is dropped).
    fn permanent(self) -> Result<T, HandlerError>;
    /// On error, a transient [`HandlerError`] (the event is retried).
    fn transient(self) -> Result<T, HandlerError>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn permanent(self) -> Result<T, HandlerError> {
        self.map_err(HandlerError::permanent)
    }
    fn transient(self) -> Result<T, HandlerError> {
        self.map_err(HandlerError::transient)
    }
}

/// The result type of handlers: `eventbus::Result` is `Result<(), HandlerError>`.
pub type Result<T = (), E = HandlerError> = std::result::Result<T, E>;

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
        reason: String,
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
    /// A handler needs state that was not given to the builder.
    #[error("handler `{handler}` needs {what}, which the server builder was not given (use `.state(..)`)")]
    MissingState {
        /// The handler's name.
        handler: String,
        /// The missing type.
        what: String,
    },
    /// Two invocation, binding or job handlers share a name.
    #[error("duplicate {kind} handler `{name}`")]
    DuplicateHandler {
        /// `invocation`, `binding` or `job`.
        kind: &'static str,
        /// The method, binding or job name.
        name: String,
    },
    /// Binding the listening socket failed.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The gRPC transport failed.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}
