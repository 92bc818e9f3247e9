//! [`DaprPublisher`]: publishing through the sidecar's gRPC API.

use std::time::Duration;

use tonic::transport::Channel;

use super::{Message, PublishError, Publisher};
use crate::backoff::Backoff;
use crate::grpc::proto::runtime::PublishEventRequest;
use crate::grpc::proto::runtime::dapr_client::DaprClient;
use std::error::Error as _;
use tracing::Instrument;

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
        DaprPublisher::connect_to(crate::sidecar::DaprEndpoint::from_env()).await
    }

    /// Connects to the sidecar at `endpoint`: an address such as
    /// `http://127.0.0.1:50001`, or a [`DaprEndpoint`](crate::sidecar::DaprEndpoint)
    /// with its token and TLS settings.
    pub async fn connect_to(endpoint: impl Into<crate::sidecar::DaprEndpoint>) -> Result<Self, PublishError> {
        let endpoint = endpoint.into();
        let address = endpoint.address().to_owned();
        let connect = async {
            let channel = endpoint.channel()?.connect_timeout(Duration::from_secs(5));
            channel.connect().await.map_err(|e| {
                // tonic's "transport error" says little; its sources say why (refused, TLS).
                let mut chain = e.to_string();
                let mut source = e.source();
                while let Some(cause) = source {
                    chain.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                chain
            })
        };
        let channel = connect.await.map_err(|reason| PublishError::Connect { address, source: reason.into() })?;
        Ok(DaprPublisher::on_channel(channel, &endpoint))
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
    /// Publishes inside a producer span (`publish <topic>`, by the
    /// OpenTelemetry messaging conventions: `messaging.system` `dapr`,
    /// `messaging.operation.type` `send`, `messaging.destination.name`,
    /// `dapr.pubsub.name`), whose context daprd puts in the CloudEvent; a
    /// failure sets its status to error.
    async fn publish(&self, message: Message) -> Result<(), PublishError> {
        let span = tracing::info_span!(
            "publish",
            otel.name = %format_args!("publish {}", message.topic),
            otel.kind = "producer",
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
            error.r#type = tracing::field::Empty,
            messaging.system = "dapr",
            messaging.operation.r#type = "send",
            messaging.operation.name = "publish",
            messaging.destination.name = message.topic.as_str(),
            dapr.pubsub.name = message.pubsub.as_str(),
        );
        let result = self.publish_with_retries(message).instrument(span.clone()).await;
        if let Err(PublishError::Sidecar { source, .. }) = &result {
            span.record("otel.status_code", "ERROR")
                .record("otel.status_description", source.message())
                .record("error.type", source.code().as_str());
        }
        result
    }
}

impl DaprPublisher {
    async fn publish_with_retries(&self, message: Message) -> Result<(), PublishError> {
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
                Ok(_) => {
                    count_attempt(&request, "success");
                    return Ok(());
                }
                Err(status) => status,
            };
            if attempt >= self.attempts || !may_pass(status.code()) {
                count_attempt(&request, "failure");
                let (topic, address) = (request.topic, self.address.clone());
                return Err(PublishError::Sidecar {
                    topic,
                    address,
                    attempts: attempt,
                    source: crate::status::from_grpc(&status),
                });
            }
            count_attempt(&request, "retry");
            tracing::warn!(topic = %request.topic, attempt, code = ?status.code(), error = %status.message(), "publish failed; retrying");
            tokio::time::sleep(self.backoff.delay(attempt - 1)).await;
            attempt += 1;
        }
    }
}

/// `eventbus_publish_attempts_total{pubsub, topic, outcome}`: `success`,
/// `retry` (failed, tried again) or `failure` (failed, given up).
fn count_attempt(request: &PublishEventRequest, outcome: &'static str) {
    metrics::counter!(
        "eventbus_publish_attempts_total",
        "pubsub" => request.pubsub_name.clone(),
        "topic" => request.topic.clone(),
        "outcome" => outcome
    )
    .increment(1);
}
