//! The validated table of subscriptions, built once at start-up.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::consumer::BoxedConsumer;
use crate::error::Error;
use crate::extract::Context;
use crate::subscription::{Bulk, Subscription, TopicSubscription};

/// Where one (pubsub, topic, path) leads: the consumer and its limits.
pub(crate) struct Route {
    consumer: BoxedConsumer,
    takes_batches: bool,
    pubsub: String,
    topic: String,
    timeout: Option<Duration>,
    limiter: Option<Arc<Semaphore>>,
    metrics: RouteMetrics,
}

/// The route's metric handles, registered once when the server is built (so
/// install your `metrics` recorder before building it), not per event.
#[derive(Clone)]
pub(crate) struct RouteMetrics {
    /// `eventbus_events_total{pubsub, topic, outcome}`, by outcome.
    success: metrics::Counter,
    retry: metrics::Counter,
    drop: metrics::Counter,
    /// `eventbus_handler_duration_seconds{pubsub, topic}`.
    pub(crate) duration: metrics::Histogram,
    /// `eventbus_events_in_flight{pubsub, topic}`.
    pub(crate) in_flight: metrics::Gauge,
    /// `eventbus_handler_panics_total{pubsub, topic}`.
    pub(crate) panics: metrics::Counter,
}

/// The HELP text and unit of every eventbus metric, and
/// `eventbus_build_info{version}`; registered with the recorder when a
/// server is built.
pub(crate) fn describe_metrics() {
    use metrics::Unit;
    metrics::describe_counter!(
        "eventbus_events_total",
        Unit::Count,
        "Events answered, by pub/sub, topic and outcome (success, retry, drop)."
    );
    metrics::describe_histogram!(
        "eventbus_handler_duration_seconds",
        Unit::Seconds,
        "Time in the handler per call (one event, or one batch)."
    );
    metrics::describe_gauge!("eventbus_events_in_flight", Unit::Count, "Events being handled now.");
    metrics::describe_counter!(
        "eventbus_handler_panics_total",
        Unit::Count,
        "Handler calls that panicked (their events are retried)."
    );
    metrics::describe_counter!(
        "eventbus_stream_repeated_ids_total",
        Unit::Count,
        "Events a streaming subscription delivered again while the same id was in flight (handled and answered once)."
    );
    metrics::describe_gauge!("eventbus_build_info", "The eventbus library version, as a label; always 1.");
    metrics::gauge!("eventbus_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics").finish_non_exhaustive()
    }
}

impl RouteMetrics {
    fn new(pubsub: &str, topic: &str) -> Self {
        let labels = [("pubsub", pubsub.to_owned()), ("topic", topic.to_owned())];
        let total = |outcome: &'static str| {
            let [pubsub, topic] = labels.clone();
            metrics::counter!("eventbus_events_total", &[pubsub, topic, ("outcome", outcome.to_owned())])
        };
        RouteMetrics {
            success: total("success"),
            retry: total("retry"),
            drop: total("drop"),
            duration: metrics::histogram!("eventbus_handler_duration_seconds", &labels),
            in_flight: metrics::gauge!("eventbus_events_in_flight", &labels),
            panics: metrics::counter!("eventbus_handler_panics_total", &labels),
        }
    }

    /// The counter of `outcome`.
    pub(crate) fn total(&self, outcome: crate::Outcome) -> &metrics::Counter {
        match outcome {
            crate::Outcome::Success => &self.success,
            crate::Outcome::Retry => &self.retry,
            crate::Outcome::Drop => &self.drop,
        }
    }
}

impl Route {
    /// The consumer.
    pub(crate) fn consumer(&self) -> &BoxedConsumer {
        &self.consumer
    }
    /// The consumer's name.
    pub(crate) fn name(&self) -> &str {
        self.consumer.name()
    }
    /// The pub/sub component.
    pub(crate) fn pubsub(&self) -> &str {
        &self.pubsub
    }
    /// The topic.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }
    /// The handler timeout, if any.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    /// The concurrency limiter shared by the events of this route, if any.
    pub(crate) fn limiter(&self) -> Option<&Arc<Semaphore>> {
        self.limiter.as_ref()
    }
    /// Whether bulk entries reach the consumer together.
    pub(crate) fn takes_batches(&self) -> bool {
        self.takes_batches
    }
    /// The route's metric handles.
    pub(crate) fn metrics(&self) -> &RouteMetrics {
        &self.metrics
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("consumer", &self.consumer.name())
            .field("pubsub", &self.pubsub)
            .field("topic", &self.topic)
            .finish()
    }
}

#[derive(Default)]
struct TopicRoutes {
    by_path: HashMap<String, Arc<Route>>,
    default: Option<Arc<Route>>,
}

/// Defaults the registry applies to subscriptions that leave them unset.
#[derive(Debug, Clone)]
pub(crate) struct Defaults {
    pub pubsub: String,
    pub timeout: Option<Duration>,
    pub concurrency: Option<usize>,
}

/// Every subscription of the app: answers `ListTopicSubscriptions` and finds
/// the route of an event in three hash lookups, without allocating.
pub(crate) struct Registry {
    topics: HashMap<String, HashMap<String, TopicRoutes>>,
    subscriptions: Vec<TopicSubscription>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("subscriptions", &self.subscriptions).finish()
    }
}

/// The topic-wide part of a subscription while consumers are merged.
struct TopicEntry {
    subscription: TopicSubscription,
    settings: Option<TopicSettings>,
    settings_owner: String,
    /// The server's default concurrency limit, shared by the topic's routes.
    limiter: Option<Arc<Semaphore>>,
}

