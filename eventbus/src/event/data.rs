//! How payloads decode: JSON for serde types, [`Protobuf<M>`], [`Raw`] bytes.

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::Envelope;

/// Why a payload did not decode.
#[derive(Debug, thiserror::Error)]
// The cause is `source()`, not in the message: printers that walk the chain
// (`HandlerError`, anyhow's `{:#}`) would show it twice.
#[error("cannot decode event data ({content_type}) as {target}")]
pub struct DecodeError {
    content_type: String,
    target: &'static str,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl DecodeError {
    /// A decode error for `target`, with its cause (a decoder's error, or a message).
    pub fn new(
        envelope: &Envelope,
        target: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let content_type = match envelope.data_content_type.as_str() {
            "" => "no content type".to_owned(),
            other => other.to_owned(),
        };
        DecodeError { content_type, target, source: source.into() }
    }
}

/// How a payload type is decoded from an envelope.
///
/// Implemented for every serde type (JSON), for [`Protobuf<M>`] and for [`Raw`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be decoded from an event",
    label = "derive `serde::Deserialize`, or use `Protobuf<M>` or `Raw`"
)]
pub trait EventData: Sized + Send + 'static {
    /// Decodes the envelope's data.
    fn decode(envelope: &Envelope) -> Result<Self, DecodeError>;
}

fn is_protobuf(content_type: &str) -> bool {
    content_type.contains("protobuf")
}

/// JSON, for any content type but protobuf. `rawPayload` subscriptions deliver
/// `application/octet-stream`; that is decoded as JSON too, since the bytes are
/// the publisher's own JSON.
impl<T: DeserializeOwned + Send + 'static> EventData for T {
    fn decode(envelope: &Envelope) -> Result<Self, DecodeError> {
        if is_protobuf(&envelope.data_content_type) {
            return Err(DecodeError::new(envelope, std::any::type_name::<T>(), "expected JSON"));
        }
        serde_json::from_slice(&envelope.data).map_err(|e| DecodeError::new(envelope, std::any::type_name::<T>(), e))
    }
}

/// A protobuf payload (`application/protobuf`, `application/x-protobuf`, or
/// raw bytes of a `rawPayload` subscription).
///
/// ```
/// use eventbus::{Envelope, Event, Protobuf};
/// use prost::Message;
///
/// let bytes = prost_types::Timestamp { seconds: 7, nanos: 0 }.encode_to_vec();
/// let envelope = Envelope { data: bytes.into(), data_content_type: "application/protobuf".into(), ..Envelope::default() };
/// let event: Event<Protobuf<prost_types::Timestamp>> = Event::decode(envelope.into()).unwrap();
/// assert_eq!(event.data.0.seconds, 7);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Protobuf<M>(pub M);

impl<M: prost::Message + Default + 'static> EventData for Protobuf<M> {
    fn decode(envelope: &Envelope) -> Result<Self, DecodeError> {
        let ct = envelope.data_content_type.as_str();
        if !(is_protobuf(ct) || ct.is_empty() || ct == "application/octet-stream") {
            return Err(DecodeError::new(envelope, std::any::type_name::<M>(), "expected protobuf"));
        }
        M::decode(envelope.data.clone())
            .map(Protobuf)
            .map_err(|e| DecodeError::new(envelope, std::any::type_name::<M>(), e))
    }
}

/// The payload's bytes, undecoded, whatever the content type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Raw(pub Bytes);

impl EventData for Raw {
    fn decode(envelope: &Envelope) -> Result<Self, DecodeError> {
        Ok(Raw(envelope.data.clone()))
    }
}
