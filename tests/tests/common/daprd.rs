//! The real daprd and Redis next to an app under test.
#![allow(dead_code, clippy::unwrap_used)]

use eventbus::testing::daprd::{Daprd, DaprdBuilder, Redis, eventually};

/// The Dapr resources for local runs and tests (pubsub-redis, resiliency, configuration).
pub(crate) const RESOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dapr/local");
/// Test-only resources (the cron binding).
pub(crate) const TEST_RESOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/resources");

/// daprd for `app_id` in front of the app on `app_port`, on a Redis of its own.
pub(crate) async fn sidecar(
    app_id: &str,
    app_port: u16,
    configure: impl FnOnce(DaprdBuilder) -> DaprdBuilder,
) -> (Redis, Daprd) {
    let redis = Redis::start().await.unwrap();
    let builder = Daprd::builder(app_id)
        .app_port(app_port)
        .resources(RESOURCES)
        .replace_in_resources("localhost:6379", redis.address());
    let daprd = configure(builder).start().await.unwrap();
    (redis, daprd)
}

/// Waits until every entry of `topic` was read by `group` and acknowledged.
pub(crate) async fn until_settled(redis: &Redis, topic: &str, group: &str) {
    eventually(&format!("{topic} read and acknowledged"), || async {
        (redis.consumer_group(topic, group).await.ok()?? == (0, 0)).then_some(())
    })
    .await;
}

/// The CloudEvent ids on a dead-letter topic.
pub(crate) async fn dead_letter_ids(redis: &Redis, topic: &str) -> Vec<String> {
    redis
        .stream(topic)
        .await
        .unwrap()
        .iter()
        .filter_map(|entry| entry.cloud_event()?.get("id")?.as_str().map(str::to_owned))
        .collect()
}
