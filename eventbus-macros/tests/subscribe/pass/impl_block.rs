use std::sync::Arc;

use eventbus::{Event, Server, State, subscribe};

struct Orders;

#[eventbus::consumer(crate = "eventbus")]
impl Orders {
    #[subscribe("order.completed")]
    async fn completed(&self, _event: Event<serde_json::Value>) -> eventbus::Result {
        Ok(())
    }

    #[eventbus::subscribe("order.cancelled", dead_letter = "order.cancelled.dlq", bulk(max_messages = 10))]
    async fn cancelled(&self, _event: Event<serde_json::Value>, State(_n): State<u32>) {}

    fn helper(&self) -> u8 {
        1
    }
}

fn main() {
    let orders = Arc::new(Orders);
    assert_eq!(orders.helper(), 1);
    let server = Server::builder().state(7u32).consumers(orders).build().unwrap();
    assert_eq!(server.subscriptions().len(), 2);
}
