use std::sync::Arc;

use eventbus::handler::Answers;
use eventbus::{Batch, HandlerError, Outcome, Server, State, subscribe};

/// Whole bulk batches, with state.
#[subscribe("product.updated", bulk(max_messages = 100, max_await_ms = 200))]
async fn index(products: Batch<serde_json::Value>, State(_n): State<u32>) -> Result<Answers, HandlerError> {
    Ok(products.answers(products.iter().map(|_| Ok::<(), HandlerError>(()))))
}

struct Orders;

#[eventbus::consumer]
impl Orders {
    #[subscribe("order.completed", bulk)]
    async fn completed(&self, _events: Batch<serde_json::Value>) -> Outcome {
        Outcome::Success
    }
}

fn main() {
    let server = Server::builder().state(1u32).consumer(index {}).consumers(Arc::new(Orders)).build().unwrap();
    assert_eq!(server.subscriptions().len(), 2);
}
