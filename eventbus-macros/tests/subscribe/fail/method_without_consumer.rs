use eventbus::{Event, subscribe};

struct Orders;

impl Orders {
    #[subscribe("orders")]
    async fn handler(&self, _: Event<serde_json::Value>) {}
}

fn main() {}
