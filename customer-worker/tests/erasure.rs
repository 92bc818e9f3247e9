//! `customer.deleted` (GDPR erasure) on SQLite and PostgreSQL, through the
//! worker's real gRPC server and the test sidecar: personal data removed,
//! figures kept under an anonymous key, idempotent, later events dropped.
#![allow(clippy::unwrap_used)]

mod common;

use common::{completed, databases, login, worker};
use customer_worker::customers::anonymous_id;
use customer_worker::store::Table;
use eventbus::testing::{CloudEvent, Settlement};

fn deleted(customer: &str, at: &str) -> CloudEvent {
    CloudEvent::json(&serde_json::json!({"customer_id": customer, "deleted_at": at}))
}

fn password_changed(customer: &str) -> CloudEvent {
    CloudEvent::json(&serde_json::json!({
        "customer_id": customer, "changed_at": "2026-11-21T09:00:00Z",
        "ip_address": "203.0.113.7", "user_agent": "Firefox"
    }))
}

#[tokio::test]
async fn an_erased_customer_keeps_anonymous_figures_and_their_later_events_are_dropped() {
    for db in databases().await {
        let w = worker(&db).await;
        let s = &w.sidecar;
        s.publish("order.completed", completed("o-1", "c-1", "100.00", "2026-11-20T10:00:00Z")).await.unwrap();
        s.publish("auth.login", login("c-1", "2026-11-21T08:00:00Z")).await.unwrap();
        s.publish("auth.password_changed", password_changed("c-1")).await.unwrap();
        s.publish("order.completed", completed("o-2", "c-2", "5.00", "2026-11-20T10:00:00Z")).await.unwrap();
        s.publish("auth.password_changed", password_changed("c-2")).await.unwrap();

        let erased = s.publish("customer.deleted", deleted("c-1", "2026-11-22T10:00:00Z").id("erase-1")).await.unwrap();
        assert_eq!(erased.settlement, Settlement::Acked, "{}", db.label);
        assert!(w.store.customer("c-1").await.unwrap().is_none(), "{}", db.label);
        let anonymous = w.store.customer(&anonymous_id("erase-1")).await.unwrap().unwrap();
        assert_eq!((anonymous.order_count, anonymous.total_spent_minor), (1, 10000), "the figures stay");
        assert_eq!(anonymous.last_login_at, None, "{}", db.label);
        assert_eq!(w.store.count(Table::SecurityEvents).await.unwrap(), 1, "only c-2's is left");
        assert_eq!(w.store.count(Table::Orders).await.unwrap(), 2, "{}", db.label);

        // Idempotent: erasing again (another event id, or the same event) changes nothing.
        for id in ["erase-2", "erase-1"] {
            let again = s.publish("customer.deleted", deleted("c-1", "2026-11-22T11:00:00Z").id(id)).await.unwrap();
            assert_eq!(again.settlement, Settlement::Acked, "{id} {}", db.label);
        }
        assert_eq!(w.store.count(Table::Customers).await.unwrap(), 2, "{}", db.label);
        assert!(w.store.customer(&anonymous_id("erase-2")).await.unwrap().is_none());

        // Later events for c-1 are dropped with the reason, and create nothing.
        for (topic, event) in [
            ("auth.login", login("c-1", "2026-11-23T08:00:00Z")),
            ("order.completed", completed("o-3", "c-1", "7.00", "2026-11-23T10:00:00Z")),
            ("auth.password_changed", password_changed("c-1")),
        ] {
            let late = s.publish(topic, event).await.unwrap();
            assert_eq!(late.settlement, Settlement::DeadLettered(format!("{topic}.dlq")), "{topic} {}", db.label);
        }
        assert!(w.store.customer("c-1").await.unwrap().is_none(), "{}", db.label);
        assert_eq!(w.store.count(Table::Orders).await.unwrap(), 2, "{}", db.label);
        assert_eq!(w.store.count(Table::SecurityEvents).await.unwrap(), 1, "{}", db.label);

        // Another customer is untouched; a customer never seen can be erased too.
        let c2 = w.store.customer("c-2").await.unwrap().unwrap();
        assert_eq!((c2.order_count, c2.total_spent_minor), (1, 500), "{}", db.label);
        let unknown = s.publish("customer.deleted", deleted("c-404", "2026-11-22T10:00:00Z")).await.unwrap();
        assert_eq!(unknown.settlement, Settlement::Acked, "{}", db.label);
        let after = s.publish("auth.login", login("c-404", "2026-11-23T08:00:00Z")).await.unwrap();
        assert_eq!(after.settlement, Settlement::DeadLettered("auth.login.dlq".into()), "{}", db.label);
    }
}

#[tokio::test]
async fn an_erasure_that_breaks_the_contract_is_dropped() {
    for db in databases().await {
        let w = worker(&db).await;
        let no_time = CloudEvent::json(&serde_json::json!({"customer_id": "c-1"}));
        let dropped = w.sidecar.publish("customer.deleted", no_time).await.unwrap();
        assert_eq!(dropped.settlement, Settlement::DeadLettered("customer.deleted.dlq".into()), "{}", db.label);
        let no_id = deleted("", "2026-11-22T10:00:00Z");
        let dropped = w.sidecar.publish("customer.deleted", no_id).await.unwrap();
        assert_eq!(dropped.settlement, Settlement::DeadLettered("customer.deleted.dlq".into()), "{}", db.label);
    }
}
