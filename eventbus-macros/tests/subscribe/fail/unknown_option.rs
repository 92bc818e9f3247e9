use eventbus::{Event, subscribe};

#[subscribe("orders", deadletter = "orders.dlq")]
async fn handler(_: Event<serde_json::Value>) {}

fn main() {}
