//! The chaos and fuzz suite. It plays daprd against the release customer
//! worker over real gRPC (redelivering every event not answered SUCCESS or
//! DROP, every event delivered twice), breaks things while it delivers,
//! and then checks the database against a model computed from the events
//! alone (`workload.rs`), not from the worker's code.
//!
//! Scenarios (`--scenario`):
//! - `kill`: kill -9 the worker at random moments, restart it at once;
//! - `outage`: make the database refuse connections for a while, several
//!   times (PostgreSQL); valid events may only get RETRY while it is down;
//! - `replicas`: two workers on one PostgreSQL, every event delivered to both;
//! - `fuzz`: random and hostile requests on every RPC (`fuzz.rs`).
//!
//! Prints one line of figures (events, kills, redeliveries, lost, duplicated,
//! crashes, peak RSS) and exits non-zero when the database disagrees with
//! the model or the worker died on its own.
//!
//! `cargo run --release -p eventbus-chaos -- --worker target/release/customer-worker --database-url postgres://… --scenario kill`

mod fuzz;
mod workload;

use std::collections::{HashSet, VecDeque};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use eventbus::grpc::proto::runtime as pb;
use eventbus::grpc::proto::runtime::app_callback_client::AppCallbackClient;
use sqlx::Row;
use tokio::process::{Child, Command};
use tonic::transport::Channel;

use workload::{Event, Figures, Model, Rng};

#[derive(Parser, Clone)]
struct Cli {
    /// The customer-worker binary.
    #[arg(long)]
    worker: String,
    /// A fresh database for the run (`postgres://…` or `sqlite://…?mode=rwc`).
    #[arg(long)]
    database_url: String,
    /// For `outage` on PostgreSQL: a URL of the same server whose user may
    /// change the database (default: the run's URL with database `postgres`).
    #[arg(long)]
    admin_url: Option<String>,
    /// `kill`, `outage`, `replicas` or `fuzz`.
    #[arg(long, default_value = "kill")]
    scenario: String,
    /// Orders in the workload (each brings a few more events).
    #[arg(long, default_value_t = 2000)]
    orders: usize,
    /// Customers the orders are spread over.
    #[arg(long, default_value_t = 50)]
    customers: usize,
    /// Kills or outages in the run.
    #[arg(long, default_value_t = 5)]
    breaks: u32,
    /// Requests the fuzzer sends.
    #[arg(long, default_value_t = 5000)]
    requests: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A worker process in `events` mode.
struct Worker {
    child: Child,
    port: u16,
    admin_port: u16,
    bin: String,
    database_url: String,
    peak_rss_kib: u64,
}

impl Worker {
    async fn start(bin: &str, database_url: &str) -> anyhow::Result<Worker> {
        let (port, admin_port) = (free_port()?, free_port()?);
        let child = spawn(bin, database_url, port, admin_port)?;
        let worker =
            Worker { child, port, admin_port, bin: bin.into(), database_url: database_url.into(), peak_rss_kib: 0 };
        worker.until_listening().await?;
        Ok(worker)
    }

    async fn until_listening(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            if Instant::now() > deadline {
                bail!("the worker did not listen on {}", self.port);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// kill -9, then a new process on the same ports.
    async fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        self.sample_rss();
        self.child.start_kill()?;
        self.child.wait().await?;
        self.child = spawn(&self.bin, &self.database_url, self.port, self.admin_port)?;
        self.until_listening().await
    }

    /// Whether the process ended without being asked to.
    fn crashed(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Reads the peak resident set (VmHWM) from /proc.
    fn sample_rss(&mut self) {
        let Some(pid) = self.child.id() else { return };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        self.peak_rss_kib = self.peak_rss_kib.max(kib);
    }
}

/// Where a worker's log goes (appended across restarts).
fn log_path(port: u16) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("eventbus-chaos-worker-{port}.log"))
}

fn spawn(bin: &str, database_url: &str, port: u16, admin_port: u16) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path(port))?;
    Command::new(bin)
        .args(["--mode", "events"])
        .env("CUSTOMER_WORKER__DATA__DATABASE__URL", database_url)
        .env("CUSTOMER_WORKER__SERVER__APP_ADDR", format!("127.0.0.1:{port}"))
        .env("CUSTOMER_WORKER__SERVER__ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting the worker")
}

/// What the delivery engine saw.
#[derive(Default)]
struct Tally {
    deliveries: AtomicU64,
    redeliveries: AtomicU64,
    /// Valid events answered DROP: must stay 0.
    valid_dropped: AtomicU64,
    /// Invalid events answered SUCCESS: must stay 0.
    invalid_acked: AtomicU64,
    /// DROP answers while the database was down.
    dropped_while_down: AtomicU64,
    retries_while_down: AtomicU64,
}

