//! Daily aggregates for yesterday and today (UTC), recomputed on each run.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use sqlx::Row;

use super::JobReport;
use crate::store::{Store, millis, now_millis};

pub async fn run(store: &Store, now: DateTime<Utc>) -> anyhow::Result<JobReport> {
    let today = now.date_naive();
    let mut rows = 0;
    for day in [today - Duration::days(1), today] {
        let start = millis(day.and_time(NaiveTime::MIN).and_utc());
        let end = start + Duration::days(1).num_milliseconds();
        let figures = sqlx::query(
            "SELECT
               (SELECT COUNT(*) FROM customers WHERE created_at < $2),
               (SELECT COUNT(*) FROM customers WHERE created_at >= $1 AND created_at < $2),
               (SELECT COUNT(*) FROM orders WHERE completed_at >= $1 AND completed_at < $2 AND cancelled_at IS NULL),
               (SELECT CAST(COALESCE(SUM(CASE WHEN amount_minor > refunded_minor THEN amount_minor - refunded_minor ELSE 0 END), 0) AS BIGINT)
                  FROM orders WHERE completed_at >= $1 AND completed_at < $2 AND cancelled_at IS NULL),
               (SELECT COUNT(*) FROM customers WHERE last_login_at >= $1 AND last_login_at < $2)",
        )
        .bind(start)
        .bind(end)
        .fetch_one(store.pool())
        .await?;
        let values: [i64; 5] =
            [figures.try_get(0)?, figures.try_get(1)?, figures.try_get(2)?, figures.try_get(3)?, figures.try_get(4)?];
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
            day: r.try_get(0)?,
            customers: r.try_get(1)?,
            new_customers: r.try_get(2)?,
            orders_completed: r.try_get(3)?,
            revenue_minor: r.try_get(4)?,
            logins: r.try_get(5)?,
        })
    })
    .transpose()
}
