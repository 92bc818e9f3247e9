#![allow(clippy::unwrap_used)]
mod common;
use std::sync::{Arc, Mutex};
use common::{Order, builder};
use eventbus::testing::daprd::{self, Daprd, Redis};
use eventbus::{Event, Subscription, handler};

#[tokio::test]
async fn probe() {
    if !daprd::available() { return; }
    let redis = Redis::start().await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let app = common::start(builder().default_pubsub("pubsub-redis").consumer(handler(Subscription::new("probe").dead_letter("probe.dlq"), move |event: Event<Order>| { let s = s2.clone(); async move {
        s.lock().unwrap().push(event.id().to_owned());
    }}))).await;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dapr/local");
    let mut d = Daprd::builder("probe").app_port(app.address.port()).resources(root).replace_in_resources("localhost:6379", redis.address()).start().await.unwrap();
    let subs = d.wait_for_subscriptions(1).await.unwrap();
    eprintln!("{subs:?}");
    d.publish_json("pubsub-redis", "probe", &common::order("o-1")).await.unwrap();
    for _ in 0..100 { if !seen.lock().unwrap().is_empty() { break; } tokio::time::sleep(std::time::Duration::from_millis(50)).await; }
    eprintln!("seen {:?}", seen.lock().unwrap());
    eprintln!("{}", d.log());
}
