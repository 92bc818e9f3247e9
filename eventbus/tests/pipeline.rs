//! The whole pipeline (registry, built-in layers, a user layer, handlers)
//! driven without a socket through `Server::dispatch` and
//! `Server::dispatch_bulk`, as axum tests a router with `oneshot`.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use eventbus::middleware::{BoxService, Request};
use eventbus::tower::{self, ServiceExt};
use eventbus::{Batch, Envelope, Event, HandlerError, Outcome, Server, Subscription, handler};

/// What a user layer saw: the size of every request, and every event id once.
#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<Vec<usize>>>,
    ids: Arc<Mutex<Vec<String>>>,
}

fn counting_server(seen: &Seen, batch_calls: &Arc<AtomicUsize>) -> Server {
    let recorder = seen.clone();
    let calls = batch_calls.clone();
    Server::builder()
        .api_token(None)
        .layer(tower::layer::layer_fn(move |inner: BoxService| {
            let seen = recorder.clone();
            tower::service_fn(move |request: Request| {
                seen.requests.lock().unwrap().push(request.events().len());
                seen.ids.lock().unwrap().extend(request.events().iter().map(|e| e.id.clone()));
                inner.clone().oneshot(request)
            })
        }))
        .consumer(handler(Subscription::new("single"), |event: Event<i64>| async move {
            match event.data {
                n if n < 0 => Err(HandlerError::permanent(anyhow::anyhow!("negative"))),
                0 => panic!("zero"),
                _ => Ok(()),
            }
        }))
        .consumer(handler(Subscription::new("batched").bulk(100, 10), move |events: Batch<i64>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { events.answers(events.iter().map(|e| if e.data < 0 { Outcome::Drop } else { Outcome::Success })) }
        }))
        .build()
        .unwrap()
}

fn event(topic: &str, id: &str, data: &str) -> Envelope {
    Envelope {
        id: id.into(),
        topic: topic.into(),
        data: data.to_owned().into_bytes().into(),
        data_content_type: "application/json".into(),
        ..Envelope::default()
    }
}

#[tokio::test]
async fn a_user_layer_sees_every_single_and_bulk_event_once() {
    let (seen, batch_calls) = (Seen::default(), Arc::new(AtomicUsize::new(0)));
    let server = counting_server(&seen, &batch_calls);

    assert_eq!(server.dispatch(event("single", "s1", "1")).await, Outcome::Success);
    assert_eq!(server.dispatch(event("batched", "b0", "1")).await, Outcome::Success);

    // Bulk to a consumer of single events: one request per entry.
    let outcomes = server
        .dispatch_bulk(vec![event("single", "s2", "2"), event("single", "s3", "-1"), event("single", "s4", "0")])
        .await;
    assert_eq!(outcomes, [Outcome::Success, Outcome::Drop, Outcome::Retry]);

    // Bulk to a batch consumer: one request for the batch; the entry that
    // does not decode is dropped without failing its neighbours.
    let outcomes = server
        .dispatch_bulk(vec![event("batched", "b1", "5"), event("batched", "b2", "oops"), event("batched", "b3", "-5")])
        .await;
    assert_eq!(outcomes, [Outcome::Success, Outcome::Drop, Outcome::Drop]);

    let mut requests = seen.requests.lock().unwrap().clone();
    requests.sort_unstable();
    assert_eq!(requests, [1, 1, 1, 1, 1, 3], "one request per single event, one per batch");
    let mut ids = seen.ids.lock().unwrap().clone();
    ids.sort();
    assert_eq!(ids, ["b0", "b1", "b2", "b3", "s1", "s2", "s3", "s4"], "every event exactly once");
    assert_eq!(batch_calls.load(Ordering::SeqCst), 2, "the batch of three is one call");
}

#[tokio::test]
async fn entries_no_handler_may_see_are_answered_before_the_layers() {
    let (seen, batch_calls) = (Seen::default(), Arc::new(AtomicUsize::new(0)));
    let server = counting_server(&seen, &batch_calls);
    let outcomes = server
        .dispatch_bulk(vec![event("batched", "", "1"), event("batched", "b1", "1"), event("batched", "b2", "2")])
        .await;
    assert_eq!(outcomes, [Outcome::Drop, Outcome::Success, Outcome::Success], "no id: dropped by default");
    assert_eq!(server.dispatch(event("nobody", "n1", "1")).await, Outcome::Drop, "unknown topic");
    assert_eq!(*seen.requests.lock().unwrap(), [2]);
    assert_eq!(server.dispatch_bulk(Vec::new()).await, []);
}

/// Every `DROP`, whoever decides it, reaches `on_drop` with the event and
/// why; `RETRY` and `SUCCESS` do not.
#[tokio::test]
async fn every_drop_is_reported_with_its_reason() {
    let dropped: Arc<Mutex<Vec<eventbus::outcome::Dropped>>> = Arc::default();
    let recorder = dropped.clone();
    let server = Server::builder()
        .api_token(None)
        .default_pubsub("pubsub")
        .max_message_size(64)
        .on_drop(move |d| recorder.lock().unwrap().push(d.clone()))
        .consumer(handler(Subscription::new("single"), |event: Event<i64>| async move {
            match event.data {
                n if n < 0 => Err(HandlerError::permanent(anyhow::anyhow!("negative total {n}"))),
                0 => Err(HandlerError::transient(anyhow::anyhow!("database down"))),
                _ => Ok(()),
            }
        }))
        .consumer(handler(Subscription::new("batched").bulk(100, 10), |events: Batch<i64>| async move {
            events.answers(events.iter().map(|e| if e.data < 0 { Outcome::Drop } else { Outcome::Success }))
        }))
        .build()
        .unwrap();
    let cases = [
        (event("single", "ok", "1"), Outcome::Success),
        (event("single", "retried", "0"), Outcome::Retry),
        (event("single", "negative", "-1"), Outcome::Drop),
        (event("single", "undecodable", "\"one\""), Outcome::Drop),
        (event("single", "oversize", &"1".repeat(65)), Outcome::Drop),
        (event("nowhere", "unrouted", "1"), Outcome::Drop),
        (event("single", "", "1"), Outcome::Drop),
    ];
    for (envelope, expected) in cases {
        let id = envelope.id.clone();
        assert_eq!(server.dispatch(envelope).await, expected, "{id}");
    }
    let outcomes = server.dispatch_bulk(vec![event("batched", "b-1", "1"), event("batched", "b-2", "-2")]).await;
    assert_eq!(outcomes, [Outcome::Success, Outcome::Drop]);

    let dropped = dropped.lock().unwrap();
    let reasons: Vec<(&str, &str, &str)> =
        dropped.iter().map(|d| (d.topic.as_str(), d.id.as_str(), d.reason.as_str())).collect();
    let expect = [
        ("single", "negative", "negative total -1"),
        ("single", "undecodable", "invalid type"),
        ("single", "oversize", "more than max_message_size (64)"),
        ("nowhere", "unrouted", "no handler"),
        ("single", "", "no CloudEvent id"),
        ("batched", "b-2", "answered DROP"),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
    for ((topic, id, reason), (want_topic, want_id, want_reason)) in reasons.iter().zip(expect) {
        assert_eq!((*topic, *id), (want_topic, want_id));
        assert!(reason.contains(want_reason), "{id}: {reason:?} should say {want_reason:?}");
    }
    assert!(dropped.iter().all(|d| d.pubsub == "pubsub"));
}
