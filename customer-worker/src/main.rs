//! `customer-worker --conf configs/config.yaml --mode all` (the Go worker's
//! `-conf … -mode …` work too)
//!
//! Also: `replay <file>` (CloudEvents, one a line, through the consumers),
//! `redrive` (dead letters back to their topics, listed first),
//! `customer <id>` (a customer's figures), `run-job <segments|stats|cleanup>`.

use std::ffi::OsString;
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use customer_worker::app::{self, Mode};
use customer_worker::config::Config;
use customer_worker::jobs::{JobKind, Jobs};
use customer_worker::store::Store;
use customer_worker::{describe_customer, replay};
use tokio_util::sync::CancellationToken;

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

/// `GET /healthz` over plain HTTP/1.0, without an HTTP client dependency.
fn healthcheck(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    match response.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        status => anyhow::bail!("/healthz answered {status:?}"),
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse_from(go_style_flags(std::env::args_os()));
    if let Some(Command::Healthcheck { addr }) = cli.command {
        return healthcheck(addr);
    }
    let config = Config::load(cli.conf.as_deref())?;
    match cli.command {
        None => {
            let traces = customer_worker::telemetry::init(&config, &config.log.level)?;
            let metrics = customer_worker::telemetry::install_recorder()?;
            // Caught from here on: a SIGTERM during start-up stops the worker cleanly too.
            let signal = eventbus::server::shutdown_signal();
            let running = app::start(config, cli.mode, Some(metrics)).await?;
            let shutdown = running.shutdown_token();
            tokio::spawn(async move {
                signal.await;
                tracing::info!("shutdown signal received");
                shutdown.cancel();
            });
            // Returns when every part has stopped: after the signal, or at
            // once if one part fails.
            let result = running.wait().await;
            if let Some(traces) = traces {
                // Sends the spans still buffered.
                let _ = traces.shutdown();
            }
            result
        }
        Some(Command::Replay { file, batch, quiet, failed_out, fail_on_drop }) => {
            customer_worker::telemetry::init(&config, "warn")?;
            let store = Store::connect(&config.data.database).await?;
            let jobs = Jobs::new(store.clone(), config.clone())?;
            let server = app::event_server(&config, &store, &jobs, &CancellationToken::new())?;
            let (input, progress): (Box<dyn std::io::Read>, _) = if file.as_os_str() == "-" {
                (Box::new(std::io::stdin()), replay_progress(None, quiet))
            } else {
                let input = std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
                let size = input.metadata().map(|m| m.len()).ok();
                (Box::new(input), replay_progress(size, quiet))
            };
            let input = BufReader::new(progress.wrap_read(input));
            let mut out = std::io::stdout().lock();
            let mut failed = match &failed_out {
                Some(path) => Some(std::io::BufWriter::new(
                    std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => None,
            };
            let options = replay::Options { batch, quiet };
            let failed_writer = failed.as_mut().map(|w| w as &mut dyn std::io::Write);
            let summary = replay::replay(&server, input, &mut out, failed_writer, &options).await?;
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
            if !quiet {
                for id in &summary.customers {
                    if let Some(customer) = store.customer(id).await? {
                        println!("{}\n", describe_customer(&customer));
                    }
                }
            }
            let not_applied = summary.retry + summary.unreadable + if fail_on_drop { summary.drop } else { 0 };
            if not_applied > 0 {
                anyhow::bail!("{not_applied} events were not applied (see the lines above, or --failed-out)");
            }
            Ok(())
        }
        Some(Command::Redrive { topics, ids, since, until, reason, apply, idle_secs }) => {
            customer_worker::telemetry::init(&config, "warn")?;
            let store = Store::connect(&config.data.database).await?;
            let idle = std::time::Duration::from_secs(idle_secs);
            let options = customer_worker::redrive::Options { topics, ids, since, until, reason, apply, idle };
            let summary =
                customer_worker::redrive::run(&config, &store, &options, &mut std::io::stdout().lock()).await?;
            let verb = if apply { "re-driven" } else { "would be re-driven (dry run: add --apply)" };
            println!(
                "\n{} dead letters: {} chosen, {} {verb}, {} failed",
                summary.seen,
                summary.chosen,
                if apply { summary.redriven } else { summary.chosen },
                summary.failed
            );
            if summary.failed > 0 {
                anyhow::bail!("{} dead letters could not be re-driven (see the lines above)", summary.failed);
            }
            Ok(())
        }
        Some(Command::Customer { id }) => {
            customer_worker::telemetry::init(&config, "warn")?;
            let store = Store::connect(&config.data.database).await?;
            match store.customer(&id).await? {
                Some(customer) => println!("{}", describe_customer(&customer)),
                None => anyhow::bail!("no customer {id:?}"),
            }
            Ok(())
        }
        Some(Command::Healthcheck { .. }) => Ok(()),
        Some(Command::RunJob { job }) => {
            let traces = customer_worker::telemetry::init(&config, &config.log.level)?;
            let store = Store::connect(&config.data.database).await?;
            let report = Jobs::new(store, config)?.run(job, &CancellationToken::new()).await?;
            println!("{job}: {report:?}");
            if let Some(traces) = traces {
                let _ = traces.shutdown();
            }
            Ok(())
        }
    }
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
