//! The servers the load driver compares eventbus with:
//!
//! - `floor`: a bare tonic `AppCallback` answering SUCCESS without decoding;
//! - `dapr-sdk`: the `dapr` crate's `AppCallbackService` with a handler that decodes the JSON;
//! - `eventbus`: an eventbus server with a typed handler and its default middleware,
//!   on the transport `--transport` names: the gRPC app channel (default), the
//!   HTTP app channel on `--addr`, or streaming subscriptions to `--dapr`.
//!
//! `cargo run --release -p eventbus-bench --bin baseline-server -- eventbus --addr 127.0.0.1:5005`

use std::net::SocketAddr;

use clap::{Parser, ValueEnum};
use dapr::appcallback::{AppCallbackService, Handler, HandlerMethod};
// The dapr crate's own copy of the protocol types, for its server.
use dapr::dapr::proto::runtime::v1 as dapr_pb;
use eventbus::grpc::proto::common::{InvokeRequest, InvokeResponse};
use eventbus::grpc::proto::runtime as pb;
use eventbus::grpc::proto::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use eventbus::server::Transport as Serving;
use eventbus::sidecar::DaprEndpoint;
use eventbus::{Event, Subscription, handler};
use eventbus_bench::OrderCompleted;
use tonic::{Request, Response, Status};

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Floor,
    DaprSdk,
    Eventbus,
}

#[derive(Clone, Copy, ValueEnum)]
enum Transport {
    Grpc,
    Http,
    Streaming,
}

#[derive(Parser)]
struct Cli {
    kind: Kind,
    #[arg(long, default_value = "127.0.0.1:5005")]
    addr: SocketAddr,
    /// How the eventbus server gets its events.
    #[arg(long, value_enum, default_value = "grpc")]
    transport: Transport,
    /// The Dapr gRPC API the streaming transport dials (the load driver's stub).
    #[arg(long, default_value = "http://127.0.0.1:5106")]
    dapr: String,
    /// How long the eventbus handler waits before answering (µs), as a
    /// handler waiting on its database would: the same framework work per
    /// event, at the request rate and latency of a real consumer.
    #[arg(long, default_value_t = 0)]
    handler_wait_us: u64,
}

/// `--handler-wait-us`.
static HANDLER_WAIT: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();

const PUBSUB: &str = "pubsub";
const TOPIC: &str = "order.completed";

/// Answers SUCCESS to everything, decoding nothing.
struct Floor;

#[tonic::async_trait]
impl AppCallback for Floor {
    async fn on_invoke(&self, _: Request<InvokeRequest>) -> Result<Response<InvokeResponse>, Status> {
        Err(Status::unimplemented("floor"))
    }
    async fn list_topic_subscriptions(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListTopicSubscriptionsResponse>, Status> {
        let subscription =
            pb::TopicSubscription { pubsub_name: PUBSUB.into(), topic: TOPIC.into(), ..Default::default() };
        Ok(Response::new(pb::ListTopicSubscriptionsResponse { subscriptions: vec![subscription] }))
    }
    async fn on_topic_event(
        &self,
        _: Request<pb::TopicEventRequest>,
    ) -> Result<Response<pb::TopicEventResponse>, Status> {
        Ok(Response::new(pb::TopicEventResponse { status: 0 }))
    }
    async fn list_input_bindings(&self, _: Request<()>) -> Result<Response<pb::ListInputBindingsResponse>, Status> {
        Ok(Response::new(pb::ListInputBindingsResponse::default()))
    }
    async fn on_binding_event(
        &self,
        _: Request<pb::BindingEventRequest>,
    ) -> Result<Response<pb::BindingEventResponse>, Status> {
        Err(Status::unimplemented("floor"))
    }
    async fn on_bulk_topic_event(
        &self,
        request: Request<pb::TopicEventBulkRequest>,
    ) -> Result<Response<pb::TopicEventBulkResponse>, Status> {
        let statuses = request
            .into_inner()
            .entries
            .into_iter()
            .map(|e| pb::TopicEventBulkResponseEntry { entry_id: e.entry_id, status: 0 })
            .collect();
        Ok(Response::new(pb::TopicEventBulkResponse { statuses }))
    }
    async fn on_job_event(&self, _: Request<pb::JobEventRequest>) -> Result<Response<pb::JobEventResponse>, Status> {
        Err(Status::unimplemented("floor"))
    }
}

/// The dapr crate's handler shape: decode the JSON, answer SUCCESS (or an error).
struct DecodeOrder;

#[tonic::async_trait]
impl HandlerMethod for DecodeOrder {
    async fn handler(
        &self,
        request: dapr_pb::TopicEventRequest,
    ) -> Result<Response<dapr_pb::TopicEventResponse>, Status> {
        let order: OrderCompleted =
            serde_json::from_slice(&request.data).map_err(|e| Status::invalid_argument(e.to_string()))?;
        std::hint::black_box(order);
        Ok(Response::new(dapr_pb::TopicEventResponse { status: 0 }))
    }
}

async fn on_order(event: Event<OrderCompleted>) {
    std::hint::black_box(event.data);
    if let Some(wait) = HANDLER_WAIT.get().filter(|wait| !wait.is_zero()) {
        tokio::time::sleep(*wait).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    HANDLER_WAIT.get_or_init(|| std::time::Duration::from_micros(cli.handler_wait_us));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match cli.kind {
        Kind::Floor => {
            tonic::transport::Server::builder()
                .add_service(AppCallbackServer::new(Floor))
                .serve_with_shutdown(cli.addr, shutdown)
                .await?;
        }
        Kind::DaprSdk => {
            let mut service = AppCallbackService::new();
            service.add_handler(Handler {
                pub_sub_name: PUBSUB.into(),
                topic: TOPIC.into(),
                handler: Box::new(DecodeOrder),
            });
            tonic::transport::Server::builder()
                .add_service(dapr_pb::app_callback_server::AppCallbackServer::new(service))
                .serve_with_shutdown(cli.addr, shutdown)
                .await?;
        }
        Kind::Eventbus => {
            let server = eventbus::Server::builder()
                .api_token(None)
                .default_pubsub(PUBSUB)
                .consumer(handler(Subscription::new(TOPIC), on_order).name("on_order"))
                .build()?;
            match cli.transport {
                Transport::Grpc => server.serve(Serving::grpc(cli.addr)).await?,
                Transport::Http => server.serve(Serving::http(cli.addr)).await?,
                Transport::Streaming => server.serve(Serving::streaming(DaprEndpoint::new(cli.dapr))).await?,
            }
        }
    }
    Ok(())
}
