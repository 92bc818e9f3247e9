//! The five consumers. Each writes its effect and its inbox row in one
//! transaction; the customer's figures are recomputed from the order rows,
//! so duplicates, redeliveries and out-of-order events all end in the same
//! state.

use eventbus::{Event, HandlerError, subscribe};

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
    #[subscribe("order.completed", dead_letter = "order.completed.dlq")]
    async fn order_completed(&self, event: Event<OrderCompleted>) -> Result<(), HandlerError> {
        let order = event.data.clone();
        let amount =
            order.total_amount.to_minor(&order.currency.0).map_err(|e| HandlerError::permanent(anyhow::anyhow!(e)))?;
        let applied = self
            .store
            .apply("order.completed", event.id(), move |tx| {
                let order = order.clone();
                Box::pin(async move {
                    let customer = &order.customer_id.0;
                    lock_customer(tx, customer).await?;
                    check_currency(tx, customer, &order.currency.0).await?;
                    sqlx::query(
                        "INSERT INTO orders (order_id, customer_id, currency, amount_minor, completed_at) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (order_id) DO UPDATE SET
                           currency = COALESCE(orders.currency, excluded.currency),
                           amount_minor = COALESCE(orders.amount_minor, excluded.amount_minor),
                           completed_at = COALESCE(orders.completed_at, excluded.completed_at)",
                    )
                    .bind(&order.order_id.0)
                    .bind(customer)
                    .bind(&order.currency.0)
                    .bind(amount)
                    .bind(millis(order.completed_at))
                    .execute(&mut **tx)
                    .await?;
                    recompute_customer(tx, customer).await
                })
            })
            .await
            .map_err(StoreError::into_handler_error)?;
        log_applied(event.id(), "order.completed", applied);
        Ok(())
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
                    recompute_customer(tx, customer).await
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
                    recompute_customer(tx, customer).await
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

/// Derives the customer's figures from its orders. An order counts when it
/// is completed and not cancelled; it contributes its amount less refunds,
/// never below zero.
async fn recompute_customer(tx: &mut Tx, customer_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE customers SET
           currency = (SELECT MIN(o.currency) FROM orders o WHERE o.customer_id = $1),
           order_count = (SELECT COUNT(*) FROM orders o
                          WHERE o.customer_id = $1 AND o.completed_at IS NOT NULL AND o.cancelled_at IS NULL),
           total_spent_minor = (SELECT COALESCE(SUM(CASE WHEN o.amount_minor > o.refunded_minor
                                                         THEN o.amount_minor - o.refunded_minor ELSE 0 END), 0)
                                FROM orders o
                                WHERE o.customer_id = $1 AND o.completed_at IS NOT NULL AND o.cancelled_at IS NULL),
           cancelled_count = (SELECT COUNT(*) FROM orders o WHERE o.customer_id = $1 AND o.cancelled_at IS NOT NULL),
           returned_count = (SELECT COALESCE(SUM(o.return_count), 0) FROM orders o WHERE o.customer_id = $1),
           refunded_minor = (SELECT COALESCE(SUM(o.refunded_minor), 0) FROM orders o WHERE o.customer_id = $1),
           first_order_at = (SELECT MIN(o.completed_at) FROM orders o
                             WHERE o.customer_id = $1 AND o.completed_at IS NOT NULL AND o.cancelled_at IS NULL),
           last_order_at = (SELECT MAX(o.completed_at) FROM orders o
                            WHERE o.customer_id = $1 AND o.completed_at IS NOT NULL AND o.cancelled_at IS NULL)
         WHERE customer_id = $1",
    )
    .bind(customer_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
