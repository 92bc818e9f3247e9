//! A sidecar for tests: drives an app over real gRPC the way daprd does.
//!
//! [`TestSidecar`] reads the app's subscriptions with
//! `ListTopicSubscriptions`, publishes CloudEvents to it (single or bulk),
//! chooses the route from the subscription's rules, sends the
//! `dapr-api-token`, and settles each event as daprd would:
//!
//! | the app answers | the test sidecar |
//! |---|---|
//! | `SUCCESS` | acknowledges ([`Settlement::Acked`]) |
//! | `RETRY`, or a gRPC error other than `Unimplemented` | delivers again, up to `max_attempts`; then dead-letters, or leaves it to the broker ([`Settlement::Nacked`]) |
//! | `DROP` | dead-letters at once ([`Settlement::DeadLettered`]), or acknowledges when there is no dead-letter topic ([`Settlement::Dropped`]) |
//! | gRPC `Unimplemented` | drops it silently, no dead letter ([`Settlement::SilentlyDropped`]) |
//! | bulk entry without a status | as `RETRY` |
//!
//! A dead-lettered event is also delivered to the dead-letter topic when the
//! app subscribes to it. Retries are immediate: there is no backoff to wait for.
//!
//! ```no_run
//! use eventbus::testing::{CloudEvent, Settlement, TestSidecar};
//!
//! # async fn run(address: std::net::SocketAddr) -> anyhow::Result<()> {
//! let sidecar = TestSidecar::connect(address).await?.pubsub("pubsub-redis").max_attempts(3);
//! let delivery = sidecar.publish("order.completed", CloudEvent::json(&serde_json::json!({"order_id": "o-1"}))).await?;
//! assert_eq!(delivery.settlement, Settlement::Acked);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::grpc::proto::common::InvokeRequest;
use crate::grpc::proto::runtime as pb;
use crate::grpc::proto::runtime::app_callback_alpha_client::AppCallbackAlphaClient;
use crate::grpc::proto::runtime::app_callback_client::AppCallbackClient;
use crate::grpc::proto::runtime::app_callback_health_check_client::AppCallbackHealthCheckClient;
use tonic::Request;
use tonic::transport::Channel;

use crate::binding::BindingEvent;
use crate::event::Extensions;
use crate::invoke::Reply;
use crate::outcome::Outcome;
use crate::sidecar::TOKEN_HEADER;
use crate::status::{Code, Status, from_grpc};

mod dapr_api;
pub mod daprd;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
mod http;

pub use dapr_api::{DaprApiStub, Published};
#[cfg(feature = "http")]
pub use http::{HttpSidecar, HttpSidecarError};

/// A CloudEvent to publish.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CloudEvent {
    /// `id`; a fresh one is assigned when empty.
    pub id: String,
    /// `source`.
    pub source: String,
    /// `type`.
    pub event_type: String,
    /// `specversion`.
    pub spec_version: String,
    /// `datacontenttype`.
    pub content_type: String,
    /// The data.
    pub data: Vec<u8>,
    /// Extension attributes (`time`, `traceparent`, custom).
    pub extensions: Extensions,
    /// gRPC metadata sent with the call (broker metadata).
    pub metadata: HashMap<String, String>,
}

impl Default for CloudEvent {
    fn default() -> Self {
        CloudEvent {
            id: String::new(),
            source: "test-sidecar".into(),
            event_type: "com.dapr.event.sent".into(),
            spec_version: "1.0".into(),
            content_type: "application/json".into(),
            data: Vec::new(),
            extensions: Extensions::default(),
            metadata: HashMap::new(),
        }
    }
}

impl CloudEvent {
    /// The structured CloudEvent daprd posts on the HTTP app channel, and the
    /// `event` its routing rules read: JSON data inline, other data as text.
    pub(crate) fn structured(&self, pubsub: &str, topic: &str) -> serde_json::Value {
        let mut body = serde_json::json!({
            "id": self.id, "source": self.source, "type": self.event_type, "specversion": self.spec_version,
            "datacontenttype": self.content_type, "pubsubname": pubsub, "topic": topic,
        });
        body["data"] = match serde_json::from_slice::<serde_json::Value>(&self.data) {
            Ok(json) if self.content_type.contains("json") => json,
            _ => serde_json::Value::String(String::from_utf8_lossy(&self.data).into_owned()),
        };
        for key in self.extensions.keys() {
            if let Some(value) = self.extensions.get(key) {
                body[key] = value;
            }
        }
        body
    }

