//! Per-event cost of the in-process pipeline against a bare serde decode;
//! registry dispatch with 1 and 1,000 subscriptions; bulk fan-out of 100.
//!
//! `cargo bench -p eventbus-bench` (quick: `-- --quick`).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use eventbus::{Envelope, Event, Server, Subscription, handler};
use eventbus_bench::OrderCompleted;

fn envelope(topic: &str) -> Envelope {
    Envelope {
        id: "evt-1".into(),
        source: "bench".into(),
        event_type: "order.completed".into(),
        spec_version: "1.0".into(),
        data_content_type: "application/json".into(),
        data: serde_json::to_vec(&OrderCompleted::nth("bench", 1)).unwrap_or_default().into(),
        topic: topic.into(),
        pubsub: "pubsub".into(),
        ..Envelope::default()
    }
}

async fn on_order(event: Event<OrderCompleted>) {
    black_box(event.data);
}

fn server(topics: usize) -> Server {
    let mut builder = Server::builder().api_token(None).default_pubsub("pubsub");
    for n in 0..topics {
        builder = builder.consumer(handler(Subscription::new(format!("topic-{n}")), on_order).name(format!("h{n}")));
    }
    builder.build().unwrap_or_else(|e| panic!("{e}"))
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    let data = envelope("topic-0").data;

    c.bench_function("bare serde decode", |b| {
        b.iter(|| black_box(serde_json::from_slice::<OrderCompleted>(black_box(&data)).ok()))
    });

    for topics in [1, 1000] {
        let server = server(topics);
        let topic = format!("topic-{}", topics - 1);
        let template = envelope(&topic);
        c.bench_function(&format!("pipeline: CloudEvent -> typed handler -> outcome ({topics} subscriptions)"), |b| {
            b.to_async(&runtime).iter(|| async { black_box(server.dispatch(template.clone()).await) })
        });
    }

    let server = server(1);
    let template = envelope("topic-0");
    c.bench_function("bulk fan-out of 100 entries", |b| {
        b.to_async(&runtime).iter(|| async {
            let outcomes = futures_util::future::join_all((0..100).map(|_| server.dispatch(template.clone()))).await;
            black_box(outcomes)
        })
    });
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
