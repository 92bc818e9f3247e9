//! The real sidecar in eventbus' own tests: [`Daprd`] runs a `daprd` binary
//! next to an app, [`Redis`] runs the broker it delivers from.
//!
//! `eventbus::testing::TestSidecar` plays daprd; this crate runs it, so a
//! test proves what daprd itself does with the app's answers: its
//! resiliency policy, dead-letter topics, bulk delivery, routing rules,
//! app health checks and app token.
//!
//! `daprd` is found through the `DAPRD` environment variable, else on `PATH`;
//! `redis-server` on `PATH`. When one is missing, [`Daprd::binary`] and
//! [`Redis::binary`] return `None`, so a test can skip (and a CI run that
//! requires them can fail instead).
//!
//! ```no_run
//! use daprd_harness::{Daprd, Redis};
//!
//! # async fn run(app_port: u16) -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::start().await?;
//! let daprd = Daprd::builder("orders")
//!     .app_port(app_port)
//!     .resources("deploy/dapr/local")
//!     .replace_in_resources("localhost:6379", redis.address())
//!     .start()
//!     .await?;
//! daprd.wait_for_subscriptions(1).await?;
//! daprd.publish_json("pubsub-redis", "order.completed", &serde_json::json!({"order_id": "o-1"})).await?;
//! let dead_letters = redis.stream("order.completed.dlq").await?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use eventbus::grpc::proto::runtime as pb;
use eventbus::grpc::proto::runtime::dapr_client::DaprClient;
use http_body_util::Empty;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamInfoGroupsReply, StreamRangeReply};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

