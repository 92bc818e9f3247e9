//! Daily aggregates for yesterday and today (UTC), recomputed on each run.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use sqlx::Row;

use super::JobReport;
use crate::store::{Store, millis, now_millis};

pub(super) async fn run(store: &Store, now: DateTime<Utc>) -> anyhow::Result<JobReport> {
    let today = now.date_naive();
    let mut rows = 0;
    for day in [today - Duration::days(1), today] {
        let start = millis(day.and_time(NaiveTime::MIN).and_utc());
        let end = start + Duration::days(1).num_milliseconds();
        let figures = sqlx::query(
            "SELECT
               (SELECT COUNT(*) FROM customers WHERE created_at < $2) AS customers,
               (SELECT COUNT(*) FROM customers WHERE created_at >= $1 AND created_at < $2) AS new_customers,
               (SELECT COUNT(*) FROM orders WHERE completed_at >= $1 AND completed_at < $2 AND cancelled_at IS NULL)
                 AS orders_completed,
               (SELECT CAST(COALESCE(SUM(CASE WHEN amount_minor > refunded_minor THEN amount_minor - refunded_minor ELSE 0 END), 0) AS BIGINT)
                  FROM orders WHERE completed_at >= $1 AND completed_at < $2 AND cancelled_at IS NULL) AS revenue_minor,
               (SELECT COUNT(*) FROM customers WHERE last_login_at >= $1 AND last_login_at < $2) AS logins",
        )
        .bind(start)
        .bind(end)
        .fetch_one(store.pool())
        .await?;
        let values: [i64; 5] = [
            figures.try_get("customers")?,
            figures.try_get("new_customers")?,
            figures.try_get("orders_completed")?,
            figures.try_get("revenue_minor")?,
            figures.try_get("logins")?,
        ];
        sqlx::query(
            "INSERT INTO daily_stats (day, customers, new_customers, orders_completed, revenue_minor, logins, computed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (day) DO UPDATE SET customers = excluded.customers, new_customers = excluded.new_customers,
               orders_completed = excluded.orders_completed, revenue_minor = excluded.revenue_minor,
               logins = excluded.logins, computed_at = excluded.computed_at",
        )
        .bind(day.format("%Y-%m-%d").to_string())
        .bind(values[0])
        .bind(values[1])
        .bind(values[2])
        .bind(values[3])
        .bind(values[4])
        .bind(now_millis())
        .execute(store.pool())
        .await?;
        rows += 1;
    }
    Ok(JobReport::Ran { rows, complete: true })
}

/// One day's aggregates, for tests and the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyStats {
    pub day: String,
    pub customers: i64,
    pub new_customers: i64,
    pub orders_completed: i64,
    pub revenue_minor: i64,
    pub logins: i64,
}

pub async fn read(store: &Store, day: &str) -> anyhow::Result<Option<DailyStats>> {
    let row = sqlx::query(
        "SELECT day, customers, new_customers, orders_completed, revenue_minor, logins FROM daily_stats WHERE day = $1",
    )
    .bind(day)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        Ok(DailyStats {
            day: r.try_get("day")?,
            customers: r.try_get("customers")?,
            new_customers: r.try_get("new_customers")?,
            orders_completed: r.try_get("orders_completed")?,
            revenue_minor: r.try_get("revenue_minor")?,
            logins: r.try_get("logins")?,
        })
    })
    .transpose()
}
