use std::sync::Arc;

use eventbus::{Event, HandlerError, Outcome, Server, State, subscribe};

/// Whole bulk batches, with state.
#[subscribe("product.updated", bulk(max_messages = 100, max_await_ms = 200))]
async fn index(products: Vec<Event<serde_json::Value>>, State(_n): State<u32>) -> Vec<Result<(), HandlerError>> {
    products.iter().map(|_| Ok(())).collect()
}

struct Orders;

#[eventbus::consumer]
impl Orders {
    #[subscribe("order.completed", bulk)]
    async fn completed(&self, events: Vec<Event<serde_json::Value>>) -> Vec<Outcome> {
        vec![Outcome::Success; events.len()]
    }
}

fn main() {
    let server = Server::builder().state(1u32).consumer(index {}).consumers(Arc::new(Orders)).build().unwrap();
    assert_eq!(server.subscriptions().len(), 2);
}
