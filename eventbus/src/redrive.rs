//! Dead letters back to their topic: read a dead-letter topic through daprd,
//! choose events, publish them again to the topic they were meant for.
//!
//! daprd dead-letters an event when the app answers `DROP` (poison: it will
//! never succeed as it is) and when its resiliency policy runs out of
//! retries (a valid event and an outage longer than the retry budget). The
//! second kind, and the first once the cause is fixed, should go back.
//! [`Redrive`] reads the dead-letter topic with a streaming subscription
//! (`SubscribeTopicEventsAlpha1`, so any app can run it next to its
//! sidecar, without an app port), shows each event to a chooser, and:
//!
//! | chosen | dry run (the default) | [`Redrive::apply`] |
//! |---|---|---|
//! | [`Decision::Redrive`] | listed, kept | published again to its topic with its own CloudEvent id, then removed from the dead-letter topic |
//! | [`Decision::Keep`] | listed, kept | kept |
//!
//! **Safe to repeat**: a re-driven event keeps its id, so a consumer that
//! deduplicates by id (as every eventbus consumer should) applies it at
//! most once, however often it is re-driven.
//!
//! **How an event is kept.** A streaming subscription consumes: every event
//! must be answered. A kept event is answered `DROP` on a stream whose
//! dead-letter topic is the dead-letter topic itself, so daprd publishes it
//! there again and acknowledges the original: the event stays, at the end of
//! the topic. The run stops when an event it has already seen comes round
//! again, or when nothing arrives for [`Redrive::idle`]; events daprd had
//! sent but the run had not read yet are not answered, stay pending in the
//! broker and come back after its processing timeout (Redis:
//! `processingTimeout`, 60 s by default) to the next run.
//!
//! **Where the event goes**: the topic in its CloudEvent `topic` attribute
//! (daprd sets it when the event is published, and dead-lettering keeps
//! it), or the one given to [`Redrive::to_topic`].
//!
//! ```no_run
//! use eventbus::redrive::{Decision, Redrive};
//! use eventbus::sidecar::DaprEndpoint;
//!
//! # async fn run() -> Result<(), eventbus::redrive::RedriveError> {
//! // List what is on order.completed.dlq, then re-drive one event.
//! let listed = Redrive::new(DaprEndpoint::from_env(), "pubsub-redis", "order.completed.dlq")
//!     .run(|_| Decision::Keep)
//!     .await?;
//! for (dead_letter, action) in &listed.entries {
//!     println!("{} {} {:?}", dead_letter.id(), dead_letter.topic, action);
//! }
//! Redrive::new(DaprEndpoint::from_env(), "pubsub-redis", "order.completed.dlq")
//!     .apply()
//!     .run(|dead_letter| if dead_letter.id() == "evt-42" { Decision::Redrive } else { Decision::Keep })
//!     .await?;
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::time::Duration;

use crate::grpc::proto::runtime as pb;
use crate::grpc::proto::runtime::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Inbound;

use crate::event::Envelope;
use crate::outcome::Outcome;
use crate::publisher::{DaprPublisher, Message, Publisher};
use crate::sidecar::DaprEndpoint;
use crate::transport::streaming::{processed, subscribe};

/// How long a run waits for the next dead letter before it ends, by default.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(5);

/// One event read from a dead-letter topic.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The topic it goes back to.
    pub topic: String,
    /// The whole event as it came.
    pub envelope: Envelope,
}

impl DeadLetter {
    /// Its CloudEvent id (kept when it is re-driven).
    pub fn id(&self) -> &str {
        &self.envelope.id
    }

    /// Its CloudEvent `time` (when it was first published), if any.
    pub fn time(&self) -> Option<std::time::SystemTime> {
        self.envelope.time()
    }

    /// Its CloudEvent `type`.
    pub fn event_type(&self) -> &str {
        &self.envelope.event_type
    }
}

/// What to do with a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Publish it again to its topic (with [`Redrive::apply`]; listed otherwise).
    Redrive,
    /// Leave it on the dead-letter topic.
    Keep,
}

/// What a run did with a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Published again to its topic and removed from the dead-letter topic.
    Redriven,
    /// Chosen, not re-driven: a dry run. Still on the dead-letter topic.
    WouldRedrive,
    /// Not chosen. Still on the dead-letter topic.
    Kept,
    /// Chosen, but publishing it failed (the reason). Still on the dead-letter topic.
    Failed(String),
}

/// What a run saw and did, one entry per dead letter, in the order read.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Report {
    /// Each dead letter and what was done with it.
    pub entries: Vec<(DeadLetter, Action)>,
}

impl Report {
    /// How many entries got `action`.
    pub fn count(&self, action: &Action) -> usize {
        self.entries.iter().filter(|(_, a)| a == action).count()
    }
}

/// Why a run could not read the dead-letter topic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedriveError {
    /// daprd could not be reached.
    #[error("cannot connect to daprd at {address}: {reason}")]
    Connect {
        /// The endpoint.
        address: String,
        /// Why.
        reason: String,
    },
    /// daprd refused the subscription or ended the stream with an error.
    #[error("the subscription to {topic} failed: {status}")]
    Stream {
        /// The dead-letter topic.
        topic: String,
        /// daprd's answer.
        status: crate::status::Status,
    },
}

