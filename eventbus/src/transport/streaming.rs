//! Streaming subscriptions (`SubscribeTopicEventsAlpha1`): the app dials
//! daprd's gRPC API and opens one stream per subscription; daprd sends the
//! events down it and the app answers each by id. The same registry,
//! middleware and handlers as the app channel; no app port.
//!
//! What daprd cannot do on a stream, and what the app does instead:
//!
//! - **Routing rules**: refused when serving starts, naming the subscription
//!   (route on the event type inside one handler instead).
//! - **Bulk**: daprd streams events one by one; for a consumer that takes
//!   whole batches and sets `bulk(max_messages, max_await_ms)`, the app
//!   gathers up to `max_messages` events, or what arrived within
//!   `max_await_ms`, into one handler call.
//!
//! - **An id delivered again while in flight**: daprd matches answers by
//!   id, so the app handles it once and answers once (see `InFlightIds`;
//!   counted in `eventbus_stream_repeated_ids_total`). daprd's earlier
//!   delivery of it waits for the resiliency timeout.
//!
//! The stream is a connection that breaks: when daprd restarts or ends the
//! stream, the app reconnects with capped, jittered exponential backoff. An
//! event whose answer could not be sent (the stream broke first) is not
//! lost: daprd delivers it again under its resiliency policy, so handlers
//! stay idempotent by event id, as on every transport.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::grpc::proto::runtime as pb;
use crate::grpc::proto::runtime::dapr_client::DaprClient;
use crate::grpc::proto::runtime::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as Outbound;
use crate::grpc::proto::runtime::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Inbound;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backoff::Backoff;
use crate::error::Error;
use crate::event::Envelope;
use crate::outcome::Outcome;
use crate::pipeline::Pipeline;
use crate::sidecar::DaprEndpoint;

/// Reconnection delays: 100 ms doubled per failed attempt, at most 10 s.
const RECONNECT: Backoff = Backoff { first: Duration::from_millis(100), cap: Duration::from_secs(10) };
/// How long a closing stream waits for daprd to end its side.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Answers waiting to be written to one stream.
const ANSWER_QUEUE: usize = 1024;

/// One subscription as a stream: what to ask daprd for, and how to batch.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    pubsub: String,
    topic: String,
    dead_letter: Option<String>,
    metadata: HashMap<String, String>,
    /// Events per handler call: 1, or the bulk size of a batch consumer.
    batch: usize,
    max_await: Duration,
}

impl Stream {
    fn name(&self) -> String {
        format!("{}/{}", self.pubsub, self.topic)
    }
}

/// The streams of the registry's subscriptions, or the first subscription
/// a stream cannot serve.
pub(crate) fn streams(pipeline: &Pipeline) -> Result<Vec<Stream>, Error> {
    let mut streams = Vec::new();
    for subscription in pipeline.registry.subscriptions() {
        let name = format!("{}/{}", subscription.pubsub, subscription.topic);
        if !subscription.rules.is_empty() {
            return Err(Error::Unsupported {
                subscription: name,
                transport: "streaming",
                what: "routing rules (daprd evaluates none on a stream): route on the event in one handler",
            });
        }
        let route = pipeline.registry.route(&subscription.pubsub, &subscription.topic, "");
        let takes_batches = route.is_some_and(|route| route.takes_batches());
        let (batch, max_await) = match &subscription.bulk {
            Some(bulk) if takes_batches => (
                usize::try_from(bulk.max_messages).unwrap_or(1).max(1),
                Duration::from_millis(u64::from(bulk.max_await_ms)),
            ),
            _ => (1, Duration::ZERO),
        };
        streams.push(Stream {
            pubsub: subscription.pubsub.clone(),
            topic: subscription.topic.clone(),
            dead_letter: subscription.dead_letter.clone(),
            metadata: subscription.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            batch,
            max_await,
        });
    }
    Ok(streams)
}

/// How one connection of a stream ended.
enum Ended {
    /// Shutdown: do not reconnect.
    Shutdown,
    /// daprd closed the stream or the connection broke: reconnect.
    Broken(String),
}

