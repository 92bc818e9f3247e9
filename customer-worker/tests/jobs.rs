//! Each job on fixture data, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{Duration, SecondsFormat, Utc};
use common::{completed, config, databases, login, worker};
use customer_worker::jobs::{JobKind, JobReport, Jobs};
use customer_worker::store::{Table, millis};
use tokio_util::sync::CancellationToken;

fn ago(days: i64) -> String {
    (Utc::now() - Duration::days(days)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tokio::test]
async fn segments_follow_the_configured_rules() {
    for db in databases().await {
        let w = worker(&db).await;
        let s = &w.sidecar;
        // vip: 10 orders, 1000.00 spent, recent.
        for n in 0..10 {
            s.publish("order.completed", completed(&format!("v-{n}"), "c-vip", "100.00", &ago(1))).await.unwrap();
        }
        // at risk: last order 120 days ago.
        s.publish("order.completed", completed("r-1", "c-risk", "20.00", &ago(120))).await.unwrap();
        // A customer that is new (first seen now) with no orders.
        s.publish("auth.login", login("c-new", &ago(0))).await.unwrap();
        // Back-date the at-risk customer's creation so only `at_risk` applies.
        sqlx::query("UPDATE customers SET created_at = $1 WHERE customer_id = 'c-risk'")
            .bind(millis(Utc::now() - Duration::days(200)))
            .execute(w.store.pool())
            .await
            .unwrap();

        let mut config = config(&db);
        config.jobs.batch_size = 2; // several keyset pages
        let jobs = Jobs::new(w.store.clone(), config).unwrap();
        let report = jobs.run(JobKind::Segments, &CancellationToken::new()).await.unwrap();
        assert_eq!(report, JobReport::Ran { rows: 4, complete: true }, "{}", db.label);
        let segments = |id: &'static str| {
            let store = w.store.clone();
            async move { store.customer(id).await.unwrap().unwrap().segments }
        };
        assert_eq!(segments("c-vip").await, vec!["new", "vip"], "{}", db.label);
        assert_eq!(segments("c-risk").await, vec!["at_risk"]);
        assert_eq!(segments("c-new").await, vec!["new"]);

        // Re-running replaces, not duplicates.
        jobs.run(JobKind::Segments, &CancellationToken::new()).await.unwrap();
        assert_eq!(segments("c-vip").await, vec!["new", "vip"]);
    }
}

#[tokio::test]
async fn segments_stop_between_batches_when_cancelled() {
    for db in databases().await {
        let w = worker(&db).await;
        w.sidecar.publish("auth.login", login("c-1", &ago(0))).await.unwrap();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let jobs = Jobs::new(w.store.clone(), config(&db)).unwrap();
        assert_eq!(jobs.run(JobKind::Segments, &cancel).await.unwrap(), JobReport::Ran { rows: 0, complete: false });
    }
}

#[tokio::test]
async fn stats_aggregate_today() {
    for db in databases().await {
        let w = worker(&db).await;
        let s = &w.sidecar;
        s.publish("order.completed", completed("o-1", "c-1", "10.00", &ago(0))).await.unwrap();
        s.publish("order.completed", completed("o-2", "c-2", "2.50", &ago(0))).await.unwrap();
        s.publish("order.completed", completed("o-old", "c-2", "99.00", &ago(5))).await.unwrap();
        s.publish("auth.login", login("c-1", &ago(0))).await.unwrap();
        let jobs = Jobs::new(w.store.clone(), config(&db)).unwrap();
        jobs.run(JobKind::Stats, &CancellationToken::new()).await.unwrap();
        let today = Utc::now().format("%Y-%m-%d").to_string();
        let stats = w.store.daily_stats(&today).await.unwrap().unwrap();
        assert_eq!(
            (stats.customers, stats.new_customers, stats.orders_completed, stats.revenue_minor, stats.logins),
            (2, 2, 2, 1250, 1),
            "{}",
            db.label
        );
        assert_eq!(w.store.count(Table::DailyStats).await.unwrap(), 2, "yesterday and today");
    }
}

#[tokio::test]
async fn cleanup_deletes_rows_past_retention_only() {
    for db in databases().await {
        let w = worker(&db).await;
        let old = millis(Utc::now() - Duration::days(400));
        let recent = millis(Utc::now() - Duration::days(1));
        for n in 0..5 {
            sqlx::query("INSERT INTO inbox (consumer, event_id, processed_at) VALUES ('t', $1, $2)")
                .bind(format!("old-{n}"))
                .bind(old)
                .execute(w.store.pool())
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO security_events (event_id, customer_id, kind, occurred_at, recorded_at) VALUES ($1, 'c', 'password_changed', $2, $2)",
            )
            .bind(format!("sec-{n}"))
            .bind(old)
            .execute(w.store.pool())
            .await
            .unwrap();
        }
        sqlx::query("INSERT INTO inbox (consumer, event_id, processed_at) VALUES ('t', 'recent', $1)")
            .bind(recent)
            .execute(w.store.pool())
            .await
            .unwrap();
        let mut config = config(&db);
        config.jobs.batch_size = 2;
        let jobs = Jobs::new(w.store.clone(), config).unwrap();
        let report = jobs.run(JobKind::Cleanup, &CancellationToken::new()).await.unwrap();
        assert_eq!(report, JobReport::Ran { rows: 10, complete: true }, "{}", db.label);
        assert_eq!(w.store.count(Table::Inbox).await.unwrap(), 1);
        assert_eq!(w.store.count(Table::SecurityEvents).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn jobs_can_be_triggered_by_the_dapr_scheduler() {
    for db in databases().await {
        let w = worker(&db).await;
        w.sidecar.publish("order.completed", completed("o-1", "c-1", "10.00", &ago(0))).await.unwrap();
        w.sidecar.trigger_job("stats", b"").await.unwrap();
        assert_eq!(w.store.count(Table::DailyStats).await.unwrap(), 2, "{}", db.label);
        assert_eq!(w.sidecar.trigger_job("nightly", b"").await.unwrap_err().code(), eventbus::status::Code::NotFound);
    }
}

#[tokio::test]
async fn one_run_per_tick_across_replicas_on_postgres() {
    for db in databases().await {
        if db.label != "postgres" {
            continue; // SQLite is single-process
        }
        let w = worker(&db).await;
        // Another replica holds the segments lock.
        let mut other = w.store.pool().acquire().await.unwrap();
        let key: i64 = 0x6377_6f72_6b00; // JobKind::Segments
        sqlx::query("SELECT pg_advisory_lock($1)").bind(key).execute(&mut *other).await.unwrap();
        let jobs = Jobs::new(w.store.clone(), config(&db)).unwrap();
        assert_eq!(jobs.run(JobKind::Segments, &CancellationToken::new()).await.unwrap(), JobReport::Skipped);
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(key).execute(&mut *other).await.unwrap();
        assert!(matches!(jobs.run(JobKind::Segments, &CancellationToken::new()).await.unwrap(), JobReport::Ran { .. }));
    }
}
