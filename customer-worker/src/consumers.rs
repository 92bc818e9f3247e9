//! The six consumers. Each checks its event against the contract
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

use eventbus::handler::Answers;
use eventbus::{Batch, Event, HandlerError, subscribe};

use crate::contracts::{
    AuthLogin, AuthPasswordChanged, Check, Contract, CustomerDeleted, Id, OrderCancelled, OrderCompleted,
    OrderReturned, amount_minor, check_event_id,
};
use crate::orders::OrderEvent;
use crate::store::{Applied, Change, Item, millis};
use crate::writer::Writer;

/// The worker's consumers, sharing the store's writer.
#[derive(Debug)]
pub struct CustomerConsumers {
    writer: Writer,
}

impl CustomerConsumers {
    /// The consumers, writing through `writer` (group commit).
    pub fn new(writer: Writer) -> Self {
        CustomerConsumers { writer }
    }

    /// Writes the events that passed their checks, together with the
    /// events arriving now; the others keep their refusal.
    async fn write(&self, items: Vec<Result<Item, HandlerError>>) -> Vec<Result<(), HandlerError>> {
        let mut accepted = Vec::with_capacity(items.len());
        // Each event's refusal, or the index of its write in `accepted`.
        let slots: Vec<Result<usize, HandlerError>> = items
            .into_iter()
            .map(|item| {
                item.map(|item| {
                    accepted.push(item);
                    accepted.len() - 1
                })
            })
            .collect();
        let logged: Vec<(String, &'static str)> = accepted.iter().map(|i| (i.event_id.clone(), i.consumer)).collect();
        // The writer answers each item, in the order given.
        let mut written: Vec<Option<Result<Applied, HandlerError>>> =
            self.writer.write(accepted).await.into_iter().map(Some).collect();
        slots
            .into_iter()
            .map(|slot| {
                let index = slot?;
                let applied = written.get_mut(index).and_then(Option::take).unwrap_or_else(|| Err(no_result()))?;
                let (event_id, topic) = &logged[index];
                log_applied(event_id, topic, applied);
                Ok(())
            })
            .collect()
    }

    /// Writes one event, together with the events arriving now.
    async fn write_one(&self, item: Item) -> Result<(), HandlerError> {
        self.write(vec![Ok(item)]).await.pop().unwrap_or_else(|| Err(no_result()))
    }
}

/// A write the store did not answer for: retried, never acknowledged unwritten.
fn no_result() -> HandlerError {
    HandlerError::transient(anyhow::anyhow!("the store returned no result for this event"))
}

fn item(consumer: &'static str, event_id: &str, customer_id: &Id, change: Change) -> Item {
    Item { consumer, event_id: event_id.to_owned(), customer_id: customer_id.0.clone(), change }
}

fn order_item(consumer: &'static str, event_id: &str, order_id: &Id, customer_id: &Id, event: OrderEvent) -> Item {
    item(consumer, event_id, customer_id, Change::Order { order_id: order_id.0.clone(), event })
}

/// The CloudEvent id and the payload checked against the contract.
fn checked<T: Check>(event: &Event<Contract<T>>) -> Result<(), HandlerError> {
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

#[eventbus::consumer]
impl CustomerConsumers {
    /// Counts the order once (whatever the event id), unless it is cancelled.
    ///
    /// Delivered in bulk (up to 100 events, or what arrived in 50 ms, which
    /// keeps publish-to-commit under 100 ms at low rates), and written with
    /// the other order events queued now.
    #[subscribe("order.completed", dead_letter = "order.completed.dlq", bulk(max_messages = 100, max_await_ms = 50))]
    async fn order_completed(&self, events: Batch<Contract<OrderCompleted>>) -> Answers {
        let items = events.iter().map(|event| {
            checked(event)?;
            let order = &event.data;
            let change = OrderEvent::Completed {
                currency: order.currency.0.clone(),
                amount: amount_minor("total_amount", &order.total_amount, &order.currency).map_err(refused)?,
                at: millis(order.completed_at),
            };
            Ok(order_item("order.completed", event.id(), &order.order_id, &order.customer_id, change))
        });
        events.answers(self.write(items.collect()).await)
    }

    /// A completed order's contribution is reversed; a never-completed one
    /// only counts as cancelled.
    #[subscribe("order.cancelled", dead_letter = "order.cancelled.dlq")]
    async fn order_cancelled(&self, event: Event<Contract<OrderCancelled>>) -> Result<(), HandlerError> {
        checked(&event)?;
        let order = &event.data;
        let change = OrderEvent::Cancelled {
            currency: order.currency.0.clone(),
            amount: amount_minor("total_amount", &order.total_amount, &order.currency).map_err(refused)?,
            at: millis(order.cancelled_at),
        };
        self.write_one(order_item("order.cancelled", event.id(), &order.order_id, &order.customer_id, change)).await
    }

    /// The refund leaves the order's contribution (refunds beyond the
    /// order's amount are refused); the return is counted.
    #[subscribe("order.returned", dead_letter = "order.returned.dlq")]
    async fn order_returned(&self, event: Event<Contract<OrderReturned>>) -> Result<(), HandlerError> {
        checked(&event)?;
        let order = &event.data;
        let refund = amount_minor("refund_amount", &order.refund_amount, &order.currency).map_err(refused)?;
        let change = OrderEvent::Returned { currency: order.currency.0.clone(), refund };
        self.write_one(order_item("order.returned", event.id(), &order.order_id, &order.customer_id, change)).await
    }

    /// `last_login_at` becomes the later of the stored and the event's time.
    #[subscribe("auth.login", dead_letter = "auth.login.dlq")]
    async fn auth_login(&self, event: Event<Contract<AuthLogin>>) -> Result<(), HandlerError> {
        checked(&event)?;
        let change = Change::Login { at: millis(event.data.login_at) };
        self.write_one(item("auth.login", event.id(), &event.data.customer_id, change)).await
    }

    /// Records a security event: who, when, from where.
    #[subscribe("auth.password_changed", dead_letter = "auth.password_changed.dlq")]
    async fn auth_password_changed(&self, event: Event<Contract<AuthPasswordChanged>>) -> Result<(), HandlerError> {
        checked(&event)?;
        let change = Change::PasswordChange {
            changed_at: millis(event.data.changed_at),
            ip_address: event.data.ip_address.clone(),
            user_agent: event.data.user_agent.clone(),
        };
        self.write_one(item("auth.password_changed", event.id(), &event.data.customer_id, change)).await
    }

    /// Erases the customer: personal data removed, figures kept anonymised,
    /// later events for them dropped ([`crate::customers`]). Idempotent.
    #[subscribe("customer.deleted", dead_letter = "customer.deleted.dlq")]
    async fn customer_deleted(&self, event: Event<Contract<CustomerDeleted>>) -> Result<(), HandlerError> {
        checked(&event)?;
        let change = Change::Erase { at: millis(event.data.deleted_at) };
        self.write_one(item("customer.deleted", event.id(), &event.data.customer_id, change)).await
    }
}
