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

/// The event server's readiness when it runs (not draining, and its probe,
/// the database ping, passes: what daprd's app health check also asks, and
/// what `eventbus_ready` reports), else the database ping alone.
async fn ready(State(admin): State<Admin>) -> (StatusCode, String) {
    if admin.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining".into());
    }
    let ready = match &admin.events {
        Some(events) => events.ready().await,
        None => admin.store.ping().await.map_err(|error| format!("database unreachable: {error}")),
    };
    match ready {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
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
