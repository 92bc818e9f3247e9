use eventbus::{Event, subscribe};

const ORDERS: &str = "orders";

#[subscribe(pubsub = "p", topic = ORDERS)]
async fn handler(_: Event<serde_json::Value>) {}

fn main() {}
