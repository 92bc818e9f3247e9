//! The serde types agree with `proto/customer/v1/events.proto`, and the
//! golden JSON samples decode.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use customer_worker::contracts::{AuthLogin, AuthPasswordChanged, OrderCancelled, OrderCompleted, OrderReturned};
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
