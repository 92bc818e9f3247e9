//! The sidecar load driver: plays daprd against an app over real gRPC.
//!
//! Lists the app's subscriptions, then sends `OnTopicEvent` (or
//! `OnBulkTopicEvent` batches) with realistic CloudEvents (unique ids,
//! `traceparent`, the token when given, `order.completed` payloads) from
//! `--concurrency` tasks over `--connections` HTTP/2 connections, for
//! `--events` events or `--seconds` seconds, after a short warm-up.
//!
//! `--transport http` plays daprd's HTTP app channel instead (structured
//! CloudEvents POSTed on keep-alive HTTP/1.1 connections, one per task), and
//! `--transport streaming` plays daprd's side of streaming subscriptions: it
//! serves the Dapr API on `--addr` (the app dials it) and sends the events
//! down the app's stream, `--concurrency` in flight.
//!
//! Reports events/s, request latency p50/p90/p99/max, the SUCCESS / RETRY /
//! DROP / error counts and, given `--server-pid`, the server's CPU time per
//! event and peak RSS from `/proc`. Output: a table, then one JSON line.
//!
//! `cargo run --release -p eventbus-bench --bin eventbus-load -- --addr 127.0.0.1:5005 --events 20000 --concurrency 16`

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use eventbus::grpc::proto::runtime as pb;
use eventbus::grpc::proto::runtime::app_callback_client::AppCallbackClient;
use eventbus::grpc::proto::runtime::topic_event_bulk_request_entry::Event as BulkEvent;
use eventbus_bench::OrderCompleted;
use hdrhistogram::Histogram;
use tonic::transport::Channel;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Transport {
    Grpc,
    Http,
    Streaming,
}

#[derive(Parser, Clone)]
struct Cli {
    /// How events reach the app.
    #[arg(long, value_enum, default_value = "grpc")]
    transport: Transport,
    /// The app's gRPC address.
    #[arg(long, default_value = "127.0.0.1:5005")]
    addr: SocketAddr,
    /// Events to send (ignored when --seconds is given).
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Send for this long instead of a fixed count.
    #[arg(long)]
    seconds: Option<u64>,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// HTTP/2 connections the requests share.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Events per OnBulkTopicEvent request; 0 sends single OnTopicEvent calls.
    #[arg(long, default_value_t = 0)]
    bulk: usize,
    /// The dapr-api-token to send.
    #[arg(long)]
    token: Option<String>,
    /// The topic (must be subscribed).
    #[arg(long, default_value = "order.completed")]
    topic: String,
    /// The server's pid, for CPU time per event and peak RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A name for this run in the output.
    #[arg(long, default_value = "run")]
    label: String,
    /// Warm-up events, not measured.
    #[arg(long, default_value_t = 500)]
    warmup: u64,
}

#[derive(Default)]
struct Counts {
    success: AtomicU64,
    retry: AtomicU64,
    drop: AtomicU64,
    errors: AtomicU64,
}

/// CPU seconds (user + system) of a process, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// Peak resident set size in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn event(run: &str, n: u64, topic: &str) -> pb::TopicEventRequest {
    let order = OrderCompleted::nth(run, n);
    let mut extensions = prost_types::Struct::default();
    let traceparent = format!("00-{:032x}-{:016x}-01", u128::from(n) * 0x9e37_79b9_7f4a_7c15 + 1, n + 1);
    for (key, value) in [("traceparent", traceparent.as_str()), ("time", "2026-11-20T10:15:00Z")] {
        extensions
            .fields
            .insert(key.into(), prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(value.into())) });
    }
    pb::TopicEventRequest {
        id: format!("load-{run}-{n}"),
        source: "load-driver".into(),
        r#type: "order.completed".into(),
        spec_version: "1.0".into(),
        data_content_type: "application/json".into(),
        data: serde_json::to_vec(&order).unwrap_or_default(),
        topic: topic.into(),
        pubsub_name: String::new(),
        path: String::new(),
        extensions: Some(extensions),
    }
}

struct Target {
    pubsub: String,
    path: String,
}

