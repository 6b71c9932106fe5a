//! What a breaker shares with other processes, and how it takes in what they learned.
//!
//! A breaker alone knows only the calls of its own process: a replica that restarts forgets a dead target, and two
//! replicas each pay their own failures to learn what the other already knows. A [`BreakerHook`] attached with
//! [`Breaker::attach_hook`](super::Breaker::attach_hook) hears of every transition *decided here* (a trip, a close,
//! a rate-limit hold) so that it can store and publish it; what others decided comes back through
//! [`Breaker::adopt`](super::Breaker::adopt), which changes the state without telling the hook again (no echo).
//!
//! The hook is also the *probe gate*: when a half-open breaker is about to let a probe through, it asks
//! [`BreakerHook::allow_probe`], so that across replicas only the holder of a shared lease probes a target.

use super::TripReason;
use tokio::time::Instant;

/// A change of a breaker worth sharing, or one learned from elsewhere.
#[derive(Clone, Debug, PartialEq)]
pub enum BreakerEvent {
    /// The breaker opened until `until` (`None`: forced open until closed by hand).
    Opened {
        /// When it turns half-open.
        until: Option<Instant>,
        /// Why it opened ([`TripReason::Forced`] when an operator opened it).
        reason: TripReason,
    },
    /// The breaker closed: its probes succeeded, or an operator closed it (`forced`).
    Closed {
        /// Closed by hand.
        forced: bool,
    },
    /// The target asked not to be called before `until` (a `Retry-After` or rate-limit reset hint).
    Held {
        /// The end of the hold.
        until: Instant,
    },
}

/// Hears a breaker's own transitions and gates its half-open probes. Called synchronously: the transition
/// callbacks outside the breaker's lock, [`allow_probe`](BreakerHook::allow_probe) under it, so neither may wait
/// nor call back into the breaker; hand the work to a task.
pub trait BreakerHook: Send + Sync + 'static {
    /// The breaker named `target` changed by its own decision (never called for [`Breaker::adopt`]).
    ///
    /// [`Breaker::adopt`]: super::Breaker::adopt
    fn changed(&self, target: &str, event: &BreakerEvent);

    /// Whether the half-open breaker `target` may send a probe now; `false` keeps skipping the target.
    fn allow_probe(&self, _target: &str) -> bool {
        true
    }
}
