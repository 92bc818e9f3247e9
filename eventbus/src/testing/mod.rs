//! A sidecar for tests: drives an app the way daprd does, over each of the
//! three ways an app meets its sidecar.
//!
//! [`TestSidecar`] is one type with one settle loop and one set of
//! defaults; its transport says how it reaches the app:
//!
//! | transport | the app | make one with |
//! |---|---|---|
//! | [`Grpc`] (the default) | serves the gRPC app channel (`Server::serve`) | [`TestSidecar::connect`] |
//! | [`Http`] (feature `http`) | serves the HTTP app channel (`Transport::http`) | [`TestSidecar::connect_http`] |
//! | [`DaprApi`] | dials the sidecar's API: streaming subscriptions (`Transport::streaming`), publishing | [`TestSidecar::start_api`] |
//!
//! It reads the app's subscriptions (`ListTopicSubscriptions`, `GET
//! /dapr/subscribe`, or the streams the app opened), publishes CloudEvents
//! to it, chooses the route from the subscription's rules, sends the
//! `dapr-api-token`, and settles each event as daprd would:
//!
//! | the app answers | the test sidecar |
//! |---|---|
//! | `SUCCESS` | acknowledges ([`Settlement::Acked`]) |
//! | `RETRY`, or an error other than gRPC `Unimplemented` | delivers again, up to `max_attempts`; then dead-letters, or gives it back to the broker ([`Settlement::Nacked`]) |
//! | `DROP` | dead-letters at once ([`Settlement::DeadLettered`]), or acknowledges when there is no dead-letter topic ([`Settlement::Dropped`]) |
//! | gRPC `Unimplemented` | drops it silently, no dead letter ([`Settlement::SilentlyDropped`]) |
//! | bulk entry without a status | as `RETRY` |
//!
//! A dead-lettered event is also delivered to the dead-letter topic when the
//! app subscribes to it. Retries are immediate: there is no backoff to wait for.
//!
//! ## Defaults are daprd's
//!
//! Without a resiliency policy daprd calls the app **once** per event
//! (`pkg/runtime/subscription/subscription.go`, v1.18.3, has no built-in
//! inbound pub/sub retry), then dead-letters the event or hands the failure
//! to the component. So [`DEFAULT_MAX_ATTEMPTS`] is 1. To play a resiliency
//! policy, set [`max_attempts`](TestSidecar::max_attempts) to 1 + its
//! `maxRetries` (41 for the customer worker's `deploy/dapr/resiliency.yaml`).
//! The pub/sub is the app's first subscription's, as daprd has no default
//! either; set it with [`pubsub`](TestSidecar::pubsub).
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
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::event::Extensions;
use crate::grpc::proto::runtime as pb;
use crate::outcome::Outcome;
use crate::status::Code;

mod dapr_api;
mod grpc;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
mod http;

pub use dapr_api::{DaprApi, Published, STREAM_WAIT};
pub use grpc::Grpc;
#[cfg(feature = "http")]
pub use http::Http;

