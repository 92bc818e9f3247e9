//! Database unavailable: events get RETRY; once it is back, the final state is exact.
#![allow(clippy::unwrap_used)]

mod common;

use common::{completed, config, databases};
use customer_worker::app;
use customer_worker::jobs::Jobs;
use customer_worker::store::{Store, Table};
use eventbus::Outcome;
use eventbus::testing::{Settlement, TestSidecar};
use tokio_util::sync::CancellationToken;

async fn serve(store: &Store, config: &customer_worker::config::Config) -> (TestSidecar, tokio::task::JoinHandle<()>) {
    let jobs = Jobs::new(store.clone(), config.clone()).unwrap();
    let server = app::event_server(config, store, &jobs, &CancellationToken::new()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = server
            .serve(eventbus::Transport::grpc_listener(listener))
            .with_graceful_shutdown(std::future::pending())
            .await;
    });
    (TestSidecar::connect(address).await.unwrap().pubsub("pubsub-redis").max_attempts(2), task)
}

#[tokio::test]
async fn database_down_means_retry_and_recovery_is_exact() {
    for db in databases().await {
        let config = config(&db);
        let store = Store::connect(&config.data.database).await.unwrap();
        let (sidecar, task) = serve(&store, &config).await;
        let first = sidecar
            .publish("order.completed", completed("o-1", "c-1", "10.00", "2026-11-20T10:00:00Z").id("e1"))
            .await
            .unwrap();
        assert_eq!(first.settlement, Settlement::Acked);

        store.close().await; // the database is gone
        let down = sidecar
            .publish("order.completed", completed("o-2", "c-1", "5.00", "2026-11-21T10:00:00Z").id("e2"))
            .await
            .unwrap();
        assert_eq!(down.attempts, vec![Ok(Outcome::Retry), Ok(Outcome::Retry)], "{}", db.label);
        assert_eq!(
            sidecar.health().await.unwrap_err().code(),
            eventbus::status::Code::Unavailable,
            "readiness follows the database"
        );
        task.abort();

        // Back: the broker redelivers both (one of them a duplicate).
        let store = Store::connect(&config.data.database).await.unwrap();
        let (sidecar, _task) = serve(&store, &config).await;
        sidecar.health().await.unwrap();
        for (id, order, amount, time) in
            [("e2", "o-2", "5.00", "2026-11-21T10:00:00Z"), ("e1", "o-1", "10.00", "2026-11-20T10:00:00Z")]
        {
            let delivery =
                sidecar.publish("order.completed", completed(order, "c-1", amount, time).id(id)).await.unwrap();
            assert_eq!(delivery.settlement, Settlement::Acked);
        }
        let c = store.customer("c-1").await.unwrap().unwrap();
        assert_eq!((c.order_count, c.total_spent_minor), (2, 1500), "{}", db.label);
        assert_eq!(store.count(Table::Inbox).await.unwrap(), 2);
    }
}
