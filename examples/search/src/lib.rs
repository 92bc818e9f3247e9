//! Search: indexes product events in batches through a bulk subscription.
//! The sidecar delivers up to 100 events per call; every entry gets its own
//! status, so one bad product does not fail its batch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use eventbus::{Event, HandlerError, Server, State, subscribe};
use serde::Deserialize;

/// `product.updated`.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductUpdated {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A toy inverted index: word → SKUs.
#[derive(Debug, Clone, Default)]
pub struct SearchIndex(Arc<Mutex<BTreeMap<String, Vec<String>>>>);

impl SearchIndex {
    /// The SKUs whose name or tags contain `word`.
    pub fn search(&self, word: &str) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&word.to_lowercase()).cloned().unwrap_or_default()
    }

    fn add(&self, product: &ProductUpdated) {
        let mut index = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let words = product.name.split_whitespace().chain(product.tags.iter().map(String::as_str));
        for word in words {
            let skus = index.entry(word.to_lowercase()).or_default();
            if !skus.contains(&product.sku) {
                skus.push(product.sku.clone());
            }
        }
    }
}

/// Indexes one product; the sidecar sends them in batches of up to 100.
#[subscribe("product.updated", bulk(max_messages = 100, max_await_ms = 500), dead_letter = "product.updated.dlq")]
pub async fn index_product(event: Event<ProductUpdated>, State(index): State<SearchIndex>) -> Result<(), HandlerError> {
    if event.data.name.trim().is_empty() {
        return Err(HandlerError::permanent(anyhow::anyhow!("product {} has no name", event.data.sku)));
    }
    index.add(&event.data);
    Ok(())
}

/// The search server; `bulk_concurrency` entries of a batch are indexed at once.
pub fn server(index: SearchIndex) -> Result<Server, eventbus::Error> {
    Server::builder().default_pubsub("pubsub-redis").state(index).bulk_concurrency(8).consumer(index_product {}).build()
}
