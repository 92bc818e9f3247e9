//! The README's "Testing your own consumers", as written there.

use eventbus::Transport;
use eventbus::testing::{CloudEvent, Settlement, TestSidecar};
use newcomer::{Db, server};

#[tokio::test]
async fn orders_are_recorded_and_bad_payloads_dead_lettered() -> Result<(), Box<dyn std::error::Error>> {
    let db = Db::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(
        server(db.clone())?
            .serve(Transport::grpc_listener(listener))
            .with_graceful_shutdown(async move { let _ = stopped.await; }),
    );

    let sidecar = TestSidecar::connect(address).await?.pubsub("pubsub-redis");
    let payload = serde_json::json!({"order_id": "o-1", "customer_id": "c-1"});
    let delivery = sidecar.publish("order.completed", CloudEvent::json(&payload).id("evt-1")).await?;
    assert_eq!(delivery.settlement, Settlement::Acked);
    assert_eq!(db.orders(), ["evt-1:o-1:c-1"]);

    let bad = sidecar.publish("order.completed", CloudEvent::json(&serde_json::json!({"order_id": 7}))).await?;
    assert_eq!(bad.settlement, Settlement::DeadLettered("order.completed.dlq".into()));

    let _ = stop.send(());
    serving.await??;
    Ok(())
}
