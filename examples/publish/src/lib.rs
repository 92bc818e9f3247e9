//! Publish: the producer side of the examples. Sends one JSON event through
//! the Dapr sidecar's publish API ([`eventbus::publisher::DaprPublisher`]).

use eventbus::publisher::{Message, Publisher};

/// Publishes `data` (JSON text) to `topic` on `pubsub`, with optional
/// `key=value` metadata (e.g. `ttlInSeconds=60`).
pub async fn publish(
    publisher: &impl Publisher,
    pubsub: &str,
    topic: &str,
    data: &str,
    metadata: &[String],
) -> anyhow::Result<()> {
    let value: serde_json::Value =
        serde_json::from_str(data).map_err(|e| anyhow::anyhow!("the event data is not JSON: {e}"))?;
    let mut message = Message::json(pubsub, topic, &value)?;
    for entry in metadata {
        let (key, value) =
            entry.split_once('=').ok_or_else(|| anyhow::anyhow!("metadata {entry:?} is not key=value"))?;
        message = message.metadata(key, value);
    }
    publisher.publish(message).await?;
    Ok(())
}
