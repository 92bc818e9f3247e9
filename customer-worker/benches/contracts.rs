//! The cost of reading an `order.completed` payload: decoding the JSON
//! (amount included) and converting the amount to minor units, for amounts
//! sent as strings and as JSON numbers.
//!
//! `cargo bench -p customer-worker --bench contracts` (quick: `-- --quick`).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use customer_worker::contracts::{OrderCompleted, amount_minor};

fn payload(total_amount: serde_json::Value, currency: &str) -> Vec<u8> {
    let order = serde_json::json!({
        "order_id": "o-1", "customer_id": "c-1", "total_amount": total_amount,
        "currency": currency, "completed_at": "2026-11-30T10:00:00Z",
    });
    serde_json::to_vec(&order).unwrap_or_default()
}

fn benches(c: &mut Criterion) {
    for (name, amount, currency) in [
        ("string, EUR", serde_json::json!("129.90"), "EUR"),
        ("number, EUR", serde_json::json!(129.9), "EUR"),
        ("string, KWD", serde_json::json!("1234567.125"), "KWD"),
    ] {
        let data = payload(amount, currency);
        c.bench_function(&format!("order.completed decode + minor units ({name})"), |b| {
            b.iter(|| {
                let order: OrderCompleted = serde_json::from_slice(black_box(&data)).unwrap_or_else(|e| panic!("{e}"));
                black_box(amount_minor("total_amount", &order.total_amount, &order.currency))
            })
        });
    }
}

criterion_group!(contracts, benches);
criterion_main!(contracts);
