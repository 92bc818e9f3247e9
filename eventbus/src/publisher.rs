//! Publishing events, for services that emit them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// An event to publish.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// The pub/sub component.
    pub pubsub: String,
    /// The topic.
    pub topic: String,
    /// The content type of `data`.
    pub content_type: String,
    /// The payload.
    pub data: Bytes,
    /// Publish metadata (`ttlInSeconds`, `rawPayload`, `cloudevent.id`, …).
    pub metadata: HashMap<String, String>,
}

impl Message {
    /// A JSON message.
    pub fn json<T: serde::Serialize>(
        pubsub: impl Into<String>,
        topic: impl Into<String>,
        data: &T,
    ) -> Result<Self, PublishError> {
        let data = serde_json::to_vec(data).map_err(PublishError::Encode)?;
        Ok(Message {
            pubsub: pubsub.into(),
            topic: topic.into(),
            content_type: "application/json".into(),
            data: data.into(),
            metadata: HashMap::new(),
        })
    }

    /// Adds a metadata entry.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The payload could not be encoded.
    #[error("cannot encode the event as JSON")]
    Encode(#[source] serde_json::Error),
    /// The sidecar could not be reached.
    #[error("cannot reach the Dapr sidecar at {address}")]
    Connect {
        /// Where the sidecar was looked for.
        address: String,
        /// Why the connection failed.
        #[source]
        source: dapr::error::Error,
    },
    /// The sidecar refused the event or the call failed.
    #[error("publish to {topic} through the Dapr sidecar failed")]
    Sidecar {
        /// The topic.
        topic: String,
        /// The sidecar's error.
        #[source]
        source: dapr::error::Error,
    },
}

/// Publishes events. [`DaprPublisher`] goes through the sidecar;
/// [`InMemoryPublisher`] records them for tests.
///
/// ```
/// use eventbus::publisher::{InMemoryPublisher, Message, Publisher};
///
/// # tokio_test_block_on(async {
/// let publisher = InMemoryPublisher::default();
/// publisher.publish(Message::json("pubsub", "order.created", &serde_json::json!({"order_id": "o-1"})).unwrap()).await.unwrap();
/// assert_eq!(publisher.published()[0].topic, "order.created");
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[async_trait::async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes one message.
    async fn publish(&self, message: Message) -> Result<(), PublishError>;
}

/// Where `dapr::Client::new` looks for the sidecar: `DAPR_GRPC_ENDPOINT`, else
/// `DAPR_GRPC_PORT` on loopback, else port 50001 (for error messages).
fn sidecar_address_from_env() -> String {
    match (std::env::var("DAPR_GRPC_ENDPOINT"), std::env::var("DAPR_GRPC_PORT")) {
        (Ok(endpoint), _) if !endpoint.is_empty() => endpoint,
        (_, Ok(port)) if !port.is_empty() => format!("http://127.0.0.1:{port}"),
        _ => "http://127.0.0.1:50001 (DAPR_GRPC_ENDPOINT and DAPR_GRPC_PORT unset)".to_owned(),
    }
}

/// Publishes through the Dapr sidecar with `dapr::Client`.
pub struct DaprPublisher {
    client: tokio::sync::Mutex<dapr::Client<dapr::client::TonicClientWithAuth>>,
}

impl std::fmt::Debug for DaprPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaprPublisher").finish_non_exhaustive()
    }
}

impl DaprPublisher {
    /// Connects to the sidecar named by the environment (`DAPR_GRPC_ENDPOINT`
    /// or `DAPR_GRPC_PORT`, with `DAPR_API_TOKEN`).
    pub async fn connect() -> Result<Self, PublishError> {
        let address = sidecar_address_from_env();
        let client = dapr::Client::new().await.map_err(|source| PublishError::Connect { address, source })?;
        Ok(DaprPublisher { client: tokio::sync::Mutex::new(client) })
    }

    /// Connects to the sidecar at `address` (e.g. `http://127.0.0.1:50001`).
    pub async fn connect_to(address: impl Into<String>) -> Result<Self, PublishError> {
        let address = address.into();
        let client = dapr::Client::connect_with_address(address.clone())
            .await
            .map_err(|source| PublishError::Connect { address, source })?;
        Ok(DaprPublisher { client: tokio::sync::Mutex::new(client) })
    }
}

#[async_trait::async_trait]
impl Publisher for DaprPublisher {
    async fn publish(&self, message: Message) -> Result<(), PublishError> {
        // `dapr::Client` needs `&mut`; clones share one channel, so a clone
        // per call keeps concurrent publishes concurrent.
        let mut client = self.client.lock().await.clone();
        let topic = message.topic.clone();
        client
            .publish_event(
                message.pubsub,
                message.topic,
                message.content_type,
                message.data.to_vec(),
                Some(message.metadata),
            )
            .await
            .map_err(|source| PublishError::Sidecar { topic, source })
    }
}

/// Records what is published; for tests.
#[derive(Debug, Clone, Default)]
pub struct InMemoryPublisher {
    published: Arc<Mutex<Vec<Message>>>,
}

impl InMemoryPublisher {
    /// Everything published so far, in order.
    pub fn published(&self) -> Vec<Message> {
        self.published.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

#[async_trait::async_trait]
impl Publisher for InMemoryPublisher {
    async fn publish(&self, message: Message) -> Result<(), PublishError> {
        self.published.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(message);
        Ok(())
    }
}
