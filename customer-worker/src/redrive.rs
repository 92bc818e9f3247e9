//! `customer-worker redrive`: the worker's dead letters back to their topics,
//! chosen by topic, event id and time, listed first (a dry run unless
//! `--apply`). The mechanism is the library's ([`eventbus::redrive`]); this
//! module chooses and prints. Safe to repeat: a re-driven event keeps its
//! id, and the worker applies an id once.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eventbus::redrive::{Action, DeadLetter, Decision, Redrive};

use crate::config::Config;

/// The worker's topics; each dead-letters to `<topic>.dlq`.
pub const TOPICS: [&str; 5] =
    ["order.completed", "order.cancelled", "order.returned", "auth.login", "auth.password_changed"];

/// Which dead letters to choose, and what to do with them.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The topics whose dead letters are read (empty: all five).
    pub topics: Vec<String>,
    /// Only these event ids (empty: any).
    pub ids: Vec<String>,
    /// Only events whose CloudEvent `time` is at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Only events whose CloudEvent `time` is before this.
    pub until: Option<DateTime<Utc>>,
    /// Re-drive what is chosen; without it, list only.
    pub apply: bool,
    /// End a topic's run after this long without a dead letter.
    pub idle: Duration,
}

impl Options {
    /// Whether `dead_letter` is chosen. An event without a `time` is chosen
    /// only when no time bound is given.
    pub fn chooses(&self, dead_letter: &DeadLetter) -> bool {
        let id = self.ids.is_empty() || self.ids.contains(&dead_letter.id);
        let time = match (dead_letter.time, self.since, self.until) {
            (_, None, None) => true,
            (None, _, _) => false,
            (Some(time), since, until) => since.is_none_or(|s| time >= s) && until.is_none_or(|u| time < u),
        };
        id && time
    }
}

/// How many dead letters got each action, over every topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub seen: usize,
    pub chosen: usize,
    pub redriven: usize,
    pub failed: usize,
}

/// Reads each topic's dead letters through the sidecar, re-drives (or,
/// without `apply`, lists) the chosen ones, prints one line per dead letter.
pub async fn run(config: &Config, options: &Options, out: &mut impl Write) -> anyhow::Result<Summary> {
    let topics: Vec<String> =
        if options.topics.is_empty() { TOPICS.map(str::to_owned).to_vec() } else { options.topics.clone() };
    let endpoint = crate::app::dapr_endpoint(config);
    let mut summary = Summary::default();
    for topic in &topics {
        let dead_letter_topic = format!("{topic}.dlq");
        let mut redrive = Redrive::new(endpoint.clone(), &config.data.eventbus.default_pubsub, &dead_letter_topic)
            .to_topic(topic)
            .idle(options.idle);
        if options.apply {
            redrive = redrive.apply();
        }
        let report = redrive
            .run(|dead_letter| if options.chooses(dead_letter) { Decision::Redrive } else { Decision::Keep })
            .await?;
        for (dead_letter, action) in &report.entries {
            let (word, reason) = match action {
                Action::Redriven => ("REDRIVEN", None),
                Action::WouldRedrive => ("WOULD-REDRIVE", None),
                Action::Failed(reason) => ("FAILED", Some(reason.as_str())),
                _ => ("KEPT", None),
            };
            let time = dead_letter.time.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339());
            write!(
                out,
                "{word:<13} {dead_letter_topic} {} time={time} type={}",
                dead_letter.id, dead_letter.event_type
            )?;
            match reason {
                Some(reason) => writeln!(out, " reason={reason}")?,
                None => writeln!(out)?,
            }
        }
        summary.seen += report.entries.len();
        summary.chosen += report.entries.iter().filter(|(_, a)| *a != Action::Kept).count();
        summary.redriven += report.count(&Action::Redriven);
        summary.failed += report.entries.iter().filter(|(_, a)| matches!(a, Action::Failed(_))).count();
    }
    Ok(summary)
}
