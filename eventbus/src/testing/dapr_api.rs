//! The sidecar's own gRPC API (`dapr.proto.runtime.v1.Dapr`), for apps that
//! dial it: streaming subscriptions and publishing.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::grpc::proto::runtime as pb;
use crate::grpc::proto::runtime::PublishEventRequest;
use crate::grpc::proto::runtime::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as FromApp;
use crate::grpc::proto::runtime::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as ToApp;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tokio::sync::{Notify, mpsc, oneshot};
use tonic::server::{Grpc, NamedService, StreamingService, UnaryService};
use tonic::{Request, Response, Status, Streaming};

use crate::status::Code;

use super::transport::{Call, Deliver};
use super::{Attempt, CloudEvent, SidecarError, SidecarTransport, TestSidecar};
use crate::outcome::Outcome;

/// One `PublishEvent` call the stub received.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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
    /// The `traceparent` header of the call, if any: daprd makes it the
    /// CloudEvent's trace context.
    pub traceparent: Option<String>,
}

/// How long [`TestSidecar::wait_for_streams`] and a delivery waiting for a
/// stream to come back wait for the app before giving up.
pub const STREAM_WAIT: Duration = Duration::from_secs(30);

/// The sidecar's own gRPC API (`dapr.proto.runtime.v1.Dapr`) on loopback,
/// for apps that dial it: it serves streaming subscriptions
/// (`SubscribeTopicEventsAlpha1`, for [`Transport::streaming`](crate::Transport::streaming))
/// and records each `PublishEvent` (for code that publishes with
/// [`DaprPublisher`](crate::publisher::DaprPublisher) or `dapr::Client`).
/// Every other RPC answers `Unimplemented`.
pub struct DaprApi {
    address: SocketAddr,
    published: Arc<Mutex<Vec<Published>>>,
    failures: Arc<Mutex<Failures>>,
    streams: Arc<Streams>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for DaprApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaprApi").field("address", &self.address).finish_non_exhaustive()
    }
}

impl SidecarTransport for DaprApi {}

impl Deliver for DaprApi {
    fn subscriptions(&self) -> Vec<pb::TopicSubscription> {
        let open = self.streams.lock();
        let mut subscriptions: Vec<pb::TopicSubscription> = open
            .iter()
            .map(|((pubsub, topic), stream)| pb::TopicSubscription {
                pubsub_name: pubsub.clone(),
                topic: topic.clone(),
                dead_letter_topic: stream.dead_letter.clone(),
                routes: Some(pb::TopicRoutes { rules: Vec::new(), default: "/".into() }),
                ..Default::default()
            })
            .collect();
        subscriptions.sort_by(|a, b| (&a.pubsub_name, &a.topic).cmp(&(&b.pubsub_name, &b.topic)));
        subscriptions
    }

    async fn attempt(&self, call: &Call<'_>) -> Attempt {
        // The stream was open when the delivery began: a missing one is the
        // app reconnecting, so wait for it (daprd keeps the event meanwhile).
        let stream = match self.streams.find(call.pubsub, call.topic) {
            Some(stream) => stream,
            None => self.streams.wait_for(call.pubsub, call.topic).await.ok_or(Code::Unavailable)?,
        };
        stream.send(call.event.topic_event(call.pubsub, call.topic, call.path)).await
    }
}