impl Registry {
    pub(crate) fn build(consumers: &[BoxedConsumer], defaults: &Defaults, ctx: &Context) -> Result<Registry, Error> {
        let mut topics: HashMap<String, HashMap<String, TopicRoutes>> = HashMap::new();
        // One entry per (pubsub, topic), in first-registration order.
        let mut entries: Vec<TopicEntry> = Vec::new();
        let mut entry_of: HashMap<(String, String), usize> = HashMap::new();

        for consumer in consumers {
            let name = consumer.name().to_owned();
            let subscription = consumer.subscription();
            subscription.validate().map_err(|reason| Error::InvalidSubscription { handler: name.clone(), reason })?;
            consumer.check(ctx).map_err(|missing| Error::MissingState { handler: name.clone(), missing })?;

            let pubsub = subscription.pubsub.clone().unwrap_or_else(|| defaults.pubsub.clone());
            let topic = subscription.topic.clone();
            let entry_index = *entry_of.entry((pubsub.clone(), topic.clone())).or_insert_with(|| {
                entries.push(TopicEntry {
                    subscription: TopicSubscription {
                        pubsub: pubsub.clone(),
                        topic: topic.clone(),
                        ..TopicSubscription::default()
                    },
                    settings: None,
                    settings_owner: name.clone(),
                    limiter: defaults.concurrency.map(|n| Arc::new(Semaphore::new(n))),
                });
                entries.len() - 1
            });
            let entry = &mut entries[entry_index];
            // A handler's own limit is its own; the server's default is shared by the topic.
            let limiter = match subscription.concurrency {
                Some(n) => Some(Arc::new(Semaphore::new(n))),
                None => entry.limiter.clone(),
            };
            let route = Arc::new(Route {
                consumer: consumer.clone(),
                takes_batches: consumer.takes_batches(),
                pubsub: pubsub.clone(),
                topic: topic.clone(),
                timeout: subscription.timeout.or(defaults.timeout),
                limiter,
                metrics: RouteMetrics::new(&pubsub, &topic),
            });

            merge_topic_settings(entry, &subscription, &name)?;

            let routes = topics.entry(pubsub.clone()).or_default().entry(topic.clone()).or_default();
            let mut claim = |path: &str| -> Result<(), Error> {
                let path = route_key(path);
                if let Some(existing) = routes.by_path.get(path) {
                    return Err(Error::DuplicateRoute {
                        route: format!("{pubsub}/{topic} path {path:?}"),
                        first: existing.name().to_owned(),
                        second: name.clone(),
                    });
                }
                routes.by_path.insert(path.to_owned(), route.clone());
                Ok(())
            };
            if subscription.rules.is_empty() {
                claim(subscription.default_path())?;
                routes.default = Some(route.clone());
                entry.subscription.default_path = Some(subscription.default_path().to_owned());
            } else {
                for rule in &subscription.rules {
                    claim(&rule.path)?;
                    entry.subscription.rules.push(rule.clone());
                }
            }
        }

        let subscriptions = entries
            .into_iter()
            .map(|mut entry| {
                // Stable: rules of one priority keep their registration order.
                entry.subscription.rules.sort_by_key(|rule| rule.priority);
                entry.subscription
            })
            .collect();
        Ok(Registry { topics, subscriptions })
    }

    /// The route of an event. An empty or `/` path (older sidecars, streaming)
    /// falls back to the topic's default route.
    pub(crate) fn route(&self, pubsub: &str, topic: &str, path: &str) -> Option<&Arc<Route>> {
        let routes = self.topics.get(pubsub)?.get(topic)?;
        match route_key(path) {
            "" => routes.default.as_ref(),
            key => routes.by_path.get(key),
        }
    }

    /// The subscriptions, one per topic, as the sidecar is told them.
    pub(crate) fn subscriptions(&self) -> &[TopicSubscription] {
        &self.subscriptions
    }
}

/// A path as routes are keyed: without its leading `/`, so that the gRPC
/// path (`order.completed`, `/v2`) and the HTTP route (`/order.completed`,
/// `/v2`) of one subscription find the same route.
fn route_key(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// The settings of a subscription that belong to its whole topic.
#[derive(PartialEq)]
struct TopicSettings {
    dead_letter: Option<String>,
    metadata: BTreeMap<String, String>,
    bulk: Option<Bulk>,
}

/// Dead-letter topic, metadata and bulk settings are per topic: handlers
/// sharing a topic must agree on any of them they set.
fn merge_topic_settings(entry: &mut TopicEntry, subscription: &Subscription, name: &str) -> Result<(), Error> {
    let mine = TopicSettings {
        dead_letter: subscription.dead_letter.clone(),
        metadata: subscription.metadata.clone(),
        bulk: subscription.bulk,
    };
    if mine.dead_letter.is_none() && mine.metadata.is_empty() && mine.bulk.is_none() {
        return Ok(());
    }
    if let Some(existing) = &entry.settings {
        let setting = if existing.dead_letter != mine.dead_letter {
            "dead-letter topic"
        } else if existing.metadata != mine.metadata {
            "metadata"
        } else if existing.bulk != mine.bulk {
            "bulk settings"
        } else {
            return Ok(());
        };
        return Err(Error::ConflictingSubscription {
            topic: format!("{}/{}", entry.subscription.pubsub, entry.subscription.topic),
            setting,
            first: entry.settings_owner.clone(),
            second: name.to_owned(),
        });
    }
    let sub = &mut entry.subscription;
    sub.dead_letter = mine.dead_letter.clone();
    sub.metadata = mine.metadata.clone();
    sub.bulk = mine.bulk;
    entry.settings = Some(mine);
    entry.settings_owner = name.to_owned();
    Ok(())
}
