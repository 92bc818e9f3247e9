//! Publish → visible latency of the customer worker behind the real daprd,
//! with the CPU every process on the path spent per event.
//!
//! Starts a `redis-server`, `--replicas` workers (release binary `--worker`,
//! `events` mode, one database) each with its own daprd (`$DAPRD`, one app
//! id, so one Redis consumer group) loaded with `--resources` as shipped,
//! then for each topic and rate publishes CloudEvents through daprd's gRPC
//! `PublishEvent` at that steady rate for `--seconds`, each publish started
//! on its own schedule (an open loop: a slow consumer does not slow the
//! producer).
//!
//! **Visible** is what a user sees: a poller on its own database connection
//! asks every `--poll-ms` which of the published events have their inbox row
//! committed; an event's latency is the start of the first poll that saw it
//! minus the start of its publish (so it reads up to one poll period high).
//! Beside it, **processed_at** is the inbox row's own timestamp, written
//! inside the transaction before its effects and its commit, in whole
//! milliseconds: the figure earlier versions of this benchmark reported.
//!
//! **In worker** is the worker's own `eventbus_handler_duration_seconds`
//! over the run (scraped from its `/metrics` before and after): the time
//! from the request's arrival to its answer, the commit included, as a
//! bucket bound for the p99 and as a mean; *events/commit* is the mean size
//! of its group commits (`customer_worker_commit_batch_size`).
//!
//! **CPU per event** is user + system time from `/proc/<pid>/stat` over the
//! run (publish and drain) divided by the events: the workers, the daprds,
//! Redis, PostgreSQL (the postmaster and its children, reaped ones included,
//! less the poller's own backend) and this driver (publisher and poller).
//! *Machine busy* is the share of all cores running anything over the run,
//! and *steal* the share the hypervisor gave other guests, from `/proc/stat`.
//!
//! Each topic starts with 400 events at 200/s that are not reported (the
//! topic's stream, first connections, prepared statements).
//!
//! A rate is *sustained* when the publisher kept it (achieved within 5 %)
//! and every event was visible within 2 s of the last publish; *exact* when
//! the effects in the customer tables match the events published once each.
//!
//! `DAPRD=target/daprd/daprd target/release/daprd-latency --worker target/release/customer-worker --database-url postgres://… --transport grpc --topics auth.login --rates 1000`

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use daprd_harness::{Daprd, Redis, free_port};
use hdrhistogram::Histogram;
use sqlx::Row;

#[derive(Parser)]
struct Cli {
    /// The customer-worker binary (a release build).
    #[arg(long)]
    worker: String,
    /// The worker's database: a fresh PostgreSQL database, or `sqlite://…?mode=rwc`.
    #[arg(long)]
    database_url: String,
    /// Events per second, one run each.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000,2000")]
    rates: Vec<u64>,
    /// Seconds per rate.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Topics, one run per topic and rate. `order.completed` is the worker's
    /// bulk subscription; the others are delivered one event per call.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "auth.login,auth.password_changed,order.completed,order.cancelled,order.returned"
    )]
    topics: Vec<String>,
    /// How daprd delivers to the worker: `grpc` or `http` (app channel), or `streaming`.
    #[arg(long, default_value = "grpc")]
    transport: String,
    /// Workers, each with its own daprd (one app id, one consumer group).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// The Dapr resources (pubsub-redis, resiliency, configuration), as shipped.
    #[arg(long, default_value = "deploy/dapr/local")]
    resources: String,
    /// How often the poller looks for committed rows.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// Extra environment for the workers (`KEY=VALUE`, repeatable): e.g. a pool size.
    #[arg(long = "worker-env")]
    worker_env: Vec<String>,
}

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The `i`-th event of run `run` on `topic`: its own order, a thousand customers per run.
fn payload(topic: &str, run: usize, i: u64) -> serde_json::Value {
    let (customer, order) = (format!("c-{run}-{}", i % 1000), format!("o-{run}-{i}"));
    match topic {
        "order.completed" => serde_json::json!({
            "order_id": order, "customer_id": customer, "total_amount": "10.00",
            "currency": "EUR", "completed_at": "2026-11-20T10:00:00Z"
        }),
        "order.cancelled" => serde_json::json!({
            "order_id": order, "customer_id": customer, "total_amount": "10.00",
            "currency": "EUR", "cancelled_at": "2026-11-20T11:00:00Z", "reason": "changed mind"
        }),
        "order.returned" => serde_json::json!({
            "order_id": order, "customer_id": customer, "refund_amount": "1.00",
            "currency": "EUR", "returned_at": "2026-11-21T09:00:00Z", "reason": "wrong size"
        }),
        "auth.password_changed" => serde_json::json!({
            "customer_id": customer, "changed_at": "2026-11-24T08:05:00Z",
            "ip_address": "203.0.113.7", "user_agent": "daprd-latency"
        }),
        _ => serde_json::json!({"customer_id": customer, "login_at": "2026-11-24T08:00:00Z"}),
    }
}

