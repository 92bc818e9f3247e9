//! No poison loops, no silent loss: every event that can never succeed is
//! dropped (dead-lettered) with its reason, alone, and leaves nothing behind;
//! its neighbours in a bulk request or a group commit are applied once. On
//! SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{TestDb, completed, databases, login, worker};
use customer_worker::store::{Backend, Store, Table};
use eventbus::testing::{CloudEvent, Settlement};
use serde_json::json;

const DLQ: &str = "order.completed.dlq";

fn dropped(topic: &str) -> Settlement {
    Settlement::DeadLettered(format!("{topic}.dlq"))
}

/// Makes the database itself refuse orders whose id starts with `poison`
/// (a constraint on PostgreSQL, a trigger on SQLite): data the contract
/// checks let through but the database will never store, as a value too long
/// for a column or an index would be.
async fn refuse_poison_orders(store: &Store) {
    let sql = match store.backend() {
        Backend::Postgres => "ALTER TABLE orders ADD CONSTRAINT no_poison CHECK (order_id NOT LIKE 'poison%')",
        Backend::Sqlite => {
            "CREATE TRIGGER no_poison BEFORE INSERT ON orders WHEN NEW.order_id LIKE 'poison%'
             BEGIN SELECT RAISE(ABORT, 'poison order'); END"
        }
    };
    sqlx::query(sql).execute(store.pool()).await.unwrap();
}

#[tokio::test]
async fn each_poison_event_is_dropped_naming_its_reason_and_changes_nothing() {
    for db in databases().await {
        let w = worker(&db).await;
        let s = &w.sidecar;
        let cases: Vec<(&str, &str, CloudEvent)> = vec![
            (
                "a 100 KB id",
                "order.completed",
                completed("o-1", "c-1", "10.00", "2026-11-20T10:00:00Z").id("e".repeat(100_000)),
            ),
            (
                "a NUL in the customer id",
                "order.completed",
                completed("o-2", "c-\u{0}1", "10.00", "2026-11-20T10:00:00Z"),
            ),
            ("a NUL in a login's customer id", "auth.login", login("c-\u{0}1", "2026-11-20T10:00:00Z")),
            ("a negative total", "order.completed", completed("o-3", "c-1", "-10.00", "2026-11-20T10:00:00Z")),
            (
                "currency ZZZ",
                "order.completed",
                CloudEvent::json(&json!({"order_id": "o-4", "customer_id": "c-1", "total_amount": "1.00",
                    "currency": "ZZZ", "completed_at": "2026-11-20T10:00:00Z"})),
            ),
            (
                "an amount beyond 64-bit minor units",
                "order.completed",
                completed("o-5", "c-1", "184467440737095516.16", "2026-11-20T10:00:00Z"),
            ),
            (
                "a control character in a user agent",
                "auth.password_changed",
                CloudEvent::json(
                    &json!({"customer_id": "c-1", "changed_at": "2026-11-20T10:00:00Z", "user_agent": "x\u{7}"}),
                ),
            ),
        ];
        for (what, topic, event) in cases {
            let delivery = s.publish(topic, event).await.unwrap();
            assert_eq!(delivery.settlement, dropped(topic), "{what} ({})", db.label);
        }
        for table in [Table::Inbox, Table::Customers, Table::Orders, Table::SecurityEvents] {
            assert_eq!(
                w.store.count(table).await.unwrap(),
                0,
                "{table:?} ({}): no row from an invalid event",
                db.label
            );
        }
    }
}

#[tokio::test]
async fn one_owner_per_order_and_the_conflicting_event_leaves_no_row() {
    for db in databases().await {
        let w = worker(&db).await;
        let s = &w.sidecar;
        let first =
            s.publish("order.completed", completed("o-1", "c-a", "20.00", "2026-11-20T10:00:00Z")).await.unwrap();
        assert_eq!(first.settlement, Settlement::Acked);
        let again =
            s.publish("order.completed", completed("o-1", "c-b", "20.00", "2026-11-20T10:00:00Z")).await.unwrap();
        assert_eq!(again.settlement, Settlement::DeadLettered(DLQ.into()), "{}", db.label);
        let cancelled = s
            .publish("order.cancelled", common::cancelled("o-1", "c-b", "20.00", "2026-11-21T10:00:00Z"))
            .await
            .unwrap();
        assert_eq!(cancelled.settlement, dropped("order.cancelled"));
        let a = w.store.customer("c-a").await.unwrap().unwrap();
        assert_eq!((a.order_count, a.total_spent_minor, a.cancelled_count), (1, 2000, 0), "{}", db.label);
        assert!(w.store.customer("c-b").await.unwrap().is_none(), "no customer row from a refused event");
    }
}

