//! The customer database: SQLite or PostgreSQL behind one pool, the same
//! migrations, and every SQL statement of the worker: each event's effect is
//! written with its inbox row in one transaction, shared by the events that
//! arrive together, with the same few multi-row statements whatever their
//! number ([`write`]). The consumers say what an event means and how it is
//! answered; the domain ([`crate::orders`]) says what it may change; this
//! module says how it is stored, with errors of its own ([`StoreError`]).
//! It knows nothing of the event framework.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

use crate::config::DatabaseConfig;
use classify::{ErrorKind, classify};

pub mod classify;
mod jobs;
mod orders;
mod write;

pub use jobs::{CustomerFigures, DailyStats, JobLock, Retained};
pub use write::{Change, Item, MAX_EVENTS_PER_TRANSACTION};

/// Which database the URL chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Why an event's effect could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed in a way that may pass (unreachable, locked,
    /// deadlock, …): worth retrying.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database refused the event's data (see [`crate::classify`]): it
    /// would refuse it on every delivery.
    #[error("the database refused the event's data: {0}")]
    Refused(sqlx::Error),
    /// The event contradicts what is stored: retrying cannot help.
    #[error("{0}")]
    Rejected(String),
}

impl StoreError {
    /// Database errors caused by the data become [`StoreError::Refused`].
    pub fn classified(self, backend: Backend) -> StoreError {
        match self {
            StoreError::Database(error) if classify(backend, &error) == ErrorKind::Permanent => {
                StoreError::Refused(error)
            }
            other => other,
        }
    }

    /// Whether delivering the event again cannot help.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, StoreError::Database(_))
    }
}

/// Whether an event changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The effect is written.
    Done,
    /// This consumer already applied this event id.
    Duplicate,
}

/// A customer's figures.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Customer {
    pub customer_id: String,
    pub currency: Option<String>,
    pub order_count: i64,
    pub total_spent_minor: i64,
    pub cancelled_count: i64,
    pub returned_count: i64,
    pub refunded_minor: i64,
    pub first_order_at: Option<i64>,
    pub last_order_at: Option<i64>,
    pub last_login_at: Option<i64>,
    pub created_at: i64,
    /// From `customer_segments`.
    #[sqlx(skip)]
    pub segments: Vec<String>,
}

/// Milliseconds since the epoch.
pub fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// Now, in milliseconds since the epoch.
pub fn now_millis() -> i64 {
    millis(Utc::now())
}

/// Every file of `customer-worker/migrations/`, embedded at build time: a new
/// migration file cannot be missed. The same SQL serves SQLite and PostgreSQL.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The store: a pool and the backend it talks to. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    max_connections: u32,
}

