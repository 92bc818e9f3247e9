//! Group commit: the effects of events that arrive together are written in
//! one transaction, so one durable commit (one fsync) acknowledges many
//! events. No event is answered before the commit that holds its effect.
//! Every write of the store goes through this one queue.
//!
//! A committer task hands every write queued (up to [`MAX_JOBS`]) to a
//! writer as one batch ([`super::write`]: the same few statements whatever
//! the batch's size). While a transaction is in flight, new events queue up
//! and make the next batch bigger, not later: under load the batches grow
//! and the cost per event falls. On PostgreSQL spare writers take the queue
//! while a transaction is in flight once it holds [`SPARE_WRITER_BATCH`]
//! events (a burst, a slow commit), so one commit's round trips and fsync do
//! not hold back the next batch; SQLite has one writer at a time anyway, so
//! it gets one.

use std::sync::Arc;

use eventbus::HandlerError;
use sqlx::AnyPool;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::Applied;
use super::Backend;
use super::write::{Item, write_items};

/// Most queued writes (a single event, or a bulk request) taken into one batch.
const MAX_JOBS: usize = 256;

/// Events (one, or a bulk request's) and where their results go.
pub(super) struct Job {
    pub items: Vec<Item>,
    pub reply: oneshot::Sender<Vec<Result<Applied, HandlerError>>>,
}

/// How many transactions write at once: one on SQLite (one writer at a
/// time), else half the pool, at most four, so that readiness probes and
/// the jobs still find a connection.
pub(super) fn writers(backend: Backend, max_connections: u32) -> usize {
    match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => usize::try_from(max_connections / 2).unwrap_or(1).clamp(1, 4),
    }
}

/// Events a batch needs before a second writer takes it while another
/// transaction is in flight. Below it, the batch waits for the busy writer:
/// a steady trickle is written by one writer in batches that grow with the
/// load (fewer round trips per event); the extra writers take the backlog of
/// a burst or a slow commit.
const SPARE_WRITER_BATCH: usize = 16;

/// Starts the committer with `writers` transactions at most in flight; it
/// stops when every sender is dropped.
pub(super) fn start(pool: AnyPool, backend: Backend, writers: usize) -> mpsc::Sender<Job> {
    let (sender, mut receiver) = mpsc::channel::<Job>(MAX_JOBS * 4);
    tokio::spawn(async move {
        let free = Arc::new(Semaphore::new(writers));
        let finished = Arc::new(Notify::new());
        let mut jobs = Vec::with_capacity(MAX_JOBS);
        let mut open = true;
        while open || !jobs.is_empty() {
            if jobs.is_empty() && receiver.recv_many(&mut jobs, MAX_JOBS).await == 0 {
                break;
            }
            let writer = loop {
                let idle = free.available_permits() == writers;
                let events: usize = jobs.iter().map(|job: &Job| job.items.len()).sum();
                if (idle || events >= SPARE_WRITER_BATCH || !open)
                    && let Ok(writer) = free.clone().try_acquire_owned()
                {
                    break writer;
                }
                tokio::select! {
                    () = finished.notified() => {}
                    received = receiver.recv_many(&mut jobs, MAX_JOBS), if open && jobs.len() < MAX_JOBS => {
                        open = received > 0;
                    }
                }
            };
            let batch = std::mem::take(&mut jobs);
            let turn = Turn { writer: Some(writer), finished: finished.clone() };
            let pool = pool.clone();
            tokio::spawn(async move {
                commit(&pool, backend, batch).await;
                drop(turn);
            });
        }
    });
    sender
}

/// A writer's turn: when it ends, even by a panic, the writer is free again
/// and the committer is woken to look at the queue.
struct Turn {
    writer: Option<OwnedSemaphorePermit>,
    finished: Arc<Notify>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.writer.take());
        self.finished.notify_one();
    }
}

/// Every event of `jobs`, written together; each job gets its own results back.
async fn commit(pool: &AnyPool, backend: Backend, jobs: Vec<Job>) {
    let sizes: Vec<usize> = jobs.iter().map(|job| job.items.len()).collect();
    let (items, replies): (Vec<Vec<Item>>, Vec<_>) = jobs.into_iter().map(|job| (job.items, job.reply)).unzip();
    let mut results = write_items(pool, backend, items.into_iter().flatten().collect()).await.into_iter();
    for (size, reply) in sizes.into_iter().zip(replies) {
        let _ = reply.send(results.by_ref().take(size).collect());
    }
}