/// A run over one dead-letter topic. See the [module documentation](self).
#[derive(Debug, Clone)]
#[must_use]
pub struct Redrive {
    endpoint: DaprEndpoint,
    pubsub: String,
    dead_letter_topic: String,
    to_topic: Option<String>,
    apply: bool,
    idle: Duration,
}

impl Redrive {
    /// A dry run over `dead_letter_topic` of `pubsub`, through the daprd at `endpoint`.
    pub fn new(endpoint: DaprEndpoint, pubsub: impl Into<String>, dead_letter_topic: impl Into<String>) -> Self {
        Redrive {
            endpoint,
            pubsub: pubsub.into(),
            dead_letter_topic: dead_letter_topic.into(),
            to_topic: None,
            apply: false,
            idle: DEFAULT_IDLE,
        }
    }

    /// Re-drive what is chosen, instead of listing it.
    pub fn apply(mut self) -> Self {
        self.apply = true;
        self
    }

    /// Publish to `topic`, whatever the events' `topic` attribute says.
    pub fn to_topic(mut self, topic: impl Into<String>) -> Self {
        self.to_topic = Some(topic.into());
        self
    }

    /// End the run after this long without a new dead letter (default [`DEFAULT_IDLE`]).
    pub fn idle(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// Reads the dead-letter topic, asks `choose` about each event once, and
    /// does what the table in the [module documentation](self) says.
    pub async fn run(self, mut choose: impl FnMut(&DeadLetter) -> Decision) -> Result<Report, RedriveError> {
        let address = self.endpoint.address().to_owned();
        let connect_error = |reason: String| RedriveError::Connect { address: address.clone(), reason };
        let channel = self
            .endpoint
            .channel()
            .map_err(connect_error)?
            .connect()
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let stream_error = |status: tonic::Status| RedriveError::Stream {
            topic: self.dead_letter_topic.clone(),
            status: crate::status::from_grpc(&status),
        };
        let initial = pb::SubscribeTopicEventsRequestInitialAlpha1 {
            pubsub_name: self.pubsub.clone(),
            topic: self.dead_letter_topic.clone(),
            metadata: Default::default(),
            // A kept event is answered DROP: daprd puts it back on this topic.
            dead_letter_topic: Some(self.dead_letter_topic.clone()),
        };
        let (answers, mut inbound) = subscribe(channel.clone(), &self.endpoint, initial).await.map_err(stream_error)?;
        let publisher = DaprPublisher::on_channel(channel, &self.endpoint);

        let mut report = Report::default();
        let mut seen = HashSet::new();
        loop {
            let message = match tokio::time::timeout(self.idle, inbound.message()).await {
                Err(_) | Ok(Ok(None)) => break,
                Ok(Err(status)) => return Err(stream_error(status)),
                Ok(Ok(Some(message))) => message,
            };
            let Some(Inbound::EventMessage(event)) = message.subscribe_topic_events_response_type else { continue };
            let envelope = Envelope::from(event);
            if !seen.insert(envelope.id.clone()) {
                // Come round again: every dead letter there was has been seen.
                let _ = answers.send(processed(envelope.id, Outcome::Drop)).await;
                break;
            }
            let topic = self.to_topic.clone().or_else(|| envelope.extensions.get_str("topic").map(str::to_owned));
            let dead_letter = DeadLetter { topic: topic.unwrap_or_default(), envelope };
            let action = match choose(&dead_letter) {
                Decision::Keep => Action::Kept,
                Decision::Redrive if !self.apply => Action::WouldRedrive,
                Decision::Redrive => self.republish(&publisher, &dead_letter).await,
            };
            let (id, topic) = (dead_letter.id(), &dead_letter.topic);
            match &action {
                Action::Redriven => tracing::info!(event.id = %id, %topic, "dead letter re-driven"),
                Action::Failed(reason) => tracing::warn!(event.id = %id, %topic, %reason, "re-drive failed; kept"),
                _ => {}
            }
            let answer = if action == Action::Redriven { Outcome::Success } else { Outcome::Drop };
            let _ = answers.send(processed(id.to_owned(), answer)).await;
            report.entries.push((dead_letter, action));
        }
        // Half-close once the answers are written, then let daprd end its side.
        drop(answers);
        let _ =
            tokio::time::timeout(Duration::from_secs(5), async { while let Ok(Some(_)) = inbound.message().await {} })
                .await;
        Ok(report)
    }

    /// Publishes `dead_letter` to its topic as it came, with its own id.
    async fn republish(&self, publisher: &DaprPublisher, dead_letter: &DeadLetter) -> Action {
        if dead_letter.topic.is_empty() {
            return Action::Failed("the event has no `topic` attribute; name one with Redrive::to_topic".into());
        }
        let mut event = dead_letter.envelope.to_structured();
        // daprd sets these again for the topic it publishes to.
        for attribute in ["topic", "pubsubname"] {
            event.remove(attribute);
        }
        let data = match serde_json::to_vec(&event) {
            Ok(data) => data,
            Err(e) => return Action::Failed(e.to_string()),
        };
        let message = Message::new(&self.pubsub, &dead_letter.topic, "application/cloudevents+json", data);
        match publisher.publish(message).await {
            Ok(()) => Action::Redriven,
            Err(error) => Action::Failed(error.to_string()),
        }
    }
}
