//! The event payloads, mirroring `proto/customer/v1/events.proto`.
//!
//! Unknown fields are ignored; a missing required field or a malformed value
//! fails decoding, which the framework answers `DROP` (dead letter).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// A decimal amount as sent: a JSON string (`"129.90"`) or number (`129.9`).
///
/// Kept as digits and a scale, never as a float, so that converting to minor
/// units is exact. A JSON number has already been through a float64 in the
/// sidecar; its shortest round-trip form is its decimal value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    /// The digits, sign included.
    units: i128,
    /// Digits after the decimal point.
    scale: u32,
}

impl Amount {
    /// Parses `"-12.345"`-style decimals.
    pub fn parse(text: &str) -> Result<Amount, String> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let well_formed = !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b.is_ascii_digit())
            && whole.len() + fraction.len() <= 30;
        if !well_formed {
            return Err(format!("{text:?} is not a decimal amount"));
        }
        let units: i128 =
            format!("{whole}{fraction}").parse().map_err(|_| format!("{text:?} is not a decimal amount"))?;
        Ok(Amount { units: if negative { -units } else { units }, scale: fraction.len() as u32 })
    }

    /// In the currency's minor unit (cents for EUR, yen for JPY). More
    /// decimals than the currency has is an error, not a rounding.
    pub fn to_minor(self, currency: &str) -> Result<i64, String> {
        let exponent = currency_exponent(currency);
        let mut units = self.units;
        let mut scale = self.scale;
        // Trailing zeros beyond the currency's precision are harmless.
        while scale > exponent && units % 10 == 0 {
            units /= 10;
            scale -= 1;
        }
        if scale > exponent {
            return Err(format!("{self} has more decimals than {currency} allows ({exponent})"));
        }
        let minor = units.checked_mul(10i128.pow(exponent - scale)).and_then(|m| i64::try_from(m).ok());
        minor.ok_or_else(|| format!("{self} is out of range"))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_minor(self.units, self.scale, f)
    }
}

fn format_minor(units: i128, scale: u32, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let sign = if units < 0 { "-" } else { "" };
    let magnitude = units.unsigned_abs();
    if scale == 0 {
        return write!(f, "{sign}{magnitude}");
    }
    let divisor = 10u128.pow(scale);
    write!(f, "{sign}{}.{:0width$}", magnitude / divisor, magnitude % divisor, width = scale as usize)
}

/// Minor units shown in major units, e.g. `12990` EUR as `129.90`.
pub fn display_minor(minor: i64, currency: &str) -> String {
    struct Shown(i128, u32);
    impl fmt::Display for Shown {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            format_minor(self.0, self.1, f)
        }
    }
    Shown(i128::from(minor), currency_exponent(currency)).to_string()
}

/// ISO 4217 minor-unit exponents that differ from 2.
pub fn currency_exponent(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "VND" | "VUV"
        | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
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
                Ok(Amount { units: i128::from(v), scale: 0 })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount { units: i128::from(v), scale: 0 })
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

/// An ISO 4217 code: three upper-case letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(pub String);

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(serde::de::Error::custom(format!("{value:?} is not an ISO 4217 currency code")));
        }
        Ok(Currency(value))
    }
}

/// `order.completed`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderCompleted {
    pub order_id: Id,
    pub customer_id: Id,
    pub total_amount: Amount,
    pub currency: Currency,
    pub completed_at: DateTime<Utc>,
}

/// `order.cancelled`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderCancelled {
    pub order_id: Id,
    pub customer_id: Id,
    pub total_amount: Amount,
    pub currency: Currency,
    pub cancelled_at: DateTime<Utc>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `order.returned`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderReturned {
    pub order_id: Id,
    pub customer_id: Id,
    pub refund_amount: Amount,
    pub currency: Currency,
    pub returned_at: DateTime<Utc>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `auth.login`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthLogin {
    pub customer_id: Id,
    pub login_at: DateTime<Utc>,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// `auth.password_changed`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthPasswordChanged {
    pub customer_id: Id,
    pub changed_at: DateTime<Utc>,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
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
            r#"{"order_id":"o","customer_id":"c","total_amount":"1","currency":"EUR","completed_at":"yesterday"}"#,
        ] {
            assert!(serde_json::from_str::<OrderCompleted>(bad).is_err(), "{bad}");
        }
    }
}
