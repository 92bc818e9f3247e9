//! The decoders on any bytes under any content type: the framework's JSON,
//! protobuf and raw decoders, and the worker's payloads with their contract
//! checks. They may refuse, never panic; and what they accept must satisfy
//! the contract (amounts in range, identifiers bounded).
#![no_main]

use std::sync::Arc;

use customer_worker::contracts::{
    AuthLogin, Contract, AuthPasswordChanged, Check, MAX_AMOUNT_MINOR, OrderCancelled, OrderCompleted, OrderReturned,
    amount_minor, check_event_id,
};
use eventbus::event::EventData;
use eventbus::{Envelope, Event, Protobuf, Raw};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [&str; 6] = [
    "application/json",
    "application/cloudevents+json",
    "application/protobuf",
    "text/plain",
    "",
    "application/json; charset=utf-8",
];

fn decode<T: EventData>(envelope: &Arc<Envelope>) -> Option<Event<T>> {
    Event::<T>::decode(envelope.clone()).ok()
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else { return };
    let envelope = Arc::new(Envelope {
        id: String::from_utf8_lossy(&data[..data.len().min(usize::from(selector & 0x3f))]).into_owned(),
        data_content_type: CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()].into(),
        data: data.to_vec().into(),
        ..Envelope::default()
    });
    let _ = check_event_id(&envelope.id);
    let _ = decode::<Raw>(&envelope);
    let _ = decode::<serde_json::Value>(&envelope);
    let _ = decode::<Protobuf<prost_types::Struct>>(&envelope);
    if let Some(event) = decode::<Contract<OrderCompleted>>(&envelope)
        && event.data.check().is_ok()
    {
        let minor = amount_minor("total_amount", &event.data.total_amount, &event.data.currency);
        assert!(minor.is_ok_and(|m| (0..=MAX_AMOUNT_MINOR).contains(&m)));
    }
    if let Some(event) = decode::<Contract<OrderCancelled>>(&envelope) {
        let _ = event.data.check();
    }
    if let Some(event) = decode::<Contract<OrderReturned>>(&envelope)
        && event.data.check().is_ok()
    {
        assert!(amount_minor("refund_amount", &event.data.refund_amount, &event.data.currency).is_ok());
    }
    if let Some(event) = decode::<Contract<AuthLogin>>(&envelope) {
        let _ = event.data.check();
    }
    if let Some(event) = decode::<Contract<AuthPasswordChanged>>(&envelope) {
        let _ = event.data.check();
    }
});
