//! The HTTP app channel: daprd's side of `--app-protocol http`, for apps
//! served with [`Transport::http`](crate::Transport::http).

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::transport::{Call, Deliver};
use super::{Attempt, SidecarError, SidecarTransport, TestSidecar, pb};
use crate::outcome::Outcome;
use crate::sidecar::TOKEN_HEADER;

/// The HTTP app channel, as daprd's `--app-protocol http`: reads `GET
/// /dapr/subscribe`, POSTs structured CloudEvents to the chosen route, and
/// reads the answer as daprd does (a 2xx with `{"status": …}`; a 2xx with
/// no status is SUCCESS; 404 is DROP; other codes, and a failed call, RETRY).
#[derive(Debug)]
pub struct Http {
    address: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    subscriptions: Vec<pb::TopicSubscription>,
}

impl SidecarTransport for Http {}

impl Http {
    /// One request: the status code and the body of the answer.
    async fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), SidecarError> {
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| SidecarError::Connect(e);
        let mut request = http::Request::builder()
            .method(http::Method::from_bytes(method.as_bytes()).map_err(|e| failed(e.into()))?)
            .uri(format!("http://{}{path}", self.address));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| failed(e.into()))?;
        let response = self.client.request(request).await.map_err(|e| failed(e.into()))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| failed(e.into()))?.to_bytes();
        Ok((status, body.to_vec()))
    }
}

impl Deliver for Http {
    fn subscriptions(&self) -> Vec<pb::TopicSubscription> {
        self.subscriptions.clone()
    }

    async fn attempt(&self, call: &Call<'_>) -> Attempt {
        let body = serde_json::to_vec(&call.event.structured(call.pubsub, call.topic)).unwrap_or_default();
        let mut headers = vec![("content-type", "application/cloudevents+json")];
        headers.extend(call.token.map(|token| (TOKEN_HEADER, token)));
        match self.exchange("POST", call.path, &headers, body).await {
            Ok((status, answer)) => Ok(daprd_reading(status, &answer)),
            // As daprd: a failed call is retried.
            Err(_) => Ok(Outcome::Retry),
        }
    }
}

impl TestSidecar<Http> {
    /// Connects to the app's HTTP app channel and reads its subscriptions
    /// from `GET /dapr/subscribe`, as daprd does at start.
    pub async fn connect_http(address: SocketAddr) -> Result<Self, SidecarError> {
        let client = Client::builder(TokioExecutor::new()).build_http();
        let mut transport = Http { address, client, subscriptions: Vec::new() };
        let (status, body) = transport.exchange("GET", "/dapr/subscribe", &[], Vec::new()).await?;
        let list: Vec<Value> = match serde_json::from_slice(&body) {
            Ok(list) if status == 200 => list,
            _ => return Err(SidecarError::Subscriptions(format!("GET /dapr/subscribe answered {status}"))),
        };
        transport.subscriptions = list.iter().map(subscription).collect();
        Ok(TestSidecar::with(transport))
    }

    /// POSTs a JSON body to `path` as daprd would (with the token): the
    /// status and the answer, for requests `publish` does not model, such as
    /// a bulk request.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), SidecarError> {
        let (status, answer) = self.send("POST", path, serde_json::to_vec(body).unwrap_or_default()).await?;
        Ok((status, serde_json::from_slice(&answer).unwrap_or(Value::Null)))
    }

    /// Invokes `method` as daprd's HTTP app channel does (`<verb> /<method>`
    /// with the body): the status code and the body of the answer.
    pub async fn invoke(&self, verb: &str, method: &str, body: &[u8]) -> Result<(u16, Vec<u8>), SidecarError> {
        self.send(verb, &format!("/{method}"), body.to_vec()).await
    }

    /// Delivers an input binding's event as daprd does: `OPTIONS /<name>`
    /// first (daprd delivers only when it is `2xx` or `405`), then `POST
    /// /<name>` with the data. The status code of the `POST` (daprd counts
    /// only `200` as handled), or of the probe when it refused.
    pub async fn binding(&self, name: &str, data: &[u8]) -> Result<u16, SidecarError> {
        let (probe, _) = self.send("OPTIONS", &format!("/{name}"), Vec::new()).await?;
        if !(200..300).contains(&probe) && probe != 405 {
            return Ok(probe);
        }
        Ok(self.send("POST", &format!("/{name}"), data.to_vec()).await?.0)
    }

    /// Triggers a job as daprd does (`POST /job/<name>` with its data): the
    /// status code.
    pub async fn trigger_job(&self, name: &str, data: &[u8]) -> Result<u16, SidecarError> {
        Ok(self.send("POST", &format!("/job/{name}"), data.to_vec()).await?.0)
    }

    /// One request with the token and a JSON content type.
    async fn send(&self, verb: &str, path: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), SidecarError> {
        let mut headers = vec![("content-type", "application/json")];
        headers.extend(self.token.as_deref().map(|token| (TOKEN_HEADER, token)));
        self.transport.exchange(verb, path, &headers, body).await
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
