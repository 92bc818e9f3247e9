//! The gRPC services the sidecar calls: `AppCallback`, `AppCallbackAlpha`
//! and `AppCallbackHealthCheck`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use dapr::dapr::proto::common::v1::{InvokeRequest, InvokeResponse};
use dapr::dapr::proto::runtime::v1 as pb;
use dapr::dapr::proto::runtime::v1::topic_event_bulk_request_entry::Event as BulkEvent;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::handlers::{BindingFn, InvocationFn, Job, JobFn, ReadinessFn, job_name};
use super::token;
use crate::consumer::Context;
use crate::event::{Envelope, Extensions};
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tracing::Instrument;

use crate::error::HandlerError;
use crate::middleware::{self, EventRequest, EventService, outcome_of};
use crate::outcome::Outcome;
use crate::registry::Registry;
use crate::registry::Route;

/// Everything the RPCs share; built once by the server builder.
pub(crate) struct Shared {
    pub registry: Registry,
    pub service: EventService,
    pub context: Arc<Context>,
    pub invocations: HashMap<String, InvocationFn>,
    pub bindings: HashMap<String, BindingFn>,
    pub jobs: HashMap<String, JobFn>,
    pub token: Option<String>,
    pub unknown_topic: Outcome,
    pub missing_id: Outcome,
    pub bulk_concurrency: usize,
    pub max_message_size: usize,
    pub readiness: Option<ReadinessFn>,
    pub draining: AtomicBool,
    pub in_flight: TaskTracker,
    /// Cancelled when the drain deadline passes: what is still running is answered `Retry`.
    pub past_drain_deadline: CancellationToken,
}

/// The implementation of the three gRPC services (cheap to clone).
#[derive(Clone)]
pub(crate) struct Callback(pub Arc<Shared>);

impl Shared {
    /// Runs one event through the pipeline and answers for it. Never fails.
    pub(crate) async fn dispatch(&self, envelope: Arc<Envelope>) -> Outcome {
        // Take the in-flight token before looking at `draining`, so a drain
        // that starts now waits for this event.
        let _in_flight = self.in_flight.token();
        if self.draining.load(Ordering::Acquire) {
            tracing::info!(event.id = %envelope.id, topic = %envelope.topic, "draining for shutdown; event will be retried");
            return Outcome::Retry;
        }
        if envelope.data.len() > self.max_message_size {
            tracing::error!(
                event.id = %envelope.id, topic = %envelope.topic, bytes = envelope.data.len(), limit = self.max_message_size,
                "event larger than max_message_size; dropped to the dead-letter topic"
            );
            return Outcome::Drop;
        }
        if envelope.id.is_empty() {
            return self.without_id(&envelope.topic);
        }
        let Some(route) = self.registry.route(&envelope.pubsub, &envelope.topic, &envelope.path) else {
            tracing::warn!(
                event.id = %envelope.id, pubsub = %envelope.pubsub, topic = %envelope.topic, path = %envelope.path,
                outcome = %self.unknown_topic, "no handler for this pubsub/topic/path"
            );
            return self.unknown_topic;
        };
        let request = EventRequest { envelope, route: route.clone(), context: self.context.clone() };
        self.until_drain_deadline(middleware::run(self.service.clone(), request)).await
    }

    /// An event without a CloudEvent id cannot be deduplicated.
    fn without_id(&self, topic: &str) -> Outcome {
        tracing::error!(topic, outcome = %self.missing_id, "event without a CloudEvent id; it cannot be deduplicated");
        self.missing_id
    }

    /// `work`, or `Retry` once the drain deadline has passed. `biased`: the
    /// work is polled first, so an event that completes at once never waits
    /// on the shared token.
    async fn until_drain_deadline(&self, work: impl Future<Output = Outcome>) -> Outcome {
        tokio::select! {
            biased;
            outcome = work => outcome,
            () = self.past_drain_deadline.cancelled() => Outcome::Retry,
        }
    }