/// The SQL that counts what `events` events of `topic` in run `run` left in
/// the customer tables: equal to `events` when each was applied once.
fn effects_sql(topic: &str, run: usize) -> String {
    let customers = format!("customer_id LIKE 'c-{run}-%'");
    match topic {
        "order.completed" => {
            format!("SELECT CAST(COALESCE(SUM(order_count), 0) AS BIGINT) FROM customers WHERE {customers}")
        }
        "order.cancelled" => {
            format!("SELECT CAST(COALESCE(SUM(cancelled_count), 0) AS BIGINT) FROM customers WHERE {customers}")
        }
        "order.returned" => {
            format!("SELECT CAST(COALESCE(SUM(return_count), 0) AS BIGINT) FROM orders WHERE {customers}")
        }
        "auth.password_changed" => format!("SELECT COUNT(*) FROM security_events WHERE {customers}"),
        // A login moves a time, not a count: every customer of the run has one.
        _ => format!("SELECT COUNT(*) FROM customers WHERE {customers} AND last_login_at IS NOT NULL"),
    }
}

/// The count [`effects_sql`] should read after `events` events.
fn effects_expected(topic: &str, events: u64) -> i64 {
    let events = i64::try_from(events).unwrap_or(i64::MAX);
    if topic == "auth.login" { events.min(1000) } else { events }
}

/// User + system clock ticks of a process (and, with `children`, of its reaped children).
fn ticks(pid: u32, children: bool) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0 };
    // Fields after the parenthesised command name: state is field 3, utime 14.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return 0 };
    let fields: Vec<u64> = rest.split(' ').map(|f| f.parse().unwrap_or(0)).collect();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
    field(14) + field(15) + if children { field(16) + field(17) } else { 0 }
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
}

fn command_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// PostgreSQL's ticks: the postmaster with its reaped children, and its live
/// children except `except` (the poller's backend).
fn postgres_ticks(postmaster: u32, except: u32) -> u64 {
    ticks(postmaster, true)
        + all_pids()
            .into_iter()
            .filter(|&pid| pid != except && parent_of(pid) == Some(postmaster))
            .map(|pid| ticks(pid, false))
            .sum::<u64>()
}

/// Ticks of the whole machine, from the first line of `/proc/stat`.
#[derive(Clone, Copy, Default)]
struct Machine {
    /// user, nice, system, irq, softirq.
    busy: u64,
    /// Taken by the hypervisor for other guests: a noisy neighbour, not us.
    steal: u64,
    total: u64,
}

fn machine_ticks() -> Machine {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    let field = |n: usize| fields.get(n).copied().unwrap_or(0);
    // guest and guest_nice (8, 9) are already counted in user and nice.
    let (busy, idle, steal) = (field(0) + field(1) + field(2) + field(5) + field(6), field(3) + field(4), field(7));
    Machine { busy, steal, total: busy + idle + steal }
}

/// The processes on the path whose CPU is counted.
struct Processes {
    workers: Vec<u32>,
    daprds: Vec<u32>,
    redis: u32,
    /// The postmaster and the poller's backend, on PostgreSQL.
    postgres: Option<(u32, u32)>,
}

