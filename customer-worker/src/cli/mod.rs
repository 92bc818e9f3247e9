//! The command line: `customer-worker --conf configs/config.yaml --mode all`
//! runs the worker (the Go worker's `-conf … -mode …` work too); the
//! commands beside it each have a module: [`replay`], [`customer`],
//! [`redrive`], [`run_job`].

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{self, Mode};
use crate::config::Config;
use crate::jobs::JobKind;

pub mod customer;
pub mod redrive;
pub mod replay;
pub mod run_job;

/// The command line.
#[derive(Parser)]
#[command(
    name = "customer-worker",
    version,
    about = "Consumes order and auth events into the customer database; runs the customer jobs."
)]
struct Cli {
    /// The configuration file (default: the built-in configs/config.yaml).
    #[arg(long, global = true)]
    conf: Option<PathBuf>,
    /// What to run.
    #[arg(long, value_enum, default_value = "all")]
    mode: Mode,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The commands besides running the worker.
#[derive(Subcommand)]
enum Command {
    /// Feeds CloudEvents (structured JSON, one a line) through the consumers
    /// (in bulk batches, as daprd's bulk deliveries) and prints each outcome.
    ///
    /// Exits 1 when an event was retried or unreadable (or, with
    /// `--fail-on-drop`, dropped): safe in scripts.
    Replay {
        /// The file; `-` for standard input.
        file: PathBuf,
        /// Consecutive events of one topic handled together.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Only the summary, no line per event (and a progress bar on a terminal).
        #[arg(long)]
        quiet: bool,
        /// Write each line that was not applied (retried, dropped, unreadable) to this file.
        #[arg(long)]
        failed_out: Option<PathBuf>,
        /// Also exit 1 when an event was dropped.
        #[arg(long)]
        fail_on_drop: bool,
    },
    /// Lists the dead letters of the worker's topics through the sidecar,
    /// and with `--apply` publishes the chosen ones again to their topic
    /// (same event id: the worker applies each once, so a re-drive is safe
    /// to repeat). Without `--apply` nothing changes.
    Redrive {
        /// A topic whose `<topic>.dlq` is read (repeat it; default: all five).
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Only this event id (repeat it; default: any).
        #[arg(long = "id")]
        ids: Vec<String>,
        /// Only events published at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only events published before this time (RFC 3339).
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Only events whose reason (as listed) contains this text, e.g.
        /// `retries ran out` for those daprd gave up on.
        #[arg(long)]
        reason: Option<String>,
        /// Re-drive the chosen events (default: list them only).
        #[arg(long)]
        apply: bool,
        /// Seconds without a new dead letter after which a topic is done.
        #[arg(long, default_value_t = 5)]
        idle_secs: u64,
    },
    /// Prints a customer's figures.
    Customer {
        /// The customer id.
        id: String,
    },
    /// Runs one job now.
    RunJob {
        /// `segments`, `stats` or `cleanup`.
        job: JobKind,
    },
    /// Exits 0 when the admin port answers `/healthz` (the container's HEALTHCHECK).
    Healthcheck {
        /// The admin address.
        #[arg(long, default_value = "127.0.0.1:8081")]
        addr: std::net::SocketAddr,
    },
}

/// Parses `args` (the program name first) and runs what they say.
pub async fn run(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<()> {
    let cli = Cli::parse_from(go_style_flags(args));
    if let Some(Command::Healthcheck { addr }) = cli.command {
        return healthcheck(addr).await;
    }
    let config = Config::load(cli.conf.as_deref())?;
    match cli.command {
        None => serve(config, cli.mode).await,
        Some(Command::Replay { file, batch, quiet, failed_out, fail_on_drop }) => {
            replay::run(&config, &replay::Args { file, batch, quiet, failed_out, fail_on_drop }).await
        }
        Some(Command::Redrive { topics, ids, since, until, reason, apply, idle_secs }) => {
            let idle = std::time::Duration::from_secs(idle_secs);
            redrive::run(&config, crate::redrive::Options { topics, ids, since, until, reason, apply, idle }).await
        }
        Some(Command::Customer { id }) => customer::run(&config, &id).await,
        Some(Command::RunJob { job }) => run_job::run(config, job).await,
        Some(Command::Healthcheck { .. }) => Ok(()),
    }
}

/// Runs the worker in `mode` until SIGTERM or ctrl-c.
async fn serve(config: Config, mode: Mode) -> anyhow::Result<()> {
    let traces = crate::telemetry::init(&config, &config.log.level)?;
    let metrics = crate::telemetry::install_recorder()?;
    // Caught from here on: a SIGTERM during start-up stops the worker cleanly too.
    let signal = eventbus::server::shutdown_signal();
    let running = app::start(config, mode, Some(metrics)).await?;
    let shutdown = running.shutdown_token();
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutdown signal received");
        shutdown.cancel();
    });
    // Returns when every part has stopped: after the signal, or at once if one part fails.
    let result = running.wait().await;
    if let Some(traces) = traces {
        // Sends the spans still buffered.
        let _ = traces.shutdown();
    }
    result
}

/// `GET /healthz` of the admin port: fine when it answers 200 within 2 s
/// (the container's health probe).
async fn healthcheck(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    use hyper_util::client::legacy::Client;
    let client =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<http_body_util::Empty<bytes::Bytes>>();
    let answer =
        tokio::time::timeout(std::time::Duration::from_secs(2), client.get(format!("http://{addr}/healthz").parse()?))
            .await
            .with_context(|| format!("{addr} did not answer within 2 s"))?
            .with_context(|| format!("cannot reach {addr}"))?;
    match answer.status().as_u16() {
        200 => Ok(()),
        status => anyhow::bail!("/healthz answered {status}"),
    }
}

/// Go-style single-dash long flags (`-conf FILE -mode all`, as the Go
/// worker's deployments pass them) read as `--conf FILE --mode all`; every
/// other argument is left as it is.
fn go_style_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| {
            let Some(text) = arg.to_str() else { return arg };
            let name = text.split_once('=').map_or(text, |(name, _)| name);
            if matches!(name, "-conf" | "-mode") { OsString::from(format!("-{text}")) } else { arg }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(go_style_flags(args.iter().map(OsString::from))).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn go_style_and_gnu_style_flags_mean_the_same() {
        for args in [
            ["customer-worker", "-conf", "/app/configs/config.yaml", "-mode", "cron"].as_slice(),
            &["customer-worker", "--conf", "/app/configs/config.yaml", "--mode", "cron"],
            &["customer-worker", "-conf=/app/configs/config.yaml", "-mode=cron"],
            &["customer-worker", "--conf=/app/configs/config.yaml", "--mode=cron"],
        ] {
            let cli = parse(args);
            assert_eq!(cli.conf.as_deref(), Some(std::path::Path::new("/app/configs/config.yaml")), "{args:?}");
            assert_eq!(cli.mode, Mode::Cron, "{args:?}");
        }
        let cli = parse(&["customer-worker", "-conf", "c.yaml", "customer", "c-ada"]);
        assert!(matches!(cli.command, Some(Command::Customer { id }) if id == "c-ada"));
    }
}
