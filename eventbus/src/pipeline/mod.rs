//! The pipeline: the one front door of every transport. It takes our own
//! requests (an event, the entries of a bulk delivery, an invocation, a
//! binding event, a job), runs them through the registry and the middleware,
//! and gives our own answers back; the transports (`crate::transport`) only
//! translate Dapr's messages to and from these.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::binding::BindingEvent;
use crate::event::Envelope;
use crate::extract::Context;
use crate::invoke::{Invocation, Reply};
use crate::middleware::{self, Answer, BoxService, Call, Events, Kind, Request, Response};
use crate::outcome::{Outcome, Reason, report_drop};
use crate::registry::{Registry, Route};
use crate::status::Code;
use crate::status::Status;
use invocation::{Job, ReadinessFn};

mod health;
pub(crate) mod invocation;

pub(crate) use health::Health;

/// The answer of a binding event or a job.
fn done(response: Response) -> Result<(), Status> {
    match response.0 {
        Answer::Done(result) => result,
        _ => Err(Status::internal("a binding event or job was answered as another call")),
    }
}

/// Everything the transports share; built once by the server builder.
pub(crate) struct Pipeline {
    pub(crate) registry: Registry,
    pub(crate) service: BoxService,
    pub(crate) context: Arc<Context>,
    pub(crate) token: Option<String>,
    pub(crate) unknown_topic: Outcome,
    pub(crate) missing_id: Outcome,
    pub(crate) bulk_concurrency: usize,
    pub(crate) max_message_size: usize,
    pub(crate) readiness: Option<ReadinessFn>,
    pub(crate) draining: AtomicBool,
    /// What `grpc.health.v1` answers, pushed by [`Pipeline::ready`] and the drain.
    pub(crate) health: Health,
    pub(crate) in_flight: TaskTracker,
    /// Cancelled when the drain deadline passes: what is still running is answered `Retry`.
    pub(crate) past_drain_deadline: CancellationToken,
}

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

/// An answer for some entries and why, before the handlers answer the rest.
type Answered = (Outcome, Reason);

impl Pipeline {
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
    /// Every answer is counted here, with its reason.
    pub(crate) async fn deliver(&self, pubsub: &str, topic: &str, path: &str, entries: Vec<Entry>) -> Vec<Outcome> {
        let answered = self.answer(pubsub, topic, path, entries).await;
        crate::registry::count_events(pubsub, topic, &answered);
        answered.into_iter().map(|(outcome, _)| outcome).collect()
    }

    async fn answer(&self, pubsub: &str, topic: &str, path: &str, entries: Vec<Entry>) -> Vec<Answered> {
        // Take the in-flight token before looking at `draining`, so a drain
        // that starts now waits for these events.
        let _in_flight = self.in_flight.token();
        if self.draining.load(Ordering::Acquire) {
            let ids = entries.iter().map(|e| e.as_ref().map_or("", |e| e.id.as_str())).collect::<Vec<_>>().join(",");
            tracing::info!(event.id = %ids, topic, outcome = "retry", reason = %Reason::Draining, "shutting down: delivered again later");
            return vec![(Outcome::Retry, Reason::Draining); entries.len()];
        }
        // Admitted entries hold a placeholder until the handlers answer.
        let mut answers = Vec::with_capacity(entries.len());
        let mut admitted = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            match self.admit(entry, pubsub, topic) {
                Ok(envelope) => {
                    admitted.push((index, envelope));
                    answers.push((Outcome::Retry, Reason::Handler));
                }
                Err(answer) => answers.push(answer),
            }
        }
        if admitted.is_empty() {
            return answers;
        }
        let answered = match self.registry.route(pubsub, topic, path) {
            None => {
                let ids = admitted.iter().map(|(_, e)| e.id.as_str()).collect::<Vec<_>>().join(",");
                tracing::warn!(
                    event.id = %ids, topic, outcome = %self.unknown_topic, reason = %Reason::UnknownRoute, pubsub, path,
                    "no handler for this pubsub, topic and path"
                );
                if self.unknown_topic == Outcome::Drop {
                    for (_, event) in &admitted {
                        report_drop(&self.context, pubsub, topic, &event.id, format!("no handler for path {path:?}"));
                    }
                }
                vec![(self.unknown_topic, Reason::UnknownRoute); admitted.len()]
            }
            Some(route) if route.takes_batches() => {
                let events = admitted.iter().map(|(_, event)| event.clone()).collect();
                self.run(route, Events::Batch(events)).await
            }
            Some(route) => self.run_each(route, &admitted).await,
        };
        for ((index, _), answer) in admitted.iter().zip(answered) {
            answers[*index] = answer;
        }
        answers
    }

    /// The entry's event, or the answer for an entry no handler may see.
    fn admit(&self, entry: Entry, pubsub: &str, topic: &str) -> Result<Arc<Envelope>, Answered> {
        let envelope = entry.map_err(|Unreadable { id, reason }| {
            tracing::error!(event.id = %id, topic, outcome = "drop", reason = %Reason::Decode, error = reason, "bulk entry cannot be read");
            report_drop(&self.context, pubsub, topic, &id, format!("bulk entry cannot be read: {reason}"));
            (Outcome::Drop, Reason::Decode)
        })?;
        if envelope.data.len() > self.max_message_size {
            tracing::error!(
                event.id = %envelope.id, topic, outcome = "drop", reason = %Reason::Oversize, bytes = envelope.data.len(),
                limit = self.max_message_size, "event larger than max_message_size"
            );
            let reason =
                format!("{} bytes, more than max_message_size ({})", envelope.data.len(), self.max_message_size);
            report_drop(&self.context, pubsub, topic, &envelope.id, reason);
            return Err((Outcome::Drop, Reason::Oversize));
        }
        if envelope.id.is_empty() {
            // The id is the deduplication key: such an event cannot be applied once.
            tracing::error!(event.id = "", topic, outcome = %self.missing_id, reason = %Reason::MissingId, "event without a CloudEvent id: it cannot be deduplicated");
            if self.missing_id == Outcome::Drop {
                report_drop(&self.context, pubsub, topic, "", "no CloudEvent id");
            }
            return Err((self.missing_id, Reason::MissingId));
        }
        Ok(envelope)
    }

    /// Each event through the middleware on its own: in order, at most
    /// `bulk_concurrency` at once.
    async fn run_each(&self, route: &Arc<Route>, admitted: &[(usize, Arc<Envelope>)]) -> Vec<Answered> {
        if let [(_, event)] = admitted {
            return self.run(route, Events::One(event.clone())).await;
        }
        // Collected first: a stream over a borrowing closure is not `Send`-provable.
        let calls: Vec<_> = admitted
            .iter()
            .map(|(_, event)| {
                let event = Events::One(event.clone());
                async move { self.run(route, event).await.pop().unwrap_or((Outcome::Retry, Reason::Handler)) }
            })
            .collect();
        futures_util::stream::iter(calls).buffered(self.bulk_concurrency).collect().await
    }

    /// One handler call through the middleware, or `Retry` for every event
    /// once the drain deadline has passed. `biased`: the work is polled
    /// first, so a call that completes at once never waits on the shared token.
    async fn run(&self, route: &Arc<Route>, events: Events) -> Vec<Answered> {
        let request = Request::new(Call::Events(events), route.clone(), self.context.clone());
        let count = request.events().len();
        let response = tokio::select! {
            biased;
            response = middleware::run(self.service.clone(), request) => response,
            () = self.past_drain_deadline.cancelled() => return vec![(Outcome::Retry, Reason::Draining); count],
        };
        match response.0 {
            Answer::Events(outcomes, reasons) if outcomes.len() == count && reasons.len() == count => {
                outcomes.into_iter().zip(reasons).collect()
            }
            _ => vec![(Outcome::Retry, Reason::Handler); count],
        }
    }
}

