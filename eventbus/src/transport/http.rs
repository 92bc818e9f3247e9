//! The HTTP app channel (`--app-protocol http`): the same consumers behind
//! Dapr's HTTP protocol, on axum.
//!
//! | request | answer |
//! |---|---|
//! | `GET /dapr/subscribe` | the subscriptions: routes and rules, dead-letter topic, metadata, bulk |
//! | `POST <route>` with a CloudEvent | `200 {"status": "SUCCESS" \| "RETRY" \| "DROP"}` |
//! | `POST <route>` with a bulk request (`entries`) | `200 {"statuses": [{"entryId", "status"}]}`, one per entry |
//! | `<verb> /<method>` (service invocation) | the handler's reply: `200` with its body and content type, or its status's HTTP code |
//! | `OPTIONS /<binding>` (daprd's probe at start) | `200` |
//! | `POST /<binding>` (an input binding's event) | `200`, or the handler's status's HTTP code (daprd counts only `200` as handled) |
//! | `POST /job/<name>` (a Dapr job) | `200`, `404` for an unknown job, `500` when it fails |
//! | `GET /dapr/config` | `{}` (no actors) |
//! | `GET /healthz` | `200`, or `503` with the reason while not ready |
//!
//! Every event is answered `200` with its status in the body, so daprd's
//! reading of status codes (404 drops, other errors retry) never decides an
//! event's fate by accident; a body that is not an event is answered
//! `{"status": "DROP"}`, and a wrong or missing `dapr-api-token` `401` (one
//! middleware in front of every route but the lists, health and probes)
//! (daprd retries it). A path is a job, then a binding, then an invocation
//! method, then an event route; serving fails at start when one path is two
//! of them.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use tonic::metadata::MetadataMap;

use super::token::require_token_http;
use crate::binding::BindingEvent;
use crate::event::{Envelope, Metadata, metadata_from_grpc, take_string};
use crate::invoke::Invocation;
use crate::outcome::Outcome;
use crate::pipeline::invocation::Job;
use crate::pipeline::{Entry, Pipeline, Unreadable};
use crate::status::Status;

/// The state of the HTTP routes.
#[derive(Clone)]
pub(crate) struct Http {
    pipeline: Arc<Pipeline>,
    default_pubsub: String,
}

/// The axum router of the HTTP app channel.
pub(crate) fn router(pipeline: Arc<Pipeline>, default_pubsub: String) -> Router {
    let token: Option<Arc<str>> = pipeline.token.as_deref().map(Arc::from);
    Router::new()
        .route("/dapr/subscribe", get(subscriptions))
        .route("/dapr/config", get(|| async { axum::Json(json!({})) }))
        .route("/healthz", get(health))
        .fallback(app)
        .layer(axum::middleware::from_fn_with_state(token, require_token_http))
        .with_state(Http { pipeline, default_pubsub })
}

/// Fails on an event route that is also a job, binding or invocation path:
/// over HTTP, daprd could not tell them apart.
pub(crate) fn check_paths(pipeline: &Pipeline) -> Result<(), crate::error::Error> {
    for subscription in pipeline.registry.subscriptions() {
        let rules = subscription.rules.iter().map(|rule| rule.path.as_str());
        for path in rules.chain(subscription.default_path.as_deref()).map(|path| path.trim_start_matches('/')) {
            if path.starts_with("job/") || pipeline.binds(path) || pipeline.invokes(path) {
                return Err(crate::error::Error::Unsupported {
                    subscription: format!("{}/{}", subscription.pubsub, subscription.topic),
                    transport: "http",
                    what: "its route is also a job, binding or invocation path: give it another `path`",
                });
            }
        }
    }
    Ok(())
}

/// The route daprd posts a registry path to: the path with a leading `/`.
fn http_route(path: &str) -> String {
    if path.starts_with('/') { path.to_owned() } else { format!("/{path}") }
}

async fn subscriptions(State(http): State<Http>) -> axum::Json<Value> {
    let list: Vec<Value> = http
        .pipeline
        .registry
        .subscriptions()
        .iter()
        .map(|s| {
            let mut entry = json!({
                "pubsubname": s.pubsub,
                "topic": s.topic,
                "routes": {
                    "rules": s.rules.iter().map(|r| json!({"match": r.matches, "path": http_route(&r.path)})).collect::<Vec<_>>(),
                    "default": s.default_path.as_deref().map(http_route).unwrap_or_default(),
                },
                "metadata": s.metadata,
            });
            if let Some(dead_letter) = &s.dead_letter {
                entry["deadLetterTopic"] = json!(dead_letter);
            }
            if let Some(bulk) = &s.bulk {
                entry["bulkSubscribe"] = json!({
                    "enabled": true,
                    "maxMessagesCount": bulk.max_messages,
                    "maxAwaitDurationMs": bulk.max_await_ms,
                });
            }
            entry
        })
        .collect();
    axum::Json(Value::Array(list))
}

async fn health(State(http): State<Http>) -> Response {
    match http.pipeline.ready().await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "/healthz: not ready");
            (StatusCode::SERVICE_UNAVAILABLE, reason).into_response()
        }
    }
}

