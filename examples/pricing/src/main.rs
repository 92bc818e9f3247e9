//! Run: `cargo run -p example-pricing` (serves on 127.0.0.1:5005, or
//! `APP_PORT`), next to `dapr run --app-id pricing --app-port 5005 --app-protocol grpc`.
//! Schedule the nightly job with the Dapr Jobs API, name `nightly-repricing`,
//! data `{"percent": 5}`.

use example_pricing::{PriceBook, server};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let port: u16 =
        std::env::var("APP_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(eventbus::server::DEFAULT_PORT);
    server(PriceBook::default())?.serve(eventbus::Transport::grpc(([127, 0, 0, 1], port).into())).await?;
    Ok(())
}