    async fn bulk(
        &self,
        request: Request<pb::TopicEventBulkRequest>,
        rpc: &str,
    ) -> Result<pb::TopicEventBulkResponse, Status> {
        let (metadata, _, bulk) = request.into_parts();
        token::check(self.token.as_deref(), &metadata, rpc, &bulk.id)?;
        let metadata = Arc::new(metadata);
        let pb::TopicEventBulkRequest { entries, topic, pubsub_name, path, .. } = bulk;
        let mut ids = Vec::with_capacity(entries.len());
        let mut envelopes = Vec::with_capacity(entries.len());
        for entry in entries {
            ids.push(entry.entry_id.clone());
            envelopes.push(bulk_envelope(entry, &topic, &pubsub_name, &path, &metadata).map(Arc::new));
        }
        let outcomes = match self.registry.route(&pubsub_name, &topic, &path) {
            // Asking with no envelopes only tells whether the consumer takes batches.
            Some(route) if route.consumer().handle_batch(&[], &self.context).is_some() => {
                self.batch(route, &ids, envelopes).await
            }
            _ => {
                // `buffered` keeps the entries' order and runs at most N at once.
                let topic = topic.as_str();
                let mut each = Vec::with_capacity(ids.len());
                for (envelope, id) in envelopes.into_iter().zip(&ids) {
                    each.push(async move {
                        match envelope {
                            Ok(envelope) => self.dispatch(envelope).await,
                            Err(reason) => unreadable_entry(id, topic, reason),
                        }
                    });
                }
                futures_util::stream::iter(each).buffered(self.bulk_concurrency).collect().await
            }
        };
        let statuses = ids
            .into_iter()
            .zip(outcomes)
            .map(|(entry_id, outcome)| pb::TopicEventBulkResponseEntry { entry_id, status: outcome.to_status() as i32 })
            .collect();
        Ok(pb::TopicEventBulkResponse { statuses })
    }

