//! Segment evaluation: every customer against the rules of the config, in
//! keyset-paged batches, one transaction per batch.

use chrono::{DateTime, Duration, Utc};
use tokio_util::sync::CancellationToken;

use super::JobReport;
use crate::config::SegmentRule;
use crate::contracts::Amount;
use crate::store::{CustomerFigures, Store, millis};

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

    fn segments_of(&self, figures: &CustomerFigures, now: DateTime<Utc>) -> Vec<&str> {
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
        let page = store.customer_figures(&after, batch).await?;
        let Some(last) = page.last() else { break };
        let segments: Vec<(&str, &str)> = page
            .iter()
            .flat_map(|figures| {
                rules.segments_of(figures, now).into_iter().map(|segment| (figures.customer_id.as_str(), segment))
            })
            .collect();
        // The page is the key range (after, last]: its segments are replaced.
        store.replace_segments(&after, &last.customer_id, &segments, millis(now)).await?;
        rows += segments.len() as u64;
        after = last.customer_id.clone();
        if (page.len() as i64) < batch {
            break;
        }
    }
    Ok(JobReport::Ran { rows, complete: true })
}
