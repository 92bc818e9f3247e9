use eventbus::{Event, subscribe};

#[subscribe("order completed")]
async fn handler(_: Event<serde_json::Value>) {}

fn main() {}
