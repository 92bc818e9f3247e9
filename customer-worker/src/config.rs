//! Configuration: a YAML file, then environment overrides.
//!
//! Every key is known: an unknown key, a bad cron expression or a bad
//! database URL stops start-up with a message naming the key. Any key can be
//! overridden from the environment as `CUSTOMER_WORKER__<PATH>` with `__`
//! between levels, e.g. `CUSTOMER_WORKER__DATA__DATABASE__URL`.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::contracts::Amount;

/// The configuration used when no `--conf` is given: `configs/config.yaml`,
/// compiled in.
pub const DEFAULT_CONFIG: &str = include_str!("../configs/config.yaml");

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "CUSTOMER_WORKER__";

/// Other names of a key, as `(alias, key)` paths: read from the file and
/// from the environment alike (`CUSTOMER_WORKER__SERVER__GRPC_ADDR` sets
/// `server.app_addr`, whatever the file calls it). Aliases are renamed to
/// their key before anything else, so an override by either name replaces
/// the file's value by either name; a file that sets both names is refused.
pub const ALIASES: &[(&str, &str)] = &[("server.grpc_addr", "server.app_addr")];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub data: DataConfig,
    pub jobs: JobsConfig,
    #[serde(default)]
    pub segments: Vec<SegmentRule>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// `telemetry`: trace export. The OpenTelemetry environment variables, set
/// by operators and by the OpenTelemetry operator alike, override each key
/// (see [`crate::telemetry::Settings`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// An OTLP/gRPC collector, e.g. `http://otel-collector:4317`: each event's
    /// span (a child of the publisher's trace) is exported there. None: no
    /// export. `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` override it.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `service.name` (default `customer-worker`); `OTEL_SERVICE_NAME` overrides it.
    #[serde(default)]
    pub service_name: Option<String>,
    /// More resource attributes (`deployment.environment.name: production`);
    /// `OTEL_RESOURCE_ATTRIBUTES` (`key=value,…`) adds to and overrides them.
    #[serde(default)]
    pub resource_attributes: std::collections::BTreeMap<String, String>,
    /// The sampler, as `OTEL_TRACES_SAMPLER` names them (default
    /// `parentbased_always_on`); `OTEL_TRACES_SAMPLER` overrides it.
    #[serde(default)]
    pub sampler: Option<String>,
    /// The ratio of the `traceidratio` samplers; `OTEL_TRACES_SAMPLER_ARG` overrides it.
    #[serde(default)]
    pub sampler_arg: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// How Dapr delivers events: `grpc` (default), `http` or `streaming`.
    #[serde(default)]
    pub transport: Transport,
    /// The app channel's address, gRPC or HTTP (the sidecar's
    /// `dapr.io/app-port`); not listened on with `streaming`. Also read as
    /// `grpc_addr` (see [`ALIASES`]; the serde alias lets the file alone,
    /// read for the line of an error, say it too).
    #[serde(alias = "grpc_addr")]
    pub app_addr: SocketAddr,
    /// With `streaming`, and for `redrive`: the sidecar's gRPC API, e.g.
    /// `http://127.0.0.1:50001`, `https://dapr:50001` or `dapr:50001?tls=true`
    /// (default: `DAPR_GRPC_ENDPOINT`, else `DAPR_GRPC_PORT`, as the Dapr SDKs).
    #[serde(default)]
    pub dapr_grpc_endpoint: Option<String>,
    /// The CA certificates (PEM) a TLS endpoint is verified against (default:
    /// the system's roots).
    #[serde(default)]
    pub dapr_ca_file: Option<std::path::PathBuf>,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub admin_addr: SocketAddr,
    #[serde(default = "defaults::drain_timeout_secs")]
    pub drain_timeout_secs: u64,
    #[serde(default = "defaults::handler_timeout_secs")]
    pub handler_timeout_secs: u64,
    #[serde(default = "defaults::concurrency_per_topic")]
    pub concurrency_per_topic: usize,
}

/// `server.transport`: the way Dapr delivers events to the consumers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// The gRPC app channel (`--app-protocol grpc`): `AppCallback` on `app_addr`.
    #[default]
    Grpc,
    /// The HTTP app channel (`--app-protocol http`) on `app_addr`.
    Http,
    /// Streaming subscriptions: the worker dials the sidecar's gRPC API
    /// (`DAPR_GRPC_ENDPOINT` / `DAPR_GRPC_PORT`); no app port.
    Streaming,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub database: DatabaseConfig,
    pub eventbus: EventbusConfig,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://user:password@host/db`.
    pub url: String,
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
    /// How long SQLite waits for a lock before failing the event (RETRY).
    #[serde(default = "defaults::busy_timeout_ms")]
    pub busy_timeout_ms: u64,
    /// How long an event waits for a connection before it is answered RETRY
    /// (PostgreSQL down: fail fast rather than hold the sidecar).
    #[serde(default = "defaults::acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
}