#[derive(Clone, Copy)]
struct CpuSample {
    workers: u64,
    daprds: u64,
    redis: u64,
    postgres: u64,
    driver: u64,
    machine: Machine,
}

impl Processes {
    fn sample(&self) -> CpuSample {
        CpuSample {
            workers: self.workers.iter().map(|&pid| ticks(pid, false)).sum(),
            daprds: self.daprds.iter().map(|&pid| ticks(pid, false)).sum(),
            redis: ticks(self.redis, false),
            postgres: self.postgres.map_or(0, |(postmaster, poller)| postgres_ticks(postmaster, poller)),
            driver: ticks(std::process::id(), false),
            machine: machine_ticks(),
        }
    }
}

/// The postmaster: the `postgres` process whose parent is not one.
fn find_postmaster(backend: u32) -> Option<u32> {
    let mut pid = backend;
    loop {
        let parent = parent_of(pid)?;
        if command_of(parent) != "postgres" {
            return Some(pid);
        }
        pid = parent;
    }
}

/// One replica: a worker and its daprd.
struct Replica {
    worker: tokio::process::Child,
    daprd: Daprd,
    admin_port: u16,
}

async fn start_replica(cli: &Cli, redis: &Redis) -> anyhow::Result<Replica> {
    let (app_port, admin_port) = (free_port()?, free_port()?);
    let mut daprd = Daprd::builder("customer-worker")
        .resources(&cli.resources)
        .replace_in_resources("localhost:6379", redis.address());
    match cli.transport.as_str() {
        "grpc" => daprd = daprd.app_port(app_port),
        "http" => daprd = daprd.app_port(app_port).app_protocol("http"),
        "streaming" => {}
        other => bail!("--transport {other}: expected grpc, http or streaming"),
    }
    let start_worker = |dapr_grpc_endpoint: Option<String>| {
        let mut worker = tokio::process::Command::new(&cli.worker);
        worker
            .args(["--mode", "events"])
            .env("CUSTOMER_WORKER__DATA__DATABASE__URL", &cli.database_url)
            .env("CUSTOMER_WORKER__SERVER__APP_ADDR", format!("127.0.0.1:{app_port}"))
            .env("CUSTOMER_WORKER__SERVER__ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("CUSTOMER_WORKER__SERVER__TRANSPORT", &cli.transport)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for pair in &cli.worker_env {
            if let Some((key, value)) = pair.split_once('=') {
                worker.env(key, value);
            }
        }
        if let Some(endpoint) = dapr_grpc_endpoint {
            worker.env("CUSTOMER_WORKER__SERVER__DAPR_GRPC_ENDPOINT", endpoint);
        }
        worker.spawn().context("starting the worker")
    };
    // With an app channel the worker listens first; with streaming, daprd's API must be up first.
    let (worker, daprd) = if cli.transport == "streaming" {
        let daprd = daprd.start().await.context("daprd")?;
        (start_worker(Some(daprd.grpc_endpoint()))?, daprd)
    } else {
        let worker = start_worker(None)?;
        (worker, daprd.start().await.context("daprd")?)
    };
    daprd.wait_for_subscriptions(5).await?;
    Ok(Replica { worker, daprd, admin_port })
}

/// The workers' own view of a run, from their `/metrics` before and after:
/// how long the handler held each event of the topic (from the request's
/// arrival to its answer, the commit included) and how many events each
/// commit held.
#[derive(Clone, Default)]
struct WorkerView {
    /// `eventbus_handler_duration_seconds` bucket counts by upper bound (s), summed over replicas.
    buckets: BTreeMap<String, f64>,
    handler_sum: f64,
    handler_count: f64,
    batch_sum: f64,
    batch_count: f64,
}

/// `GET /metrics` of the worker's admin port; empty when nothing answers.
async fn scrape(port: u16) -> String {
    daprd_harness::http_get(format!("127.0.0.1:{port}"), "/metrics").await.map(|(_, body)| body).unwrap_or_default()
}

