use eventbus::{Event, subscribe};

#[subscribe("orders")]
async fn handler(_: Event<serde_json::Value>, retries: u32) {
    let _ = retries;
}

fn main() {}
