//! The five consumers. Each checks its event against the contract
//! ([`crate::contracts::Check`]), then writes its effect and its inbox row in
//! one transaction (shared with concurrent events: group commit). Order events
//! update the order's row and move the customer's figures by the order's
//! change (see [`crate::orders`]), so duplicates, redeliveries and
//! out-of-order events all end in the same state, in O(1) per event.
//!
//! Poison never loops: an event that breaks the contract or a business rule
//! (one owner per order, one currency per customer, refunds within the
//! order, totals within 64 bits) is dropped with the field and the reason,
//! and a batch that the database refuses as a whole is split until only the
//! entries that fail alone fail ([`eventbus::isolate`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use tokio::sync::{mpsc, oneshot};

use eventbus::{Event, HandlerError, isolate, subscribe};
use futures_util::future::BoxFuture;

use crate::commit::BatchEffect;
use crate::contracts::{
    AuthLogin, AuthPasswordChanged, Check, Id, OrderCancelled, OrderCompleted, OrderReturned, amount_minor,
    check_event_id,
};
use crate::orders::{Delta, OrderEvent, OrderState};
use crate::store::{Applied, Backend, Store, StoreError, Tx, millis, now_millis};

/// The worker's consumers, sharing the store.
pub struct CustomerConsumers {
    store: Store,
    /// Single order events, written together by [`write_order_batches`].
    orders: mpsc::Sender<Pending>,
}

/// Most single order events queued together.
const ORDER_BATCH: usize = 256;
/// Most order events in one transaction. Every multi-row statement then
/// stays within SQLite's 500 compound SELECT terms and 32,766 variables and
/// PostgreSQL's 65,535 parameters (9 a row at most): a bulk request of any
/// size is written in chunks.
const ORDER_CHUNK: usize = 200;

/// A single order event waiting for its batch.
struct Pending {
    item: Item,
    reply: oneshot::Sender<Result<Applied, HandlerError>>,
}

impl CustomerConsumers {
    /// The consumers; starts the task that writes single order events in
    /// batches (it stops when the consumers are dropped).
    pub fn new(store: Store) -> Self {
        let (orders, queue) = mpsc::channel(ORDER_BATCH * 4);
        tokio::spawn(write_order_batches(store.clone(), queue));
        CustomerConsumers { store, orders }
    }

    /// Applies one order event: it joins the order events arriving at the
    /// same time, written with the multi-row statements of a bulk batch.
    async fn order_event(&self, item: Item) -> Result<(), HandlerError> {
        let (topic, event_id) = (item.consumer, item.event_id.clone());
        let (reply, result) = oneshot::channel();
        let closed = || HandlerError::transient(anyhow::anyhow!("the order writer has stopped"));
        self.orders.send(Pending { item, reply }).await.map_err(|_| closed())?;
        let applied = result.await.map_err(|_| closed())??;
        log_applied(&event_id, topic, applied);
        Ok(())
    }
}

/// Takes every single order event queued (up to [`ORDER_BATCH`]) and writes
/// them as one batch; while a batch is written the next one fills up.
async fn write_order_batches(store: Store, mut queue: mpsc::Receiver<Pending>) {
    let mut pending = Vec::with_capacity(ORDER_BATCH);
    while queue.recv_many(&mut pending, ORDER_BATCH).await > 0 {
        let (items, replies): (Vec<Item>, Vec<_>) = pending.drain(..).map(|p| (p.item, p.reply)).unzip();
        for (reply, result) in replies.into_iter().zip(apply_orders(&store, items).await) {
            let _ = reply.send(result);
        }
    }
}

/// Writes order events in chunks of [`ORDER_CHUNK`], one transaction each;
/// a chunk the database refuses as a whole is split until each entry is
/// answered for itself. One result per item, in order.
async fn apply_orders(store: &Store, items: Vec<Item>) -> Vec<Result<Applied, HandlerError>> {
    let mut results = Vec::with_capacity(items.len());
    for chunk in items.chunks(ORDER_CHUNK) {
        let written = isolate(chunk.to_vec(), |items| async move {
            match store.apply_batch(OrderBatch { backend: store.backend(), items }).await {
                Ok(per_entry) => Ok(per_entry.into_iter().map(|r| r.map_err(StoreError::into_handler_error)).collect()),
                Err(error) => Err(error.into_handler_error()),
            }
        });
        results.extend(written.await);
    }
    results
}