/// Plays daprd for one worker: every event (twice) until SUCCESS or DROP;
/// RETRY and transport errors are delivered again. `order.completed` goes
/// in bulk requests of up to 50, the rest one by one, 8 senders at once.
async fn deliver(port: u16, events: Vec<Event>, tally: Arc<Tally>, down: Arc<AtomicBool>, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut queue: Vec<Event> = events.iter().chain(&events).cloned().collect();
    for i in (1..queue.len()).rev() {
        queue.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let queue = Arc::new(Mutex::new(VecDeque::from(queue)));
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (queue, tally, down) = (queue.clone(), tally.clone(), down.clone());
        senders.push(tokio::spawn(async move {
            let mut client: Option<AppCallbackClient<Channel>> = None;
            loop {
                let batch: Vec<Event> = {
                    let mut queue = queue.lock().unwrap_or_else(|p| p.into_inner());
                    let Some(first) = queue.pop_front() else { break };
                    let mut batch = vec![first];
                    while batch[0].topic == "order.completed"
                        && batch.len() < 50
                        && queue.front().is_some_and(|e| e.topic == "order.completed")
                    {
                        batch.extend(queue.pop_front());
                    }
                    batch
                };
                if client.is_none() {
                    client = connect(port).await;
                }
                let answers = match client.as_mut() {
                    Some(app) => send(app, &batch).await,
                    None => None,
                };
                tally.deliveries.fetch_add(batch.len() as u64, Ordering::Relaxed);
                let mut again = Vec::new();
                match answers {
                    None => {
                        client = None;
                        again = batch;
                    }
                    Some(statuses) => {
                        for (event, status) in batch.into_iter().zip(statuses) {
                            let is_down = down.load(Ordering::Relaxed);
                            match pb::topic_event_response::TopicEventResponseStatus::try_from(status) {
                                Ok(pb::topic_event_response::TopicEventResponseStatus::Success) => {
                                    if !event.valid {
                                        tally.invalid_acked.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                Ok(pb::topic_event_response::TopicEventResponseStatus::Drop) => {
                                    if event.valid {
                                        tally.valid_dropped.fetch_add(1, Ordering::Relaxed);
                                        if is_down {
                                            tally.dropped_while_down.fetch_add(1, Ordering::Relaxed);
                                        }
                                    }
                                }
                                _ => {
                                    if is_down {
                                        tally.retries_while_down.fetch_add(1, Ordering::Relaxed);
                                    }
                                    again.push(event);
                                }
                            }
                        }
                    }
                }
                if !again.is_empty() {
                    tally.redeliveries.fetch_add(again.len() as u64, Ordering::Relaxed);
                    // daprd's resiliency policy waits before it retries.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    queue.lock().unwrap_or_else(|p| p.into_inner()).extend(again);
                }
            }
        }));
    }
    for sender in senders {
        let _ = sender.await;
    }
}

async fn channel(port: u16) -> Option<Channel> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).ok()?;
    channel.connect_timeout(Duration::from_secs(1)).connect().await.ok()
}

async fn connect(port: u16) -> Option<AppCallbackClient<Channel>> {
    Some(AppCallbackClient::new(channel(port).await?).max_decoding_message_size(64 << 20))
}

/// One status per event, or `None` on a transport error.
async fn send(app: &mut AppCallbackClient<Channel>, batch: &[Event]) -> Option<Vec<i32>> {
    let timeout = Duration::from_secs(30);
    if batch.len() == 1 && batch[0].topic != "order.completed" {
        let response = tokio::time::timeout(timeout, app.on_topic_event(topic_request(&batch[0]))).await.ok()?.ok()?;
        return Some(vec![response.into_inner().status]);
    }
    let request = bulk_request(batch);
    let response = tokio::time::timeout(timeout, app.on_bulk_topic_event(request)).await.ok()?.ok()?.into_inner();
    Some(bulk_statuses(response, batch.len()))
}

fn ce_request(event: &Event) -> pb::TopicEventCeRequest {
    pb::TopicEventCeRequest {
        id: event.id.clone(),
        source: "chaos".into(),
        r#type: "com.dapr.event.sent".into(),
        spec_version: "1.0".into(),
        data_content_type: event.content_type.clone(),
        data: event.data.clone(),
        extensions: None,
    }
}

