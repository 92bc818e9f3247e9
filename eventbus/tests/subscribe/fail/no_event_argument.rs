use eventbus::{State, subscribe};

#[subscribe("orders")]
async fn handler(_: State<u32>) {}

fn main() {}
