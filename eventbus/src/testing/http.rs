//! The test sidecar of the HTTP app channel: daprd's side of
//! `--app-protocol http`, for apps served with
//! [`Transport::http`](crate::Transport::http).

use std::net::SocketAddr;
use std::sync::Mutex;

use crate::grpc::proto::runtime as pb;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{CloudEvent, Delivery, Settlement, route, settle_unrouted};
use crate::outcome::Outcome;
use crate::sidecar::TOKEN_HEADER;

/// Why the HTTP test sidecar could not do its part.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpSidecarError {
    /// The app could not be reached or answered something that is not HTTP.
    #[error("HTTP exchange with the app failed: {0}")]
    Io(#[from] std::io::Error),
    /// `GET /dapr/subscribe` did not answer a list of subscriptions.
    #[error("GET /dapr/subscribe: {0}")]
    Subscriptions(String),
    /// A routing rule failed on the event (e.g. it reads a field the event lacks).
    #[error("cannot evaluate routing rule: {0}")]
    Rule(String),
}

/// Plays daprd's HTTP app channel against an app: reads `GET
/// /dapr/subscribe`, POSTs structured CloudEvents to the chosen route, reads
/// the answer as daprd does (a 2xx with `{"status": …}`; a 2xx with no
/// status is SUCCESS; 404 is DROP; other codes RETRY), and settles each
/// event like [`TestSidecar`](super::TestSidecar).
///
/// ```no_run
/// use eventbus::testing::{CloudEvent, HttpSidecar, Settlement};
///
/// # async fn run(address: std::net::SocketAddr) -> anyhow::Result<()> {
/// let sidecar = HttpSidecar::connect(address).await?;
/// let delivery = sidecar.publish("orders", CloudEvent::json(&serde_json::json!({"order_id": "o-1"}))).await?;
/// assert_eq!(delivery.settlement, Settlement::Acked);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct HttpSidecar {
    address: SocketAddr,
    subscriptions: Vec<pb::TopicSubscription>,
    pubsub: String,
    token: Option<String>,
    max_attempts: u32,
    deliveries: Mutex<Vec<Delivery>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl HttpSidecar {
    /// Reads the app's subscriptions from `GET /dapr/subscribe`.
    pub async fn connect(address: SocketAddr) -> Result<Self, HttpSidecarError> {
        let (status, body) = exchange(address, "GET", "/dapr/subscribe", &[], &[]).await?;
        let list: Vec<Value> = match serde_json::from_slice(&body) {
            Ok(list) if status == 200 => list,
            _ => return Err(HttpSidecarError::Subscriptions(format!("status {status}"))),
        };
        let subscriptions = list.iter().map(subscription).collect();
        Ok(HttpSidecar {
            address,
            subscriptions,
            pubsub: "pubsub".into(),
            token: None,
            max_attempts: 5,
            deliveries: Mutex::default(),
            next_id: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// The pub/sub `publish` uses (default `"pubsub"`).
    #[must_use]
    pub fn pubsub(mut self, pubsub: impl Into<String>) -> Self {
        self.pubsub = pubsub.into();
        self
    }

    /// Sends this `dapr-api-token`.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Deliveries per event before it is dead-lettered (default 5).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The subscriptions the app declared, in gRPC form.
    pub fn subscriptions(&self) -> &[pb::TopicSubscription] {
        &self.subscriptions
    }

    /// Every delivery so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Publishes one event on the default pub/sub; a dead-lettered event is
    /// also delivered to its dead-letter topic when the app subscribes to it.
    pub async fn publish(&self, topic: &str, mut event: CloudEvent) -> Result<Delivery, HttpSidecarError> {
        if event.id.is_empty() {
            event.id = format!("http-{}", self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        }
        let pubsub = self.pubsub.clone();
        let delivery = self.deliver(&pubsub, topic, &event).await?;
        if let Settlement::DeadLettered(dead_letter) = &delivery.settlement
            && self.find(&pubsub, dead_letter).is_some()
        {
            self.deliver(&pubsub, dead_letter, &event).await?;
        }
        Ok(delivery)
    }

    async fn deliver(&self, pubsub: &str, topic: &str, event: &CloudEvent) -> Result<Delivery, HttpSidecarError> {
        let mut delivery = Delivery::new(pubsub, topic, "", &event.id);
        let Some(subscription) = self.find(pubsub, topic) else { return Ok(self.record(delivery)) };
        let dead_letter = &subscription.dead_letter_topic;
        let Some(path) = route(subscription, event).map_err(|e| HttpSidecarError::Rule(e.to_string()))? else {
            delivery.settlement = settle_unrouted(dead_letter);
            return Ok(self.record(delivery));
        };
        delivery.path.clone_from(&path);
        let body = serde_json::to_vec(&event.structured(pubsub, topic)).unwrap_or_default();
        let mut headers = vec![("content-type", "application/cloudevents+json".to_owned())];
        if let Some(token) = &self.token {
            headers.push((TOKEN_HEADER, token.clone()));
        }
        let delivery = delivery
            .settle_with(dead_letter, self.max_attempts, || async {
                match exchange(self.address, "POST", &path, &headers, &body).await {
                    Ok((status, answer)) => Ok(daprd_reading(status, &answer)),
                    // As daprd: a failed call is retried.
                    Err(_) => Ok(Outcome::Retry),
                }
            })
            .await;
        Ok(self.record(delivery))
    }

    /// POSTs a JSON body to `path` as daprd would (with the token): the
    /// status and the answer, for requests `publish` does not model, such as
    /// a bulk request.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), HttpSidecarError> {
        let (status, answer) = self.send("POST", path, &serde_json::to_vec(body).unwrap_or_default()).await?;
        Ok((status, serde_json::from_slice(&answer).unwrap_or(Value::Null)))
    }

    /// Invokes `method` as daprd's HTTP app channel does (`<verb> /<method>`
    /// with the body): the status code and the body of the answer.
    pub async fn invoke(&self, verb: &str, method: &str, body: &[u8]) -> Result<(u16, Vec<u8>), HttpSidecarError> {
        Ok(self.send(verb, &format!("/{method}"), body).await?)
    }

    /// Delivers an input binding's event as daprd does: `OPTIONS /<name>`
    /// first (daprd delivers only when it is `2xx` or `405`), then `POST
    /// /<name>` with the data. The status code of the `POST` (daprd counts
    /// only `200` as handled), or of the probe when it refused.
    pub async fn binding(&self, name: &str, data: &[u8]) -> Result<u16, HttpSidecarError> {
        let (probe, _) = self.send("OPTIONS", &format!("/{name}"), b"").await?;
        if !(200..300).contains(&probe) && probe != 405 {
            return Ok(probe);
        }
        Ok(self.send("POST", &format!("/{name}"), data).await?.0)
    }

    /// Triggers a job as daprd does (`POST /job/<name>` with its data): the
    /// status code.
    pub async fn trigger_job(&self, name: &str, data: &[u8]) -> Result<u16, HttpSidecarError> {
        Ok(self.send("POST", &format!("/job/{name}"), data).await?.0)
    }

    /// One request with the token and a JSON content type.
    async fn send(&self, verb: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(token) = &self.token {
            headers.push((TOKEN_HEADER, token.clone()));
        }
        exchange(self.address, verb, path, &headers, body).await
    }

    fn find(&self, pubsub: &str, topic: &str) -> Option<&pb::TopicSubscription> {
        self.subscriptions.iter().find(|s| s.pubsub_name == pubsub && s.topic == topic)
    }

    fn record(&self, delivery: Delivery) -> Delivery {
        self.deliveries.lock().unwrap_or_else(|p| p.into_inner()).push(delivery.clone());
        delivery
    }
}

/// daprd's reading of a single event's HTTP answer
/// (`pkg/runtime/subscription/postman/http/http.go`).
fn daprd_reading(status: u16, body: &[u8]) -> Outcome {
    match status {
        200..=299 => match serde_json::from_slice::<Value>(body).ok().as_ref().and_then(|b| b.get("status")) {
            Some(Value::String(s)) if s.eq_ignore_ascii_case("RETRY") => Outcome::Retry,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("DROP") => Outcome::Drop,
            Some(Value::String(s)) if s.is_empty() || s.eq_ignore_ascii_case("SUCCESS") => Outcome::Success,
            Some(Value::String(_)) => Outcome::Retry,
            _ => Outcome::Success,
        },
        404 => Outcome::Drop,
        _ => Outcome::Retry,
    }
}

/// A subscription of `GET /dapr/subscribe` in gRPC form.
fn subscription(entry: &Value) -> pb::TopicSubscription {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let routes = &entry["routes"];
    let rules = routes["rules"]
        .as_array()
        .map(|rules| {
            rules.iter().map(|r| pb::TopicRule { r#match: text(&r["match"]), path: text(&r["path"]) }).collect()
        })
        .unwrap_or_default();
    let default = match text(&routes["default"]) {
        empty if empty.is_empty() => text(&entry["route"]),
        path => path,
    };
    pb::TopicSubscription {
        pubsub_name: text(&entry["pubsubname"]),
        topic: text(&entry["topic"]),
        routes: Some(pb::TopicRoutes { rules, default }),
        dead_letter_topic: text(&entry["deadLetterTopic"]),
        ..Default::default()
    }
}

/// One HTTP/1.1 exchange on a fresh connection: the status and the body.
async fn exchange(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(address).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer");
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(invalid)?;
    let head = std::str::from_utf8(&answer[..split]).map_err(|_| invalid())?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(invalid)?;
    Ok((status, answer[split + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daprd_reads_answers_by_status_code_and_body() {
        assert_eq!(daprd_reading(200, br#"{"status":"SUCCESS"}"#), Outcome::Success);
        assert_eq!(daprd_reading(200, br#"{"status":"DROP"}"#), Outcome::Drop);
        assert_eq!(daprd_reading(200, br#"{"status":"RETRY"}"#), Outcome::Retry);
        assert_eq!(daprd_reading(200, br#"{"status":"WHAT"}"#), Outcome::Retry);
        assert_eq!(daprd_reading(204, b""), Outcome::Success);
        assert_eq!(daprd_reading(404, b""), Outcome::Drop);
        assert_eq!(daprd_reading(500, br#"{"status":"SUCCESS"}"#), Outcome::Retry);
    }
}