/// How long [`DaprdBuilder::start`] and the `wait_*` helpers wait before failing.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What went wrong running daprd or Redis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The binary is not installed.
    #[error("{0} not found (set DAPRD to daprd's path; redis-server must be on PATH)")]
    NotFound(&'static str),
    /// An I/O error (spawning, a port, a resource file).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The process did not become ready, or exited; its log's tail is included.
    #[error("{what} did not become ready: {reason}\n--- log tail ---\n{log}")]
    NotReady {
        /// Which process.
        what: String,
        /// Why.
        reason: String,
        /// The last lines it printed.
        log: String,
    },
    /// A call to daprd's API failed.
    #[error("daprd API: {0}")]
    Api(#[from] tonic::Status),
    /// A payload could not be serialized.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Redis answered with an error or something unexpected.
    #[error("redis: {0}")]
    Redis(String),
    /// The connection to Redis failed, or Redis refused a command.
    #[error("redis: {0}")]
    RedisClient(#[from] redis::RedisError),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let context = context.into();
    move |source| HarnessError::Io { context, source }
}

/// A free loopback port (bound, read, released), never one this process was
/// given before: tests running in parallel start daprd, Redis and apps on
/// ports chosen this way, and the OS may hand a just-released port out again
/// before the process it was meant for binds it.
pub fn free_port() -> std::io::Result<u16> {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if GIVEN.lock().unwrap_or_else(|p| p.into_inner()).insert(port) {
            return Ok(port);
        }
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A directory removed on drop.
#[derive(Debug)]
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(prefix: &str) -> Result<Self, HarnessError> {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn spawn_logged(program: &Path, args: &[String], envs: &[(String, String)], log: &Path) -> Result<Child, HarnessError> {
    let out = std::fs::File::create(log).map_err(io(format!("creating {}", log.display())))?;
    let err = out.try_clone().map_err(io("cloning the log file"))?;
    Command::new(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(io(format!("spawning {}", program.display())))
}

/// Configures a [`Daprd`]; from [`Daprd::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct DaprdBuilder {
    app_id: String,
    app_port: Option<u16>,
    app_protocol: String,
    resources: Vec<PathBuf>,
    replacements: Vec<(String, String)>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

impl DaprdBuilder {
    /// The app's port; without one, daprd runs without an app channel.
    pub fn app_port(mut self, port: u16) -> Self {
        self.app_port = Some(port);
        self
    }

    /// `--app-protocol` (default `grpc`).
    pub fn app_protocol(mut self, protocol: impl Into<String>) -> Self {
        self.app_protocol = protocol.into();
        self
    }

    /// A resource file (component, resiliency, subscription, configuration),
    /// or a directory whose `*.yaml` files are all taken.
    pub fn resources(mut self, path: impl Into<PathBuf>) -> Self {
        self.resources.push(path.into());
        self
    }

    /// Replaces `from` with `to` in every resource file (e.g. the Redis address).
    pub fn replace_in_resources(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.replacements.push((from.into(), to.into()));
        self
    }

    /// An extra command-line argument (`--enable-app-health-check`, …).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// An environment variable for daprd (`APP_API_TOKEN`, …).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Starts daprd and waits until its API answers healthy.
    pub async fn start(self) -> Result<Daprd, HarnessError> {
        let binary = Daprd::binary().ok_or(HarnessError::NotFound("daprd"))?;
        let dir = ScratchDir::new(&format!("daprd-{}", self.app_id))?;
        let resources = dir.0.join("resources");
        std::fs::create_dir_all(&resources).map_err(io("creating the resources directory"))?;
        let mut files = Vec::new();
        for path in &self.resources {
            if path.is_dir() {
                let entries = std::fs::read_dir(path).map_err(io(format!("reading {}", path.display())))?;
                let mut yaml: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                    .collect();
                yaml.sort();
                files.extend(yaml);
            } else {
                files.push(path.clone());
            }
        }
        let mut configuration = None;
        for (i, file) in files.iter().enumerate() {
            let mut text = std::fs::read_to_string(file).map_err(io(format!("reading {}", file.display())))?;
            for (from, to) in &self.replacements {
                text = text.replace(from.as_str(), to);
            }
            // A Configuration is not a resource: daprd takes it with --config.
            let target = if text.lines().any(|l| l.trim() == "kind: Configuration") {
                configuration.get_or_insert(dir.0.join("config.yaml")).clone()
            } else {
                resources
                    .join(format!("{i:02}-{}", file.file_name().and_then(|n| n.to_str()).unwrap_or("resource.yaml")))
            };
            std::fs::write(&target, text).map_err(io(format!("writing {}", target.display())))?;
        }

        let port = || free_port().map_err(io("finding a free port"));
        let log = dir.0.join("daprd.log");
        // A port another process took between `free_port` and daprd's bind
        // fails the start: try again on fresh ports.
        let mut tries = 0;
        let (starting, launch, http_port, grpc_port) = loop {
            tries += 1;
            let (http_port, grpc_port) = (port()?, port()?);
            let mut args: Vec<String> = vec![
                "--app-id".into(),
                self.app_id.clone(),
                "--dapr-http-port".into(),
                http_port.to_string(),
                "--dapr-grpc-port".into(),
                grpc_port.to_string(),
                "--dapr-internal-grpc-port".into(),
                port()?.to_string(),
                "--dapr-internal-grpc-listen-address".into(),
                "127.0.0.1".into(),
                "--metrics-port".into(),
                port()?.to_string(),
                "--metrics-listen-address".into(),
                "127.0.0.1".into(),
                "--dapr-listen-addresses".into(),
                "127.0.0.1".into(),
                "--resources-path".into(),
                resources.display().to_string(),
                "--app-protocol".into(),
                self.app_protocol.clone(),
                "--log-level".into(),
                "info".into(),
            ];
            if let Some(app_port) = self.app_port {
                args.extend(["--app-port".into(), app_port.to_string()]);
            }
            if let Some(configuration) = &configuration {
                args.extend(["--config".into(), configuration.display().to_string()]);
            }
            args.extend(self.args.iter().cloned());
            let child = spawn_logged(&binary, &args, &self.envs, &log)?;
            let launch = Launch { binary: binary.clone(), args, envs: self.envs.clone() };
            let mut starting = Starting { child, http_port, log: &log };
            match starting.until_healthy().await {
                Ok(()) => break (starting, launch, http_port, grpc_port),
                Err(HarnessError::NotReady { log: tail, .. })
                    if tries < 3 && (tail.contains("address already in use") || tail.contains("could not listen")) => {}
                Err(error) => return Err(error),
            }
        };
        let api_token = self.envs.iter().find(|(k, _)| k == "DAPR_API_TOKEN").map(|(_, v)| v.clone());
        let endpoint = format!("http://127.0.0.1:{grpc_port}");
        let channel = Channel::from_shared(endpoint)
            .map_err(|e| starting.not_ready(e.to_string()))?
            .connect()
            .await
            .map_err(|e| starting.not_ready(format!("gRPC API: {e}")))?;
        Ok(Daprd {
            child: starting.child,
            launch,
            http_port,
            grpc_port,
            api_token,
            log,
            _dir: dir,
            client: DaprClient::new(channel),
        })
    }
}

/// A running `daprd`, killed when dropped. See the [module documentation](self).
#[derive(Debug)]
pub struct Daprd {
    /// Killed when dropped.
    child: Child,
    launch: Launch,
    http_port: u16,
    grpc_port: u16,
    api_token: Option<String>,
    log: PathBuf,
    _dir: ScratchDir,
    client: DaprClient<Channel>,
}

/// How daprd was started, to start it again.
#[derive(Debug)]
struct Launch {
    binary: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

/// A daprd process until its API answers.
struct Starting<'a> {
    child: Child,
    http_port: u16,
    log: &'a Path,
}

impl Starting<'_> {
    fn not_ready(&self, reason: impl Into<String>) -> HarnessError {
        HarnessError::NotReady { what: "daprd".into(), reason: reason.into(), log: log_tail(self.log) }
    }

    /// Waits until `GET /v1.0/healthz` answers 204.
    async fn until_healthy(&mut self) -> Result<(), HarnessError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(format!("exited with {status}")));
            }
            if http_get(format!("127.0.0.1:{}", self.http_port), "/v1.0/healthz")
                .await
                .is_some_and(|(status, _)| status == 204)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.not_ready("/v1.0/healthz never answered 204"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Daprd {
    /// Kills daprd (SIGKILL: a crash, an evicted pod) and starts it again
    /// with the same ports, resources and environment; returns once its API
    /// answers healthy. Its log starts over.
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        let _ = self.child.kill().await;
        let Launch { binary, args, envs } = &self.launch;
        let child = spawn_logged(binary, args, envs, &self.log)?;
        let mut starting = Starting { child, http_port: self.http_port, log: &self.log };
        starting.until_healthy().await?;
        let endpoint = format!("http://127.0.0.1:{}", self.grpc_port);
        let channel = Channel::from_shared(endpoint)
            .map_err(|e| starting.not_ready(e.to_string()))?
            .connect()
            .await
            .map_err(|e| starting.not_ready(format!("gRPC API: {e}")))?;
        self.child = starting.child;
        self.client = DaprClient::new(channel);
        Ok(())
    }

    /// The daprd binary: `$DAPRD`, else `daprd` on `PATH`.
    pub fn binary() -> Option<PathBuf> {
        match std::env::var_os("DAPRD") {
            Some(path) if !path.is_empty() => Some(PathBuf::from(path)).filter(|p| p.is_file()),
            _ => on_path("daprd"),
        }
    }

    /// A daprd for the app `app_id`.
    pub fn builder(app_id: impl Into<String>) -> DaprdBuilder {
        DaprdBuilder {
            app_id: app_id.into(),
            app_port: None,
            app_protocol: "grpc".into(),
            resources: Vec::new(),
            replacements: Vec::new(),
            args: Vec::new(),
            envs: Vec::new(),
        }
    }

    /// The Dapr HTTP API port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The Dapr gRPC API port.
    pub fn grpc_port(&self) -> u16 {
        self.grpc_port
    }

    /// `http://127.0.0.1:<grpc port>`, as `DAPR_GRPC_ENDPOINT` or
    /// `eventbus::publisher::DaprPublisher::connect_to` take it.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// daprd's process id (for CPU accounting); `None` once it has exited.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// What daprd printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn not_ready(&self, reason: impl Into<String>) -> HarnessError {
        HarnessError::NotReady { what: "daprd".into(), reason: reason.into(), log: log_tail(&self.log) }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = self.api_token.as_deref().and_then(|t| t.parse().ok()) {
            request.metadata_mut().insert("dapr-api-token", token);
        }
        request
    }

    /// daprd's metadata (`GetMetadata`): its subscriptions, components, app connection.
    pub async fn metadata(&self) -> Result<pb::GetMetadataResponse, HarnessError> {
        let mut client = self.client.clone();
        Ok(client
            .get_metadata(self.request(pb::GetMetadataRequest::default()))
            .await
            .map_err(HarnessError::Api)?
            .into_inner())
    }

    /// Waits until daprd has subscribed at least `count` topics (it reads the
    /// app's subscriptions after the app port opens).
    pub async fn wait_for_subscriptions(&self, count: usize) -> Result<Vec<pb::PubsubSubscription>, HarnessError> {
        let subscribed = poll_until(|| async {
            match self.metadata().await {
                Ok(metadata) if metadata.subscriptions.len() < count => None,
                result => Some(result.map(|metadata| metadata.subscriptions)),
            }
        });
        subscribed.await.unwrap_or_else(|| Err(self.not_ready(format!("fewer than {count} subscriptions"))))
    }

    /// Publishes through daprd's `PublishEvent`; daprd wraps `data` in a
    /// CloudEvent unless `content_type` is `application/cloudevents+json`.
    pub async fn publish(
        &self,
        pubsub: &str,
        topic: &str,
        content_type: &str,
        data: impl Into<Vec<u8>>,
        metadata: HashMap<String, String>,
    ) -> Result<(), HarnessError> {
        let mut client = self.client.clone();
        let request = pb::PublishEventRequest {
            pubsub_name: pubsub.into(),
            topic: topic.into(),
            data: data.into(),
            data_content_type: content_type.into(),
            metadata,
        };
        client.publish_event(self.request(request)).await.map_err(HarnessError::Api)?;
        Ok(())
    }

    /// Publishes a JSON payload.
    pub async fn publish_json<T: serde::Serialize + ?Sized>(
        &self,
        pubsub: &str,
        topic: &str,
        data: &T,
    ) -> Result<(), HarnessError> {
        let data = serde_json::to_vec(data)?;
        self.publish(pubsub, topic, "application/json", data, HashMap::new()).await
    }

    /// Publishes a whole CloudEvent (its `id` is kept: publishing it twice
    /// delivers the same id twice).
    pub async fn publish_cloud_event(
        &self,
        pubsub: &str,
        topic: &str,
        cloud_event: &serde_json::Value,
    ) -> Result<(), HarnessError> {
        let data = serde_json::to_vec(cloud_event)?;
        self.publish(pubsub, topic, "application/cloudevents+json", data, HashMap::new()).await
    }

    /// Publishes CloudEvents in one `BulkPublishEvent` call (each keeps its
    /// `id`); fails if daprd reports any entry as not published.
    pub async fn publish_bulk(
        &self,
        pubsub: &str,
        topic: &str,
        cloud_events: &[serde_json::Value],
    ) -> Result<(), HarnessError> {
        let mut client = self.client.clone();
        let entries = cloud_events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                Ok(pb::BulkPublishRequestEntry {
                    entry_id: i.to_string(),
                    event: serde_json::to_vec(event)?,
                    content_type: "application/cloudevents+json".into(),
                    metadata: HashMap::new(),
                })
            })
            .collect::<Result<_, HarnessError>>()?;
        let request = pb::BulkPublishRequest {
            pubsub_name: pubsub.into(),
            topic: topic.into(),
            entries,
            metadata: HashMap::new(),
        };
        let failed = client
            .bulk_publish_event(self.request(request))
            .await
            .map_err(HarnessError::Api)?
            .into_inner()
            .failed_entries;
        match failed.first() {
            None => Ok(()),
            Some(entry) => Err(HarnessError::Api(tonic::Status::internal(format!(
                "{} of {} entries not published, e.g. entry {}: {}",
                failed.len(),
                cloud_events.len(),
                entry.entry_id,
                entry.error
            )))),
        }
    }

    /// Invokes `method` on the app `app_id` through daprd (`InvokeService`).
    pub async fn invoke(
        &self,
        app_id: &str,
        method: &str,
        content_type: &str,
        data: impl Into<Vec<u8>>,
    ) -> Result<eventbus::grpc::proto::common::InvokeResponse, HarnessError> {
        use eventbus::grpc::proto::common;
        let mut client = self.client.clone();
        let request = pb::InvokeServiceRequest {
            id: app_id.into(),
            message: Some(common::InvokeRequest {
                method: method.into(),
                data: Some(prost_types::Any { type_url: String::new(), value: data.into() }),
                content_type: content_type.into(),
                http_extension: Some(common::HttpExtension {
                    verb: common::http_extension::Verb::Post.into(),
                    querystring: String::new(),
                }),
            }),
        };
        Ok(client.invoke_service(self.request(request)).await.map_err(HarnessError::Api)?.into_inner())
    }
}