impl Pipeline {
    /// Runs service invocation of `invocation.method` through the
    /// middleware; `Unimplemented` when no handler has it.
    pub(crate) async fn invoke(&self, invocation: Invocation) -> Result<Reply, Status> {
        let Some(route) = self.registry.call(Kind::Invocation, &invocation.method) else {
            tracing::warn!(method = %invocation.method, "no handler for this invocation");
            return Err(Status::unimplemented(format!("no handler for method {:?}", invocation.method)));
        };
        match self.call(route, Call::Invocation(invocation)).await.0 {
            Answer::Reply(reply) => reply,
            _ => Err(Status::internal("an invocation was answered as another call")),
        }
    }

    /// `true` when `method` has an invocation handler.
    #[cfg(feature = "http")]
    pub(crate) fn invokes(&self, method: &str) -> bool {
        self.registry.call(Kind::Invocation, method).is_some()
    }

    /// Delivers an input binding's event through the middleware; `NotFound`
    /// when no handler has it.
    pub(crate) async fn binding(&self, event: BindingEvent) -> Result<(), Status> {
        let Some(route) = self.registry.call(Kind::Binding, &event.name) else {
            tracing::warn!(binding = %event.name, "no handler for this binding");
            return Err(Status::not_found(format!("no handler for binding {:?}", event.name)));
        };
        done(self.call(route, Call::Binding(event)).await)
    }

    /// `true` when `name` has a binding handler.
    #[cfg(feature = "http")]
    pub(crate) fn binds(&self, name: &str) -> bool {
        self.registry.call(Kind::Binding, name).is_some()
    }

    /// Runs a job through the middleware; `NotFound` when no handler has it,
    /// `Internal` when it fails (so the scheduler applies the job's failure
    /// policy).
    pub(crate) async fn job(&self, job: Job) -> Result<(), Status> {
        let Some(route) = self.registry.call(Kind::Job, &job.name) else {
            tracing::warn!(job = %job.name, "no handler for this job");
            return Err(Status::not_found(format!("no handler for job {:?}", job.name)));
        };
        done(self.call(route, Call::Job(job)).await)
    }

    /// One call other than events through the middleware, counted in flight
    /// for shutdown; `Unavailable` once the drain deadline has passed.
    async fn call(&self, route: &Arc<Route>, call: Call) -> Response {
        let _in_flight = self.in_flight.token();
        let request = Request::new(call, route.clone(), self.context.clone());
        let refusal = request.refusal();
        tokio::select! {
            biased;
            response = middleware::run(self.service.clone(), request) => response,
            () = self.past_drain_deadline.cancelled() => refusal.refuse(Reason::Draining, Code::Unavailable, "shutting down"),
        }
    }

    /// Not draining and the user's probe, if any, passes. The answer is
    /// reported to `grpc.health.v1` watchers when it changed.
    pub(crate) async fn ready(&self) -> Result<(), String> {
        let ready = if self.draining.load(Ordering::Acquire) {
            Err("draining for shutdown".into())
        } else {
            match &self.readiness {
                Some(probe) => probe().await,
                None => Ok(()),
            }
        };
        self.health.report(ready.is_ok()).await;
        ready
    }

    /// From now on, new events are retried and readiness fails.
    pub(crate) async fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        self.health.report(false).await;
    }
}