impl Drop for DaprApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestSidecar<DaprApi> {
    /// Serves the sidecar's API on an ephemeral loopback port.
    ///
    /// ```no_run
    /// use eventbus::publisher::{DaprPublisher, Message, Publisher};
    /// use eventbus::testing::TestSidecar;
    ///
    /// # async fn run() -> anyhow::Result<()> {
    /// let sidecar = TestSidecar::start_api().await?;
    /// let publisher = DaprPublisher::connect_to(sidecar.endpoint()).await?;
    /// publisher.publish(Message::json("pubsub", "order.created", &serde_json::json!({"order_id": "o-1"}))?).await?;
    /// assert_eq!(sidecar.published()[0].topic, "order.created");
    /// # Ok(()) }
    /// ```
    pub async fn start_api() -> std::io::Result<Self> {
        TestSidecar::bind_api(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves the sidecar's API on `address` (for an app started first, that
    /// dials a known port and reconnects until the sidecar is there).
    pub async fn bind_api(address: SocketAddr) -> std::io::Result<Self> {
        TestSidecar::serve_api(address, tonic::transport::Server::builder()).await
    }

    /// Serves the sidecar's API over TLS, with `certificate` and `key`
    /// (PEM), on an ephemeral loopback port: dial it as
    /// `https://localhost:<port>` with the CA as
    /// [`DaprEndpoint::ca_file`](crate::sidecar::DaprEndpoint::ca_file).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub async fn start_api_tls(certificate: &[u8], key: &[u8]) -> std::io::Result<Self> {
        let identity = tonic::transport::Identity::from_pem(certificate, key);
        let server = tonic::transport::Server::builder()
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(std::io::Error::other)?;
        TestSidecar::serve_api(SocketAddr::from(([127, 0, 0, 1], 0)), server).await
    }

    async fn serve_api(address: SocketAddr, server: tonic::transport::Server) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let published = Arc::<Mutex<Vec<Published>>>::default();
        let failures = Arc::<Mutex<Failures>>::default();
        let streams = Arc::<Streams>::default();
        let service =
            StubService { published: published.clone(), failures: failures.clone(), streams: streams.clone() };
        let task = tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = server.serve_with_incoming(service, incoming).await;
        });
        Ok(TestSidecar::with(DaprApi { address, published, failures, streams, task }))
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.transport.address
    }

    /// The endpoint to give [`DaprEndpoint::new`](crate::sidecar::DaprEndpoint::new).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.transport.address)
    }

    /// Waits until exactly `count` stream subscriptions are open (0: until
    /// the app has closed them all); returns their `(pubsub, topic)`, sorted.
    /// Fails after [`STREAM_WAIT`].
    pub async fn wait_for_streams(&self, count: usize) -> Result<Vec<(String, String)>, SidecarError> {
        let streams = &self.transport.streams;
        let opened = async {
            loop {
                let changed = streams.changed.notified();
                let open = streams.open();
                if open.len() == count {
                    return open;
                }
                changed.await;
            }
        };
        tokio::time::timeout(STREAM_WAIT, opened)
            .await
            .map_err(|_| SidecarError::Timeout(format!("{count} open streams (open: {:?})", streams.open())))
    }

    /// Ends every stream, as a daprd restart does; the app reconnects.
    pub fn close_streams(&self) {
        let streams = &self.transport.streams;
        let closed: Vec<Stream> = streams.lock().drain().map(|(_, stream)| stream).collect();
        for stream in closed {
            // Unanswered events fail their attempt (`Unavailable`), as when daprd restarts.
            stream.waiting.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        streams.changed.notify_waiters();
    }

    /// Sends `event` once down the stream subscribed to `pubsub`/`topic`
    /// and returns at once; the receiver gets the app's answer (an error
    /// when the stream ends first, or when another send of the same id takes
    /// the answer). Nothing is settled or retried: this is for tests of what
    /// the app does with what daprd streams, such as an id delivered again
    /// while its first delivery waits (daprd matches answers by id, and the
    /// later delivery takes the answer, as here). `None` when no stream is
    /// open for the topic.
    pub fn send_stream(&self, pubsub: &str, topic: &str, event: &CloudEvent) -> Option<oneshot::Receiver<Outcome>> {
        self.transport.streams.find(pubsub, topic)?.start(event.topic_event(pubsub, topic, "/")).ok()
    }

    /// The next `count` `PublishEvent` calls fail with `code` (as a sidecar
    /// that is restarting, or a broker that refuses), and are not recorded.
    pub fn fail_publishes(&self, count: u32, code: Code) {
        *self.transport.failures.lock().unwrap_or_else(|p| p.into_inner()) =
            Failures { remaining: count, code, calls: 0 };
    }

    /// `PublishEvent` calls that were failed on purpose so far.
    pub fn failed_publishes(&self) -> u32 {
        self.transport.failures.lock().unwrap_or_else(|p| p.into_inner()).calls
    }

    /// Every `PublishEvent` so far, in order.
    pub fn published(&self) -> Vec<Published> {
        self.transport.published.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Clone)]
