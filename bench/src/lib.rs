//! Shared pieces of the benchmarks: the payload every server decodes.

use serde::{Deserialize, Serialize};

/// `order.completed`, as the driver sends it and the typed baselines decode it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderCompleted {
    pub order_id: String,
    pub customer_id: String,
    pub total_amount: String,
    pub currency: String,
    pub completed_at: String,
}

impl OrderCompleted {
    /// The `n`-th order of a run: unique order ids, a thousand customers.
    pub fn nth(run: &str, n: u64) -> Self {
        OrderCompleted {
            order_id: format!("o-{run}-{n}"),
            customer_id: format!("c-{}", n % 1000),
            total_amount: format!("{}.{:02}", 10 + n % 490, n % 100),
            currency: "EUR".into(),
            completed_at: "2026-11-20T10:15:00Z".into(),
        }
    }
}