/// Keeps one subscription's stream open until `stop`: connects, handles
/// events, reconnects with backoff. In-flight events are finished and
/// answered before the stream is closed.
pub(crate) async fn run(pipeline: Arc<Pipeline>, endpoint: DaprEndpoint, stream: Arc<Stream>, stop: CancellationToken) {
    let mut failures: u32 = 0;
    loop {
        let started = std::time::Instant::now();
        match connect_once(&pipeline, &endpoint, &stream, &stop).await {
            Ended::Shutdown => return,
            Ended::Broken(reason) => {
                // A stream that lived a while starts the backoff over.
                if started.elapsed() > RECONNECT.cap {
                    failures = 0;
                }
                let delay = RECONNECT.delay(failures);
                failures = failures.saturating_add(1);
                tracing::warn!(subscription = %stream.name(), %reason, retry_in_ms = delay.as_millis() as u64, "stream subscription lost; reconnecting");
                metrics::counter!("eventbus_stream_reconnects_total", "pubsub" => stream.pubsub.clone(), "topic" => stream.topic.clone()).increment(1);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    }
}

async fn connect_once(
    pipeline: &Arc<Pipeline>,
    endpoint: &DaprEndpoint,
    stream: &Arc<Stream>,
    stop: &CancellationToken,
) -> Ended {
    let channel = match endpoint.channel() {
        Ok(channel) => channel,
        Err(e) => return Ended::Broken(e),
    };
    let channel = tokio::select! {
        connected = channel.connect() => match connected {
            Ok(channel) => channel,
            Err(e) => return Ended::Broken(format!("cannot connect to {}: {e}", endpoint.address())),
        },
        () = stop.cancelled() => return Ended::Shutdown,
    };
    let initial = pb::SubscribeTopicEventsRequestInitialAlpha1 {
        pubsub_name: stream.pubsub.clone(),
        topic: stream.topic.clone(),
        metadata: stream.metadata.clone(),
        dead_letter_topic: stream.dead_letter.clone(),
    };
    let (answers, mut inbound) = match subscribe(channel, endpoint, initial).await {
        Ok(opened) => opened,
        Err(status) => return Ended::Broken(format!("subscribe refused: {status}")),
    };
    tracing::info!(subscription = %stream.name(), "stream subscription open");

    let in_flight = TaskTracker::new();
    let handling = InFlightIds::default();
    let mut pending: Vec<Arc<Envelope>> = Vec::new();
    let flush_at = tokio::time::sleep(Duration::MAX);
    tokio::pin!(flush_at);
    let ended = loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break Ended::Shutdown,
            () = &mut flush_at, if !pending.is_empty() => {
                handle(pipeline, stream, std::mem::take(&mut pending), &answers, &in_flight, &handling);
            }
            message = inbound.message() => match message {
                Ok(Some(pb::SubscribeTopicEventsResponseAlpha1 {
                    subscribe_topic_events_response_type: Some(Inbound::EventMessage(event)),
                })) => {
                    if !handling.admit(&event.id) {
                        // daprd matches answers by id: the one answer of the
                        // copy in flight serves this one too (see InFlightIds).
                        tracing::warn!(
                            event.id = %event.id, subscription = %stream.name(),
                            "event delivered again while in flight on this stream; it is handled and answered once"
                        );
                        metrics::counter!("eventbus_stream_repeated_ids_total", "pubsub" => stream.pubsub.clone(), "topic" => stream.topic.clone()).increment(1);
                        continue;
                    }
                    if pending.is_empty() && stream.batch > 1 {
                        flush_at.as_mut().reset(tokio::time::Instant::now() + stream.max_await);
                    }
                    pending.push(Arc::new(Envelope::from(event)));
                    if pending.len() >= stream.batch {
                        handle(pipeline, stream, std::mem::take(&mut pending), &answers, &in_flight, &handling);
                    }
                }
                Ok(Some(_)) => {} // the initial response
                Ok(None) => break Ended::Broken("daprd ended the stream".into()),
                Err(status) => break Ended::Broken(status.to_string()),
            },
        }
    };
    // Events read but not started are not answered: daprd delivers them
    // again. Those running finish (or get RETRY at the drain deadline) and
    // are answered before the stream closes.
    drop(pending);
    if let Ended::Shutdown = ended {
        // A broken stream cannot carry answers any more: reconnect at once
        // and let what runs finish on its own (daprd delivers it again).
        in_flight.close();
        in_flight.wait().await;
    }
    // Half-close: the answers queued so far are sent, then daprd ends its
    // side. Dropping the call before that could cut the last answers off.
    // What daprd sends meanwhile is not answered, so it is delivered again.
    drop(answers);
    let _ = tokio::time::timeout(CLOSE_GRACE, async { while let Ok(Some(_)) = inbound.message().await {} }).await;
    ended
}

