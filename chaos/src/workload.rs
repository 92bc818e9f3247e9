//! The events a run sends, and the model of what the database must hold
//! afterwards, computed here from the events alone (not from the worker's code).

use std::collections::BTreeMap;

/// A deterministic generator.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One CloudEvent to deliver.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub id: String,
    pub topic: &'static str,
    pub content_type: String,
    pub data: Vec<u8>,
    /// Valid by construction; an invalid one must be dropped and leave no row.
    pub valid: bool,
}

/// A customer's figures as the model expects them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    pub orders: i64,
    pub spent: i64,
    pub cancelled: i64,
    pub returns: i64,
    pub refunded: i64,
    pub last_login: Option<i64>,
}

/// What the database must hold after every event was delivered.
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub customers: BTreeMap<String, Figures>,
    /// Valid events (each one inbox row), password changes included.
    pub valid_events: usize,
    pub password_changes: usize,
}

fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

fn json(topic: &'static str, id: String, data: serde_json::Value, valid: bool) -> Event {
    Event { id, topic, content_type: "application/json".into(), data: data.to_string().into_bytes(), valid }
}

/// `orders` orders over `customers` customers: every order completed; some
/// cancelled, some returned in part (refunds within the amount); logins and
/// password changes; and about one event in twenty invalid by the contract
/// (negative amount, unknown currency, NUL in an id, an id too long).
pub(crate) fn generate(seed: u64, orders: usize, customers: usize) -> (Vec<Event>, Model) {
    let mut rng = Rng::new(seed);
    let mut events = Vec::new();
    let mut model = Model::default();
    let day = 1_795_000_000_000i64; // epoch ms, November 2026
    for n in 0..orders {
        let customer = format!("c-{}", n % customers);
        let order = format!("o-{seed}-{n}");
        let amount = 100 + rng.below(50_000) as i64;
        let at = day + rng.below(86_400_000) as i64;
        let time = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default()
        };
        let order_json = |amount: String, field: &str, at_field: &str| {
            let mut value = serde_json::json!({"order_id": order, "customer_id": customer, "currency": "EUR"});
            value[field] = amount.into();
            value[at_field] = time(at).into();
            value
        };
        events.push(json(
            "order.completed",
            format!("done-{seed}-{n}"),
            order_json(money(amount), "total_amount", "completed_at"),
            true,
        ));
        let figures = model.customers.entry(customer.clone()).or_default();
        let mut refunds = 0;
        let cancelled = rng.chance(20);
        if cancelled {
            events.push(json(
                "order.cancelled",
                format!("cancel-{seed}-{n}"),
                order_json(money(amount), "total_amount", "cancelled_at"),
                true,
            ));
            figures.cancelled += 1;
        }
        for r in 0..rng.below(3) {
            let refund = rng.below((amount / 3) as u64) as i64;
            refunds += refund;
            events.push(json(
                "order.returned",
                format!("ret-{seed}-{n}-{r}"),
                order_json(money(refund), "refund_amount", "returned_at"),
                true,
            ));
            figures.returns += 1;
            figures.refunded += refund;
        }
        if !cancelled {
            figures.orders += 1;
            figures.spent += amount - refunds;
        }
        if rng.chance(30) {
            let login = day + rng.below(86_400_000) as i64;
            let data = serde_json::json!({"customer_id": customer, "login_at": time(login)});
            events.push(json("auth.login", format!("login-{seed}-{n}"), data, true));
            figures.last_login = figures.last_login.max(Some(login));
        }
        if rng.chance(10) {
            let data = serde_json::json!({"customer_id": customer, "changed_at": time(at), "ip_address": "10.0.0.1"});
            events.push(json("auth.password_changed", format!("pw-{seed}-{n}"), data, true));
            model.password_changes += 1;
        }
        if rng.chance(5) {
            let bad = format!("bad-{seed}-{n}");
            let data = match rng.below(4) {
                0 => {
                    serde_json::json!({"order_id": bad, "customer_id": "c-bad", "total_amount": money(-amount), "currency": "EUR", "completed_at": time(at)})
                }
                1 => {
                    serde_json::json!({"order_id": bad, "customer_id": "c-bad", "total_amount": money(amount), "currency": "ZZZ", "completed_at": time(at)})
                }
                2 => {
                    serde_json::json!({"order_id": bad, "customer_id": "c-\u{0}bad", "total_amount": money(amount), "currency": "EUR", "completed_at": time(at)})
                }
                _ => {
                    serde_json::json!({"order_id": "o".repeat(300), "customer_id": "c-bad", "total_amount": money(amount), "currency": "EUR", "completed_at": time(at)})
                }
            };
            events.push(json("order.completed", bad, data, false));
        }
    }
    model.valid_events = events.iter().filter(|e| e.valid).count();
    (events, model)
}
