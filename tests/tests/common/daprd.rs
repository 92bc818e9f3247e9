//! The real daprd and Redis next to an app under test.
#![allow(dead_code, clippy::unwrap_used)]

use daprd_harness::{Daprd, DaprdBuilder, Redis, eventually};

/// The Dapr resources for local runs and tests (pubsub-redis, resiliency, configuration).
pub(crate) const RESOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dapr/local");
/// Test-only resources (the cron binding).
pub(crate) const TEST_RESOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/resources");

/// daprd for `app_id` in front of the app on `app_port`, on a Redis of its
/// own, with the shipped local resources as they are.
pub(crate) async fn sidecar(
    app_id: &str,
    app_port: u16,
    configure: impl FnOnce(DaprdBuilder) -> DaprdBuilder,
) -> (Redis, Daprd) {
    start_sidecar(app_id, app_port, &[RESOURCES.into()], configure).await
}

/// A retry budget of 2 s (200 ms x 10), for the tests that watch daprd run
/// out of retries and dead-letter: what daprd does at the end of a policy,
/// which the shipped policy (minutes) would make a test wait for.
pub(crate) const SHORT_RETRIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/resources/short-retries/resiliency.yaml");

/// [`sidecar`] with the shipped local component and configuration, and
/// [`SHORT_RETRIES`] in place of the shipped retry policy.
pub(crate) async fn sidecar_with_short_retries(
    app_id: &str,
    app_port: u16,
    configure: impl FnOnce(DaprdBuilder) -> DaprdBuilder,
) -> (Redis, Daprd) {
    let resources =
        [format!("{RESOURCES}/pubsub-redis.yaml"), format!("{RESOURCES}/config.yaml"), SHORT_RETRIES.into()];
    start_sidecar(app_id, app_port, &resources, configure).await
}

async fn start_sidecar(
    app_id: &str,
    app_port: u16,
    resources: &[String],
    configure: impl FnOnce(DaprdBuilder) -> DaprdBuilder,
) -> (Redis, Daprd) {
    let redis = Redis::start().await.unwrap();
    let builder = resources
        .iter()
        .fold(Daprd::builder(app_id).app_port(app_port), |builder, path| builder.resources(path))
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

/// A structured CloudEvent of type `order` with `id` and `data`.
pub(crate) fn order_event(id: &str, data: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"specversion": "1.0", "id": id, "source": "daprd-suite", "type": "order",
                       "datacontenttype": "application/json", "data": data})
}

/// The outcomes each event id got, in order.
pub(crate) type Seen = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<eventbus::Outcome>>>>;

/// A handler whose answer the event's `kind` decides: `poison` is DROP,
/// `flaky` is RETRY on its first delivery, anything else SUCCESS; each
/// outcome is recorded in `seen`.
pub(crate) fn by_kind(
    seen: &Seen,
) -> impl Fn(eventbus::Event<serde_json::Value>) -> std::future::Ready<eventbus::Outcome> + Clone + Send + Sync + 'static
{
    let seen = seen.clone();
    move |event| {
        use eventbus::Outcome;
        let mut seen = seen.lock().unwrap();
        let attempts = seen.entry(event.id().to_owned()).or_default();
        let outcome = match event.data["kind"].as_str() {
            Some("poison") => Outcome::Drop,
            Some("flaky") if attempts.is_empty() => Outcome::Retry,
            _ => Outcome::Success,
        };
        attempts.push(outcome);
        std::future::ready(outcome)
    }
}
