//! Serving: one [`Server::serve`] for every transport, chosen by value, and
//! the graceful shutdown they share.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::net::TcpListener;

use super::{Server, shutdown_signal};
use crate::error::Error;
#[cfg(feature = "client")]
use crate::sidecar::DaprEndpoint;
use crate::transport::grpc;

/// After the drain deadline, how long the events still in flight get to send
/// their RETRY answers before the server stops.
const ANSWER_GRACE: Duration = Duration::from_secs(1);
/// After the drain, how long an app channel waits for its connections to
/// close (the sidecar may keep its own open).
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How Dapr reaches the app: given to [`Server::serve`].
///
/// | transport | daprd runs with | the app |
/// |---|---|---|
/// | [`Transport::grpc`] | `--app-protocol grpc` (the default) | listens; daprd calls `AppCallback` |
/// | [`Transport::http`] (feature `http`) | `--app-protocol http` | listens; daprd POSTs events |
/// | [`Transport::streaming`] (feature `client`) | no app port | dials daprd's gRPC API, one stream per subscription |
#[derive(Debug)]
pub struct Transport(Kind);

#[derive(Debug)]
enum Kind {
    Grpc(Bind),
    #[cfg(feature = "http")]
    Http(Bind),
    #[cfg(feature = "client")]
    Streaming(DaprEndpoint),
}

#[derive(Debug)]
enum Bind {
    Address(SocketAddr),
    Listener(TcpListener),
}

impl Bind {
    async fn listen(self) -> Result<TcpListener, Error> {
        match self {
            Bind::Address(address) => {
                TcpListener::bind(address).await.map_err(|source| Error::Bind { address, source })
            }
            Bind::Listener(listener) => Ok(listener),
        }
    }
}

impl Transport {
    /// The gRPC app channel on `address` (Dapr's default app protocol;
    /// `dapr.io/app-port`, conventionally 5005 ([`DEFAULT_PORT`](super::DEFAULT_PORT))).
    pub fn grpc(address: SocketAddr) -> Self {
        Transport(Kind::Grpc(Bind::Address(address)))
    }

    /// The gRPC app channel on a bound listener (tests bind `127.0.0.1:0`).
    pub fn grpc_listener(listener: TcpListener) -> Self {
        Transport(Kind::Grpc(Bind::Listener(listener)))
    }

    /// Dapr's HTTP app protocol on `address`: `GET /dapr/subscribe`, the
    /// event and bulk routes, `/dapr/config`, `/healthz`.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn http(address: SocketAddr) -> Self {
        Transport(Kind::Http(Bind::Address(address)))
    }

    /// The HTTP app channel on a bound listener.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn http_listener(listener: TcpListener) -> Self {
        Transport(Kind::Http(Bind::Listener(listener)))
    }

    /// Streaming subscriptions through daprd's gRPC API
    /// (`SubscribeTopicEventsAlpha1`, one stream per subscription): the app
    /// needs no port.
    ///
    /// Serving fails at once on a subscription with routing rules, which
    /// daprd does not evaluate on a stream. Bulk settings of a consumer that
    /// takes whole batches are honoured by the app. Streams carry pub/sub
    /// only: invocation, bindings and jobs need an app channel.
    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn streaming(endpoint: DaprEndpoint) -> Self {
        Transport(Kind::Streaming(endpoint))
    }
}

/// A [`Server`] serving a [`Transport`]: a future (`.await` it, or spawn
/// it), after [`with_graceful_shutdown`](Serve::with_graceful_shutdown) if
/// SIGTERM and ctrl-c are not the signal to stop on. Nothing is bound before
/// its first poll.
#[must_use = "a server serves only when awaited"]
pub struct Serve {
    start: Option<(Server, Transport, Option<BoxFuture<'static, ()>>)>,
    serving: Option<BoxFuture<'static, Result<(), Error>>>,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = self.start.as_ref().map(|(_, transport, _)| transport);
        f.debug_struct("Serve").field("transport", &transport).finish_non_exhaustive()
    }
}

impl Serve {
    pub(super) fn new(server: Server, transport: Transport) -> Self {
        Serve { start: Some((server, transport, None)), serving: None }
    }

    /// Serves until `signal` completes (instead of SIGTERM or ctrl-c), then
    /// shuts down gracefully.
    pub fn with_graceful_shutdown(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        if let Some((_, _, slot)) = &mut self.start {
            *slot = Some(Box::pin(signal));
        }
        self
    }
}

