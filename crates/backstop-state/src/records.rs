//! The records of targets as stored: a breaker's last transition, a rate-limit hold, a learned capability.
//! Times are wall-clock Unix milliseconds, so that they mean the same in every replica and after a restart.

use crate::record::now_ms;
use backstop_core::{BreakerEvent, TripReason};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

/// A breaker's last transition, under `breaker:{target}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakerRecord {
    /// `open` or `closed`.
    pub state: String,
    /// When the transition happened.
    pub at: u64,
    /// When an open breaker turns half-open (`None`: forced open until closed by hand).
    pub until: Option<u64>,
    /// Why it opened.
    pub reason: Option<StoredReason>,
    /// Opened or closed by an operator.
    pub forced: bool,
    /// The replica that made the transition.
    pub replica: String,
}

/// A rate-limit hold, under `hold:{target}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoldRecord {
    /// No call before this time.
    pub until: u64,
    /// The replica that saw the hint.
    pub replica: String,
}

/// A learned capability, under `cap:{target}:{name}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapabilityRecord {
    /// The replica that learned it.
    pub replica: String,
}

/// A fault an operator injected into a target (or cleared: `fault` is `None`), under
/// `fault:{target}`. The fault itself is the gateway's, kept as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// What the fault simulates; `None` once cleared.
    pub fault: Option<serde_json::Value>,
    /// When it stops applying.
    pub until: u64,
    /// The replica whose operator injected or cleared it.
    pub replica: String,
}

/// [`TripReason`] as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoredReason {
    /// Consecutive failures.
    ConsecutiveFailures {
        /// How many.
        n: u32,
    },
    /// Failure rate over the window.
    FailureRate {
        /// Failures divided by calls.
        rate: f64,
        /// Calls in the window.
        calls: u32,
    },
    /// Credentials, permission, billing.
    TargetBroken {
        /// What the target said.
        detail: String,
    },
    /// Opened by an operator.
    Forced,
    /// A half-open probe failed.
    HalfOpenProbeFailed,
}

impl From<&TripReason> for StoredReason {
    fn from(reason: &TripReason) -> Self {
        match reason {
            TripReason::ConsecutiveFailures(n) => StoredReason::ConsecutiveFailures { n: *n },
            TripReason::FailureRate { rate, calls } => StoredReason::FailureRate {
                rate: *rate,
                calls: *calls,
            },
            TripReason::TargetBroken(detail) => StoredReason::TargetBroken {
                detail: detail.clone(),
            },
            TripReason::Forced => StoredReason::Forced,
            TripReason::HalfOpenProbeFailed => StoredReason::HalfOpenProbeFailed,
        }
    }
}

impl From<StoredReason> for TripReason {
    fn from(reason: StoredReason) -> Self {
        match reason {
            StoredReason::ConsecutiveFailures { n } => TripReason::ConsecutiveFailures(n),
            StoredReason::FailureRate { rate, calls } => TripReason::FailureRate { rate, calls },
            StoredReason::TargetBroken { detail } => TripReason::TargetBroken(detail),
            StoredReason::Forced => TripReason::Forced,
            StoredReason::HalfOpenProbeFailed => TripReason::HalfOpenProbeFailed,
        }
    }
}

/// The wall-clock time of `instant`, in Unix milliseconds.
pub fn to_wall(instant: Instant) -> u64 {
    let now = Instant::now();
    let wall = now_ms();
    if instant >= now {
        wall.saturating_add(millis(instant - now))
    } else {
        wall.saturating_sub(millis(now - instant))
    }
}

/// The instant of the wall-clock time `ms` (now, if it has passed).
pub fn to_instant(ms: u64) -> Instant {
    let ahead = ms.saturating_sub(now_ms());
    Instant::now() + Duration::from_millis(ahead)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl BreakerRecord {
    /// The record of a local `event` (`None` for a hold, which has its own record).
    pub fn of(event: &BreakerEvent, replica: &str) -> Option<BreakerRecord> {
        let (state, until, reason, forced) = match event {
            BreakerEvent::Opened { until, reason } => (
                "open",
                until.map(to_wall),
                Some(StoredReason::from(reason)),
                *reason == TripReason::Forced,
            ),
            BreakerEvent::Closed { forced } => ("closed", None, None, *forced),
            BreakerEvent::Held { .. } => return None,
        };
        Some(BreakerRecord {
            state: state.to_string(),
            at: now_ms(),
            until,
            reason,
            forced,
            replica: replica.to_string(),
        })
    }

    /// The event that brings a local breaker to this record's state.
    pub fn event(&self) -> BreakerEvent {
        if self.state == "open" {
            BreakerEvent::Opened {
                until: self.until.map(to_instant),
                reason: self
                    .reason
                    .clone()
                    .map_or(TripReason::Forced, TripReason::from),
            }
        } else {
            BreakerEvent::Closed {
                forced: self.forced,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breaker_record_round_trips_through_json() {
        let event = BreakerEvent::Opened {
            until: Some(Instant::now() + Duration::from_secs(30)),
            reason: TripReason::TargetBroken("401".into()),
        };
        let record = BreakerRecord::of(&event, "a").unwrap();
        let json = serde_json::to_string(&record).unwrap();
        let back: BreakerRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
        let BreakerEvent::Opened { until, reason } = back.event() else {
            panic!("not open")
        };
        assert_eq!(reason, TripReason::TargetBroken("401".into()));
        let left = until.unwrap() - Instant::now();
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30));
    }
}
