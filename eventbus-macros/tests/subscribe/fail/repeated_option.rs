use eventbus::{Event, subscribe};

#[subscribe("orders", pubsub = "a", pubsub = "b")]
async fn handler(_: Event<serde_json::Value>) {}

fn main() {}
