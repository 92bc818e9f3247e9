use eventbus::{Event, subscribe};

// A whole batch is `Batch<T>`: a `Vec` of events is not an extractor.
#[subscribe("orders", bulk)]
async fn handler(_: Vec<Event<u32>>) {}

fn main() {}
