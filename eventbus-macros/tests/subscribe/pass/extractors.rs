//! Handlers take extractors in any order, with or without the event; the
//! function stays an ordinary function.

use std::sync::Arc;

use eventbus::extract::{EventId, Metadata, TraceContext};
use eventbus::{Envelope, Event, Server, State, consumers, subscribe};

#[subscribe("orders")]
async fn state_first(State(_n): State<u32>, EventId(_id): EventId, _event: Event<serde_json::Value>) {}

#[subscribe("ticks")]
async fn no_event(State(_n): State<u32>, _trace: TraceContext, _metadata: Metadata) {}

#[subscribe("raw")]
async fn whole_envelope(_envelope: Arc<Envelope>) -> eventbus::Result {
    Ok(())
}

fn main() {
    // Still callable as written.
    let _future = state_first(State(1), EventId("e".into()), Event::new(Envelope::default(), serde_json::Value::Null));
    let server = Server::builder()
        .state(7u32)
        .consumers(consumers![state_first, no_event])
        .consumer(whole_envelope {})
        .build()
        .unwrap();
    assert_eq!(server.subscriptions().len(), 3);
}
