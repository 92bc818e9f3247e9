//! Erasure (`customer.deleted`): what is removed, what is kept, and how a
//! later event for an erased customer is recognised. Pure functions: the SQL
//! lives in `store`.
//!
//! On erasure the customer's personal data goes: the security log (IP
//! addresses, user agents), the last login time, the segments, and the
//! dead-letter reasons that name them. Their figures stay, anonymised: the
//! customer's row and orders move to a key made from the erasure event's
//! id, which says nothing of the customer, so totals and daily figures
//! still add up. What remains of the id is its SHA-256 digest
//! ([`id_digest`]): enough to drop a later event for the customer, with
//! [`erased`] as the reason, without keeping the id. An erasure is
//! idempotent: erasing again, or a customer never seen, changes nothing
//! more (and still records the digest).

use sha2::{Digest, Sha256};

/// The digest an erased customer is remembered by: SHA-256 of the id, in hex.
pub fn id_digest(customer_id: &str) -> String {
    Sha256::digest(customer_id.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The key the erased customer's figures and orders are kept under: made
/// from the erasure event's id, unrelated to the customer's.
pub fn anonymous_id(erasure_event_id: &str) -> String {
    format!("erased:{}", &id_digest(erasure_event_id)[..16])
}

/// Why an event for an erased customer is refused. It does not name the
/// customer: the reason is kept with the dead letter.
pub fn erased() -> String {
    "customer_id: the customer was erased (customer.deleted); the event is not applied".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_sha256_in_hex() {
        assert_eq!(id_digest(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_ne!(id_digest("c-1"), id_digest("c-2"));
    }

    #[test]
    fn the_anonymous_key_does_not_contain_the_customer() {
        let key = anonymous_id("evt-erase-1");
        assert!(key.starts_with("erased:") && key.len() == "erased:".len() + 16, "{key}");
        assert!(!key.contains("c-1"));
        assert_eq!(key, anonymous_id("evt-erase-1"), "the same erasure, the same key");
    }
}
