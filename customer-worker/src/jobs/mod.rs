//! The scheduled jobs: segments, stats, cleanup.
//!
//! Each runs on its cron schedule, in batches (keyset paging) and stops
//! between batches on shutdown. With PostgreSQL a run takes an advisory lock,
//! so with several replicas one run happens per tick; SQLite is
//! single-process. Each job can also be triggered by the Dapr scheduler
//! (`OnJobEvent`, job names `segments`, `stats`, `cleanup`).

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, parse_cron};
use crate::store::Store;

mod cleanup;
mod segments;
mod stats;

pub use segments::SegmentRules;

/// One of the three jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    Segments,
    Stats,
    Cleanup,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [JobKind::Segments, JobKind::Stats, JobKind::Cleanup];

    pub fn name(self) -> &'static str {
        match self {
            JobKind::Segments => "segments",
            JobKind::Stats => "stats",
            JobKind::Cleanup => "cleanup",
        }
    }

    /// The PostgreSQL advisory lock key of this job.
    fn lock_key(self) -> i64 {
        // "cworker" followed by the job's number: stable across releases.
        0x6377_6f72_6b00 + self as i64
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for JobKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown job {s:?}: expected segments, stats or cleanup"))
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobReport {
    /// Another replica holds the lock: this tick is theirs.
    Skipped,
    /// Ran; `rows` is what it wrote or deleted; `complete` is false when shutdown stopped it between batches.
    Ran { rows: u64, complete: bool },
}

/// Runs the jobs against the store.
#[derive(Clone)]
pub struct Jobs {
    store: Store,
    config: Config,
    rules: SegmentRules,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").field("store", &self.store).finish_non_exhaustive()
    }
}

impl Jobs {
    pub fn new(store: Store, config: Config) -> anyhow::Result<Jobs> {
        let rules = SegmentRules::from_config(&config.segments)?;
        Ok(Jobs { store, config, rules })
    }

    /// Runs one job now, once across replicas.
    pub async fn run(&self, kind: JobKind, cancel: &CancellationToken) -> anyhow::Result<JobReport> {
        let started = Instant::now();
        let result = self.run_locked(kind, cancel).await;
        let outcome = match &result {
            Ok(JobReport::Skipped) => "skipped",
            Ok(JobReport::Ran { .. }) => "success",
            Err(_) => "failure",
        };
        // `name`, not `job`: Prometheus gives every series the scrape `job` label.
        metrics::counter!("customer_worker_job_runs_total", "name" => kind.name(), "outcome" => outcome).increment(1);
        metrics::histogram!("customer_worker_job_duration_seconds", "name" => kind.name())
            .record(started.elapsed().as_secs_f64());
        match &result {
            Ok(report) => {
                tracing::info!(job = %kind, ?report, elapsed_ms = started.elapsed().as_millis() as u64, "job finished")
            }
            Err(error) => tracing::error!(job = %kind, error = format!("{error:#}"), "job failed"),
        }
        result
    }

    async fn run_locked(&self, kind: JobKind, cancel: &CancellationToken) -> anyhow::Result<JobReport> {
        let Some(lock) = self.store.try_job_lock(kind.lock_key()).await? else {
            return Ok(JobReport::Skipped);
        };
        let batch = i64::from(self.config.jobs.batch_size);
        let result = match kind {
            JobKind::Segments => segments::run(&self.store, &self.rules, batch, Utc::now(), cancel).await,
            JobKind::Stats => stats::run(&self.store, Utc::now()).await,
            JobKind::Cleanup => cleanup::run(&self.store, &self.config.jobs.cleanup, batch, Utc::now(), cancel).await,
        };
        lock.release().await?;
        result
    }

    /// Runs every enabled job on its schedule until `cancel`.
    pub async fn schedule(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for kind in JobKind::ALL {
            let (schedule, enabled) = match kind {
                JobKind::Segments => (&self.config.jobs.segments.schedule, self.config.jobs.segments.enabled),
                JobKind::Stats => (&self.config.jobs.stats.schedule, self.config.jobs.stats.enabled),
                JobKind::Cleanup => (&self.config.jobs.cleanup.schedule, self.config.jobs.cleanup.enabled),
            };
            if !enabled {
                tracing::info!(job = %kind, "disabled");
                continue;
            }
            let cron = parse_cron(schedule)?;
            let jobs = self.clone();
            let cancel = cancel.clone();
            tasks.spawn(async move {
                tracing::info!(job = %kind, schedule = cron.pattern.to_string(), "scheduled");
                loop {
                    let now = Utc::now();
                    let Ok(next) = cron.find_next_occurrence(&now, false) else {
                        tracing::error!(job = %kind, "schedule has no next occurrence; job stopped");
                        return;
                    };
                    let wait = (next - now).to_std().unwrap_or_default();
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                    // A failed run is logged and counted; the next tick tries again.
                    let _ = jobs.run(kind, &cancel).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}
