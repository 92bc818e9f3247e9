//! Group commit: effects of events that arrive together are written in one
//! transaction, so one durable commit (one fsync) acknowledges many events.
//! No event is answered before the commit that holds its effect. Every write
//! of the store goes through this one queue: single effects (the auth
//! events) and order events, single or bulk (written together by
//! [`super::orders`]).
//!
//! One committer task owns the writes: it takes the first queued effect and
//! every other one already waiting (up to [`MAX_BATCH`]), claims their inbox
//! rows (in id order), applies the claimed effects (in customer order) in one
//! transaction, and commits. Locks are taken in one global order (inbox rows,
//! then customers, then orders, each sorted), so replicas sharing a database
//! cannot deadlock. If the transaction fails because of an event's data, it is
//! rolled back and each effect is applied alone, so one bad event never fails
//! its neighbours; if it fails because the database is unavailable, every
//! event of the batch is answered at once (they are all retried).

use eventbus::HandlerError;
use futures_util::future::BoxFuture;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::classify::{ErrorKind, classify};
use super::orders::{OrderItem, write_orders};
use super::{Applied, Backend, StoreError, Tx, now_millis};

/// Most effects in one transaction.
pub(super) const MAX_BATCH: usize = 256;

/// An event's effect on the database. It may run twice (the second time
/// alone, after its batch was rolled back), so it is `Fn`.
pub(super) trait Effect: Send + Sync + 'static {
    fn apply<'t>(&'t self, tx: &'t mut Tx) -> BoxFuture<'t, Result<(), StoreError>>;
}

impl<F> Effect for F
where
    F: for<'t> Fn(&'t mut Tx) -> BoxFuture<'t, Result<(), StoreError>> + Send + Sync + 'static,
{
    fn apply<'t>(&'t self, tx: &'t mut Tx) -> BoxFuture<'t, Result<(), StoreError>> {
        self(tx)
    }
}

/// One queued effect and where its result goes.
pub(super) struct Job {
    pub consumer: &'static str,
    pub event_id: String,
    /// The customer row the effect locks (the order effects run in).
    pub customer_id: String,
    pub effect: Box<dyn Effect>,
    pub reply: oneshot::Sender<Result<Applied, StoreError>>,
}

/// Order events (a bulk batch, or one event) and where their results go.
pub(super) struct OrdersJob {
    pub items: Vec<OrderItem>,
    pub reply: oneshot::Sender<Vec<Result<Applied, HandlerError>>>,
}

/// What the committer is asked to write.
pub(super) enum Queued {
    One(Job),
    Orders(OrdersJob),
}

/// Starts the committer; it stops when every sender is dropped.
pub(super) fn start(pool: AnyPool, backend: Backend) -> mpsc::Sender<Queued> {
    let (sender, mut receiver) = mpsc::channel::<Queued>(MAX_BATCH * 4);
    tokio::spawn(async move {
        let mut queued = Vec::with_capacity(MAX_BATCH);
        while receiver.recv_many(&mut queued, MAX_BATCH).await > 0 {
            let mut ones = Vec::with_capacity(queued.len());
            let mut orders = Vec::new();
            for item in queued.drain(..) {
                match item {
                    Queued::One(job) => ones.push(job),
                    Queued::Orders(job) => orders.push(job),
                }
            }
            if !orders.is_empty() {
                commit_orders(&pool, backend, orders).await;
            }
            if !ones.is_empty() {
                commit(&pool, backend, ones).await;
            }
        }
    });
    sender
}

/// Every order event queued now, written together; each job gets its own results back.
async fn commit_orders(pool: &AnyPool, backend: Backend, jobs: Vec<OrdersJob>) {
    let sizes: Vec<usize> = jobs.iter().map(|job| job.items.len()).collect();
    let (items, replies): (Vec<Vec<OrderItem>>, Vec<_>) = jobs.into_iter().map(|job| (job.items, job.reply)).unzip();
    let mut results = write_orders(pool, backend, items.into_iter().flatten().collect()).await.into_iter();
    for (size, reply) in sizes.into_iter().zip(replies) {
        let _ = reply.send(results.by_ref().take(size).collect());
    }
}

async fn commit(pool: &AnyPool, backend: Backend, batch: Vec<Job>) {
    metrics::histogram!("customer_worker_commit_batch_size").record(batch.len() as f64);
    let error = match apply_all(pool, &batch).await {
        Ok(results) => {
            for (job, applied) in batch.into_iter().zip(results) {
                let _ = job.reply.send(Ok(applied));
            }
            return;
        }
        Err(error) => error,
    };
    let caused_by_data = match &error {
        StoreError::Database(error) => classify(backend, error) == ErrorKind::Permanent,
        StoreError::Unavailable(_) => false,
        StoreError::Refused(_) | StoreError::Rejected(_) => true,
    };
    if batch.len() == 1 || !caused_by_data {
        // The database is unavailable (or this was the only event): every
        // event gets the same answer now, instead of one timeout each.
        let message = error.to_string();
        let mut jobs = batch.into_iter();
        if let Some(first) = jobs.next() {
            let _ = first.reply.send(Err(error));
        }
        for job in jobs {
            let _ = job.reply.send(Err(StoreError::Unavailable(message.clone())));
        }
        return;
    }
    // Some event's data failed the transaction: one transaction each.
    for job in batch {
        let result = apply_all(pool, std::slice::from_ref(&job)).await.map(|mut applied| applied.remove(0));
        let _ = job.reply.send(result);
    }
}

/// Applies `jobs` in one transaction; any error rolls all of them back.
/// Inbox rows are claimed first in (consumer, id) order, then the claimed
/// effects run in customer order: one lock order for every transaction.
async fn apply_all(pool: &AnyPool, jobs: &[Job]) -> Result<Vec<Applied>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut results = vec![Applied::Duplicate; jobs.len()];
    let mut by_id: Vec<usize> = (0..jobs.len()).collect();
    by_id.sort_by(|&a, &b| (jobs[a].consumer, &jobs[a].event_id).cmp(&(jobs[b].consumer, &jobs[b].event_id)));
    for index in by_id {
        let job = &jobs[index];
        let claimed = sqlx::query(
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES ($1, $2, $3) ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(job.consumer)
        .bind(&job.event_id)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 1 {
            results[index] = Applied::Done;
        }
    }
    let mut by_customer: Vec<usize> = (0..jobs.len()).filter(|&i| results[i] == Applied::Done).collect();
    by_customer.sort_by(|&a, &b| jobs[a].customer_id.cmp(&jobs[b].customer_id));
    for index in by_customer {
        jobs[index].effect.apply(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(results)
}