    /// A bulk request for a consumer that takes whole batches: one call, under
    /// the route's concurrency permit, timeout and panic containment.
    async fn batch(
        &self,
        route: &Arc<Route>,
        ids: &[String],
        envelopes: Vec<Result<Arc<Envelope>, &'static str>>,
    ) -> Vec<Outcome> {
        let _in_flight = self.in_flight.token();
        let handler = route.name();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; ids.len()];
        let mut batch = Vec::with_capacity(ids.len());
        for (index, envelope) in envelopes.into_iter().enumerate() {
            match envelope {
                Ok(envelope) if envelope.data.len() > self.max_message_size => {
                    tracing::error!(event.id = %envelope.id, bytes = envelope.data.len(), "event larger than max_message_size; dropped");
                    outcomes[index] = Some(Outcome::Drop);
                }
                Ok(envelope) if envelope.id.is_empty() => outcomes[index] = Some(self.without_id(route.topic())),
                Ok(envelope) => batch.push((index, envelope)),
                Err(reason) => outcomes[index] = Some(unreadable_entry(&ids[index], route.topic(), reason)),
            }
        }
        let every = |outcome: Outcome| batch.iter().map(move |(index, _)| (*index, outcome)).collect::<Vec<_>>();
        let decided: Vec<(usize, Outcome)> = if self.draining.load(Ordering::Acquire) {
            tracing::info!(entries = batch.len(), "draining for shutdown; batch will be retried");
            every(Outcome::Retry)
        } else {
            let permit = match route.limiter() {
                Some(limiter) => limiter.clone().try_acquire_owned().map(Some).map_err(|_| ()),
                None => Ok(None),
            };
            match permit {
                Err(()) => {
                    tracing::warn!(
                        topic = route.topic(),
                        entries = batch.len(),
                        "concurrency limit reached; batch will be retried"
                    );
                    every(Outcome::Retry)
                }
                Ok(_permit) => {
                    tokio::select! {
                        biased;
                        decided = self.run_batch(route, &batch) => decided,
                        () = self.past_drain_deadline.cancelled() => every(Outcome::Retry),
                    }
                }
            }
        };
        for (index, outcome) in decided {
            outcomes[index] = Some(outcome);
        }
        let outcomes: Vec<Outcome> = outcomes.into_iter().map(|o| o.unwrap_or(Outcome::Retry)).collect();
        for outcome in &outcomes {
            route.metrics().total(*outcome).increment(1);
        }
        tracing::debug!(handler, entries = outcomes.len(), "batch handled");
        outcomes
    }

    async fn run_batch(&self, route: &Arc<Route>, batch: &[(usize, Arc<Envelope>)]) -> Vec<(usize, Outcome)> {
        let envelopes: Vec<Arc<Envelope>> = batch.iter().map(|(_, envelope)| envelope.clone()).collect();
        let every = |outcome: Outcome| batch.iter().map(|(index, _)| (*index, outcome)).collect::<Vec<_>>();
        let Some(future) = route.consumer().handle_batch(&envelopes, &self.context) else {
            return every(Outcome::Retry);
        };
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "batch",
            topic = route.topic(),
            pubsub = route.pubsub(),
            handler = route.name(),
            entries = batch.len()
        );
        let guarded = AssertUnwindSafe(future).catch_unwind().instrument(span);
        let result = match route.timeout() {
            Some(limit) => tokio::time::timeout(limit, guarded).await.ok(),
            None => Some(guarded.await),
        };
        route.metrics().duration.record(started.elapsed().as_secs_f64());
        match result {
            None => {
                tracing::warn!(
                    handler = route.name(),
                    entries = batch.len(),
                    "batch handler timed out; batch will be retried"
                );
                every(Outcome::Retry)
            }
            Some(Err(_panic)) => {
                tracing::error!(
                    handler = route.name(),
                    entries = batch.len(),
                    "batch handler panicked; batch will be retried"
                );
                every(Outcome::Retry)
            }
            Some(Ok(results)) => {
                let mut results = results.into_iter();
                batch
                    .iter()
                    .map(|(index, envelope)| {
                        let result = results.next().unwrap_or_else(|| {
                            Err(HandlerError::transient(anyhow::anyhow!("no result for this entry")))
                        });
                        (*index, outcome_of(result, &envelope.id, route.name()))
                    })
                    .collect()
            }
        }
    }

    async fn job(&self, request: Request<pb::JobEventRequest>, rpc: &str) -> Result<pb::JobEventResponse, Status> {
        let (metadata, _, job) = request.into_parts();
        let name = job_name(&job.name, &job.method).to_owned();
        token::check(self.token.as_deref(), &metadata, rpc, &name)?;
        let Some(handler) = self.jobs.get(&name) else {
            tracing::warn!(job = %name, "no handler for this job");
            return Err(Status::not_found(format!("no handler for job {name:?}")));
        };
        let (type_url, data) = job.data.map(|any| (any.type_url, Bytes::from(any.value))).unwrap_or_default();
        let job = Job { name: name.clone(), data, type_url, content_type: job.content_type };
        let _in_flight = self.in_flight.token();
        match handler(job).await {
            Ok(()) => Ok(pb::JobEventResponse {}),
            Err(error) => {
                tracing::warn!(job = %name, error = %error, "job failed");
                Err(Status::internal(format!("job {name:?} failed: {error}")))
            }
        }
    }
}

fn unreadable_entry(id: &str, topic: &str, reason: &str) -> Outcome {
    tracing::error!(entry.id = %id, topic, reason, "bulk entry cannot be read; dropped");
    Outcome::Drop
}

/// The envelope of one bulk entry: its own CloudEvent, or raw bytes
/// (`rawPayload`) whose id is the entry id.
fn bulk_envelope(
    entry: pb::TopicEventBulkRequestEntry,
    topic: &str,
    pubsub: &str,
    path: &str,
    metadata: &Arc<MetadataMap>,
) -> Result<Envelope, &'static str> {
    let mut envelope = match entry.event {
        Some(BulkEvent::CloudEvent(ce)) => Envelope {
            id: ce.id,
            source: ce.source,
            event_type: ce.r#type,
            spec_version: ce.spec_version,
            data_content_type: ce.data_content_type,
            data: ce.data.into(),
            extensions: Extensions(ce.extensions.unwrap_or_default()),
            ..Envelope::default()
        },
        Some(BulkEvent::Bytes(bytes)) => Envelope {
            id: entry.entry_id,
            data_content_type: entry.content_type,
            data: bytes.into(),
            ..Envelope::default()
        },
        None => return Err("entry has no event"),
    };
    envelope.topic = topic.to_owned();
    envelope.pubsub = pubsub.to_owned();
    envelope.path = path.to_owned();
    envelope.metadata = metadata.clone();
    envelope.entry_metadata = entry.metadata;
    Ok(envelope)
}

