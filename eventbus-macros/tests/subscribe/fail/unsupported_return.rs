use eventbus::{Event, subscribe};

#[subscribe("orders")]
async fn handler(_: Event<serde_json::Value>) -> i32 {
    1
}

fn main() {}