impl DatabaseConfig {
    /// The URL with any password replaced, for logs.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .field("busy_timeout_ms", &self.busy_timeout_ms)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .finish()
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((credentials, host)) = rest.rsplit_once('@') else { return url.to_owned() };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventbusConfig {
    pub default_pubsub: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    pub segments: JobConfig,
    pub stats: JobConfig,
    pub cleanup: CleanupConfig,
    /// Rows per batch (keyset paging); the jobs stop between batches on shutdown.
    #[serde(default = "defaults::batch_size")]
    pub batch_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// A 5-field cron expression (UTC), e.g. `*/15 * * * *`.
    pub schedule: String,
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupConfig {
    pub schedule: String,
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// Inbox rows older than this are deleted (redeliveries older than it are no longer deduplicated).
    pub inbox_retention_days: u32,
    pub security_retention_days: u32,
}

/// A segment and the conditions (all of them) a customer must meet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRule {
    pub name: String,
    #[serde(default)]
    pub min_orders: Option<i64>,
    /// In the customer's currency, major units (e.g. `"1000.00"`).
    #[serde(default)]
    pub min_total_spent: Option<String>,
    /// Customers first seen at most this many days ago.
    #[serde(default)]
    pub max_customer_age_days: Option<i64>,
    /// Customers with orders, whose last one is at least this many days old.
    #[serde(default)]
    pub min_days_since_last_order: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "defaults::log_level")]
    pub level: String,
    #[serde(default)]
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: defaults::log_level(), json: false }
    }
}

mod defaults {
    pub(super) fn drain_timeout_secs() -> u64 {
        25
    }
    pub(super) fn handler_timeout_secs() -> u64 {
        // Below the shipped resiliency timeout (15 s): the worker answers first.
        10
    }
    pub(super) fn concurrency_per_topic() -> usize {
        256
    }
    pub(super) fn max_connections() -> u32 {
        8
    }
    pub(super) fn busy_timeout_ms() -> u64 {
        5000
    }
    pub(super) fn acquire_timeout_ms() -> u64 {
        2000
    }
    pub(super) fn batch_size() -> u32 {
        500
    }
    pub(super) fn enabled() -> bool {
        true
    }
    pub(super) fn log_level() -> String {
        "info".into()
    }
}

