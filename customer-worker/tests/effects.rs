//! Each consumer's effect, exactly once, on SQLite and PostgreSQL, through
//! the worker's real gRPC server and the test sidecar.
#![allow(clippy::unwrap_used)]

mod common;

use common::{cancelled, completed, databases, login, returned, worker};
use customer_worker::store::{Table, millis};
use eventbus::Outcome;
use eventbus::testing::{CloudEvent, Settlement};

fn at(text: &str) -> i64 {
    millis(text.parse().unwrap())
}

#[tokio::test]
async fn order_completed_counts_once_per_order_whatever_the_event_id() {
    for db in databases().await {
        let w = worker(&db).await;
        let s = &w.sidecar;
        s.publish("order.completed", completed("o-1", "c-1", "129.90", "2026-11-20T10:00:00Z").id("e1")).await.unwrap();
        // The same event again, and the same order under a new event id.
        s.publish("order.completed", completed("o-1", "c-1", "129.90", "2026-11-20T10:00:00Z").id("e1")).await.unwrap();
        s.publish("order.completed", completed("o-1", "c-1", "129.90", "2026-11-20T10:00:00Z").id("e1-again"))
            .await
            .unwrap();
        s.publish("order.completed", completed("o-2", "c-1", "0.10", "2026-11-21T10:00:00Z").id("e2")).await.unwrap();
        let c = w.store.customer("c-1").await.unwrap().unwrap();
        assert_eq!((c.order_count, c.total_spent_minor), (2, 13000), "{}", db.label);
        assert_eq!(c.last_order_at, Some(at("2026-11-21T10:00:00Z")), "{}", db.label);
        assert_eq!(c.first_order_at, Some(at("2026-11-20T10:00:00Z")), "{}", db.label);
        assert_eq!(c.currency.as_deref(), Some("EUR"));
    }
}

#[tokio::test]
async fn cancel_after_completion_reverses_and_before_only_counts() {
    for db in databases().await {
        let w = worker(&db).await;
        let s = &w.sidecar;
        // After: completed then cancelled.
        s.publish("order.completed", completed("o-a", "c-1", "50.00", "2026-11-20T10:00:00Z")).await.unwrap();
        s.publish("order.cancelled", cancelled("o-a", "c-1", "50.00", "2026-11-20T11:00:00Z")).await.unwrap();
        // Before: cancelled, and its completion arrives late (out of order).
        s.publish("order.cancelled", cancelled("o-b", "c-1", "70.00", "2026-11-20T11:00:00Z")).await.unwrap();
        s.publish("order.completed", completed("o-b", "c-1", "70.00", "2026-11-20T10:00:00Z")).await.unwrap();
        // Without completion at all.
        s.publish("order.cancelled", cancelled("o-c", "c-1", "10.00", "2026-11-20T11:00:00Z")).await.unwrap();
        s.publish("order.completed", completed("o-d", "c-1", "5.00", "2026-11-22T10:00:00Z")).await.unwrap();
        let c = w.store.customer("c-1").await.unwrap().unwrap();
        assert_eq!((c.order_count, c.total_spent_minor, c.cancelled_count), (1, 500, 3), "{}", db.label);
        assert_eq!(c.last_order_at, Some(at("2026-11-22T10:00:00Z")));
    }
}

#[tokio::test]
async fn returns_reduce_total_spent_and_refunds_beyond_the_order_are_dropped() {
    for db in databases().await {
        let w = worker(&db).await;
        let s = &w.sidecar;
        s.publish("order.completed", completed("o-1", "c-1", "100.00", "2026-11-20T10:00:00Z")).await.unwrap();
        s.publish("order.completed", completed("o-2", "c-1", "40.00", "2026-11-20T10:00:00Z")).await.unwrap();
        s.publish("order.returned", returned("o-1", "c-1", "30.00", "2026-11-21T10:00:00Z")).await.unwrap();
        s.publish("order.returned", returned("o-2", "c-1", "25.00", "2026-11-21T10:00:00Z")).await.unwrap();
        // 25 + 25 would refund 50.00 of a 40.00 order: refused, to the dead letter.
        let beyond =
            s.publish("order.returned", returned("o-2", "c-1", "25.00", "2026-11-22T10:00:00Z")).await.unwrap();
        assert_eq!(beyond.settlement, Settlement::DeadLettered("order.returned.dlq".into()), "{}", db.label);
        let c = w.store.customer("c-1").await.unwrap().unwrap();
        // 100 - 30 = 70; 40 - 25 = 15.
        assert_eq!((c.total_spent_minor, c.returned_count, c.refunded_minor), (8500, 2, 5500), "{}", db.label);
        assert_eq!(c.order_count, 2);
    }
}

