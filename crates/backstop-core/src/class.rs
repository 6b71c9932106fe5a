//! What the outcome of one attempt means.
//!
//! Every failure is classified exactly once, into one of a handful of classes, and each class has exactly one
//! remedy. Keeping the set small and closed (no `Other`, no "retryable by default") is what makes the rest of the
//! library predictable: the executor, the breaker and the budget all `match` on [`FailureClass`] exhaustively, so a
//! new kind of failure must be *decided*, never retried by accident.
//!
//! | class | remedy | counts against the target's health |
//! |---|---|---|
//! | [`Transient`](FailureClass::Transient) | retry the same target (backoff, budget), then the next candidate | yes |
//! | [`Unavailable`](FailureClass::Unavailable) | the next candidate at once | yes |
//! | [`ContextLength`](FailureClass::ContextLength) | the next candidate with a larger context window | no |
//! | [`ContentFilter`](FailureClass::ContentFilter) | the fallbacks (or back to the caller, by policy) | no |
//! | [`TargetBroken`](FailureClass::TargetBroken) | open the target's breaker at once, the next candidate | yes |
//! | [`Permanent`](FailureClass::Permanent) | stop, the error goes back to the caller | no |
//!
//! The last column is the breaker's view: a request that is too long, refused by a content filter or simply wrong
//! tells us nothing bad about the target, so it counts as a success for the target's health.

use std::fmt;
use std::time::Duration;

/// The class of a failed attempt; see the [module documentation](self) for the remedy of each class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// A failure that may go away on its own: 429, 408, 5xx, 529, a reset connection, a truncated body.
    Transient,
    /// The target accepted the request but stayed silent (first byte or idle timeout): move on, don't retry it.
    Unavailable,
    /// The prompt does not fit the target's context window.
    ContextLength,
    /// The provider refused the content (safety or policy filter).
    ContentFilter,
    /// The target cannot serve anyone: bad credentials, no permission, quota or billing exhausted.
    TargetBroken,
    /// The request itself is wrong (other 400, 404, 422): no retry, no fallback.
    Permanent,
}

impl FailureClass {
    /// Every class, in declaration order (handy for tests and for pre-registering metric labels).
    pub const ALL: [FailureClass; 6] = [
        FailureClass::Transient,
        FailureClass::Unavailable,
        FailureClass::ContextLength,
        FailureClass::ContentFilter,
        FailureClass::TargetBroken,
        FailureClass::Permanent,
    ];

    /// The stable snake_case name used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::Unavailable => "unavailable",
            FailureClass::ContextLength => "context_length",
            FailureClass::ContentFilter => "content_filter",
            FailureClass::TargetBroken => "target_broken",
            FailureClass::Permanent => "permanent",
        }
    }

    /// Whether this class is a failure *of the target* (and so counts against its breaker).
    ///
    /// `ContextLength`, `ContentFilter` and `Permanent` are the request's fault: for the breaker they are successes.
    pub fn is_target_failure(self) -> bool {
        match self {
            FailureClass::Transient | FailureClass::Unavailable | FailureClass::TargetBroken => {
                true
            }
            FailureClass::ContextLength | FailureClass::ContentFilter | FailureClass::Permanent => {
                false
            }
        }
    }

    /// Whether this class may be retried on the same target.
    pub fn retries_same_target(self) -> bool {
        match self {
            FailureClass::Transient => true,
            FailureClass::Unavailable
            | FailureClass::ContextLength
            | FailureClass::ContentFilter
            | FailureClass::TargetBroken
            | FailureClass::Permanent => false,
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The attempt succeeded.
    Success,
    /// The attempt failed.
    Failure {
        /// What kind of failure, and so what to do next.
        class: FailureClass,
        /// A wait the server asked for (`Retry-After` and friends, see [`crate::hints`]).
        retry_after: Option<Duration>,
    },
}

impl Verdict {
    /// A failure of the given class without a server hint.
    pub fn failure(class: FailureClass) -> Self {
        Verdict::Failure {
            class,
            retry_after: None,
        }
    }

    /// A transient failure with an optional server hint.
    pub fn transient(retry_after: Option<Duration>) -> Self {
        Verdict::Failure {
            class: FailureClass::Transient,
            retry_after,
        }
    }

    /// The failure class, or `None` for a success.
    pub fn class(&self) -> Option<FailureClass> {
        match self {
            Verdict::Success => None,
            Verdict::Failure { class, .. } => Some(*class),
        }
    }

    /// Whether the verdict is good news for the target's health (see [`FailureClass::is_target_failure`]).
    pub fn is_healthy(&self) -> bool {
        match self {
            Verdict::Success => true,
            Verdict::Failure { class, .. } => !class.is_target_failure(),
        }
    }
}

/// Turns an error of type `E` into a [`Verdict`].
///
/// Implemented for every closure `Fn(&E) -> Verdict`, so a classifier is usually just a `match`:
///
/// ```
/// use backstop_core::{Classify, FailureClass, Verdict};
///
/// enum ToolError { Timeout, BadInput }
/// let classify = |e: &ToolError| match e {
///     ToolError::Timeout => Verdict::transient(None),
///     ToolError::BadInput => Verdict::failure(FailureClass::Permanent),
/// };
/// assert_eq!(classify.classify(&ToolError::BadInput).class(), Some(FailureClass::Permanent));
/// ```
pub trait Classify<E> {
    /// Classifies one error.
    ///
    /// Answering [`Verdict::Success`] for an error means "the target is healthy, but this error is the answer":
    /// the executor then returns it to the caller without retrying, as for [`FailureClass::Permanent`].
    fn classify(&self, error: &E) -> Verdict;
}

impl<E, F> Classify<E> for F
where
    F: Fn(&E) -> Verdict,
{
    fn classify(&self, error: &E) -> Verdict {
        self(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_distinct() {
        let names: Vec<&str> = FailureClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "transient",
                "unavailable",
                "context_length",
                "content_filter",
                "target_broken",
                "permanent"
            ]
        );
        assert_eq!(FailureClass::ContextLength.to_string(), "context_length");
    }

    #[test]
    fn health_accounting_matches_the_contract() {
        let failing: Vec<FailureClass> = FailureClass::ALL
            .into_iter()
            .filter(|c| c.is_target_failure())
            .collect();
        assert_eq!(
            failing,
            [
                FailureClass::Transient,
                FailureClass::Unavailable,
                FailureClass::TargetBroken
            ]
        );
        assert!(Verdict::Success.is_healthy());
        assert!(Verdict::failure(FailureClass::Permanent).is_healthy());
        assert!(!Verdict::transient(None).is_healthy());
    }

    #[test]
    fn only_transient_retries_in_place() {
        for class in FailureClass::ALL {
            assert_eq!(
                class.retries_same_target(),
                class == FailureClass::Transient
            );
        }
    }

    #[test]
    fn closures_classify() {
        let c = |e: &u16| {
            if *e == 429 {
                Verdict::transient(Some(Duration::from_secs(2)))
            } else {
                Verdict::failure(FailureClass::Permanent)
            }
        };
        assert_eq!(
            c.classify(&429),
            Verdict::Failure {
                class: FailureClass::Transient,
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(c.classify(&400).class(), Some(FailureClass::Permanent));
    }
}
