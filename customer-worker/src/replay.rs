//! `replay`: feeds structured CloudEvents (JSON, one a line) through the
//! same consumers and pipeline as the gRPC server, and prints each outcome.
//! Used to see the worker work without Dapr, and by operators to re-run
//! dead-lettered events after a fix.

use std::collections::BTreeSet;
use std::io::BufRead;

use eventbus::{Envelope, Outcome};
use serde_json::Value;

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub success: usize,
    pub retry: usize,
    pub drop: usize,
    pub unreadable: usize,
    /// Customers the events named, for printing their figures.
    pub customers: BTreeSet<String>,
}

impl Summary {
    /// Events read, readable or not.
    pub fn handled(&self) -> usize {
        self.success + self.retry + self.drop + self.unreadable
    }
}

/// Reads one CloudEvent line into an envelope. The topic is the `topic`
/// attribute that Dapr adds, else the event `type`; JSON is assumed when no
/// content type is given.
pub fn envelope_from_line(line: &str) -> Result<Envelope, String> {
    let Value::Object(event) = serde_json::from_str::<Value>(line).map_err(|e| format!("invalid JSON: {e}"))? else {
        return Err("not a JSON object".into());
    };
    let mut envelope = Envelope::from_structured(event).map_err(|e| e.to_string())?;
    if envelope.id.is_empty() {
        return Err("the event has no id".into());
    }
    if envelope.topic.is_empty() {
        envelope.topic.clone_from(&envelope.event_type);
    }
    if envelope.data_content_type.is_empty() {
        envelope.data_content_type = "application/json".into();
    }
    Ok(envelope)
}

/// How [`replay`] runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Consecutive events of one topic handled as one bulk batch (at least 1):
    /// the path daprd's bulk deliveries take.
    pub batch: usize,
    /// No line per event; the summary only.
    pub quiet: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { batch: 100, quiet: false }
    }
}

/// One readable line waiting for its batch.
struct Pending {
    number: usize,
    line: String,
    envelope: Envelope,
}

/// Replays every line of `input` through `server` (in bulk batches of
/// consecutive events of one topic), writing one line per event to `out`
/// unless quiet, and each line that was not applied (retried, dropped or
/// unreadable) to `failed`, so that it can be replayed again.
pub async fn replay(
    server: &eventbus::Server,
    input: impl BufRead,
    out: &mut impl std::io::Write,
    mut failed: Option<&mut dyn std::io::Write>,
    options: &Options,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let mut batch: Vec<Pending> = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let number = index + 1;
        let envelope = match envelope_from_line(&line) {
            Ok(envelope) => envelope,
            Err(reason) => {
                if !options.quiet {
                    writeln!(out, "line {number:>3}  {:<24} {:<22} UNREADABLE  {reason}", "-", "-")?;
                }
                if let Some(failed) = failed.as_mut() {
                    writeln!(failed, "{line}")?;
                }
                summary.unreadable += 1;
                continue;
            }
        };
        if let Ok(Value::Object(data)) = serde_json::from_slice::<Value>(&envelope.data)
            && let Some(Value::String(customer)) = data.get("customer_id")
        {
            summary.customers.insert(customer.clone());
        }
        let same_topic =
            batch.last().is_none_or(|p| p.envelope.topic == envelope.topic && p.envelope.pubsub == envelope.pubsub);
        if !same_topic || batch.len() >= options.batch.max(1) {
            flush(server, &mut batch, out, &mut failed, options, &mut summary).await?;
        }
        batch.push(Pending { number, line, envelope });
    }
    flush(server, &mut batch, out, &mut failed, options, &mut summary).await?;
    Ok(summary)
}

/// Runs the pending batch through the bulk path and reports each event.
async fn flush(
    server: &eventbus::Server,
    batch: &mut Vec<Pending>,
    out: &mut impl std::io::Write,
    failed: &mut Option<&mut dyn std::io::Write>,
    options: &Options,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let pending = std::mem::take(batch);
    let envelopes = pending.iter().map(|p| p.envelope.clone()).collect();
    let outcomes = server.dispatch_bulk(envelopes).await;
    for (Pending { number, line, envelope }, outcome) in pending.into_iter().zip(outcomes) {
        match outcome {
            Outcome::Success => summary.success += 1,
            Outcome::Retry => summary.retry += 1,
            Outcome::Drop => summary.drop += 1,
        }
        if !options.quiet {
            let (id, topic) = (&envelope.id, &envelope.topic);
            writeln!(out, "line {number:>3}  {id:<24} {topic:<22} {}", outcome.as_str().to_uppercase())?;
        }
        if outcome != Outcome::Success
            && let Some(failed) = failed.as_mut()
        {
            writeln!(failed, "{line}")?;
        }
    }
    Ok(())
}
