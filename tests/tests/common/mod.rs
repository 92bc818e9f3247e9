//! A real server on 127.0.0.1:0 and a test sidecar talking to it.
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod daprd;

use std::net::SocketAddr;

use eventbus::server::ServerHandle;
use eventbus::testing::TestSidecar;
use eventbus::{Server, ServerBuilder};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) struct App {
    pub address: SocketAddr,
    pub handle: ServerHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), eventbus::Error>>>,
}

/// Builds and serves on an ephemeral loopback port.
pub(crate) async fn start(builder: ServerBuilder) -> App {
    start_server(builder.build().expect("valid server")).await
}

pub(crate) async fn start_server(server: Server) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let handle = server.handle();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(eventbus::Transport::grpc_listener(listener)).with_graceful_shutdown(async {
        let _ = stopped.await;
    }));
    App { address, handle, stop: Some(stop), task: Some(task) }
}

/// A builder that ignores the environment's token.
pub(crate) fn builder() -> ServerBuilder {
    Server::builder().api_token(None).default_pubsub("pubsub")
}

impl App {
    pub(crate) async fn sidecar(&self) -> TestSidecar {
        TestSidecar::connect(self.address).await.expect("sidecar connects")
    }

    /// Sends the shutdown signal; the server starts draining.
    pub(crate) fn signal_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits until the server is draining (it flips as soon as the signal is seen).
    pub(crate) async fn until_draining(&self) {
        while !self.handle.is_draining() {
            tokio::task::yield_now().await;
        }
    }

    /// Waits for `serve` to return.
    pub(crate) async fn join(&mut self) -> Result<(), eventbus::Error> {
        self.task.take().unwrap().await.expect("server task")
    }

    pub(crate) async fn stop(mut self) -> Result<(), eventbus::Error> {
        self.signal_shutdown();
        self.join().await
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq)]
pub(crate) struct Order {
    pub order_id: String,
    pub total: i64,
}

pub(crate) fn order(id: &str) -> serde_json::Value {
    serde_json::json!({"order_id": id, "total": 1250})
}
