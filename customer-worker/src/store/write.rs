//! The batch writer: the effects of every topic's events, written with their
//! inbox claims in one transaction shared by the events queued together,
//! with the same few multi-row statements whatever the batch's size:
//!
//! 1. claim the inbox rows (one `INSERT … RETURNING`: the rows returned are
//!    the events not applied before);
//! 2. create and lock the customers of the new order and login events,
//!    moving `last_login_at` on the way (one upsert returning their figures);
//! 3. read the orders, judge each order event in memory (one owner, one
//!    currency, refunds within the order, totals within 64 bits), write the
//!    orders and move each customer's figures ([`super::orders`]);
//! 4. insert the password changes' security events (one statement);
//! 5. erase the customers of `customer.deleted` events (rare: a few
//!    statements each, [`crate::customers`]).
//!
//! An event for a customer erased before the batch is refused (one lookup
//! of the batch's customers among the erased).
//!
//! Locks are taken in one global order (inbox rows, customers, orders, each
//! sorted), so concurrent transactions, of this replica or another, never
//! wait on each other in a cycle.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::orders::{apply_deltas, load_orders, save_orders};
use super::{Applied, Backend, Tx, now_millis};
use crate::customers;
use crate::orders::{Delta, Locked, OrderEvent, OrderState, accept};

/// Most events in one transaction. Every multi-row statement then stays
/// within SQLite's 500 compound SELECT terms and 32,766 variables and
/// PostgreSQL's 65,535 parameters (9 a row at most): a batch of any size is
/// written in chunks.
pub const MAX_EVENTS_PER_TRANSACTION: usize = 200;

/// One event's effect, as the store writes it.
#[derive(Debug, Clone)]
pub struct Item {
    /// The consumer (topic) whose inbox row it claims.
    pub consumer: &'static str,
    pub event_id: String,
    pub customer_id: String,
    pub change: Change,
}

/// What an event changes. Times are epoch milliseconds.
#[derive(Debug, Clone)]
pub enum Change {
    /// An order event: the order's row and its customer's figures.
    Order { order_id: String, event: OrderEvent },
    /// `last_login_at` becomes the later of the stored time and `at`.
    Login { at: i64 },
    /// A `password_changed` row in `security_events`.
    PasswordChange { changed_at: i64, ip_address: Option<String>, user_agent: Option<String> },
    /// The customer is erased ([`crate::customers`]).
    Erase { at: i64 },
}

/// Placeholder `n` (from 1): `$n` for PostgreSQL; `?` for SQLite, where sqlx
/// resolves every `$n` by name, which costs O(n) per parameter in the long
/// multi-row statements of a batch.
pub(super) fn placeholder(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "?".to_owned(),
        Backend::Postgres => format!("${n}"),
    }
}

/// `p1, p2, …, pn`, numbered from `from`.
pub(super) fn numbered(backend: Backend, from: usize, n: usize) -> String {
    (from..from + n).map(|i| placeholder(backend, i)).collect::<Vec<_>>().join(", ")
}

/// `(p1, p2, …), (pk, …)`: `rows` rows of `columns` placeholders.
pub(super) fn placeholders(backend: Backend, rows: usize, columns: usize) -> String {
    (0..rows).map(|row| format!("({})", numbered(backend, row * columns + 1, columns))).collect::<Vec<_>>().join(", ")
}

