//! The worker's telemetry: logs (text or JSON), OTLP traces when
//! `telemetry.otlp_endpoint` is set, and the Prometheus recorder
//! (histograms with buckets in seconds, HELP text for every metric,
//! `customer_worker_build_info`).

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Config;

/// Installs logging, and OTLP trace export when configured. Keep the
/// returned provider until exit and shut it down then (it flushes).
pub fn init(config: &Config, default_level: &str) -> anyhow::Result<Option<SdkTracerProvider>> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colour only on a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let fmt = if config.log.json { fmt.json().boxed() } else { fmt.boxed() };
    let provider = match &config.telemetry.otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .with_context(|| format!("telemetry.otlp_endpoint: {endpoint}"))?;
            let resource = opentelemetry_sdk::Resource::builder().with_service_name("customer-worker").build();
            Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
        }
        None => None,
    };
    let traces = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("customer-worker")));
    tracing_subscriber::registry().with(filter).with(fmt).with(traces).init();
    Ok(provider)
}
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Events per group commit.
const BATCH_SIZES: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];

/// Installs the process-wide recorder and describes the worker's metrics.
/// Call it before building the event server (which registers its metrics).
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), eventbus::middleware::LATENCY_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full("customer_worker_commit_batch_size".into()), BATCH_SIZES))
        .context("metric buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    describe();
    Ok(handle)
}

fn describe() {
    metrics::describe_counter!(
        "customer_worker_job_runs_total",
        Unit::Count,
        "Scheduled job runs, by job name and outcome (success, skipped, failure)."
    );
    metrics::describe_histogram!(
        "customer_worker_job_duration_seconds",
        Unit::Seconds,
        "Time per job run, by job name."
    );
    metrics::describe_histogram!("customer_worker_commit_batch_size", Unit::Count, "Events written per group commit.");
    metrics::describe_gauge!("customer_worker_build_info", "The worker's version, as a label; always 1.");
    metrics::gauge!("customer_worker_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}