async fn worker_view(replicas: &[Replica], topic: &str) -> WorkerView {
    let mut view = WorkerView::default();
    let topic_label = format!("topic=\"{topic}\"");
    for replica in replicas {
        for line in scrape(replica.admin_port).await.lines() {
            let Some((name, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let of_topic = name.contains(&topic_label);
            if name.starts_with("customer_worker_commit_batch_size_sum") {
                view.batch_sum += value;
            } else if name.starts_with("customer_worker_commit_batch_size_count") {
                view.batch_count += value;
            } else if of_topic && name.starts_with("eventbus_handler_duration_seconds_bucket") {
                if let Some(le) = name.split("le=\"").nth(1).and_then(|rest| rest.split('"').next()) {
                    *view.buckets.entry(le.to_owned()).or_default() += value;
                }
            } else if of_topic && name.starts_with("eventbus_handler_duration_seconds_sum") {
                view.handler_sum += value;
            } else if of_topic && name.starts_with("eventbus_handler_duration_seconds_count") {
                view.handler_count += value;
            }
        }
    }
    view
}

impl WorkerView {
    /// (handler p99 upper bound in ms, handler mean in ms, events per commit) over the run.
    fn during(before: &WorkerView, after: &WorkerView) -> (Option<f64>, f64, f64) {
        let count = after.handler_count - before.handler_count;
        let mut bounds: Vec<(f64, f64)> = after
            .buckets
            .iter()
            .filter_map(|(le, n)| {
                let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                Some((bound, n - before.buckets.get(le).copied().unwrap_or(0.0)))
            })
            .collect();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        let p99 = bounds.iter().find(|(_, n)| *n >= count * 0.99).map(|(bound, _)| bound * 1000.0);
        let mean = if count > 0.0 { (after.handler_sum - before.handler_sum) / count * 1000.0 } else { 0.0 };
        let commits = after.batch_count - before.batch_count;
        let batch = if commits > 0.0 { (after.batch_sum - before.batch_sum) / commits } else { 0.0 };
        (p99, mean, batch)
    }
}

/// Published events not seen yet: id → when its publish started (µs).
type Pending = Arc<Mutex<BTreeMap<String, i64>>>;

/// What one run measured.
struct Run {
    topic: String,
    rate: u64,
    events: u64,
    achieved: f64,
    visible: Histogram<u64>,
    processed_at: Histogram<u64>,
    seen: u64,
    drained_in: Duration,
    exact: bool,
    cpu: (CpuSample, CpuSample),
    worker: (WorkerView, WorkerView),
}

/// Polls `database` every `period` for the committed inbox rows of the
/// pending ids of `consumer`, until `done` and nothing is pending, or
/// `give_up` after the last publish. Returns (visible, processed_at) in µs.
async fn poll_until_seen(
    database: &sqlx::AnyPool,
    consumer: &str,
    pending: &Pending,
    published_all: &tokio::sync::watch::Receiver<Option<Instant>>,
    period: Duration,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>, u64)> {
    let (mut visible, mut processed) = (Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?);
    let mut seen = 0;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ids: Vec<String> = pending.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.keys().cloned().collect();
        let last_publish = *published_all.borrow();
        if ids.is_empty() {
            if last_publish.is_some() {
                break;
            }
            continue;
        }
        if last_publish.is_some_and(|at| at.elapsed() > Duration::from_secs(30)) {
            break;
        }
        let polled_at = now_micros();
        for chunk in ids.chunks(500) {
            let placeholders = (2..chunk.len() + 2).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT event_id, processed_at FROM inbox WHERE consumer = $1 AND event_id IN ({placeholders})"
            );
            let mut query = sqlx::query(&sql).bind(consumer);
            for id in chunk {
                query = query.bind(id);
            }
            let rows = query.fetch_all(database).await?;
            let mut pending = pending.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            for row in rows {
                let id: String = row.try_get(0)?;
                let processed_ms: i64 = row.try_get(1)?;
                if let Some(started) = pending.remove(&id) {
                    visible.record(u64::try_from(polled_at - started).unwrap_or(0))?;
                    processed.record(u64::try_from(processed_ms * 1000 - started).unwrap_or(0))?;
                    seen += 1;
                }
            }
        }
    }
    Ok((visible, processed, seen))
}

