//! `customer-worker replay FILE`: CloudEvents (structured JSON, one a
//! line) through the consumers, each outcome printed.

use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::config::Config;
use crate::jobs::Jobs;
use crate::store::Store;

/// What the command line asked for.
#[derive(Debug)]
pub struct Args {
    /// The file; `-` for standard input.
    pub file: PathBuf,
    /// Consecutive events of one topic handled together.
    pub batch: usize,
    /// Only the summary.
    pub quiet: bool,
    /// Where the lines not applied go.
    pub failed_out: Option<PathBuf>,
    /// Exit 1 on a drop too.
    pub fail_on_drop: bool,
}

/// Replays `args.file`; fails when an event was not applied.
pub async fn run(config: &Config, args: &Args) -> anyhow::Result<()> {
    crate::telemetry::init(config, "warn")?;
    let store = Store::connect(&config.data.database).await?;
    let jobs = Jobs::new(store.clone(), config.clone())?;
    let server = app::event_server(config, &store, &jobs, &CancellationToken::new())?;
    let (input, progress): (Box<dyn std::io::Read>, _) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), replay_progress(None, args.quiet))
    } else {
        let input = std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
        let size = input.metadata().map(|m| m.len()).ok();
        (Box::new(input), replay_progress(size, args.quiet))
    };
    let input = BufReader::new(progress.wrap_read(input));
    let mut out = std::io::stdout().lock();
    let mut failed = match &args.failed_out {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => None,
    };
    let options = crate::replay::Options { batch: args.batch, quiet: args.quiet };
    let failed_writer = failed.as_mut().map(|w| w as &mut dyn std::io::Write);
    let summary = crate::replay::replay(&server, input, &mut out, failed_writer, &options).await?;
    progress.finish_and_clear();
    if let Some(mut failed) = failed {
        std::io::Write::flush(&mut failed)?;
    }
    println!(
        "\n{} events: {} success, {} retry, {} drop, {} unreadable\n",
        summary.handled(),
        summary.success,
        summary.retry,
        summary.drop,
        summary.unreadable
    );
    if !args.quiet {
        for id in &summary.customers {
            if let Some(customer) = store.customer(id).await? {
                println!("{}\n", crate::describe_customer(&customer));
            }
        }
    }
    let not_applied = summary.retry + summary.unreadable + if args.fail_on_drop { summary.drop } else { 0 };
    if not_applied > 0 {
        anyhow::bail!("{not_applied} events were not applied (see the lines above, or --failed-out)");
    }
    Ok(())
}

/// A progress bar on stderr for a person watching it: bytes read of the file
/// (of `size`, with an ETA, when known). Hidden when stderr is not a terminal
/// (indicatif's own check), and when each event's line goes to the same
/// terminal (stdout a terminal, no `--quiet`), where the two would mix.
fn replay_progress(size: Option<u64>, quiet: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !quiet && std::io::stdout().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let (bar, template) = match size {
        Some(size) => (indicatif::ProgressBar::new(size), "{bar:40} {bytes}/{total_bytes} {bytes_per_sec}, eta {eta}"),
        None => (indicatif::ProgressBar::new_spinner(), "{spinner} {bytes} {bytes_per_sec}"),
    };
    match indicatif::ProgressStyle::with_template(template) {
        Ok(style) => bar.with_style(style),
        Err(_) => bar,
    }
}
