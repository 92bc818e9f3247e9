//! The order statements: what the batch writer ([`super::write`]) runs for
//! the order events of a batch. Orders are read and written with multi-row
//! statements, and each customer's figures move by the sum of its orders'
//! changes in one statement, whatever the batch's size.

use std::collections::HashMap;

use super::write::{numbered, placeholder, placeholders};
use super::{Backend, Tx};
use crate::orders::{Delta, OrderState};

const ORDER_COLUMNS: &str =
    "order_id, customer_id, currency, amount_minor, completed_at, cancelled_at, refunded_minor, return_count";

/// A row of `orders`, read by column name.
#[derive(sqlx::FromRow)]
struct OrderRow {
    order_id: String,
    customer_id: String,
    currency: Option<String>,
    amount_minor: Option<i64>,
    completed_at: Option<i64>,
    cancelled_at: Option<i64>,
    refunded_minor: i64,
    return_count: i64,
}

/// An order as stored: its customer (the order's one owner) and its state.
fn state_of(row: OrderRow) -> (String, (String, OrderState)) {
    let OrderRow {
        order_id,
        customer_id,
        currency,
        amount_minor,
        completed_at,
        cancelled_at,
        refunded_minor,
        return_count,
    } = row;
    let state = OrderState { currency, amount_minor, completed_at, cancelled_at, refunded_minor, return_count };
    (order_id, (customer_id, state))
}

pub(super) async fn load_orders(
    tx: &mut Tx,
    backend: Backend,
    order_ids: &[&str],
) -> Result<HashMap<String, (String, OrderState)>, sqlx::Error> {
    let sql =
        format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id IN ({})", numbered(backend, 1, order_ids.len()));
    let mut query = sqlx::query_as::<_, OrderRow>(&sql);
    for id in order_ids {
        query = query.bind(*id);
    }
    Ok(query.fetch_all(&mut **tx).await?.into_iter().map(state_of).collect())
}

/// Writes each order's new state; `orders` holds (order id, customer id, state).
pub(super) async fn save_orders(
    tx: &mut Tx,
    backend: Backend,
    orders: &[(&str, &str, &OrderState)],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO orders ({ORDER_COLUMNS}) VALUES {} ON CONFLICT (order_id) DO UPDATE SET
           currency = excluded.currency, amount_minor = excluded.amount_minor, completed_at = excluded.completed_at,
           cancelled_at = excluded.cancelled_at, refunded_minor = excluded.refunded_minor, return_count = excluded.return_count",
        placeholders(backend, orders.len(), 8)
    );
    let mut query = sqlx::query(&sql);
    for (order_id, customer_id, state) in orders {
        query = query
            .bind(*order_id)
            .bind(*customer_id)
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
pub(super) async fn apply_deltas(
    tx: &mut Tx,
    backend: Backend,
    deltas: &[(&str, &str, &Delta)],
) -> Result<(), sqlx::Error> {
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