/// What every run uses: the options, the replicas, the processes whose CPU
/// is counted and the poller's database connection.
struct Setup<'a> {
    cli: &'a Cli,
    replicas: &'a [Replica],
    processes: &'a Processes,
    database: &'a sqlx::AnyPool,
}

async fn run_once(setup: &Setup<'_>, run: usize, topic: &str, rate: u64, seconds: u64) -> anyhow::Result<Run> {
    let Setup { cli, replicas, processes, database } = *setup;
    let events = rate * seconds;
    let pending: Pending = Arc::new(Mutex::new(BTreeMap::new()));
    let (published_all, published_all_rx) = tokio::sync::watch::channel(None);
    let mut channels = Vec::with_capacity(replicas.len());
    for replica in replicas {
        channels.push(tonic::transport::Channel::from_shared(replica.daprd.grpc_endpoint())?.connect().await?);
    }
    let before = processes.sample();
    let view_before = worker_view(replicas, topic).await;
    let poller = {
        let (database, pending, period) = (database.clone(), pending.clone(), Duration::from_millis(cli.poll_ms));
        let consumer = topic.to_owned();
        tokio::spawn(async move { poll_until_seen(&database, &consumer, &pending, &published_all_rx, period).await })
    };
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(events as usize);
    for i in 0..events {
        let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let id = format!("v{run}-{i:08}");
        let event = serde_json::json!({
            "specversion": "1.0", "id": id, "source": "daprd-latency", "type": topic,
            "datacontenttype": "application/json", "data": payload(topic, run, i),
        });
        let request = eventbus::grpc::proto::runtime::PublishEventRequest {
            pubsub_name: "pubsub-redis".into(),
            topic: topic.to_owned(),
            data: serde_json::to_vec(&event)?,
            data_content_type: "application/cloudevents+json".into(),
            metadata: HashMap::new(),
        };
        // Publishers spread over the replicas' daprds, as an API's pods would be.
        let channel = channels[i as usize % channels.len()].clone();
        let mut api = eventbus::grpc::proto::runtime::dapr_client::DaprClient::new(channel);
        pending.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.insert(id, now_micros());
        tasks.push(tokio::spawn(async move { api.publish_event(request).await.map(|_| ()) }));
    }
    for task in tasks {
        task.await??;
    }
    let achieved = events as f64 / started.elapsed().as_secs_f64();
    let last_publish = Instant::now();
    published_all.send_replace(Some(last_publish));
    let (visible, processed_at, seen) = poller.await??;
    let drained_in = last_publish.elapsed();
    let after = processes.sample();
    let view_after = worker_view(replicas, topic).await;
    let effects: i64 = sqlx::query(&effects_sql(topic, run)).fetch_one(database).await?.try_get(0)?;
    if seen < events {
        let log = replicas[0].daprd.log();
        eprintln!("{seen} of {events} visible 30 s after the last publish; daprd's last lines:");
        for line in log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev() {
            eprintln!("  {line}");
        }
    }
    Ok(Run {
        topic: topic.to_owned(),
        rate,
        events,
        achieved,
        visible,
        processed_at,
        seen,
        drained_in,
        exact: effects == effects_expected(topic, events),
        cpu: (before, after),
        worker: (view_before, view_after),
    })
}

