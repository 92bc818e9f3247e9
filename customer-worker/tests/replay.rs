//! `replay` of the shipped sample file, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use common::{config, databases};
use customer_worker::app;
use customer_worker::jobs::Jobs;
use customer_worker::replay::{Options, envelope_from_line, replay};
use customer_worker::store::Store;
use tokio_util::sync::CancellationToken;

const SAMPLE: &str = include_str!("../samples/events.jsonl");

#[tokio::test]
async fn replaying_the_sample_twice_gives_the_same_state() {
    for db in databases().await {
        let config = config(&db);
        let store = Store::connect(&config.data.database).await.unwrap();
        let jobs = Jobs::new(store.clone(), config.clone()).unwrap();
        let server = app::event_server(&config, &store, &jobs, &CancellationToken::new()).unwrap();
        for _ in 0..2 {
            let mut out = Vec::new();
            let mut failed = Vec::new();
            let summary =
                replay(&server, SAMPLE.as_bytes(), &mut out, Some(&mut failed), &Options::default()).await.unwrap();
            assert_eq!(
                (summary.success, summary.retry, summary.drop, summary.unreadable),
                (9, 0, 2, 0),
                "{}",
                db.label
            );
            let printed = String::from_utf8(out).unwrap();
            assert!(printed.contains("evt-0009                 order.completed        DROP"), "{printed}");
            // The two dropped lines, as read, ready to be replayed again.
            let failed = String::from_utf8(failed).unwrap();
            assert_eq!(failed.lines().count(), 2, "{failed}");
            assert!(failed.lines().all(|l| SAMPLE.lines().any(|s| s == l)));
            let ada = store.customer("c-ada").await.unwrap().unwrap();
            assert_eq!((ada.order_count, ada.total_spent_minor, ada.returned_count), (2, 14550, 1), "{}", db.label);
            let bob = store.customer("c-bob").await.unwrap().unwrap();
            assert_eq!((bob.order_count, bob.cancelled_count), (0, 1));
        }
    }
}

#[test]
fn lines_become_envelopes_or_say_why_not() {
    let envelope = envelope_from_line(
        r#"{"specversion":"1.0","id":"x","type":"order.completed","source":"s","time":"2026-01-01T00:00:00Z","data":{"a":1}}"#,
    )
    .unwrap();
    assert_eq!((envelope.topic.as_str(), envelope.data.as_ref()), ("order.completed", br#"{"a":1}"#.as_slice()));
    assert_eq!(envelope.extensions.get_str("time"), Some("2026-01-01T00:00:00Z"));
    let raw =
        envelope_from_line(r#"{"id":"y","topic":"t","datacontenttype":"text/plain","data_base64":"aGk="}"#).unwrap();
    assert_eq!(raw.data.as_ref(), b"hi");
    assert!(envelope_from_line("{not json").unwrap_err().contains("invalid JSON"));
    assert!(envelope_from_line(r#"{"type":"t"}"#).unwrap_err().contains("no id"));
}
