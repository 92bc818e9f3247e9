//! Typed service invocation (`OnInvoke`): a handler takes its request as
//! [`Json<T>`], `String`, `Bytes` or the whole [`Invocation`], and answers
//! with [`Json<T>`], `String`, `Bytes`, `Vec<u8>`, `()` or a [`Reply`], or a
//! [`Status`] error.
//!
//! ```
//! use eventbus::Server;
//! use eventbus::invoke::Json;
//! use eventbus::status::Status;
//!
//! #[derive(serde::Deserialize)]
//! struct Quote { sku: String, quantity: u32 }
//!
//! #[derive(serde::Serialize)]
//! struct Price { cents: u64 }
//!
//! async fn quote(Json(quote): Json<Quote>) -> Result<Json<Price>, Status> {
//!     if quote.sku.is_empty() {
//!         return Err(Status::invalid_argument("no sku"));
//!     }
//!     Ok(Json(Price { cents: 250 * u64::from(quote.quantity) }))
//! }
//!
//! let server = Server::builder().invocation("quote", quote).build().unwrap();
//! ```
//!
//! A request that does not decode is answered `InvalidArgument`, naming the
//! method and the reason, before the handler runs.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::status::Status;

/// A JSON body: `Json<T>` in a request decodes it, in a response encodes it
/// (`application/json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

/// A service invocation, as the sidecar delivers it.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Invocation {
    /// The method.
    pub method: String,
    /// The request body.
    pub data: Bytes,
    /// The body's content type.
    pub content_type: String,
    /// The HTTP verb, when the caller invoked over HTTP (`GET`, `POST`, …).
    pub http_verb: Option<String>,
    /// The HTTP query string, when there was one.
    pub querystring: Option<String>,
    /// What the layers put in the request (see
    /// [`Extensions`](crate::middleware::Extensions)).
    pub extensions: crate::middleware::Extensions,
}

impl Invocation {
    /// An invocation of `method` with `data` (for tests and replays).
    pub fn new(method: impl Into<String>, content_type: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Invocation {
            method: method.into(),
            content_type: content_type.into(),
            data: data.into(),
            ..Invocation::default()
        }
    }
}

/// An invocation's answer: a body and its content type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply {
    /// The body.
    pub data: Bytes,
    /// Its content type (empty for none).
    pub content_type: String,
}

impl Reply {
    /// A reply of `data` typed `content_type`.
    pub fn new(content_type: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Reply { data: data.into(), content_type: content_type.into() }
    }
}

/// What an invocation handler can take as its request.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an invocation request",
    label = "take `Json<T>`, `String`, `Bytes` or `Invocation`"
)]
pub trait FromInvocation: Sized + Send + 'static {
    /// Decodes the request; an error is the call's answer.
    fn from_invocation(invocation: Invocation) -> Result<Self, Status>;
}

impl FromInvocation for Invocation {
    fn from_invocation(invocation: Invocation) -> Result<Self, Status> {
        Ok(invocation)
    }
}

impl FromInvocation for Bytes {
    fn from_invocation(invocation: Invocation) -> Result<Self, Status> {
        Ok(invocation.data)
    }
}

/// The body as UTF-8 text.
impl FromInvocation for String {
    fn from_invocation(invocation: Invocation) -> Result<Self, Status> {
        String::from_utf8(invocation.data.to_vec())
            .map_err(|e| Status::invalid_argument(format!("{}: the request is not UTF-8 text: {e}", invocation.method)))
    }
}

impl<T: DeserializeOwned + Send + 'static> FromInvocation for Json<T> {
    fn from_invocation(invocation: Invocation) -> Result<Self, Status> {
        serde_json::from_slice(&invocation.data).map(Json).map_err(|e| {
            tracing::warn!(method = %invocation.method, error = %e, "invocation request is not the expected JSON");
            Status::invalid_argument(format!("{}: the request is not the expected JSON: {e}", invocation.method))
        })
    }
}

/// What an invocation handler can answer with.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an invocation answer",
    label = "answer `Json<T>`, `String`, `Bytes`, `Vec<u8>`, `()` or `Reply`, or `Result<_, Status>` of one"
)]
pub trait IntoReply {
    /// Encodes the answer; an error is the call's answer.
    fn into_reply(self) -> Result<Reply, Status>;
}

impl IntoReply for Reply {
    fn into_reply(self) -> Result<Reply, Status> {
        Ok(self)
    }
}

impl IntoReply for () {
    fn into_reply(self) -> Result<Reply, Status> {
        Ok(Reply::default())
    }
}

impl IntoReply for String {
    fn into_reply(self) -> Result<Reply, Status> {
        Ok(Reply::new("text/plain; charset=utf-8", self))
    }
}

impl IntoReply for Vec<u8> {
    fn into_reply(self) -> Result<Reply, Status> {
        Ok(Reply::new("application/octet-stream", self))
    }
}

impl IntoReply for Bytes {
    fn into_reply(self) -> Result<Reply, Status> {
        Ok(Reply::new("application/octet-stream", self))
    }
}

impl<T: Serialize> IntoReply for Json<T> {
    fn into_reply(self) -> Result<Reply, Status> {
        let value =
            serde_json::to_vec(&self.0).map_err(|e| Status::internal(format!("cannot encode the answer: {e}")))?;
        Ok(Reply::new("application/json", value))
    }
}

impl<R: IntoReply> IntoReply for Result<R, Status> {
    fn into_reply(self) -> Result<Reply, Status> {
        self.and_then(R::into_reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Code;

    fn request(data: &'static [u8]) -> Invocation {
        Invocation::new("stock", "application/json", data)
    }

    #[test]
    fn requests_decode_and_bad_ones_name_the_method() {
        let Json(n): Json<u32> = Json::from_invocation(request(b"12")).unwrap_or(Json(0));
        assert_eq!(n, 12);
        let error = Json::<u32>::from_invocation(request(b"twelve")).unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);
        assert!(error.message().starts_with("stock: "), "{}", error.message());
        assert_eq!(String::from_invocation(request(b"pear")).ok().as_deref(), Some("pear"));
        assert!(String::from_invocation(request(&[0xff])).is_err());
    }

    #[test]
    fn replies_carry_their_content_type() {
        let json = Json(serde_json::json!({"a": 1})).into_reply().unwrap_or_default();
        assert_eq!(json.content_type, "application/json");
        assert_eq!(json.data, &br#"{"a":1}"#[..]);
        let failed: Result<String, Status> = Err(Status::not_found("no"));
        assert_eq!(failed.into_reply().unwrap_err().code(), Code::NotFound);
    }
}
