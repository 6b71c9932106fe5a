//! Why a relayed stream stops early: the target failed (the attempt loop or a rescue
//! deals with it), or the gateway cut it itself, at a deadline or at a limit.

use super::super::failure::Failure;
use backstop_core::FailureClass;
use std::time::Duration;

/// Why a stream cannot go on as it was.
pub enum Stop {
    /// The target failed (already recorded against it): rescue, or end the stream.
    Failed(Failure),
    /// The gateway ends the stream; no rescue.
    Cut(Cut),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Self {
        Stop::Failed(failure)
    }
}

/// A stream the gateway ends itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The request's `total` deadline (of this length) was reached.
    Deadline(Duration),
    /// The gateway is shutting down ([`super::super::Gateway::drain`]).
    Shutdown,
    /// The upstreams sent more than `max_stream_bytes` (this many).
    TooLarge(u64),
}

impl Cut {
    /// What the client is told.
    pub fn message(self) -> String {
        match self {
            Cut::Deadline(total) => {
                format!("the request's total deadline of {total:?} was reached")
            }
            Cut::Shutdown => "the gateway is shutting down".to_string(),
            Cut::TooLarge(limit) => format!(
                "the stream passed its limit of {limit} bytes (max_stream_bytes of the model)"
            ),
        }
    }

    /// Whether the target is to blame: a stream that runs past any sane size is a runaway
    /// upstream; a deadline or a shutdown is the gateway's own doing.
    pub fn blames_target(self) -> bool {
        match self {
            Cut::TooLarge(_) => true,
            Cut::Deadline(_) | Cut::Shutdown => false,
        }
    }

    /// The `class` label of an attempt cut for this reason (see `Metrics::attempt_cut`).
    pub fn label(self) -> &'static str {
        match self {
            Cut::Deadline(_) => "deadline",
            Cut::Shutdown => "shutdown",
            Cut::TooLarge(_) => "too_large",
        }
    }

    /// The failure an attempt loop sees when the cut comes before the first byte: it moves
    /// on (and stops there once its own deadline has passed).
    pub fn into_failure(self) -> Failure {
        Failure::local(FailureClass::Unavailable, self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_reason() {
        assert_eq!(
            Cut::Deadline(Duration::from_secs(120)).message(),
            "the request's total deadline of 120s was reached"
        );
        assert_eq!(Cut::Shutdown.message(), "the gateway is shutting down");
        assert!(Cut::TooLarge(5)
            .message()
            .contains("5 bytes (max_stream_bytes"));
        assert!(!Cut::Shutdown.blames_target());
        assert!(!Cut::Deadline(Duration::ZERO).blames_target());
        assert!(Cut::TooLarge(1).blames_target());
    }
}
