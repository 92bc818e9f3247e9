//! The subset of CEL the test sidecar evaluates for routing rules:
//! comparisons `event.<attribute> == "text"` (or `!=`) joined by `&&` and
//! `||` (no parentheses), and `true`/`false`. Attributes: `id`, `source`,
//! `type`, `specversion`, `datacontenttype`, `subject`, `topic`, any
//! extension, and `data.<field>` for string fields of JSON data.

use super::CloudEvent;

/// Evaluates `expression` against `event`; `Err` names what is unsupported.
pub(crate) fn matches(expression: &str, event: &CloudEvent, topic: &str) -> Result<bool, String> {
    for alternative in expression.split("||") {
        let mut all = true;
        for term in alternative.split("&&") {
            all &= term_matches(term.trim(), event, topic)?;
        }
        if all {
            return Ok(true);
        }
    }
    Ok(false)
}

fn term_matches(term: &str, event: &CloudEvent, topic: &str) -> Result<bool, String> {
    match term {
        "true" => return Ok(true),
        "false" => return Ok(false),
        _ => {}
    }
    let (left, right, equal) = if let Some((l, r)) = term.split_once("==") {
        (l, r, true)
    } else if let Some((l, r)) = term.split_once("!=") {
        (l, r, false)
    } else {
        return Err(format!("unsupported CEL term {term:?}"));
    };
    let literal = right.trim().trim_matches(|c| c == '"' || c == '\'');
    let attribute = left
        .trim()
        .strip_prefix("event.")
        .ok_or_else(|| format!("unsupported CEL operand {:?} (expected event.<attribute>)", left.trim()))?;
    let value = attribute_value(attribute, event, topic);
    Ok((value.as_deref() == Some(literal)) == equal)
}

fn attribute_value(attribute: &str, event: &CloudEvent, topic: &str) -> Option<String> {
    Some(match attribute {
        "id" => event.id.clone(),
        "source" => event.source.clone(),
        "type" => event.event_type.clone(),
        "specversion" => event.spec_version.clone(),
        "datacontenttype" => event.content_type.clone(),
        "topic" => topic.to_owned(),
        other => {
            if let Some(field) = other.strip_prefix("data.") {
                let data: serde_json::Value = serde_json::from_slice(&event.data).ok()?;
                return data.get(field)?.as_str().map(str::to_owned);
            }
            return event.extensions.get_str(other).map(str::to_owned);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_type_data_and_boolean_operators() {
        let event = CloudEvent::json(&serde_json::json!({"kind": "gold"})).event_type("order.v2");
        assert!(matches(r#"event.type == "order.v2""#, &event, "t").unwrap());
        assert!(!matches(r#"event.type != "order.v2""#, &event, "t").unwrap());
        assert!(matches(r#"event.type == "x" || event.data.kind == 'gold'"#, &event, "t").unwrap());
        assert!(!matches(r#"event.type == "order.v2" && event.topic == "other""#, &event, "t").unwrap());
        assert!(matches("size(event.data) > 3", &event, "t").is_err());
    }
}
