//! Exponential backoff with jitter, shared by the stream reconnection and the
//! publisher's retries.

use std::time::Duration;

/// Delays that double per retry from `first`, capped at `cap`, each taken at
/// random in its upper half, so that many clients failing together do not
/// retry in step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) first: Duration,
    pub(crate) cap: Duration,
}

impl Backoff {
    /// The delay before retry number `retry` (0 for the first).
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let bound = self.first.saturating_mul(1 << retry.min(16)).min(self.cap);
        bound.mul_f64(0.5 + random_unit() / 2.0)
    }
}

/// A number in [0, 1) from the standard library's randomly keyed hasher: no
/// random-number crate for a jitter.
fn random_unit() -> f64 {
    let random = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), ());
    (random % 1_000_000) as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_stay_in_their_upper_half_and_are_capped() {
        let backoff = Backoff { first: Duration::from_millis(100), cap: Duration::from_secs(10) };
        for retry in 0..40 {
            let bound = Duration::from_millis(100).saturating_mul(1 << retry.min(16)).min(Duration::from_secs(10));
            let delay = backoff.delay(retry);
            assert!(delay >= bound / 2 && delay <= bound, "{retry}: {delay:?} outside {bound:?}");
        }
    }
}
