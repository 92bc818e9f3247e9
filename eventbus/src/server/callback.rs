//! The gRPC services the sidecar calls: `AppCallback`, `AppCallbackAlpha`
//! and `AppCallbackHealthCheck`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::grpc::proto::common::{InvokeRequest, InvokeResponse};
use crate::grpc::proto::runtime as pb;
use crate::grpc::proto::runtime::topic_event_bulk_request_entry::Event as BulkEvent;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::invocation::{BindingFn, InvocationFn, Job, JobFn, ReadinessFn, job_name};
use super::token;
use crate::event::{Envelope, Extensions};
use crate::extract::Context;
use crate::middleware::{self, EventRequest, EventService, Events};
use crate::outcome::{Outcome, report_drop};
use crate::registry::{Registry, Route};

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

/// One delivered entry: an event, or a bulk entry that holds none.
pub(crate) type Entry = Result<Arc<Envelope>, Unreadable>;

/// A bulk entry that cannot become an event.
#[derive(Debug)]
pub(crate) struct Unreadable {
    id: String,
    reason: &'static str,
}

impl Unreadable {
    pub(crate) fn new(id: String, reason: &'static str) -> Self {
        Unreadable { id, reason }
    }
}

impl Shared {
    /// Runs one event through the pipeline and answers for it. Never fails.
    pub(crate) async fn dispatch(&self, envelope: Arc<Envelope>) -> Outcome {
        let key = envelope.clone();
        let mut outcomes = self.deliver(&key.pubsub, &key.topic, &key.path, vec![Ok(envelope)]).await;
        outcomes.pop().unwrap_or(Outcome::Retry)
    }