fn print_tables(cli: &Cli, runs: &[Run]) {
    let ms = |micros: u64| micros as f64 / 1000.0;
    println!(
        "| transport | replicas | topic | rate (ev/s) | achieved | visible | p50 ms | p90 ms | p99 ms | max ms | processed_at p99 ms | in worker: p99 ≤ ms | mean ms | events/commit | sustained | exact |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for run in runs {
        let sustained =
            run.achieved >= run.rate as f64 * 0.95 && run.seen == run.events && run.drained_in < Duration::from_secs(2);
        let (worker_p99, worker_mean, batch) = WorkerView::during(&run.worker.0, &run.worker.1);
        let worker_p99 = worker_p99.map_or_else(|| "-".to_owned(), |ms| format!("{ms}"));
        println!(
            "| {} | {} | `{}` | {} | {:.0} | {}/{} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {worker_p99} | {worker_mean:.1} | {batch:.1} | {} | {} |",
            cli.transport,
            cli.replicas,
            run.topic,
            run.rate,
            run.achieved,
            run.seen,
            run.events,
            ms(run.visible.value_at_quantile(0.5)),
            ms(run.visible.value_at_quantile(0.9)),
            ms(run.visible.value_at_quantile(0.99)),
            ms(run.visible.max()),
            ms(run.processed_at.value_at_quantile(0.99)),
            if sustained { "yes" } else { "no" },
            if run.exact { "yes" } else { "**no**" },
        );
    }
    println!();
    println!(
        "| transport | replicas | topic | rate (ev/s) | worker µs/ev | daprd µs/ev | Redis µs/ev | PostgreSQL µs/ev | driver µs/ev | worker share | machine busy | steal |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let tick_micros = 1_000_000.0 / 100.0; // CLK_TCK is 100 on Linux
    for run in runs {
        let (a, b) = run.cpu;
        let per_event = |ticks: u64| ticks as f64 * tick_micros / run.events as f64;
        let worker = per_event(b.workers - a.workers);
        let daprd = per_event(b.daprds - a.daprds);
        let redis = per_event(b.redis - a.redis);
        let postgres = per_event(b.postgres.saturating_sub(a.postgres));
        let driver = per_event(b.driver - a.driver);
        let path = worker + daprd + redis + postgres;
        let total = (b.machine.total - a.machine.total).max(1) as f64;
        let busy = (b.machine.busy - a.machine.busy) as f64 / total;
        let steal = (b.machine.steal - a.machine.steal) as f64 / total;
        println!(
            "| {} | {} | `{}` | {} | {worker:.1} | {daprd:.1} | {redis:.1} | {postgres:.1} | {driver:.1} | {:.0} % | {:.0} % | {:.0} % |",
            cli.transport,
            cli.replicas,
            run.topic,
            run.rate,
            if path > 0.0 { worker / path * 100.0 } else { 0.0 },
            busy * 100.0,
            steal * 100.0,
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    sqlx::any::install_default_drivers();
    let redis = Redis::start().await.context("redis-server")?;
    let mut replicas = Vec::with_capacity(cli.replicas);
    for _ in 0..cli.replicas {
        replicas.push(start_replica(&cli, &redis).await?);
    }
    // The poller's one connection, whose backend's CPU is not PostgreSQL's on the path.
    let database = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&cli.database_url).await?;
    let postgres = if cli.database_url.starts_with("postgres") {
        let backend: i32 = sqlx::query("SELECT pg_backend_pid()").fetch_one(&database).await?.try_get(0)?;
        let backend = u32::try_from(backend)?;
        // Only when PostgreSQL runs on this machine (its processes are visible).
        find_postmaster(backend).map(|postmaster| (postmaster, backend))
    } else {
        None
    };
    let processes = Processes {
        workers: replicas.iter().filter_map(|r| r.worker.id()).collect(),
        daprds: replicas.iter().filter_map(|r| r.daprd.pid()).collect(),
        redis: redis.pid().unwrap_or(0),
        postgres,
    };
    let setup = Setup { cli: &cli, replicas: &replicas, processes: &processes, database: &database };
    let mut runs = Vec::new();
    let mut run = 0;
    for topic in &cli.topics {
        // Warm-up, not reported: the topic's stream, daprd's and the
        // worker's first-use costs (connections, prepared statements).
        run_once(&setup, run, topic, 200, 2).await?;
        run += 1;
        for &rate in &cli.rates {
            runs.push(run_once(&setup, run, topic, rate, cli.seconds).await?);
            run += 1;
        }
    }
    print_tables(&cli, &runs);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\n{cores} cores shared by the workers, daprd, Redis, the database and this driver; visible latency reads up to {} ms high (the poll period).",
        cli.poll_ms
    );
    for mut replica in replicas {
        replica.worker.kill().await?;
    }
    Ok(())
}
