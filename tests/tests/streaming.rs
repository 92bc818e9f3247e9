//! Streaming subscriptions against the Dapr-API side of `eventbus::testing`:
//! the app dials the stub, one stream per subscription (the status table on
//! streams is in `transports.rs`, beside the other transports).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Order, builder, order};
use eventbus::sidecar::DaprEndpoint;
use eventbus::testing::{CloudEvent, DaprApi, Settlement, TestSidecar};
use eventbus::{Batch, Event, Outcome, ServerBuilder, Subscription, handler};
use tokio::sync::{Barrier, Notify, oneshot};
use tokio::task::JoinHandle;

struct StreamingApp {
    stub: TestSidecar<DaprApi>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), eventbus::Error>>,
}

impl StreamingApp {
    /// Serves `builder` over streaming subscriptions to a fresh stub, and
    /// waits until its `streams` subscriptions are open.
    async fn start(builder: ServerBuilder, streams: usize) -> StreamingApp {
        let stub = TestSidecar::start_api().await.unwrap().max_attempts(3);
        let server = builder.build().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let endpoint = DaprEndpoint::new(stub.endpoint());
        let task = tokio::spawn(server.serve(eventbus::Transport::streaming(endpoint)).with_graceful_shutdown(async {
            let _ = stopped.await;
        }));
        stub.wait_for_streams(streams).await.unwrap();
        StreamingApp { stub, stop: Some(stop), task }
    }

    async fn publish(&self, topic: &str, event: CloudEvent) -> eventbus::testing::Delivery {
        self.stub.publish_to("pubsub", topic, event).await.unwrap()
    }

    async fn shut_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn events_of_one_stream_are_in_flight_together_and_answered_by_id() {
    // Every handler call waits until all ten are running: it passes only if
    // the stream does not wait for one answer before taking the next event.
    let barrier = Arc::new(Barrier::new(10));
    let app = StreamingApp::start(
        builder().consumer(handler(Subscription::new("orders"), move |event: Event<Order>| {
            let barrier = barrier.clone();
            async move {
                barrier.wait().await;
                if event.data.order_id == "drop-me" { Outcome::Drop } else { Outcome::Success }
            }
        })),
        1,
    )
    .await;
    let publishes = (0..10).map(|n| {
        let id = if n == 3 { "drop-me".to_owned() } else { format!("o-{n}") };
        app.publish("orders", CloudEvent::json(&order(&id)).id(format!("e-{n}")))
    });
    let deliveries = futures_util::future::join_all(publishes).await;
    for (n, delivery) in deliveries.iter().enumerate() {
        let expected = if n == 3 { Outcome::Drop } else { Outcome::Success };
        assert_eq!(delivery.attempts, vec![Ok(expected)], "e-{n}");
    }
    app.shut_down().await;
}

#[tokio::test]
async fn routing_rules_are_refused_naming_the_subscription() {
    let server = builder()
        .consumer(handler(Subscription::new("prices").rule("event.type == \"v2\"", "/v2"), |_: Event<Order>| async {}))
        .build()
        .unwrap();
    let error = server
        .serve(eventbus::Transport::streaming(DaprEndpoint::new("http://127.0.0.1:1")))
        .with_graceful_shutdown(std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(error, eventbus::Error::Unsupported { transport: "streaming", .. }), "{error}");
    assert!(error.to_string().contains("pubsub/prices"), "{error}");
}

#[tokio::test]
async fn a_broken_stream_is_reopened_and_the_event_in_flight_is_delivered_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let first_call = Arc::new(Notify::new());
    let app = StreamingApp::start(
        // The first call never ends: at shutdown it gets RETRY at the drain deadline.
        builder().drain_timeout(Duration::from_millis(100)).consumer(handler(Subscription::new("orders"), {
            let (calls, first_call) = (calls.clone(), first_call.clone());
            move |_: Event<Order>| {
                let (calls, first_call) = (calls.clone(), first_call.clone());
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        // The first delivery hangs until daprd "restarts".
                        first_call.notify_one();
                        std::future::pending::<()>().await;
                    }
                }
            }
        })),
        1,
    )
    .await;
    let delivery = app.publish("orders", CloudEvent::json(&order("o-1")).id("e-1"));
    let restart = async {
        first_call.notified().await;
        app.stub.close_streams();
    };
    let (delivery, ()) = tokio::join!(delivery, restart);
    assert_eq!(delivery.attempts.len(), 2, "{delivery:?}");
    assert_eq!(delivery.attempts[1], Ok(Outcome::Success));
    assert_eq!(delivery.settlement, Settlement::Acked);
    assert_eq!(app.stub.wait_for_streams(1).await.unwrap(), [("pubsub".to_owned(), "orders".to_owned())]);
    app.shut_down().await;
}

