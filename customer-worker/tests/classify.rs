//! Database errors classified from the real databases: what the data caused
//! is permanent, what may pass is transient. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use common::{config, databases};
use customer_worker::store::classify::{ErrorKind, classify};
use customer_worker::store::{Backend, Store};

async fn error_of(store: &Store, sql: &str, text: &str) -> sqlx::Error {
    sqlx::query(sql).bind(text).execute(store.pool()).await.unwrap_err()
}

#[tokio::test]
async fn errors_caused_by_data_are_permanent_and_the_rest_transient() {
    for db in databases().await {
        let store = Store::connect(&config(&db).data.database).await.unwrap();
        let backend = store.backend();
        sqlx::query("INSERT INTO inbox (consumer, event_id, processed_at) VALUES ('t', 'e-1', 0)")
            .execute(store.pool())
            .await
            .unwrap();
        // A second row with the same key, without ON CONFLICT: a constraint violation.
        let duplicate =
            error_of(&store, "INSERT INTO inbox (consumer, event_id, processed_at) VALUES ('t', $1, 0)", "e-1").await;
        assert_eq!(classify(backend, &duplicate), ErrorKind::Permanent, "{}: {duplicate}", db.label);
        // NULL where the schema forbids it.
        let not_null = sqlx::query("INSERT INTO inbox (consumer, event_id, processed_at) VALUES ('t', NULL, 0)")
            .execute(store.pool())
            .await
            .unwrap_err();
        assert_eq!(classify(backend, &not_null), ErrorKind::Permanent, "{}: {not_null}", db.label);
        if backend == Backend::Postgres {
            // A NUL character: PostgreSQL text cannot hold it (22021).
            let nul =
                error_of(&store, "INSERT INTO inbox (consumer, event_id, processed_at) VALUES ('t', $1, 0)", "a\u{0}b")
                    .await;
            assert_eq!(classify(backend, &nul), ErrorKind::Permanent, "{nul}");
            // An id too large for the primary key's index (54000).
            // Not compressible, so the index cannot store it.
            let mut seed = 1u64;
            let huge: String = (0..100_000)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    char::from(b'a' + (seed >> 59) as u8)
                })
                .collect();
            let too_big =
                error_of(&store, "INSERT INTO inbox (consumer, event_id, processed_at) VALUES ('t', $1, 0)", &huge)
                    .await;
            assert_eq!(classify(backend, &too_big), ErrorKind::Permanent, "{too_big}");
            // 64-bit overflow (22003).
            let overflow =
                sqlx::query("SELECT 9223372036854775807::bigint + 1").execute(store.pool()).await.unwrap_err();
            assert_eq!(classify(backend, &overflow), ErrorKind::Permanent, "{overflow}");
        }
        // The database gone: transient.
        store.close().await;
        let closed = sqlx::query("SELECT 1").execute(store.pool()).await.unwrap_err();
        assert_eq!(classify(backend, &closed), ErrorKind::Transient, "{}: {closed}", db.label);
    }
}
