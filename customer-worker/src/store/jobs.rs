//! The statements of the scheduled jobs: segments, daily stats, cleanup,
//! and the lock that keeps one replica at a time on a job.

use sqlx::pool::PoolConnection;

use super::{Backend, Store};

/// A customer's figures, as the segment rules read them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CustomerFigures {
    pub customer_id: String,
    pub order_count: i64,
    pub total_spent_minor: i64,
    pub currency: Option<String>,
    pub created_at: i64,
    pub last_order_at: Option<i64>,
}

/// The rows the cleanup job deletes past their retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retained {
    /// Inbox claims (older than the inbox retention).
    Inbox,
    /// Kept dead-letter reasons (the inbox retention too).
    DeadLetters,
    /// Security events (their own retention).
    SecurityEvents,
}

/// One day's aggregates.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DailyStats {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub customers: i64,
    pub new_customers: i64,
    pub orders_completed: i64,
    pub revenue_minor: i64,
    pub logins: i64,
}

/// A job's lock, held on one connection for the whole run (PostgreSQL); on
/// SQLite, with one process on the file, there is none to take.
#[derive(Debug)]
pub struct JobLock {
    key: i64,
    connection: Option<PoolConnection<sqlx::Any>>,
}

impl JobLock {
    /// Releases the lock.
    pub async fn release(mut self) -> Result<(), sqlx::Error> {
        if let Some(connection) = self.connection.as_mut() {
            sqlx::query("SELECT pg_advisory_unlock($1)").bind(self.key).execute(&mut **connection).await?;
        }
        Ok(())
    }
}

impl Store {
    /// The lock of job `key`, or `None` when another replica holds it.
    pub async fn try_job_lock(&self, key: i64) -> Result<Option<JobLock>, sqlx::Error> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(JobLock { key, connection: None }));
        }
        let mut connection = self.pool.acquire().await?;
        let (acquired,): (bool,) =
            sqlx::query_as("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut *connection).await?;
        Ok(acquired.then_some(JobLock { key, connection: Some(connection) }))
    }

    /// Up to `limit` customers' figures after `after`, by id.
    pub async fn customer_figures(&self, after: &str, limit: i64) -> Result<Vec<CustomerFigures>, sqlx::Error> {
        sqlx::query_as(
            "SELECT customer_id, order_count, total_spent_minor, currency, created_at, last_order_at
             FROM customers WHERE customer_id > $1 ORDER BY customer_id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Replaces the segments of the customers in the id range
    /// `(after, last]` with `segments` (customer id, segment), in one
    /// transaction.
    pub async fn replace_segments(
        &self,
        after: &str,
        last: &str,
        segments: &[(&str, &str)],
        assigned_at: i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM customer_segments WHERE customer_id > $1 AND customer_id <= $2")
            .bind(after)
            .bind(last)
            .execute(&mut *tx)
            .await?;
        for (customer_id, segment) in segments {
            sqlx::query("INSERT INTO customer_segments (customer_id, segment, assigned_at) VALUES ($1, $2, $3)")
                .bind(*customer_id)
                .bind(*segment)
                .bind(assigned_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Recomputes the aggregates of `day` (`YYYY-MM-DD`, the epoch
    /// milliseconds `[start, end)`).
    pub async fn refresh_daily_stats(&self, day: &str, start: i64, end: i64, now: i64) -> Result<(), sqlx::Error> {
        let figures: DailyStats = sqlx::query_as(
            "SELECT CAST($3 AS TEXT) AS day,
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
        .bind(day)
        .fetch_one(&self.pool)
        .await?;
        sqlx::query(
            "INSERT INTO daily_stats (day, customers, new_customers, orders_completed, revenue_minor, logins, computed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (day) DO UPDATE SET customers = excluded.customers, new_customers = excluded.new_customers,
               orders_completed = excluded.orders_completed, revenue_minor = excluded.revenue_minor,
               logins = excluded.logins, computed_at = excluded.computed_at",
        )
        .bind(day)
        .bind(figures.customers)
        .bind(figures.new_customers)
        .bind(figures.orders_completed)
        .bind(figures.revenue_minor)
        .bind(figures.logins)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The aggregates of `day` (`YYYY-MM-DD`), once computed.
    pub async fn daily_stats(&self, day: &str) -> Result<Option<DailyStats>, sqlx::Error> {
        sqlx::query_as(
            "SELECT day, customers, new_customers, orders_completed, revenue_minor, logins
             FROM daily_stats WHERE day = $1",
        )
        .bind(day)
        .fetch_optional(&self.pool)
        .await
    }

    /// Deletes up to `limit` rows of `rows` older than `cutoff`; how many it deleted.
    pub async fn delete_expired(&self, rows: Retained, cutoff: i64, limit: i64) -> Result<u64, sqlx::Error> {
        let sql = match rows {
            Retained::Inbox => {
                "DELETE FROM inbox WHERE (consumer, event_id) IN
                   (SELECT consumer, event_id FROM inbox WHERE processed_at < $1 LIMIT $2)"
            }
            Retained::DeadLetters => {
                "DELETE FROM dead_letters WHERE (topic, event_id) IN
                   (SELECT topic, event_id FROM dead_letters WHERE dropped_at < $1 LIMIT $2)"
            }
            Retained::SecurityEvents => {
                "DELETE FROM security_events WHERE event_id IN
                   (SELECT event_id FROM security_events WHERE recorded_at < $1 LIMIT $2)"
            }
        };
        Ok(sqlx::query(sql).bind(cutoff).bind(limit).execute(&self.pool).await?.rows_affected())
    }
}