#[tokio::test]
async fn shutdown_finishes_and_answers_the_event_in_flight_then_closes_the_stream() {
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let mut app = StreamingApp::start(
        builder().consumer(handler(Subscription::new("orders"), {
            let (started, release) = (started.clone(), release.clone());
            move |_: Event<Order>| {
                let (started, release) = (started.clone(), release.clone());
                async move {
                    started.notify_one();
                    release.notified().await;
                }
            }
        })),
        1,
    )
    .await;
    let stop = app.stop.take();
    let delivery = app.publish("orders", CloudEvent::json(&order("o-1")));
    let shutdown = async {
        started.notified().await;
        let _ = stop.map(|stop| stop.send(()));
        release.notify_one();
    };
    let (delivery, ()) = tokio::join!(delivery, shutdown);
    assert_eq!(delivery.attempts, vec![Ok(Outcome::Success)], "answered before the stream closed");
    app.task.await.unwrap().unwrap();
    assert!(app.stub.wait_for_streams(0).await.unwrap().is_empty(), "the app closed its stream");
}

#[tokio::test]
async fn a_batch_consumer_gets_the_events_of_a_stream_in_batches() {
    let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = sizes.clone();
    let app = StreamingApp::start(
        builder().consumer(handler(Subscription::new("products").bulk(4, 60_000), move |events: Batch<Order>| {
            recorded.lock().unwrap().push(events.len());
            async move { events.answers(events.iter().map(|_| Outcome::Success)) }
        })),
        1,
    )
    .await;
    let publishes = (0..8).map(|n| app.publish("products", CloudEvent::json(&order(&format!("p-{n}")))));
    let deliveries = futures_util::future::join_all(publishes).await;
    assert!(deliveries.iter().all(|d| d.settlement == Settlement::Acked));
    assert_eq!(*sizes.lock().unwrap(), [4, 4], "eight events, batches of four");
    app.shut_down().await;
}

/// An id delivered again while its first delivery is being handled (daprd
/// does this when the broker redelivers, and matches answers by id): the
/// handler runs once, and the one answer serves the later delivery, which is
/// the one daprd waits for.
#[tokio::test]
async fn an_id_delivered_again_while_in_flight_is_handled_and_answered_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let (counted, gate) = (calls.clone(), release.clone());
    let app = StreamingApp::start(
        builder().consumer(handler(Subscription::new("orders"), move |event: Event<Order>| {
            let (calls, release) = (counted.clone(), gate.clone());
            async move {
                if event.id() == "twice" {
                    calls.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                }
            }
        })),
        1,
    )
    .await;
    let twice = CloudEvent::json(&order("o-1")).id("twice");
    let first = app.stub.send_stream("pubsub", "orders", &twice).unwrap();
    let second = app.stub.send_stream("pubsub", "orders", &twice).unwrap();
    // Streams are read in order: once this later event is answered, the app
    // has read the second copy.
    let marker = app.stub.send_stream("pubsub", "orders", &CloudEvent::json(&order("o-2")).id("marker")).unwrap();
    assert_eq!(marker.await.unwrap(), Outcome::Success);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the second copy did not start a second handler call");
    release.notify_one();
    assert_eq!(second.await.unwrap(), Outcome::Success, "the one answer serves the copy daprd waits for");
    assert!(first.await.is_err(), "the first copy's waiter was replaced, as in daprd");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    app.shut_down().await;
}