impl Target {
    /// The pubsub and default route of `topic` among the app's subscriptions.
    fn of(subscriptions: &[pb::TopicSubscription], topic: &str) -> anyhow::Result<Target> {
        let subscription = subscriptions
            .iter()
            .find(|s| s.topic == topic)
            .with_context(|| format!("the app does not subscribe to {topic}"))?;
        Ok(Target {
            pubsub: subscription.pubsub_name.clone(),
            path: subscription.routes.as_ref().map(|r| r.default.clone()).unwrap_or_default(),
        })
    }
}

fn request<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token.and_then(|t| t.parse().ok()) {
        request.metadata_mut().insert("dapr-api-token", token);
    }
    request
}

/// Sends one request (single or bulk) and records its outcome; returns the events it carried.
async fn send(
    client: &mut AppCallbackClient<Channel>,
    cli: &Cli,
    target: &Target,
    run: &str,
    first: u64,
    counts: &Counts,
) -> u64 {
    let token = cli.token.as_deref();
    if cli.bulk == 0 {
        let mut message = event(run, first, &cli.topic);
        message.pubsub_name = target.pubsub.clone();
        message.path = target.path.clone();
        match client.on_topic_event(request(message, token)).await {
            Ok(response) => match response.into_inner().status {
                0 => counts.success.fetch_add(1, Ordering::Relaxed),
                2 => counts.drop.fetch_add(1, Ordering::Relaxed),
                _ => counts.retry.fetch_add(1, Ordering::Relaxed),
            },
            Err(_) => counts.errors.fetch_add(1, Ordering::Relaxed),
        };
        return 1;
    }
    let entries = (first..first + cli.bulk as u64)
        .map(|n| {
            let e = event(run, n, &cli.topic);
            pb::TopicEventBulkRequestEntry {
                entry_id: e.id.clone(),
                content_type: e.data_content_type.clone(),
                metadata: Default::default(),
                event: Some(BulkEvent::CloudEvent(pb::TopicEventCeRequest {
                    id: e.id,
                    source: e.source,
                    r#type: e.r#type,
                    spec_version: e.spec_version,
                    data_content_type: e.data_content_type,
                    data: e.data,
                    extensions: e.extensions,
                })),
            }
        })
        .collect();
    let message = pb::TopicEventBulkRequest {
        id: format!("bulk-{run}-{first}"),
        entries,
        metadata: Default::default(),
        topic: cli.topic.clone(),
        pubsub_name: target.pubsub.clone(),
        r#type: "com.dapr.event.sent".into(),
        path: target.path.clone(),
    };
    match client.on_bulk_topic_event(request(message, token)).await {
        Ok(response) => {
            let statuses = response.into_inner().statuses;
            for status in &statuses {
                match status.status {
                    0 => counts.success.fetch_add(1, Ordering::Relaxed),
                    2 => counts.drop.fetch_add(1, Ordering::Relaxed),
                    _ => counts.retry.fetch_add(1, Ordering::Relaxed),
                };
            }
            // Entries without a status count as RETRY, as daprd does.
            counts.retry.fetch_add((cli.bulk - statuses.len().min(cli.bulk)) as u64, Ordering::Relaxed);
        }
        Err(_) => {
            counts.errors.fetch_add(cli.bulk as u64, Ordering::Relaxed);
        }
    }
    cli.bulk as u64
}

/// A keep-alive HTTP/1.1 connection to the app, as daprd's HTTP channel uses.
struct HttpConnection {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    address: SocketAddr,
}

impl HttpConnection {
    async fn open(address: SocketAddr) -> std::io::Result<Self> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(HttpConnection { stream: tokio::io::BufReader::new(stream), address })
    }

    /// One request on the open connection: the status and the body.
    async fn exchange(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/cloudevents+json\r\ncontent-length: {}\r\n\r\n",
            self.address,
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status =
            line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| invalid("status line"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().map_err(|_| invalid("content-length"))?;
            }
        }
        let mut answer = vec![0; length];
        self.stream.read_exact(&mut answer).await?;
        Ok((status, answer))
    }
}

