//! Building the server validates the subscriptions (no socket needed).
#![allow(clippy::unwrap_used)]

use eventbus::extract::EventId;
use eventbus::{Batch, Error, Event, Server, State, Subscription, handler};

async fn noop(_: Event<serde_json::Value>) {}

#[test]
fn duplicate_subscription_names_both_handlers() {
    let error = Server::builder()
        .consumer(handler(Subscription::new("orders"), noop).name("first_handler"))
        .consumer(handler(Subscription::new("orders"), noop).name("second_handler"))
        .build()
        .unwrap_err();
    assert!(matches!(error, Error::DuplicateRoute { .. }));
    let message = error.to_string();
    assert!(message.contains("first_handler") && message.contains("second_handler"), "{message}");
    assert!(message.contains("pubsub/orders"), "{message}");
}

#[test]
fn duplicate_rule_path_is_an_error_but_other_pubsubs_are_not() {
    let duplicate = Server::builder()
        .consumer(handler(Subscription::new("t").rule("event.type == \"a\"", "/p"), noop).name("a"))
        .consumer(handler(Subscription::new("t").rule("event.type == \"b\"", "/p"), noop).name("b"))
        .build();
    assert!(matches!(duplicate, Err(Error::DuplicateRoute { .. })));
    let separate = Server::builder()
        .consumer(handler(Subscription::new("t"), noop).name("a"))
        .consumer(handler(Subscription::new("t").pubsub("kafka"), noop).name("b"))
        .build();
    assert_eq!(separate.unwrap().subscriptions().len(), 2);
}

#[test]
fn empty_topic_or_pubsub_is_an_error() {
    for subscription in [Subscription::new(""), Subscription::new("t").pubsub(""), Subscription::new("with space")] {
        let error = Server::builder().consumer(handler(subscription, noop).name("h")).build().unwrap_err();
        assert!(matches!(error, Error::InvalidSubscription { ref handler, .. } if handler == "h"), "{error}");
    }
}

#[test]
fn a_routing_rule_that_is_not_valid_cel_fails_the_build_naming_the_subscription() {
    for (matches, mistake) in
        [("event.type = \"order.v2\"", "Syntax error"), ("evnt.type == \"order.v2\"", "unknown variable `evnt`")]
    {
        let subscription = Subscription::new("orders").rule(matches, "/v2");
        let error = Server::builder().consumer(handler(subscription, noop).name("on_v2")).build().unwrap_err();
        assert!(matches!(error, Error::InvalidSubscription { ref handler, .. } if handler == "on_v2"), "{error}");
        let message = error.to_string();
        assert!(message.contains("routing rule 0") && message.contains(mistake), "{message}");
    }
}

#[test]
fn handlers_of_one_topic_must_agree_on_its_dead_letter_topic() {
    let error = Server::builder()
        .consumer(handler(Subscription::new("t").rule("event.type == \"a\"", "/a").dead_letter("x"), noop).name("a"))
        .consumer(handler(Subscription::new("t").dead_letter("y"), noop).name("b"))
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("dead-letter topic"), "{error}");
}

#[derive(Clone)]
struct Db;

#[test]
fn missing_state_is_a_build_error_naming_the_type() {
    async fn needs_db(_: Event<serde_json::Value>, _: State<Db>) {}
    let error =
        Server::builder().consumer(handler(Subscription::new("t"), needs_db).name("needs_db")).build().unwrap_err();
    assert!(error.to_string().contains("State<registry::Db>"), "{error}");
    assert!(Server::builder().state(Db).consumer(handler(Subscription::new("t"), needs_db)).build().is_ok());
}

#[test]
fn a_handler_of_whole_batches_takes_no_single_events_part_and_one_batch() {
    async fn mixed(_: Batch<u32>, _: EventId) {}
    async fn two(_: Batch<u32>, _: Batch<u64>) {}
    async fn fine(_: Batch<u32>, _: State<Db>) {}
    fn build(consumer: impl eventbus::consumer::Consumer) -> Result<Server, Error> {
        Server::builder().state(Db).consumer(consumer).build()
    }
    let error = build(handler(Subscription::new("t"), mixed).name("mixed")).unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("handler `mixed` takes `eventbus::extract::EventId` beside `"), "{message}");
    assert!(message.ends_with("Batch<u32>`: a handler of whole batches takes no single event's part"), "{message}");
    let error = build(handler(Subscription::new("t"), two).name("two")).unwrap_err();
    assert!(error.to_string().starts_with("handler `two` takes two batches"), "{error}");
    assert!(build(handler(Subscription::new("t"), fine)).is_ok());
}

#[test]
fn duplicate_invocation_handler_is_an_error() {
    let error = Server::builder()
        .invocation("m", |_: String| async {})
        .invocation("m", |_: String| async {})
        .build()
        .unwrap_err();
    assert_eq!(error.to_string(), "duplicate invocation handler `m`");
}
