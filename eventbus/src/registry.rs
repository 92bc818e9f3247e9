//! The validated table of subscriptions, built once at start-up.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::consumer::BoxedConsumer;
use crate::error::Error;
use crate::extract::Context;
use crate::middleware::{BoxService, CallHandler, Kind, Response};
use crate::outcome::{Outcome, Reason};
use crate::pipeline::invocation::{BindingFn, InvocationFn, JobFn};
use crate::subscription::{Bulk, Subscription, TopicSubscription};

/// Where a call leads: for events, one (pubsub, topic, path); for the
/// others, one method, binding or job. The handler and its limits.
pub(crate) struct Route {
    target: Target,
    /// The handler's name (logs, metrics, errors).
    name: String,
    takes_batches: bool,
    pubsub: String,
    topic: String,
    timeout: Option<Duration>,
    limiter: Option<Arc<Semaphore>>,
    metrics: RouteMetrics,
    /// The route's own layers around the handler, when it has some.
    stack: Option<BoxService>,
}

/// What a route calls.
pub(crate) enum Target {
    Consumer(BoxedConsumer),
    Invocation(InvocationFn),
    Binding(BindingFn),
    Job(JobFn),
}

impl Target {
    fn kind(&self) -> Kind {
        match self {
            Target::Consumer(_) => Kind::Event,
            Target::Invocation(_) => Kind::Invocation,
            Target::Binding(_) => Kind::Binding,
            Target::Job(_) => Kind::Job,
        }
    }
}

/// The route's metric handles, registered once when the server is built (so
/// install your `metrics` recorder before building it), not per event.
#[derive(Clone)]
pub(crate) struct RouteMetrics {
    /// `eventbus_calls_total{kind, name, outcome}` (success, error) of a
    /// call's route. Events are counted by the pipeline, which answers some
    /// before any route ([`count_events`]).
    calls: Option<[metrics::Counter; 2]>,
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
        "Events answered, by pub/sub, topic, outcome (success, retry, drop) and reason (handled, handler, decode, timeout, overload, panic, draining, refused, unknown_route, oversize, missing_id)."
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
    metrics::describe_counter!(
        "eventbus_stream_reconnects_total",
        Unit::Count,
        "Streaming subscriptions lost and dialled again."
    );
    metrics::describe_counter!(
        "eventbus_publish_attempts_total",
        Unit::Count,
        "PublishEvent calls by outcome: success, retry (failed, tried again), failure (failed, given up)."
    );
    metrics::describe_counter!(
        "eventbus_calls_total",
        Unit::Count,
        "Service invocations, binding events and jobs answered, by kind, name and outcome (success, error)."
    );
    metrics::describe_histogram!(
        "eventbus_call_duration_seconds",
        Unit::Seconds,
        "Time in the handler of a service invocation, binding event or job."
    );
    metrics::describe_gauge!(
        "eventbus_calls_in_flight",
        Unit::Count,
        "Service invocations, binding events and jobs being handled now."
    );
    metrics::describe_counter!(
        "eventbus_call_panics_total",
        Unit::Count,
        "Invocation, binding and job handler calls that panicked (answered Internal)."
    );
    metrics::describe_gauge!(
        "eventbus_ready",
        "1 when the last readiness check passed (not draining, the readiness probe fine), else 0."
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
        RouteMetrics {
            calls: None,
            duration: metrics::histogram!("eventbus_handler_duration_seconds", &labels),
            in_flight: metrics::gauge!("eventbus_events_in_flight", &labels),
            panics: metrics::counter!("eventbus_handler_panics_total", &labels),
        }
    }

    fn for_call(kind: Kind, name: &str) -> Self {
        let labels = [("kind", kind.as_str().to_owned()), ("name", name.to_owned())];
        let total = |outcome: &'static str| {
            let [kind, name] = labels.clone();
            metrics::counter!("eventbus_calls_total", &[kind, name, ("outcome", outcome.to_owned())])
        };
        RouteMetrics {
            calls: Some([total("success"), total("error")]),
            duration: metrics::histogram!("eventbus_call_duration_seconds", &labels),
            in_flight: metrics::gauge!("eventbus_calls_in_flight", &labels),
            panics: metrics::counter!("eventbus_call_panics_total", &labels),
        }
    }

    /// Counts a call's success or failure (events are counted by [`count_events`]).
    pub(crate) fn record(&self, response: &Response) {
        if let Some([success, error]) = &self.calls {
            if response.is_success() { success } else { error }.increment(1);
        }
    }
}

