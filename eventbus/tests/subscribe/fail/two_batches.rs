use eventbus::{Event, subscribe};

#[subscribe("orders")]
async fn handler(_: Vec<Event<u32>>, _: Vec<Event<u64>>) -> Vec<eventbus::Result> {
    Vec::new()
}

fn main() {}