/// `GET http://<address><path>` with a real HTTP/1 client: the status code
/// and the body; `None` when nothing answers within 15 s. For the admin
/// ports of daprd and the worker (`/healthz`, `/metrics`).
pub async fn http_get(address: impl std::fmt::Display, path: &str) -> Option<(u16, String)> {
    use http_body_util::BodyExt;
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let uri = format!("http://{address}{path}").parse().ok()?;
    let exchange = async {
        let response = client.get(uri).await.ok()?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(15), exchange).await.ok()?
}

/// One entry of a Redis stream: its id and fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamEntry {
    /// The entry id (`<ms>-<seq>`).
    pub id: String,
    /// The fields; Dapr's Redis pub/sub stores the CloudEvent under `data`.
    pub fields: HashMap<String, Vec<u8>>,
}

impl StreamEntry {
    /// The `data` field parsed as JSON (the CloudEvent Dapr published).
    pub fn cloud_event(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(self.fields.get("data")?).ok()
    }
}

/// A `redis-server` on a free loopback port, without persistence; killed when dropped.
#[derive(Debug)]
pub struct Redis {
    child: Child,
    port: u16,
    log: PathBuf,
    client: redis::Client,
    _dir: ScratchDir,
}

impl Redis {
    /// `redis-server` on `PATH`.
    pub fn binary() -> Option<PathBuf> {
        on_path("redis-server")
    }

