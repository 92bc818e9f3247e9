//! The gRPC app channel: `AppCallback`, `AppCallbackAlpha`,
//! `AppCallbackHealthCheck` and `grpc.health.v1.Health`, as thin adapters
//! from Dapr's messages to the pipeline and back.

use std::convert::Infallible;
use std::sync::Arc;

use crate::grpc::proto::common::{InvokeRequest, InvokeResponse};
use crate::grpc::proto::runtime as pb;
use crate::grpc::proto::runtime::topic_event_bulk_request_entry::Event as BulkEvent;
use bytes::Bytes;
use tonic::{Request, Response, Status};

use super::token::RequireToken;
use crate::binding::BindingEvent;
use crate::event::{Envelope, Extensions, Metadata, metadata_from_grpc};
use crate::invoke::Invocation;
use crate::pipeline::invocation::{Job, job_name};
use crate::pipeline::{Entry, Pipeline, Unreadable};
use crate::status::to_grpc;
use crate::subscription::TopicSubscription;

/// The largest HTTP/2 header list the server accepts: 4 MiB. daprd appends a
/// `traceparent` and a `grpc-trace-bin` header for every entry of a bulk call
/// (about 180 bytes each), so hyper's default 16 KiB refuses bulk calls of
/// more than about 90 entries, and daprd retries them forever. 4 MiB holds
/// the headers of about 20,000 entries.
pub const MAX_HEADER_LIST_SIZE: u32 = 4 * 1024 * 1024;

/// The implementation of the gRPC services (cheap to clone).
#[derive(Clone)]
pub(crate) struct Callback(pub(crate) Arc<Pipeline>);

/// The gRPC app channel: `AppCallback`, `AppCallbackAlpha`,
/// `AppCallbackHealthCheck` and `grpc.health.v1.Health` behind one tower
/// service that routes each call by its service name. Serve it with
/// `tonic::transport::Server::serve_with_incoming`, or mount it under those
/// four paths ([`AppChannel::SERVICES`]) in a router of your own. Cheap to
/// clone.
#[derive(Clone)]
pub struct AppChannel {
    app_callback: RequireToken<pb::app_callback_server::AppCallbackServer<Callback>>,
    alpha: RequireToken<pb::app_callback_alpha_server::AppCallbackAlphaServer<Callback>>,
    health_check: pb::app_callback_health_check_server::AppCallbackHealthCheckServer<Callback>,
    health: ProbeOnCheck<tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>>,
}

impl std::fmt::Debug for AppChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppChannel").field("services", &Self::SERVICES).finish()
    }
}

impl AppChannel {
    /// The gRPC services it answers, by their full names.
    pub const SERVICES: [&'static str; 4] = [
        "dapr.proto.runtime.v1.AppCallback",
        "dapr.proto.runtime.v1.AppCallbackAlpha",
        "dapr.proto.runtime.v1.AppCallbackHealthCheck",
        "grpc.health.v1.Health",
    ];