impl Config {
    /// Reads `path` (or the built-in default), applies the environment, validates.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let text = match path {
            Some(path) => {
                std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?
            }
            None => DEFAULT_CONFIG.to_owned(),
        };
        let source = path.map_or_else(|| "built-in config".to_owned(), |p| p.display().to_string());
        Config::parse(&text, std::env::vars(), &source)
    }

    /// Parses YAML, applies `CUSTOMER_WORKER__…` overrides from `env`, validates.
    ///
    /// An error names the key (`server.app_addr`) and where its value came
    /// from: the environment variable that set it, or the file with the line.
    pub fn parse(text: &str, env: impl IntoIterator<Item = (String, String)>, source: &str) -> anyhow::Result<Config> {
        let mut tree: serde_norway::Value =
            serde_norway::from_str(text).with_context(|| format!("{source}: invalid YAML"))?;
        rename_aliases(&mut tree).with_context(|| format!("{source}: invalid configuration"))?;
        let mut overrides = Vec::new();
        for (key, value) in env {
            let Some(path) = key.strip_prefix(ENV_PREFIX) else { continue };
            let dotted = canonical(&path.split("__").map(str::to_lowercase).collect::<Vec<_>>().join("."));
            let path: Vec<String> = dotted.split('.').map(str::to_owned).collect();
            set_path(&mut tree, &path, &value).with_context(|| format!("environment variable {key}"))?;
            overrides.push((dotted, key));
        }
        let config: Config = match serde_path_to_error::deserialize(tree) {
            Ok(config) => config,
            Err(merged) => {
                // The file on its own gives the line; if it reads, an override broke it.
                let from_file: Result<Config, _> =
                    serde_path_to_error::deserialize(serde_norway::Deserializer::from_str(text));
                if let Err(located) = from_file {
                    bail!("{source}: {}: {}", located.path(), located.inner());
                }
                let key = merged.path().to_string();
                let related = |path: &str| {
                    key == path || path.starts_with(&format!("{key}.")) || key.starts_with(&format!("{path}."))
                };
                match overrides.iter().find(|(path, _)| related(path)) {
                    Some((_, variable)) => bail!("environment variable {variable} ({key}): {}", merged.inner()),
                    None => bail!("{source} with the environment: {key}: {}", merged.inner()),
                }
            }
        };
        config.validate().with_context(|| format!("{source}: invalid configuration"))?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let url = &self.data.database.url;
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!("data.database.url: expected sqlite:… or postgres://…, got {:?}", redact(url));
        }
        if self.data.eventbus.default_pubsub.trim().is_empty() {
            bail!("data.eventbus.default_pubsub: must not be empty");
        }
        for (key, schedule) in [
            ("jobs.segments.schedule", &self.jobs.segments.schedule),
            ("jobs.stats.schedule", &self.jobs.stats.schedule),
            ("jobs.cleanup.schedule", &self.jobs.cleanup.schedule),
        ] {
            parse_cron(schedule).with_context(|| key.to_owned())?;
        }
        if self.jobs.batch_size == 0 {
            bail!("jobs.batch_size: must be at least 1");
        }
        for (index, rule) in self.segments.iter().enumerate() {
            if rule.name.trim().is_empty() {
                bail!("segments[{index}].name: must not be empty");
            }
            if let Some(amount) = &rule.min_total_spent {
                Amount::parse(amount).map_err(|e| anyhow::anyhow!("segments[{index}].min_total_spent: {e}"))?;
            }
        }
        Ok(())
    }
}

/// Parses a 5-field cron expression.
pub fn parse_cron(expression: &str) -> anyhow::Result<croner::Cron> {
    if expression.split_whitespace().count() != 5 {
        bail!("{expression:?} is not a 5-field cron expression (minute hour day month weekday)");
    }
    croner::Cron::from_str(expression)
        .map_err(|e| anyhow::anyhow!("{expression:?} is not a valid cron expression: {e}"))
}

/// The key an alias stands for, or `path` itself.
fn canonical(path: &str) -> String {
    ALIASES.iter().find(|(alias, _)| *alias == path).map_or_else(|| path.to_owned(), |(_, key)| (*key).to_owned())
}

/// Renames every alias of [`ALIASES`] in a parsed file to its key.
fn rename_aliases(tree: &mut serde_norway::Value) -> anyhow::Result<()> {
    for (alias, key) in ALIASES {
        let (section, alias_name) = alias.rsplit_once('.').unwrap_or(("", alias));
        let (_, key_name) = key.rsplit_once('.').unwrap_or(("", key));
        let node = section.split('.').filter(|p| !p.is_empty()).try_fold(&mut *tree, |node, part| node.get_mut(part));
        let Some(serde_norway::Value::Mapping(map)) = node else { continue };
        if let Some(value) = map.remove(alias_name) {
            if map.contains_key(key_name) {
                bail!("{alias} and {key} name the same setting: keep one");
            }
            map.insert(serde_norway::Value::String(key_name.to_owned()), value);
        }
    }
    Ok(())
}

/// Sets `path` in a YAML tree to `value` (parsed as YAML, so numbers and booleans keep their type).
fn set_path(tree: &mut serde_norway::Value, path: &[String], value: &str) -> anyhow::Result<()> {
    let (first, rest) = path.split_first().ok_or_else(|| anyhow::anyhow!("empty key"))?;
    let serde_norway::Value::Mapping(map) = tree else { bail!("{first}: not a section") };
    let key = serde_norway::Value::String(first.clone());
    if rest.is_empty() {
        let parsed = serde_norway::from_str(value).unwrap_or_else(|_| serde_norway::Value::String(value.to_owned()));
        // Keep strings strings: "5005" for an address stays text.
        let parsed = match parsed {
            serde_norway::Value::Mapping(_) | serde_norway::Value::Sequence(_) | serde_norway::Value::Null => {
                serde_norway::Value::String(value.to_owned())
            }
            other => other,
        };
        map.insert(key, parsed);
        return Ok(());
    }
    let child = map.entry(key).or_insert_with(|| serde_norway::Value::Mapping(Default::default()));
    set_path(child, rest, value)
}
