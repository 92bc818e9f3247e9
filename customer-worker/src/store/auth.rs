//! The auth events' statements: logins and password changes, each written
//! with its inbox claim through group commit ([`Store::apply`]).

use super::{Applied, Store, StoreError, Tx, now_millis};

/// A password change as stored in `security_events`.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    pub customer_id: String,
    pub changed_at: i64,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

impl Store {
    /// `last_login_at` becomes the later of the stored time and `at` (epoch ms).
    pub async fn record_login(&self, event_id: &str, customer_id: &str, at: i64) -> Result<Applied, StoreError> {
        let customer = customer_id.to_owned();
        self.apply("auth.login", event_id, customer_id, move |tx| {
            let customer = customer.clone();
            Box::pin(async move {
                lock_customer(tx, &customer).await?;
                sqlx::query(
                    "UPDATE customers SET
                       last_login_at = CASE WHEN last_login_at IS NULL OR last_login_at < $2 THEN $2 ELSE last_login_at END
                     WHERE customer_id = $1",
                )
                .bind(&customer)
                .bind(at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// A `password_changed` row in `security_events`.
    pub async fn record_password_change(&self, event_id: &str, change: PasswordChange) -> Result<Applied, StoreError> {
        let id = event_id.to_owned();
        let customer = change.customer_id.clone();
        self.apply("auth.password_changed", event_id, &customer, move |tx| {
            let (change, id) = (change.clone(), id.clone());
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO security_events (event_id, customer_id, kind, occurred_at, ip_address, user_agent, recorded_at)
                     VALUES ($1, $2, 'password_changed', $3, $4, $5, $6)
                     ON CONFLICT (event_id) DO NOTHING",
                )
                .bind(&id)
                .bind(&change.customer_id)
                .bind(change.changed_at)
                .bind(change.ip_address.as_deref())
                .bind(change.user_agent.as_deref())
                .bind(now_millis())
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await
    }
}

/// Creates the customer row if needed and returns its currency. On
/// PostgreSQL this also locks the row until commit, so events of one customer
/// from several replicas apply one after the other.
async fn lock_customer(tx: &mut Tx, customer_id: &str) -> Result<Option<String>, StoreError> {
    let now = now_millis();
    let (currency,): (Option<String>,) = sqlx::query_as(
        "INSERT INTO customers (customer_id, created_at, updated_at) VALUES ($1, $2, $2)
         ON CONFLICT (customer_id) DO UPDATE SET updated_at = excluded.updated_at
         RETURNING currency",
    )
    .bind(customer_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(currency)
}
