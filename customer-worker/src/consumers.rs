//! The five consumers. Each writes its effect and its inbox row in one
//! transaction; the customer's figures are recomputed from the order rows,
//! so duplicates, redeliveries and out-of-order events all end in the same
//! state.

use std::collections::{BTreeSet, HashMap, HashSet};

use eventbus::{Event, HandlerError, subscribe};
use futures_util::future::BoxFuture;

use crate::commit::BatchEffect;
use crate::contracts::{AuthLogin, AuthPasswordChanged, OrderCancelled, OrderCompleted, OrderReturned};
use crate::store::{Applied, Store, StoreError, Tx, millis, now_millis};

/// The worker's consumers, sharing the store.
pub struct CustomerConsumers {
    store: Store,
}

impl CustomerConsumers {
    pub fn new(store: Store) -> Self {
        CustomerConsumers { store }
    }
}

fn log_applied(event_id: &str, topic: &str, applied: Applied) {
    match applied {
        Applied::Done => tracing::debug!(event.id = event_id, topic, "applied"),
        Applied::Duplicate => tracing::info!(event.id = event_id, topic, "duplicate event ignored"),
    }
}

#[eventbus::consumer]
impl CustomerConsumers {
    /// Counts the order once (whatever the event id), unless it was cancelled.
    ///
    /// Delivered in bulk (up to 100 events, or what arrived in 100 ms): the
    /// batch is written with multi-row statements in one transaction. A single
    /// event goes through group commit with its concurrent neighbours.
    #[subscribe("order.completed", dead_letter = "order.completed.dlq", bulk(max_messages = 100, max_await_ms = 100))]
    async fn order_completed(&self, events: Vec<Event<OrderCompleted>>) -> Vec<Result<(), HandlerError>> {
        let mut results: Vec<Option<Result<(), HandlerError>>> = Vec::with_capacity(events.len());
        let mut items = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            match event.data.total_amount.to_minor(&event.data.currency.0) {
                Ok(amount) => {
                    items.push(Completed { index, event_id: event.id().to_owned(), order: event.data.clone(), amount });
                    results.push(None);
                }
                Err(reason) => results.push(Some(Err(HandlerError::permanent(anyhow::anyhow!(reason))))),
            }
        }
        let applied: Vec<(usize, Result<Applied, StoreError>)> = match items.len() {
            0 => Vec::new(),
            1 => {
                let item = items.remove(0);
                let index = item.index;
                let event_id = item.event_id.clone();
                let result = self.store.apply("order.completed", &event_id, move |tx| {
                    let item = item.clone();
                    Box::pin(async move { complete_one(tx, &item).await })
                });
                vec![(index, result.await)]
            }
            _ => {
                let indices: Vec<usize> = items.iter().map(|i| i.index).collect();
                match self.store.apply_batch(CompletedBatch(items)).await {
                    Ok(per_entry) => indices.into_iter().zip(per_entry).collect(),
                    Err(error) => {
                        let message = error.to_string();
                        indices
                            .into_iter()
                            .map(|i| (i, Err(StoreError::Database(sqlx::Error::Protocol(message.clone())))))
                            .collect()
                    }
                }
            }
        };
        for (index, result) in applied {
            if let Ok(applied) = &result {
                log_applied(events[index].id(), "order.completed", *applied);
            }
            results[index] = Some(result.map(|_| ()).map_err(StoreError::into_handler_error));
        }
        results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
    }

    /// A completed order's contribution is reversed; a never-completed one
    /// only counts as cancelled.
    #[subscribe("order.cancelled", dead_letter = "order.cancelled.dlq")]
    async fn order_cancelled(&self, event: Event<OrderCancelled>) -> Result<(), HandlerError> {
        let order = event.data.clone();
        let amount =
            order.total_amount.to_minor(&order.currency.0).map_err(|e| HandlerError::permanent(anyhow::anyhow!(e)))?;
        let applied = self
            .store
            .apply("order.cancelled", event.id(), move |tx| {
                let order = order.clone();
                Box::pin(async move {
                    let customer = &order.customer_id.0;
                    lock_customer(tx, customer).await?;
                    check_currency(tx, customer, &order.currency.0).await?;
                    sqlx::query(
                        "INSERT INTO orders (order_id, customer_id, currency, amount_minor, cancelled_at) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (order_id) DO UPDATE SET
                           currency = COALESCE(orders.currency, excluded.currency),
                           amount_minor = COALESCE(orders.amount_minor, excluded.amount_minor),
                           cancelled_at = COALESCE(orders.cancelled_at, excluded.cancelled_at)",
                    )
                    .bind(&order.order_id.0)
                    .bind(customer)
                    .bind(&order.currency.0)
                    .bind(amount)
                    .bind(millis(order.cancelled_at))
                    .execute(&mut **tx)
                    .await?;
                    recompute_customers(tx, std::slice::from_ref(customer)).await
                })
            })
            .await
            .map_err(StoreError::into_handler_error)?;
        log_applied(event.id(), "order.cancelled", applied);
        Ok(())
    }

    /// The refund leaves the order's contribution (never below zero); the
    /// return is counted.
    #[subscribe("order.returned", dead_letter = "order.returned.dlq")]
    async fn order_returned(&self, event: Event<OrderReturned>) -> Result<(), HandlerError> {
        let order = event.data.clone();
        let refund =
            order.refund_amount.to_minor(&order.currency.0).map_err(|e| HandlerError::permanent(anyhow::anyhow!(e)))?;
        if refund < 0 {
            return Err(HandlerError::permanent(anyhow::anyhow!("negative refund {}", order.refund_amount)));
        }
        let applied = self
            .store
            .apply("order.returned", event.id(), move |tx| {
                let order = order.clone();
                Box::pin(async move {
                    let customer = &order.customer_id.0;
                    lock_customer(tx, customer).await?;
                    check_currency(tx, customer, &order.currency.0).await?;
                    sqlx::query(
                        "INSERT INTO orders (order_id, customer_id, currency, refunded_minor, return_count) VALUES ($1, $2, $3, $4, 1)
                         ON CONFLICT (order_id) DO UPDATE SET
                           currency = COALESCE(orders.currency, excluded.currency),
                           refunded_minor = orders.refunded_minor + excluded.refunded_minor,
                           return_count = orders.return_count + 1",
                    )
                    .bind(&order.order_id.0)
                    .bind(customer)
                    .bind(&order.currency.0)
                    .bind(refund)
                    .execute(&mut **tx)
                    .await?;
                    recompute_customers(tx, std::slice::from_ref(customer)).await
                })
            })
            .await
            .map_err(StoreError::into_handler_error)?;
        log_applied(event.id(), "order.returned", applied);
        Ok(())
    }

    /// `last_login_at` becomes the later of the stored and the event's time.
    #[subscribe("auth.login", dead_letter = "auth.login.dlq")]
    async fn auth_login(&self, event: Event<AuthLogin>) -> Result<(), HandlerError> {
        let login = event.data.clone();
        let applied = self
            .store
            .apply("auth.login", event.id(), move |tx| {
                let login = login.clone();
                Box::pin(async move {
                    let customer = &login.customer_id.0;
                    lock_customer(tx, customer).await?;
                    sqlx::query(
                        "UPDATE customers SET
                           last_login_at = CASE WHEN last_login_at IS NULL OR last_login_at < $2 THEN $2 ELSE last_login_at END
                         WHERE customer_id = $1",
                    )
                    .bind(customer)
                    .bind(millis(login.login_at))
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
        let change = event.data.clone();
        let event_id = event.id().to_owned();
        let applied = self
            .store
            .apply("auth.password_changed", event.id(), move |tx| {
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

/// One `order.completed` of a batch.
#[derive(Clone)]
struct Completed {
    index: usize,
    event_id: String,
    order: OrderCompleted,
    amount: i64,
}

const COMPLETED_UPSERT: &str =
    "INSERT INTO orders (order_id, customer_id, currency, amount_minor, completed_at) VALUES ";
const COMPLETED_CONFLICT: &str = " ON CONFLICT (order_id) DO UPDATE SET
       currency = COALESCE(orders.currency, excluded.currency),
       amount_minor = COALESCE(orders.amount_minor, excluded.amount_minor),
       completed_at = COALESCE(orders.completed_at, excluded.completed_at)";

async fn complete_one(tx: &mut Tx, item: &Completed) -> Result<(), StoreError> {
    let order = &item.order;
    let customer = &order.customer_id.0;
    lock_customer(tx, customer).await?;
    check_currency(tx, customer, &order.currency.0).await?;
    sqlx::query(&format!("{COMPLETED_UPSERT}($1, $2, $3, $4, $5){COMPLETED_CONFLICT}"))
        .bind(&order.order_id.0)
        .bind(customer)
        .bind(&order.currency.0)
        .bind(item.amount)
        .bind(millis(order.completed_at))
        .execute(&mut **tx)
        .await?;
    recompute_customers(tx, std::slice::from_ref(customer)).await
}

/// `($1, $2, …), ($k, …)`: `rows` rows of `columns` numbered placeholders.
fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let cells: Vec<String> = (1..=columns).map(|c| format!("${}", row * columns + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$1, $2, …, $n`.
fn numbered(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// A batch of `order.completed`, written with one statement per step.
struct CompletedBatch(Vec<Completed>);

impl BatchEffect for CompletedBatch {
    fn apply<'t>(&'t self, tx: &'t mut Tx) -> BoxFuture<'t, Result<Vec<Result<Applied, String>>, sqlx::Error>> {
        Box::pin(async move {
            let items = &self.0;
            let now = now_millis();
            // 1. Claim the inbox rows; the ids returned are the new ones.
            let sql = format!(
                "INSERT INTO inbox (consumer, event_id, processed_at) VALUES {} ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id",
                placeholders(items.len(), 3)
            );
            let mut claim = sqlx::query_as::<_, (String,)>(&sql);
            for item in items {
                claim = claim.bind("order.completed").bind(&item.event_id).bind(now);
            }
            let mut claimed: HashSet<String> = claim.fetch_all(&mut **tx).await?.into_iter().map(|(id,)| id).collect();
            let mut results: Vec<Option<Result<Applied, String>>> = items
                .iter()
                // `remove`: a second copy of an id in the batch is a duplicate too.
                .map(|item| if claimed.remove(&item.event_id) { None } else { Some(Ok(Applied::Duplicate)) })
                .collect();

            // 2. Create and lock the customers, in a fixed order.
            let customers: BTreeSet<&str> = items
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_none())
                .map(|(i, _)| i.order.customer_id.0.as_str())
                .collect();
            if customers.is_empty() {
                return Ok(results.into_iter().map(|r| r.unwrap_or(Ok(Applied::Duplicate))).collect());
            }
            let sql = format!(
                "INSERT INTO customers (customer_id, created_at, updated_at) VALUES {} ON CONFLICT (customer_id) DO UPDATE SET updated_at = excluded.updated_at",
                placeholders(customers.len(), 3)
            );
            let mut lock = sqlx::query(&sql);
            for customer in &customers {
                lock = lock.bind(*customer).bind(now).bind(now);
            }
            lock.execute(&mut **tx).await?;

            // 3. One currency per customer: refuse orders in another.
            let sql = format!(
                "SELECT DISTINCT customer_id, currency FROM orders WHERE currency IS NOT NULL AND customer_id IN ({})",
                numbered(customers.len())
            );
            let mut currencies = sqlx::query_as::<_, (String, String)>(&sql);
            for customer in &customers {
                currencies = currencies.bind(*customer);
            }
            let mut known: HashMap<String, String> = currencies.fetch_all(&mut **tx).await?.into_iter().collect();
            let mut refused = Vec::new();
            let mut orders: Vec<&Completed> = Vec::new();
            let mut seen_orders = HashSet::new();
            for (item, result) in items.iter().zip(results.iter_mut()) {
                if result.is_some() {
                    continue;
                }
                let (customer, currency) = (&item.order.customer_id.0, &item.order.currency.0);
                match known.get(customer) {
                    Some(existing) if existing != currency => {
                        *result = Some(Err(format!(
                            "customer {customer} has orders in {existing}; an order in {currency} cannot be added to its totals"
                        )));
                        refused.push(item.event_id.as_str());
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        known.insert(customer.clone(), currency.clone());
                    }
                }
                *result = Some(Ok(Applied::Done));
                // The same order twice in one statement is an error in PostgreSQL; the first wins anyway.
                if seen_orders.insert(item.order.order_id.0.as_str()) {
                    orders.push(item);
                }
            }

            // 4. The orders.
            if !orders.is_empty() {
                let sql = format!("{COMPLETED_UPSERT}{}{COMPLETED_CONFLICT}", placeholders(orders.len(), 5));
                let mut upsert = sqlx::query(&sql);
                for item in &orders {
                    let order = &item.order;
                    upsert = upsert
                        .bind(&order.order_id.0)
                        .bind(&order.customer_id.0)
                        .bind(&order.currency.0)
                        .bind(item.amount)
                        .bind(millis(order.completed_at));
                }
                upsert.execute(&mut **tx).await?;
            }

            // 5. Refused events leave nothing behind, not even their claim.
            if !refused.is_empty() {
                let sql = format!(
                    "DELETE FROM inbox WHERE consumer = 'order.completed' AND event_id IN ({})",
                    numbered(refused.len())
                );
                let mut unclaim = sqlx::query(&sql);
                for id in &refused {
                    unclaim = unclaim.bind(*id);
                }
                unclaim.execute(&mut **tx).await?;
            }

            // 6. The customers' figures.
            let customers: Vec<String> = customers.into_iter().map(str::to_owned).collect();
            recompute_customers(tx, &customers).await.map_err(|e| match e {
                StoreError::Database(e) => e,
                StoreError::Rejected(reason) => sqlx::Error::Protocol(reason),
            })?;
            Ok(results.into_iter().map(|r| r.unwrap_or(Ok(Applied::Duplicate))).collect())
        })
    }
}

/// Creates the customer row if needed; on PostgreSQL this also locks it until
/// commit, so concurrent events of one customer apply one after the other.
async fn lock_customer(tx: &mut Tx, customer_id: &str) -> Result<(), StoreError> {
    let now = now_millis();
    sqlx::query(
        "INSERT INTO customers (customer_id, created_at, updated_at) VALUES ($1, $2, $2)
         ON CONFLICT (customer_id) DO UPDATE SET updated_at = excluded.updated_at",
    )
    .bind(customer_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A customer's totals are kept in one currency; an order in another is refused.
async fn check_currency(tx: &mut Tx, customer_id: &str, currency: &str) -> Result<(), StoreError> {
    let other: Option<(String,)> = sqlx::query_as(
        "SELECT currency FROM orders WHERE customer_id = $1 AND currency IS NOT NULL AND currency <> $2 LIMIT 1",
    )
    .bind(customer_id)
    .bind(currency)
    .fetch_optional(&mut **tx)
    .await?;
    match other {
        Some((existing,)) => Err(StoreError::Rejected(format!(
            "customer {customer_id} has orders in {existing}; an order in {currency} cannot be added to its totals"
        ))),
        None => Ok(()),
    }
}

/// Derives the customers' figures from their orders. An order counts when it
/// is completed and not cancelled; it contributes its amount less refunds,
/// never below zero.
async fn recompute_customers(tx: &mut Tx, customer_ids: &[String]) -> Result<(), StoreError> {
    let ids = numbered(customer_ids.len());
    let sql = format!(
        "UPDATE customers SET
           currency = (SELECT MIN(o.currency) FROM orders o WHERE o.customer_id = customers.customer_id),
           order_count = (SELECT COUNT(*) FROM orders o
                          WHERE o.customer_id = customers.customer_id AND o.completed_at IS NOT NULL AND o.cancelled_at IS NULL),
           total_spent_minor = (SELECT COALESCE(SUM(CASE WHEN o.amount_minor > o.refunded_minor
                                                         THEN o.amount_minor - o.refunded_minor ELSE 0 END), 0)
                                FROM orders o
                                WHERE o.customer_id = customers.customer_id AND o.completed_at IS NOT NULL AND o.cancelled_at IS NULL),
           cancelled_count = (SELECT COUNT(*) FROM orders o WHERE o.customer_id = customers.customer_id AND o.cancelled_at IS NOT NULL),
           returned_count = (SELECT COALESCE(SUM(o.return_count), 0) FROM orders o WHERE o.customer_id = customers.customer_id),
           refunded_minor = (SELECT COALESCE(SUM(o.refunded_minor), 0) FROM orders o WHERE o.customer_id = customers.customer_id),
           first_order_at = (SELECT MIN(o.completed_at) FROM orders o
                             WHERE o.customer_id = customers.customer_id AND o.completed_at IS NOT NULL AND o.cancelled_at IS NULL),
           last_order_at = (SELECT MAX(o.completed_at) FROM orders o
                            WHERE o.customer_id = customers.customer_id AND o.completed_at IS NOT NULL AND o.cancelled_at IS NULL)
         WHERE customer_id IN ({ids})"
    );
    let mut query = sqlx::query(&sql);
    for id in customer_ids {
        query = query.bind(id);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}
