//! The order repository: order events written in batches, with multi-row
//! statements, behind their inbox claims, in one transaction per batch of at
//! most [`MAX_ORDERS_PER_TRANSACTION`]. A batch the database refuses as a
//! whole is split until each entry is answered for itself
//! ([`eventbus::isolate`]).
//!
//! Locks are taken in one global order (inbox rows, customers, orders, each
//! sorted), so concurrent batches, from this replica or another, never wait
//! on each other in a cycle.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use eventbus::{HandlerError, isolate};
use sqlx::AnyPool;

use super::{Applied, Backend, StoreError, Tx, now_millis};
use crate::orders::{Delta, OrderEvent, OrderState};

/// Most order events in one transaction. Every multi-row statement then
/// stays within SQLite's 500 compound SELECT terms and 32,766 variables and
/// PostgreSQL's 65,535 parameters (9 a row at most): a bulk request of any
/// size is written in chunks.
pub const MAX_ORDERS_PER_TRANSACTION: usize = 200;

/// Writes `items` in transactions of at most [`MAX_ORDERS_PER_TRANSACTION`];
/// one result per item, in order.
pub(super) async fn write_orders(
    pool: &AnyPool,
    backend: Backend,
    items: Vec<OrderItem>,
) -> Vec<Result<Applied, HandlerError>> {
    let mut results = Vec::with_capacity(items.len());
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        // Moved, not cloned: items are copied only if a chunk has to be split.
        let chunk: Vec<OrderItem> = items.by_ref().take(MAX_ORDERS_PER_TRANSACTION).collect();
        let written = isolate(chunk, |items| async move {
            one_transaction(pool, backend, &items)
                .await
                .map_err(|e| StoreError::from(e).classified(backend).into_handler_error())
        });
        results.extend(written.await);
    }
    results
}

async fn one_transaction(
    pool: &AnyPool,
    backend: Backend,
    items: &[OrderItem],
) -> Result<Vec<Result<Applied, HandlerError>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let results = write_batch(&mut tx, backend, items).await?;
    tx.commit().await?;
    Ok(results.into_iter().map(|r| r.map_err(|reason| StoreError::Rejected(reason).into_handler_error())).collect())
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

