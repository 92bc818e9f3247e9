//! Warehouse: reserves stock when an order is created, releases it when the
//! order is cancelled, and answers stock queries by service invocation.
//!
//! Shows: a consumer type with several topics (`#[eventbus::consumer]`),
//! dead-letter topics for poison events, and an `OnInvoke` handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use eventbus::invoke::Json;
use eventbus::status::Status;
use eventbus::{Event, HandlerError, ResultExt, Server, subscribe};
use serde::{Deserialize, Serialize};

/// `order.created`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OrderCreated {
    pub order_id: String,
    pub items: Vec<Item>,
}

/// One line of an order.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Item {
    pub sku: String,
    pub quantity: u32,
}

/// `order.cancelled`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OrderCancelled {
    pub order_id: String,
}

/// Stock of one SKU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    pub available: i64,
    pub reserved: i64,
}

#[derive(Debug, Default)]
struct Book {
    levels: HashMap<String, Level>,
    /// What each order holds, so a redelivered creation or cancellation changes nothing.
    reservations: HashMap<String, Vec<Item>>,
}

/// The stock book (in memory: the example is about the framework).
#[derive(Debug, Clone, Default)]
pub struct Warehouse {
    book: Arc<Mutex<Book>>,
}

#[derive(Debug)]
enum Refusal {
    UnknownSku(String),
    Insufficient { sku: String, wanted: u32, available: i64 },
    Empty,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::UnknownSku(sku) => write!(f, "unknown sku {sku}"),
            Refusal::Insufficient { sku, wanted, available } => {
                write!(f, "{sku}: {wanted} wanted, {available} available")
            }
            Refusal::Empty => write!(f, "order has no items"),
        }
    }
}

impl std::error::Error for Refusal {}

impl Warehouse {
    /// A warehouse holding `stock` (sku, available).
    pub fn with_stock<'a>(stock: impl IntoIterator<Item = (&'a str, i64)>) -> Self {
        let warehouse = Warehouse::default();
        {
            let mut book = warehouse.book.lock().unwrap_or_else(|p| p.into_inner());
            for (sku, available) in stock {
                book.levels.insert(sku.to_owned(), Level { available, reserved: 0 });
            }
        }
        warehouse
    }

    /// The stock of one SKU.
    pub fn level(&self, sku: &str) -> Option<Level> {
        self.book.lock().unwrap_or_else(|p| p.into_inner()).levels.get(sku).copied()
    }

    fn reserve_all(&self, order: &OrderCreated) -> Result<(), Refusal> {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        if book.reservations.contains_key(&order.order_id) {
            return Ok(()); // redelivery
        }
        if order.items.is_empty() {
            return Err(Refusal::Empty);
        }
        // Check every line before changing any: all or nothing.
        for item in &order.items {
            let level = book.levels.get(&item.sku).ok_or_else(|| Refusal::UnknownSku(item.sku.clone()))?;
            if level.available < i64::from(item.quantity) {
                return Err(Refusal::Insufficient {
                    sku: item.sku.clone(),
                    wanted: item.quantity,
                    available: level.available,
                });
            }
        }
        for item in &order.items {
            if let Some(level) = book.levels.get_mut(&item.sku) {
                level.available -= i64::from(item.quantity);
                level.reserved += i64::from(item.quantity);
            }
        }
        book.reservations.insert(order.order_id.clone(), order.items.clone());
        Ok(())
    }

    fn release_all(&self, order_id: &str) -> usize {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        let Some(items) = book.reservations.remove(order_id) else { return 0 };
        for item in &items {
            if let Some(level) = book.levels.get_mut(&item.sku) {
                level.available += i64::from(item.quantity);
                level.reserved -= i64::from(item.quantity);
            }
        }
        items.len()
    }
}

#[eventbus::consumer]
impl Warehouse {
    /// Reserves every line of the order, or none. An order that can never be
    /// served (unknown SKU, no items) is poison: it goes to the dead letter.
    #[subscribe("order.created", dead_letter = "order.created.dlq")]
    async fn reserve(&self, event: Event<OrderCreated>) -> Result<(), HandlerError> {
        self.reserve_all(&event.data).permanent()?;
        tracing::info!(order = %event.data.order_id, "stock reserved");
        Ok(())
    }

    /// Releases what the order held (nothing, if it held nothing).
    #[subscribe("order.cancelled", dead_letter = "order.cancelled.dlq")]
    async fn release(&self, event: Event<OrderCancelled>) -> Result<(), HandlerError> {
        let lines = self.release_all(&event.data.order_id);
        tracing::info!(order = %event.data.order_id, lines, "stock released");
        Ok(())
    }
}

/// Answers `stock` invocations: the request is a SKU (plain text, or a
/// JSON string), the answer its [`Level`] as JSON.
async fn stock_query(warehouse: Warehouse, sku: String) -> Result<Json<Level>, Status> {
    let sku = sku.trim().trim_matches('"');
    warehouse.level(sku).map(Json).ok_or_else(|| Status::not_found(format!("unknown sku {sku:?}")))
}

/// The warehouse's server.
pub fn server(warehouse: Warehouse) -> Result<Server, eventbus::Error> {
    let queries = warehouse.clone();
    Server::builder()
        .default_pubsub("pubsub-redis")
        .consumers(Arc::new(warehouse))
        .invocation("stock", move |sku| stock_query(queries.clone(), sku))
        .build()
}
