//! Publish → committed latency of the customer worker behind the real daprd.
//!
//! Starts a `redis-server`, the worker (`--worker`, in `events` mode on
//! `--database-url`) and daprd (`$DAPRD`) with `deploy/dapr/local`, then for
//! each `--rates` value publishes CloudEvents through daprd's gRPC
//! `PublishEvent` at that steady rate for `--seconds`, each publish started
//! on its own schedule (an open loop: a slow consumer does not slow the
//! producer). An event's latency is its inbox row's `processed_at` (written in
//! the transaction that applies it) minus the moment its publish started, in
//! milliseconds: it includes daprd, Redis, the bulk subscriber's wait
//! (`order.completed`: up to 100 ms) and the database.
//!
//! `--transport streaming` runs the worker with `server.transport: streaming`
//! (it dials daprd's gRPC API; daprd has no app port) instead of the gRPC app
//! channel.
//!
//! A rate is sustained when the publisher kept it (achieved within 5 %) and
//! every event was committed within 2 s of the last publish.
//!
//! `DAPRD=target/daprd/daprd cargo run --release -p eventbus-bench --bin daprd-latency -- --worker target/release/customer-worker --database-url postgres://…`

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use eventbus::testing::daprd::{Daprd, Redis, free_port};
use hdrhistogram::Histogram;
use sqlx::Row;
use tokio::sync::Mutex;

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
    /// `auth.login` (single deliveries) or `order.completed` (bulk subscription).
    #[arg(long, default_value = "auth.login")]
    topic: String,
    /// How daprd delivers to the worker: `grpc` (app channel) or `streaming`.
    #[arg(long, default_value = "grpc")]
    transport: String,
    /// The Dapr resources (pubsub-redis, resiliency, configuration).
    #[arg(long, default_value = "deploy/dapr/local")]
    resources: String,
}

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn payload(topic: &str, run: usize, i: u64) -> serde_json::Value {
    let customer = format!("c-{run}-{}", i % 1000);
    match topic {
        "order.completed" => serde_json::json!({
            "order_id": format!("o-{run}-{i}"), "customer_id": customer, "total_amount": "10.00",
            "currency": "EUR", "completed_at": "2026-11-20T10:00:00Z"
        }),
        _ => serde_json::json!({"customer_id": customer, "login_at": "2026-11-24T08:00:00Z"}),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    sqlx::any::install_default_drivers();
    let redis = Redis::start().await.context("redis-server")?;
    let (app_port, admin_port) = (free_port()?, free_port()?);
    let streaming = cli.transport == "streaming";
    let mut daprd = Daprd::builder("customer-worker")
        .resources(&cli.resources)
        .replace_in_resources("localhost:6379", redis.address());
    if !streaming {
        daprd = daprd.app_port(app_port);
    }
    // With the app channel, the worker listens first; with streaming, daprd's API must be up first.
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
        if let Some(endpoint) = dapr_grpc_endpoint {
            worker.env("CUSTOMER_WORKER__SERVER__DAPR_GRPC_ENDPOINT", endpoint);
        }
        worker.spawn().context("starting the worker")
    };
    let (mut worker, daprd) = if streaming {
        let daprd = daprd.start().await.context("daprd")?;
        (start_worker(Some(daprd.grpc_endpoint()))?, daprd)
    } else {
        let worker = start_worker(None)?;
        (worker, daprd.start().await.context("daprd")?)
    };
    daprd.wait_for_subscriptions(5).await?;
    let database = sqlx::AnyPool::connect(&cli.database_url).await?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "| transport | topic | target rate (ev/s) | achieved (ev/s) | events | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | sustained |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (run, &rate) in cli.rates.iter().enumerate() {
        let events = rate * cli.seconds;
        let published = Arc::new(Mutex::new(HashMap::<String, i64>::with_capacity(events as usize)));
        let channel = tonic::transport::Channel::from_shared(daprd.grpc_endpoint())?.connect().await?;
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(events as usize);
        for i in 0..events {
            let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
            let id = format!("lat-{run}-{i}");
            let event = serde_json::json!({
                "specversion": "1.0", "id": id, "source": "daprd-latency", "type": cli.topic,
                "datacontenttype": "application/json", "data": payload(&cli.topic, run, i),
            });
            let request = dapr::dapr::proto::runtime::v1::PublishEventRequest {
                pubsub_name: "pubsub-redis".into(),
                topic: cli.topic.clone(),
                data: serde_json::to_vec(&event)?,
                data_content_type: "application/cloudevents+json".into(),
                metadata: HashMap::new(),
            };
            let mut api = dapr::dapr::proto::runtime::v1::dapr_client::DaprClient::new(channel.clone());
            let published = published.clone();
            tasks.push(tokio::spawn(async move {
                let at = now_micros();
                api.publish_event(request).await.map(|_| ())?;
                published.lock().await.insert(id, at);
                Ok::<(), tonic::Status>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let publish_seconds = started.elapsed().as_secs_f64();
        let last_publish = Instant::now();
        let prefix = format!("lat-{run}-%");
        let mut committed = Vec::new();
        while last_publish.elapsed() < Duration::from_secs(30) {
            committed = sqlx::query("SELECT event_id, processed_at FROM inbox WHERE event_id LIKE $1")
                .bind(&prefix)
                .fetch_all(&database)
                .await?;
            if committed.len() as u64 >= events {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let drained_in = last_publish.elapsed();
        let published = published.lock().await;
        // Microseconds; the inbox timestamp is whole milliseconds, so each
        // latency reads up to 1 ms low.
        let mut histogram = Histogram::<u64>::new(3)?;
        for row in &committed {
            let id: String = row.try_get(0)?;
            let processed_ms: i64 = row.try_get(1)?;
            if let Some(at) = published.get(&id) {
                histogram.record(u64::try_from(processed_ms * 1000 - at).unwrap_or(0))?;
            }
        }
        if (committed.len() as u64) < events {
            let log = daprd.log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!("{} of {events} committed after 30 s; daprd's last lines:", committed.len());
            for line in tail.into_iter().rev() {
                eprintln!("  {line}");
            }
        }
        let achieved = events as f64 / publish_seconds;
        let sustained =
            achieved >= rate as f64 * 0.95 && committed.len() as u64 == events && drained_in < Duration::from_secs(2);
        let ms = |micros: u64| micros as f64 / 1000.0;
        println!(
            "| {} | {} | {rate} | {achieved:.0} | {}/{events} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            cli.transport,
            cli.topic,
            committed.len(),
            ms(histogram.value_at_quantile(0.5)),
            ms(histogram.value_at_quantile(0.9)),
            ms(histogram.value_at_quantile(0.99)),
            ms(histogram.max()),
            if sustained { "yes" } else { "no" },
        );
    }
    println!(
        "\n{cores} cores; worker, daprd, Redis, the database and this driver share them. Latencies are up to 1 ms low (the inbox stores whole milliseconds)."
    );
    worker.kill().await?;
    Ok(())
}
