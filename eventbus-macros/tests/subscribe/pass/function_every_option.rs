use eventbus::{Event, HandlerError, Outcome, Server, State, subscribe};

#[derive(serde::Deserialize)]
pub struct Order {
    id: String,
}

#[derive(Clone)]
pub struct Db;

/// Docs stay on the handler.
#[subscribe(
    "order.completed",
    pubsub = "pubsub-redis",
    rule(match = "event.type == \"v2\"", path = "/v2"),
    rule(match = "event.type == \"v3\"", path = "/v3"),
    dead_letter = "order.completed.dlq",
    metadata(rawPayload = "false", "consumerID" = "worker"),
    bulk(max_messages = 50, max_await_ms = 200),
    timeout = "250ms",
    concurrency = 8,
    crate = "eventbus",
)]
async fn every_option(event: Event<Order>, State(_db): State<Db>) -> Result<Outcome, HandlerError> {
    let _ = event.data.id;
    Ok(Outcome::Success)
}

#[subscribe("plain", path = "/plain", raw_payload, bulk)]
async fn unit(_: Event<serde_json::Value>) {}

#[subscribe("anyhow", timeout = "2m")]
async fn anyhow_result(_: Event<eventbus::Raw>) -> Result<(), anyhow::Error> {
    Ok(())
}

#[subscribe("io")]
pub async fn io_result(_: State<Db>, _: Event<Order>, _: State<String>) -> Result<(), std::io::Error> {
    Ok(())
}

fn main() {
    let server = Server::builder()
        .state(Db)
        .state(String::new())
        .consumer(every_option {})
        .consumer(unit {})
        .consumer(anyhow_result {})
        .consumer(io_result {})
        .build()
        .unwrap();
    assert_eq!(server.subscriptions().len(), 4);
}