/// The structured CloudEvent daprd posts to an HTTP app.
fn http_event(run: &str, n: u64, topic: &str, pubsub: &str) -> Vec<u8> {
    let e = event(run, n, topic);
    let data: serde_json::Value = serde_json::from_slice(&e.data).unwrap_or_default();
    let traceparent = format!("00-{:032x}-{:016x}-01", u128::from(n) * 0x9e37_79b9_7f4a_7c15 + 1, n + 1);
    serde_json::to_vec(&serde_json::json!({
        "id": e.id, "source": e.source, "type": e.r#type, "specversion": "1.0",
        "datacontenttype": "application/json", "data": data, "topic": topic, "pubsubname": pubsub,
        "traceparent": traceparent, "time": "2026-11-20T10:15:00Z",
    }))
    .unwrap_or_default()
}

/// The sender of one task: how its requests reach the app.
enum Sender {
    Grpc(AppCallbackClient<Channel>),
    Http(HttpConnection),
    Streaming(Arc<eventbus::testing::TestSidecar<eventbus::testing::DaprApi>>),
}

impl Sender {
    async fn send(&mut self, cli: &Cli, target: &Target, run: &str, first: u64, counts: &Counts) -> u64 {
        let outcome = match self {
            Sender::Grpc(client) => return send(client, cli, target, run, first, counts).await,
            Sender::Http(connection) => {
                let body = http_event(run, first, &cli.topic, &target.pubsub);
                match connection.exchange("POST", &target.path, &body).await {
                    Ok((200, answer)) => serde_json::from_slice::<serde_json::Value>(&answer)
                        .ok()
                        .and_then(|a| a["status"].as_str().map(str::to_owned)),
                    _ => None,
                }
            }
            Sender::Streaming(stub) => {
                let e = event(run, first, &cli.topic);
                let data: serde_json::Value = serde_json::from_slice(&e.data).unwrap_or_default();
                let traceparent =
                    format!("00-{:032x}-{:016x}-01", u128::from(first) * 0x9e37_79b9_7f4a_7c15 + 1, first + 1);
                let event = eventbus::testing::CloudEvent::json(&data)
                    .id(e.id)
                    .event_type(e.r#type)
                    .extension("traceparent", traceparent)
                    .extension("time", "2026-11-20T10:15:00Z");
                let delivery = stub.publish_to(&target.pubsub, &cli.topic, event).await;
                match delivery.ok().and_then(|d| d.attempts.first().copied()) {
                    Some(Ok(eventbus::Outcome::Success)) => Some("SUCCESS".to_owned()),
                    Some(Ok(eventbus::Outcome::Drop)) => Some("DROP".to_owned()),
                    Some(Ok(eventbus::Outcome::Retry)) => Some("RETRY".to_owned()),
                    _ => None,
                }
            }
        };
        match outcome.as_deref() {
            Some("SUCCESS") => counts.success.fetch_add(1, Ordering::Relaxed),
            Some("DROP") => counts.drop.fetch_add(1, Ordering::Relaxed),
            Some(_) => counts.retry.fetch_add(1, Ordering::Relaxed),
            None => counts.errors.fetch_add(1, Ordering::Relaxed),
        };
        1
    }
}

/// What the tasks send through: gRPC clients, the app's HTTP address, or the stub the app streams from.
enum Senders {
    Grpc(Vec<AppCallbackClient<Channel>>),
    Http(SocketAddr),
    Streaming(Arc<eventbus::testing::TestSidecar<eventbus::testing::DaprApi>>),
}

impl Senders {
    async fn for_task(&self, task: usize) -> anyhow::Result<Sender> {
        Ok(match self {
            Senders::Grpc(clients) => Sender::Grpc(clients[task % clients.len()].clone()),
            Senders::Http(address) => Sender::Http(HttpConnection::open(*address).await?),
            Senders::Streaming(stub) => Sender::Streaming(stub.clone()),
        })
    }
}

async fn phase(
    cli: &Arc<Cli>,
    senders: &Senders,
    target: &Arc<Target>,
    run: &str,
    events: u64,
    deadline: Option<Instant>,
) -> (Histogram<u64>, Arc<Counts>, u64) {
    let next = Arc::new(AtomicU64::new(0));
    let counts = Arc::new(Counts::default());
    let per_request = cli.bulk.max(1) as u64;
    let mut tasks = Vec::new();
    for worker in 0..cli.concurrency {
        let Ok(mut sender) = senders.for_task(worker).await else {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let (cli, target, next, counts, run) =
            (cli.clone(), target.clone(), next.clone(), counts.clone(), run.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut sent = 0;
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let first = next.fetch_add(per_request, Ordering::Relaxed);
                if deadline.is_none() && first >= events {
                    break;
                }
                let started = Instant::now();
                sent += sender.send(&cli, &target, &run, first, &counts).await;
                let _ = histogram.record(started.elapsed().as_micros().max(1) as u64);
            }
            (histogram, sent)
        }));
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut sent = 0;
    for task in tasks {
        if let Ok((h, s)) = task.await {
            let _ = histogram.add(h);
            sent += s;
        }
    }
    (histogram, counts, sent)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Arc::new(Cli::parse());
    let (senders, target) = match cli.transport {
        Transport::Grpc => {
            let mut clients = Vec::new();
            for _ in 0..cli.connections.max(1) {
                // One Channel per connection: each holds its own HTTP/2 connection.
                let channel = Channel::from_shared(format!("http://{}", cli.addr))?
                    .connect()
                    .await
                    .context("cannot connect to the app")?;
                clients.push(AppCallbackClient::new(channel));
            }
            let subscriptions = clients[0].list_topic_subscriptions(()).await?.into_inner().subscriptions;
            (Senders::Grpc(clients), Target::of(&subscriptions, &cli.topic)?)
        }
        Transport::Http => {
            let sidecar =
                eventbus::testing::TestSidecar::connect_http(cli.addr).await.context("GET /dapr/subscribe")?;
            (Senders::Http(cli.addr), Target::of(&sidecar.subscriptions(), &cli.topic)?)
        }
        Transport::Streaming => {
            let stub = eventbus::testing::TestSidecar::bind_api(cli.addr).await?.max_attempts(1);
            let streams = stub.wait_for_streams(1).await?;
            let (pubsub, _) = streams.into_iter().next().context("no stream")?;
            (Senders::Streaming(Arc::new(stub)), Target { pubsub, path: "/".into() })
        }
    };
    let target = Arc::new(target);
    let run =
        format!("{}-{}", cli.label, std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis());

