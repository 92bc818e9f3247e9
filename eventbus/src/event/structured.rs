//! Structured-mode CloudEvents (JSON), as the HTTP app channel delivers them
//! and as recorded or dead-lettered events are stored.

use serde_json::{Map, Value};

use super::{Envelope, Extensions};

/// Standard base64, padded or not (producers differ).
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// A structured CloudEvent whose `data_base64` is not base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("data_base64 is not base64: {reason}")]
pub struct NotBase64 {
    reason: String,
}

impl Envelope {
    /// The envelope of a structured-mode CloudEvent (its JSON object):
    /// `data` (JSON, or text when the content type is not JSON) or
    /// `data_base64`; `topic` and `pubsubname` (which Dapr adds) to their
    /// fields; every other attribute to [`Envelope::extensions`].
    ///
    /// ```
    /// use eventbus::Envelope;
    ///
    /// let event = serde_json::json!({
    ///     "specversion": "1.0", "id": "e-1", "type": "order.completed", "source": "shop",
    ///     "topic": "order.completed", "datacontenttype": "application/json",
    ///     "data": {"order_id": "o-1"}, "tenant": "eu",
    /// });
    /// let serde_json::Value::Object(event) = event else { unreachable!() };
    /// let envelope = Envelope::from_structured(event).unwrap();
    /// assert_eq!((envelope.id.as_str(), envelope.topic.as_str()), ("e-1", "order.completed"));
    /// assert_eq!(envelope.data.as_ref(), br#"{"order_id":"o-1"}"#);
    /// assert_eq!(envelope.extensions.get_str("tenant"), Some("eu"));
    /// ```
    ///
    /// Fails only on a `data_base64` that is not base64.
    pub fn from_structured(mut event: Map<String, Value>) -> Result<Envelope, NotBase64> {
        use base64::Engine;
        let data_content_type = take_string(&mut event, "datacontenttype").unwrap_or_default();
        let data = match (event.remove("data_base64"), event.remove("data")) {
            (Some(Value::String(encoded)), _) => {
                BASE64.decode(encoded.trim()).map_err(|e| NotBase64 { reason: e.to_string() })?
            }
            // Text that is not JSON arrives as a string: its bytes are the payload.
            (_, Some(Value::String(text))) if !data_content_type.contains("json") => text.into_bytes(),
            (_, Some(Value::Null) | None) => Vec::new(),
            (_, Some(json)) => serde_json::to_vec(&json).unwrap_or_default(),
        };
        let mut envelope = Envelope {
            id: take_string(&mut event, "id").unwrap_or_default(),
            source: take_string(&mut event, "source").unwrap_or_default(),
            event_type: take_string(&mut event, "type").unwrap_or_default(),
            spec_version: take_string(&mut event, "specversion").unwrap_or_default(),
            topic: take_string(&mut event, "topic").unwrap_or_default(),
            pubsub: take_string(&mut event, "pubsubname").unwrap_or_default(),
            data_content_type,
            data: data.into(),
            extensions: Extensions::default(),
            ..Envelope::default()
        };
        for (key, value) in event {
            envelope.extensions.0.fields.insert(key, json_to_prost(value));
        }
        Ok(envelope)
    }
}

impl Envelope {
    /// The structured-mode CloudEvent of this envelope: the inverse of
    /// [`Envelope::from_structured`]. `data` as JSON when the content type
    /// is JSON and the payload parses, as text for other text types, else
    /// `data_base64`; every extension attribute (`time`, `traceparent`,
    /// `topic`, custom ones) as it came.
    ///
    /// ```
    /// use eventbus::Envelope;
    ///
    /// let event = serde_json::json!({
    ///     "specversion": "1.0", "id": "e-1", "type": "order.completed", "source": "shop",
    ///     "datacontenttype": "application/json", "data": {"order_id": "o-1"}, "tenant": "eu",
    /// });
    /// let serde_json::Value::Object(map) = event.clone() else { unreachable!() };
    /// let envelope = Envelope::from_structured(map).unwrap();
    /// assert_eq!(serde_json::Value::Object(envelope.to_structured()), event);
    /// ```
    pub fn to_structured(&self) -> Map<String, Value> {
        use base64::Engine;
        let mut event: Map<String, Value> =
            self.extensions.0.fields.iter().map(|(key, value)| (key.clone(), super::value_to_json(value))).collect();
        for (key, value) in [
            ("specversion", &self.spec_version),
            ("id", &self.id),
            ("source", &self.source),
            ("type", &self.event_type),
            ("datacontenttype", &self.data_content_type),
        ] {
            if !value.is_empty() {
                event.insert(key.to_owned(), Value::String(value.clone()));
            }
        }
        let json = self.data_content_type.contains("json");
        let text = self.data_content_type.starts_with("text/");
        match (serde_json::from_slice::<Value>(&self.data), std::str::from_utf8(&self.data)) {
            _ if self.data.is_empty() => {}
            (Ok(data), _) if json => {
                event.insert("data".to_owned(), data);
            }
            (_, Ok(data)) if text => {
                event.insert("data".to_owned(), Value::String(data.to_owned()));
            }
            _ => {
                event.insert("data_base64".to_owned(), Value::String(BASE64.encode(&self.data)));
            }
        }
        event
    }
}

/// Removes `key` from a JSON object, when its value is a string.
pub(crate) fn take_string(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    match map.remove(key)? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn json_to_prost(value: Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(values) => {
            Kind::ListValue(prost_types::ListValue { values: values.into_iter().map(json_to_prost).collect() })
        }
        Value::Object(fields) => Kind::StructValue(prost_types::Struct {
            fields: fields.into_iter().map(|(k, v)| (k, json_to_prost(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn text_base64_and_traces_keep_their_meaning() {
        let text = object(json!({"id": "e", "datacontenttype": "text/plain", "data": "hello"}));
        assert_eq!(Envelope::from_structured(text).unwrap().data.as_ref(), b"hello");
        let binary = object(json!({"id": "e", "data_base64": "AAEC"}));
        assert_eq!(Envelope::from_structured(binary).unwrap().data.as_ref(), [0, 1, 2]);
        let unpadded = object(json!({"id": "e", "data_base64": "aGk"}));
        assert_eq!(Envelope::from_structured(unpadded).unwrap().data.as_ref(), b"hi");
        assert!(Envelope::from_structured(object(json!({"data_base64": "a$b"}))).is_err());
        let traced =
            object(json!({"id": "e", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}));
        assert!(Envelope::from_structured(traced).unwrap().traceparent().is_some());
    }

    #[test]
    fn every_kind_of_payload_survives_the_round_trip() {
        for event in [
            json!({"specversion": "1.0", "id": "e", "datacontenttype": "text/plain", "data": "hello"}),
            json!({"specversion": "1.0", "id": "e", "datacontenttype": "application/octet-stream", "data_base64": "AAEC"}),
            json!({"specversion": "1.0", "id": "e", "datacontenttype": "application/json", "data": [1, "two"],
                   "time": "2026-11-20T10:00:00Z", "topic": "orders", "pubsubname": "pubsub"}),
            json!({"specversion": "1.0", "id": "e", "source": "s", "type": "t"}),
        ] {
            let envelope = Envelope::from_structured(object(event.clone())).unwrap();
            // `topic` and `pubsubname` become fields; written back, they are extensions.
            let mut back = envelope.to_structured();
            back.extend(
                [("topic", &envelope.topic), ("pubsubname", &envelope.pubsub)]
                    .into_iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.to_owned(), Value::String(v.clone()))),
            );
            assert_eq!(Value::Object(back), event);
        }
    }
}
