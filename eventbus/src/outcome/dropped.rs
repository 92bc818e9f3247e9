//! Telling the app what it dropped: daprd dead-letters an event answered
//! `DROP` without saying why, so the reason is the app's to keep (see
//! [`ServerBuilder::on_drop`](crate::ServerBuilder::on_drop)).

use std::sync::Arc;

use crate::extract::Context;

/// An event the server answered `DROP`, which daprd sends to the
/// subscription's dead-letter topic at once, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dropped {
    /// The pub/sub component.
    pub pubsub: String,
    /// The topic it was delivered on.
    pub topic: String,
    /// Its CloudEvent id (a bulk entry that held no event: the entry id).
    pub id: String,
    /// Why: the handler's permanent error, a payload that did not decode,
    /// an oversize event, no route, …
    pub reason: String,
}

/// The app's `on_drop` hook, kept in the server's [`Context`].
#[derive(Clone)]
pub(crate) struct DropHook(pub Arc<dyn Fn(&Dropped) + Send + Sync>);

/// Tells the hook in `context`, if there is one, that an event was dropped.
pub(crate) fn report(context: &Context, pubsub: &str, topic: &str, id: &str, reason: impl std::fmt::Display) {
    if let Some(DropHook(hook)) = context.get_ref::<DropHook>() {
        hook(&Dropped {
            pubsub: pubsub.to_owned(),
            topic: topic.to_owned(),
            id: id.to_owned(),
            reason: reason.to_string(),
        });
    }
}
