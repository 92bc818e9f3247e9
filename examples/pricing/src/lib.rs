//! Pricing: one topic, `price.changed`, whose events go to different
//! handlers by their CloudEvent type (routing rules: CEL match → path), and
//! a Dapr job that reprices every product nightly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use eventbus::server::Job;
use eventbus::{Event, HandlerError, ResultExt, Server, State, subscribe};
use serde::Deserialize;

/// Prices in cents by SKU (in memory: the example is about the framework).
#[derive(Debug, Clone, Default)]
pub struct PriceBook(Arc<Mutex<BTreeMap<String, i64>>>);

impl PriceBook {
    /// The price of a SKU, in cents.
    pub fn price(&self, sku: &str) -> Option<i64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(sku).copied()
    }

    fn set(&self, sku: &str, cents: i64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(sku.to_owned(), cents);
    }

    /// Lowers every price by `percent`, rounding down to the cent.
    pub fn markdown(&self, percent: i64) {
        for cents in self.0.lock().unwrap_or_else(|p| p.into_inner()).values_mut() {
            *cents -= *cents * percent / 100;
        }
    }
}

/// The first version of the event: a decimal price as a string.
#[derive(Debug, Deserialize)]
pub struct PriceChangedV1 {
    pub sku: String,
    pub price: String,
}

/// The second version: integer cents.
#[derive(Debug, Deserialize)]
pub struct PriceChangedV2 {
    pub sku: String,
    pub cents: i64,
}

/// A percentage off one SKU.
#[derive(Debug, Deserialize)]
pub struct Discount {
    pub sku: String,
    pub percent: i64,
}

/// `price.changed.v2` events.
#[subscribe("price.changed", rule(match = r#"event.type == "price.changed.v2""#, path = "/prices/v2"))]
pub async fn on_price_v2(event: Event<PriceChangedV2>, State(book): State<PriceBook>) -> Result<(), HandlerError> {
    if event.data.cents < 0 {
        return Err(HandlerError::permanent(anyhow::anyhow!("negative price for {}", event.data.sku)));
    }
    book.set(&event.data.sku, event.data.cents);
    Ok(())
}

/// `price.discount` events.
#[subscribe("price.changed", rule(match = r#"event.type == "price.discount""#, path = "/prices/discount"))]
pub async fn on_discount(event: Event<Discount>, State(book): State<PriceBook>) -> Result<(), HandlerError> {
    let Some(cents) = book.price(&event.data.sku) else {
        // The price may simply not have arrived yet: try again later.
        return Err(HandlerError::transient(anyhow::anyhow!("no price yet for {}", event.data.sku)));
    };
    book.set(&event.data.sku, cents - cents * event.data.percent.clamp(0, 100) / 100);
    Ok(())
}

/// Every other event of the topic: the original format.
#[subscribe("price.changed", path = "/prices", dead_letter = "price.changed.dlq")]
pub async fn on_price_v1(event: Event<PriceChangedV1>, State(book): State<PriceBook>) -> Result<(), HandlerError> {
    let (whole, fraction) = event.data.price.split_once('.').unwrap_or((&event.data.price, "0"));
    let cents = whole.parse::<i64>().permanent()? * 100 + format!("{fraction:0<2}")[..2].parse::<i64>().permanent()?;
    book.set(&event.data.sku, cents);
    Ok(())
}

/// The nightly repricing job's data: `{"percent": 10}`.
#[derive(Debug, Deserialize)]
struct Repricing {
    percent: i64,
}

/// The pricing server.
pub fn server(book: PriceBook) -> Result<Server, eventbus::Error> {
    let nightly = book.clone();
    Server::builder()
        .default_pubsub("pubsub-redis")
        .state(book)
        .consumer(on_price_v2 {})
        .consumer(on_discount {})
        .consumer(on_price_v1 {})
        .job("nightly-repricing", move |job: Job| {
            let book = nightly.clone();
            async move {
                let repricing: Repricing = serde_json::from_slice(&job.data).permanent()?;
                book.markdown(repricing.percent.clamp(0, 100));
                Ok(())
            }
        })
        .build()
}
