//! What we ship, as the tests run it: the Dapr files of `deploy/dapr/`, the
//! chart's daprd annotations and the chart's worker configuration, rendered
//! for a test's ports and names and nothing else.
//!
//! The rendering is a short, fixed list ([`RENDERING`]), each entry checked
//! to apply: if a shipped file changes so that one no longer matches, the
//! tests fail instead of running something else.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use daprd_harness::{Daprd, DaprdBuilder, Redis};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// What changes between the cluster and a test, and why; `{redis}` is the test's Redis.
const RENDERING: &[(&str, &str, &str)] = &[
    ("the cluster's Redis service", "redis-master.customer.svc.cluster.local:6379", "{redis}"),
    (
        "the Kubernetes Secret with the Redis password (the operator resolves it; the test's Redis has none)",
        "    - name: redisPassword\n      secretKeyRef:\n        name: redis\n        key: redis-password\n",
        "    - name: redisPassword\n      value: \"\"\n",
    ),
];

/// The shipped deployment, rendered into a directory of its own.
pub(crate) struct Shipped {
    dir: PathBuf,
    /// `deploy/dapr/*.yaml` as daprd loads them.
    pub resources: PathBuf,
    /// The app token, as the Secret the README creates would hold it (a
    /// random value there, one per test process here): daprd sends it, the
    /// worker checks it.
    pub app_token: String,
    /// The worker's configuration: the chart's `config` values.
    pub worker_config: PathBuf,
    /// The chart's `mode`.
    pub mode: String,
    /// The chart's `dapr.appId`.
    pub app_id: String,
    /// daprd flags for the chart's literal `dapr.io/…` annotations (health checks, graceful shutdown).
    pub daprd_args: Vec<String>,
}

impl Drop for Shipped {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Shipped {
    /// Renders the shipped files for the Redis at `redis`.
    pub(crate) fn render(redis: &Redis) -> Shipped {
        let dir = std::env::temp_dir().join(format!(
            "customer-worker-shipped-{}-{}",
            std::process::id(),
            redis.address().replace(':', "-")
        ));
        let resources = dir.join("resources");
        std::fs::create_dir_all(&resources).unwrap();
        let mut applied = vec![false; RENDERING.len()];
        let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("deploy/dapr"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let mut text = std::fs::read_to_string(&file).unwrap();
            assert!(
                !text.lines().any(|l| l.trim() == "kind: Secret"),
                "{}: secrets are created, not shipped",
                file.display()
            );
            for ((_, from, to), applied) in RENDERING.iter().zip(&mut applied) {
                if text.contains(from) {
                    text = text.replace(from, &to.replace("{redis}", &redis.address()));
                    *applied = true;
                }
            }
            std::fs::write(resources.join(file.file_name().unwrap()), text).unwrap();
        }
        for ((what, ..), applied) in RENDERING.iter().zip(applied) {
            assert!(applied, "rendering {what:?} matched no file of deploy/dapr: the shipped files changed");
        }

        let chart = Path::new(ROOT).join("deploy/helm/customer-worker");
        let values: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap()).unwrap();
        let worker_config = dir.join("config.yaml");
        std::fs::write(&worker_config, serde_norway::to_string(&values["config"]).unwrap()).unwrap();
        let deployment = std::fs::read_to_string(chart.join("templates/deployment.yaml")).unwrap();
        Shipped {
            resources,
            app_token: format!("shipped-test-token-{}", std::process::id()),
            worker_config,
            mode: values["mode"].as_str().unwrap().to_owned(),
            app_id: values["dapr"]["appId"].as_str().unwrap().to_owned(),
            daprd_args: daprd_args(&deployment),
            dir,
        }
    }

    /// daprd as the chart's annotations start it, in front of the worker on `app_port`.
    pub(crate) fn daprd(&self, app_port: u16) -> DaprdBuilder {
        self.daprd_args
            .iter()
            .fold(Daprd::builder(&self.app_id).app_port(app_port).resources(&self.resources), |b, arg| b.arg(arg))
            .env("APP_API_TOKEN", &self.app_token)
    }

    /// The worker's command line as the chart writes it (`--conf … --mode …`).
    pub(crate) fn worker_args(&self) -> Vec<String> {
        vec!["--conf".into(), self.worker_config.display().to_string(), "--mode".into(), self.mode.clone()]
    }

    /// The worker's environment: the token the chart passes from the same Secret.
    pub(crate) fn worker_env(&self) -> Vec<(&'static str, String)> {
        vec![("APP_API_TOKEN", self.app_token.clone())]
    }
}

/// The daprd flag of each literal `dapr.io/<name>: "<value>"` annotation of
/// the chart that has one (templated ones, such as the app id and port, are
/// set by the harness).
fn daprd_args(deployment: &str) -> Vec<String> {
    const FLAGS: &[(&str, &str)] = &[
        ("enable-app-health-check", "--enable-app-health-check"),
        ("app-health-probe-interval", "--app-health-probe-interval"),
        ("app-health-probe-timeout", "--app-health-probe-timeout"),
        ("app-health-threshold", "--app-health-threshold"),
        ("graceful-shutdown-seconds", "--dapr-graceful-shutdown-seconds"),
    ];
    let args: Vec<String> = FLAGS
        .iter()
        .filter_map(|(annotation, flag)| {
            let line = deployment.lines().find(|l| l.trim().starts_with(&format!("dapr.io/{annotation}:")))?;
            let value = line.split_once(':')?.1.trim().trim_matches('"');
            Some(format!("{flag}={value}"))
        })
        .collect();
    assert_eq!(args.len(), FLAGS.len(), "the chart's daprd annotations changed: {args:?}");
    args
}
