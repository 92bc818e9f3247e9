//! The worker as a process behind the real daprd, on a Redis of its own.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use daprd_harness::{self as daprd, Daprd, DaprdBuilder, Redis, free_port};
use tokio::process::{Child, Command};

use super::{TestDb, get};

/// The Dapr resources for local runs and tests.
pub(crate) const RESOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dapr/local");
/// The pub/sub the worker subscribes through.
pub(crate) const PUBSUB: &str = "pubsub-redis";
/// The worker's app id, and so its Redis consumer group.
pub(crate) const APP_ID: &str = "customer-worker";

/// Whether the daprd suite can run: daprd, redis-server and PostgreSQL (the
/// worker runs on it here). Skips, or fails under the `EVENTBUS_REQUIRE_*` variables.
pub(crate) async fn postgres_and_daprd() -> Option<TestDb> {
    if !daprd::available() {
        return None;
    }
    super::databases().await.into_iter().find(|db| db.label == "postgres")
}

/// How to start the `customer-worker` binary (the same on every restart).
struct Launch {
    args: Vec<String>,
    grpc_port: u16,
    admin_port: u16,
    database_url: String,
    log: PathBuf,
    extra_env: Vec<(String, String)>,
}

impl Launch {
    /// Starts the binary and waits until its admin port answers `/healthz`.
    async fn spawn(&self) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_customer-worker"))
            .args(&self.args)
            .env("CUSTOMER_WORKER__DATA__DATABASE__URL", &self.database_url)
            .env("CUSTOMER_WORKER__SERVER__APP_ADDR", format!("127.0.0.1:{}", self.grpc_port))
            .env("CUSTOMER_WORKER__SERVER__ADMIN_ADDR", format!("127.0.0.1:{}", self.admin_port))
            .env("RUST_LOG", "info")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        daprd::eventually("the worker's /healthz", || async {
            (get(([127, 0, 0, 1], self.admin_port).into(), "/healthz").await?.0 == 200).then_some(())
        })
        .await;
        child
    }
}

/// The `customer-worker` binary in `events` mode, as a child process.
pub(crate) struct WorkerProcess {
    child: Child,
    launch: Launch,
    pub grpc_port: u16,
}

impl WorkerProcess {
    /// The built-in configuration, `--mode events`, a drain of 5 s.
    pub(crate) async fn start(db: &TestDb, env: &[(&str, &str)]) -> WorkerProcess {
        let env: Vec<(&str, &str)> =
            [("CUSTOMER_WORKER__SERVER__DRAIN_TIMEOUT_SECS", "5")].into_iter().chain(env.iter().copied()).collect();
        WorkerProcess::start_with(db, &["--mode", "events"], &env).await
    }

    /// With these command-line arguments; the database and the two ports
    /// come from the environment, as the chart sets the database URL.
    pub(crate) async fn start_with(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> WorkerProcess {
        let (grpc_port, admin_port) = (free_port().unwrap(), free_port().unwrap());
        let log = std::env::temp_dir().join(format!("customer-worker-{grpc_port}.log"));
        std::fs::File::create(&log).unwrap(); // a fresh log; restarts append to it
        let extra_env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let args = args.iter().map(|a| (*a).to_owned()).collect();
        let launch = Launch { args, grpc_port, admin_port, database_url: db.url.clone(), log, extra_env };
        WorkerProcess { child: launch.spawn().await, launch, grpc_port }
    }

    /// SIGKILL (a crash, an OOM kill): nothing drains.
    pub(crate) async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM; returns the exit status.
    pub(crate) async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap();
        std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await.expect("exits after SIGTERM").unwrap()
    }

    /// Starts the binary again on the same ports.
    pub(crate) async fn restart(&mut self) {
        self.child = self.launch.spawn().await;
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.launch.log).unwrap_or_default()
    }

    /// The sum of `eventbus_events_total` samples whose labels contain every one of `labels`.
    pub(crate) async fn events_total(&self, labels: &[&str]) -> u64 {
        let Some((200, body)) = get(([127, 0, 0, 1], self.launch.admin_port).into(), "/metrics").await else {
            return 0;
        };
        body.lines()
            .filter(|line| line.starts_with("eventbus_events_total{") && labels.iter().all(|l| line.contains(l)))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

/// daprd in front of the worker, on a Redis of its own, with the shipped
/// local resources.
pub(crate) async fn sidecar(
    worker: &WorkerProcess,
    configure: impl FnOnce(DaprdBuilder) -> DaprdBuilder,
) -> (Redis, Daprd) {
    sidecar_with(worker, |b| configure(b.resources(RESOURCES))).await
}

/// daprd in front of the worker, on a Redis of its own, with the resources
/// `configure` gives it.
pub(crate) async fn sidecar_with(
    worker: &WorkerProcess,
    configure: impl FnOnce(DaprdBuilder) -> DaprdBuilder,
) -> (Redis, Daprd) {
    let redis = Redis::start().await.unwrap();
    let builder = Daprd::builder(APP_ID).app_port(worker.grpc_port);
    let daprd = configure(builder).replace_in_resources("localhost:6379", redis.address()).start().await.unwrap();
    daprd.wait_for_subscriptions(5).await.unwrap();
    (redis, daprd)
}

/// Turns connections to the test database off (or on again) and closes the
/// open ones: the database is gone for this worker, and only for it.
pub(crate) async fn set_database_reachable(db: &TestDb, reachable: bool) {
    use sqlx::Connection;
    let admin_url = std::env::var(super::POSTGRES_ENV).unwrap();
    let name = db.url.rsplit('/').next().unwrap();
    let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {reachable}")).execute(&mut admin).await.unwrap();
    if !reachable {
        sqlx::query(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    admin.close().await.unwrap();
}

/// A structured CloudEvent, as a producer publishes it with its own id.
pub(crate) fn cloud_event(id: &str, event_type: &str, data: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0", "id": id, "source": "daprd-suite", "type": event_type,
        "datacontenttype": "application/json", "data": data,
    })
}

/// Waits until the worker's consumer group has read and acknowledged every entry of `topic`.
pub(crate) async fn until_settled(redis: &Redis, topic: &str) {
    daprd::eventually(&format!("{topic} read and acknowledged"), || async {
        (redis.consumer_group(topic, APP_ID).await.ok()?? == (0, 0)).then_some(())
    })
    .await;
}
