//! What the app answers the sidecar for one event, and how a handler's
//! return value and errors become that answer.

use crate::grpc::proto::runtime::topic_event_response::TopicEventResponseStatus;

mod dropped;
mod error;

pub use dropped::Dropped;
pub(crate) use dropped::{DropHook, report as report_drop};
pub use error::{BoxError, ErrorKind, HandlerError, Result, ResultExt};

/// Why an event got its [`Outcome`]: the `reason` label of
/// `eventbus_events_total` and, for `RETRY` and `DROP`, the `error.type` of
/// the event's span. A bounded set, so a dashboard can show every value.
///
/// | reason | the event |
/// |---|---|
/// | `handled` | the handler answered `SUCCESS` |
/// | `handler` | the handler answered `RETRY` or `DROP`, or failed (transient or permanent error) |
/// | `decode` | its payload (or its bulk entry) could not be decoded |
/// | `timeout` | the handler took longer than its timeout |
/// | `overload` | the consumer was at its concurrency limit |
/// | `panic` | the handler panicked |
/// | `draining` | the server was shutting down |
/// | `refused` | a middleware layer refused it |
/// | `unknown_route` | no handler for its pub/sub, topic and path |
/// | `oversize` | larger than the server's `max_message_size` |
/// | `missing_id` | it had no CloudEvent id |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The handler answered `SUCCESS`.
    Handled,
    /// The handler answered `RETRY` or `DROP`, or returned an error.
    Handler,
    /// The payload or bulk entry could not be decoded.
    Decode,
    /// The handler timed out.
    Timeout,
    /// The consumer was at its concurrency limit.
    Overload,
    /// The handler panicked.
    Panic,
    /// The server was shutting down.
    Draining,
    /// A middleware layer refused the event.
    Refused,
    /// No handler for the event's pub/sub, topic and path.
    UnknownRoute,
    /// Larger than `max_message_size`.
    Oversize,
    /// No CloudEvent id.
    MissingId,
}

impl Reason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Handled => "handled",
            Reason::Handler => "handler",
            Reason::Decode => "decode",
            Reason::Timeout => "timeout",
            Reason::Overload => "overload",
            Reason::Panic => "panic",
            Reason::Draining => "draining",
            Reason::Refused => "refused",
            Reason::UnknownRoute => "unknown_route",
            Reason::Oversize => "oversize",
            Reason::MissingId => "missing_id",
        }
    }

    /// Every reason, for documentation and dashboards.
    pub const ALL: [Reason; 11] = [
        Reason::Handled,
        Reason::Handler,
        Reason::Decode,
        Reason::Timeout,
        Reason::Overload,
        Reason::Panic,
        Reason::Draining,
        Reason::Refused,
        Reason::UnknownRoute,
        Reason::Oversize,
        Reason::MissingId,
    ];
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer for one event, as the sidecar understands it. These are the
/// three statuses of Dapr's protocol, so a `match` on them may be exhaustive.
///
/// | outcome | the sidecar |
/// |---|---|
/// | [`Outcome::Success`] | acknowledges the message |
/// | [`Outcome::Retry`] | retries under its resiliency policy, then dead-letters it |
/// | [`Outcome::Drop`] | acknowledges it and sends it to the dead-letter topic at once |
///
/// Handlers usually return `Result<(), HandlerError>` and let the framework
/// choose; returning an `Outcome` (or `Ok(Outcome::Drop)`) chooses explicitly.
///
/// ```
/// use eventbus::{Event, Outcome};
///
/// async fn only_eur(event: Event<serde_json::Value>) -> Outcome {
///     if event.data["currency"] == "EUR" { Outcome::Success } else { Outcome::Drop }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Processed: acknowledge.
    Success,
    /// Not processed this time: deliver again later.
    Retry,
    /// Never processable: acknowledge and dead-letter.
    Drop,
}

impl Outcome {
    /// The lower-case name used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Retry => "retry",
            Outcome::Drop => "drop",
        }
    }

    /// The wire status of `TopicEventResponse`.
    pub fn to_status(self) -> TopicEventResponseStatus {
        match self {
            Outcome::Success => TopicEventResponseStatus::Success,
            Outcome::Retry => TopicEventResponseStatus::Retry,
            Outcome::Drop => TopicEventResponseStatus::Drop,
        }
    }

    /// Reads a wire status; unknown values count as `Retry`, as daprd does.
    pub fn from_status(status: i32) -> Outcome {
        match TopicEventResponseStatus::try_from(status) {
            Ok(TopicEventResponseStatus::Success) => Outcome::Success,
            Ok(TopicEventResponseStatus::Drop) => Outcome::Drop,
            _ => Outcome::Retry,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a handler returned, before errors are logged and mapped.
pub type HandlerResult = Result<Outcome, HandlerError>;

/// Return types a handler may have: `()`, [`Outcome`], or `Result<T, E>` where
/// `T` is one of those and `E` converts into [`HandlerError`].
///
/// ```
/// use eventbus::outcome::IntoOutcome;
/// use eventbus::{Outcome, HandlerError};
///
/// assert_eq!(().into_outcome().unwrap(), Outcome::Success);
/// let failed: Result<(), std::io::Error> = Err(std::io::Error::other("db down"));
/// assert_eq!(failed.into_outcome().unwrap_err().outcome(), Outcome::Retry);
/// let poison: Result<(), HandlerError> = Err(HandlerError::permanent("bad"));
/// assert_eq!(poison.into_outcome().unwrap_err().outcome(), Outcome::Drop);
/// ```
///
/// The trait is sealed: an event's answer is one of Dapr's three, so these
/// are all the return types there are (it can grow without breaking you).
///
/// ```compile_fail
/// struct Maybe;
/// impl eventbus::outcome::IntoOutcome for Maybe {
///     fn into_outcome(self) -> eventbus::outcome::HandlerResult {
///         Ok(eventbus::Outcome::Success)
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a handler return type",
    label = "return `()`, `Outcome`, or `Result<(), E>` where `E: Into<HandlerError>`"
)]
pub trait IntoOutcome: crate::sealed::IntoOutcome {
    /// Converts the handler's return value.
    fn into_outcome(self) -> HandlerResult;
}

impl crate::sealed::IntoOutcome for () {}
impl IntoOutcome for () {
    fn into_outcome(self) -> HandlerResult {
        Ok(Outcome::Success)
    }
}

impl crate::sealed::IntoOutcome for Outcome {}
impl IntoOutcome for Outcome {
    fn into_outcome(self) -> HandlerResult {
        Ok(self)
    }
}

impl<T: IntoOutcome, E: Into<HandlerError>> crate::sealed::IntoOutcome for Result<T, E> {}
impl<T: IntoOutcome, E: Into<HandlerError>> IntoOutcome for Result<T, E> {
    fn into_outcome(self) -> HandlerResult {
        match self {
            Ok(value) => value.into_outcome(),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_status_round_trips_and_unknown_is_retry() {
        for outcome in [Outcome::Success, Outcome::Retry, Outcome::Drop] {
            assert_eq!(Outcome::from_status(outcome.to_status() as i32), outcome);
        }
        assert_eq!(Outcome::from_status(42), Outcome::Retry);
    }
}
