//! What a consumer subscribes to, as the sidecar reads it from
//! `ListTopicSubscriptions`.

use std::collections::BTreeMap;
use std::time::Duration;

mod rule;

pub use rule::Rule;

/// Bulk delivery settings (`bulkSubscribe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bulk {
    /// Most messages in one batch.
    pub max_messages: u32,
    /// Longest wait for a batch to fill, in milliseconds.
    pub max_await_ms: u32,
}

impl Default for Bulk {
    fn default() -> Self {
        // Dapr's own defaults.
        Bulk { max_messages: 100, max_await_ms: 1000 }
    }
}

/// One topic as the sidecar is told it (`ListTopicSubscriptions`, `GET
/// /dapr/subscribe`, one stream): the subscriptions of every consumer of the
/// topic together; see [`Server::subscriptions`](crate::Server::subscriptions).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TopicSubscription {
    /// The pub/sub component.
    pub pubsub: String,
    /// The topic.
    pub topic: String,
    /// The rules of every consumer of the topic, in the order daprd tries
    /// them (by priority, then registration).
    pub rules: Vec<Rule>,
    /// The path of the default route, when a consumer takes the events no
    /// rule matches.
    pub default_path: Option<String>,
    /// The dead-letter topic.
    pub dead_letter: Option<String>,
    /// Subscription metadata.
    pub metadata: BTreeMap<String, String>,
    /// Bulk delivery, when on.
    pub bulk: Option<Bulk>,
}

/// One handler's subscription.
///
/// A subscription without rules is the topic's *default* route; with rules it
/// receives the events those rules match. Several handlers may share a topic
/// (one default and any number of rule handlers); topic-wide settings
/// (dead-letter topic, metadata, bulk) must then agree.
///
/// ```
/// use eventbus::subscription::{Subscription, Rule};
/// use std::time::Duration;
///
/// let subscription = Subscription::new("order.completed")
///     .pubsub("pubsub-redis")
///     .rule("event.type == \"order.completed.v2\"", "/orders/v2")
///     .dead_letter("order.completed.dlq")
///     .metadata("rawPayload", "true")
///     .bulk(100, 500)
///     .timeout(Duration::from_secs(5))
///     .concurrency(32);
/// assert_eq!(subscription.topic, "order.completed");
/// assert_eq!(subscription.rules, vec![Rule::new("event.type == \"order.completed.v2\"", "/orders/v2")]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Subscription {
    /// The pub/sub component; `None` takes the server's default.
    pub pubsub: Option<String>,
    /// The topic.
    pub topic: String,
    /// Routing rules handled by this consumer, in order.
    pub rules: Vec<Rule>,
    /// The path of the default route; `None` uses the topic name.
    pub path: Option<String>,
    /// Dead-letter topic for dropped and exhausted events.
    pub dead_letter: Option<String>,
    /// Subscription metadata (`rawPayload`, component-specific keys).
    pub metadata: BTreeMap<String, String>,
    /// Bulk delivery, when enabled.
    pub bulk: Option<Bulk>,
    /// Handler timeout; `None` takes the server's.
    pub timeout: Option<Duration>,
    /// Most events handled at once; `None` takes the server's.
    pub concurrency: Option<usize>,
}

impl Subscription {
    /// A subscription to `topic` on the server's default pub/sub.
    pub fn new(topic: impl Into<String>) -> Self {
        Subscription { topic: topic.into(), ..Subscription::default() }
    }

    /// The pub/sub component.
    #[must_use]
    pub fn pubsub(mut self, pubsub: impl Into<String>) -> Self {
        self.pubsub = Some(pubsub.into());
        self
    }

    /// Adds a routing rule of priority 0: `matches` is CEL over `event`
    /// (see [`Rule`]).
    #[must_use]
    pub fn rule(mut self, matches: impl Into<String>, path: impl Into<String>) -> Self {
        self.rules.push(Rule::new(matches, path));
        self
    }

