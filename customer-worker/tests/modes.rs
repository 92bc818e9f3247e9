//! Each mode starts only what it names; the admin port answers.
#![allow(clippy::unwrap_used)]

mod common;

use common::{config, databases, get};
use customer_worker::app::{self, Mode};

#[tokio::test]
async fn each_mode_starts_only_what_it_names() {
    let db = databases().await.remove(0);
    for (mode, grpc, cron) in [(Mode::Events, true, false), (Mode::Cron, false, true), (Mode::All, true, true)] {
        let running = app::start(config(&db), mode, None).await.unwrap();
        assert_eq!(running.app_addr.is_some(), grpc, "{mode:?}");
        assert_eq!(running.scheduler, cron, "{mode:?}");
        if let Some(address) = running.app_addr {
            let sidecar = eventbus::testing::TestSidecar::connect(address).await.unwrap();
            assert_eq!(sidecar.subscriptions().len(), 6);
        }
        assert_eq!(get(running.admin_addr, "/healthz").await, Some((200, "ok".into())));
        assert_eq!(get(running.admin_addr, "/readyz").await, Some((200, "ready".into())));
        running.shutdown();
        running.wait().await.unwrap();
    }
}

#[tokio::test]
async fn the_worker_subscribes_to_the_six_topics_with_dead_letters() {
    let db = databases().await.remove(0);
    let running = app::start(config(&db), Mode::Events, None).await.unwrap();
    let sidecar = eventbus::testing::TestSidecar::connect(running.app_addr.unwrap()).await.unwrap();
    let mut topics: Vec<(String, String, String)> = sidecar
        .subscriptions()
        .iter()
        .map(|s| (s.pubsub_name.clone(), s.topic.clone(), s.dead_letter_topic.clone()))
        .collect();
    topics.sort();
    let expected: Vec<(String, String, String)> = [
        "auth.login",
        "auth.password_changed",
        "customer.deleted",
        "order.cancelled",
        "order.completed",
        "order.returned",
    ]
    .into_iter()
    .map(|t| ("pubsub-redis".to_owned(), t.to_owned(), format!("{t}.dlq")))
    .collect();
    assert_eq!(topics, expected);
    running.shutdown();
    running.wait().await.unwrap();
}

/// The container's `HEALTHCHECK` (`customer-worker healthcheck --addr …`):
/// fine against a running worker's admin port, an error when nothing listens.
#[tokio::test]
async fn the_healthcheck_command_probes_the_admin_port() {
    let db = databases().await.remove(0);
    let running = app::start(config(&db), Mode::Cron, None).await.unwrap();
    let probe = |addr: std::net::SocketAddr| {
        customer_worker::cli::run(["customer-worker", "healthcheck", "--addr", &addr.to_string()].map(Into::into))
    };
    probe(running.admin_addr).await.unwrap();
    let admin = running.admin_addr;
    running.shutdown();
    running.wait().await.unwrap();
    let error = probe(admin).await.unwrap_err();
    assert!(format!("{error:#}").contains(&admin.to_string()), "{error:#}");
}
