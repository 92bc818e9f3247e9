//! `server.transport`: the worker's consumers over the HTTP app channel and
//! over streaming subscriptions apply events as over gRPC (the gRPC app
//! channel is what every other test drives).
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestDb, completed, databases, login};
use customer_worker::app::{self, Mode};
use customer_worker::config::{Config, DEFAULT_CONFIG};
use customer_worker::store::Store;
use eventbus::testing::{CloudEvent, Settlement, TestSidecar};

fn config(db: &TestDb, transport: &str, extra: &[(&str, String)]) -> Config {
    let mut env = vec![
        ("CUSTOMER_WORKER__DATA__DATABASE__URL".to_owned(), db.url.clone()),
        ("CUSTOMER_WORKER__SERVER__APP_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("CUSTOMER_WORKER__SERVER__ADMIN_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("CUSTOMER_WORKER__SERVER__TRANSPORT".to_owned(), transport.to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Config::parse(DEFAULT_CONFIG, env, "test").unwrap()
}

async fn spent(store: &Store, customer: &str) -> i64 {
    store.customer(customer).await.unwrap().map_or(0, |c| c.total_spent_minor)
}

#[tokio::test]
async fn over_http_events_are_applied_and_poison_is_dead_lettered() {
    for db in databases().await {
        let config = config(&db, "http", &[]);
        let store = Store::connect(&config.data.database).await.unwrap();
        let running = app::start(config, Mode::Events, None).await.unwrap();
        let sidecar = TestSidecar::connect_http(running.app_addr.unwrap()).await.unwrap().pubsub("pubsub-redis");
        assert_eq!(sidecar.subscriptions().len(), 6, "{}", db.label);

        let order = sidecar.publish("order.completed", completed("o-1", "c-1", "12.50", "2026-01-01T10:00:00Z")).await;
        assert_eq!(order.unwrap().settlement, Settlement::Acked, "{}", db.label);
        let seen = sidecar.publish("auth.login", login("c-1", "2026-01-02T10:00:00Z")).await.unwrap();
        assert_eq!(seen.settlement, Settlement::Acked);
        let poison = sidecar.publish("auth.login", CloudEvent::json(&serde_json::json!({"customer_id": 7}))).await;
        assert_eq!(poison.unwrap().settlement, Settlement::DeadLettered("auth.login.dlq".into()));
        assert_eq!(spent(&store, "c-1").await, 1250, "{}", db.label);

        running.shutdown();
        running.wait().await.unwrap();
    }
}

#[tokio::test]
async fn over_streaming_subscriptions_events_are_applied_and_poison_is_dead_lettered() {
    for db in databases().await {
        let stub = TestSidecar::start_api().await.unwrap();
        let config = config(&db, "streaming", &[("CUSTOMER_WORKER__SERVER__DAPR_GRPC_ENDPOINT", stub.endpoint())]);
        let store = Store::connect(&config.data.database).await.unwrap();
        let running = app::start(config, Mode::Events, None).await.unwrap();
        assert_eq!(running.app_addr, None, "no app port with streaming");
        assert_eq!(stub.wait_for_streams(6).await.unwrap().len(), 6, "{}", db.label);

        let order = stub
            .publish_to("pubsub-redis", "order.completed", completed("o-1", "c-1", "12.50", "2026-01-01T10:00:00Z"))
            .await
            .unwrap();
        assert_eq!(order.settlement, Settlement::Acked, "{}", db.label);
        let poison =
            stub.publish_to("pubsub-redis", "order.completed", CloudEvent::json(&serde_json::json!({}))).await.unwrap();
        assert_eq!(poison.settlement, Settlement::DeadLettered("order.completed.dlq".into()));
        assert_eq!(spent(&store, "c-1").await, 1250, "{}", db.label);

        running.shutdown();
        running.wait().await.unwrap();
        assert!(stub.wait_for_streams(0).await.unwrap().is_empty(), "streams closed at shutdown");
    }
}
