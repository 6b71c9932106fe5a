//! What a fault does to one provider request, as the request path sees it.
//!
//! [`FaultKind`](crate::FaultKind) is the vocabulary of scripts: twenty-odd kinds with their
//! parameters. The request path only needs to know a handful of things about a kind (is it an
//! error response, and which; does it act before the answer; does it change how the answer is
//! delivered), so `FaultKind::effect` translates a kind into an [`Effect`] once, in `fault.rs`,
//! and the handler, the model list and the stream body match on that small enum instead of
//! each listing every kind.

use std::time::Duration;

use crate::errors::ErrorCase;

/// An error response that a fault answers with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorFault<'a> {
    /// Which of the provider's errors.
    pub(crate) case: ErrorCase,
    /// Value of the `Retry-After` header, if any.
    pub(crate) retry_after: Option<&'a str>,
}

impl ErrorFault<'_> {
    /// An error without a `Retry-After` header.
    pub(crate) fn plain(case: ErrorCase) -> Self {
        ErrorFault {
            case,
            retry_after: None,
        }
    }
}

/// A fault that delivers a correct reply badly (see `stream.rs`); without a stream it shapes
/// the single body instead (see `handler.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum StreamFault {
    /// Wait before the first event.
    SlowFirstToken(Duration),
    /// Wait before every event.
    SlowStream(Duration),
    /// Drop the connection after this many events.
    CutAfter(usize),
    /// End the body cleanly after this many events, with no finish and no terminator.
    EndAfter(usize),
    /// Go silent after `after` events for `duration`.
    Stall {
        /// Events sent before the stall.
        after: usize,
        /// How long the stream is silent.
        duration: Duration,
        /// A wait before every event too.
        every: Option<Duration>,
    },
    /// Replace the event at this index with invalid JSON.
    MalformedEvent(usize),
    /// End with the provider's error event after this many events; without a stream, the
    /// provider's 500.
    ErrorEvent(usize),
    /// Leave out the terminator.
    NoDone,
}

/// What a fault does to one provider request: every property of a kind that the request path
/// needs, decided in one place ([`FaultKind::effect`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect<'a> {
    /// Answer with the provider's error response.
    Error(ErrorFault<'a>),
    /// Drop the connection with a TCP reset before any byte.
    Reset,
    /// Read the request and never answer.
    Hang,
    /// Wait this long before the response headers, then answer normally.
    DelayHeaders(Duration),
    /// Answer normally but claim this model.
    WrongModel(&'a str),
    /// Answer normally with this text.
    Answer(&'a str),
    /// Answer 200 with the output stopped by the content filter.
    FilterOutput,
    /// Answer normally with these rate-limit headers.
    Quota(&'a crate::quota::Quota),
    /// Answer normally, delivered with this fault.
    Deliver(StreamFault),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultKind;

    #[test]
    fn effects_keep_the_parameters_of_their_kind() {
        let status = FaultKind::Status {
            status: 503,
            retry_after: Some("2".into()),
        };
        assert_eq!(
            status.effect(),
            Effect::Error(ErrorFault {
                case: ErrorCase::Status(503),
                retry_after: Some("2"),
            })
        );
        let stall = FaultKind::Stall {
            after: 3,
            duration: Duration::from_secs(1),
            every: None,
        };
        assert_eq!(
            stall.effect(),
            Effect::Deliver(StreamFault::Stall {
                after: 3,
                duration: Duration::from_secs(1),
                every: None,
            })
        );
        let name = FaultKind::WrongModel { name: "x".into() };
        assert_eq!(name.effect(), Effect::WrongModel("x"));
    }

    #[test]
    fn only_availability_and_account_errors_apply_to_the_model_list() {
        assert_eq!(
            FaultKind::Overloaded.models_error(),
            Some(ErrorCase::Overloaded)
        );
        assert_eq!(
            FaultKind::RateLimit { retry_after: None }.models_error(),
            Some(ErrorCase::RateLimit)
        );
        assert_eq!(FaultKind::ContextLength.models_error(), None);
        assert_eq!(FaultKind::RejectPrefill.models_error(), None);
        assert_eq!(FaultKind::Hang.models_error(), None);
        assert_eq!(FaultKind::CutAfter { events: 1 }.models_error(), None);
        assert_eq!(FaultKind::ErrorEvent { at: 0 }.models_error(), None);
    }
}
