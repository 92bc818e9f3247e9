//! The `dapr-api-token` check on data-plane RPCs.

use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::sidecar::TOKEN_HEADER;

/// Compares in time that does not depend on where the tokens first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Checks the token when one is configured.
pub(crate) fn check(expected: Option<&str>, metadata: &MetadataMap, rpc: &str, id: &str) -> Result<(), Status> {
    let Some(expected) = expected else { return Ok(()) };
    let given = metadata.get(TOKEN_HEADER).map(|v| v.as_bytes());
    match given {
        Some(given) if constant_time_eq(given, expected.as_bytes()) => Ok(()),
        Some(_) => {
            tracing::warn!(rpc, event.id = id, "rejected: wrong dapr-api-token");
            Err(Status::unauthenticated("invalid dapr-api-token"))
        }
        None => {
            tracing::warn!(rpc, event.id = id, "rejected: missing dapr-api-token");
            Err(Status::unauthenticated("missing dapr-api-token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn no_token_configured_lets_everything_in() {
        assert!(check(None, &MetadataMap::new(), "OnTopicEvent", "1").is_ok());
        let mut md = MetadataMap::new();
        assert_eq!(check(Some("t"), &md, "OnTopicEvent", "1").unwrap_err().code(), tonic::Code::Unauthenticated);
        md.insert(TOKEN_HEADER, "t".parse().unwrap());
        assert!(check(Some("t"), &md, "OnTopicEvent", "1").is_ok());
    }
}