    /// A JSON event.
    pub fn json<T: serde::Serialize + ?Sized>(data: &T) -> Self {
        CloudEvent { data: serde_json::to_vec(data).unwrap_or_default(), ..CloudEvent::default() }
    }

    /// An event with raw bytes and a content type.
    pub fn bytes(content_type: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        CloudEvent { content_type: content_type.into(), data: data.into(), ..CloudEvent::default() }
    }

    /// The CloudEvent as the sidecar sends it (in a bulk entry, or spread
    /// over a `TopicEventRequest`).
    fn ce_request(&self) -> pb::TopicEventCeRequest {
        pb::TopicEventCeRequest {
            id: self.id.clone(),
            source: self.source.clone(),
            r#type: self.event_type.clone(),
            spec_version: self.spec_version.clone(),
            data_content_type: self.content_type.clone(),
            data: self.data.clone(),
            extensions: Some(self.extensions.0.clone()),
        }
    }

    /// The event as `OnTopicEvent` (and a stream subscription) carries it.
    fn topic_event(&self, pubsub: &str, topic: &str, path: &str) -> pb::TopicEventRequest {
        let ce = self.ce_request();
        pb::TopicEventRequest {
            id: ce.id,
            source: ce.source,
            r#type: ce.r#type,
            spec_version: ce.spec_version,
            data_content_type: ce.data_content_type,
            data: ce.data,
            topic: topic.to_owned(),
            pubsub_name: pubsub.to_owned(),
            path: path.to_owned(),
            extensions: ce.extensions,
        }
    }

    /// Sets `id`.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets `type`.
    #[must_use]
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = event_type.into();
        self
    }

    /// Sets an extension attribute.
    #[must_use]
    pub fn extension(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.insert(key, value);
        self
    }

    /// Sets a gRPC metadata entry of the call.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// How an event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settlement {
    /// The app answered `SUCCESS`.
    Acked,
    /// Sent to this dead-letter topic (after `DROP`, exhausted retries or no matching rule).
    DeadLettered(String),
    /// `DROP` with no dead-letter topic: acknowledged and gone.
    Dropped,
    /// `Unimplemented`: daprd drops it without a dead letter.
    SilentlyDropped,
    /// Retries exhausted and no dead-letter topic: back to the broker.
    Nacked,
    /// No rule matched and no default route: acknowledged.
    Unrouted,
    /// The app does not subscribe to the topic: nothing was sent.
    NotSubscribed,
}

/// One attempt to deliver: the status, or the gRPC error code.
pub type Attempt = Result<Outcome, Code>;

/// What happened to one published event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Delivery {
    /// The pub/sub component.
    pub pubsub: String,
    /// The topic.
    pub topic: String,
    /// The path the rules chose.
    pub path: String,
    /// The CloudEvent id (or bulk entry id).
    pub event_id: String,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// How it ended.
    pub settlement: Settlement,
}

impl Delivery {
    /// A delivery not tried yet (`NotSubscribed` until it is).
    pub(crate) fn new(pubsub: &str, topic: &str, path: &str, event_id: &str) -> Self {
        Delivery {
            pubsub: pubsub.to_owned(),
            topic: topic.to_owned(),
            path: path.to_owned(),
            event_id: event_id.to_owned(),
            attempts: Vec::new(),
            settlement: Settlement::NotSubscribed,
        }
    }

    /// Calls `attempt` until an answer settles the event as daprd would, or
    /// `max_attempts` are spent; whatever the transport.
    pub(crate) async fn settle_with<F: Future<Output = Attempt>>(
        mut self,
        dead_letter: &str,
        max_attempts: u32,
        mut attempt: impl FnMut() -> F,
    ) -> Delivery {
        for _ in 0..max_attempts {
            let answer = attempt().await;
            self.attempts.push(answer);
            if let Some(settlement) = settle(answer, dead_letter) {
                self.settlement = settlement;
                return self;
            }
        }
        self.settlement = exhausted(dead_letter);
        self
    }
}

/// An error of the sidecar itself (not of the app's answer).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SidecarError {
    /// Could not connect.
    #[error("cannot connect to the app: {0}")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// `ListTopicSubscriptions` failed.
    #[error("ListTopicSubscriptions failed: {0}")]
    Subscriptions(Status),
    /// A routing rule failed on the event (e.g. it reads a field the event
    /// lacks), which daprd reports as "error finding matching route".
    #[error("cannot evaluate routing rule: {0}")]
    Rule(String),
}

/// A sidecar for tests; see the [module documentation](self).
pub struct TestSidecar {
    channel: Channel,
    subscriptions: Vec<pb::TopicSubscription>,
    pubsub: String,
    token: Option<String>,
    max_attempts: u32,
    next_id: AtomicU64,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
}