/// The CloudEvent id and the payload checked against the contract.
fn checked<T: Check>(event: &Event<T>) -> Result<(), HandlerError> {
    check_event_id(event.id()).and_then(|()| event.data.check()).map_err(refused)
}

fn refused(reason: String) -> HandlerError {
    HandlerError::permanent(anyhow::anyhow!(reason))
}

fn log_applied(event_id: &str, topic: &str, applied: Applied) {
    match applied {
        Applied::Done => tracing::debug!(event.id = event_id, topic, "applied"),
        Applied::Duplicate => tracing::info!(event.id = event_id, topic, "duplicate event ignored"),
    }
}

/// The order and customer an event is about.
#[derive(Debug, Clone)]
struct OrderRef {
    order_id: String,
    customer_id: String,
}

#[eventbus::consumer]
impl CustomerConsumers {
    /// Counts the order once (whatever the event id), unless it is cancelled.
    ///
    /// Delivered in bulk (up to 100 events, or what arrived in 50 ms, which
    /// keeps publish-to-commit under 100 ms at low rates): a batch
    /// is written with multi-row statements in one transaction. A single event
    /// goes through group commit with its concurrent neighbours.
    #[subscribe("order.completed", dead_letter = "order.completed.dlq", bulk(max_messages = 100, max_await_ms = 50))]
    async fn order_completed(&self, events: Vec<Event<OrderCompleted>>) -> Vec<Result<(), HandlerError>> {
        let mut results: Vec<Option<Result<(), HandlerError>>> = Vec::with_capacity(events.len());
        let mut items = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let order = &event.data;
            let amount = checked(event)
                .and_then(|()| amount_minor("total_amount", &order.total_amount, &order.currency).map_err(refused));
            match amount {
                Ok(amount) => {
                    let change = OrderEvent::Completed {
                        currency: order.currency.0.clone(),
                        amount,
                        at: millis(order.completed_at),
                    };
                    let item = Item::single("order.completed", event.id(), &order.order_id, &order.customer_id, change);
                    items.push(Item { index, ..item });
                    results.push(None);
                }
                Err(error) => results.push(Some(Err(error))),
            }
        }
        if items.len() == 1 {
            // A single event joins the other order events arriving now.
            let item = items.remove(0);
            let index = item.index;
            results[index] = Some(self.order_event(item).await);
        } else if !items.is_empty() {
            let keys: Vec<(usize, String)> = items.iter().map(|i| (i.index, i.event_id.clone())).collect();
            for ((index, event_id), result) in keys.into_iter().zip(apply_orders(&self.store, items).await) {
                if let Ok(applied) = &result {
                    log_applied(&event_id, "order.completed", *applied);
                }
                results[index] = Some(result.map(|_| ()));
            }
        }
        results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
    }

    /// A completed order's contribution is reversed; a never-completed one
    /// only counts as cancelled.
    #[subscribe("order.cancelled", dead_letter = "order.cancelled.dlq")]
    async fn order_cancelled(&self, event: Event<OrderCancelled>) -> Result<(), HandlerError> {
        checked(&event)?;
        let order = &event.data;
        let change = OrderEvent::Cancelled {
            currency: order.currency.0.clone(),
            amount: amount_minor("total_amount", &order.total_amount, &order.currency).map_err(refused)?,
            at: millis(order.cancelled_at),
        };
        self.order_event(Item::single("order.cancelled", event.id(), &order.order_id, &order.customer_id, change)).await
    }

    /// The refund leaves the order's contribution (refunds beyond the
    /// order's amount are refused); the return is counted.
    #[subscribe("order.returned", dead_letter = "order.returned.dlq")]
    async fn order_returned(&self, event: Event<OrderReturned>) -> Result<(), HandlerError> {
        checked(&event)?;
        let order = &event.data;
        let refund = amount_minor("refund_amount", &order.refund_amount, &order.currency).map_err(refused)?;
        let change = OrderEvent::Returned { currency: order.currency.0.clone(), refund };
        self.order_event(Item::single("order.returned", event.id(), &order.order_id, &order.customer_id, change)).await
    }

    /// `last_login_at` becomes the later of the stored and the event's time.
    #[subscribe("auth.login", dead_letter = "auth.login.dlq")]
    async fn auth_login(&self, event: Event<AuthLogin>) -> Result<(), HandlerError> {
        checked(&event)?;
        let (customer, at) = (event.data.customer_id.0.clone(), millis(event.data.login_at));
        let applied = self
            .store
            .apply("auth.login", event.id(), &event.data.customer_id.0, move |tx| {
                let customer = customer.clone();
                Box::pin(async move {
                    lock_customer(tx, &customer).await?;
                    sqlx::query(
                        "UPDATE customers SET
                           last_login_at = CASE WHEN last_login_at IS NULL OR last_login_at < $2 THEN $2 ELSE last_login_at END
                         WHERE customer_id = $1",
                    )
                    .bind(&customer)
                    .bind(at)
                    .execute(&mut **tx)
                    .await?;
                    Ok(())
                })
            })
            .await
            .map_err(StoreError::into_handler_error)?;
        log_applied(event.id(), "auth.login", applied);
        Ok(())
    }

    /// Records a security event: who, when, from where.
    #[subscribe("auth.password_changed", dead_letter = "auth.password_changed.dlq")]
    async fn auth_password_changed(&self, event: Event<AuthPasswordChanged>) -> Result<(), HandlerError> {
        checked(&event)?;
        let change = event.data.clone();
        let event_id = event.id().to_owned();
        let applied = self
            .store
            .apply("auth.password_changed", event.id(), &event.data.customer_id.0, move |tx| {
                let (change, event_id) = (change.clone(), event_id.clone());
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO security_events (event_id, customer_id, kind, occurred_at, ip_address, user_agent, recorded_at)
                         VALUES ($1, $2, 'password_changed', $3, $4, $5, $6)
                         ON CONFLICT (event_id) DO NOTHING",
                    )
                    .bind(&event_id)
                    .bind(&change.customer_id.0)
                    .bind(millis(change.changed_at))
                    .bind(change.ip_address.as_deref())
                    .bind(change.user_agent.as_deref())
                    .bind(now_millis())
                    .execute(&mut **tx)
                    .await?;
                    Ok(())
                })
            })
            .await
            .map_err(StoreError::into_handler_error)?;
        log_applied(event.id(), "auth.password_changed", applied);
        Ok(())
    }
}

