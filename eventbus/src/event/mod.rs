//! The CloudEvent envelope and typed events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use prost_types::value::Kind;

use crate::outcome::HandlerError;

mod data;
mod metadata;
mod structured;
mod time;

#[cfg(feature = "http")]
pub(crate) use structured::take_string;

pub use data::{DecodeError, EventData, Protobuf, Raw};
pub use metadata::Metadata;
pub(crate) use metadata::from_grpc as metadata_from_grpc;
pub use structured::NotBase64;

/// One event as the sidecar delivered it: every CloudEvent attribute, the
/// extensions, the gRPC metadata, and the undecoded data.
///
/// Handlers normally see it through [`Event<T>`]; build one directly to call a
/// handler in a unit test. It is not `#[non_exhaustive]`, so that struct
/// syntax with `..Envelope::default()` works: attributes CloudEvents may add
/// arrive in [`extensions`](Envelope::extensions), not as new fields.
///
/// ```
/// use eventbus::{Envelope, Event};
///
/// let envelope = Envelope {
///     id: "evt-1".into(),
///     topic: "order.completed".into(),
///     data: br#"{"order_id":"o-1"}"#.as_slice().into(),
///     data_content_type: "application/json".into(),
///     ..Envelope::default()
/// };
/// let event: Event<serde_json::Value> = Event::decode(envelope.into()).unwrap();
/// assert_eq!(event.data["order_id"], "o-1");
/// assert_eq!(event.id(), "evt-1");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// CloudEvent `id`: the deduplication key.
    pub id: String,
    /// CloudEvent `source`.
    pub source: String,
    /// CloudEvent `type`.
    pub event_type: String,
    /// CloudEvent `specversion`.
    pub spec_version: String,
    /// CloudEvent `datacontenttype`.
    pub data_content_type: String,
    /// The payload, undecoded.
    pub data: Bytes,
    /// The topic it was published to.
    pub topic: String,
    /// The pub/sub component it came from.
    pub pubsub: String,
    /// The route path the sidecar chose.
    pub path: String,
    /// Every other CloudEvent attribute (`time`, `subject`, `traceparent`, custom ones).
    pub extensions: Extensions,
    /// The gRPC metadata or HTTP headers of the call (broker metadata, `traceparent`, …).
    pub metadata: Metadata,
    /// A bulk entry's own metadata (empty for single events).
    pub entry_metadata: HashMap<String, String>,
}

impl Envelope {
    /// CloudEvent `subject`, from the extensions.
    pub fn subject(&self) -> Option<&str> {
        self.extensions.get_str("subject")
    }

    /// CloudEvent `time`, from the extensions, when present and RFC 3339.
    pub fn time(&self) -> Option<SystemTime> {
        time::parse_rfc3339(self.extensions.get_str("time")?)
    }

    /// The W3C `traceparent`: the gRPC header when the sidecar traced the
    /// call, else the CloudEvent extension.
    pub fn traceparent(&self) -> Option<&str> {
        self.metadata.get("traceparent").or_else(|| self.extensions.get_str("traceparent"))
    }

    /// The W3C `tracestate` (only ever in the extensions).
    pub fn tracestate(&self) -> Option<&str> {
        self.extensions.get_str("tracestate")
    }
}

/// The envelope of an `OnTopicEvent` call or a stream subscription's event
/// (without gRPC metadata).
impl From<crate::grpc::proto::runtime::TopicEventRequest> for Envelope {
    fn from(event: crate::grpc::proto::runtime::TopicEventRequest) -> Self {
        Envelope {
            id: event.id,
            source: event.source,
            event_type: event.r#type,
            spec_version: event.spec_version,
            data_content_type: event.data_content_type,
            data: event.data.into(),
            topic: event.topic,
            pubsub: event.pubsub_name,
            path: event.path,
            extensions: Extensions(event.extensions.unwrap_or_default()),
            metadata: Metadata::default(),
            entry_metadata: HashMap::new(),
        }
    }
}

/// CloudEvent extension attributes (`google.protobuf.Struct` on the wire).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extensions(pub(crate) prost_types::Struct);

impl Extensions {
    /// A string attribute.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.0.fields.get(key)?.kind.as_ref()? {
            Kind::StringValue(s) => Some(s),
            _ => None,
        }
    }

    /// Any attribute, as JSON.
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        self.0.fields.get(key).map(value_to_json)
    }

    /// Sets a string attribute.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let value = prost_types::Value { kind: Some(Kind::StringValue(value.into())) };
        self.0.fields.insert(key.into(), value);
    }

    /// Attribute names.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.fields.keys().map(String::as_str)
    }
}