/// Any other request: a job, a binding's event (or daprd's probe for it),
/// a service invocation, or an event or bulk request on a route.
async fn app(State(http): State<Http>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let grpc_metadata = MetadataMap::from_headers(headers);
    let name = uri.path().trim_start_matches('/');
    let content_type = grpc_metadata.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if let Some(job) = name.strip_prefix("job/").filter(|_| method == Method::POST) {
        let job = Job {
            name: job.to_owned(),
            data: body,
            type_url: String::new(),
            content_type,
            extensions: Default::default(),
        };
        return answer(http.pipeline.job(job).await.map(|()| StatusCode::OK.into_response()));
    }
    if http.pipeline.binds(name) && (method == Method::OPTIONS || method == Method::POST) {
        if method == Method::OPTIONS {
            return StatusCode::OK.into_response();
        }
        let metadata = grpc_metadata.into_headers();
        let metadata = metadata.iter().filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())));
        let metadata = metadata.collect();
        let event = BindingEvent { name: name.to_owned(), data: body, metadata, extensions: Default::default() };
        return answer(http.pipeline.binding(event).await.map(|()| StatusCode::OK.into_response()));
    }
    if http.pipeline.invokes(name) {
        let mut invocation = Invocation::new(name, content_type, body);
        invocation.http_verb = Some(method.as_str().to_owned());
        invocation.querystring = uri.query().map(str::to_owned);
        return answer(http.pipeline.invoke(invocation).await.map(|reply| {
            let content_type = [(axum::http::header::CONTENT_TYPE, reply.content_type)];
            (content_type, reply.data).into_response()
        }));
    }
    if method != Method::POST {
        return StatusCode::NOT_FOUND.into_response();
    }
    events(http, grpc_metadata, uri.path(), body).await
}

/// The HTTP answer of a call: its response, or its status's code and message.
fn answer(result: Result<Response, Status>) -> Response {
    match result {
        Ok(response) => response,
        Err(status) => {
            let code = StatusCode::from_u16(status.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (code, status.message().to_owned()).into_response()
        }
    }
}

/// A POSTed event or bulk request on a route.
async fn events(http: Http, grpc_metadata: MetadataMap, path: &str, body: Bytes) -> Response {
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&body) else {
        tracing::error!(path, bytes = body.len(), "request body is not a CloudEvent or bulk request; dropped");
        return status(Outcome::Drop);
    };
    let metadata = metadata_from_grpc(grpc_metadata);
    let pubsub = take_string(&mut body, "pubsubname").unwrap_or_else(|| http.default_pubsub.clone());
    let topic = take_string(&mut body, "topic").unwrap_or_default();
    match body.remove("entries") {
        Some(Value::Array(entries)) => bulk(&http.pipeline, &pubsub, &topic, path, entries, &metadata).await,
        _ => {
            let entries = vec![cloud_event(body, &pubsub, &topic, path, &metadata)];
            let outcome = http.pipeline.deliver(&pubsub, &topic, path, entries).await.pop();
            status(outcome.unwrap_or(Outcome::Retry))
        }
    }
}

async fn bulk(
    pipeline: &Pipeline,
    pubsub: &str,
    topic: &str,
    path: &str,
    entries: Vec<Value>,
    metadata: &Metadata,
) -> Response {
    let mut ids = Vec::with_capacity(entries.len());
    let mut events: Vec<Entry> = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Object(mut entry) = entry else {
            ids.push(String::new());
            events.push(Err(Unreadable::new(String::new(), "entry is not an object")));
            continue;
        };
        let entry_id = take_string(&mut entry, "entryId").unwrap_or_default();
        ids.push(entry_id.clone());
        let content_type = take_string(&mut entry, "contentType").unwrap_or_default();
        events.push(match entry.remove("event") {
            Some(Value::Object(event)) if content_type.contains("cloudevents") || content_type.is_empty() => {
                cloud_event(event, pubsub, topic, path, metadata)
            }
            Some(raw) => Ok(Arc::new(Envelope {
                id: entry_id,
                data_content_type: content_type,
                data: match raw {
                    Value::String(text) => text.into_bytes().into(),
                    other => serde_json::to_vec(&other).unwrap_or_default().into(),
                },
                topic: topic.to_owned(),
                pubsub: pubsub.to_owned(),
                path: path.to_owned(),
                metadata: metadata.clone(),
                ..Envelope::default()
            })),
            None => Err(Unreadable::new(entry_id, "entry has no event")),
        });
    }
    let outcomes = pipeline.deliver(pubsub, topic, path, events).await;
    let statuses: Vec<Value> = ids
        .into_iter()
        .zip(outcomes)
        .map(|(entry_id, outcome)| json!({"entryId": entry_id, "status": wire(outcome)}))
        .collect();
    axum::Json(json!({ "statuses": statuses })).into_response()
}

/// A structured CloudEvent as daprd posts it, on this delivery's route.
fn cloud_event(event: Map<String, Value>, pubsub: &str, topic: &str, path: &str, metadata: &Metadata) -> Entry {
    let id = event.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut envelope =
        Envelope::from_structured(event).map_err(|_| Unreadable::new(id, "data_base64 is not base64"))?;
    envelope.pubsub = pubsub.to_owned();
    envelope.topic = topic.to_owned();
    envelope.path = path.to_owned();
    envelope.metadata = metadata.clone();
    Ok(Arc::new(envelope))
}

/// The status word of Dapr's HTTP protocol.
fn wire(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "SUCCESS",
        Outcome::Retry => "RETRY",
        Outcome::Drop => "DROP",
    }
}

fn status(outcome: Outcome) -> Response {
    axum::Json(json!({ "status": wire(outcome) })).into_response()
}
