//! Group commit: the effects of events that arrive together are written in
//! one transaction, so one durable commit (one fsync) acknowledges many
//! events. No event is answered before the commit that holds its effect.
//! Every write of the store goes through this one queue.
//!
//! A committer task waits for a free writer, then takes every write queued
//! by then (up to [`MAX_JOBS`]) and hands it to that writer as one batch
//! ([`super::write`]: the same few statements whatever the batch's size).
//! While the writers are busy, new events queue up and make the next batch
//! bigger, not later: under load the batches grow and the cost per event
//! falls. PostgreSQL gets several writers, so one commit's round trips and
//! fsync do not hold back the next batch; SQLite has one writer at a time
//! anyway, so it gets one.

use std::sync::Arc;

use eventbus::HandlerError;
use sqlx::AnyPool;
use tokio::sync::{Semaphore, mpsc, oneshot};

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

/// Starts the committer with `writers` transactions at most in flight; it
/// stops when every sender is dropped.
pub(super) fn start(pool: AnyPool, backend: Backend, writers: usize) -> mpsc::Sender<Job> {
    let (sender, mut receiver) = mpsc::channel::<Job>(MAX_JOBS * 4);
    tokio::spawn(async move {
        let free = Arc::new(Semaphore::new(writers));
        let mut jobs = Vec::with_capacity(MAX_JOBS);
        loop {
            let Ok(writer) = free.clone().acquire_owned().await else { break };
            if receiver.recv_many(&mut jobs, MAX_JOBS).await == 0 {
                break;
            }
            let batch = std::mem::take(&mut jobs);
            let pool = pool.clone();
            tokio::spawn(async move {
                commit(&pool, backend, batch).await;
                drop(writer);
            });
        }
    });
    sender
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