/// A single delivery, as daprd sends it.
fn topic_request(event: &Event) -> pb::TopicEventRequest {
    let ce = ce_request(event);
    pb::TopicEventRequest {
        id: ce.id,
        source: ce.source,
        r#type: ce.r#type,
        spec_version: ce.spec_version,
        data_content_type: ce.data_content_type,
        data: ce.data,
        topic: event.topic.into(),
        pubsub_name: "pubsub-redis".into(),
        path: event.topic.into(),
        extensions: None,
    }
}

/// A bulk delivery; entry ids are the events' positions (ids may be empty or repeated).
fn bulk_request(batch: &[Event]) -> pb::TopicEventBulkRequest {
    use pb::topic_event_bulk_request_entry::Event as Entry;
    let entries = batch
        .iter()
        .enumerate()
        .map(|(index, event)| pb::TopicEventBulkRequestEntry {
            entry_id: index.to_string(),
            content_type: event.content_type.clone(),
            metadata: Default::default(),
            event: Some(Entry::CloudEvent(ce_request(event))),
        })
        .collect();
    let topic = batch.first().map_or("order.completed", |e| e.topic);
    pb::TopicEventBulkRequest {
        id: "chaos".into(),
        entries,
        metadata: Default::default(),
        topic: topic.into(),
        pubsub_name: "pubsub-redis".into(),
        r#type: "com.dapr.event.sent".into(),
        path: topic.into(),
    }
}

/// The status of each of `len` entries, in order; a missing one is RETRY (1), as daprd treats it.
fn bulk_statuses(response: pb::TopicEventBulkResponse, len: usize) -> Vec<i32> {
    let by_entry: std::collections::HashMap<String, i32> =
        response.statuses.into_iter().map(|s| (s.entry_id, s.status)).collect();
    (0..len).map(|index| by_entry.get(&index.to_string()).copied().unwrap_or(1)).collect()
}