    // Warm-up: connections, allocator, caches, database pages.
    phase(&cli, &senders, &target, &format!("{run}-warm"), cli.warmup, None).await;

    let cpu_before = cli.server_pid.and_then(cpu_seconds);
    let started = Instant::now();
    let deadline = cli.seconds.map(|s| started + Duration::from_secs(s));
    let (histogram, counts, sent) = phase(&cli, &senders, &target, &run, cli.events, deadline).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = cli.server_pid.and_then(cpu_seconds);

    let events_per_sec = sent as f64 / elapsed;
    let cpu_us_per_event = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if sent > 0 => Some((after - before) * 1e6 / sent as f64),
        _ => None,
    };
    let rss = cli.server_pid.and_then(peak_rss_mib);
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let (success, retry, drop, errors) = (
        counts.success.load(Ordering::Relaxed),
        counts.retry.load(Ordering::Relaxed),
        counts.drop.load(Ordering::Relaxed),
        counts.errors.load(Ordering::Relaxed),
    );
    eprintln!(
        "{:<28} {:>6} in flight {:>5} bulk | {:>9.0} ev/s | p50 {:>7.3} p90 {:>7.3} p99 {:>7.3} max {:>8.3} ms | ok {} retry {} drop {} err {} | cpu {} us/ev | rss {} MiB",
        cli.label,
        cli.concurrency,
        cli.bulk,
        events_per_sec,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        histogram.max() as f64 / 1000.0,
        success,
        retry,
        drop,
        errors,
        cpu_us_per_event.map_or("-".into(), |c| format!("{c:.1}")),
        rss.map_or("-".into(), |r| format!("{r:.1}")),
    );
    println!(
        "{}",
        serde_json::json!({
            "label": cli.label, "concurrency": cli.concurrency, "connections": cli.connections, "bulk": cli.bulk,
            "events": sent, "seconds": elapsed, "events_per_sec": events_per_sec,
            "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99), "max_ms": histogram.max() as f64 / 1000.0,
            "success": success, "retry": retry, "drop": drop, "errors": errors,
            "server_cpu_us_per_event": cpu_us_per_event, "server_peak_rss_mib": rss,
        })
    );
    Ok(())
}
