use eventbus::{Event, subscribe};

#[subscribe("orders", timeout = "5 seconds")]
async fn handler(_: Event<serde_json::Value>) {}

fn main() {}