    /// Starts it and waits until it answers `PING`.
    pub async fn start() -> Result<Redis, HarnessError> {
        let binary = Redis::binary().ok_or(HarnessError::NotFound("redis-server"))?;
        let dir = ScratchDir::new("redis")?;
        let port = free_port().map_err(io("finding a free port"))?;
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.0.display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        let log = dir.0.join("redis.log");
        let child = spawn_logged(&binary, &args, &[], &log)?;
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
        let mut redis = Redis { child, port, log, client, _dir: dir };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = redis.child.try_wait() {
                return Err(redis.not_ready(format!("exited with {status}")));
            }
            if redis.ping().await {
                return Ok(redis);
            }
            if Instant::now() > deadline {
                return Err(redis.not_ready("no PONG"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn not_ready(&self, reason: impl Into<String>) -> HarnessError {
        HarnessError::NotReady { what: "redis-server".into(), reason: reason.into(), log: log_tail(&self.log) }
    }

    async fn ping(&self) -> bool {
        let Ok(mut connection) = self.connection().await else { return false };
        redis::cmd("PING").query_async::<String>(&mut connection).await.is_ok_and(|pong| pong == "PONG")
    }

    /// redis-server's process id (for CPU accounting); `None` once it has exited.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `127.0.0.1:<port>`, for a component's `redisHost`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A connection for commands of your own.
    pub async fn connection(&self) -> Result<MultiplexedConnection, HarnessError> {
        Ok(self.client.get_multiplexed_async_connection().await?)
    }

    /// Every entry of the stream `key` (a topic, e.g. `order.completed.dlq`).
    pub async fn stream(&self, key: &str) -> Result<Vec<StreamEntry>, HarnessError> {
        let reply: StreamRangeReply = self.connection().await?.xrange_all(key).await?;
        reply
            .ids
            .into_iter()
            .map(|entry| {
                let fields = entry
                    .map
                    .into_iter()
                    .map(|(name, value)| {
                        Ok((
                            name,
                            redis::from_redis_value::<Vec<u8>>(value)
                                .map_err(|e| HarnessError::Redis(e.to_string()))?,
                        ))
                    })
                    .collect::<Result<_, HarnessError>>()?;
                Ok(StreamEntry { id: entry.id, fields })
            })
            .collect()
    }

    /// Waits until the stream `key` holds at least `count` entries, and returns them.
    pub async fn wait_for_stream(&self, key: &str, count: usize) -> Result<Vec<StreamEntry>, HarnessError> {
        let filled = poll_until(|| async {
            match self.stream(key).await {
                Ok(entries) if entries.len() < count => None,
                result => Some(result),
            }
        });
        filled.await.unwrap_or_else(|| Err(HarnessError::Redis(format!("{key}: fewer than {count} entries"))))
    }

    /// A consumer group's position on the stream `key` (`XINFO GROUPS`):
    /// `(lag, pending)`, the entries it has not read yet and those read but
    /// not acknowledged; `None` when the stream or the group does not exist (yet).
    pub async fn consumer_group(&self, key: &str, group: &str) -> Result<Option<(u64, u64)>, HarnessError> {
        let mut connection = self.connection().await?;
        if !connection.exists::<_, bool>(key).await? {
            return Ok(None);
        }
        let reply: StreamInfoGroupsReply = connection.xinfo_groups(key).await?;
        let Some(info) = reply.groups.into_iter().find(|g| g.name == group) else { return Ok(None) };
        let lag = info.lag.ok_or_else(|| HarnessError::Redis(format!("XINFO GROUPS {key}: no lag for {group}")))?;
        Ok(Some((lag as u64, info.pending as u64)))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The environment variable that turns a missing daprd or redis-server into a
/// failure instead of a skip (CI sets it to `1`).
pub const REQUIRE_ENV: &str = "EVENTBUS_REQUIRE_DAPRD";

/// Whether daprd and redis-server are installed. When they are not, this
/// returns `false` so the test can skip, unless [`REQUIRE_ENV`] is `1`: then
/// it panics, so a CI run cannot pass by skipping.
pub fn available() -> bool {
    let missing: Vec<&str> =
        [("daprd (set DAPRD)", Daprd::binary().is_none()), ("redis-server", Redis::binary().is_none())]
            .into_iter()
            .filter_map(|(name, missing)| missing.then_some(name))
            .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var(REQUIRE_ENV).as_deref() != Ok("1"),
        "{REQUIRE_ENV}=1 but {} not found: the daprd tests would be skipped",
        missing.join(" and ")
    );
    eprintln!("note: {} not found; daprd test skipped", missing.join(" and "));
    false
}

/// Polls `check` every 50 ms until it returns `Some`, for up to [`STARTUP_TIMEOUT`]:
/// the way to wait for an effect of an asynchronous delivery.
///
/// # Panics
///
/// When the timeout passes, naming `what`: this is an assertion for tests.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match poll_until(check).await {
        Some(value) => value,
        None => panic!("timed out waiting for {what}"),
    }
}

/// Calls `check` every 50 ms until it gives `Some`; `None` after [`STARTUP_TIMEOUT`].
async fn poll_until<T, F, Fut>(mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
