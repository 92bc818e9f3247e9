//! `customer-worker run-job JOB`: one job, now.

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::jobs::{JobKind, Jobs};
use crate::store::Store;

/// Runs `job` once and prints its report.
pub async fn run(config: Config, job: JobKind) -> anyhow::Result<()> {
    let traces = crate::telemetry::init(&config, &config.log.level)?;
    let store = Store::connect(&config.data.database).await?;
    let report = Jobs::new(store, config)?.run(job, &CancellationToken::new()).await?;
    println!("{job}: {report:?}");
    if let Some(traces) = traces {
        let _ = traces.shutdown();
    }
    Ok(())
}