/// Writes a batch of events (of any topic) in `tx` with a fixed number of
/// statements whatever its size (callers keep batches within
/// [`MAX_EVENTS_PER_TRANSACTION`]); one result per item: applied, duplicate,
/// or refused with the reason (a refused event leaves nothing behind, its
/// inbox claim included).
pub(super) async fn write_batch(
    tx: &mut Tx,
    backend: Backend,
    items: &[Item],
) -> Result<Vec<Result<Applied, String>>, sqlx::Error> {
    let now = now_millis();
    // Each event is judged at its first copy in the batch; a later copy (a
    // redelivery after a crash lands beside the original) gets that copy's
    // answer, so a refusal is never answered SUCCESS.
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

    // 1. Claim the inbox rows (each id once, sorted); the rows returned are
    //    the new ones, fresh at their first copy.
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

    // Events for customers erased before this batch are refused, and
    // written nowhere (an erasure of one again is fine: nothing happens).
    let erased = erased_among(tx, backend, items, &fresh).await?;
    let mut blocked: Vec<Option<String>> = vec![None; items.len()];
    for (index, item) in items.iter().enumerate() {
        if fresh[index] && !matches!(item.change, Change::Erase { .. }) && erased.contains(&item.customer_id) {
            blocked[index] = Some(customers::erased());
            fresh[index] = false;
        }
    }
    let fresh_items = || items.iter().zip(&fresh).filter(|(_, f)| **f).map(|(item, _)| item);

    // 2. Create and lock the customers (sorted), each login moving
    //    `last_login_at` to the latest of the batch, and read their figures.
    let mut customers: BTreeMap<&str, Option<i64>> = BTreeMap::new();
    for item in fresh_items() {
        match item.change {
            Change::Order { .. } => {
                customers.entry(&item.customer_id).or_insert(None);
            }
            Change::Login { at } => {
                let latest = customers.entry(&item.customer_id).or_insert(None);
                *latest = Some(latest.map_or(at, |t| t.max(at)));
            }
            Change::PasswordChange { .. } | Change::Erase { .. } => {}
        }
    }
    let mut locked: HashMap<String, Locked> = HashMap::new();
    if !customers.is_empty() {
        let sql = format!(
            "INSERT INTO customers (customer_id, created_at, updated_at, last_login_at) VALUES {}
             ON CONFLICT (customer_id) DO UPDATE SET updated_at = excluded.updated_at,
               last_login_at = CASE WHEN excluded.last_login_at IS NOT NULL
                                     AND (customers.last_login_at IS NULL OR customers.last_login_at < excluded.last_login_at)
                                    THEN excluded.last_login_at ELSE customers.last_login_at END
             RETURNING customer_id, currency, total_spent_minor, refunded_minor",
            placeholders(backend, customers.len(), 4)
        );
        let mut lock = sqlx::query_as::<_, (String, Option<String>, i64, i64)>(&sql);
        for (customer, login_at) in &customers {
            lock = lock.bind(*customer).bind(now).bind(now).bind(*login_at);
        }
        locked = lock
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .map(|(id, currency, spent, refunded)| (id, Locked { currency, spent, refunded }))
            .collect();
    }

    // 3. The orders as stored, then every event judged in memory.
    let order_ids: Vec<&str> = {
        let mut ids: Vec<&str> = items
            .iter()
            .filter_map(|item| match &item.change {
                Change::Order { order_id, .. } => Some(order_id.as_str()),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut orders: HashMap<String, (String, OrderState)> =
        if order_ids.is_empty() { HashMap::new() } else { load_orders(&mut *tx, backend, &order_ids).await? };
    let mut changed: BTreeMap<&str, &str> = BTreeMap::new();
    let mut deltas: BTreeMap<&str, (&str, Delta)> = BTreeMap::new();
    let mut refused = Vec::new();
    let mut results: Vec<Result<Applied, String>> = Vec::with_capacity(items.len());
    for (((item, fresh), copy), blocked) in items.iter().zip(&fresh).zip(&copy_of).zip(blocked) {
        if let Some(first) = *copy {
            let answer = results[first].clone().map(|_| Applied::Duplicate);
            results.push(answer);
            continue;
        }
        if let Some(reason) = blocked {
            tracing::warn!(event.id = %item.event_id, consumer = item.consumer, "event for an erased customer refused");
            results.push(Err(reason));
            refused.push(item);
            continue;
        }
        if !fresh {
            results.push(Ok(Applied::Duplicate));
            continue;
        }
        let Change::Order { order_id, event } = &item.change else {
            results.push(Ok(Applied::Done));
            continue;
        };
        match accept(&item.event_id, &item.customer_id, order_id, event, &mut orders, &mut locked) {
            Ok(delta) => {
                let customer = item.customer_id.as_str();
                deltas.entry(customer).or_insert_with(|| (event.currency(), Delta::default())).1.add(&delta);
                changed.insert(order_id, customer);
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
        let rows: Vec<(&str, &str, &OrderState)> = changed
            .iter()
            .filter_map(|(order_id, customer)| orders.get(*order_id).map(|(_, state)| (*order_id, *customer, state)))
            .collect();
        save_orders(tx, backend, &rows).await?;
    }
    let deltas: Vec<(&str, &str, &Delta)> = deltas
        .iter()
        .filter(|(_, (_, d))| *d != Delta::default())
        .map(|(customer, (currency, d))| (*customer, *currency, d))
        .collect();
    if !deltas.is_empty() {
        apply_deltas(tx, backend, &deltas).await?;
    }

    // 6. The password changes' security events (sorted by event id).
    let mut changes: Vec<&Item> =
        fresh_items().filter(|item| matches!(item.change, Change::PasswordChange { .. })).collect();
    if !changes.is_empty() {
        changes.sort_unstable_by(|a, b| a.event_id.cmp(&b.event_id));
        let sql = format!(
            "INSERT INTO security_events (event_id, customer_id, kind, occurred_at, ip_address, user_agent, recorded_at)
             VALUES {} ON CONFLICT (event_id) DO NOTHING",
            placeholders(backend, changes.len(), 7)
        );
        let mut insert = sqlx::query(&sql);
        for item in changes {
            if let Change::PasswordChange { changed_at, ip_address, user_agent } = &item.change {
                insert = insert
                    .bind(&item.event_id)
                    .bind(&item.customer_id)
                    .bind("password_changed")
                    .bind(*changed_at)
                    .bind(ip_address.as_deref())
                    .bind(user_agent.as_deref())
                    .bind(now);
            }
        }
        insert.execute(&mut **tx).await?;
    }

    // 7. The erasures, last: the batch's other events of the customer came first.
    for item in fresh_items() {
        if let Change::Erase { at } = item.change {
            erase(tx, &item.customer_id, &item.event_id, at).await?;
        }
    }
    Ok(results)
}

/// The customers of the fresh items that were erased before.
async fn erased_among(
    tx: &mut Tx,
    backend: Backend,
    items: &[Item],
    fresh: &[bool],
) -> Result<HashSet<String>, sqlx::Error> {
    let mut by_digest: HashMap<String, &str> = HashMap::new();
    for (item, _) in items.iter().zip(fresh).filter(|(_, fresh)| **fresh) {
        by_digest.entry(customers::id_digest(&item.customer_id)).or_insert(&item.customer_id);
    }
    if by_digest.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "SELECT id_digest FROM erased_customers WHERE id_digest IN ({})",
        numbered(backend, 1, by_digest.len())
    );
    let mut query = sqlx::query_as::<_, (String,)>(&sql);
    for digest in by_digest.keys() {
        query = query.bind(digest);
    }
    let found = query.fetch_all(&mut **tx).await?;
    Ok(found.into_iter().filter_map(|(digest,)| by_digest.get(&digest).map(|id| (*id).to_owned())).collect())
}

/// Erases `customer` ([`crate::customers`]): the security log, the
/// segments, the last login and the dead-letter reasons naming them go;
/// the figures and orders move to the anonymous key of `event_id`; the
/// digest of the id is kept.
async fn erase(tx: &mut Tx, customer: &str, event_id: &str, at: i64) -> Result<(), sqlx::Error> {
    let anonymous = customers::anonymous_id(event_id);
    for sql in [
        "DELETE FROM security_events WHERE customer_id = $1",
        "DELETE FROM customer_segments WHERE customer_id = $1",
        "UPDATE orders SET customer_id = $2 WHERE customer_id = $1",
        "UPDATE customers SET customer_id = $2, last_login_at = NULL WHERE customer_id = $1",
    ] {
        sqlx::query(sql).bind(customer).bind(&anonymous).execute(&mut **tx).await?;
    }
    // `\` escapes LIKE's wildcards in the id.
    let pattern = format!("%{}%", customer.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    sqlx::query("DELETE FROM dead_letters WHERE reason LIKE $1 ESCAPE '\\'").bind(pattern).execute(&mut **tx).await?;
    sqlx::query(
        "INSERT INTO erased_customers (id_digest, erased_at) VALUES ($1, $2) ON CONFLICT (id_digest) DO NOTHING",
    )
    .bind(customers::id_digest(customer))
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
