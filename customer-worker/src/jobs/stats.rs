//! Daily aggregates for yesterday and today (UTC), recomputed on each run.

use chrono::{DateTime, Duration, NaiveTime, Utc};

use super::JobReport;
use crate::store::{Store, millis, now_millis};

pub(super) async fn run(store: &Store, now: DateTime<Utc>) -> anyhow::Result<JobReport> {
    let today = now.date_naive();
    let mut rows = 0;
    for day in [today - Duration::days(1), today] {
        let start = millis(day.and_time(NaiveTime::MIN).and_utc());
        let end = start + Duration::days(1).num_milliseconds();
        store.refresh_daily_stats(&day.format("%Y-%m-%d").to_string(), start, end, now_millis()).await?;
        rows += 1;
    }
    Ok(JobReport::Ran { rows, complete: true })
}