#[tokio::test]
async fn a_bad_entry_in_a_bulk_request_fails_alone() {
    for db in databases().await {
        let w = worker(&db).await;
        refuse_poison_orders(&w.store).await;
        let mut events: Vec<CloudEvent> =
            (0..40).map(|i| completed(&format!("o-{i}"), "c-1", "1.00", "2026-11-20T10:00:00Z")).collect();
        events[7] = completed("o-7", "c-\u{0}", "1.00", "2026-11-20T10:00:00Z"); // the contract refuses it
        events[23] = completed("poison-23", "c-1", "1.00", "2026-11-20T10:00:00Z"); // the database refuses it
        let deliveries = w.sidecar.publish_bulk("order.completed", events).await.unwrap();
        for (i, delivery) in deliveries.iter().enumerate() {
            let want = if i == 7 || i == 23 { Settlement::DeadLettered(DLQ.into()) } else { Settlement::Acked };
            assert_eq!(delivery.settlement, want, "entry {i} ({})", db.label);
            assert_eq!(delivery.attempts.len(), 1, "entry {i}: answered at the first delivery");
        }
        let c = w.store.customer("c-1").await.unwrap().unwrap();
        assert_eq!((c.order_count, c.total_spent_minor), (38, 3800), "{}", db.label);
        assert_eq!(w.store.count(Table::Inbox).await.unwrap(), 38);
    }
}

#[tokio::test]
async fn a_refused_event_among_concurrent_single_events_fails_alone() {
    for db in databases().await {
        let w = worker(&db).await;
        refuse_poison_orders(&w.store).await;
        let sidecar = Arc::new(w.sidecar.max_attempts(1));
        let mut tasks = Vec::new();
        for i in 0..120 {
            let sidecar = sidecar.clone();
            let order = if i == 60 { "poison-60".to_owned() } else { format!("o-{i}") };
            tasks.push(tokio::spawn(async move {
                let event = common::cancelled(&order, &format!("c-{}", i % 7), "3.00", "2026-11-21T10:00:00Z");
                (i, sidecar.publish("order.cancelled", event).await.unwrap().settlement)
            }));
        }
        for task in tasks {
            let (i, settlement) = task.await.unwrap();
            let want = if i == 60 { dropped("order.cancelled") } else { Settlement::Acked };
            assert_eq!(settlement, want, "event {i} ({})", db.label);
        }
        assert_eq!(w.store.count(Table::Orders).await.unwrap(), 119, "{}", db.label);
    }
}

#[tokio::test]
async fn a_bulk_request_of_ten_thousand_distinct_customers_is_written_in_chunks() {
    for db in databases().await {
        let w = worker(&db).await;
        let events: Vec<CloudEvent> = (0..10_000)
            .map(|i| completed(&format!("o-{i}"), &format!("c-{i}"), "1.00", "2026-11-20T10:00:00Z"))
            .collect();
        let deliveries = w.sidecar.publish_bulk("order.completed", events).await.unwrap();
        assert!(deliveries.iter().all(|d| d.settlement == Settlement::Acked), "{}: {:?}", db.label, deliveries[0]);
        assert_eq!(w.store.count(Table::Customers).await.unwrap(), 10_000, "{}", db.label);
        assert_eq!(w.store.count(Table::Inbox).await.unwrap(), 10_000);
    }
}

/// A small deterministic generator.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// What an entry of a generated batch is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Good,
    /// Refused by the contract checks (a negative amount).
    Invalid,
    /// Refused by the database (see [`refuse_poison_orders`]).
    Refused,
}

/// Any mix of good and bad entries, in bulk requests and concurrent single
/// events, each delivered once or twice: every good entry is applied exactly
/// once, every bad one dropped, and the totals match a model computed here.
#[tokio::test]
async fn any_mix_of_good_and_bad_entries_applies_every_good_one_exactly_once() {
    for db in databases().await {
        run_mixes(&db).await;
    }
}

