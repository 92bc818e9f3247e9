use eventbus::subscribe;

#[subscribe("orders")]
struct Handler;

fn main() {}
