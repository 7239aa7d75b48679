//! Exponential backoff with jitter, for retrying the broker and the database.
//!
//! A dozen lines rather than a dependency: the `backoff` crate is unmaintained
//! (RUSTSEC-2025-0012) and the relay needs nothing beyond "double up to a cap, randomise".

use std::time::Duration;

use rand::Rng;

/// The delays between attempts: doubling from `initial` up to `max`, each drawn uniformly from
/// the upper half of the current step ("equal jitter"), so relays restarted together do not
/// retry in lockstep, yet never retry sooner than half the step.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            step: initial,
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// Back to the initial delay, after a success.
    pub(crate) fn reset(&mut self) {
        self.step = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let steps = [100, 200, 400, 800, 800, 800];
        for step in steps {
            let delay = backoff.next_delay();
            let step = Duration::from_millis(step);
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} for a {step:?} step"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