#[tokio::test]
async fn a_return_before_its_completion_ends_in_the_same_state() {
    for db in databases().await {
        let w = worker(&db).await;
        let s = &w.sidecar;
        s.publish("order.returned", returned("o-1", "c-1", "30.00", "2026-11-21T10:00:00Z")).await.unwrap();
        s.publish("order.completed", completed("o-1", "c-1", "100.00", "2026-11-20T10:00:00Z")).await.unwrap();
        let c = w.store.customer("c-1").await.unwrap().unwrap();
        assert_eq!((c.order_count, c.total_spent_minor), (1, 7000), "{}", db.label);
    }
}

#[tokio::test]
async fn last_login_never_moves_back_for_a_late_event() {
    for db in databases().await {
        let w = worker(&db).await;
        let s = &w.sidecar;
        s.publish("auth.login", login("c-1", "2026-11-23T08:00:00Z")).await.unwrap();
        s.publish("auth.login", login("c-1", "2026-11-19T08:00:00Z")).await.unwrap();
        assert_eq!(w.store.customer("c-1").await.unwrap().unwrap().last_login_at, Some(at("2026-11-23T08:00:00Z")));
        s.publish("auth.login", login("c-1", "2026-11-24T08:00:00Z")).await.unwrap();
        assert_eq!(w.store.customer("c-1").await.unwrap().unwrap().last_login_at, Some(at("2026-11-24T08:00:00Z")));
    }
}

#[tokio::test]
async fn password_change_records_a_security_event_once() {
    for db in databases().await {
        let w = worker(&db).await;
        let event = CloudEvent::json(&serde_json::json!({
            "customer_id": "c-1", "changed_at": "2026-11-23T08:05:00Z", "ip_address": "203.0.113.7", "user_agent": "curl/8"
        }))
        .id("pw-1");
        w.sidecar.publish("auth.password_changed", event.clone()).await.unwrap();
        w.sidecar.publish("auth.password_changed", event).await.unwrap();
        let row: (String, i64, Option<String>, Option<String>) = sqlx::query_as(
            "SELECT customer_id, occurred_at, ip_address, user_agent FROM security_events WHERE event_id = 'pw-1'",
        )
        .fetch_one(w.store.pool())
        .await
        .unwrap();
        assert_eq!(row, ("c-1".into(), at("2026-11-23T08:05:00Z"), Some("203.0.113.7".into()), Some("curl/8".into())));
        assert_eq!(w.store.count(Table::SecurityEvents).await.unwrap(), 1, "{}", db.label);
    }
}

#[tokio::test]
async fn malformed_and_incomplete_payloads_are_dropped_and_change_nothing() {
    for db in databases().await {
        let w = worker(&db).await;
        let s = &w.sidecar;
        let bad = [
            (
                "order.completed",
                serde_json::json!({"order_id": "o-1", "customer_id": "c-1", "currency": "EUR", "completed_at": "2026-11-20T10:00:00Z"}),
            ),
            (
                "order.completed",
                serde_json::json!({"order_id": "o-1", "customer_id": "c-1", "total_amount": "12,50", "currency": "EUR", "completed_at": "2026-11-20T10:00:00Z"}),
            ),
            (
                "order.completed",
                serde_json::json!({"order_id": "o-1", "customer_id": "c-1", "total_amount": "1.999", "currency": "EUR", "completed_at": "2026-11-20T10:00:00Z"}),
            ),
            (
                "order.cancelled",
                serde_json::json!({"order_id": "", "customer_id": "c-1", "total_amount": "1", "currency": "EUR", "cancelled_at": "2026-11-20T10:00:00Z"}),
            ),
            (
                "order.returned",
                serde_json::json!({"order_id": "o-1", "customer_id": "c-1", "refund_amount": "-5", "currency": "EUR", "returned_at": "2026-11-20T10:00:00Z"}),
            ),
            ("auth.login", serde_json::json!({"customer_id": "c-1", "login_at": "last tuesday"})),
            ("auth.password_changed", serde_json::json!({"changed_at": "2026-11-20T10:00:00Z"})),
        ];
        for (topic, payload) in bad {
            let delivery = s.publish(topic, CloudEvent::json(&payload)).await.unwrap();
            assert_eq!(delivery.attempts, vec![Ok(Outcome::Drop)], "{} {topic} {payload}", db.label);
            assert_eq!(delivery.settlement, Settlement::DeadLettered(format!("{topic}.dlq")));
        }
        let not_json =
            s.publish("order.completed", CloudEvent::bytes("application/json", b"{oops".to_vec())).await.unwrap();
        assert_eq!(not_json.attempts, vec![Ok(Outcome::Drop)]);
        for table in [Table::Inbox, Table::Orders, Table::Customers, Table::SecurityEvents] {
            assert_eq!(w.store.count(table).await.unwrap(), 0, "{} {table:?}", db.label);
        }
    }
}