async fn run_mixes(db: &TestDb) {
    let w = worker(db).await;
    refuse_poison_orders(&w.store).await;
    let sidecar = Arc::new(w.sidecar.max_attempts(1));
    let mut rng = Lcg(7);
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut good_events = 0;
    let mut next_order = 0;
    for round in 0..12 {
        let size = 1 + rng.below(if round % 4 == 3 { 600 } else { 60 }) as usize;
        let mut batch = Vec::with_capacity(size);
        for _ in 0..size {
            next_order += 1;
            let kind = match rng.below(10) {
                0 => Kind::Invalid,
                1 => Kind::Refused,
                _ => Kind::Good,
            };
            let customer = format!("c-{}", rng.below(30));
            let cents = 1 + rng.below(10_000) as i64;
            let (order, amount) = match kind {
                Kind::Good => (format!("o-{next_order}"), cents),
                Kind::Invalid => (format!("o-{next_order}"), -cents),
                Kind::Refused => (format!("poison-{next_order}"), cents),
            };
            let text = format!("{}{}.{:02}", if amount < 0 { "-" } else { "" }, amount.abs() / 100, amount.abs() % 100);
            let event = completed(&order, &customer, &text, "2026-11-20T10:00:00Z").id(format!("e-{next_order}"));
            if kind == Kind::Good {
                let figures = expected.entry(customer).or_default();
                figures.0 += 1;
                figures.1 += amount;
                good_events += 1;
            }
            batch.push((kind, event));
        }
        // Some entries twice (a redelivery), in another request.
        let again: Vec<(Kind, CloudEvent)> = batch.iter().filter(|_| rng.below(5) == 0).cloned().collect();
        let bulk = round % 2 == 0;
        for part in [batch, again] {
            let kinds: Vec<Kind> = part.iter().map(|(k, _)| *k).collect();
            let settlements: Vec<Settlement> = if bulk {
                let events = part.into_iter().map(|(_, e)| e).collect();
                sidecar
                    .publish_bulk("order.completed", events)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|d| d.settlement)
                    .collect()
            } else {
                let tasks: Vec<_> = part
                    .into_iter()
                    .map(|(_, event)| {
                        let sidecar = sidecar.clone();
                        tokio::spawn(async move { sidecar.publish("order.completed", event).await.unwrap().settlement })
                    })
                    .collect();
                let mut settlements = Vec::new();
                for task in tasks {
                    settlements.push(task.await.unwrap());
                }
                settlements
            };
            for (kind, settlement) in kinds.iter().zip(settlements) {
                let want = if *kind == Kind::Good { Settlement::Acked } else { Settlement::DeadLettered(DLQ.into()) };
                assert_eq!(settlement, want, "round {round}, {kind:?} ({})", db.label);
            }
        }
    }
    for (customer, (orders, spent)) in &expected {
        let c = w.store.customer(customer).await.unwrap().unwrap();
        assert_eq!((c.order_count, c.total_spent_minor), (*orders, *spent), "{customer} ({})", db.label);
    }
    assert_eq!(w.store.count(Table::Inbox).await.unwrap(), good_events, "each good entry once ({})", db.label);
    assert_eq!(w.store.count(Table::Orders).await.unwrap(), good_events, "no order row from a bad entry");
}

/// Two copies of one refused event in one batch (as a redelivery after a
/// crash lands beside the original) are both answered `DROP`, for each rule
/// that refuses an order event; on the bulk path and through group commit.
/// (The fourth rule, totals within 64 bits, cannot be reached through the
/// contract, which caps an amount at `MAX_AMOUNT_MINOR`.)
#[tokio::test]
async fn every_copy_of_a_refused_event_in_one_batch_is_dropped() {
    let at = "2026-11-20T10:00:00Z";
    let usd = |order: &str, customer: &str| {
        CloudEvent::json(&json!({"order_id": order, "customer_id": customer, "total_amount": "5.00",
            "currency": "USD", "completed_at": at}))
    };
    /// A topic and an event for it.
    type Published = (&'static str, CloudEvent);
    // (rule, what is stored first, the refused event)
    let rules: [(&str, Published, Published); 3] = [
        (
            "one owner per order",
            ("order.completed", completed("o-owned", "c-a", "20.00", at)),
            ("order.completed", completed("o-owned", "c-b", "20.00", at)),
        ),
        (
            "one currency per customer",
            ("order.completed", completed("o-eur", "c-eur", "20.00", at)),
            ("order.completed", usd("o-usd", "c-eur")),
        ),
        (
            "refunds within the order",
            ("order.completed", completed("o-small", "c-r", "109.85", at)),
            ("order.returned", common::returned("o-small", "c-r", "114.08", at)),
        ),
    ];
    for db in databases().await {
        let w = worker(&db).await;
        let s = &w.sidecar;
        for (n, (rule, stored, (topic, refused))) in rules.iter().enumerate() {
            let (stored_topic, stored) = stored;
            assert_eq!(s.publish(stored_topic, stored.clone()).await.unwrap().settlement, Settlement::Acked, "{rule}");
            let before = w.store.count(Table::Inbox).await.unwrap();
            // Bulk: both copies, and a valid neighbour, in one request.
            let copy = refused.clone().id(format!("refused-bulk-{n}"));
            let fine = format!("o-fine-{n}");
            let neighbour = match *topic {
                "order.returned" => common::returned(&fine, "c-fine", "1.00", at),
                _ => completed(&fine, "c-fine", "1.00", at),
            };
            let answers = s.publish_bulk(topic, vec![copy.clone(), neighbour, copy]).await.unwrap();
            let settlements: Vec<_> = answers.iter().map(|d| d.settlement.clone()).collect();
            assert_eq!(settlements, [dropped(topic), Settlement::Acked, dropped(topic)], "{rule}, bulk ({})", db.label);
            // Group commit: both copies as single events at once.
            let copy = refused.clone().id(format!("refused-single-{n}"));
            let (first, second) = tokio::join!(s.publish(topic, copy.clone()), s.publish(topic, copy));
            for delivery in [first.unwrap(), second.unwrap()] {
                assert_eq!(delivery.settlement, dropped(topic), "{rule}, single ({})", db.label);
            }
            assert_eq!(w.store.count(Table::Inbox).await.unwrap(), before + 1, "{rule}: only the neighbour's claim");
        }
    }
}
