//! The gRPC app channel: daprd's side of `--app-protocol grpc`.

use std::collections::HashMap;
use std::net::SocketAddr;

use tonic::Request;
use tonic::transport::Channel;

use super::transport::{Call, Deliver};
use super::{
    Attempt, CloudEvent, Delivery, Settlement, SidecarError, SidecarTransport, TestSidecar, exhausted, pb, settle,
};
use crate::binding::BindingEvent;
use crate::grpc::proto::common::InvokeRequest;
use crate::grpc::proto::runtime::app_callback_alpha_client::AppCallbackAlphaClient;
use crate::grpc::proto::runtime::app_callback_client::AppCallbackClient;
use crate::grpc::proto::runtime::app_callback_health_check_client::AppCallbackHealthCheckClient;
use crate::invoke::Reply;
use crate::outcome::Outcome;
use crate::sidecar::TOKEN_HEADER;
use crate::status::{Code, Status, from_grpc};

/// The gRPC app channel (`AppCallback`), as daprd's `--app-protocol grpc`.
#[derive(Debug)]
pub struct Grpc {
    channel: Channel,
    subscriptions: Vec<pb::TopicSubscription>,
}

impl SidecarTransport for Grpc {}

impl Grpc {
    fn app(&self) -> AppCallbackClient<Channel> {
        AppCallbackClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX)
    }
}

impl Deliver for Grpc {
    fn subscriptions(&self) -> Vec<pb::TopicSubscription> {
        self.subscriptions.clone()
    }

    async fn attempt(&self, call: &Call<'_>) -> Attempt {
        let mut request = with_token(call.event.topic_event(call.pubsub, call.topic, call.path), call.token);
        for (key, value) in &call.event.metadata {
            if let (Ok(key), Ok(value)) = (key.parse::<tonic::metadata::MetadataKey<_>>(), value.parse()) {
                request.metadata_mut().insert(key, value);
            }
        }
        match self.app().on_topic_event(request).await {
            Ok(response) => Ok(Outcome::from_status(response.into_inner().status)),
            Err(status) => Err(from_grpc(&status).code()),
        }
    }
}

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token.and_then(|t| t.parse().ok()) {
        request.metadata_mut().insert(TOKEN_HEADER, token);
    }
    request
}

impl TestSidecar<Grpc> {
    /// Connects to the app's gRPC app channel and reads its subscriptions,
    /// as daprd does at start.
    pub async fn connect(address: SocketAddr) -> Result<Self, SidecarError> {
        let channel = Channel::from_shared(format!("http://{address}"))
            .map_err(|e| SidecarError::Connect(e.into()))?
            .connect()
            .await
            .map_err(|e| SidecarError::Connect(e.into()))?;
        let mut sidecar = TestSidecar::with(Grpc { channel, subscriptions: Vec::new() });
        sidecar.reload().await?;
        Ok(sidecar)
    }

    /// Reads the subscriptions again.
    pub async fn reload(&mut self) -> Result<(), SidecarError> {
        let response = self
            .app()
            .list_topic_subscriptions(Request::new(()))
            .await
            .map_err(|status| SidecarError::Subscriptions(from_grpc(&status).to_string()))?;
        self.transport.subscriptions = response.into_inner().subscriptions;
        Ok(())
    }

    /// A client of the app's `AppCallback` service (no token attached).
    pub fn app(&self) -> AppCallbackClient<Channel> {
        self.transport.app()
    }

    /// A client of the app's `AppCallbackAlpha` service.
    pub fn app_alpha(&self) -> AppCallbackAlphaClient<Channel> {
        AppCallbackAlphaClient::new(self.transport.channel.clone())
    }

    /// Calls `HealthCheck`, as daprd's app health probe does (without token).
    pub async fn health(&self) -> Result<(), Status> {
        let health =
            AppCallbackHealthCheckClient::new(self.transport.channel.clone()).health_check(Request::new(())).await;
        health.map(|_| ()).map_err(|status| from_grpc(&status))
    }

