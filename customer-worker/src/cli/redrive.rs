//! `customer-worker redrive`: dead letters listed, and with `--apply`
//! published again to their topics.

use crate::config::Config;
use crate::store::Store;

/// Lists (and with `options.apply`, re-drives) the chosen dead letters;
/// fails when one could not be re-driven.
pub async fn run(config: &Config, options: crate::redrive::Options) -> anyhow::Result<()> {
    crate::telemetry::init(config, "warn")?;
    let store = Store::connect(&config.data.database).await?;
    let summary = crate::redrive::run(config, &store, &options, &mut std::io::stdout().lock()).await?;
    let verb = if options.apply { "re-driven" } else { "would be re-driven (dry run: add --apply)" };
    println!(
        "\n{} dead letters: {} chosen, {} {verb}, {} failed",
        summary.seen,
        summary.chosen,
        if options.apply { summary.redriven } else { summary.chosen },
        summary.failed
    );
    if summary.failed > 0 {
        anyhow::bail!("{} dead letters could not be re-driven (see the lines above)", summary.failed);
    }
    Ok(())
}