#[tokio::test]
async fn an_order_in_another_currency_is_dropped_and_changes_nothing() {
    for db in databases().await {
        let w = worker(&db).await;
        w.sidecar.publish("order.completed", completed("o-1", "c-1", "10.00", "2026-11-20T10:00:00Z")).await.unwrap();
        let usd = CloudEvent::json(&serde_json::json!({
            "order_id": "o-2", "customer_id": "c-1", "total_amount": "5.00", "currency": "USD", "completed_at": "2026-11-20T10:00:00Z"
        }));
        let delivery = w.sidecar.publish("order.completed", usd).await.unwrap();
        assert_eq!(delivery.attempts, vec![Ok(Outcome::Drop)], "{}", db.label);
        assert_eq!(w.store.count(Table::Orders).await.unwrap(), 1);
        assert_eq!(w.store.count(Table::Inbox).await.unwrap(), 1);
    }
}

#[tokio::test]
async fn a_bulk_batch_is_written_at_once_with_each_entry_answered() {
    for db in databases().await {
        let w = worker(&db).await;
        let s = &w.sidecar;
        // A customer with EUR orders already.
        s.publish("order.completed", completed("o-0", "c-1", "1.00", "2026-11-19T10:00:00Z").id("e0")).await.unwrap();
        let usd = CloudEvent::json(&serde_json::json!({
            "order_id": "o-usd", "customer_id": "c-1", "total_amount": "5.00", "currency": "USD", "completed_at": "2026-11-20T10:00:00Z"
        }));
        let batch = vec![
            completed("o-1", "c-1", "10.00", "2026-11-20T10:00:00Z").id("b1"),
            completed("o-1", "c-1", "10.00", "2026-11-20T10:00:00Z").id("b1"), // same event twice
            completed("o-1", "c-1", "10.00", "2026-11-20T10:00:00Z").id("b1-again"), // same order, new id
            usd.id("b-usd"),
            CloudEvent::bytes("application/json", b"{".to_vec()).id("b-bad"),
            completed("o-2", "c-2", "2.50", "2026-11-21T10:00:00Z").id("b2"),
            completed("o-0", "c-1", "1.00", "2026-11-19T10:00:00Z").id("e0"), // already applied
        ];
        let deliveries = s.publish_bulk("order.completed", batch).await.unwrap();
        let attempts: Vec<_> = deliveries.iter().map(|d| d.attempts[0]).collect();
        let (ok, drop) = (Ok(Outcome::Success), Ok(Outcome::Drop));
        assert_eq!(attempts, vec![ok, ok, ok, drop, drop, ok, ok], "{}", db.label);
        let c1 = w.store.customer("c-1").await.unwrap().unwrap();
        assert_eq!((c1.order_count, c1.total_spent_minor), (2, 1100), "{}", db.label);
        let c2 = w.store.customer("c-2").await.unwrap().unwrap();
        assert_eq!((c2.order_count, c2.total_spent_minor), (1, 250));
        // Inbox: e0, b1, b1-again, b2; the refused USD event left no claim.
        assert_eq!(w.store.count(Table::Inbox).await.unwrap(), 4, "{}", db.label);
        // Redelivering the whole batch changes nothing.
        let again = vec![
            completed("o-1", "c-1", "10.00", "2026-11-20T10:00:00Z").id("b1"),
            completed("o-2", "c-2", "2.50", "2026-11-21T10:00:00Z").id("b2"),
        ];
        s.publish_bulk("order.completed", again).await.unwrap();
        assert_eq!(w.store.customer("c-1").await.unwrap().unwrap().total_spent_minor, 1100);
        assert_eq!(w.store.count(Table::Inbox).await.unwrap(), 4);
    }
}

