//! A stand-in for the sidecar's own gRPC API (`dapr.proto.runtime.v1.Dapr`),
//! for testing code that publishes with `dapr::Client` or [`DaprPublisher`](crate::publisher::DaprPublisher).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use dapr::dapr::proto::runtime::v1::PublishEventRequest;
use futures_util::future::BoxFuture;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

/// One `PublishEvent` call the stub received.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The pub/sub component.
    pub pubsub: String,
    /// The topic.
    pub topic: String,
    /// The content type.
    pub content_type: String,
    /// The payload.
    pub data: Vec<u8>,
    /// The publish metadata.
    pub metadata: HashMap<String, String>,
    /// The `dapr-api-token` the client sent, if any.
    pub token: Option<String>,
}

/// Serves `PublishEvent` on `127.0.0.1:0` and records each call; every other
/// RPC of the Dapr API answers `Unimplemented`.
///
/// ```no_run
/// use eventbus::publisher::{DaprPublisher, Message, Publisher};
/// use eventbus::testing::DaprApiStub;
///
/// # async fn run() -> anyhow::Result<()> {
/// let stub = DaprApiStub::start().await?;
/// let publisher = DaprPublisher::connect_to(format!("http://{}", stub.address())).await?;
/// publisher.publish(Message::json("pubsub", "order.created", &serde_json::json!({"order_id": "o-1"}))?).await?;
/// assert_eq!(stub.published()[0].topic, "order.created");
/// # Ok(()) }
/// ```
pub struct DaprApiStub {
    address: SocketAddr,
    published: Arc<Mutex<Vec<Published>>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for DaprApiStub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaprApiStub").field("address", &self.address).finish_non_exhaustive()
    }
}

impl DaprApiStub {
    /// Starts the stub on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<DaprApiStub> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let published = Arc::<Mutex<Vec<Published>>>::default();
        let service = StubService { published: published.clone() };
        let task = tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
        });
        Ok(DaprApiStub { address, published, task })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Every `PublishEvent` so far, in order.
    pub fn published(&self) -> Vec<Published> {
        self.published.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for DaprApiStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct StubService {
    published: Arc<Mutex<Vec<Published>>>,
}

impl NamedService for StubService {
    const NAME: &'static str = "dapr.proto.runtime.v1.Dapr";
}

struct Publish(Arc<Mutex<Vec<Published>>>);

impl UnaryService<PublishEventRequest> for Publish {
    type Response = ();
    type Future = BoxFuture<'static, Result<Response<()>, Status>>;

    fn call(&mut self, request: Request<PublishEventRequest>) -> Self::Future {
        let token = request.metadata().get("dapr-api-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let message = request.into_inner();
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(Published {
            pubsub: message.pubsub_name,
            topic: message.topic,
            content_type: message.data_content_type,
            data: message.data,
            metadata: message.metadata,
            token,
        });
        Box::pin(std::future::ready(Ok(Response::new(()))))
    }
}

impl<B> tower::Service<http::Request<B>> for StubService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != "/dapr.proto.runtime.v1.Dapr/PublishEvent" {
            let path = request.uri().path().to_owned();
            return Box::pin(async move { Ok(Status::unimplemented(format!("{path} is not stubbed")).into_http()) });
        }
        let published = self.published.clone();
        Box::pin(async move {
            let mut grpc = Grpc::new(tonic_prost::ProstCodec::<(), PublishEventRequest>::default());
            Ok(grpc.unary(Publish(published), request).await)
        })
    }
}