/// How long [`Store::ping`] waits.
pub const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// A transaction on the store.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl Store {
    /// Connects (creating a SQLite file if the URL says `mode=rwc`) and runs
    /// the migrations.
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if config.url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let options: AnyConnectOptions =
            config.url.parse().with_context(|| format!("data.database.url: cannot parse {}", config.redacted_url()))?;
        let busy_timeout_ms = config.busy_timeout_ms;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite {
                config.max_connections.max(1)
            } else {
                config.max_connections
            })
            .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Durable commits, readers beside the writer, and a
                        // bounded wait for the write lock (then RETRY).
                        for pragma in [
                            "PRAGMA journal_mode = WAL".to_owned(),
                            "PRAGMA synchronous = FULL".to_owned(),
                            format!("PRAGMA busy_timeout = {busy_timeout_ms}"),
                        ] {
                            sqlx::query(&pragma).execute(&mut *connection).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to {}", config.redacted_url()))?;
        let store = Store { pool, backend, max_connections: config.max_connections };
        MIGRATOR.run(&store.pool).await.context("database migrations failed")?;
        Ok(store)
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool's size.
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// The pool, for jobs and tests.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection; later calls fail (as if the database were down).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// `Ok` when the database answers within [`PING_TIMEOUT`], so readiness
    /// answers within a Kubernetes probe's default 1 s even when the database hangs.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        match tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool)).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    /// Writes the effects of `items` (at most [`MAX_EVENTS_PER_TRANSACTION`]),
    /// each with its inbox claim, in one transaction; one result per item,
    /// in order: applied, a duplicate (its id already claimed by its
    /// consumer; nothing written), or refused by a business rule with the
    /// reason (nothing of it written). An error fails the whole transaction:
    /// [`StoreError::Refused`] when the database refuses the data,
    /// [`StoreError::Database`] when it may pass.
    pub async fn write_transaction(&self, items: &[Item]) -> Result<Vec<Result<Applied, String>>, StoreError> {
        let classified = |error: sqlx::Error| StoreError::from(error).classified(self.backend);
        metrics::histogram!("customer_worker_commit_batch_size").record(items.len() as f64);
        let mut tx = self.pool.begin().await.map_err(classified)?;
        let results = write::write_batch(&mut tx, self.backend, items).await.map_err(classified)?;
        tx.commit().await.map_err(classified)?;
        Ok(results)
    }

    /// A customer and their segments.
    pub async fn customer(&self, customer_id: &str) -> Result<Option<Customer>, sqlx::Error> {
        let customer: Option<Customer> = sqlx::query_as(
            "SELECT customer_id, currency, order_count, total_spent_minor, cancelled_count, returned_count, refunded_minor,
                    first_order_at, last_order_at, last_login_at, created_at
             FROM customers WHERE customer_id = $1",
        )
        .bind(customer_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(mut customer) = customer else { return Ok(None) };
        let segments: Vec<(String,)> =
            sqlx::query_as("SELECT segment FROM customer_segments WHERE customer_id = $1 ORDER BY segment")
                .bind(customer_id)
                .fetch_all(&self.pool)
                .await?;
        customer.segments = segments.into_iter().map(|(segment,)| segment).collect();
        Ok(Some(customer))
    }

    /// Keeps why an event was dropped (the worker's `on_drop`), replacing an
    /// earlier reason for the same event. Ids longer than the contract
    /// allows are not kept: the worker refuses such events on every
    /// delivery, and their id would not fit an index.
    pub async fn record_drop(&self, topic: &str, event_id: &str, reason: &str) -> Result<(), sqlx::Error> {
        if event_id.len() > crate::contracts::MAX_ID_BYTES {
            return Ok(());
        }
        // NUL cannot be stored in PostgreSQL text.
        let reason = reason.replace('\0', "\\0");
        sqlx::query(
            "INSERT INTO dead_letters (topic, event_id, reason, dropped_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (topic, event_id) DO UPDATE SET reason = excluded.reason, dropped_at = excluded.dropped_at",
        )
        .bind(topic.replace('\0', ""))
        .bind(event_id.replace('\0', ""))
        .bind(reason)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The kept drop reasons of `topic`'s events, by event id.
    pub async fn drop_reasons(&self, topic: &str) -> Result<std::collections::HashMap<String, String>, sqlx::Error> {
        sqlx::query_as("SELECT event_id, reason FROM dead_letters WHERE topic = $1")
            .bind(topic)
            .fetch_all(&self.pool)
            .await
            .map(|rows| rows.into_iter().collect())
    }

    /// Counts the rows of a table (for tests and the CLI).
    pub async fn count(&self, table: Table) -> Result<i64, sqlx::Error> {
        let sql = match table {
            Table::Inbox => "SELECT COUNT(*) FROM inbox",
            Table::Orders => "SELECT COUNT(*) FROM orders",
            Table::Customers => "SELECT COUNT(*) FROM customers",
            Table::SecurityEvents => "SELECT COUNT(*) FROM security_events",
            Table::DailyStats => "SELECT COUNT(*) FROM daily_stats",
        };
        sqlx::query(sql).fetch_one(&self.pool).await?.try_get(0)
    }
}

/// Tables [`Store::count`] can count.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    Inbox,
    Orders,
    Customers,
    SecurityEvents,
    DailyStats,
}