/// One write of every topic's events at once, as the group commit makes it
/// under load: each event keeps its own answer, the refused ones leave
/// nothing behind, and writing it all again changes nothing.
#[tokio::test]
async fn events_of_every_topic_share_a_batch_and_keep_their_own_answers() {
    use customer_worker::orders::OrderEvent;
    use customer_worker::store::{Applied, Change, Item};
    let order = |id: &str, order: &str, customer: &str, currency: &str| Item {
        consumer: "order.completed",
        event_id: id.into(),
        customer_id: customer.into(),
        change: Change::Order {
            order_id: order.into(),
            event: OrderEvent::Completed { currency: currency.into(), amount: 1000, at: at("2026-11-20T10:00:00Z") },
        },
    };
    let login = |id: &str, customer: &str, when: &str| Item {
        consumer: "auth.login",
        event_id: id.into(),
        customer_id: customer.into(),
        change: Change::Login { at: at(when) },
    };
    let password = Item {
        consumer: "auth.password_changed",
        event_id: "p1".into(),
        customer_id: "c-3".into(),
        change: Change::PasswordChange { changed_at: at("2026-11-24T08:00:00Z"), ip_address: None, user_agent: None },
    };
    let batch = vec![
        login("l1", "c-1", "2026-11-24T08:00:00Z"),
        order("o1", "o-1", "c-1", "EUR"),
        login("l0", "c-1", "2026-11-23T08:00:00Z"), // earlier: last_login_at keeps l1's
        order("o3", "o-3", "c-1", "USD"),           // c-1's totals are in EUR
        order("o1-c2", "o-1", "c-2", "EUR"),        // o-1 belongs to c-1
        login("l2", "c-2", "2026-11-24T09:00:00Z"), // c-2 exists through its login
        password.clone(),
        password,                            // the same event twice
        order("o1-c4", "o-1", "c-4", "EUR"), // refused: c-4 is not created
    ];
    for db in databases().await {
        let w = worker(&db).await;
        // A refusal (None) comes with its reason; the transaction commits the rest.
        let answers = |results: Vec<Result<Applied, String>>| -> Vec<Option<Applied>> {
            results.into_iter().map(Result::ok).collect()
        };
        let (done, duplicate) = (Some(Applied::Done), Some(Applied::Duplicate));
        let first = answers(w.store.write_transaction(&batch).await.unwrap());
        assert_eq!(first, vec![done, done, done, None, None, done, done, duplicate, None], "{}", db.label);
        let again = answers(w.store.write_transaction(&batch).await.unwrap());
        assert_eq!(again, vec![duplicate, duplicate, duplicate, None, None, duplicate, duplicate, duplicate, None]);

        let c1 = w.store.customer("c-1").await.unwrap().unwrap();
        assert_eq!((c1.order_count, c1.total_spent_minor), (1, 1000), "{}", db.label);
        assert_eq!(c1.last_login_at, Some(at("2026-11-24T08:00:00Z")));
        let c2 = w.store.customer("c-2").await.unwrap().unwrap();
        assert_eq!((c2.order_count, c2.last_login_at), (0, Some(at("2026-11-24T09:00:00Z"))));
        assert!(w.store.customer("c-3").await.unwrap().is_none(), "a password change creates no customer");
        assert!(w.store.customer("c-4").await.unwrap().is_none(), "{}", db.label);
        assert_eq!(w.store.count(Table::SecurityEvents).await.unwrap(), 1);
        // l1, o1, l0, l2, p1: the refused events left no claim.
        assert_eq!(w.store.count(Table::Inbox).await.unwrap(), 5, "{}", db.label);
    }
}
