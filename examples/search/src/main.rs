//! Run: `cargo run -p example-search` (serves on 127.0.0.1:5005, or
//! `APP_PORT`), next to `dapr run --app-id search --app-port 5005 --app-protocol grpc`.

use example_search::{SearchIndex, server};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let port: u16 =
        std::env::var("APP_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(eventbus::server::DEFAULT_PORT);
    server(SearchIndex::default())?.serve(eventbus::Transport::grpc(([127, 0, 0, 1], port).into())).await?;
    Ok(())
}
