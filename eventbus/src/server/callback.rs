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
use tokio_util::task::TaskTracker;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::handlers::{BindingFn, InvocationFn, Job, JobFn, ReadinessFn, job_name};
use super::token;
use crate::consumer::Context;
use crate::event::{Envelope, Extensions};
use crate::middleware::{self, EventRequest, EventService};
use crate::outcome::Outcome;
use crate::registry::Registry;

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
    pub bulk_concurrency: usize,
    pub max_message_size: usize,
    pub readiness: Option<ReadinessFn>,
    pub draining: AtomicBool,
    pub in_flight: TaskTracker,
}

/// The implementation of the three gRPC services (cheap to clone).
#[derive(Clone)]
pub(crate) struct Callback(pub Arc<Shared>);

impl Shared {
    /// Runs one event through the pipeline and answers for it. Never fails.
    pub(crate) async fn dispatch(&self, envelope: Envelope) -> Outcome {
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
        let Some(route) = self.registry.route(&envelope.pubsub, &envelope.topic, &envelope.path) else {
            tracing::warn!(
                event.id = %envelope.id, pubsub = %envelope.pubsub, topic = %envelope.topic, path = %envelope.path,
                outcome = %self.unknown_topic, "no handler for this pubsub/topic/path"
            );
            return self.unknown_topic;
        };
        let request =
            EventRequest { envelope: Arc::new(envelope), route: route.clone(), context: self.context.clone() };
        middleware::run(self.service.clone(), request).await
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
        let mut entry_futures = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry_id = entry.entry_id.clone();
            let envelope = bulk_envelope(entry, &topic, &pubsub_name, &path, &metadata);
            let topic = &topic;
            entry_futures.push(async move {
                let outcome = match envelope {
                    Ok(envelope) => self.dispatch(envelope).await,
                    Err(reason) => {
                        tracing::error!(entry.id = %entry_id, topic = %topic, reason, "bulk entry cannot be read; dropped");
                        Outcome::Drop
                    }
                };
                pb::TopicEventBulkResponseEntry { entry_id, status: outcome.to_status() as i32 }
            });
        }
        // `buffered` keeps the entries' order and runs at most N at once.
        let statuses = futures_util::stream::iter(entry_futures).buffered(self.bulk_concurrency).collect().await;
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
        let outcome = self.0.dispatch(envelope).await;
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
        self.0.ready().await.map_err(Status::unavailable)?;
        Ok(Response::new(pb::HealthCheckResponse {}))
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