struct StubService {
    published: Arc<Mutex<Vec<Published>>>,
    failures: Arc<Mutex<Failures>>,
    streams: Arc<Streams>,
}

/// Publishes to fail on purpose.
#[derive(Debug, Clone, Copy)]
struct Failures {
    remaining: u32,
    code: Code,
    calls: u32,
}

impl Default for Failures {
    fn default() -> Self {
        Failures { remaining: 0, code: Code::Unavailable, calls: 0 }
    }
}

/// The open stream subscriptions, by (pubsub, topic).
#[derive(Default)]
struct Streams {
    open: Mutex<HashMap<(String, String), Stream>>,
    changed: Notify,
    next_id: std::sync::atomic::AtomicU64,
}

impl Streams {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Stream>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&self) -> Vec<(String, String)> {
        let mut open: Vec<_> = self.lock().keys().cloned().collect();
        open.sort();
        open
    }

    fn find(&self, pubsub: &str, topic: &str) -> Option<Stream> {
        self.lock().get(&(pubsub.to_owned(), topic.to_owned())).cloned()
    }

    /// The stream of `pubsub`/`topic` once the app opens it; `None` after [`STREAM_WAIT`].
    async fn wait_for(&self, pubsub: &str, topic: &str) -> Option<Stream> {
        let opened = async {
            loop {
                let changed = self.changed.notified();
                if let Some(stream) = self.find(pubsub, topic) {
                    return stream;
                }
                changed.await;
            }
        };
        tokio::time::timeout(STREAM_WAIT, opened).await.ok()
    }
}

/// One app's stream: events go down `events`; answers complete `waiting`.
#[derive(Clone)]
struct Stream {
    /// Tells this stream from a later one of the same topic.
    id: u64,
    dead_letter: String,
    events: mpsc::UnboundedSender<Result<pb::SubscribeTopicEventsResponseAlpha1, Status>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>,
}

impl Stream {
    /// Sends one event and waits for its answer; a stream that ends first is `Unavailable`.
    async fn send(&self, event: pb::TopicEventRequest) -> Attempt {
        self.start(event).map_err(|()| Code::Unavailable)?.await.map_err(|_| Code::Unavailable)
    }

    /// Sends one event; its answer, by id, comes to the receiver.
    fn start(&self, event: pb::TopicEventRequest) -> Result<oneshot::Receiver<Outcome>, ()> {
        let (answer, answered) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(event.id.clone(), answer);
        let message = pb::SubscribeTopicEventsResponseAlpha1 {
            subscribe_topic_events_response_type: Some(ToApp::EventMessage(event)),
        };
        self.events.send(Ok(message)).map_err(|_| ())?;
        Ok(answered)
    }
}

struct Subscribe(Arc<Streams>);

