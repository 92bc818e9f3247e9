//! The serde types agree with `proto/customer/v1/events.proto`, and the
//! golden JSON samples decode.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use customer_worker::contracts::{
    AuthLogin, AuthPasswordChanged, CustomerDeleted, OrderCancelled, OrderCompleted, OrderReturned,
};
use prost::Message;
use serde_json::{Map, Value};

fn proto() -> prost_types::FileDescriptorSet {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let bytes = protox::compile(["customer/v1/events.proto"], [root]).unwrap().encode_to_vec();
    prost_types::FileDescriptorSet::decode(bytes.as_slice()).unwrap()
}

/// A valid value for a field, by its name.
fn sample(field: &str) -> Value {
    match field {
        f if f.ends_with("_amount") => Value::from("12.50"),
        "currency" => Value::from("EUR"),
        f if f.ends_with("_at") => Value::from("2026-11-20T10:00:00Z"),
        _ => Value::from("x"),
    }
}

type Decoder = fn(Value) -> Result<(), String>;

fn decoder<T: serde::de::DeserializeOwned>() -> Decoder {
    |value| serde_json::from_value::<T>(value).map(|_| ()).map_err(|e| e.to_string())
}

fn messages() -> Vec<(&'static str, &'static str, Decoder)> {
    vec![
        ("OrderCompleted", "order.completed", decoder::<OrderCompleted>()),
        ("OrderCancelled", "order.cancelled", decoder::<OrderCancelled>()),
        ("OrderReturned", "order.returned", decoder::<OrderReturned>()),
        ("AuthLogin", "auth.login", decoder::<AuthLogin>()),
        ("AuthPasswordChanged", "auth.password_changed", decoder::<AuthPasswordChanged>()),
        ("CustomerDeleted", "customer.deleted", decoder::<CustomerDeleted>()),
    ]
}

#[test]
fn every_proto_field_is_understood_and_exactly_the_non_optional_ones_are_required() {
    let set = proto();
    let file = set.file.iter().find(|f| f.package() == "customer.v1").unwrap();
    assert_eq!(file.message_type.len(), messages().len(), "a message without a Rust type");
    for (name, _, decode) in messages() {
        let message =
            file.message_type.iter().find(|m| m.name() == name).unwrap_or_else(|| panic!("{name} not in proto"));
        let full: Map<String, Value> = message.field.iter().map(|f| (f.name().to_owned(), sample(f.name()))).collect();
        decode(Value::Object(full.clone())).unwrap_or_else(|e| panic!("{name}: every field given: {e}"));
        for field in &message.field {
            let mut without = full.clone();
            without.remove(field.name());
            let optional = field.proto3_optional();
            let result = decode(Value::Object(without));
            assert_eq!(
                result.is_ok(),
                optional,
                "{name}.{}: optional in proto = {optional}, got {result:?}",
                field.name()
            );
        }
    }
}

#[test]
fn golden_samples_decode() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/golden");
    for (_, topic, decode) in messages() {
        let text = std::fs::read_to_string(dir.join(format!("{topic}.json"))).unwrap();
        decode(serde_json::from_str(&text).unwrap()).unwrap_or_else(|e| panic!("{topic}: {e}"));
    }
}

/// Decodes `data` (with `content_type`) as the worker's consumers do, through
/// `Contract<T>`, and prints it for comparison.
fn contract(name: &str, content_type: &str, data: Vec<u8>) -> Result<String, String> {
    use customer_worker::contracts::Contract;
    use eventbus::event::EventData;
    let envelope =
        eventbus::Envelope { data: data.into(), data_content_type: content_type.into(), ..Default::default() };
    let shown = match name {
        "OrderCompleted" => Contract::<OrderCompleted>::decode(&envelope).map(|c| format!("{:?}", c.0)),
        "OrderCancelled" => Contract::<OrderCancelled>::decode(&envelope).map(|c| format!("{:?}", c.0)),
        "OrderReturned" => Contract::<OrderReturned>::decode(&envelope).map(|c| format!("{:?}", c.0)),
        "AuthLogin" => Contract::<AuthLogin>::decode(&envelope).map(|c| format!("{:?}", c.0)),
        "CustomerDeleted" => Contract::<CustomerDeleted>::decode(&envelope).map(|c| format!("{:?}", c.0)),
        _ => Contract::<AuthPasswordChanged>::decode(&envelope).map(|c| format!("{:?}", c.0)),
    };
    shown.map_err(|e| e.to_string())
}

/// Each golden sample, the proto message it is, and its message descriptor.
fn golden() -> Vec<(&'static str, Map<String, Value>, prost_reflect::MessageDescriptor)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/golden");
    let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(proto()).unwrap();
    messages()
        .into_iter()
        .map(|(name, topic, _)| {
            let text = std::fs::read_to_string(dir.join(format!("{topic}.json"))).unwrap();
            let Value::Object(sample) = serde_json::from_str(&text).unwrap() else { panic!("{topic}: not an object") };
            (name, sample, pool.get_message_by_name(&format!("customer.v1.{name}")).unwrap())
        })
        .collect()
}

#[test]
fn both_json_spellings_of_the_proto3_mapping_decode_the_same() {
    for (name, sample, descriptor) in golden() {
        // What Go's protojson and Python's json_format write by default: lowerCamelCase.
        let camel: Map<String, Value> = sample
            .iter()
            .map(|(key, value)| match descriptor.get_field_by_name(key) {
                Some(field) => (field.json_name().to_owned(), value.clone()),
                None => (key.clone(), value.clone()), // an unknown field stays unknown
            })
            .collect();
        assert!(camel.keys().any(|k| k.chars().any(char::is_uppercase)), "{name}: the sample has no two-word field");
        let snake = contract(name, "application/json", serde_json::to_vec(&sample).unwrap()).unwrap();
        let lower_camel = contract(name, "application/json", serde_json::to_vec(&camel).unwrap());
        assert_eq!(lower_camel.as_ref(), Ok(&snake), "{name}");
    }
}

#[test]
fn protobuf_events_decode_like_their_json() {
    for (name, sample, descriptor) in golden() {
        let mut message = prost_reflect::DynamicMessage::new(descriptor.clone());
        for (key, value) in &sample {
            // Every field is a proto string; a JSON number (an amount) is its text.
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            if descriptor.get_field_by_name(key).is_some() {
                message.set_field_by_name(key, prost_reflect::Value::String(text));
            }
        }
        let from_json = contract(name, "application/json", serde_json::to_vec(&sample).unwrap()).unwrap();
        let from_protobuf = contract(name, "application/protobuf", message.encode_to_vec());
        assert_eq!(from_protobuf.as_ref(), Ok(&from_json), "{name}");
    }
    // Bytes that are not the message are a decode error (DROP), not a panic.
    assert!(contract("OrderCompleted", "application/protobuf", vec![0xff, 0xff, 0xff]).is_err());
}
