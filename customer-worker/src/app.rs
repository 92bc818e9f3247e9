//! The worker process: its modes, and what each starts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::config::{Config, Transport};
use crate::consumers::CustomerConsumers;
use crate::jobs::{JobKind, Jobs};
use crate::store::Store;
use crate::writer::Writer;

/// `--mode`: what the process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The scheduled jobs only.
    Cron,
    /// The event consumers (AppCallback gRPC server) only.
    Events,
    /// Both.
    All,
}

impl Mode {
    pub fn runs_events(self) -> bool {
        matches!(self, Mode::Events | Mode::All)
    }
    pub fn runs_cron(self) -> bool {
        matches!(self, Mode::Cron | Mode::All)
    }
}

/// The eventbus server with the worker's consumers (and the Dapr job
/// triggers), as `events` mode and `replay` use it.
pub fn event_server(
    config: &Config,
    store: &Store,
    jobs: &Jobs,
    shutdown: &CancellationToken,
) -> anyhow::Result<eventbus::Server> {
    let mut builder = eventbus::Server::builder()
        .default_pubsub(config.data.eventbus.default_pubsub.clone())
        .timeout(Duration::from_secs(config.server.handler_timeout_secs))
        .concurrency_limit(config.server.concurrency_per_topic)
        .drain_timeout(Duration::from_secs(config.server.drain_timeout_secs))
        .consumers(Arc::new(CustomerConsumers::new(Writer::start(store.clone()))));
    // daprd dead-letters without a reason: the worker keeps it for `redrive`.
    let drops = store.clone();
    builder = builder.on_drop(move |dropped| {
        let (store, dropped) = (drops.clone(), dropped.clone());
        tokio::spawn(async move {
            if let Err(error) = store.record_drop(&dropped.topic, &dropped.id, &dropped.reason).await {
                tracing::warn!(event.id = %dropped.id, topic = %dropped.topic, %error, "the drop reason was not kept");
            }
        });
    });
    let probe_store = store.clone();
    builder = builder.readiness(move || {
        let store = probe_store.clone();
        async move { store.ping().await.map_err(|e| format!("database unreachable: {e}")) }
    });
    for kind in JobKind::ALL {
        let jobs = jobs.clone();
        let cancel = shutdown.clone();
        builder = builder.job(kind.name(), move |_| {
            let jobs = jobs.clone();
            let cancel = cancel.clone();
            async move { jobs.run(kind, &cancel).await.map(|_| ()).map_err(eventbus::HandlerError::transient) }
        });
    }
    builder.build().context("invalid event subscriptions")
}

/// A started worker: where it listens and how to stop it.
pub struct Running {
    /// The app channel's address (gRPC or HTTP), in `events` and `all`
    /// modes; `None` with streaming subscriptions.
    pub app_addr: Option<SocketAddr>,
    /// The admin HTTP address.
    pub admin_addr: SocketAddr,
    /// Whether the job scheduler runs.
    pub scheduler: bool,
    shutdown: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("app_addr", &self.app_addr)
            .field("admin_addr", &self.admin_addr)
            .field("scheduler", &self.scheduler)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Asks everything to stop (as SIGTERM does).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// The token that stops everything when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until every part has stopped; the first error wins.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined.context("worker task panicked").and_then(|r| r);
            if let Err(error) = result {
                // One part failing stops the others.
                self.shutdown.cancel();
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Starts what `mode` names, on the configured addresses.
pub async fn start(config: Config, mode: Mode, metrics: Option<PrometheusHandle>) -> anyhow::Result<Running> {
    tracing::info!(?mode, database = %config.data.database.redacted_url(), "starting customer-worker");
    let store = Store::connect(&config.data.database).await?;
    let shutdown = CancellationToken::new();
    let jobs = Jobs::new(store.clone(), config.clone())?;
    let mut tasks = JoinSet::new();

    let mut app_addr = None;
    let mut events_handle = None;
    if mode.runs_events() {
        let server = event_server(&config, &store, &jobs, &shutdown)?;
        events_handle = Some(server.handle());
        let signal = shutdown.clone();
        let stopped = async move { signal.cancelled().await };
        let transport = config.server.transport;
        if transport == Transport::Streaming {
            let endpoint = dapr_endpoint(&config);
            tracing::info!(endpoint = endpoint.address(), "events by streaming subscriptions");
            tasks.spawn(async move {
                let transport = eventbus::Transport::streaming(endpoint);
                server.serve(transport).with_graceful_shutdown(stopped).await.context("streaming subscriptions failed")
            });
        } else {
            let address = config.server.app_addr;
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("server.app_addr: cannot listen on {address}"))?;
            app_addr = Some(listener.local_addr()?);
            let transport = match transport {
                Transport::Http => eventbus::Transport::http_listener(listener),
                _ => eventbus::Transport::grpc_listener(listener),
            };
            tasks.spawn(async move {
                server.serve(transport).with_graceful_shutdown(stopped).await.context("app channel server failed")
            });
        }
    }
    if mode.runs_cron() {
        let cancel = shutdown.clone();
        tasks.spawn(jobs.clone().schedule(cancel));
    }

    let listener = TcpListener::bind(config.server.admin_addr)
        .await
        .with_context(|| format!("server.admin_addr: cannot listen on {}", config.server.admin_addr))?;
    let admin_addr = listener.local_addr()?;
    let router = admin::router(store, events_handle, metrics, shutdown.clone());
    let signal = shutdown.clone();
    tasks.spawn(async move { admin::serve(listener, router, signal).await.context("admin HTTP server failed") });

    Ok(Running { app_addr, admin_addr, scheduler: mode.runs_cron(), shutdown, tasks })
}

/// The sidecar's gRPC API: `server.dapr_grpc_endpoint`, else where the Dapr
/// SDKs look (`DAPR_GRPC_ENDPOINT`, `DAPR_GRPC_PORT`), with `DAPR_API_TOKEN`;
/// TLS verified against `server.dapr_ca_file` when set.
pub fn dapr_endpoint(config: &Config) -> eventbus::sidecar::DaprEndpoint {
    let mut endpoint = eventbus::sidecar::DaprEndpoint::from_env();
    if let Some(address) = &config.server.dapr_grpc_endpoint {
        endpoint = endpoint.with_address(address.clone());
    }
    match &config.server.dapr_ca_file {
        Some(ca_file) => endpoint.ca_file(ca_file),
        None => endpoint,
    }
}
