//! Service invocation, input binding and job handlers, boxed.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::binding::{BindingEvent, IntoBindingAnswer};
use crate::invoke::{FromInvocation, IntoReply, Invocation, Reply};
use crate::outcome::HandlerError;
use crate::status::Status;

/// A boxed invocation handler.
pub(crate) type InvocationFn = Arc<dyn Fn(Invocation) -> BoxFuture<'static, Result<Reply, Status>> + Send + Sync>;
/// A boxed binding handler.
pub(crate) type BindingFn = Arc<dyn Fn(BindingEvent) -> BoxFuture<'static, Result<(), Status>> + Send + Sync>;
/// A boxed job handler.
pub(crate) type JobFn = Arc<dyn Fn(Job) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;
/// A boxed readiness probe.
pub(crate) type ReadinessFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

pub(crate) fn box_invocation<F, Fut, Req, Resp>(f: F) -> InvocationFn
where
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
    Req: FromInvocation,
    Resp: IntoReply,
{
    let f = Arc::new(f);
    Arc::new(move |invocation| {
        let f = f.clone();
        Box::pin(async move { f(Req::from_invocation(invocation)?).await.into_reply() })
    })
}

pub(crate) fn box_binding<F, Fut>(f: F) -> BindingFn
where
    F: Fn(BindingEvent) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoBindingAnswer,
{
    let f = Arc::new(f);
    Arc::new(move |event| {
        let f = f.clone();
        Box::pin(async move { f(event).await.into_binding_answer() })
    })
}

pub(crate) fn box_job<F, Fut>(f: F) -> JobFn
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Arc::new(move |job| Box::pin(f(job)))
}

pub(crate) fn box_readiness<F, Fut>(f: F) -> ReadinessFn
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move || Box::pin(f()))
}

/// A Dapr Jobs API trigger (`OnJobEvent`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Job {
    /// The job's name.
    pub name: String,
    /// The job's data (the `Any` value's bytes).
    pub data: Bytes,
    /// The data's type URL, when the scheduler sent one.
    pub type_url: String,
    /// The content type.
    pub content_type: String,
    /// What the layers put in the request (see
    /// [`Extensions`](crate::middleware::Extensions)).
    pub extensions: crate::middleware::Extensions,
}

/// The job name of a `JobEventRequest`: `name`, else `method` without its `job/` prefix.
pub(crate) fn job_name<'a>(name: &'a str, method: &'a str) -> &'a str {
    if !name.is_empty() { name } else { method.strip_prefix("job/").unwrap_or(method) }
}
