//! `/metrics` exposes event counts by topic and outcome, handler latency and job runs.
#![allow(clippy::unwrap_used)]

mod common;

use common::{completed, config, databases, get};
use customer_worker::app::{self, Mode};
use eventbus::testing::{CloudEvent, TestSidecar};

#[tokio::test]
async fn prometheus_metrics_count_events_and_jobs() {
    // This test binary owns the process-wide recorder.
    let handle = customer_worker::telemetry::install_recorder().unwrap();
    let db = databases().await.remove(0);
    let running = app::start(config(&db), Mode::Events, Some(handle)).await.unwrap();
    let sidecar = TestSidecar::connect(running.app_addr.unwrap()).await.unwrap().pubsub("pubsub-redis").max_attempts(1);
    sidecar.publish("order.completed", completed("o-1", "c-1", "1.00", "2026-11-20T10:00:00Z")).await.unwrap();
    sidecar.publish("order.completed", CloudEvent::json(&serde_json::json!({"bad": true}))).await.unwrap();
    sidecar.trigger_job("stats", b"").await.unwrap();

    let (_, body) = get(running.admin_addr, "/metrics").await.unwrap();
    for expected in [
        r#"eventbus_events_total{pubsub="pubsub-redis",topic="order.completed",outcome="success",reason="handled"} 1"#,
        r#"eventbus_events_total{pubsub="pubsub-redis",topic="order.completed",outcome="drop",reason="decode"} 1"#,
        // Two single deliveries: two handler calls.
        r#"eventbus_handler_duration_seconds_count{pubsub="pubsub-redis",topic="order.completed"} 2"#,
        r#"customer_worker_job_runs_total{name="stats",outcome="success"} 1"#,
        // Histograms with buckets in seconds, HELP text, build info.
        r#"eventbus_handler_duration_seconds_bucket{pubsub="pubsub-redis",topic="order.completed",le="0.1"}"#,
        "# TYPE eventbus_handler_duration_seconds histogram",
        "# HELP eventbus_events_total Events answered",
        "# HELP customer_worker_job_runs_total Scheduled job runs",
        r#"customer_worker_build_info{version=""#,
        r#"eventbus_build_info{version=""#,
    ] {
        assert!(body.contains(expected), "missing {expected} in:\n{body}");
    }
    // Readiness is reported when asked.
    get(running.admin_addr, "/readyz").await.unwrap();
    let (_, body) = get(running.admin_addr, "/metrics").await.unwrap();
    for name in shipped_monitoring_metrics() {
        assert!(
            body.contains(&format!("\n{name}")),
            "the shipped alerts or dashboard use {name}, which the worker does not export:\n{body}"
        );
    }
    running.shutdown();
    running.wait().await.unwrap();
}

/// The worker's and the library's metrics the chart's alert rules and
/// dashboard read (their `_bucket`, `_sum` and `_count` series by the
/// histogram's name). Two only exist once they happen, and are checked by the
/// library's tests: publish attempts and stream reconnects (the worker in
/// this test neither publishes nor streams).
fn shipped_monitoring_metrics() -> std::collections::BTreeSet<String> {
    const ONCE_THEY_HAPPEN: [&str; 2] = ["eventbus_publish_attempts_total", "eventbus_stream_reconnects_total"];
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/helm/customer-worker/files");
    let text = ["alerts.yaml", "dashboard.json"]
        .map(|file| std::fs::read_to_string(format!("{chart}/{file}")).unwrap())
        .join("\n");
    let mut names = std::collections::BTreeSet::new();
    for (start, _) in text.match_indices("eventbus_").chain(text.match_indices("customer_worker_")) {
        let name: String =
            text[start..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit()).collect();
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .fold(name, |n, suffix| n.strip_suffix(suffix).map_or(n.clone(), str::to_owned));
        if !ONCE_THEY_HAPPEN.contains(&name.as_str()) {
            names.insert(name);
        }
    }
    assert!(names.len() >= 6, "{names:?}");
    names
}
