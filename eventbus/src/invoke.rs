//! Typed service invocation (`OnInvoke`): a handler takes its request as
//! [`Json<T>`], `String`, `Bytes`, [`Invocation`] or the raw
//! [`InvokeRequest`], and answers with [`Json<T>`], `String`, `Bytes`,
//! `Vec<u8>`, `()` or an [`InvokeResponse`], or a [`Status`] error.
//!
//! ```
//! use eventbus::Server;
//! use eventbus::invoke::Json;
//! use eventbus::tonic::Status;
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
use tonic::Status;

pub use crate::grpc::proto::common::{InvokeRequest, InvokeResponse};

/// A JSON body: `Json<T>` in a request decodes it, in a response encodes it
/// (`application/json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

/// A service invocation, decoded from protobuf plumbing.
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
}

impl From<InvokeRequest> for Invocation {
    fn from(request: InvokeRequest) -> Self {
        let (http_verb, querystring) = match request.http_extension {
            Some(extension) => {
                let verb = crate::grpc::proto::common::http_extension::Verb::try_from(extension.verb)
                    .map(|verb| verb.as_str_name().to_owned())
                    .ok();
                (verb, Some(extension.querystring).filter(|q| !q.is_empty()))
            }
            None => (None, None),
        };
        Invocation {
            method: request.method,
            data: request.data.map(|any| Bytes::from(any.value)).unwrap_or_default(),
            content_type: request.content_type,
            http_verb,
            querystring,
        }
    }
}

/// What an invocation handler can take as its request.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an invocation request",
    label = "take `Json<T>`, `String`, `Bytes`, `Invocation` or `InvokeRequest`"
)]
pub trait FromInvocation: Sized + Send + 'static {
    /// Decodes the request; an error is the call's answer.
    fn from_invocation(request: InvokeRequest) -> Result<Self, Status>;
}

impl FromInvocation for InvokeRequest {
    fn from_invocation(request: InvokeRequest) -> Result<Self, Status> {
        Ok(request)
    }
}

impl FromInvocation for Invocation {
    fn from_invocation(request: InvokeRequest) -> Result<Self, Status> {
        Ok(request.into())
    }
}

impl FromInvocation for Bytes {
    fn from_invocation(request: InvokeRequest) -> Result<Self, Status> {
        Ok(Invocation::from(request).data)
    }
}

/// The body as UTF-8 text.
impl FromInvocation for String {
    fn from_invocation(request: InvokeRequest) -> Result<Self, Status> {
        let invocation = Invocation::from(request);
        String::from_utf8(invocation.data.to_vec())
            .map_err(|e| Status::invalid_argument(format!("{}: the request is not UTF-8 text: {e}", invocation.method)))
    }
}

impl<T: DeserializeOwned + Send + 'static> FromInvocation for Json<T> {
    fn from_invocation(request: InvokeRequest) -> Result<Self, Status> {
        let invocation = Invocation::from(request);
        serde_json::from_slice(&invocation.data).map(Json).map_err(|e| {
            tracing::warn!(method = %invocation.method, error = %e, "invocation request is not the expected JSON");
            Status::invalid_argument(format!("{}: the request is not the expected JSON: {e}", invocation.method))
        })
    }
}

/// What an invocation handler can answer with.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an invocation response",
    label = "answer `Json<T>`, `String`, `Bytes`, `Vec<u8>`, `()` or `InvokeResponse`"
)]
pub trait IntoInvokeResponse {
    /// Encodes the response; an error is the call's answer.
    fn into_invoke_response(self) -> Result<InvokeResponse, Status>;
}

fn body(content_type: &str, value: Vec<u8>) -> InvokeResponse {
    InvokeResponse {
        data: Some(prost_types::Any { type_url: String::new(), value }),
        content_type: content_type.to_owned(),
    }
}

impl IntoInvokeResponse for InvokeResponse {
    fn into_invoke_response(self) -> Result<InvokeResponse, Status> {
        Ok(self)
    }
}

impl IntoInvokeResponse for () {
    fn into_invoke_response(self) -> Result<InvokeResponse, Status> {
        Ok(InvokeResponse::default())
    }
}

impl IntoInvokeResponse for String {
    fn into_invoke_response(self) -> Result<InvokeResponse, Status> {
        Ok(body("text/plain; charset=utf-8", self.into_bytes()))
    }
}

impl IntoInvokeResponse for Vec<u8> {
    fn into_invoke_response(self) -> Result<InvokeResponse, Status> {
        Ok(body("application/octet-stream", self))
    }
}

impl IntoInvokeResponse for Bytes {
    fn into_invoke_response(self) -> Result<InvokeResponse, Status> {
        Ok(body("application/octet-stream", self.to_vec()))
    }
}

impl<T: Serialize> IntoInvokeResponse for Json<T> {
    fn into_invoke_response(self) -> Result<InvokeResponse, Status> {
        let value =
            serde_json::to_vec(&self.0).map_err(|e| Status::internal(format!("cannot encode the answer: {e}")))?;
        Ok(body("application/json", value))
    }
}

impl<R: IntoInvokeResponse> IntoInvokeResponse for Result<R, Status> {
    fn into_invoke_response(self) -> Result<InvokeResponse, Status> {
        self.and_then(R::into_invoke_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(data: &[u8]) -> InvokeRequest {
        InvokeRequest {
            method: "stock".into(),
            data: Some(prost_types::Any { type_url: String::new(), value: data.to_vec() }),
            ..InvokeRequest::default()
        }
    }

    #[test]
    fn requests_decode_and_bad_ones_name_the_method() {
        let Json(n): Json<u32> = Json::from_invocation(request(b"12")).unwrap_or(Json(0));
        assert_eq!(n, 12);
        let error = Json::<u32>::from_invocation(request(b"twelve")).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert!(error.message().starts_with("stock: "), "{}", error.message());
        assert_eq!(String::from_invocation(request(b"pear")).ok().as_deref(), Some("pear"));
        assert!(String::from_invocation(request(&[0xff])).is_err());
    }

    #[test]
    fn responses_carry_their_content_type() {
        let json = Json(serde_json::json!({"a": 1})).into_invoke_response().unwrap_or_default();
        assert_eq!(json.content_type, "application/json");
        assert_eq!(json.data.map(|d| d.value).unwrap_or_default(), br#"{"a":1}"#);
        let failed: Result<String, Status> = Err(Status::not_found("no"));
        assert_eq!(failed.into_invoke_response().unwrap_err().code(), tonic::Code::NotFound);
    }
}
