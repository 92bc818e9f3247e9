//! Segment evaluation: every customer against the rules of the config, in
//! keyset-paged batches, one transaction per batch.

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use super::JobReport;
use crate::config::SegmentRule;
use crate::contracts::Amount;
use crate::store::{Store, millis};

/// The rules, with amounts parsed.
#[derive(Debug, Clone)]
pub struct SegmentRules(Vec<Rule>);

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    min_orders: Option<i64>,
    min_total_spent: Option<Amount>,
    max_customer_age_days: Option<i64>,
    min_days_since_last_order: Option<i64>,
}

/// The figures a rule looks at.
struct Figures {
    order_count: i64,
    total_spent_minor: i64,
    currency: Option<String>,
    created_at: i64,
    last_order_at: Option<i64>,
}

impl SegmentRules {
    pub fn from_config(rules: &[SegmentRule]) -> anyhow::Result<SegmentRules> {
        let rules = rules
            .iter()
            .map(|r| {
                let min_total_spent =
                    r.min_total_spent.as_deref().map(Amount::parse).transpose().map_err(anyhow::Error::msg)?;
                Ok(Rule {
                    name: r.name.clone(),
                    min_orders: r.min_orders,
                    min_total_spent,
                    max_customer_age_days: r.max_customer_age_days,
                    min_days_since_last_order: r.min_days_since_last_order,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(SegmentRules(rules))
    }

    fn segments_of(&self, figures: &Figures, now: DateTime<Utc>) -> Vec<&str> {
        let day = Duration::days(1).num_milliseconds();
        let now = millis(now);
        self.0
            .iter()
            .filter(|rule| {
                rule.min_orders.is_none_or(|min| figures.order_count >= min)
                    && rule.min_total_spent.is_none_or(|min| {
                        let currency = figures.currency.as_deref().unwrap_or("EUR");
                        min.to_minor(currency).is_ok_and(|min| figures.total_spent_minor >= min)
                    })
                    && rule.max_customer_age_days.is_none_or(|days| now - figures.created_at <= days * day)
                    && rule
                        .min_days_since_last_order
                        .is_none_or(|days| figures.last_order_at.is_some_and(|last| now - last >= days * day))
            })
            .map(|rule| rule.name.as_str())
            .collect()
    }
}

pub(super) async fn run(
    store: &Store,
    rules: &SegmentRules,
    batch: i64,
    now: DateTime<Utc>,
    cancel: &CancellationToken,
) -> anyhow::Result<JobReport> {
    let mut after = String::new();
    let mut rows = 0u64;
    loop {
        if cancel.is_cancelled() {
            return Ok(JobReport::Ran { rows, complete: false });
        }
        let page = sqlx::query(
            "SELECT customer_id, order_count, total_spent_minor, currency, created_at, last_order_at
             FROM customers WHERE customer_id > $1 ORDER BY customer_id LIMIT $2",
        )
        .bind(&after)
        .bind(batch)
        .fetch_all(store.pool())
        .await?;
        let Some(last) = page.last() else { break };
        let last_id: String = last.try_get("customer_id")?;
        let assigned_at = millis(now);
        let mut tx = store.pool().begin().await?;
        // The page is the key range (after, last_id]: replace its segments.
        sqlx::query("DELETE FROM customer_segments WHERE customer_id > $1 AND customer_id <= $2")
            .bind(&after)
            .bind(&last_id)
            .execute(&mut *tx)
            .await?;
        for row in &page {
            let customer_id: String = row.try_get("customer_id")?;
            let figures = Figures {
                order_count: row.try_get("order_count")?,
                total_spent_minor: row.try_get("total_spent_minor")?,
                currency: row.try_get("currency")?,
                created_at: row.try_get("created_at")?,
                last_order_at: row.try_get("last_order_at")?,
            };
            for segment in rules.segments_of(&figures, now) {
                sqlx::query("INSERT INTO customer_segments (customer_id, segment, assigned_at) VALUES ($1, $2, $3)")
                    .bind(&customer_id)
                    .bind(segment)
                    .bind(assigned_at)
                    .execute(&mut *tx)
                    .await?;
                rows += 1;
            }
        }
        tx.commit().await?;
        after = last_id;
        if (page.len() as i64) < batch {
            break;
        }
    }
    Ok(JobReport::Ran { rows, complete: true })
}
