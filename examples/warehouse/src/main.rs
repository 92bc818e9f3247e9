//! Run: `cargo run -p example-warehouse` (serves the AppCallback API on
//! 127.0.0.1:5005, or `APP_PORT`), then start a sidecar next to it:
//! `dapr run --app-id warehouse --app-port 5005 --app-protocol grpc`.

use example_warehouse::{Warehouse, server};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let port: u16 =
        std::env::var("APP_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(eventbus::server::DEFAULT_PORT);
    let warehouse = Warehouse::with_stock([("sku-apple", 100), ("sku-pear", 20)]);
    server(warehouse)?.serve(eventbus::Transport::grpc(([127, 0, 0, 1], port).into())).await?;
    Ok(())
}
