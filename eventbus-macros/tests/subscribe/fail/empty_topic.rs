use eventbus::{Event, subscribe};

#[subscribe("")]
async fn handler(_: Event<serde_json::Value>) {}

fn main() {}
