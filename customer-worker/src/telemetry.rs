//! The worker's telemetry: logs (text or JSON), OTLP trace export configured
//! by the config file and the standard `OTEL_*` variables, and the
//! Prometheus recorder (histograms with buckets in seconds, HELP text for
//! every metric, `customer_worker_build_info`).

use std::collections::BTreeMap;

use anyhow::Context;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, TelemetryConfig};

/// Trace export as configured: the config file's `telemetry` keys, each
/// overridden by its OpenTelemetry environment variable when that is set.
///
/// | setting | config key | variable | default |
/// |---|---|---|---|
/// | collector | `otlp_endpoint` | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` | none: no export |
/// | `service.name` | `service_name` | `OTEL_SERVICE_NAME` | `customer-worker` |
/// | resource attributes | `resource_attributes` | `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k=v`, added over the file's) | none |
/// | sampler | `sampler`, `sampler_arg` | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `parentbased_always_on` |
///
/// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn export off.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Where spans go; `None`: no export.
    pub endpoint: Option<String>,
    /// `service.name`.
    pub service_name: String,
    /// The other resource attributes.
    pub resource_attributes: BTreeMap<String, String>,
    /// The sampler's name, as `OTEL_TRACES_SAMPLER` spells it.
    pub sampler: String,
    /// The ratio of the `traceidratio` samplers.
    pub sampler_arg: Option<f64>,
}

impl Settings {
    /// The settings from the config and the environment `var` reads.
    pub fn resolve(config: &TelemetryConfig, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .or_else(|| config.otlp_endpoint.clone())
            .filter(|_| !disabled);
        let mut resource_attributes = config.resource_attributes.clone();
        if let Some(attributes) = var("OTEL_RESOURCE_ATTRIBUTES") {
            for pair in attributes.split(',').filter(|p| !p.trim().is_empty()) {
                let (key, value) = pair
                    .split_once('=')
                    .with_context(|| format!("OTEL_RESOURCE_ATTRIBUTES: {pair:?} is not key=value"))?;
                resource_attributes.insert(key.trim().to_owned(), value.trim().to_owned());
            }
        }
        let service_name = var("OTEL_SERVICE_NAME")
            .or_else(|| resource_attributes.remove("service.name"))
            .or_else(|| config.service_name.clone())
            .unwrap_or_else(|| "customer-worker".to_owned());
        resource_attributes.remove("service.name");
        let sampler = var("OTEL_TRACES_SAMPLER")
            .or_else(|| config.sampler.clone())
            .unwrap_or_else(|| "parentbased_always_on".to_owned());
        let sampler_arg = match var("OTEL_TRACES_SAMPLER_ARG") {
            Some(arg) => {
                Some(arg.parse().with_context(|| format!("OTEL_TRACES_SAMPLER_ARG: {arg:?} is not a number"))?)
            }
            None => config.sampler_arg,
        };
        let settings = Settings { endpoint, service_name, resource_attributes, sampler, sampler_arg };
        settings.sampler()?;
        Ok(settings)
    }

    /// The sampler it names.
    pub fn sampler(&self) -> anyhow::Result<Sampler> {
        let ratio = || match self.sampler_arg {
            Some(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
            Some(ratio) => anyhow::bail!("sampler ratio {ratio} is not between 0 and 1"),
            None => Ok(1.0),
        };
        Ok(match self.sampler.as_str() {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
            "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            "parentbased_traceidratio" => Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()?))),
            other => anyhow::bail!(
                "unknown sampler {other:?}: always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio"
            ),
        })
    }
}

/// Installs logging, and OTLP trace export when configured (see
/// [`Settings`]). Keep the returned provider until exit and shut it down
/// then (it flushes).
pub fn init(config: &Config, default_level: &str) -> anyhow::Result<Option<SdkTracerProvider>> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colour only on a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let fmt = if config.log.json { fmt.json().boxed() } else { fmt.boxed() };
    let settings = Settings::resolve(&config.telemetry, |name| std::env::var(name).ok())?;
    let provider = match &settings.endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .with_context(|| format!("OTLP endpoint {endpoint}"))?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(settings.service_name.clone())
                .with_attributes(settings.resource_attributes.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())))
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .with_sampler(settings.sampler()?)
                    .build(),
            )
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
