//! Run: `cargo run -p example-publish -- order.created '{"order_id":"o-1","items":[{"sku":"sku-apple","quantity":2}]}'`
//! with a sidecar running (`dapr run --app-id publisher --dapr-grpc-port 50001`);
//! the sidecar address comes from `DAPR_GRPC_ENDPOINT` or `DAPR_GRPC_PORT`, or `--sidecar`.

use clap::Parser;
use eventbus::publisher::DaprPublisher;

#[derive(Parser)]
#[command(about = "Publishes one JSON event through the Dapr sidecar.")]
struct Cli {
    /// The topic.
    topic: String,
    /// The event data, as JSON.
    data: String,
    /// The pub/sub component.
    #[arg(long, default_value = "pubsub-redis")]
    pubsub: String,
    /// The sidecar's gRPC address (default: from the Dapr environment variables).
    #[arg(long)]
    sidecar: Option<String>,
    /// Publish metadata, `key=value`; repeatable.
    #[arg(long = "metadata")]
    metadata: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let publisher = match cli.sidecar {
        Some(address) => DaprPublisher::connect_to(address).await?,
        None => DaprPublisher::connect().await?,
    };
    example_publish::publish(&publisher, &cli.pubsub, &cli.topic, &cli.data, &cli.metadata).await?;
    println!("published to {}/{}", cli.pubsub, cli.topic);
    Ok(())
}
