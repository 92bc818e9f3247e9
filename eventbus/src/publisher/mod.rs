//! Publishing events, for services that emit them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

#[cfg(feature = "client")]
mod dapr;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use dapr::DaprPublisher;

/// An event to publish.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
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
    /// A message of any encoding, e.g. protobuf bytes as `application/protobuf`.
    pub fn new(
        pubsub: impl Into<String>,
        topic: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        Message {
            pubsub: pubsub.into(),
            topic: topic.into(),
            content_type: content_type.into(),
            data: data.into(),
            metadata: HashMap::new(),
        }
    }

    /// A JSON message.
    pub fn json<T: serde::Serialize>(
        pubsub: impl Into<String>,
        topic: impl Into<String>,
        data: &T,
    ) -> Result<Self, PublishError> {
        let data = serde_json::to_vec(data).map_err(PublishError::Encode)?;
        Ok(Message::new(pubsub, topic, "application/json", data))
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
        source: crate::outcome::BoxError,
    },
    /// The sidecar refused the event, or the call failed after its retries.
    #[error("publish to {topic} through the Dapr sidecar at {address} failed after {attempts} attempt(s)")]
    Sidecar {
        /// The topic.
        topic: String,
        /// The sidecar's address.
        address: String,
        /// Calls made (retries included).
        attempts: u32,
        /// The sidecar's last answer.
        #[source]
        source: crate::status::Status,
    },
}

/// Publishes events. [`DaprPublisher`] goes through the sidecar;
/// [`InMemoryPublisher`] records them for tests; implement it with an
/// `async fn` for your own. To choose one at run time, keep a
/// [`BoxedPublisher`].
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
pub trait Publisher: Send + Sync {
    /// Publishes one message.
    fn publish(&self, message: Message) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// A [`Publisher`] of any type, for code that picks one at run time (the
/// sidecar in production, [`InMemoryPublisher`] in tests). Cheap to clone.
///
/// ```
/// use eventbus::publisher::{BoxedPublisher, InMemoryPublisher, Message, Publisher};
///
/// async fn order_created(publisher: &impl Publisher) {
///     let message = Message::json("pubsub", "order.created", &serde_json::json!({"order_id": "o-1"})).unwrap();
///     publisher.publish(message).await.unwrap();
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let recorded = InMemoryPublisher::default();
/// let publisher = BoxedPublisher::new(recorded.clone());
/// order_created(&publisher).await;
/// assert_eq!(recorded.published().len(), 1);
/// # });
/// ```
#[derive(Clone)]
pub struct BoxedPublisher(Arc<dyn ErasedPublisher>);

impl BoxedPublisher {
    /// Boxes `publisher`.
    pub fn new(publisher: impl Publisher + 'static) -> Self {
        BoxedPublisher(Arc::new(publisher))
    }
}

impl std::fmt::Debug for BoxedPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxedPublisher").finish_non_exhaustive()
    }
}

impl Publisher for BoxedPublisher {
    fn publish(&self, message: Message) -> impl Future<Output = Result<(), PublishError>> + Send {
        self.0.publish(message)
    }
}

/// [`Publisher`] with its future boxed, so that it can be a `dyn` object.
trait ErasedPublisher: Send + Sync {
    fn publish(&self, message: Message) -> futures_util::future::BoxFuture<'_, Result<(), PublishError>>;
}

impl<P: Publisher> ErasedPublisher for P {
    fn publish(&self, message: Message) -> futures_util::future::BoxFuture<'_, Result<(), PublishError>> {
        Box::pin(Publisher::publish(self, message))
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

impl Publisher for InMemoryPublisher {
    async fn publish(&self, message: Message) -> Result<(), PublishError> {
        self.published.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(message);
        Ok(())
    }
}
