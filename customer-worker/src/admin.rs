//! The admin HTTP port: `/healthz` (alive), `/readyz` (database reachable,
//! not draining), `/metrics` (Prometheus).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

#[derive(Clone)]
struct Admin {
    store: Store,
    events: Option<eventbus::server::ServerHandle>,
    metrics: Option<PrometheusHandle>,
    shutdown: CancellationToken,
}

/// The admin routes.
pub fn router(
    store: Store,
    events: Option<eventbus::server::ServerHandle>,
    metrics: Option<PrometheusHandle>,
    shutdown: CancellationToken,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(Admin { store, events, metrics, shutdown })
}

async fn ready(State(admin): State<Admin>) -> (StatusCode, String) {
    if admin.shutdown.is_cancelled() || admin.events.as_ref().is_some_and(|e| e.is_draining()) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining".into());
    }
    match admin.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("database unreachable: {error}")),
    }
}

async fn render_metrics(State(admin): State<Admin>) -> (StatusCode, String) {
    match &admin.metrics {
        Some(handle) => (StatusCode::OK, handle.render()),
        None => (StatusCode::NOT_FOUND, "metrics recorder not installed".into()),
    }
}

/// Serves the admin routes on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let address: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?address, "admin HTTP listening");
    axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}
