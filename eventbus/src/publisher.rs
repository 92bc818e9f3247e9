//! Publishing events, for services that emit them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::grpc::proto::runtime::PublishEventRequest;
use crate::grpc::proto::runtime::dapr_client::DaprClient;
use bytes::Bytes;
use tonic::transport::Channel;

use crate::backoff::Backoff;

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

/// Publishes through the Dapr sidecar's gRPC API (`PublishEvent`), with the
/// `DAPR_API_TOKEN` when set. A failure that may pass (the sidecar
/// unavailable or overloaded, a timeout, a broker error) is retried with
/// exponential, jittered backoff before it is returned; a refusal
/// (`InvalidArgument`, `NotFound`, `PermissionDenied`, …) is returned at once.
#[derive(Clone)]
pub struct DaprPublisher {
    client: DaprClient<Channel>,
    address: String,
    token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    attempts: u32,
    backoff: Backoff,
}

impl std::fmt::Debug for DaprPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaprPublisher")
            .field("address", &self.address)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl DaprPublisher {
    /// Connects to the sidecar named by the environment (`DAPR_GRPC_ENDPOINT`
    /// or `DAPR_GRPC_PORT`, with `DAPR_API_TOKEN`), as the Dapr SDKs do.
    pub async fn connect() -> Result<Self, PublishError> {
        let endpoint = crate::sidecar::DaprEndpoint::from_env();
        let mut publisher = DaprPublisher::connect_to(endpoint.address()).await?;
        publisher.token = endpoint.api_token().and_then(|t| t.parse().ok());
        Ok(publisher)
    }

    /// Connects to the sidecar at `address` (e.g. `http://127.0.0.1:50001`).
    pub async fn connect_to(address: impl Into<String>) -> Result<Self, PublishError> {
        let address = address.into();
        let connect = async {
            tonic::transport::Endpoint::from_shared(address.clone())?
                .connect_timeout(Duration::from_secs(5))
                .connect()
                .await
        };
        let channel = connect
            .await
            .map_err(|source| PublishError::Connect { address: address.clone(), source: source.into() })?;
        Ok(DaprPublisher::on_channel(channel, &crate::sidecar::DaprEndpoint::new(address)))
    }

    /// A publisher on a connected `channel` to the sidecar of `endpoint`, with its token.
    pub(crate) fn on_channel(channel: Channel, endpoint: &crate::sidecar::DaprEndpoint) -> Self {
        DaprPublisher {
            client: DaprClient::new(channel),
            address: endpoint.address().to_owned(),
            token: endpoint.api_token().and_then(|t| t.parse().ok()),
            attempts: 3,
            backoff: Backoff { first: Duration::from_millis(100), cap: Duration::from_secs(5) },
        }
    }

    /// Calls per publish before a failure that may pass is returned (default
    /// 3; 1 for no retry), waiting `first_backoff` (default 100 ms), doubled
    /// per retry (at most 5 s), with jitter.
    #[must_use]
    pub fn retries(mut self, attempts: u32, first_backoff: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.backoff.first = first_backoff;
        self
    }
}

/// Whether the sidecar's answer may change on another try.
fn may_pass(code: tonic::Code) -> bool {
    use tonic::Code;
    // Internal: daprd's answer when the broker fails to take the message.
    matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted | Code::Internal
    )
}

impl Publisher for DaprPublisher {
    async fn publish(&self, message: Message) -> Result<(), PublishError> {
        let request = PublishEventRequest {
            pubsub_name: message.pubsub,
            topic: message.topic,
            data: message.data.to_vec(),
            data_content_type: message.content_type,
            metadata: message.metadata,
        };
        let mut attempt = 1;
        loop {
            let mut call = tonic::Request::new(request.clone());
            if let Some(token) = &self.token {
                call.metadata_mut().insert(crate::sidecar::TOKEN_HEADER, token.clone());
            }
            // daprd takes the trace context of the call as the CloudEvent's.
            #[cfg(feature = "opentelemetry")]
            for (header, value) in crate::middleware::otel::current_trace_headers() {
                if let Ok(value) = value.parse() {
                    call.metadata_mut().insert(header, value);
                }
            }
            // Clones share the channel: concurrent publishes stay concurrent.
            let status = match self.client.clone().publish_event(call).await {
                Ok(_) => return Ok(()),
                Err(status) => status,
            };
            if attempt >= self.attempts || !may_pass(status.code()) {
                let (topic, address) = (request.topic, self.address.clone());
                return Err(PublishError::Sidecar {
                    topic,
                    address,
                    attempts: attempt,
                    source: crate::status::from_grpc(&status),
                });
            }
            tracing::warn!(topic = %request.topic, attempt, code = ?status.code(), error = %status.message(), "publish failed; retrying");
            tokio::time::sleep(self.backoff.delay(attempt - 1)).await;
            attempt += 1;
        }
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
