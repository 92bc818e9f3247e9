//! Test databases (SQLite always, PostgreSQL when configured) and a running worker.
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod daprd;
pub(crate) mod shipped;

use std::sync::atomic::{AtomicU32, Ordering};

use customer_worker::app::{self, Mode, Running};
use customer_worker::config::{Config, DEFAULT_CONFIG};
use customer_worker::store::Store;
use eventbus::testing::{CloudEvent, TestSidecar};
use sqlx::Connection;

/// `TEST_DATABASE_URL`: a PostgreSQL server URL whose user may create databases.
pub(crate) const POSTGRES_ENV: &str = "TEST_DATABASE_URL";
/// Set to `1` (CI does) to fail instead of skipping when PostgreSQL is not configured.
pub(crate) const REQUIRE_ENV: &str = "EVENTBUS_REQUIRE_POSTGRES";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty database.
pub(crate) struct TestDb {
    pub label: &'static str,
    pub url: String,
}

/// Whether the test process that made a database named `<prefix>_<pid>_…`
/// has ended, so its database can go (Linux only: `/proc`; elsewhere
/// nothing is swept).
fn left_behind(name: &str, prefix: &str) -> bool {
    let pid = name.strip_prefix(prefix).and_then(|rest| rest.trim_start_matches('_').split('_').next());
    let proc = std::path::Path::new("/proc");
    pid.and_then(|pid| pid.parse::<u32>().ok()).is_some_and(|pid| {
        pid != std::process::id() && proc.join("self").exists() && !proc.join(pid.to_string()).exists()
    })
}

fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// SQLite always; PostgreSQL when `TEST_DATABASE_URL` is set. Fails when
/// `EVENTBUS_REQUIRE_POSTGRES=1` and it is not.
pub(crate) async fn databases() -> Vec<TestDb> {
    // Test databases outlive their test; those of ended runs are swept here.
    for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("customer_worker_") && left_behind(&name, "customer_worker") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = std::env::temp_dir().join(unique("customer_worker"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut dbs = vec![TestDb { label: "sqlite", url: format!("sqlite://{}?mode=rwc", dir.join("test.db").display()) }];
    match std::env::var(POSTGRES_ENV) {
        Ok(admin_url) if !admin_url.is_empty() => dbs.push(postgres(&admin_url).await),
        _ => {
            assert!(
                std::env::var(REQUIRE_ENV).as_deref() != Ok("1"),
                "{REQUIRE_ENV}=1 but {POSTGRES_ENV} is not set: the PostgreSQL tests would be skipped"
            );
            eprintln!("note: {POSTGRES_ENV} not set; PostgreSQL tests skipped");
        }
    }
    dbs
}

async fn postgres(admin_url: &str) -> TestDb {
    sqlx::any::install_default_drivers();
    let name = unique("cw_test");
    let mut admin = sqlx::AnyConnection::connect(admin_url).await.expect("connect to TEST_DATABASE_URL");
    let existing: Vec<String> =
        sqlx::query_scalar("SELECT CAST(datname AS TEXT) FROM pg_database WHERE datname LIKE 'cw_test_%'")
            .fetch_all(&mut admin)
            .await
            .unwrap_or_default();
    for stale in existing.iter().filter(|name| left_behind(name, "cw_test")) {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {stale}")).execute(&mut admin).await;
    }
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    let (base, _) = admin_url.rsplit_once('/').expect("URL with a database name");
    TestDb { label: "postgres", url: format!("{base}/{name}") }
}

/// The built-in configuration on `db`, listening on ephemeral loopback ports.
pub(crate) fn config(db: &TestDb) -> Config {
    let env = [
        ("CUSTOMER_WORKER__DATA__DATABASE__URL", db.url.clone()),
        ("CUSTOMER_WORKER__DATA__DATABASE__BUSY_TIMEOUT_MS", "10000".into()),
        ("CUSTOMER_WORKER__SERVER__APP_ADDR", "127.0.0.1:0".into()),
        ("CUSTOMER_WORKER__SERVER__ADMIN_ADDR", "127.0.0.1:0".into()),
        ("CUSTOMER_WORKER__SERVER__DRAIN_TIMEOUT_SECS", "5".into()),
    ];
    Config::parse(DEFAULT_CONFIG, env.map(|(k, v)| (k.to_owned(), v)), "test").unwrap()
}

/// A worker in `events` mode, a sidecar connected to it, and the store.
pub(crate) struct Worker {
    pub running: Running,
    pub sidecar: TestSidecar,
    pub store: Store,
}

pub(crate) async fn worker(db: &TestDb) -> Worker {
    let config = config(db);
    let store = Store::connect(&config.data.database).await.unwrap();
    let running = app::start(config, Mode::Events, None).await.unwrap();
    let sidecar = TestSidecar::connect(running.app_addr.unwrap()).await.unwrap().pubsub("pubsub-redis").max_attempts(1);
    Worker { running, sidecar, store }
}

pub(crate) fn completed(order: &str, customer: &str, amount: &str, at: &str) -> CloudEvent {
    CloudEvent::json(&serde_json::json!({
        "order_id": order, "customer_id": customer, "total_amount": amount, "currency": "EUR", "completed_at": at
    }))
}

pub(crate) fn cancelled(order: &str, customer: &str, amount: &str, at: &str) -> CloudEvent {
    CloudEvent::json(&serde_json::json!({
        "order_id": order, "customer_id": customer, "total_amount": amount, "currency": "EUR", "cancelled_at": at
    }))
}

pub(crate) fn returned(order: &str, customer: &str, refund: &str, at: &str) -> CloudEvent {
    CloudEvent::json(&serde_json::json!({
        "order_id": order, "customer_id": customer, "refund_amount": refund, "currency": "EUR", "returned_at": at
    }))
}

pub(crate) fn login(customer: &str, at: &str) -> CloudEvent {
    CloudEvent::json(&serde_json::json!({"customer_id": customer, "login_at": at}))
}

/// `GET` of the admin port over loopback: (status, body); `None` when
/// nothing answers.
pub(crate) async fn get(address: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    daprd_harness::http_get(address, path).await
}
