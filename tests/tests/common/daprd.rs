//! The real daprd and Redis next to an app under test.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use eventbus::testing::daprd::{Daprd, DaprdBuilder, Redis, Resp};

/// The Dapr resources for local runs and tests (pubsub-redis, resiliency, configuration).
pub const RESOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dapr/local");
/// Test-only resources (the cron binding).
pub const TEST_RESOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/resources");

/// daprd for `app_id` in front of the app on `app_port`, on a Redis of its own.
pub async fn sidecar(
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

/// Consumer-group figures of a topic's stream: (entries not yet read, read but not acked).
pub async fn backlog(redis: &Redis, topic: &str, group: &str) -> (i64, i64) {
    let Ok(Resp::Array(groups)) = redis.command(&["XINFO", "GROUPS", topic]).await else { return (i64::MAX, 0) };
    for info in groups {
        let Resp::Array(fields) = info else { continue };
        let mut name = None;
        let (mut lag, mut pending) = (i64::MAX, 0);
        for pair in fields.chunks(2) {
            match (&pair[0], pair.get(1)) {
                (Resp::Bulk(k), Some(Resp::Bulk(v))) if k == b"name" => name = Some(v.clone()),
                (Resp::Bulk(k), Some(Resp::Integer(v))) if k == b"lag" => lag = *v,
                (Resp::Bulk(k), Some(Resp::Integer(v))) if k == b"pending" => pending = *v,
                _ => {}
            }
        }
        if name.as_deref() == Some(group.as_bytes()) {
            return (lag, pending);
        }
    }
    (i64::MAX, 0)
}

/// Waits until every entry of `topic` was read by `group` and acknowledged.
pub async fn until_settled(redis: &Redis, topic: &str, group: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if backlog(redis, topic, group).await == (0, 0) {
            return;
        }
        assert!(Instant::now() < deadline, "{topic}: not settled in 60 s: {:?}", backlog(redis, topic, group).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The CloudEvent ids on a dead-letter topic.
pub async fn dead_letter_ids(redis: &Redis, topic: &str) -> Vec<String> {
    redis
        .stream(topic)
        .await
        .unwrap()
        .iter()
        .filter_map(|entry| entry.cloud_event()?.get("id")?.as_str().map(str::to_owned))
        .collect()
}