    /// The services of `pipeline`, with the message size limit applied.
    pub(crate) fn new(pipeline: Arc<Pipeline>) -> Self {
        let limit = pipeline.max_message_size.saturating_mul(4).max(crate::server::DEFAULT_MAX_MESSAGE_SIZE);
        let token = pipeline.token.clone();
        let callback = Callback(pipeline.clone());
        // The token is one layer in front of the two services with data-plane RPCs.
        AppChannel {
            app_callback: RequireToken::new(
                pb::app_callback_server::AppCallbackServer::new(callback.clone()).max_decoding_message_size(limit),
                token.as_deref(),
            ),
            alpha: RequireToken::new(
                pb::app_callback_alpha_server::AppCallbackAlphaServer::new(callback.clone())
                    .max_decoding_message_size(limit),
                token.as_deref(),
            ),
            health_check: pb::app_callback_health_check_server::AppCallbackHealthCheckServer::new(callback),
            // For Kubernetes gRPC probes: the same readiness as HealthCheck.
            health: ProbeOnCheck {
                inner: tonic_health::pb::health_server::HealthServer::new(pipeline.health.service()),
                pipeline,
            },
        }
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for AppChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    /// The services are always ready: each call is served by a clone.
    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        use tower::ServiceExt;
        // `/<package>.<Service>/<Method>`
        let service = request.uri().path().trim_start_matches('/').split('/').next().unwrap_or_default();
        match service {
            "dapr.proto.runtime.v1.AppCallback" => Box::pin(self.app_callback.clone().oneshot(request)),
            "dapr.proto.runtime.v1.AppCallbackAlpha" => Box::pin(self.alpha.clone().oneshot(request)),
            "dapr.proto.runtime.v1.AppCallbackHealthCheck" => Box::pin(self.health_check.clone().oneshot(request)),
            "grpc.health.v1.Health" => Box::pin(self.health.clone().oneshot(request)),
            _ => {
                let status = Status::unimplemented(format!("no gRPC service {service:?} here"));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

impl Callback {
    async fn bulk(&self, request: Request<pb::TopicEventBulkRequest>) -> Result<pb::TopicEventBulkResponse, Status> {
        let (metadata, _, bulk) = request.into_parts();
        let metadata = metadata_from_grpc(metadata);
        let pb::TopicEventBulkRequest { entries, topic, pubsub_name, path, .. } = bulk;
        let ids: Vec<String> = entries.iter().map(|entry| entry.entry_id.clone()).collect();
        let entries = entries.into_iter().map(|entry| bulk_envelope(entry, &topic, &pubsub_name, &path, &metadata));
        let outcomes = self.0.deliver(&pubsub_name, &topic, &path, entries.collect()).await;
        let statuses = ids
            .into_iter()
            .zip(outcomes)
            .map(|(entry_id, outcome)| pb::TopicEventBulkResponseEntry { entry_id, status: outcome.to_status() as i32 })
            .collect();
        Ok(pb::TopicEventBulkResponse { statuses })
    }

    async fn job(&self, request: Request<pb::JobEventRequest>) -> Result<pb::JobEventResponse, Status> {
        let job = request.into_inner();
        let name = job_name(&job.name, &job.method).to_owned();
        let (type_url, data) = job.data.map(|any| (any.type_url, Bytes::from(any.value))).unwrap_or_default();
        let job = Job { name, data, type_url, content_type: job.content_type, extensions: Default::default() };
        self.0.job(job).await.map(|()| pb::JobEventResponse {}).map_err(to_grpc)
    }
}

/// Dapr's message of a topic's subscription.
fn to_grpc_subscription(subscription: &TopicSubscription) -> pb::TopicSubscription {
    let rules =
        subscription.rules.iter().map(|rule| pb::TopicRule { r#match: rule.matches.clone(), path: rule.path.clone() });
    pb::TopicSubscription {
        pubsub_name: subscription.pubsub.clone(),
        topic: subscription.topic.clone(),
        routes: Some(pb::TopicRoutes {
            rules: rules.collect(),
            default: subscription.default_path.clone().unwrap_or_default(),
        }),
        dead_letter_topic: subscription.dead_letter.clone().unwrap_or_default(),
        metadata: subscription.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        bulk_subscribe: subscription.bulk.map(|bulk| pb::BulkSubscribeConfig {
            enabled: true,
            max_messages_count: i32::try_from(bulk.max_messages).unwrap_or(i32::MAX),
            max_await_duration_ms: i32::try_from(bulk.max_await_ms).unwrap_or(i32::MAX),
        }),
    }
}

/// Our invocation of Dapr's request.
fn invocation_of(request: InvokeRequest) -> Invocation {
    let (http_verb, querystring) = match request.http_extension {
        Some(extension) => {
            let verb = crate::grpc::proto::common::http_extension::Verb::try_from(extension.verb)
                .map(|verb| verb.as_str_name().to_owned())
                .ok();
            (verb, Some(extension.querystring).filter(|q| !q.is_empty()))
        }
        None => (None, None),
    };
    let mut invocation =
        Invocation::new(request.method, request.content_type, request.data.map(|any| any.value).unwrap_or_default());
    invocation.http_verb = http_verb;
    invocation.querystring = querystring;
    invocation
}

/// The envelope of one bulk entry: its own CloudEvent, or raw bytes
/// (`rawPayload`) whose id is the entry id.
fn bulk_envelope(
    entry: pb::TopicEventBulkRequestEntry,
    topic: &str,
    pubsub: &str,
    path: &str,
    metadata: &Metadata,
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
        match self.0.invoke(invocation_of(request.into_inner())).await {
            Ok(reply) => Ok(Response::new(InvokeResponse {
                data: Some(prost_types::Any { type_url: String::new(), value: reply.data.to_vec() }),
                content_type: reply.content_type,
            })),
            Err(status) => Err(to_grpc(status)),
        }
    }

    async fn list_topic_subscriptions(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListTopicSubscriptionsResponse>, Status> {
        let subscriptions = self.0.registry.subscriptions().iter().map(to_grpc_subscription).collect();
        Ok(Response::new(pb::ListTopicSubscriptionsResponse { subscriptions }))
    }

    async fn on_topic_event(
        &self,
        request: Request<pb::TopicEventRequest>,
    ) -> Result<Response<pb::TopicEventResponse>, Status> {
        let (metadata, _, event) = request.into_parts();
        let mut envelope = Envelope::from(event);
        envelope.metadata = metadata_from_grpc(metadata);
        let outcome = self.0.dispatch(Arc::new(envelope)).await;
        Ok(Response::new(pb::TopicEventResponse { status: outcome.to_status() as i32 }))
    }

    async fn list_input_bindings(&self, _: Request<()>) -> Result<Response<pb::ListInputBindingsResponse>, Status> {
        let bindings = self.0.registry.bindings();
        Ok(Response::new(pb::ListInputBindingsResponse { bindings }))
    }

    async fn on_binding_event(
        &self,
        request: Request<pb::BindingEventRequest>,
    ) -> Result<Response<pb::BindingEventResponse>, Status> {
        let pb::BindingEventRequest { name, data, metadata } = request.into_inner();
        let event = BindingEvent { name, data: data.into(), metadata, extensions: Default::default() };
        self.0.binding(event).await.map(|()| Response::new(pb::BindingEventResponse::default())).map_err(to_grpc)
    }

    async fn on_bulk_topic_event(
        &self,
        request: Request<pb::TopicEventBulkRequest>,
    ) -> Result<Response<pb::TopicEventBulkResponse>, Status> {
        self.bulk(request).await.map(Response::new)
    }

    async fn on_job_event(
        &self,
        request: Request<pb::JobEventRequest>,
    ) -> Result<Response<pb::JobEventResponse>, Status> {
        self.job(request).await.map(Response::new)
    }
}

#[tonic::async_trait]
impl pb::app_callback_alpha_server::AppCallbackAlpha for Callback {
    async fn on_bulk_topic_event_alpha1(
        &self,
        request: Request<pb::TopicEventBulkRequest>,
    ) -> Result<Response<pb::TopicEventBulkResponse>, Status> {
        self.bulk(request).await.map(Response::new)
    }

    async fn on_job_event_alpha1(
        &self,
        request: Request<pb::JobEventRequest>,
    ) -> Result<Response<pb::JobEventResponse>, Status> {
        self.job(request).await.map(Response::new)
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

/// `grpc.health.v1.Health` for Kubernetes gRPC probes and other gRPC
/// clients: tonic-health's service, answering from the reporter the
/// pipeline pushes to. A `Check` (or a new `Watch`) runs the readiness probe
/// first, as daprd's `HealthCheck` does, so it is as fresh as the probe; a
/// `Watch` then sees each change when it happens. The empty service name and this server's three
/// services are known; any other name is `NOT_FOUND`.
#[derive(Clone)]
struct ProbeOnCheck<S> {
    inner: S,
    pipeline: Arc<Pipeline>,
}

impl<S, B> tower::Service<http::Request<B>> for ProbeOnCheck<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The service that was made ready answers; a fresh clone waits for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let pipeline = self.pipeline.clone();
        Box::pin(async move {
            // The answer reaches the reporter, which the service reads.
            let _ = pipeline.ready().await;
            inner.call(request).await
        })
    }
}