    /// Adds a routing rule with a priority. daprd tries a topic's rules in
    /// the order it is given them; eventbus gives them sorted by priority,
    /// lowest first (as the Dapr Go SDK's `Priority`), and rules of equal
    /// priority in the order they were registered, across every consumer of
    /// the topic.
    ///
    /// ```
    /// use eventbus::{Event, Server, Subscription, handler};
    ///
    /// let server = Server::builder()
    ///     .consumer(handler(Subscription::new("prices").rule("true", "/any"), |_: Event<serde_json::Value>| async {}))
    ///     .consumer(handler(
    ///         Subscription::new("prices").prioritized_rule(-1, "event.type == \"v2\"", "/v2"),
    ///         |_: Event<serde_json::Value>| async {},
    ///     ))
    ///     .build()
    ///     .unwrap();
    /// let rules = &server.subscriptions()[0].rules;
    /// assert_eq!(rules.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/v2", "/any"]);
    /// ```
    #[must_use]
    pub fn prioritized_rule(mut self, priority: i32, matches: impl Into<String>, path: impl Into<String>) -> Self {
        let mut rule = Rule::new(matches, path);
        rule.priority = priority;
        self.rules.push(rule);
        self
    }

    /// The path of the default route.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The dead-letter topic.
    #[must_use]
    pub fn dead_letter(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter = Some(topic.into());
        self
    }

    /// A metadata entry.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// `rawPayload: true`: the sidecar delivers the publisher's bytes without
    /// a CloudEvent wrapper.
    #[must_use]
    pub fn raw_payload(self) -> Self {
        self.metadata("rawPayload", "true")
    }

    /// Enables bulk delivery.
    #[must_use]
    pub fn bulk(mut self, max_messages: u32, max_await_ms: u32) -> Self {
        self.bulk = Some(Bulk { max_messages, max_await_ms });
        self
    }

    /// Handler timeout: a slower handler's event is answered `Retry`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Most events of this handler in flight; beyond it events get `Retry`.
    #[must_use]
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = Some(limit);
        self
    }

    /// The path of the default route: the one set, else the topic.
    pub fn default_path(&self) -> &str {
        self.path.as_deref().unwrap_or(&self.topic)
    }

    /// Checks what can be checked without the other subscriptions.
    pub(crate) fn validate(&self) -> Result<(), SubscriptionError> {
        fn bad(name: &str) -> bool {
            name.is_empty() || name.chars().any(char::is_whitespace)
        }
        if bad(&self.topic) {
            return Err(SubscriptionError::Topic(self.topic.clone()));
        }
        if let Some(pubsub) = self.pubsub.as_deref().filter(|p| bad(p)) {
            return Err(SubscriptionError::Pubsub(pubsub.to_owned()));
        }
        if let Some(dead_letter) = self.dead_letter.as_deref().filter(|d| bad(d)) {
            return Err(SubscriptionError::DeadLetter(dead_letter.to_owned()));
        }
        for (index, rule) in self.rules.iter().enumerate() {
            rule.check().map_err(|reason| SubscriptionError::Rule { index, matches: rule.matches.clone(), reason })?;
        }
        if self.concurrency == Some(0) {
            return Err(SubscriptionError::Concurrency);
        }
        if self.bulk.is_some_and(|b| b.max_messages == 0) {
            return Err(SubscriptionError::BulkSize);
        }
        Ok(())
    }
}

/// Why a [`Subscription`] is refused when the server is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// The topic is empty or has whitespace.
    #[error("topic {0:?} is empty or has whitespace")]
    Topic(String),
    /// The pub/sub name is empty or has whitespace.
    #[error("pubsub {0:?} is empty or has whitespace")]
    Pubsub(String),
    /// The dead-letter topic is empty or has whitespace.
    #[error("dead-letter topic {0:?} is empty or has whitespace")]
    DeadLetter(String),
    /// A routing rule (by position) is not a CEL expression daprd can
    /// evaluate, or has an empty path.
    #[error("routing rule {index} ({matches:?}): {reason}")]
    Rule {
        /// The rule's position, from 0.
        index: usize,
        /// Its CEL expression.
        matches: String,
        /// What is wrong: the parser's message, with the place it points at.
        reason: String,
    },
    /// `concurrency(0)`.
    #[error("concurrency must be at least 1")]
    Concurrency,
    /// `bulk(0, _)`.
    #[error("bulk max_messages must be at least 1")]
    BulkSize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(Subscription::new("").validate(), Err(SubscriptionError::Topic(String::new())));
        assert!(Subscription::new("").validate().unwrap_err().to_string().contains("empty"));
        assert!(Subscription::new("a b").validate().is_err());
        assert!(Subscription::new("t").pubsub("").validate().is_err());
        assert_eq!(Subscription::new("t").concurrency(0).validate(), Err(SubscriptionError::Concurrency));
        assert!(Subscription::new("t").validate().is_ok());
        assert_eq!(Subscription::new("t").default_path(), "t");
    }
}
