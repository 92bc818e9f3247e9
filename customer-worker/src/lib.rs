//! The customer worker: consumes order and auth events into a customer
//! database with exactly-once effects, and runs the segment, stats and
//! cleanup jobs. See the README for how to run it.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod consumers;
pub mod contracts;
pub mod customers;
pub mod jobs;
pub mod orders;
pub mod redrive;
pub mod replay;
pub mod store;
pub mod telemetry;
pub mod writer;

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::contracts::display_minor;
use crate::store::Customer;

fn show_time(millis: Option<i64>) -> String {
    millis
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// A customer's figures, as the CLI prints them.
pub fn describe_customer(customer: &Customer) -> String {
    let currency = customer.currency.as_deref().unwrap_or("");
    let mut text = String::new();
    let _ = writeln!(text, "customer {}", customer.customer_id);
    let _ = writeln!(
        text,
        "  orders       {} (cancelled {}, returns {})",
        customer.order_count, customer.cancelled_count, customer.returned_count
    );
    let _ = writeln!(
        text,
        "  total spent  {} {currency} (refunded {})",
        display_minor(customer.total_spent_minor, currency),
        display_minor(customer.refunded_minor, currency)
    );
    let _ = writeln!(text, "  last order   {}", show_time(customer.last_order_at));
    let _ = writeln!(text, "  last login   {}", show_time(customer.last_login_at));
    let segments = if customer.segments.is_empty() { "-".to_owned() } else { customer.segments.join(", ") };
    let _ = write!(text, "  segments     {segments}");
    text
}