    /// Wraps a message with the token, as daprd does on data-plane calls
    /// (for raw calls through [`app`](TestSidecar::app)).
    pub fn request<T>(&self, message: T) -> Request<T> {
        with_token(message, self.token.as_deref())
    }

    /// Invokes a method (`OnInvoke`) with a JSON body.
    pub async fn invoke(&self, method: &str, data: &[u8]) -> Result<Reply, Status> {
        let request = InvokeRequest {
            method: method.to_owned(),
            data: Some(prost_types::Any { type_url: String::new(), value: data.to_vec() }),
            content_type: "application/json".into(),
            http_extension: None,
        };
        let response = self.app().on_invoke(self.request(request)).await.map_err(|status| from_grpc(&status))?;
        let response = response.into_inner();
        Ok(Reply::new(response.content_type, response.data.map(|any| any.value).unwrap_or_default()))
    }

    /// Delivers an input binding's event (`OnBindingEvent`).
    pub async fn binding(&self, event: BindingEvent) -> Result<(), Status> {
        let request = pb::BindingEventRequest { name: event.name, data: event.data.to_vec(), metadata: event.metadata };
        self.app().on_binding_event(self.request(request)).await.map(|_| ()).map_err(|status| from_grpc(&status))
    }

    /// Triggers a job (`OnJobEvent`).
    pub async fn trigger_job(&self, name: &str, data: &[u8]) -> Result<(), Status> {
        let request = pb::JobEventRequest {
            name: name.to_owned(),
            data: Some(prost_types::Any { type_url: String::new(), value: data.to_vec() }),
            method: format!("job/{name}"),
            content_type: "application/json".into(),
            http_extension: None,
        };
        self.app().on_job_event(self.request(request)).await.map(|_| ()).map_err(|status| from_grpc(&status))
    }

    /// Publishes events as one bulk call (`OnBulkTopicEvent`, falling back to
    /// the Alpha1 RPC on `Unimplemented`), re-sending the entries answered
    /// `RETRY` or not at all. One [`Delivery`] per event, in order.
    pub async fn publish_bulk(&self, topic: &str, events: Vec<CloudEvent>) -> Result<Vec<Delivery>, SidecarError> {
        let pubsub = self.default_pubsub();
        let Some(subscription) = self.find(&pubsub, topic) else {
            return Ok(Vec::new());
        };
        let dead_letter = subscription.dead_letter_topic.clone();
        let path = subscription.routes.as_ref().map(|r| r.default.clone()).unwrap_or_default();
        let mut events = events;
        for event in &mut events {
            if event.id.is_empty() {
                event.id = self.fresh_id("test");
            }
        }
        let mut deliveries: Vec<Delivery> = events
            .iter()
            .map(|e| Delivery { settlement: Settlement::Nacked, ..Delivery::new(&pubsub, topic, &path, &e.id) })
            .collect();
        let mut pending: Vec<usize> = (0..events.len()).collect();
        for _ in 0..self.max_attempts {
            if pending.is_empty() {
                break;
            }
            let entries = pending.iter().map(|&i| bulk_entry(i, &events[i])).collect();
            let request = pb::TopicEventBulkRequest {
                id: self.fresh_id("bulk"),
                entries,
                metadata: HashMap::new(),
                topic: topic.to_owned(),
                pubsub_name: pubsub.clone(),
                r#type: "com.dapr.event.sent".into(),
                path: path.clone(),
            };
            let call = || {
                let mut call = self.request(request.clone());
                for &i in &pending {
                    append_trace_headers(call.metadata_mut(), &events[i], i);
                }
                call
            };
            let statuses: Result<HashMap<String, i32>, Code> = match self.app().on_bulk_topic_event(call()).await {
                Ok(response) => {
                    Ok(response.into_inner().statuses.into_iter().map(|s| (s.entry_id, s.status)).collect())
                }
                Err(status) if status.code() == tonic::Code::Unimplemented => {
                    #[allow(deprecated)] // daprd still falls back to it
                    let alpha = self.app_alpha().on_bulk_topic_event_alpha1(call()).await;
                    match alpha {
                        Ok(response) => {
                            Ok(response.into_inner().statuses.into_iter().map(|s| (s.entry_id, s.status)).collect())
                        }
                        Err(status) => Err(from_grpc(&status).code()),
                    }
                }
                Err(status) => Err(from_grpc(&status).code()),
            };
            let mut still_pending = Vec::new();
            for i in pending {
                let attempt = match &statuses {
                    // An entry with no status counts as RETRY.
                    Ok(statuses) => {
                        Ok(statuses.get(&i.to_string()).map_or(Outcome::Retry, |s| Outcome::from_status(*s)))
                    }
                    Err(code) => Err(*code),
                };
                deliveries[i].attempts.push(attempt);
                match settle(attempt, &dead_letter) {
                    Some(settlement) => deliveries[i].settlement = settlement,
                    None => still_pending.push(i),
                }
            }
            pending = still_pending;
        }
        for i in pending {
            deliveries[i].settlement = exhausted(&dead_letter);
        }
        for (delivery, event) in deliveries.iter().zip(&events) {
            self.record(delivery.clone());
            self.dead_letter(&pubsub, delivery, event).await?;
        }
        Ok(deliveries)
    }
}

