//! Service invocation, input binding and job handlers, boxed.

use std::future::Future;
use std::sync::Arc;

use crate::grpc::proto::common::{InvokeRequest, InvokeResponse};
use crate::grpc::proto::runtime::{BindingEventRequest, BindingEventResponse};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use tonic::Status;

use crate::invoke::{FromInvocation, IntoInvokeResponse};
use crate::outcome::HandlerError;

/// A boxed invocation handler.
pub(crate) type InvocationFn =
    Arc<dyn Fn(InvokeRequest) -> BoxFuture<'static, Result<InvokeResponse, Status>> + Send + Sync>;
/// A boxed binding handler.
pub(crate) type BindingFn =
    Arc<dyn Fn(BindingEventRequest) -> BoxFuture<'static, Result<BindingEventResponse, Status>> + Send + Sync>;
/// A boxed job handler.
pub(crate) type JobFn = Arc<dyn Fn(Job) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;
/// A boxed readiness probe.
pub(crate) type ReadinessFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

pub(crate) fn box_invocation<F, Fut, Req, Resp>(f: F) -> InvocationFn
where
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
    Req: FromInvocation,
    Resp: IntoInvokeResponse,
{
    let f = Arc::new(f);
    Arc::new(move |request| {
        let f = f.clone();
        Box::pin(async move { f(Req::from_invocation(request)?).await.into_invoke_response() })
    })
}

pub(crate) fn box_binding<F, Fut>(f: F) -> BindingFn
where
    F: Fn(BindingEventRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<BindingEventResponse, Status>> + Send + 'static,
{
    Arc::new(move |request| Box::pin(f(request)))
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
}

/// The job name of a `JobEventRequest`: `name`, else `method` without its `job/` prefix.
pub(crate) fn job_name<'a>(name: &'a str, method: &'a str) -> &'a str {
    if !name.is_empty() { name } else { method.strip_prefix("job/").unwrap_or(method) }
}
