//! A thousand events, each delivered twice, in shuffled order and
//! concurrently (enough in flight for PostgreSQL's spare writers to run
//! beside each other): the totals are exact, and no delivery needed a retry
//! (a deadlock between two transactions would have cost one).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{cancelled, completed, databases, login, returned, worker};
use customer_worker::store::Table;
use eventbus::testing::{CloudEvent, Settlement};

/// A small deterministic generator (no `rand` needed for a shuffle).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[derive(Default, Debug, PartialEq, Eq)]
struct Expected {
    orders: i64,
    spent: i64,
    cancelled: i64,
    returns: i64,
    last_login: Option<String>,
}

#[tokio::test]
async fn thousand_events_delivered_twice_shuffled_give_exact_totals() {
    for db in databases().await {
        let w = worker(&db).await;
        let mut rng = Lcg(42);
        let mut events: Vec<(&'static str, CloudEvent)> = Vec::new();
        let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
        // 770 orders over 25 customers: every one completed; every 5th also
        // cancelled; every 7th (not cancelled) returned in part.
        for n in 0..770u64 {
            let customer = format!("c-{:02}", n % 25);
            let order = format!("o-{n}");
            let cents = 100 + (rng.next() % 90_000) as i64;
            let amount = format!("{}.{:02}", cents / 100, cents % 100);
            let e = expected.entry(customer.clone()).or_default();
            if n % 3 == 0 {
                // Logins of the same customers, in the same transactions as their orders.
                let at = format!("2026-11-{:02}T08:00:00Z", 1 + n % 28);
                events.push(("auth.login", login(&customer, &at).id(format!("login-{n}"))));
                e.last_login = e.last_login.clone().max(Some(at));
            }
            events.push((
                "order.completed",
                completed(&order, &customer, &amount, "2026-11-20T10:00:00Z").id(format!("done-{n}")),
            ));
            if n % 5 == 0 {
                events.push((
                    "order.cancelled",
                    cancelled(&order, &customer, &amount, "2026-11-21T10:00:00Z").id(format!("cancel-{n}")),
                ));
                e.cancelled += 1;
            } else if n % 7 == 0 {
                let refund = cents / 3;
                let text = format!("{}.{:02}", refund / 100, refund % 100);
                events.push((
                    "order.returned",
                    returned(&order, &customer, &text, "2026-11-22T10:00:00Z").id(format!("ret-{n}")),
                ));
                e.orders += 1;
                e.spent += cents - refund;
                e.returns += 1;
            } else {
                e.orders += 1;
                e.spent += cents;
            }
        }
        assert!(events.len() >= 1000, "{} events", events.len());
        // Every event twice, shuffled (Fisher-Yates).
        let mut deliveries: Vec<_> = events.iter().cloned().chain(events.iter().cloned()).collect();
        for i in (1..deliveries.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            deliveries.swap(i, j);
        }
        // 64 deliveries in flight at a time; retries as the sidecar would.
        let sidecar = Arc::new(w.sidecar.max_attempts(5));
        let chunks: Vec<Vec<(&'static str, CloudEvent)>> =
            deliveries.chunks(deliveries.len().div_ceil(64)).map(<[_]>::to_vec).collect();
        let mut tasks = Vec::new();
        for chunk in chunks {
            let sidecar = sidecar.clone();
            tasks.push(tokio::spawn(async move {
                for (topic, event) in chunk {
                    let delivery = sidecar.publish(topic, event).await.unwrap();
                    assert_eq!(delivery.settlement, Settlement::Acked, "{delivery:?}");
                    assert_eq!(delivery.attempts.len(), 1, "applied at the first attempt: {delivery:?}");
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        for (customer, want) in &expected {
            let c = w.store.customer(customer).await.unwrap().unwrap();
            let got = Expected {
                orders: c.order_count,
                spent: c.total_spent_minor,
                cancelled: c.cancelled_count,
                returns: c.returned_count,
                last_login: c.last_login_at.map(|t| {
                    chrono::DateTime::from_timestamp_millis(t)
                        .unwrap()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                }),
            };
            assert_eq!(&got, want, "{} {customer}", db.label);
        }
        let logins = events.iter().filter(|(topic, _)| *topic == "auth.login").count();
        assert_eq!(w.store.count(Table::Inbox).await.unwrap(), events.len() as i64, "{}", db.label);
        assert!(logins > 0, "the stream has logins");
    }
}
