//! What a handler returns when it fails: [`HandlerError`], transient or permanent.

use std::fmt;

use super::Outcome;

/// Whether a failed event is worth delivering again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// May succeed later (database down, timeout): the sidecar retries.
    Transient,
    /// Will never succeed (malformed payload, broken invariant): the event is
    /// dropped to the dead-letter topic.
    Permanent,
}

/// The error a handler returns.
///
/// `?` converts any `std::error::Error` (and `anyhow::Error`, or a message)
/// into a *transient* error (the event is retried). Mark an error permanent with
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
    error: BoxError,
}

/// Any error, boxed: what [`HandlerError`] holds.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl HandlerError {
    /// An error of the given kind: any error, or a message.
    pub fn new(kind: ErrorKind, error: impl Into<BoxError>) -> Self {
        HandlerError { kind, error: error.into() }
    }

    /// An error worth retrying.
    pub fn transient(error: impl Into<BoxError>) -> Self {
        HandlerError::new(ErrorKind::Transient, error)
    }

    /// An error that retrying cannot fix: the event goes to the dead-letter topic.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        HandlerError::new(ErrorKind::Permanent, error)
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
    pub fn source_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.error
    }
}

// Like anyhow, `HandlerError` is not itself a `std::error::Error`; that is what
// lets `?` convert every error type into it.
impl<E: Into<BoxError>> From<E> for HandlerError {
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
        // The whole chain on one line, as anyhow's `{:#}` prints it.
        write!(f, "{}", self.error)?;
        let mut source = self.error.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

/// Marks the error of a `Result` as transient or permanent.
///
/// ```
/// use eventbus::ResultExt;
/// let r: Result<u32, _> = "12".parse::<u32>().permanent();
/// assert_eq!(r.unwrap(), 12);
/// ```
pub trait ResultExt<T>: crate::sealed::ResultExt {
    /// On error, a permanent [`HandlerError`] (the event is dropped).
    fn permanent(self) -> Result<T, HandlerError>;
    /// On error, a transient [`HandlerError`] (the event is retried).
    fn transient(self) -> Result<T, HandlerError>;
}

impl<T, E: Into<BoxError>> crate::sealed::ResultExt for Result<T, E> {}
impl<T, E: Into<BoxError>> ResultExt<T> for Result<T, E> {
    fn permanent(self) -> Result<T, HandlerError> {
        self.map_err(HandlerError::permanent)
    }
    fn transient(self) -> Result<T, HandlerError> {
        self.map_err(HandlerError::transient)
    }
}

/// The result type of handlers: `eventbus::Result` is `Result<(), HandlerError>`.
pub type Result<T = (), E = HandlerError> = std::result::Result<T, E>;