/// Makes the run's PostgreSQL database refuse connections (and closes the
/// open ones), or accept them again.
async fn set_reachable(admin_url: &str, database: &str, reachable: bool) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut admin = sqlx::AnyConnection::connect(admin_url).await?;
    sqlx::query(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS {reachable}")).execute(&mut admin).await?;
    if !reachable {
        sqlx::query(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"))
            .execute(&mut admin)
            .await?;
    }
    admin.close().await?;
    Ok(())
}

/// `GET /readyz`: how long the answer took, if one came within 15 s.
async fn readyz_latency(admin_port: u16) -> Option<Duration> {
    let started = Instant::now();
    daprd_harness::http_get(format!("127.0.0.1:{admin_port}"), "/readyz").await?;
    Some(started.elapsed())
}

/// Compares the database with the model: (lost events, events applied twice, other differences).
async fn check(database_url: &str, model: &Model) -> anyhow::Result<(usize, usize, Vec<String>)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database_url).await?;
    let mut differences = Vec::new();
    let inbox: i64 = sqlx::query("SELECT COUNT(*) FROM inbox").fetch_one(&pool).await?.try_get(0)?;
    let lost = (model.valid_events as i64 - inbox).max(0) as usize;
    let rows = sqlx::query(
        "SELECT customer_id, order_count, total_spent_minor, cancelled_count, returned_count, refunded_minor, last_login_at
         FROM customers",
    )
    .fetch_all(&pool)
    .await?;
    let mut seen = HashSet::new();
    let mut duplicated = 0;
    for row in rows {
        let customer: String = row.try_get(0)?;
        let got = Figures {
            orders: row.try_get(1)?,
            spent: row.try_get(2)?,
            cancelled: row.try_get(3)?,
            returns: row.try_get(4)?,
            refunded: row.try_get(5)?,
            last_login: row.try_get(6)?,
        };
        match model.customers.get(&customer) {
            None => differences.push(format!("customer {customer:?} comes from no valid event")),
            Some(want) if *want != got => {
                if got.orders > want.orders || got.returns > want.returns || got.cancelled > want.cancelled {
                    duplicated += 1;
                }
                differences.push(format!("{customer}: want {want:?}, got {got:?}"));
            }
            Some(_) => {}
        }
        seen.insert(customer);
    }
    for customer in model.customers.keys().filter(|c| !seen.contains(*c)) {
        differences.push(format!("customer {customer} missing"));
    }
    let security: i64 = sqlx::query("SELECT COUNT(*) FROM security_events").fetch_one(&pool).await?.try_get(0)?;
    if security != model.password_changes as i64 {
        differences.push(format!("security events: want {}, got {security}", model.password_changes));
    }
    if inbox > model.valid_events as i64 {
        differences.push(format!("inbox: {inbox} rows for {} valid events", model.valid_events));
    }
    pool.close().await;
    Ok((lost, duplicated, differences))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    sqlx::any::install_default_drivers();
    if cli.scenario == "fuzz" {
        return fuzz::run(&cli).await;
    }
    let (events, model) = workload::generate(cli.seed, cli.orders, cli.customers);
    let replicas = if cli.scenario == "replicas" { 2 } else { 1 };
    let mut workers = Vec::new();
    for _ in 0..replicas {
        workers.push(Worker::start(&cli.worker, &cli.database_url).await?);
    }
    let tally = Arc::new(Tally::default());
    let down = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut deliveries = Vec::new();
    for (i, worker) in workers.iter().enumerate() {
        let seed = cli.seed + i as u64;
        deliveries.push(tokio::spawn(deliver(worker.port, events.clone(), tally.clone(), down.clone(), seed)));
    }
    let all_delivered = async {
        for delivery in deliveries {
            let _ = delivery.await;
        }
    };
    tokio::pin!(all_delivered);

    // The breaks, at random moments while events flow.
    let mut rng = Rng::new(cli.seed ^ 0xC4A05);
    let (mut breaks, mut crashes, mut slowest_readyz) = (0u32, 0u32, Duration::ZERO);
    let admin_url = cli.admin_url.clone().unwrap_or_else(|| {
        let (base, _) = cli.database_url.rsplit_once('/').unwrap_or((&cli.database_url, ""));
        format!("{base}/postgres")
    });
    let database = cli.database_url.rsplit('/').next().unwrap_or_default().to_owned();
    loop {
        let pause = Duration::from_millis(200 + rng.below(800));
        tokio::select! {
            () = &mut all_delivered => break,
            () = tokio::time::sleep(pause) => {}
        }
        for worker in &mut workers {
            worker.sample_rss();
            if worker.crashed() {
                crashes += 1;
                worker.kill_and_restart().await?;
            }
        }
        if breaks >= cli.breaks || !matches!(cli.scenario.as_str(), "kill" | "outage") {
            continue;
        }
        breaks += 1;
        match cli.scenario.as_str() {
            "kill" => workers[0].kill_and_restart().await?,
            "outage" => {
                set_reachable(&admin_url, &database, false).await?;
                down.store(true, Ordering::Relaxed);
                if let Some(latency) = readyz_latency(workers[0].admin_port).await {
                    slowest_readyz = slowest_readyz.max(latency);
                }
                tokio::time::sleep(Duration::from_millis(1000)).await;
                down.store(false, Ordering::Relaxed);
                set_reachable(&admin_url, &database, true).await?;
            }
            _ => {}
        }
    }
    let elapsed = started.elapsed();
    for worker in &mut workers {
        worker.sample_rss();
    }
    let (lost, duplicated, differences) = check(&cli.database_url, &model).await?;
    let peak_rss = workers.iter().map(|w| w.peak_rss_kib).max().unwrap_or(0);
    let deadlocks: usize = workers
        .iter()
        .map(|w| std::fs::read_to_string(log_path(w.port)).unwrap_or_default().matches("deadlock detected").count())
        .sum();
    let invalid = events.iter().filter(|e| !e.valid).count();
    println!(
        "scenario={} events={} (valid {}, invalid {}) deliveries={} redeliveries={} breaks={} lost={} duplicated={} \
         valid_dropped={} invalid_acked={} dropped_while_down={} retries_while_down={} crashes={} peak_rss_mib={:.1} \
         slowest_readyz_while_down_ms={} deadlocks={deadlocks} seconds={:.1}",
        cli.scenario,
        events.len(),
        model.valid_events,
        invalid,
        tally.deliveries.load(Ordering::Relaxed),
        tally.redeliveries.load(Ordering::Relaxed),
        breaks,
        lost,
        duplicated,
        tally.valid_dropped.load(Ordering::Relaxed),
        tally.invalid_acked.load(Ordering::Relaxed),
        tally.dropped_while_down.load(Ordering::Relaxed),
        tally.retries_while_down.load(Ordering::Relaxed),
        crashes,
        peak_rss as f64 / 1024.0,
        slowest_readyz.as_millis(),
        elapsed.as_secs_f64(),
    );
    for difference in differences.iter().take(20) {
        eprintln!("  {difference}");
    }
    if !differences.is_empty()
        || crashes > 0
        || tally.valid_dropped.load(Ordering::Relaxed) > 0
        || tally.invalid_acked.load(Ordering::Relaxed) > 0
    {
        bail!("the database disagrees with the model, or the worker misbehaved ({} differences)", differences.len());
    }
    Ok(())
}
