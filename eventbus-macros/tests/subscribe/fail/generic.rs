use eventbus::{Event, subscribe};

#[subscribe("orders")]
async fn handler<T: Send>(_: Event<T>) {}

fn main() {}
