//! The gRPC fuzzer: hostile and random requests on every RPC of the running
//! worker. Every event is valid or invalid by construction: a valid one
//! (customer `ok-…`) must be answered SUCCESS, an invalid one (customer
//! `bad-…`, or no way to read a customer at all) DROP; the other RPCs must
//! be answered (any status). Afterwards the process must be alive, and no
//! row may come from an invalid event.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;
use eventbus::grpc::proto::common::InvokeRequest;
use eventbus::grpc::proto::runtime as pb;
use eventbus::grpc::proto::runtime::app_callback_client::AppCallbackClient;
use eventbus::grpc::proto::runtime::app_callback_health_check_client::AppCallbackHealthCheckClient;
use pb::topic_event_response::TopicEventResponseStatus as Status;
use sqlx::Row;
use tokio::sync::Mutex;

use crate::workload::{Event, Rng};
use crate::{Cli, Worker, bulk_request, bulk_statuses, channel, topic_request};

const CURRENCIES: [(&str, u32); 5] = [("EUR", 2), ("USD", 2), ("JPY", 0), ("KWD", 3), ("CHF", 2)];

fn amount(minor: u64, exponent: u32) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let divisor = 10u64.pow(exponent);
    format!("{}.{:0width$}", minor / divisor, minor % divisor, width = exponent as usize)
}