    /// The one way in for events, single or bulk: one outcome per entry, in
    /// order. Entries that cannot be handled (unreadable, too large, without
    /// an id, for no route) are answered here; the others go through the
    /// middleware once each, or together for a consumer that takes batches.
    pub(crate) async fn deliver(&self, pubsub: &str, topic: &str, path: &str, entries: Vec<Entry>) -> Vec<Outcome> {
        // Take the in-flight token before looking at `draining`, so a drain
        // that starts now waits for these events.
        let _in_flight = self.in_flight.token();
        if self.draining.load(Ordering::Acquire) {
            tracing::info!(topic, entries = entries.len(), "draining for shutdown; retried");
            return vec![Outcome::Retry; entries.len()];
        }
        // Admitted entries hold a placeholder until the handlers answer.
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut admitted = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            match self.admit(entry, pubsub, topic) {
                Ok(envelope) => {
                    admitted.push((index, envelope));
                    outcomes.push(Outcome::Retry);
                }
                Err(outcome) => outcomes.push(outcome),
            }
        }
        let Some((_, first)) = admitted.first() else { return outcomes };
        let answered = match self.registry.route(pubsub, topic, path) {
            None => {
                tracing::warn!(
                    event.id = %first.id, entries = admitted.len(), pubsub, topic, path,
                    outcome = %self.unknown_topic, "no handler for this pubsub/topic/path"
                );
                if self.unknown_topic == Outcome::Drop {
                    for (_, event) in &admitted {
                        report_drop(&self.context, pubsub, topic, &event.id, format!("no handler for path {path:?}"));
                    }
                }
                vec![self.unknown_topic; admitted.len()]
            }
            Some(route) if route.takes_batches() => {
                let events = admitted.iter().map(|(_, event)| event.clone()).collect();
                self.run(route, Events::Batch(events)).await
            }
            Some(route) => self.run_each(route, &admitted).await,
        };
        for ((index, _), outcome) in admitted.iter().zip(answered) {
            outcomes[*index] = outcome;
        }
        outcomes
    }

    /// The entry's event, or the answer for an entry no handler may see.
    fn admit(&self, entry: Entry, pubsub: &str, topic: &str) -> Result<Arc<Envelope>, Outcome> {
        let envelope = entry.map_err(|Unreadable { id, reason }| {
            tracing::error!(entry.id = %id, topic, reason, "bulk entry cannot be read; dropped");
            report_drop(&self.context, pubsub, topic, &id, format!("bulk entry cannot be read: {reason}"));
            Outcome::Drop
        })?;
        if envelope.data.len() > self.max_message_size {
            tracing::error!(
                event.id = %envelope.id, topic, bytes = envelope.data.len(), limit = self.max_message_size,
                "event larger than max_message_size; dropped to the dead-letter topic"
            );
            let reason =
                format!("{} bytes, more than max_message_size ({})", envelope.data.len(), self.max_message_size);
            report_drop(&self.context, pubsub, topic, &envelope.id, reason);
            return Err(Outcome::Drop);
        }
        if envelope.id.is_empty() {
            // The id is the deduplication key: such an event cannot be applied once.
            tracing::error!(topic, outcome = %self.missing_id, "event without a CloudEvent id; it cannot be deduplicated");
            if self.missing_id == Outcome::Drop {
                report_drop(&self.context, pubsub, topic, "", "no CloudEvent id");
            }
            return Err(self.missing_id);
        }
        Ok(envelope)
    }

    /// Each event through the middleware on its own: in order, at most
    /// `bulk_concurrency` at once.
    async fn run_each(&self, route: &Arc<Route>, admitted: &[(usize, Arc<Envelope>)]) -> Vec<Outcome> {
        if let [(_, event)] = admitted {
            return self.run(route, Events::One(event.clone())).await;
        }
        // Collected first: a stream over a borrowing closure is not `Send`-provable.
        let calls: Vec<_> = admitted
            .iter()
            .map(|(_, event)| {
                let event = Events::One(event.clone());
                async move { self.run(route, event).await.pop().unwrap_or(Outcome::Retry) }
            })
            .collect();
        futures_util::stream::iter(calls).buffered(self.bulk_concurrency).collect().await
    }

    /// One handler call through the middleware, or `Retry` for every event
    /// once the drain deadline has passed. `biased`: the work is polled
    /// first, so a call that completes at once never waits on the shared token.
    async fn run(&self, route: &Arc<Route>, events: Events) -> Vec<Outcome> {
        let request = EventRequest::new(events, route.clone(), self.context.clone());
        let count = request.events().len();
        tokio::select! {
            biased;
            outcomes = middleware::run(self.service.clone(), request) => outcomes,
            () = self.past_drain_deadline.cancelled() => vec![Outcome::Retry; count],
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
        let ids: Vec<String> = entries.iter().map(|entry| entry.entry_id.clone()).collect();
        let entries = entries.into_iter().map(|entry| bulk_envelope(entry, &topic, &pubsub_name, &path, &metadata));
        let outcomes = self.deliver(&pubsub_name, &topic, &path, entries.collect()).await;
        let statuses = ids
            .into_iter()
            .zip(outcomes)
            .map(|(entry_id, outcome)| pb::TopicEventBulkResponseEntry { entry_id, status: outcome.to_status() as i32 })
            .collect();
        Ok(pb::TopicEventBulkResponse { statuses })
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

/// The envelope of one bulk entry: its own CloudEvent, or raw bytes
/// (`rawPayload`) whose id is the entry id.
fn bulk_envelope(
    entry: pb::TopicEventBulkRequestEntry,
    topic: &str,
    pubsub: &str,
    path: &str,
    metadata: &Arc<MetadataMap>,
) -> Entry {
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
        None => return Err(Unreadable::new(entry.entry_id, "entry has no event")),
    };
    envelope.topic = topic.to_owned();
    envelope.pubsub = pubsub.to_owned();
    envelope.path = path.to_owned();
    envelope.metadata = metadata.clone();
    envelope.entry_metadata = entry.metadata;
    Ok(Arc::new(envelope))
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
        let (metadata, _, event) = request.into_parts();
        let mut envelope = Envelope::from(event);
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
