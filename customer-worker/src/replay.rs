//! `replay`: feeds structured CloudEvents (JSON, one a line) through the
//! same consumers and pipeline as the gRPC server, and prints each outcome.
//! Used to see the worker work without Dapr, and by operators to re-run
//! dead-lettered events after a fix.

use std::collections::BTreeSet;
use std::io::BufRead;

use base64_free::decode_base64;
use eventbus::{Envelope, Outcome};
use serde_json::Value;

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub success: usize,
    pub retry: usize,
    pub drop: usize,
    pub unreadable: usize,
    /// Customers the events named, for printing their figures.
    pub customers: BTreeSet<String>,
}

/// Reads one CloudEvent line into an envelope. The topic is the `topic`
/// attribute that Dapr adds, else the event `type`.
pub fn envelope_from_line(line: &str) -> Result<Envelope, String> {
    let Value::Object(mut event) = serde_json::from_str::<Value>(line).map_err(|e| format!("invalid JSON: {e}"))?
    else {
        return Err("not a JSON object".into());
    };
    fn take(event: &mut serde_json::Map<String, Value>, key: &str) -> String {
        match event.remove(key) {
            Some(Value::String(s)) => s,
            _ => String::new(),
        }
    }
    let id = take(&mut event, "id");
    if id.is_empty() {
        return Err("the event has no id".into());
    }
    let event_type = take(&mut event, "type");
    let topic = match take(&mut event, "topic") {
        topic if !topic.is_empty() => topic,
        _ => event_type.clone(),
    };
    let pubsub = take(&mut event, "pubsubname");
    let mut content_type = take(&mut event, "datacontenttype");
    let data_base64 = take(&mut event, "data_base64");
    let data = match event.remove("data") {
        Some(Value::String(text)) if !content_type.contains("json") => text.into_bytes(),
        Some(value) => serde_json::to_vec(&value).map_err(|e| e.to_string())?,
        None if !data_base64.is_empty() => decode_base64(&data_base64).ok_or("data_base64 is not base64")?,
        None => Vec::new(),
    };
    if content_type.is_empty() {
        content_type = "application/json".into();
    }
    let mut envelope = Envelope {
        id,
        source: take(&mut event, "source"),
        event_type,
        spec_version: take(&mut event, "specversion"),
        data_content_type: content_type,
        data: data.into(),
        topic,
        pubsub,
        ..Envelope::default()
    };
    // The remaining attributes (time, subject, traceparent, …) are extensions.
    for (key, value) in event {
        if let Value::String(text) = value {
            envelope.extensions.insert(key, text);
        }
    }
    Ok(envelope)
}

/// Replays every line of `input` through `server`, writing one line per event to `out`.
pub async fn replay(
    server: &eventbus::Server,
    input: impl BufRead,
    out: &mut impl std::io::Write,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let number = index + 1;
        let envelope = match envelope_from_line(&line) {
            Ok(envelope) => envelope,
            Err(reason) => {
                writeln!(out, "line {number:>3}  {:<24} {:<22} UNREADABLE  {reason}", "-", "-")?;
                summary.unreadable += 1;
                continue;
            }
        };
        if let Ok(Value::Object(data)) = serde_json::from_slice::<Value>(&envelope.data)
            && let Some(Value::String(customer)) = data.get("customer_id")
        {
            summary.customers.insert(customer.clone());
        }
        let (id, topic) = (envelope.id.clone(), envelope.topic.clone());
        let outcome = server.dispatch(envelope).await;
        match outcome {
            Outcome::Success => summary.success += 1,
            Outcome::Retry => summary.retry += 1,
            Outcome::Drop => summary.drop += 1,
        }
        writeln!(out, "line {number:>3}  {id:<24} {topic:<22} {}", outcome.as_str().to_uppercase())?;
    }
    Ok(summary)
}

/// A dependency-free base64 decoder for `data_base64` (standard alphabet, padding optional).
mod base64_free {
    pub(super) fn decode_base64(text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let mut buffer = 0u32;
        let mut bits = 0;
        for byte in text.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b'=') {
            let value = match byte {
                b'A'..=b'Z' => byte - b'A',
                b'a'..=b'z' => byte - b'a' + 26,
                b'0'..=b'9' => byte - b'0' + 52,
                b'+' | b'-' => 62,
                b'/' | b'_' => 63,
                _ => return None,
            };
            buffer = (buffer << 6) | u32::from(value);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
            }
        }
        Some(out)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn decodes() {
            assert_eq!(super::decode_base64("aGVsbG8=").unwrap(), b"hello");
            assert_eq!(super::decode_base64("aGk").unwrap(), b"hi");
            assert!(super::decode_base64("a$b").is_none());
        }
    }
}