impl StreamingService<pb::SubscribeTopicEventsRequestAlpha1> for Subscribe {
    type Response = pb::SubscribeTopicEventsResponseAlpha1;
    type ResponseStream = BoxStream<'static, Result<pb::SubscribeTopicEventsResponseAlpha1, Status>>;
    type Future = BoxFuture<'static, Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<pb::SubscribeTopicEventsRequestAlpha1>>) -> Self::Future {
        let streams = self.0.clone();
        Box::pin(async move {
            let mut from_app = request.into_inner();
            let Some(FromApp::InitialRequest(initial)) =
                from_app.message().await?.and_then(|m| m.subscribe_topic_events_request_type)
            else {
                return Err(Status::invalid_argument("the first message must be an initial request"));
            };
            let (events, to_app) = mpsc::unbounded_channel();
            let initial_response = pb::SubscribeTopicEventsResponseAlpha1 {
                subscribe_topic_events_response_type: Some(ToApp::InitialResponse(Default::default())),
            };
            let _ = events.send(Ok(initial_response));
            let id = streams.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>> = Arc::default();
            let stream = Stream {
                id,
                dead_letter: initial.dead_letter_topic.unwrap_or_default(),
                events,
                waiting: waiting.clone(),
            };
            let key = (initial.pubsub_name, initial.topic);
            streams.lock().insert(key.clone(), stream);
            streams.changed.notify_waiters();
            // The app's answers, until it closes the stream. Only the map
            // holds the sender of events, so removing the stream ends it.
            tokio::spawn(async move {
                while let Ok(Some(message)) = from_app.message().await {
                    if let Some(FromApp::EventProcessed(processed)) = message.subscribe_topic_events_request_type {
                        let outcome = Outcome::from_status(processed.status.map_or(-1, |s| s.status));
                        let waiter = waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&processed.id);
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(outcome);
                        }
                    }
                }
                let mut open = streams.lock();
                if open.get(&key).is_some_and(|s| s.id == id) {
                    open.remove(&key);
                }
                drop(open);
                streams.changed.notify_waiters();
            });
            let to_app = futures_util::stream::unfold(to_app, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
            Ok(Response::new(Box::pin(to_app) as Self::ResponseStream))
        })
    }
}

impl NamedService for StubService {
    const NAME: &'static str = "dapr.proto.runtime.v1.Dapr";
}

struct Publish(Arc<Mutex<Vec<Published>>>, Arc<Mutex<Failures>>);

impl UnaryService<PublishEventRequest> for Publish {
    type Response = ();
    type Future = BoxFuture<'static, Result<Response<()>, Status>>;

    fn call(&mut self, request: Request<PublishEventRequest>) -> Self::Future {
        {
            let mut failures = self.1.lock().unwrap_or_else(|p| p.into_inner());
            if failures.remaining > 0 {
                failures.remaining -= 1;
                failures.calls += 1;
                let code = tonic::Code::from_i32(failures.code as i32);
                let status = Status::new(code, "failed on purpose by the test stub");
                return Box::pin(std::future::ready(Err(status)));
            }
        }
        let header = |name: &str| request.metadata().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (token, traceparent) = (header("dapr-api-token"), header("traceparent"));
        let message = request.into_inner();
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(Published {
            pubsub: message.pubsub_name,
            topic: message.topic,
            content_type: message.data_content_type,
            data: message.data,
            metadata: message.metadata,
            token,
            traceparent,
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
        match request.uri().path() {
            "/dapr.proto.runtime.v1.Dapr/PublishEvent" => {
                let (published, failures) = (self.published.clone(), self.failures.clone());
                Box::pin(async move {
                    let mut grpc = Grpc::new(tonic_prost::ProstCodec::<(), PublishEventRequest>::default());
                    Ok(grpc.unary(Publish(published, failures), request).await)
                })
            }
            "/dapr.proto.runtime.v1.Dapr/SubscribeTopicEventsAlpha1" => {
                let streams = self.streams.clone();
                Box::pin(async move {
                    let mut grpc = Grpc::new(tonic_prost::ProstCodec::<
                        pb::SubscribeTopicEventsResponseAlpha1,
                        pb::SubscribeTopicEventsRequestAlpha1,
                    >::default());
                    Ok(grpc.streaming(Subscribe(streams), request).await)
                })
            }
            path => {
                let path = path.to_owned();
                Box::pin(async move { Ok(Status::unimplemented(format!("{path} is not stubbed")).into_http()) })
            }
        }
    }
}