impl Future for Serve {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some((server, transport, signal)) = self.start.take() {
            // The default signal is set up here, inside the runtime.
            let signal = signal.unwrap_or_else(|| Box::pin(shutdown_signal()));
            self.serving = Some(Box::pin(server.serve_transport(transport, signal)));
        }
        match &mut self.serving {
            Some(serving) => serving.as_mut().poll(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl Server {
    async fn serve_transport(self, transport: Transport, signal: BoxFuture<'static, ()>) -> Result<(), Error> {
        match transport.0 {
            Kind::Grpc(bind) => self.serve_grpc(bind.listen().await?, signal).await,
            #[cfg(feature = "http")]
            Kind::Http(bind) => self.serve_http(bind.listen().await?, signal).await,
            #[cfg(feature = "client")]
            Kind::Streaming(endpoint) => self.serve_streaming(endpoint, signal).await,
        }
    }

    async fn serve_grpc(self, listener: TcpListener, signal: BoxFuture<'static, ()>) -> Result<(), Error> {
        let address = listener.local_addr().ok();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tonic::transport::Server::builder()
            .http2_max_header_list_size(grpc::MAX_HEADER_LIST_SIZE)
            .serve_with_incoming_shutdown(grpc::AppChannel::new(self.pipeline.clone()), incoming, async {
                let _ = stopped.await;
            });
        tracing::info!(?address, subscriptions = self.subscriptions().len(), "eventbus server listening");
        let transport_error = |source: tonic::transport::Error| Error::Transport { source: source.into() };
        self.until_drained("gRPC app channel", server, stop, signal, transport_error).await
    }

    #[cfg(feature = "http")]
    async fn serve_http(self, listener: TcpListener, signal: BoxFuture<'static, ()>) -> Result<(), Error> {
        crate::transport::http::check_paths(&self.pipeline)?;
        let address = listener.local_addr().ok();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = crate::transport::http::router(self.pipeline.clone(), self.default_pubsub.clone());
        let server = axum::serve(listener, router).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        tracing::info!(?address, subscriptions = self.subscriptions().len(), "eventbus HTTP app channel listening");
        let serve_error = |source| Error::Serve { source };
        let server = std::future::IntoFuture::into_future(server);
        self.until_drained("HTTP app channel", server, stop, signal, serve_error).await
    }

    /// Streams until `signal`, then stops reading, finishes the events in
    /// flight (up to the drain timeout; after it they are answered `RETRY`),
    /// answers them and closes the streams.
    #[cfg(feature = "client")]
    async fn serve_streaming(self, endpoint: DaprEndpoint, signal: BoxFuture<'static, ()>) -> Result<(), Error> {
        let pipeline = self.pipeline.clone();
        use crate::transport::streaming;
        let streams = streaming::streams(&pipeline)?;
        // A bad address or TLS without the feature fails start-up, not every reconnection.
        endpoint.channel().map_err(|reason| Error::Endpoint { reason })?;
        let stop = tokio_util::sync::CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        tracing::info!(endpoint = endpoint.address(), streams = streams.len(), "eventbus streaming subscriptions");
        for stream in streams {
            tasks.spawn(streaming::run(pipeline.clone(), endpoint.clone(), std::sync::Arc::new(stream), stop.clone()));
        }
        signal.await;
        tracing::info!(in_flight = pipeline.in_flight.len(), "shutting down: finishing the events in flight");
        pipeline.start_draining().await;
        stop.cancel();
        let finished = async {
            while tasks.join_next().await.is_some() {}
            // Handlers left running by a stream that broke earlier.
            pipeline.in_flight.close();
            pipeline.in_flight.wait().await;
        };
        tokio::pin!(finished);
        if tokio::time::timeout(self.drain_timeout, &mut finished).await.is_err() {
            tracing::warn!(
                in_flight = pipeline.in_flight.len(),
                "drain timeout passed; answering the events in flight RETRY"
            );
            pipeline.past_drain_deadline.cancel();
            let _ = tokio::time::timeout(ANSWER_GRACE, finished).await;
        }
        tracing::info!("eventbus streaming subscriptions closed");
        Ok(())
    }

    /// The shutdown of an app channel: serve until `signal`, drain the events
    /// in flight, tell the `server` to stop (`stop`), and wait for its
    /// connections to close, at most [`CLOSE_GRACE`].
    async fn until_drained<E>(
        &self,
        channel: &str,
        server: impl Future<Output = Result<(), E>>,
        stop: tokio::sync::oneshot::Sender<()>,
        signal: impl Future<Output = ()>,
        error: fn(E) -> Error,
    ) -> Result<(), Error> {
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => return result.map_err(error),
            () = signal => {}
        }
        tokio::select! {
            result = &mut server => return result.map_err(error),
            () = self.drain() => {}
        }
        let _ = stop.send(());
        match tokio::time::timeout(CLOSE_GRACE, server).await {
            Ok(result) => result.map_err(error)?,
            Err(_) => tracing::warn!(channel, "connections still open after shutdown; exiting anyway"),
        }
        tracing::info!(channel, "eventbus server stopped");
        Ok(())
    }

    /// Shutdown's first part, the same on every app channel: readiness turns
    /// not-ready and new events get `RETRY`; the events in flight get up to
    /// the drain timeout to finish; after it they are answered `RETRY`, with
    /// a short grace for the answers to go out.
    async fn drain(&self) {
        let pipeline = &self.pipeline;
        pipeline.start_draining().await;
        pipeline.in_flight.close();
        tracing::info!(in_flight = pipeline.in_flight.len(), "shutting down: draining in-flight events");
        if tokio::time::timeout(self.drain_timeout, pipeline.in_flight.wait()).await.is_err() {
            // Answer the stuck events RETRY rather than cutting their
            // connections: the sidecar gets an answer, not a transport error.
            tracing::warn!(
                in_flight = pipeline.in_flight.len(),
                "drain timeout passed; answering the events in flight RETRY"
            );
            pipeline.past_drain_deadline.cancel();
            let _ = tokio::time::timeout(ANSWER_GRACE, pipeline.in_flight.wait()).await;
        }
    }
}
