use eventbus::{Event, subscribe};

#[subscribe("prices", concurrency = 0)]
async fn handler(_: Event<serde_json::Value>) {}

fn main() {}