impl std::fmt::Debug for TestSidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSidecar")
            .field("pubsub", &self.pubsub)
            .field("subscriptions", &self.subscriptions.len())
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl TestSidecar {
    /// Connects to the app and reads its subscriptions, as daprd does at start.
    pub async fn connect(address: SocketAddr) -> Result<Self, SidecarError> {
        let channel = Channel::from_shared(format!("http://{address}"))
            .map_err(|e| SidecarError::Subscriptions(Status::invalid_argument(e.to_string())))?
            .connect()
            .await
            .map_err(|e| SidecarError::Connect(e.into()))?;
        let mut sidecar = TestSidecar {
            channel,
            subscriptions: Vec::new(),
            pubsub: String::new(),
            token: None,
            max_attempts: 3,
            next_id: AtomicU64::new(1),
            deliveries: Arc::default(),
        };
        sidecar.reload().await?;
        sidecar.pubsub =
            sidecar.subscriptions.first().map(|s| s.pubsub_name.clone()).unwrap_or_else(|| "pubsub".into());
        Ok(sidecar)
    }

    /// Reads the subscriptions again.
    pub async fn reload(&mut self) -> Result<(), SidecarError> {
        let response = self
            .app()
            .list_topic_subscriptions(Request::new(()))
            .await
            .map_err(|status| SidecarError::Subscriptions(from_grpc(&status)))?;
        self.subscriptions = response.into_inner().subscriptions;
        Ok(())
    }

    /// The pub/sub that [`publish`](Self::publish) uses (default: the first subscription's).
    #[must_use]
    pub fn pubsub(mut self, pubsub: impl Into<String>) -> Self {
        self.pubsub = pubsub.into();
        self
    }

    /// The `dapr-api-token` to send on data-plane calls.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Deliveries per event before giving up (default 3).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The app's subscriptions.
    pub fn subscriptions(&self) -> &[pb::TopicSubscription] {
        &self.subscriptions
    }

    /// The subscription of a topic on the sidecar's pub/sub.
    pub fn subscription(&self, topic: &str) -> Option<&pb::TopicSubscription> {
        self.find(&self.pubsub, topic)
    }

    /// Every delivery so far, dead-letter deliveries included.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The deliveries that ended in a dead-letter topic.
    pub fn dead_letters(&self) -> Vec<Delivery> {
        self.deliveries().into_iter().filter(|d| matches!(d.settlement, Settlement::DeadLettered(_))).collect()
    }

    /// A client of the app's `AppCallback` service (no token attached).
    pub fn app(&self) -> AppCallbackClient<Channel> {
        AppCallbackClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX)
    }

    /// A client of the app's `AppCallbackAlpha` service.
    pub fn app_alpha(&self) -> AppCallbackAlphaClient<Channel> {
        AppCallbackAlphaClient::new(self.channel.clone())
    }

    /// Calls `HealthCheck`, as daprd's app health probe does (without token).
    pub async fn health(&self) -> Result<(), Status> {
        let health = AppCallbackHealthCheckClient::new(self.channel.clone()).health_check(Request::new(())).await;
        health.map(|_| ()).map_err(|status| from_grpc(&status))
    }

    /// Wraps a message with the token, as daprd does on data-plane calls
    /// (for raw calls through [`app`](TestSidecar::app)).
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(token) = self.token.as_deref().and_then(|t| t.parse().ok()) {
            request.metadata_mut().insert(TOKEN_HEADER, token);
        }
        request
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

    /// Publishes one event on the sidecar's pub/sub and delivers it until it settles.
    pub async fn publish(&self, topic: &str, event: CloudEvent) -> Result<Delivery, SidecarError> {
        let pubsub = self.pubsub.clone();
        self.publish_to(&pubsub, topic, event).await
    }

    /// Publishes one event on `pubsub`.
    pub async fn publish_to(&self, pubsub: &str, topic: &str, mut event: CloudEvent) -> Result<Delivery, SidecarError> {
        if event.id.is_empty() {
            event.id = format!("test-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        }
        let delivery = self.deliver(pubsub, topic, &event).await?;
        self.dead_letter(pubsub, &delivery, &event).await?;
        Ok(delivery)
    }

    async fn deliver(&self, pubsub: &str, topic: &str, event: &CloudEvent) -> Result<Delivery, SidecarError> {
        let mut delivery = Delivery::new(pubsub, topic, "", &event.id);
        let Some(subscription) = self.find(pubsub, topic) else {
            return Ok(self.record(delivery));
        };
        let Some(path) = route(subscription, event)? else {
            delivery.settlement = settle_unrouted(&subscription.dead_letter_topic);
            return Ok(self.record(delivery));
        };
        let request = event.topic_event(pubsub, topic, &path);
        delivery.path = path;
        let delivery = delivery
            .settle_with(&subscription.dead_letter_topic, self.max_attempts, || async {
                let mut call = self.request(request.clone());
                for (key, value) in &event.metadata {
                    if let (Ok(key), Ok(value)) = (key.parse::<tonic::metadata::MetadataKey<_>>(), value.parse()) {
                        call.metadata_mut().insert(key, value);
                    }
                }
                match self.app().on_topic_event(call).await {
                    Ok(response) => Ok(Outcome::from_status(response.into_inner().status)),
                    Err(status) => Err(from_grpc(&status).code()),
                }
            })
            .await;
        Ok(self.record(delivery))
    }

    /// Publishes events as one bulk call (`OnBulkTopicEvent`, falling back to
    /// the Alpha1 RPC on `Unimplemented`), re-sending the entries answered
    /// `RETRY` or not at all. One [`Delivery`] per event, in order.
    pub async fn publish_bulk(&self, topic: &str, events: Vec<CloudEvent>) -> Result<Vec<Delivery>, SidecarError> {
        let pubsub = self.pubsub.clone();
        let Some(subscription) = self.find(&pubsub, topic) else {
            return Ok(Vec::new());
        };
        let dead_letter = subscription.dead_letter_topic.clone();
        let path = subscription.routes.as_ref().map(|r| r.default.clone()).unwrap_or_default();
        let mut events = events;
        for event in &mut events {
            if event.id.is_empty() {
                event.id = format!("test-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
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
                id: format!("bulk-{}", self.next_id.fetch_add(1, Ordering::Relaxed)),
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

    /// Delivers a dead-lettered event to its dead-letter topic when the app
    /// subscribes to it (once: dead letters of dead letters are not followed).
    async fn dead_letter(&self, pubsub: &str, delivery: &Delivery, event: &CloudEvent) -> Result<(), SidecarError> {
        if let Settlement::DeadLettered(dead_letter_topic) = &delivery.settlement
            && self.find(pubsub, dead_letter_topic).is_some()
        {
            self.deliver(pubsub, dead_letter_topic, event).await?;
        }
        Ok(())
    }

    fn find(&self, pubsub: &str, topic: &str) -> Option<&pb::TopicSubscription> {
        self.subscriptions.iter().find(|s| s.pubsub_name == pubsub && s.topic == topic)
    }

    fn record(&self, delivery: Delivery) -> Delivery {
        self.deliveries.lock().unwrap_or_else(|p| p.into_inner()).push(delivery.clone());
        delivery
    }
}

/// The path daprd would deliver on: the first matching rule's, else the
/// default; `None` when nothing matches and there is no default.
pub(crate) fn route(subscription: &pb::TopicSubscription, event: &CloudEvent) -> Result<Option<String>, SidecarError> {
    let Some(routes) = &subscription.routes else { return Ok(Some(String::new())) };
    if routes.rules.is_empty() {
        return Ok(Some(routes.default.clone()));
    }
    let event = event.structured(&subscription.pubsub_name, &subscription.topic);
    for rule in &routes.rules {
        let rule = crate::subscription::Rule::new(&rule.r#match, &rule.path);
        if rule.evaluate(&event).map_err(SidecarError::Rule)? {
            return Ok(Some(rule.path));
        }
    }
    Ok((!routes.default.is_empty()).then(|| routes.default.clone()))
}

/// The settlement an attempt decides, or `None` to try again.
pub(crate) fn settle(attempt: Attempt, dead_letter: &str) -> Option<Settlement> {
    match attempt {
        Ok(Outcome::Success) => Some(Settlement::Acked),
        Ok(Outcome::Drop) if dead_letter.is_empty() => Some(Settlement::Dropped),
        Ok(Outcome::Drop) => Some(Settlement::DeadLettered(dead_letter.to_owned())),
        Err(Code::Unimplemented) => Some(Settlement::SilentlyDropped),
        Ok(Outcome::Retry) | Err(_) => None,
    }
}

pub(crate) fn exhausted(dead_letter: &str) -> Settlement {
    if dead_letter.is_empty() { Settlement::Nacked } else { Settlement::DeadLettered(dead_letter.to_owned()) }
}

pub(crate) fn settle_unrouted(dead_letter: &str) -> Settlement {
    if dead_letter.is_empty() { Settlement::Unrouted } else { Settlement::DeadLettered(dead_letter.to_owned()) }
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
