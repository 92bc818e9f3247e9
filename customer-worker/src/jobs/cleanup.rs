//! Deletes inbox, dead-letter reason and security rows past their retention, in batches.

use chrono::{DateTime, Duration, Utc};
use tokio_util::sync::CancellationToken;

use super::JobReport;
use crate::config::CleanupConfig;
use crate::store::{Retained, Store, millis};

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
        (Retained::Inbox, inbox_cutoff),
        (Retained::DeadLetters, inbox_cutoff),
        (Retained::SecurityEvents, security_cutoff),
    ];
    let mut rows = 0;
    for (retained, cutoff) in deletes {
        loop {
            if cancel.is_cancelled() {
                return Ok(JobReport::Ran { rows, complete: false });
            }
            let deleted = store.delete_expired(retained, cutoff, batch).await?;
            rows += deleted;
            if deleted < batch as u64 {
                break;
            }
        }
    }
    Ok(JobReport::Ran { rows, complete: true })
}