fn deep(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// One event: valid, or broken in one of many ways. `alone`: it is not part
/// of a bulk request (only then can it be about the size of the limit).
fn event(rng: &mut Rng, n: u64, alone: bool) -> Event {
    let id = format!("fuzz-{n}");
    let (currency, exponent) = CURRENCIES[(n % 5) as usize];
    let customer = format!("ok-{}", n % 5 + 5 * rng.below(20));
    let valid_order = serde_json::json!({
        "order_id": format!("o-fuzz-{n}"), "customer_id": customer,
        "total_amount": amount(1 + rng.below(1_000_000), exponent), "currency": currency,
        "completed_at": "2026-11-20T10:00:00Z",
    });
    let topic = "order.completed";
    let json = |value: serde_json::Value, valid: bool| Event {
        id: id.clone(),
        topic,
        content_type: "application/json".into(),
        data: value.to_string().into_bytes(),
        valid,
    };
    if rng.chance(40) {
        return json(valid_order, true);
    }
    let mut bad = valid_order;
    bad["customer_id"] = format!("bad-{n}").into();
    match rng.below(16) {
        0 => bad["total_amount"] = format!("-{}", amount(1 + rng.below(1000), exponent)).into(),
        1 => bad["currency"] = ["ZZZ", "QQQ", "EURO", "", "eur", "XAU", "E\u{0}R"][rng.below(7) as usize].into(),
        2 => bad["customer_id"] = format!("bad-\u{0}{n}").into(),
        3 => bad["order_id"] = "x".repeat(201 + rng.below(5000) as usize).into(),
        4 => {
            bad["total_amount"] =
                ["1e5", "0.0001", "99999999999999999999", "NaN", "12,50", " "][rng.below(6) as usize].into()
        }
        5 => bad["total_amount"] = serde_json::json!({"units": 5}),
        6 => {
            bad.as_object_mut().map(|o| o.remove("completed_at"));
        }
        7 => bad["completed_at"] = "yesterday".into(),
        8 => {
            // Deep nesting where a value is expected (in an unknown field it
            // would be valid: unknown fields are ignored, at any depth).
            bad.as_object_mut().map(|o| o.remove("total_amount"));
            let mut text = bad.to_string();
            let depth = 100 + rng.below(if alone { 20_000 } else { 1_000 }) as usize;
            text.insert_str(1, &format!("\"total_amount\":{},", deep(depth)));
            return Event { id, topic, content_type: "application/json".into(), data: text.into_bytes(), valid: false };
        }
        9 => {
            let data = (0..rng.below(2000)).map(|_| rng.below(256) as u8).collect();
            return Event { id, topic, content_type: "application/json".into(), data, valid: false };
        }
        10 => {
            let data = (0..rng.below(500)).map(|_| rng.below(256) as u8).collect();
            let content_type =
                ["application/protobuf", "text/plain", "", "application/octet-stream"][rng.below(4) as usize];
            return Event { id, topic, content_type: content_type.into(), data, valid: false };
        }
        11 => return Event { id: String::new(), ..json(bad, false) },
        12 => return Event { id: "i".repeat(300 + rng.below(100_000) as usize), ..json(bad, false) },
        13 if alone => {
            // Just over the 4 MiB limit: dropped as oversize, not retried.
            bad["padding"] = "p".repeat(4 * 1024 * 1024 + rng.below(4096) as usize).into();
        }
        14 => bad["customer_id"] = format!("bad-{n}-\u{7}").into(),
        _ => bad["customer_id"] = serde_json::Value::Null,
    }
    json(bad, false)
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    events: AtomicU64,
    wrong_answers: AtomicU64,
    unanswered: AtomicU64,
}

pub(crate) async fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut worker = Worker::start(&cli.worker, &cli.database_url).await?;
    let counts = Arc::new(Counts::default());
    let codes = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let mut tasks = Vec::new();
    let per_task = cli.requests.div_ceil(8) as u64;
    for task in 0..8u64 {
        let (counts, codes, port) = (counts.clone(), codes.clone(), worker.port);
        let seed = cli.seed * 1000 + task;
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed);
            let Some(channel) = channel(port).await else { return };
            let mut app = AppCallbackClient::new(channel.clone()).max_encoding_message_size(64 << 20);
            let mut health = AppCallbackHealthCheckClient::new(channel);
            for i in 0..per_task {
                let n = seed * 1_000_000 + i;
                counts.requests.fetch_add(1, Ordering::Relaxed);
                let code = match rng.below(20) {
                    0..=9 => {
                        let event = event(&mut rng, n, true);
                        counts.events.fetch_add(1, Ordering::Relaxed);
                        match app.on_topic_event(topic_request(&event)).await {
                            Ok(r) => {
                                check(&counts, &[&event], &[r.into_inner().status]);
                                "OnTopicEvent ok".to_owned()
                            }
                            Err(status) => format!("OnTopicEvent {:?}", status.code()),
                        }
                    }
                    10..=13 => {
                        // 10,000 entries in about one bulk request of 200.
                        let sizes = if rng.chance(3) { 7 } else { 6 };
                        let size = [0, 1, 2, 17, 100, 1000, 10_000][rng.below(sizes) as usize];
                        let events: Vec<Event> = (0..size).map(|k| event(&mut rng, n * 100_000 + k, false)).collect();
                        counts.events.fetch_add(size, Ordering::Relaxed);
                        match app.on_bulk_topic_event(bulk_request(&events)).await {
                            Ok(r) => {
                                let statuses = bulk_statuses(r.into_inner(), events.len());
                                let events: Vec<&Event> = events.iter().collect();
                                check(&counts, &events, &statuses);
                                "OnBulkTopicEvent ok".to_owned()
                            }
                            Err(status) => format!("OnBulkTopicEvent {:?}", status.code()),
                        }
                    }
                    14 => {
                        let method: String =
                            (0..rng.below(40)).map(|_| char::from(b' ' + rng.below(95) as u8)).collect();
                        let request = InvokeRequest {
                            method,
                            data: Some(prost_types::Any {
                                type_url: String::new(),
                                value: vec![0; rng.below(10_000) as usize],
                            }),
                            content_type: "application/json".into(),
                            http_extension: None,
                        };
                        format!(
                            "OnInvoke {:?}",
                            app.on_invoke(request).await.map_or_else(|s| s.code(), |_| tonic::Code::Ok)
                        )
                    }
                    15 => {
                        let request = pb::BindingEventRequest {
                            name: format!("binding-{}", rng.below(5)),
                            data: vec![1; rng.below(1000) as usize],
                            metadata: Default::default(),
                        };
                        format!(
                            "OnBindingEvent {:?}",
                            app.on_binding_event(request).await.map_or_else(|s| s.code(), |_| tonic::Code::Ok)
                        )
                    }
                    16 => {
                        let name = format!("job-{}", rng.below(5));
                        let request = pb::JobEventRequest {
                            name: name.clone(),
                            data: None,
                            method: format!("job/{name}"),
                            content_type: String::new(),
                            http_extension: None,
                        };
                        format!(
                            "OnJobEvent {:?}",
                            app.on_job_event(request).await.map_or_else(|s| s.code(), |_| tonic::Code::Ok)
                        )
                    }
                    17 => format!(
                        "ListTopicSubscriptions {:?}",
                        app.list_topic_subscriptions(()).await.map_or_else(|s| s.code(), |_| tonic::Code::Ok)
                    ),
                    18 => format!(
                        "ListInputBindings {:?}",
                        app.list_input_bindings(()).await.map_or_else(|s| s.code(), |_| tonic::Code::Ok)
                    ),
                    _ => format!(
                        "HealthCheck {:?}",
                        health.health_check(()).await.map_or_else(|s| s.code(), |_| tonic::Code::Ok)
                    ),
                };
                if code.contains("Unavailable") || code.contains("Unknown") && !code.starts_with("OnBulk") {
                    counts.unanswered.fetch_add(1, Ordering::Relaxed);
                }
                *codes.lock().await.entry(code).or_default() += 1;
            }
        }));
    }
    let all = async {
        for task in tasks {
            let _ = task.await;
        }
    };
    tokio::pin!(all);
    let mut crashed = false;
    loop {
        tokio::select! {
            () = &mut all => break,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                worker.sample_rss();
                crashed |= worker.crashed();
            }
        }
    }
    worker.sample_rss();
    crashed |= worker.crashed();

    let pool = sqlx::AnyPool::connect(&cli.database_url).await?;
    let stray_customers: i64 = sqlx::query("SELECT COUNT(*) FROM customers WHERE customer_id NOT LIKE 'ok-%'")
        .fetch_one(&pool)
        .await?
        .try_get(0)?;
    let stray_orders: i64 =
        sqlx::query("SELECT COUNT(*) FROM orders WHERE customer_id NOT LIKE 'ok-%' OR order_id NOT LIKE 'o-fuzz-%'")
            .fetch_one(&pool)
            .await?
            .try_get(0)?;
    let codes = codes.lock().await;
    let mut codes: Vec<_> = codes.iter().collect();
    codes.sort();
    println!(
        "scenario=fuzz requests={} events={} wrong_answers={} unanswered={} rows_from_invalid_events={} crashed={crashed} peak_rss_mib={:.1}",
        counts.requests.load(Ordering::Relaxed),
        counts.events.load(Ordering::Relaxed),
        counts.wrong_answers.load(Ordering::Relaxed),
        counts.unanswered.load(Ordering::Relaxed),
        stray_customers + stray_orders,
        worker.peak_rss_kib as f64 / 1024.0,
    );
    for (code, count) in codes {
        println!("  {code}: {count}");
    }
    if crashed || stray_customers + stray_orders > 0 || counts.wrong_answers.load(Ordering::Relaxed) > 0 {
        bail!("the fuzzer found a problem");
    }
    Ok(())
}

/// Valid events must be SUCCESS, invalid ones DROP.
fn check(counts: &Counts, events: &[&Event], statuses: &[i32]) {
    for (event, status) in events.iter().zip(statuses) {
        let want = if event.valid { Status::Success } else { Status::Drop };
        if Status::try_from(*status).ok() != Some(want) {
            let wrong = counts.wrong_answers.fetch_add(1, Ordering::Relaxed);
            if wrong < 10 {
                let data = String::from_utf8_lossy(&event.data);
                let shown: String = data.chars().take(200).collect();
                eprintln!("  wrong answer {status} for valid={} id={:.40} {shown}", event.valid, event.id);
            }
        }
    }
}