/// Deliveries per event unless [`TestSidecar::max_attempts`] says otherwise:
/// one, as daprd without a resiliency policy (see the [module documentation](self)).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 1;

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
    fn structured(&self, pubsub: &str, topic: &str) -> serde_json::Value {
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
    /// Retries exhausted and no dead-letter topic: the failure goes back to
    /// the pub/sub component, and what follows is the broker's. daprd
    /// v1.18's Redis streams component acknowledges it, so the event is
    /// gone; Kafka delivers it again.
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
    fn new(pubsub: &str, topic: &str, path: &str, event_id: &str) -> Self {
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
    async fn settle_with<F: Future<Output = Attempt>>(
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
    /// Could not connect, or the app's answer was not HTTP or gRPC.
    #[error("cannot reach the app: {0}")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The app's subscriptions could not be read.
    #[error("cannot read the app's subscriptions: {0}")]
    Subscriptions(String),
    /// A routing rule failed on the event (e.g. it reads a field the event
    /// lacks), which daprd reports as "error finding matching route".
    #[error("cannot evaluate routing rule: {0}")]
    Rule(String),
    /// Waited too long for the app (e.g. for it to open its streams).
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

/// How a [`TestSidecar`] reaches the app: [`Grpc`], [`Http`] or [`DaprApi`].
/// Sealed: the sidecar's behaviour is daprd's, not something to extend.
pub trait SidecarTransport: transport::Deliver {}

mod transport {
    use super::{Attempt, CloudEvent, pb};

    /// One attempt to deliver an event.
    #[derive(Debug)]
    pub struct Call<'a> {
        pub pubsub: &'a str,
        pub topic: &'a str,
        pub path: &'a str,
        pub event: &'a CloudEvent,
        pub token: Option<&'a str>,
    }

    /// What each transport does its own way; the rest is [`TestSidecar`](super::TestSidecar)'s.
    pub trait Deliver: Send + Sync + 'static {
        /// The app's subscriptions, in gRPC form.
        fn subscriptions(&self) -> Vec<pb::TopicSubscription>;
        /// Sends the event once and reads the answer as daprd does.
        fn attempt(&self, call: &Call<'_>) -> impl Future<Output = Attempt> + Send;
    }
}

/// A sidecar for tests; see the [module documentation](self).
pub struct TestSidecar<T: SidecarTransport = Grpc> {
    transport: T,
    pubsub: Option<String>,
    token: Option<String>,
    max_attempts: u32,
    next_id: AtomicU64,
    deliveries: Mutex<Vec<Delivery>>,
}

impl<T: SidecarTransport + std::fmt::Debug> std::fmt::Debug for TestSidecar<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSidecar")
            .field("transport", &self.transport)
            .field("pubsub", &self.pubsub)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl<T: SidecarTransport> TestSidecar<T> {
    fn with(transport: T) -> Self {
        TestSidecar {
            transport,
            pubsub: None,
            token: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            next_id: AtomicU64::new(1),
            deliveries: Mutex::default(),
        }
    }

    /// The pub/sub that [`publish`](Self::publish) uses (default: the first subscription's).
    #[must_use]
    pub fn pubsub(mut self, pubsub: impl Into<String>) -> Self {
        self.pubsub = Some(pubsub.into());
        self
    }

    /// The `dapr-api-token` to send, as daprd does when `APP_API_TOKEN` is set.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Deliveries per event before giving up (default [`DEFAULT_MAX_ATTEMPTS`]):
    /// 1 + the `maxRetries` of the resiliency policy you play.
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The app's subscriptions, in gRPC form.
    pub fn subscriptions(&self) -> Vec<pb::TopicSubscription> {
        self.transport.subscriptions()
    }

    /// The subscription of a topic on the sidecar's pub/sub.
    pub fn subscription(&self, topic: &str) -> Option<pb::TopicSubscription> {
        self.find(&self.default_pubsub(), topic)
    }

    /// Every delivery so far, dead-letter deliveries included, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The deliveries that ended in a dead-letter topic.
    pub fn dead_letters(&self) -> Vec<Delivery> {
        self.deliveries().into_iter().filter(|d| matches!(d.settlement, Settlement::DeadLettered(_))).collect()
    }

    /// Publishes one event on the sidecar's pub/sub and delivers it until it settles.
    pub async fn publish(&self, topic: &str, event: CloudEvent) -> Result<Delivery, SidecarError> {
        self.publish_to(&self.default_pubsub(), topic, event).await
    }

    /// Publishes one event on `pubsub`; a dead-lettered event is also
    /// delivered to its dead-letter topic when the app subscribes to it
    /// (once: dead letters of dead letters are not followed).
    pub async fn publish_to(&self, pubsub: &str, topic: &str, mut event: CloudEvent) -> Result<Delivery, SidecarError> {
        if event.id.is_empty() {
            event.id = self.fresh_id("test");
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
        let Some(path) = route(&subscription, event)? else {
            delivery.settlement = settle_unrouted(&subscription.dead_letter_topic);
            return Ok(self.record(delivery));
        };
        delivery.path.clone_from(&path);
        let call = transport::Call { pubsub, topic, path: &path, event, token: self.token.as_deref() };
        let delivery = delivery
            .settle_with(&subscription.dead_letter_topic, self.max_attempts, || self.transport.attempt(&call))
            .await;
        Ok(self.record(delivery))
    }

    async fn dead_letter(&self, pubsub: &str, delivery: &Delivery, event: &CloudEvent) -> Result<(), SidecarError> {
        if let Settlement::DeadLettered(dead_letter_topic) = &delivery.settlement
            && self.find(pubsub, dead_letter_topic).is_some()
        {
            self.deliver(pubsub, dead_letter_topic, event).await?;
        }
        Ok(())
    }

    fn default_pubsub(&self) -> String {
        self.pubsub.clone().unwrap_or_else(|| {
            self.subscriptions().first().map_or_else(|| "pubsub".to_owned(), |s| s.pubsub_name.clone())
        })
    }

    fn find(&self, pubsub: &str, topic: &str) -> Option<pb::TopicSubscription> {
        self.subscriptions().into_iter().find(|s| s.pubsub_name == pubsub && s.topic == topic)
    }

    fn fresh_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, delivery: Delivery) -> Delivery {
        self.deliveries.lock().unwrap_or_else(|p| p.into_inner()).push(delivery.clone());
        delivery
    }
}

/// The path daprd would deliver on: the first matching rule's, else the
/// default; `None` when nothing matches and there is no default.
fn route(subscription: &pb::TopicSubscription, event: &CloudEvent) -> Result<Option<String>, SidecarError> {
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
fn settle(attempt: Attempt, dead_letter: &str) -> Option<Settlement> {
    match attempt {
        Ok(Outcome::Success) => Some(Settlement::Acked),
        Ok(Outcome::Drop) if dead_letter.is_empty() => Some(Settlement::Dropped),
        Ok(Outcome::Drop) => Some(Settlement::DeadLettered(dead_letter.to_owned())),
        Err(Code::Unimplemented) => Some(Settlement::SilentlyDropped),
        Ok(Outcome::Retry) | Err(_) => None,
    }
}

fn exhausted(dead_letter: &str) -> Settlement {
    if dead_letter.is_empty() { Settlement::Nacked } else { Settlement::DeadLettered(dead_letter.to_owned()) }
}

fn settle_unrouted(dead_letter: &str) -> Settlement {
    if dead_letter.is_empty() { Settlement::Unrouted } else { Settlement::DeadLettered(dead_letter.to_owned()) }
}