async fn save_orders(tx: &mut Tx, backend: Backend, orders: &[(&OrderItem, &OrderState)]) -> Result<(), sqlx::Error> {
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

/// One order event to write.
#[derive(Debug, Clone)]
pub struct OrderItem {
    /// The consumer (topic) whose inbox row it claims.
    pub consumer: &'static str,
    pub event_id: String,
    pub order_id: String,
    pub customer_id: String,
    pub change: OrderEvent,
}

/// A customer's figures as locked at the start of a batch, moved by each
/// accepted event: what the 64-bit totals are checked against.
#[derive(Debug, Clone)]
struct Locked {
    currency: Option<String>,
    spent: i64,
    refunded: i64,
}

/// Writes a batch of order events (of any of the three order topics) in
/// `tx` with a fixed number of statements whatever its size (callers keep
/// batches within [`MAX_ORDERS_PER_TRANSACTION`]); one result per item:
/// applied, duplicate, or refused with the reason (a refused event leaves
/// nothing behind, its inbox claim included).
pub(super) async fn write_batch(
    tx: &mut Tx,
    backend: Backend,
    items: &[OrderItem],
) -> Result<Vec<Result<Applied, String>>, sqlx::Error> {
    {
        let now = now_millis();
        // Locks are taken in one global order (inbox rows, customers,
        // orders, each sorted), so concurrent batches, from this replica
        // or another, never wait on each other in a cycle.
        // Each event is judged at its first copy in the batch; a later copy
        // (a redelivery after a crash lands beside the original) gets that
        // copy's answer, so a refusal is never answered SUCCESS.
        let mut first_copy: HashMap<(&str, &str), usize> = HashMap::new();
        let copy_of: Vec<Option<usize>> = items
            .iter()
            .enumerate()
            .map(|(index, item)| match first_copy.entry((item.consumer, item.event_id.as_str())) {
                Entry::Occupied(first) => Some(*first.get()),
                Entry::Vacant(slot) => {
                    slot.insert(index);
                    None
                }
            })
            .collect();
        // 1. Claim the inbox rows (each id once, sorted); the rows returned
        //    are the new ones, fresh at their first copy.
        let mut claims: Vec<(&str, &str)> = first_copy.keys().copied().collect();
        claims.sort_unstable();
        let sql = format!(
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES {}
                 ON CONFLICT (consumer, event_id) DO NOTHING RETURNING consumer, event_id",
            placeholders(backend, claims.len(), 3)
        );
        let mut claim = sqlx::query_as::<_, (String, String)>(&sql);
        for (consumer, event_id) in &claims {
            claim = claim.bind(*consumer).bind(*event_id).bind(now);
        }
        let mut fresh = vec![false; items.len()];
        for (consumer, event_id) in claim.fetch_all(&mut **tx).await? {
            if let Some(&first) = first_copy.get(&(consumer.as_str(), event_id.as_str())) {
                fresh[first] = true;
            }
        }
        if !fresh.contains(&true) {
            return Ok(vec![Ok(Applied::Duplicate); items.len()]);
        }

        // 2. Create and lock the customers and read their figures.
        let customers: Vec<&str> = {
            let mut ids: Vec<&str> =
                items.iter().zip(&fresh).filter(|(_, f)| **f).map(|(i, _)| i.customer_id.as_str()).collect();
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
            let mut ids: Vec<&str> = items.iter().map(|i| i.order_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let mut orders = load_orders(&mut *tx, backend, &order_ids).await?;
        let mut changed: BTreeMap<&str, &OrderItem> = BTreeMap::new();
        let mut deltas: BTreeMap<&str, (String, Delta)> = BTreeMap::new();
        let mut refused = Vec::new();
        let mut results: Vec<Result<Applied, String>> = Vec::with_capacity(items.len());
        for ((item, fresh), copy) in items.iter().zip(fresh).zip(&copy_of) {
            if let Some(first) = *copy {
                let answer = results[first].clone().map(|_| Applied::Duplicate);
                results.push(answer);
                continue;
            }
            if !fresh {
                results.push(Ok(Applied::Duplicate));
                continue;
            }
            match accept(item, &mut orders, &mut locked) {
                Ok(delta) => {
                    let (customer, currency) = (item.customer_id.as_str(), item.change.currency());
                    deltas.entry(customer).or_insert_with(|| (currency.to_owned(), Delta::default())).1.add(&delta);
                    changed.insert(&item.order_id, item);
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
            if !deltas.contains_key(item.customer_id.as_str()) {
                sqlx::query(
                    "DELETE FROM customers WHERE customer_id = $1 AND created_at = $2 AND order_count = 0
                           AND cancelled_count = 0 AND returned_count = 0 AND last_login_at IS NULL
                           AND NOT EXISTS (SELECT 1 FROM orders WHERE orders.customer_id = $1)",
                )
                .bind(&item.customer_id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
        }

        // 5. The orders' new states, then each customer's figures.
        if !changed.is_empty() {
            let rows: Vec<(&OrderItem, &OrderState)> =
                changed.iter().filter_map(|(id, order)| orders.get(*id).map(|(_, state)| (*order, state))).collect();
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
    }
}

/// Applies `item` to its order and its customer's figures in memory, or
/// says why the event is refused: the order belongs to another customer, the
/// customer's totals are in another currency, refunds would exceed the
/// order, or a total would overflow.
fn accept(
    item: &OrderItem,
    orders: &mut HashMap<String, (String, OrderState)>,
    locked: &mut HashMap<String, Locked>,
) -> Result<Delta, String> {
    let (order_id, customer) = (&item.order_id, &item.customer_id);
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