/// Counts answered events in `eventbus_events_total{pubsub, topic, outcome,
/// reason}`: every answer the app gives, whether a handler saw the event or
/// not. Looked up per distinct (outcome, reason) of the call, which is one
/// or two for nearly every call.
pub(crate) fn count_events(pubsub: &str, topic: &str, answers: &[(Outcome, Reason)]) {
    let mut counts: Vec<((Outcome, Reason), u64)> = Vec::new();
    for answer in answers {
        match counts.iter_mut().find(|(seen, _)| seen == answer) {
            Some((_, count)) => *count += 1,
            None => counts.push((*answer, 1)),
        }
    }
    for ((outcome, reason), count) in counts {
        metrics::counter!(
            "eventbus_events_total",
            "pubsub" => pubsub.to_owned(),
            "topic" => topic.to_owned(),
            "outcome" => outcome.as_str(),
            "reason" => reason.as_str()
        )
        .increment(count);
    }
}

impl Route {
    /// The route of a method, binding or job.
    fn call(target: Target, name: &str, defaults: &Defaults) -> Route {
        let kind = target.kind();
        Route {
            target,
            name: name.to_owned(),
            takes_batches: false,
            pubsub: String::new(),
            topic: name.to_owned(),
            timeout: defaults.timeout,
            limiter: defaults.concurrency.map(|n| Arc::new(Semaphore::new(n))),
            metrics: RouteMetrics::for_call(kind, name),
            stack: None,
        }
    }

    /// The route's own layers around the handler, when it has some.
    pub(crate) fn stack(&self) -> Option<&BoxService> {
        self.stack.as_ref()
    }

    /// What it calls.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }
    /// Which kind of call it takes.
    pub(crate) fn kind(&self) -> Kind {
        self.target.kind()
    }
    /// The handler's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
    /// The topic, method, binding or job it serves.
    pub(crate) fn target_name(&self) -> &str {
        &self.topic
    }
    /// The pub/sub component.
    pub(crate) fn pubsub(&self) -> &str {
        &self.pubsub
    }
    /// The topic (empty for a call that is not an event).
    pub(crate) fn topic(&self) -> &str {
        if self.kind() == Kind::Event { &self.topic } else { "" }
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
            .field("kind", &self.kind())
            .field("name", &self.name)
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
    /// Methods, bindings and jobs, by kind and name.
    calls: HashMap<Kind, HashMap<String, Arc<Route>>>,
}

/// The handlers of service invocation, bindings and jobs a server is built with.
#[derive(Default)]
pub(crate) struct Calls {
    pub(crate) invocations: Vec<(String, InvocationFn)>,
    pub(crate) bindings: Vec<(String, BindingFn)>,
    pub(crate) jobs: Vec<(String, JobFn)>,
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
    pub(crate) fn build(
        consumers: &[BoxedConsumer],
        calls: Calls,
        defaults: &Defaults,
        ctx: &Context,
    ) -> Result<Registry, Error> {
        let mut routes_of_calls: HashMap<Kind, HashMap<String, Arc<Route>>> = HashMap::new();
        let targets = (calls.invocations.into_iter().map(|(name, f)| ("invocation", name, Target::Invocation(f))))
            .chain(calls.bindings.into_iter().map(|(name, f)| ("binding", name, Target::Binding(f))))
            .chain(calls.jobs.into_iter().map(|(name, f)| ("job", name, Target::Job(f))));
        for (kind, name, target) in targets {
            let routes = routes_of_calls.entry(target.kind()).or_default();
            if routes.contains_key(&name) {
                return Err(Error::DuplicateHandler { kind, name });
            }
            let route = Arc::new(Route::call(target, &name, defaults));
            routes.insert(name, route);
        }

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
            let layers = consumer.route_layers();
            let route = Arc::new(Route {
                target: Target::Consumer(consumer.clone()),
                name: name.clone(),
                takes_batches: consumer.takes_batches(),
                pubsub: pubsub.clone(),
                topic: topic.clone(),
                // A consumer with a timeout layer of its own has no other.
                timeout: if layers.own_timeout { None } else { subscription.timeout.or(defaults.timeout) },
                limiter,
                metrics: RouteMetrics::new(&pubsub, &topic),
                stack: (!layers.layers.is_empty()).then(|| {
                    layers.layers.iter().rev().fold(BoxService::new(CallHandler), |inner, layer| layer(inner))
                }),
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
        Ok(Registry { topics, subscriptions, calls: routes_of_calls })
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

    /// The route of a method, binding or job.
    pub(crate) fn call(&self, kind: Kind, name: &str) -> Option<&Arc<Route>> {
        self.calls.get(&kind)?.get(name)
    }

    /// The names of the input bindings, sorted (`ListInputBindings`).
    pub(crate) fn bindings(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.calls.get(&Kind::Binding).map(|routes| routes.keys().cloned().collect()).unwrap_or_default();
        names.sort();
        names
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