/// Placeholder `n` (from 1): `$n` for PostgreSQL; `?` for SQLite, where sqlx
/// resolves every `$n` by name, which costs O(n) per parameter in the long
/// multi-row statements below.
fn placeholder(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "?".to_owned(),
        Backend::Postgres => format!("${n}"),
    }
}

/// `p1, p2, …, pn`, numbered from `from`.
fn numbered(backend: Backend, from: usize, n: usize) -> String {
    (from..from + n).map(|i| placeholder(backend, i)).collect::<Vec<_>>().join(", ")
}

/// `(p1, p2, …), (pk, …)`: `rows` rows of `columns` placeholders.
fn placeholders(backend: Backend, rows: usize, columns: usize) -> String {
    (0..rows).map(|row| format!("({})", numbered(backend, row * columns + 1, columns))).collect::<Vec<_>>().join(", ")
}

fn refuse(customer: &str, existing: &str, currency: &str) -> String {
    format!("customer {customer} has orders in {existing}; an order in {currency} cannot be added to its totals")
}

/// Creates the customer row if needed and returns its currency. On
/// PostgreSQL this also locks the row until commit, so events of one customer
/// from several replicas apply one after the other.
async fn lock_customer(tx: &mut Tx, customer_id: &str) -> Result<Option<String>, StoreError> {
    let now = now_millis();
    let (currency,): (Option<String>,) = sqlx::query_as(
        "INSERT INTO customers (customer_id, created_at, updated_at) VALUES ($1, $2, $2)
         ON CONFLICT (customer_id) DO UPDATE SET updated_at = excluded.updated_at
         RETURNING currency",
    )
    .bind(customer_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(currency)
}

const ORDER_COLUMNS: &str =
    "order_id, customer_id, currency, amount_minor, completed_at, cancelled_at, refunded_minor, return_count";

type OrderRow = (String, String, Option<String>, Option<i64>, Option<i64>, Option<i64>, i64, i64);

/// An order as stored: its customer (the order's one owner) and its state.
fn state_of(row: OrderRow) -> (String, (String, OrderState)) {
    let (order_id, customer_id, currency, amount_minor, completed_at, cancelled_at, refunded_minor, return_count) = row;
    let state = OrderState { currency, amount_minor, completed_at, cancelled_at, refunded_minor, return_count };
    (order_id, (customer_id, state))
}

async fn load_orders(
    tx: &mut Tx,
    backend: Backend,
    order_ids: &[&str],
) -> Result<HashMap<String, (String, OrderState)>, sqlx::Error> {
    let sql = format!(
        "SELECT order_id, customer_id, currency, amount_minor, completed_at, cancelled_at, refunded_minor, return_count
         FROM orders WHERE order_id IN ({})",
        numbered(backend, 1, order_ids.len())
    );
    let mut query = sqlx::query_as::<_, OrderRow>(&sql);
    for id in order_ids {
        query = query.bind(*id);
    }
    Ok(query.fetch_all(&mut **tx).await?.into_iter().map(state_of).collect())
}

async fn save_orders(tx: &mut Tx, backend: Backend, orders: &[(&OrderRef, &OrderState)]) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO orders ({ORDER_COLUMNS}) VALUES {} ON CONFLICT (order_id) DO UPDATE SET
           currency = excluded.currency, amount_minor = excluded.amount_minor, completed_at = excluded.completed_at,
           cancelled_at = excluded.cancelled_at, refunded_minor = excluded.refunded_minor, return_count = excluded.return_count",
        placeholders(backend, orders.len(), 8)
    );
    let mut query = sqlx::query(&sql);
    for (order, state) in orders {
        query = query
            .bind(&order.order_id)
            .bind(&order.customer_id)
            .bind(state.currency.as_deref())
            .bind(state.amount_minor)
            .bind(state.completed_at)
            .bind(state.cancelled_at)
            .bind(state.refunded_minor)
            .bind(state.return_count);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Moves each customer's figures by its delta, in one statement.
async fn apply_deltas(tx: &mut Tx, backend: Backend, deltas: &[(&str, &str, &Delta)]) -> Result<(), sqlx::Error> {
    const COLUMNS: [&str; 9] = [
        "customer_id",
        "currency",
        "orders",
        "spent",
        "cancelled",
        "returns",
        "refunded",
        "first_counted",
        "last_counted",
    ];
    let rows: Vec<String> = (0..deltas.len())
        .map(|row| {
            let cells: Vec<String> = COLUMNS
                .iter()
                .enumerate()
                .map(|(c, name)| format!("{} AS {name}", placeholder(backend, row * 9 + c + 1)))
                .collect();
            format!("SELECT {}", cells.join(", "))
        })
        .collect();
    let sql = format!(
        "UPDATE customers SET
           currency = COALESCE(customers.currency, d.currency),
           order_count = customers.order_count + d.orders,
           total_spent_minor = customers.total_spent_minor + d.spent,
           cancelled_count = customers.cancelled_count + d.cancelled,
           returned_count = customers.returned_count + d.returns,
           refunded_minor = customers.refunded_minor + d.refunded,
           first_order_at = CASE WHEN d.first_counted IS NOT NULL
                                  AND (customers.first_order_at IS NULL OR d.first_counted < customers.first_order_at)
                                 THEN d.first_counted ELSE customers.first_order_at END,
           last_order_at = CASE WHEN d.last_counted IS NOT NULL
                                 AND (customers.last_order_at IS NULL OR d.last_counted > customers.last_order_at)
                                THEN d.last_counted ELSE customers.last_order_at END
         FROM ({}) AS d
         WHERE customers.customer_id = d.customer_id",
        rows.join(" UNION ALL ")
    );
    let mut query = sqlx::query(&sql);
    for (customer, currency, delta) in deltas {
        query = query
            .bind(*customer)
            .bind(*currency)
            .bind(delta.orders)
            .bind(delta.spent)
            .bind(delta.cancelled)
            .bind(delta.returns)
            .bind(delta.refunded)
            .bind(delta.first_counted)
            .bind(delta.last_counted);
    }
    query.execute(&mut **tx).await?;
    for (customer, _, delta) in deltas {
        if delta.uncounted {
            // An order stopped counting (a cancellation): its time may have
            // been the first or last one; only this rare case reads history.
            sqlx::query(
                "UPDATE customers SET
                   first_order_at = (SELECT MIN(o.completed_at) FROM orders o
                                     WHERE o.customer_id = $1 AND o.completed_at IS NOT NULL AND o.cancelled_at IS NULL),
                   last_order_at = (SELECT MAX(o.completed_at) FROM orders o
                                    WHERE o.customer_id = $1 AND o.completed_at IS NOT NULL AND o.cancelled_at IS NULL)
                 WHERE customer_id = $1",
            )
            .bind(*customer)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// One event of a batch.
#[derive(Debug, Clone)]
struct Item {
    /// The consumer (topic) whose inbox row it claims.
    consumer: &'static str,
    /// Its place in the batch the handler received.
    index: usize,
    event_id: String,
    order: OrderRef,
    change: OrderEvent,
}

impl Item {
    /// An event at index 0 (set `index` for an entry of a bulk batch).
    fn single(consumer: &'static str, event_id: &str, order_id: &Id, customer_id: &Id, change: OrderEvent) -> Item {
        let order = OrderRef { order_id: order_id.0.clone(), customer_id: customer_id.0.clone() };
        Item { consumer, index: 0, event_id: event_id.to_owned(), order, change }
    }
}

/// A batch of order events (of any of the three order topics), written with
/// a fixed number of statements whatever its size.
struct OrderBatch {
    backend: Backend,
    items: Vec<Item>,
}

/// A customer's figures as locked at the start of a batch, moved by each
/// accepted event: what the 64-bit totals are checked against.
#[derive(Debug, Clone)]
struct Locked {
    currency: Option<String>,
    spent: i64,
    refunded: i64,
}

impl BatchEffect for OrderBatch {
    fn apply<'t>(&'t self, tx: &'t mut Tx) -> BoxFuture<'t, Result<Vec<Result<Applied, String>>, sqlx::Error>> {
        Box::pin(async move {
            let (items, backend) = (&self.items, self.backend);
            let now = now_millis();
            // Locks are taken in one global order (inbox rows, customers,
            // orders, each sorted), so concurrent batches, from this replica
            // or another, never wait on each other in a cycle.
            // 1. Claim the inbox rows; the ids returned are the new ones.
            let mut claims: Vec<(&str, &str)> = items.iter().map(|i| (i.consumer, i.event_id.as_str())).collect();
            claims.sort_unstable();
            claims.dedup();
            let sql = format!(
                "INSERT INTO inbox (consumer, event_id, processed_at) VALUES {}
                 ON CONFLICT (consumer, event_id) DO NOTHING RETURNING consumer, event_id",
                placeholders(backend, claims.len(), 3)
            );
            let mut claim = sqlx::query_as::<_, (String, String)>(&sql);
            for (consumer, event_id) in &claims {
                claim = claim.bind(*consumer).bind(*event_id).bind(now);
            }
            let mut claimed: HashSet<(String, String)> = claim.fetch_all(&mut **tx).await?.into_iter().collect();
            // `remove`: a second copy of an event in the batch is a duplicate too.
            let fresh: Vec<bool> =
                items.iter().map(|item| claimed.remove(&(item.consumer.to_owned(), item.event_id.clone()))).collect();
            if !fresh.contains(&true) {
                return Ok(vec![Ok(Applied::Duplicate); items.len()]);
            }

            // 2. Create and lock the customers and read their figures.
            let customers: Vec<&str> = {
                let mut ids: Vec<&str> =
                    items.iter().zip(&fresh).filter(|(_, f)| **f).map(|(i, _)| i.order.customer_id.as_str()).collect();
                ids.sort_unstable();
                ids.dedup();
                ids
            };
            let sql = format!(
                "INSERT INTO customers (customer_id, created_at, updated_at) VALUES {}
                 ON CONFLICT (customer_id) DO UPDATE SET updated_at = excluded.updated_at
                 RETURNING customer_id, currency, total_spent_minor, refunded_minor",
                placeholders(backend, customers.len(), 3)
            );
            let mut lock = sqlx::query_as::<_, (String, Option<String>, i64, i64)>(&sql);
            for customer in &customers {
                lock = lock.bind(*customer).bind(now).bind(now);
            }
            let mut locked: HashMap<String, Locked> = lock
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(|(id, currency, spent, refunded)| (id, Locked { currency, spent, refunded }))
                .collect();

            // 3. The orders as stored, then every event applied in memory.
            let order_ids: Vec<&str> = {
                let mut ids: Vec<&str> = items.iter().map(|i| i.order.order_id.as_str()).collect();
                ids.sort_unstable();
                ids.dedup();
                ids
            };
            let mut orders = load_orders(tx, backend, &order_ids).await?;
            let mut changed: BTreeMap<&str, &OrderRef> = BTreeMap::new();
            let mut deltas: BTreeMap<&str, (String, Delta)> = BTreeMap::new();
            let mut refused = Vec::new();
            let mut results = Vec::with_capacity(items.len());
            for (item, fresh) in items.iter().zip(fresh) {
                if !fresh {
                    results.push(Ok(Applied::Duplicate));
                    continue;
                }
                match accept(item, &mut orders, &mut locked) {
                    Ok(delta) => {
                        let (customer, currency) = (item.order.customer_id.as_str(), item.change.currency());
                        deltas.entry(customer).or_insert_with(|| (currency.to_owned(), Delta::default())).1.add(&delta);
                        changed.insert(&item.order.order_id, &item.order);
                        results.push(Ok(Applied::Done));
                    }
                    Err(reason) => {
                        results.push(Err(reason));
                        refused.push(item);
                    }
                }
            }

            // 4. Refused events leave nothing behind: not their claim, nor a
            //    customer row they alone created (rare: one statement each).
            for item in &refused {
                sqlx::query("DELETE FROM inbox WHERE consumer = $1 AND event_id = $2")
                    .bind(item.consumer)
                    .bind(&item.event_id)
                    .execute(&mut **tx)
                    .await?;
                if !deltas.contains_key(item.order.customer_id.as_str()) {
                    sqlx::query(
                        "DELETE FROM customers WHERE customer_id = $1 AND created_at = $2 AND order_count = 0
                           AND cancelled_count = 0 AND returned_count = 0 AND last_login_at IS NULL
                           AND NOT EXISTS (SELECT 1 FROM orders WHERE orders.customer_id = $1)",
                    )
                    .bind(&item.order.customer_id)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                }
            }

            // 5. The orders' new states, then each customer's figures.
            if !changed.is_empty() {
                let rows: Vec<(&OrderRef, &OrderState)> = changed
                    .iter()
                    .filter_map(|(id, order)| orders.get(*id).map(|(_, state)| (*order, state)))
                    .collect();
                save_orders(tx, backend, &rows).await?;
            }
            let deltas: Vec<(&str, &str, &Delta)> = deltas
                .iter()
                .filter(|(_, (_, d))| *d != Delta::default())
                .map(|(c, (cur, d))| (*c, cur.as_str(), d))
                .collect();
            if !deltas.is_empty() {
                apply_deltas(tx, backend, &deltas).await?;
            }
            Ok(results)
        })
    }
}

/// Applies `item` to its order and its customer's figures in memory, or
/// says why the event is refused: the order belongs to another customer, the
/// customer's totals are in another currency, refunds would exceed the
/// order, or a total would overflow.
fn accept(
    item: &Item,
    orders: &mut HashMap<String, (String, OrderState)>,
    locked: &mut HashMap<String, Locked>,
) -> Result<Delta, String> {
    let (order_id, customer) = (&item.order.order_id, &item.order.customer_id);
    let currency = item.change.currency();
    let (owner, old) = orders.get(order_id).cloned().unwrap_or_else(|| (customer.clone(), OrderState::default()));
    if &owner != customer {
        tracing::warn!(event.id = %item.event_id, order = %order_id, owner = %owner, customer = %customer, "order claimed by a second customer");
        return Err(format!("customer_id: order {order_id} belongs to customer {owner}, not {customer}"));
    }
    let figures = locked.get_mut(customer).ok_or_else(|| format!("customer_id: customer {customer} was not locked"))?;
    if let Some(existing) = &figures.currency
        && existing != currency
    {
        return Err(refuse(customer, existing, currency));
    }
    let new = old.apply(&item.change)?;
    let delta = Delta::between(&old, &new);
    let spent = figures.spent.checked_add(delta.spent);
    let refunded = figures.refunded.checked_add(delta.refunded);
    let (Some(spent), Some(refunded)) = (spent, refunded) else {
        return Err(format!("customer {customer}: total spent or refunded would overflow 64 bits"));
    };
    *figures = Locked { currency: Some(currency.to_owned()), spent, refunded };
    orders.insert(order_id.clone(), (owner, new));
    Ok(delta)
}