fn topic_envelope(request: Request<pb::TopicEventRequest>) -> (Envelope, MetadataMap) {
    let (metadata, _, event) = request.into_parts();
    let envelope = Envelope {
        id: event.id,
        source: event.source,
        event_type: event.r#type,
        spec_version: event.spec_version,
        data_content_type: event.data_content_type,
        data: event.data.into(),
        topic: event.topic,
        pubsub: event.pubsub_name,
        path: event.path,
        extensions: Extensions(event.extensions.unwrap_or_default()),
        metadata: Arc::default(),
        entry_metadata: HashMap::new(),
    };
    (envelope, metadata)
}

#[tonic::async_trait]
impl pb::app_callback_server::AppCallback for Callback {
    async fn on_invoke(&self, request: Request<InvokeRequest>) -> Result<Response<InvokeResponse>, Status> {
        let method = request.get_ref().method.clone();
        token::check(self.0.token.as_deref(), request.metadata(), "OnInvoke", &method)?;
        let Some(handler) = self.0.invocations.get(&method) else {
            tracing::warn!(method, "no handler for this invocation");
            return Err(Status::unimplemented(format!("no handler for method {method:?}")));
        };
        let _in_flight = self.0.in_flight.token();
        handler(request.into_inner()).await.map(Response::new)
    }

    async fn list_topic_subscriptions(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListTopicSubscriptionsResponse>, Status> {
        let subscriptions = self.0.registry.subscriptions().to_vec();
        Ok(Response::new(pb::ListTopicSubscriptionsResponse { subscriptions }))
    }

    async fn on_topic_event(
        &self,
        request: Request<pb::TopicEventRequest>,
    ) -> Result<Response<pb::TopicEventResponse>, Status> {
        let (mut envelope, metadata) = topic_envelope(request);
        token::check(self.0.token.as_deref(), &metadata, "OnTopicEvent", &envelope.id)?;
        envelope.metadata = Arc::new(metadata);
        let outcome = self.0.dispatch(Arc::new(envelope)).await;
        Ok(Response::new(pb::TopicEventResponse { status: outcome.to_status() as i32 }))
    }

    async fn list_input_bindings(&self, _: Request<()>) -> Result<Response<pb::ListInputBindingsResponse>, Status> {
        let mut bindings: Vec<String> = self.0.bindings.keys().cloned().collect();
        bindings.sort();
        Ok(Response::new(pb::ListInputBindingsResponse { bindings }))
    }

    async fn on_binding_event(
        &self,
        request: Request<pb::BindingEventRequest>,
    ) -> Result<Response<pb::BindingEventResponse>, Status> {
        let name = request.get_ref().name.clone();
        token::check(self.0.token.as_deref(), request.metadata(), "OnBindingEvent", &name)?;
        let Some(handler) = self.0.bindings.get(&name) else {
            tracing::warn!(binding = %name, "no handler for this binding");
            return Err(Status::not_found(format!("no handler for binding {name:?}")));
        };
        let _in_flight = self.0.in_flight.token();
        handler(request.into_inner()).await.map(Response::new)
    }

    async fn on_bulk_topic_event(
        &self,
        request: Request<pb::TopicEventBulkRequest>,
    ) -> Result<Response<pb::TopicEventBulkResponse>, Status> {
        self.0.bulk(request, "OnBulkTopicEvent").await.map(Response::new)
    }

    async fn on_job_event(
        &self,
        request: Request<pb::JobEventRequest>,
    ) -> Result<Response<pb::JobEventResponse>, Status> {
        self.0.job(request, "OnJobEvent").await.map(Response::new)
    }
}

#[tonic::async_trait]
impl pb::app_callback_alpha_server::AppCallbackAlpha for Callback {
    async fn on_bulk_topic_event_alpha1(
        &self,
        request: Request<pb::TopicEventBulkRequest>,
    ) -> Result<Response<pb::TopicEventBulkResponse>, Status> {
        self.0.bulk(request, "OnBulkTopicEventAlpha1").await.map(Response::new)
    }

