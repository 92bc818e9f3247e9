//! Input bindings (`OnBindingEvent`): a handler takes a [`BindingEvent`]
//! and answers `()`, or a [`Status`] error, which tells the binding the
//! event was not handled (what it does then is the component's: a queue
//! redelivers, a cron binding waits for its next tick).
//!
//! ```
//! use eventbus::Server;
//! use eventbus::binding::BindingEvent;
//! use eventbus::status::Status;
//!
//! async fn on_tick(event: BindingEvent) -> Result<(), Status> {
//!     tracing::info!(binding = %event.name, bytes = event.data.len(), "tick");
//!     Ok(())
//! }
//!
//! let server = Server::builder().binding("tick", on_tick).build().unwrap();
//! ```

use std::collections::HashMap;

use bytes::Bytes;

use crate::status::Status;

/// One event of an input binding.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BindingEvent {
    /// The binding's name.
    pub name: String,
    /// The event's data.
    pub data: Bytes,
    /// The binding's metadata for this event.
    pub metadata: HashMap<String, String>,
    /// What the layers put in the request (see
    /// [`Extensions`](crate::middleware::Extensions)).
    pub extensions: crate::middleware::Extensions,
}

impl BindingEvent {
    /// An event of binding `name` (for tests and replays).
    pub fn new(name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        BindingEvent { name: name.into(), data: data.into(), ..BindingEvent::default() }
    }
}

/// What a binding handler can answer with: `()` or `Result<(), Status>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a binding handler's answer",
    label = "answer `()` or `Result<(), Status>`"
)]
pub trait IntoBindingAnswer: crate::sealed::IntoBindingAnswer {
    /// `Ok` when the event was handled.
    fn into_binding_answer(self) -> Result<(), Status>;
}

impl crate::sealed::IntoBindingAnswer for () {}
impl IntoBindingAnswer for () {
    fn into_binding_answer(self) -> Result<(), Status> {
        Ok(())
    }
}

impl crate::sealed::IntoBindingAnswer for Result<(), Status> {}
impl IntoBindingAnswer for Result<(), Status> {
    fn into_binding_answer(self) -> Result<(), Status> {
        self
    }
}
