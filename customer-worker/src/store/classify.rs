//! Which database errors are worth retrying.
//!
//! An error caused by the data of an event fails the same way on every
//! delivery, so retrying it is a poison loop: it is *permanent* and the event
//! is dropped to its dead-letter topic. Everything that can succeed later
//! (connections, timeouts, serialization failures, deadlocks, locks, a
//! database refusing connections for a while) is *transient*.
//!
//! | database | permanent |
//! |---|---|
//! | PostgreSQL | SQLSTATE class `22` (data exception: bad encoding, value too long, numeric overflow, NUL in text), class `23` (integrity constraint), `54000` (program limit, e.g. an index row too large) |
//! | SQLite | primary result codes `SQLITE_TOOBIG` (18), `SQLITE_CONSTRAINT` (19), `SQLITE_MISMATCH` (20) |
//! | both | a value the driver cannot encode |
//!
//! The inbox's own duplicate key never gets here: it is claimed with
//! `ON CONFLICT DO NOTHING`.

use crate::store::Backend;

/// Whether an error can pass on another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// It may pass: retry.
    Transient,
    /// The data causes it: it fails the same way on every try.
    Permanent,
}

/// How `error` from `backend` should be answered.
pub fn classify(backend: Backend, error: &sqlx::Error) -> ErrorKind {
    match error {
        sqlx::Error::Database(database) => match (backend, database.code()) {
            (Backend::Postgres, Some(code)) if is_permanent_sqlstate(&code) => ErrorKind::Permanent,
            (Backend::Sqlite, Some(code)) if is_permanent_sqlite(&code) => ErrorKind::Permanent,
            _ => ErrorKind::Transient,
        },
        sqlx::Error::Encode(_) => ErrorKind::Permanent,
        _ => ErrorKind::Transient,
    }
}

fn is_permanent_sqlstate(code: &str) -> bool {
    code.starts_with("22") || code.starts_with("23") || code == "54000"
}

/// sqlx reports SQLite's extended result code; its low byte is the primary code.
fn is_permanent_sqlite(code: &str) -> bool {
    const TOOBIG: i64 = 18;
    const CONSTRAINT: i64 = 19;
    const MISMATCH: i64 = 20;
    code.parse::<i64>().is_ok_and(|extended| matches!(extended & 0xff, TOOBIG | CONSTRAINT | MISMATCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates() {
        for permanent in ["22021", "22001", "22003", "22P05", "23505", "23502", "54000"] {
            assert!(is_permanent_sqlstate(permanent), "{permanent}");
        }
        for transient in ["40001", "40P01", "55P03", "57P01", "08006", "53300", "55000", "42601"] {
            assert!(!is_permanent_sqlstate(transient), "{transient}");
        }
    }

    #[test]
    fn sqlite_codes() {
        for permanent in ["19", "2067", "1299", "787", "18", "20"] {
            assert!(is_permanent_sqlite(permanent), "{permanent}");
        }
        for transient in ["5", "6", "261", "517", "10", "1", "14"] {
            assert!(!is_permanent_sqlite(transient), "{transient}");
        }
    }

    #[test]
    fn non_database_errors_are_transient_except_encoding() {
        assert_eq!(classify(Backend::Postgres, &sqlx::Error::PoolTimedOut), ErrorKind::Transient);
        assert_eq!(classify(Backend::Sqlite, &sqlx::Error::PoolClosed), ErrorKind::Transient);
        assert_eq!(classify(Backend::Postgres, &sqlx::Error::Encode("bad".into())), ErrorKind::Permanent);
    }
}