/// daprd starts a span per traced entry of a bulk call and appends its
/// `traceparent` and `grpc-trace-bin` to the call's headers, so the header
/// list grows with the batch (about 180 bytes an entry: past HTTP/2's usual
/// 16 KiB limit at 90 entries). The test sidecar does the same.
fn append_trace_headers(metadata: &mut tonic::metadata::MetadataMap, event: &CloudEvent, index: usize) {
    let traceparent = event
        .extensions
        .get_str("traceparent")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("00-{:032x}-{:016x}-01", 0x5eed_0000 + index as u128, index as u64 + 1));
    if let Ok(value) = traceparent.parse() {
        metadata.append("traceparent", value);
    }
    if let Some(binary) = trace_context_binary(&traceparent) {
        metadata.append_bin("grpc-trace-bin", tonic::metadata::MetadataValue::from_bytes(&binary));
    }
}

/// A `traceparent` in OpenCensus' binary format (`grpc-trace-bin`): version
/// 0, then the trace id, span id and trace options fields (ids 0, 1, 2).
fn trace_context_binary(traceparent: &str) -> Option<[u8; 29]> {
    let mut parts = traceparent.split('-').skip(1);
    let trace_id = u128::from_str_radix(parts.next()?, 16).ok()?;
    let span_id = u64::from_str_radix(parts.next()?, 16).ok()?;
    let options = u8::from_str_radix(parts.next()?, 16).ok()?;
    let mut binary = [0u8; 29];
    binary[2..18].copy_from_slice(&trace_id.to_be_bytes());
    binary[18] = 1;
    binary[19..27].copy_from_slice(&span_id.to_be_bytes());
    binary[27] = 2;
    binary[28] = options;
    Some(binary)
}

/// The bulk entry of event `index`. Its `entry_id` is its own (daprd gives
/// each entry a fresh UUID, `pkg/runtime/pubsub/default_bulksub.go`), not
/// the event id: two copies of one event in a batch are answered apart.
fn bulk_entry(index: usize, event: &CloudEvent) -> pb::TopicEventBulkRequestEntry {
    use crate::grpc::proto::runtime::topic_event_bulk_request_entry::Event;
    pb::TopicEventBulkRequestEntry {
        entry_id: index.to_string(),
        content_type: event.content_type.clone(),
        metadata: event.metadata.clone(),
        event: Some(Event::CloudEvent(event.ce_request())),
    }
}
