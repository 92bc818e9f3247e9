//! The event payloads, mirroring `proto/customer/v1/events.proto`, read
//! through [`Contract<T>`]: JSON with either spelling of the proto3 JSON
//! mapping (`order_id` or `orderId`, as Go and Python producers write by
//! default), or protobuf (`application/protobuf`), decoded with the
//! descriptors compiled from the proto at build time.
//!
//! Unknown fields are ignored; a missing required field or a malformed value
//! fails decoding, which the framework answers `DROP` (dead letter). What
//! decodes is then checked against the contract ([`Check`]) before the
//! database sees it: identifiers non-empty, at most [`MAX_ID_BYTES`] and
//! without control characters; free text at most [`MAX_TEXT_BYTES`] without
//! control characters; amounts not negative, at most [`MAX_AMOUNT_MINOR`]
//! minor units, in an ISO 4217 currency and with no more decimals than it
//! has. Each failure names the field and is a `DROP`.

use std::fmt;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use eventbus::Envelope;
use eventbus::event::{DecodeError, EventData};
use prost_reflect::{DescriptorPool, DynamicMessage};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The messages of `proto/customer/v1/events.proto` (compiled by `build.rs`).
static DESCRIPTORS: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    DescriptorPool::decode(include_bytes!(concat!(env!("OUT_DIR"), "/events.bin")).as_slice())
        .map_err(|e| e.to_string())
});

/// The descriptors of `proto/customer/v1/events.proto`, e.g. to encode a
/// protobuf event with `prost_reflect::DynamicMessage`.
pub fn descriptors() -> Result<&'static DescriptorPool, &'static str> {
    DESCRIPTORS.as_ref().map_err(String::as_str)
}

/// The proto message a payload type mirrors.
pub trait ProtoMessage {
    /// Its full name, e.g. `customer.v1.OrderCompleted`.
    const NAME: &'static str;
}

/// An event payload of our contracts, whatever its encoding: JSON in either
/// field spelling, or protobuf. Derefs to the payload.
#[derive(Debug, Clone)]
pub struct Contract<T>(pub T);

impl<T> std::ops::Deref for Contract<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + ProtoMessage + Send + 'static> EventData for Contract<T> {
    fn decode(envelope: &Envelope) -> Result<Self, DecodeError> {
        let target = std::any::type_name::<T>();
        if !envelope.data_content_type.contains("protobuf") {
            return serde_json::from_slice(&envelope.data)
                .map(Contract)
                .map_err(|e| DecodeError::new(envelope, target, e));
        }
        let pool = DESCRIPTORS.as_ref().map_err(|e| DecodeError::new(envelope, target, e.clone()))?;
        let descriptor = pool
            .get_message_by_name(T::NAME)
            .ok_or_else(|| DecodeError::new(envelope, target, format!("no message {}", T::NAME)))?;
        let message = DynamicMessage::decode(descriptor, envelope.data.clone())
            .map_err(|e| DecodeError::new(envelope, target, e))?;
        // Every field of these messages is a string: the set ones, by name,
        // go through the same serde type (and so the same rules) as JSON.
        let fields: serde_json::Map<String, serde_json::Value> = message
            .fields()
            .filter_map(|(field, value)| Some((field.name().to_owned(), serde_json::Value::from(value.as_str()?))))
            .collect();
        serde_json::from_value(serde_json::Value::Object(fields))
            .map(Contract)
            .map_err(|e| DecodeError::new(envelope, target, e))
    }
}

/// A decimal amount as sent: a JSON string (`"129.90"`) or number (`129.9`).
///
/// An exact decimal (`rust_decimal`), never a float, so that converting to
/// minor units is exact. A JSON number has already been through a float64 in
/// the sidecar; its shortest round-trip form is its decimal value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(pub Decimal);

impl Amount {
    /// Parses `"-12.345"`-style decimals: an optional sign, digits, and an
    /// optional fraction; nothing `rust_decimal` would also take (`1_000`,
    /// `.5`). More digits than a decimal holds exactly (28) is an error, not
    /// a rounding.
    pub fn parse(text: &str) -> Result<Amount, String> {
        let text = text.trim();
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
        let plain = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !plain(whole) || !plain(fraction) {
            return Err(format!("{text:?} is not a decimal amount"));
        }
        Decimal::from_str_exact(text).map(Amount).map_err(|e| format!("{text:?} is not a decimal amount: {e}"))
    }