    async fn on_job_event_alpha1(
        &self,
        request: Request<pb::JobEventRequest>,
    ) -> Result<Response<pb::JobEventResponse>, Status> {
        self.0.job(request, "OnJobEventAlpha1").await.map(Response::new)
    }
}

#[tonic::async_trait]
impl pb::app_callback_health_check_server::AppCallbackHealthCheck for Callback {
    async fn health_check(&self, _: Request<()>) -> Result<Response<pb::HealthCheckResponse>, Status> {
        if let Err(reason) = self.0.ready().await {
            // daprd stops delivering while this fails: say why, every time.
            tracing::warn!(%reason, "HealthCheck: not ready");
            return Err(Status::unavailable(reason));
        }
        Ok(Response::new(pb::HealthCheckResponse {}))
    }
}

/// The standard `grpc.health.v1.Health` service, for Kubernetes gRPC probes
/// and other gRPC clients: `SERVING` exactly when `HealthCheck` (daprd's
/// probe) passes. The empty service name and the three services of this
/// server are known; any other name is `NOT_FOUND`.
#[tonic::async_trait]
impl tonic_health::pb::health_server::Health for Callback {
    async fn check(
        &self,
        request: Request<tonic_health::pb::HealthCheckRequest>,
    ) -> Result<Response<tonic_health::pb::HealthCheckResponse>, Status> {
        let status = self.grpc_health(&request.into_inner().service).await?;
        Ok(Response::new(tonic_health::pb::HealthCheckResponse { status: status as i32 }))
    }

    type WatchStream = futures_util::stream::BoxStream<'static, Result<tonic_health::pb::HealthCheckResponse, Status>>;

    /// The status now, then each change (checked every [`WATCH_INTERVAL`]).
    async fn watch(
        &self,
        request: Request<tonic_health::pb::HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        // An unknown service is NOT_FOUND before the stream starts.
        self.grpc_health(&service).await?;
        let callback = self.clone();
        let changes = futures_util::stream::unfold((callback, service, None), |(callback, service, last)| async move {
            loop {
                if last.is_some() {
                    tokio::time::sleep(WATCH_INTERVAL).await;
                }
                let status = callback.grpc_health(&service).await.unwrap_or(ServingStatus::ServiceUnknown);
                if Some(status) != last {
                    let response = tonic_health::pb::HealthCheckResponse { status: status as i32 };
                    return Some((Ok(response), (callback, service, Some(status))));
                }
            }
        });
        Ok(Response::new(Box::pin(changes)))
    }
}

use tonic_health::pb::health_check_response::ServingStatus;

/// How often `grpc.health.v1.Health/Watch` looks at readiness again.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The services `grpc.health.v1.Health` knows, besides the empty name (the whole server).
const HEALTH_SERVICES: [&str; 3] = [
    "dapr.proto.runtime.v1.AppCallback",
    "dapr.proto.runtime.v1.AppCallbackAlpha",
    "dapr.proto.runtime.v1.AppCallbackHealthCheck",
];

impl Callback {
    async fn grpc_health(&self, service: &str) -> Result<ServingStatus, Status> {
        if !service.is_empty() && !HEALTH_SERVICES.contains(&service) {
            return Err(Status::not_found(format!("unknown service {service:?}")));
        }
        Ok(match self.0.ready().await {
            Ok(()) => ServingStatus::Serving,
            Err(_) => ServingStatus::NotServing,
        })
    }
}

impl Shared {
    /// Not draining and the user's probe, if any, passes.
    pub(crate) async fn ready(&self) -> Result<(), String> {
        if self.draining.load(Ordering::Acquire) {
            return Err("draining for shutdown".into());
        }
        match &self.readiness {
            Some(probe) => probe().await,
            None => Ok(()),
        }
    }
}
