//! Deletes inbox, dead-letter reason and security rows past their retention, in batches.

use chrono::{DateTime, Duration, Utc};
use tokio_util::sync::CancellationToken;

use super::JobReport;
use crate::config::CleanupConfig;
use crate::store::{Store, millis};

pub(super) async fn run(
    store: &Store,
    config: &CleanupConfig,
    batch: i64,
    now: DateTime<Utc>,
    cancel: &CancellationToken,
) -> anyhow::Result<JobReport> {
    let inbox_cutoff = millis(now - Duration::days(i64::from(config.inbox_retention_days)));
    let security_cutoff = millis(now - Duration::days(i64::from(config.security_retention_days)));
    let deletes = [
        (
            "DELETE FROM inbox WHERE (consumer, event_id) IN
               (SELECT consumer, event_id FROM inbox WHERE processed_at < $1 LIMIT $2)",
            inbox_cutoff,
        ),
        (
            "DELETE FROM dead_letters WHERE (topic, event_id) IN
               (SELECT topic, event_id FROM dead_letters WHERE dropped_at < $1 LIMIT $2)",
            inbox_cutoff,
        ),
        (
            "DELETE FROM security_events WHERE event_id IN
               (SELECT event_id FROM security_events WHERE recorded_at < $1 LIMIT $2)",
            security_cutoff,
        ),
    ];
    let mut rows = 0;
    for (sql, cutoff) in deletes {
        loop {
            if cancel.is_cancelled() {
                return Ok(JobReport::Ran { rows, complete: false });
            }
            let deleted = sqlx::query(sql).bind(cutoff).bind(batch).execute(store.pool()).await?.rows_affected();
            rows += deleted;
            if deleted < batch as u64 {
                break;
            }
        }
    }
    Ok(JobReport::Ran { rows, complete: true })
}
