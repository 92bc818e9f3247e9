use eventbus::{Event, subscribe};

struct NotDeserialize;

#[subscribe("orders")]
async fn handler(_: Event<NotDeserialize>) {}

fn main() {}
