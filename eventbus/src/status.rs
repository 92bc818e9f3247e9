//! [`Status`]: why a service invocation, binding event or job failed, with a
//! gRPC status [`Code`]. The transports turn it into what Dapr expects: a
//! gRPC status on the gRPC app channel, an HTTP status on the HTTP one.

use std::fmt;

/// A gRPC status code (the same numbers as gRPC's); `Ok` is not one, since a
/// [`Status`] is always a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(i32)]
pub enum Code {
    /// The caller cancelled.
    Cancelled = 1,
    /// Unknown error.
    Unknown = 2,
    /// The request is malformed: retrying it will not help.
    InvalidArgument = 3,
    /// The deadline passed before the call completed.
    DeadlineExceeded = 4,
    /// What the request names does not exist.
    NotFound = 5,
    /// What the request would create exists.
    AlreadyExists = 6,
    /// The caller may not do this.
    PermissionDenied = 7,
    /// A limit was reached (e.g. calls in flight).
    ResourceExhausted = 8,
    /// The system is not in the state the call needs.
    FailedPrecondition = 9,
    /// Aborted, e.g. by a conflict.
    Aborted = 10,
    /// Out of the valid range.
    OutOfRange = 11,
    /// No handler for it.
    Unimplemented = 12,
    /// A bug or a broken invariant.
    Internal = 13,
    /// Unavailable now; retrying later may help.
    Unavailable = 14,
    /// Data was lost.
    DataLoss = 15,
    /// No or a wrong token.
    Unauthenticated = 16,
}

impl Code {
    /// The code of gRPC's number `value`; `Unknown` for 0 and numbers it does not know.
    pub fn from_i32(value: i32) -> Code {
        use Code::*;
        const CODES: [Code; 16] = [
            Cancelled,
            Unknown,
            InvalidArgument,
            DeadlineExceeded,
            NotFound,
            AlreadyExists,
            PermissionDenied,
            ResourceExhausted,
            FailedPrecondition,
            Aborted,
            OutOfRange,
            Unimplemented,
            Internal,
            Unavailable,
            DataLoss,
            Unauthenticated,
        ];
        usize::try_from(value - 1).ok().and_then(|index| CODES.get(index).copied()).unwrap_or(Unknown)
    }

    /// gRPC's name of the code (`DEADLINE_EXCEEDED`), as OpenTelemetry's
    /// `error.type` and `rpc.grpc.status_code` conventions print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The HTTP status Dapr's HTTP app channel answers for it (as grpc-gateway maps them).
    pub fn http_status(self) -> u16 {
        match self {
            Code::Cancelled => 499,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::DeadlineExceeded => 504,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::PermissionDenied => 403,
            Code::ResourceExhausted => 429,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::Unauthenticated => 401,
            Code::Unknown | Code::Internal | Code::DataLoss => 500,
        }
    }
}

/// A failed call: a [`Code`] and a message for the caller.
///
/// ```
/// use eventbus::status::{Code, Status};
///
/// let status = Status::not_found("unknown sku \"plum\"");
/// assert_eq!(status.code(), Code::NotFound);
/// assert_eq!(status.to_string(), "NotFound: unknown sku \"plum\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    code: Code,
    message: String,
}

macro_rules! constructors {
    ($($name:ident => $code:ident),* $(,)?) => {
        $(
            #[doc = concat!("A `", stringify!($code), "` status.")]
            pub fn $name(message: impl Into<String>) -> Status {
                Status::new(Code::$code, message)
            }
        )*
    };
}

impl Status {
    /// A status of `code`.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status { code, message: message.into() }
    }

    constructors! {
        invalid_argument => InvalidArgument,
        deadline_exceeded => DeadlineExceeded,
        not_found => NotFound,
        already_exists => AlreadyExists,
        permission_denied => PermissionDenied,
        resource_exhausted => ResourceExhausted,
        failed_precondition => FailedPrecondition,
        aborted => Aborted,
        out_of_range => OutOfRange,
        unimplemented => Unimplemented,
        internal => Internal,
        unavailable => Unavailable,
        unauthenticated => Unauthenticated,
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

/// The tonic status of `status`, for the gRPC transports.
pub(crate) fn to_grpc(status: Status) -> tonic::Status {
    tonic::Status::new(tonic::Code::from_i32(status.code as i32), status.message)
}

/// Our status of a tonic one (from a client call).
#[cfg(feature = "client")]
pub(crate) fn from_grpc(status: &tonic::Status) -> Status {
    Status::new(Code::from_i32(status.code() as i32), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_grpcs_numbers_both_ways() {
        for number in 1..=16 {
            let ours = Code::from_i32(number);
            assert_eq!(ours as i32, number);
            assert_eq!(tonic::Code::from_i32(number) as i32, number);
        }
        assert_eq!(Code::from_i32(0), Code::Unknown);
        assert_eq!(Code::from_i32(99), Code::Unknown);
        let grpc = to_grpc(Status::out_of_range("too large"));
        assert_eq!((grpc.code(), grpc.message()), (tonic::Code::OutOfRange, "too large"));
        #[cfg(feature = "client")]
        assert_eq!(from_grpc(&grpc), Status::out_of_range("too large"));
    }
}