pub(crate) fn value_to_json(value: &prost_types::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::BoolValue(b)) => J::Bool(*b),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
        Some(Kind::StringValue(s)) => J::String(s.clone()),
        Some(Kind::ListValue(list)) => J::Array(list.values.iter().map(value_to_json).collect()),
        Some(Kind::StructValue(s)) => J::Object(s.fields.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect()),
    }
}

/// A typed event: the envelope's attributes plus `data` decoded into `T`.
///
/// `T` is decoded according to its [`EventData`] implementation: any serde
/// type is JSON, [`Protobuf<M>`] is protobuf, [`Raw`] is the bytes untouched.
#[derive(Debug, Clone)]
pub struct Event<T> {
    /// The decoded payload.
    pub data: T,
    envelope: Arc<Envelope>,
}

impl<T: EventData> Event<T> {
    /// Decodes the envelope's data. A payload that does not decode is a
    /// permanent error: retrying would not change it.
    pub fn decode(envelope: Arc<Envelope>) -> Result<Self, HandlerError> {
        let data = T::decode(&envelope).map_err(HandlerError::permanent)?;
        Ok(Event { data, envelope })
    }
}

impl<T> Event<T> {
    /// An event from an envelope and an already decoded payload.
    pub fn new(envelope: impl Into<Arc<Envelope>>, data: T) -> Self {
        Event { data, envelope: envelope.into() }
    }

    /// CloudEvent `id`: the deduplication key.
    pub fn id(&self) -> &str {
        &self.envelope.id
    }
    /// CloudEvent `source`.
    pub fn source(&self) -> &str {
        &self.envelope.source
    }
    /// CloudEvent `type`.
    pub fn event_type(&self) -> &str {
        &self.envelope.event_type
    }
    /// CloudEvent `specversion`.
    pub fn spec_version(&self) -> &str {
        &self.envelope.spec_version
    }
    /// CloudEvent `datacontenttype`.
    pub fn content_type(&self) -> &str {
        &self.envelope.data_content_type
    }
    /// CloudEvent `subject`.
    pub fn subject(&self) -> Option<&str> {
        self.envelope.subject()
    }
    /// CloudEvent `time`.
    pub fn time(&self) -> Option<SystemTime> {
        self.envelope.time()
    }
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.envelope.topic
    }
    /// The pub/sub component.
    pub fn pubsub(&self) -> &str {
        &self.envelope.pubsub
    }
    /// The route path the sidecar chose.
    pub fn path(&self) -> &str {
        &self.envelope.path
    }
    /// Extension attributes.
    pub fn extensions(&self) -> &Extensions {
        &self.envelope.extensions
    }
    /// The gRPC metadata or HTTP headers of the call.
    pub fn metadata(&self) -> &Metadata {
        &self.envelope.metadata
    }
    /// The whole envelope, including the undecoded data.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }
    /// The payload, dropping the envelope.
    pub fn into_data(self) -> T {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(content_type: &str, data: &'static [u8]) -> Arc<Envelope> {
        Arc::new(Envelope {
            data_content_type: content_type.into(),
            data: Bytes::from_static(data),
            ..Envelope::default()
        })
    }

    #[derive(serde::Deserialize, Debug)]
    struct Order {
        id: String,
    }

    #[test]
    fn json_decodes_for_json_and_raw_content_types() {
        for ct in ["application/json", "application/cloudevents+json", "", "application/octet-stream"] {
            let event = Event::<Order>::decode(envelope(ct, br#"{"id":"1","extra":true}"#)).unwrap();
            assert_eq!(event.data.id, "1");
        }
    }

    #[test]
    fn undecodable_json_is_permanent() {
        let error = Event::<Order>::decode(envelope("application/json", b"{nope")).unwrap_err();
        assert!(error.is_permanent());
        assert!(error.to_string().contains("application/json"), "{error}");
    }

    #[test]
    fn protobuf_content_type_refuses_json_types() {
        let error = Event::<Order>::decode(envelope("application/protobuf", b"\x08\x01")).unwrap_err();
        assert!(error.is_permanent());
    }

    #[test]
    fn time_subject_and_traceparent_come_from_extensions() {
        let mut env = Envelope::default();
        env.extensions.insert("time", "2026-01-02T03:04:05Z");
        env.extensions.insert("subject", "s");
        env.extensions.insert("traceparent", "00-abc-def-01");
        let time = env.time().and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok());
        assert_eq!(time.map(|t| t.as_secs()), Some(1_767_323_045));
        assert_eq!(env.subject(), Some("s"));
        assert_eq!(env.traceparent(), Some("00-abc-def-01"));
    }
}