    /// In the currency's minor unit (cents for EUR, yen for JPY). More
    /// decimals than the currency has is an error, not a rounding.
    pub fn to_minor(self, currency: &str) -> Result<i64, String> {
        let exponent = currency_exponent(currency)
            .ok_or_else(|| format!("{currency:?} is not an ISO 4217 currency with minor units"))?;
        // Trailing zeros beyond the currency's precision are harmless.
        if self.0.normalize().scale() > exponent {
            return Err(format!("{self} has more decimals than {currency} allows ({exponent})"));
        }
        let minor = self.0.checked_mul(Decimal::from(10i64.pow(exponent))).and_then(|m| m.to_i64());
        minor.ok_or_else(|| format!("{self} is out of range"))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Minor units shown in major units, e.g. `12990` EUR as `129.90`.
pub fn display_minor(minor: i64, currency: &str) -> String {
    Decimal::new(minor, currency_exponent(currency).unwrap_or(2)).to_string()
}

/// The ISO 4217 minor-unit exponent of an active currency code (2 for EUR, 0
/// for JPY, 3 for KWD); `None` for anything else, including codes without
/// minor units (gold, SDR).
pub fn currency_exponent(currency: &str) -> Option<u32> {
    let currency = iso_currency::Currency::from_code(currency)?;
    currency.exponent().map(u32::from)
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal amount as a string or number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Amount, E> {
                Amount::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Amount, E> {
                Ok(Amount(Decimal::from(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount(Decimal::from(v)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Amount, E> {
                if !v.is_finite() {
                    return Err(E::custom("amount is not finite"));
                }
                // Rust prints the shortest decimal that reads back as `v`.
                Amount::parse(&format!("{v}")).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A non-empty identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        if value.trim().is_empty() {
            return Err(serde::de::Error::custom("identifier must not be empty"));
        }
        Ok(Id(value))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An active ISO 4217 code with minor units (`EUR`, `JPY`, `KWD`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(pub String);

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        if currency_exponent(&value).is_none() {
            return Err(serde::de::Error::custom(format!("currency: {value:?} is not an ISO 4217 currency code")));
        }
        Ok(Currency(value))
    }
}

/// The longest identifier (order, customer, CloudEvent id) stored, in bytes.
pub const MAX_ID_BYTES: usize = 200;
/// The longest free text (user agent, IP address, reason) stored, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// The largest amount of one event, in minor units (10^15: ten trillion
/// euros), so that no customer's totals can overflow 64 bits in practice;
/// the totals are checked as well.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;

/// Checks a payload against the contract, beyond what decoding checks.
pub trait Check {
    /// `Err` names the field and what is wrong with it.
    fn check(&self) -> Result<(), String>;
}

/// The CloudEvent id: the deduplication key, stored in the inbox.
pub fn check_event_id(id: &str) -> Result<(), String> {
    check_id("id (CloudEvent)", id)
}

fn check_id(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field}: must not be empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(format!("{field}: {} bytes, at most {MAX_ID_BYTES}", value.len()));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field}: contains a control character"));
    }
    Ok(())
}

fn check_text(field: &str, value: Option<&str>) -> Result<(), String> {
    let Some(value) = value else { return Ok(()) };
    if value.len() > MAX_TEXT_BYTES {
        return Err(format!("{field}: {} bytes, at most {MAX_TEXT_BYTES}", value.len()));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field}: contains a control character"));
    }
    Ok(())
}

/// An amount in minor units: not negative, within [`MAX_AMOUNT_MINOR`].
pub fn amount_minor(field: &str, amount: &Amount, currency: &Currency) -> Result<i64, String> {
    let minor = amount.to_minor(&currency.0).map_err(|e| format!("{field}: {e}"))?;
    if minor < 0 {
        return Err(format!("{field}: {amount} is negative"));
    }
    if minor > MAX_AMOUNT_MINOR {
        return Err(format!("{field}: {amount} is more than {MAX_AMOUNT_MINOR} minor units"));
    }
    Ok(minor)
}

impl Check for OrderCompleted {
    fn check(&self) -> Result<(), String> {
        check_order(&self.order_id, &self.customer_id, None, ("total_amount", &self.total_amount, &self.currency))
    }
}

/// The identifiers every order event carries, its optional reason and its amount.
fn check_order(
    order_id: &Id,
    customer_id: &Id,
    reason: Option<&str>,
    amount: (&str, &Amount, &Currency),
) -> Result<(), String> {
    check_id("order_id", &order_id.0)?;
    check_id("customer_id", &customer_id.0)?;
    check_text("reason", reason)?;
    amount_minor(amount.0, amount.1, amount.2).map(|_| ())
}

impl Check for OrderCancelled {
    fn check(&self) -> Result<(), String> {
        let amount = ("total_amount", &self.total_amount, &self.currency);
        check_order(&self.order_id, &self.customer_id, self.reason.as_deref(), amount)
    }
}

impl Check for OrderReturned {
    fn check(&self) -> Result<(), String> {
        let amount = ("refund_amount", &self.refund_amount, &self.currency);
        check_order(&self.order_id, &self.customer_id, self.reason.as_deref(), amount)
    }
}

impl Check for AuthLogin {
    fn check(&self) -> Result<(), String> {
        check_id("customer_id", &self.customer_id.0)?;
        check_text("ip_address", self.ip_address.as_deref())?;
        check_text("user_agent", self.user_agent.as_deref())
    }
}

impl Check for CustomerDeleted {
    fn check(&self) -> Result<(), String> {
        check_id("customer_id", &self.customer_id.0)
    }
}

impl Check for AuthPasswordChanged {
    fn check(&self) -> Result<(), String> {
        check_id("customer_id", &self.customer_id.0)?;
        check_text("ip_address", self.ip_address.as_deref())?;
        check_text("user_agent", self.user_agent.as_deref())
    }
}

/// `order.completed`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderCompleted {
    #[serde(alias = "orderId")]
    pub order_id: Id,
    #[serde(alias = "customerId")]
    pub customer_id: Id,
    #[serde(alias = "totalAmount")]
    pub total_amount: Amount,
    pub currency: Currency,
    #[serde(alias = "completedAt")]
    pub completed_at: DateTime<Utc>,
}

/// `order.cancelled`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderCancelled {
    #[serde(alias = "orderId")]
    pub order_id: Id,
    #[serde(alias = "customerId")]
    pub customer_id: Id,
    #[serde(alias = "totalAmount")]
    pub total_amount: Amount,
    pub currency: Currency,
    #[serde(alias = "cancelledAt")]
    pub cancelled_at: DateTime<Utc>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `order.returned`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderReturned {
    #[serde(alias = "orderId")]
    pub order_id: Id,
    #[serde(alias = "customerId")]
    pub customer_id: Id,
    #[serde(alias = "refundAmount")]
    pub refund_amount: Amount,
    pub currency: Currency,
    #[serde(alias = "returnedAt")]
    pub returned_at: DateTime<Utc>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `auth.login`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthLogin {
    #[serde(alias = "customerId")]
    pub customer_id: Id,
    #[serde(alias = "loginAt")]
    pub login_at: DateTime<Utc>,
    #[serde(default)]
    #[serde(alias = "ipAddress")]
    pub ip_address: Option<String>,
    #[serde(default)]
    #[serde(alias = "userAgent")]
    pub user_agent: Option<String>,
}

/// `auth.password_changed`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthPasswordChanged {
    #[serde(alias = "customerId")]
    pub customer_id: Id,
    #[serde(alias = "changedAt")]
    pub changed_at: DateTime<Utc>,
    #[serde(default)]
    #[serde(alias = "ipAddress")]
    pub ip_address: Option<String>,
    #[serde(default)]
    #[serde(alias = "userAgent")]
    pub user_agent: Option<String>,
}

/// `customer.deleted`: the customer asked to be erased.
#[derive(Debug, Clone, Deserialize)]
pub struct CustomerDeleted {
    #[serde(alias = "customerId")]
    pub customer_id: Id,
    #[serde(alias = "deletedAt")]
    pub deleted_at: DateTime<Utc>,
}

impl ProtoMessage for CustomerDeleted {
    const NAME: &'static str = "customer.v1.CustomerDeleted";
}

impl ProtoMessage for OrderCompleted {
    const NAME: &'static str = "customer.v1.OrderCompleted";
}

impl ProtoMessage for OrderCancelled {
    const NAME: &'static str = "customer.v1.OrderCancelled";
}

impl ProtoMessage for OrderReturned {
    const NAME: &'static str = "customer.v1.OrderReturned";
}

impl ProtoMessage for AuthLogin {
    const NAME: &'static str = "customer.v1.AuthLogin";
}

impl ProtoMessage for AuthPasswordChanged {
    const NAME: &'static str = "customer.v1.AuthPasswordChanged";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minor(json: &str, currency: &str) -> Result<i64, String> {
        let amount: Amount = serde_json::from_str(json).map_err(|e| e.to_string())?;
        amount.to_minor(currency)
    }

    #[test]
    fn amounts_are_exact_from_strings_and_numbers() {
        assert_eq!(minor(r#""129.90""#, "EUR"), Ok(12990));
        assert_eq!(minor("129.9", "EUR"), Ok(12990));
        assert_eq!(minor("0.1", "EUR"), Ok(10));
        assert_eq!(minor("19.99", "EUR"), Ok(1999));
        assert_eq!(minor("1500", "JPY"), Ok(1500));
        assert_eq!(minor(r#""1.234""#, "KWD"), Ok(1234));
        assert_eq!(minor(r#""10.500""#, "EUR"), Ok(1050));
        assert!(minor(r#""10.505""#, "EUR").is_err());
        assert!(minor(r#""12,50""#, "EUR").is_err());
        assert!(minor(r#""""#, "EUR").is_err());
        assert!(minor("true", "EUR").is_err());
        assert!(minor(r#""1.00""#, "ZZZ").is_err(), "not ISO 4217");
        assert!(minor(r#""1""#, "XAU").is_err(), "no minor units");
        assert_eq!(minor(r#""5""#, "CLP"), Ok(5));
        assert_eq!(minor(r#"" +7.50 ""#, "EUR"), Ok(750));
        for odd in ["1_000", ".5", "5.", "1e3", "0x10", "1.2.3", "--1", "1234567890123456789012345678901"] {
            assert!(Amount::parse(odd).is_err(), "{odd}");
        }
    }

    #[test]
    fn contract_checks_name_the_field() {
        let order = |json: &str| serde_json::from_str::<OrderCompleted>(json).unwrap();
        let base = r#""customer_id":"c","currency":"EUR","completed_at":"2026-01-01T00:00:00Z""#;
        let check = |json: String| order(&json).check();
        assert!(check(format!(r#"{{"order_id":"o","total_amount":"1.00",{base}}}"#)).is_ok());
        let negative = check(format!(r#"{{"order_id":"o","total_amount":"-1.00",{base}}}"#)).unwrap_err();
        assert!(negative.starts_with("total_amount") && negative.contains("negative"), "{negative}");
        let huge = check(format!(r#"{{"order_id":"o","total_amount":"184467440737095516.16",{base}}}"#)).unwrap_err();
        assert!(huge.starts_with("total_amount"), "{huge}");
        let nul = check(format!(r#"{{"order_id":"o\u0000x","total_amount":"1",{base}}}"#)).unwrap_err();
        assert!(nul.starts_with("order_id") && nul.contains("control"), "{nul}");
        let long = check(format!(r#"{{"order_id":"{}","total_amount":"1",{base}}}"#, "o".repeat(201))).unwrap_err();
        assert!(long.starts_with("order_id"), "{long}");
        assert!(check_event_id("").is_err());
        assert!(check_event_id(&"e".repeat(100_000)).unwrap_err().contains("at most"));
        let login: AuthLogin =
            serde_json::from_str(r#"{"customer_id":"c","login_at":"2026-01-01T00:00:00Z","user_agent":"a\u0000b"}"#)
                .unwrap();
        assert!(login.check().unwrap_err().starts_with("user_agent"));
    }

    #[test]
    fn display_of_minor_units() {
        assert_eq!(display_minor(12990, "EUR"), "129.90");
        assert_eq!(display_minor(-5, "EUR"), "-0.05");
        assert_eq!(display_minor(1500, "JPY"), "1500");
    }

    #[test]
    fn incomplete_and_malformed_payloads_do_not_decode() {
        let ok = r#"{"order_id":"o","customer_id":"c","total_amount":"1","currency":"EUR","completed_at":"2026-01-01T00:00:00Z","extra":1}"#;
        assert!(serde_json::from_str::<OrderCompleted>(ok).is_ok());
        for bad in [
            r#"{"order_id":"o","customer_id":"c","total_amount":"1","currency":"EUR"}"#,
            r#"{"order_id":"","customer_id":"c","total_amount":"1","currency":"EUR","completed_at":"2026-01-01T00:00:00Z"}"#,
            r#"{"order_id":"o","customer_id":"c","total_amount":"1","currency":"euro","completed_at":"2026-01-01T00:00:00Z"}"#,
            r#"{"order_id":"o","customer_id":"c","total_amount":"1","currency":"ZZZ","completed_at":"2026-01-01T00:00:00Z"}"#,
            r#"{"order_id":"o","customer_id":"c","total_amount":"1","currency":"EUR","completed_at":"yesterday"}"#,
        ] {
            assert!(serde_json::from_str::<OrderCompleted>(bad).is_err(), "{bad}");
        }
    }
}
