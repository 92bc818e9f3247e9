//! `customer-worker customer ID`: a customer's figures.

use crate::config::Config;
use crate::store::Store;

/// Prints the figures of customer `id`; fails when there is none.
pub async fn run(config: &Config, id: &str) -> anyhow::Result<()> {
    crate::telemetry::init(config, "warn")?;
    let store = Store::connect(&config.data.database).await?;
    match store.customer(id).await? {
        Some(customer) => println!("{}", crate::describe_customer(&customer)),
        None => anyhow::bail!("no customer {id:?}"),
    }
    Ok(())
}
