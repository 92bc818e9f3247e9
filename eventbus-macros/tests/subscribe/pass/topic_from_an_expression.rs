//! The topic and the pubsub may be constants or any expression, evaluated
//! when the server is built; rules may carry a priority.
use eventbus::{Event, Server, subscribe};

const ORDERS: &str = "orders";

fn pubsub() -> String {
    std::env::var("ORDERS_PUBSUB").unwrap_or_else(|_| "pubsub-kafka".to_owned())
}

#[subscribe(topic = ORDERS, pubsub = pubsub(), rule(match = "event.type == \"v2\"", path = "/v2", priority = -1))]
async fn on_v2(_: Event<serde_json::Value>) {}

#[subscribe(topic = ORDERS, pubsub = pubsub(), rule(match = "true", path = "/any", priority = 5))]
async fn on_any(_: Event<serde_json::Value>) {}

fn main() {
    // Registered in reverse: the priority decides the order daprd is given.
    let server = Server::builder().consumer(on_any {}).consumer(on_v2 {}).build().unwrap();
    let topic = &server.subscriptions()[0];
    assert_eq!((topic.pubsub.as_str(), topic.topic.as_str()), ("pubsub-kafka", "orders"));
    let paths: Vec<&str> = topic.rules.iter().map(|rule| rule.path.as_str()).collect();
    assert_eq!(paths, ["/v2", "/any"]);

    // A #[subscribe] registration takes layers of its own too.
    use eventbus::consumer::ConsumerExt;
    let timeout = eventbus::middleware::TimeoutLayer::new(std::time::Duration::from_secs(1));
    Server::builder().consumer(on_v2 {}.layer(timeout)).build().unwrap();
}
