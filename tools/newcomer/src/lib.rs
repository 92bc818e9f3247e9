//! The README's "Use it" consumer, with an in-memory store standing in for a
//! database.

use std::sync::{Arc, Mutex};

use eventbus::{Event, HandlerError, Server, State, subscribe};

#[derive(serde::Deserialize)]
pub struct OrderCompleted {
    pub order_id: String,
    pub customer_id: String,
}

/// Orders recorded, by id.
#[derive(Clone, Default)]
pub struct Db(Arc<Mutex<Vec<String>>>);

impl Db {
    async fn record(&self, event_id: &str, order: &OrderCompleted) -> Result<(), HandlerError> {
        let mut orders = self.0.lock().map_err(|_| HandlerError::transient(std::io::Error::other("poisoned")))?;
        orders.push(format!("{event_id}:{}:{}", order.order_id, order.customer_id));
        Ok(())
    }

    pub fn orders(&self) -> Vec<String> {
        self.0.lock().map(|orders| orders.clone()).unwrap_or_default()
    }
}

#[subscribe("order.completed", dead_letter = "order.completed.dlq")]
pub async fn on_order_completed(event: Event<OrderCompleted>, State(db): State<Db>) -> Result<(), HandlerError> {
    db.record(event.id(), &event.data).await?; // any error: RETRY
    Ok(()) // SUCCESS
}

pub fn server(db: Db) -> Result<Server, eventbus::Error> {
    Server::builder().default_pubsub("pubsub-redis").state(db).consumer(on_order_completed {}).build()
}
