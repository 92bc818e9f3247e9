//! `customer-worker redrive`: the worker's dead letters back to their topics,
//! chosen by topic, event id, time and reason, listed first (a dry run
//! unless `--apply`). The mechanism is the library's
//! ([`eventbus::redrive`]); this module chooses and prints. Safe to repeat:
//! a re-driven event keeps its id, and the worker applies an id once.
//!
//! The reason is the one the worker kept when it answered `DROP`
//! (`dead_letters` table, [`Store::record_drop`]); an event the worker never
//! dropped was dead-lettered by daprd when its retries ran out, and reads
//! [`RETRIES_RAN_OUT`].

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eventbus::redrive::{Action, DeadLetter, Decision, Redrive};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::jobs::Jobs;
use crate::store::Store;

/// The reason of a dead letter the worker never answered `DROP`: daprd
/// dead-lettered it when its retries ran out (the worker was down, or its
/// database, for longer than the retry budget).
pub const RETRIES_RAN_OUT: &str = "retries ran out (the worker never answered DROP)";

/// Which dead letters to choose, and what to do with them.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The topics whose dead letters are read (empty: every topic the worker subscribes to).
    pub topics: Vec<String>,
    /// Only these event ids (empty: any).
    pub ids: Vec<String>,
    /// Only events whose CloudEvent `time` is at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Only events whose CloudEvent `time` is before this.
    pub until: Option<DateTime<Utc>>,
    /// Only events whose reason contains this text.
    pub reason: Option<String>,
    /// Re-drive what is chosen; without it, list only.
    pub apply: bool,
    /// End a topic's run after this long without a dead letter.
    pub idle: Duration,
}

impl Options {
    /// Whether `dead_letter`, dropped for `reason`, is chosen. An event
    /// without a `time` is chosen only when no time bound is given.
    pub fn chooses(&self, dead_letter: &DeadLetter, reason: &str) -> bool {
        let id = self.ids.is_empty() || self.ids.iter().any(|id| id == dead_letter.id());
        let time = match (dead_letter.time().map(DateTime::<Utc>::from), self.since, self.until) {
            (_, None, None) => true,
            (None, _, _) => false,
            (Some(time), since, until) => since.is_none_or(|s| time >= s) && until.is_none_or(|u| time < u),
        };
        let reason = self.reason.as_deref().is_none_or(|wanted| reason.contains(wanted));
        id && time && reason
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
/// without `apply`, lists) the chosen ones, prints one line per dead letter
/// with the reason `store` kept for it.
pub async fn run(config: &Config, store: &Store, options: &Options, out: &mut impl Write) -> anyhow::Result<Summary> {
    // The topics and their dead-letter topics, as the worker subscribes to them.
    let jobs = Jobs::new(store.clone(), config.clone())?;
    let server = crate::app::event_server(config, store, &jobs, &CancellationToken::new())?;
    let subscriptions: Vec<(String, String, String)> = server
        .subscriptions()
        .iter()
        .filter(|s| options.topics.is_empty() || options.topics.contains(&s.topic))
        .filter_map(|s| Some((s.pubsub.clone(), s.topic.clone(), s.dead_letter.clone()?)))
        .collect();
    if let Some(unknown) = options.topics.iter().find(|t| !subscriptions.iter().any(|(_, topic, _)| topic == *t)) {
        anyhow::bail!("--topic {unknown}: the worker does not subscribe to it with a dead-letter topic");
    }
    let endpoint = crate::app::dapr_endpoint(config);
    let mut summary = Summary::default();
    for (pubsub, topic, dead_letter_topic) in &subscriptions {
        let mut redrive = Redrive::new(endpoint.clone(), pubsub, dead_letter_topic).to_topic(topic).idle(options.idle);
        if options.apply {
            redrive = redrive.apply();
        }
        let reasons = store.drop_reasons(topic).await?;
        let reason_of = |id: &str| reasons.get(id).map_or(RETRIES_RAN_OUT, String::as_str);
        let report = redrive
            .run(|dead_letter| match options.chooses(dead_letter, reason_of(dead_letter.id())) {
                true => Decision::Redrive,
                false => Decision::Keep,
            })
            .await?;
        for (dead_letter, action) in &report.entries {
            let (word, failure) = match action {
                Action::Redriven => ("REDRIVEN", None),
                Action::WouldRedrive => ("WOULD-REDRIVE", None),
                Action::Failed(failure) => ("FAILED", Some(failure.as_str())),
                _ => ("KEPT", None),
            };
            let (id, event_type) = (dead_letter.id(), dead_letter.event_type());
            let time = dead_letter.time().map_or_else(|| "-".to_owned(), |t| DateTime::<Utc>::from(t).to_rfc3339());
            let reason = reason_of(id);
            write!(
                out,
                "{word:<13} {dead_letter_topic} {id} time={time} type={event_type} dropped-because={reason:?}"
            )?;
            match failure {
                Some(failure) => writeln!(out, " failed-because={failure:?}")?,
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
