use eventbus::{Event, subscribe};

#[subscribe("orders")]
fn handler(_: Event<serde_json::Value>) {}

fn main() {}
