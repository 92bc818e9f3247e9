use eventbus::{Event, subscribe};

#[subscribe("prices", rule(match = "event.type == \"v2\""))]
async fn handler(_: Event<serde_json::Value>) {}

fn main() {}
