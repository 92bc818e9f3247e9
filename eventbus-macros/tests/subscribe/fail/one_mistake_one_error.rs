use eventbus::{Event, Server, subscribe};

#[subscribe("orders", retries = 3)]
async fn handler(_: Event<serde_json::Value>) {}

fn main() {
    // The registration still exists: the only error is the option's.
    let _ = Server::builder().consumer(handler {}).build();
    let _ = handler(Event::new(eventbus::Envelope::default(), serde_json::Value::Null));
}
