//! An event bigger than the limit is answered (DROP), not retried forever.
#![allow(clippy::unwrap_used)]

mod common;

use common::{builder, start};
use eventbus::testing::{CloudEvent, Settlement};
use eventbus::{Event, Outcome, Raw, Subscription, handler};

#[tokio::test]
async fn oversize_event_is_dropped_to_the_dead_letter_topic() {
    let app = start(
        builder()
            .max_message_size(1024)
            .consumer(handler(Subscription::new("blobs").dead_letter("blobs.dlq"), |_: Event<Raw>| async {})),
    )
    .await;
    let sidecar = app.sidecar().await;
    let small = sidecar.publish("blobs", CloudEvent::bytes("application/octet-stream", vec![1u8; 1024])).await.unwrap();
    assert_eq!(small.settlement, Settlement::Acked);
    let big = sidecar.publish("blobs", CloudEvent::bytes("application/octet-stream", vec![1u8; 1025])).await.unwrap();
    assert_eq!(big.attempts, vec![Ok(Outcome::Drop)]);
    assert_eq!(big.settlement, Settlement::DeadLettered("blobs.dlq".into()));
}

#[tokio::test]
async fn above_tonics_default_4_mib_the_default_limit_still_answers() {
    let app = start(builder().consumer(handler(Subscription::new("blobs"), |_: Event<Raw>| async {}))).await;
    let sidecar = app.sidecar().await;
    // 5 MiB: tonic alone would fail the call with a non-Unimplemented error,
    // which daprd retries forever.
    let big = sidecar
        .publish("blobs", CloudEvent::bytes("application/octet-stream", vec![7u8; 5 * 1024 * 1024]))
        .await
        .unwrap();
    assert_eq!(big.attempts, vec![Ok(Outcome::Drop)]);
}