/// Opens a stream subscription on `channel`: sends `initial` (with the
/// endpoint's `dapr-api-token`), and returns where answers go and the
/// stream of daprd's messages.
pub(crate) async fn subscribe(
    channel: tonic::transport::Channel,
    endpoint: &DaprEndpoint,
    initial: pb::SubscribeTopicEventsRequestInitialAlpha1,
) -> Result<
    (mpsc::Sender<pb::SubscribeTopicEventsRequestAlpha1>, tonic::Streaming<pb::SubscribeTopicEventsResponseAlpha1>),
    tonic::Status,
> {
    let (answers, outbound) = mpsc::channel::<pb::SubscribeTopicEventsRequestAlpha1>(ANSWER_QUEUE);
    let first = pb::SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(Outbound::InitialRequest(initial)),
    };
    // A fresh channel has room for the first message.
    let _ = answers.try_send(first);
    let outbound = futures_util::stream::unfold(outbound, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut request = tonic::Request::new(outbound);
    if let Some(token) = endpoint.api_token().and_then(|t| t.parse().ok()) {
        request.metadata_mut().insert(crate::sidecar::TOKEN_HEADER, token);
    }
    let inbound = DaprClient::new(channel).subscribe_topic_events_alpha1(request).await?.into_inner();
    Ok((answers, inbound))
}

/// The event ids read from one stream and not answered yet.
///
/// daprd waits for each streamed event's answer under its id, one waiter per
/// id and stream (`publishResponses[id][connectionID]` in
/// `pkg/runtime/pubsub/streamer/conn.go`, v1.18.3). A second delivery of an
/// id still in flight (a broker redelivery, a producer that published twice)
/// replaces the first's waiter: the first can no longer be answered and
/// holds its delivery slot until daprd's resiliency timeout ends it (then
/// daprd retries it), and one answer is all the second needs. So a repeated
/// id is not handled again: the answer of the copy in flight is sent once
/// and serves it. (A second answer would only be logged by daprd, `no client
/// stream expecting publish response`.) Events without an id are never
/// coalesced: each gets its own answer from the pipeline.
#[derive(Clone, Default)]
struct InFlightIds(Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

impl InFlightIds {
    /// Whether `id` is to be handled: false when a copy is already in flight.
    fn admit(&self, id: &str) -> bool {
        id.is_empty() || self.lock().insert(id.to_owned())
    }

    fn answered(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs events through the pipeline in the background and queues their answers.
fn handle(
    pipeline: &Arc<Pipeline>,
    stream: &Arc<Stream>,
    events: Vec<Arc<Envelope>>,
    answers: &mpsc::Sender<pb::SubscribeTopicEventsRequestAlpha1>,
    in_flight: &TaskTracker,
    handling: &InFlightIds,
) {
    let (pipeline, answers, stream, handling) = (pipeline.clone(), answers.clone(), stream.clone(), handling.clone());
    in_flight.spawn(async move {
        let ids: Vec<String> = events.iter().map(|event| event.id.clone()).collect();
        let outcomes = pipeline.deliver(&stream.pubsub, &stream.topic, "", events.into_iter().map(Ok).collect()).await;
        for (id, outcome) in ids.into_iter().zip(outcomes) {
            if answers.send(processed(id.clone(), outcome)).await.is_err() {
                tracing::warn!(event.id = %id, %outcome, "stream closed before the answer was sent; daprd will deliver again");
            }
            handling.answered(&id);
        }
    });
}

/// The answer for event `id` on a stream.
pub(crate) fn processed(id: String, outcome: Outcome) -> pb::SubscribeTopicEventsRequestAlpha1 {
    let status = Some(pb::TopicEventResponse { status: outcome.to_status() as i32 });
    pb::SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(Outbound::EventProcessed(
            pb::SubscribeTopicEventsRequestProcessedAlpha1 { id, status },
        )),
    }
}
