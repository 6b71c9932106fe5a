//! What the engine can send a call to.

use crate::backoff::Backoff;
use crate::breaker::Breaker;
use std::sync::Arc;

/// How often to try one candidate, and how long to wait between tries.
#[derive(Clone, Debug)]
pub struct Retry {
    /// Attempts on the candidate, the first included (0 counts as 1).
    pub max_attempts: u32,
    /// The delay between attempts on the same candidate.
    pub backoff: Backoff,
}

impl Default for Retry {
    /// 3 attempts with the default backoff.
    fn default() -> Self {
        Retry {
            max_attempts: 3,
            backoff: Backoff::default(),
        }
    }
}

/// One thing that can serve the call: a target, a fallback model, a mirror of a tool.
#[derive(Clone, Debug)]
pub struct Candidate<T> {
    /// A name for records and observers (`provider/model`, a URL...), shared by the candidate's copies.
    pub name: Arc<str>,
    /// Its breaker (share it between requests: it is the memory of the target's health).
    pub breaker: Arc<Breaker>,
    /// Its context window in tokens, if known (for context-length fallback).
    pub context_window: Option<u64>,
    /// Candidates with the same group serve the same thing over different channels (one model on two
    /// providers). After a transient failure the engine moves to the next open candidate of the group at once,
    /// before retrying in place. `None`: a group of its own.
    pub group: Option<usize>,
    /// Its own retry rule; `None` takes the [`Policy`](crate::Policy)'s.
    pub retry: Option<Retry>,
    /// Whether a content-filter failure here is the final answer instead of a reason to move on.
    pub stop_on_content_filter: bool,
    /// Whatever the call needs to reach it.
    pub inner: T,
}

impl<T> Candidate<T> {
    /// A candidate in a group of its own, without a known context window, with the policy's retry rule.
    pub fn new(name: impl Into<Arc<str>>, breaker: Arc<Breaker>, inner: T) -> Self {
        Candidate {
            name: name.into(),
            breaker,
            context_window: None,
            group: None,
            retry: None,
            stop_on_content_filter: false,
            inner,
        }
    }

    /// Whether `other` serves the same thing as this candidate over another channel.
    pub(crate) fn same_group(&self, other: &Candidate<T>) -> bool {
        self.group.is_some() && self.group == other.group
    }
}

/// The candidates of one call, in the order they are tried.
///
/// A slice or a vector of candidates is one. A caller whose later candidates cost something to work out (a
/// gateway's fallback models: each target looked up, balanced, checked against the policies) can build them only
/// when the engine reaches them, since most calls are served by their first candidate: the engine asks for
/// candidate `index` only after it is done with those before it, or looks one up ahead to hedge on it.
pub trait Candidates<T>: Sync {
    /// Candidate `index`, built (with those before it) if it was not yet; `None` past the last.
    fn get(&self, index: usize) -> Option<&Candidate<T>>;

    /// Candidate `index` if it is built, never building more. The engine looks this way for another channel of
    /// the candidate's group ahead, which a lazy caller builds with the group's first candidate.
    fn built(&self, index: usize) -> Option<&Candidate<T>> {
        self.get(index)
    }
}

impl<T: Sync> Candidates<T> for [Candidate<T>] {
    fn get(&self, index: usize) -> Option<&Candidate<T>> {
        <[Candidate<T>]>::get(self, index)
    }
}

impl<T: Sync> Candidates<T> for Vec<Candidate<T>> {
    fn get(&self, index: usize) -> Option<&Candidate<T>> {
        self.as_slice().get(index)
    }
}

impl<T: Sync, const N: usize> Candidates<T> for [Candidate<T>; N] {
    fn get(&self, index: usize) -> Option<&Candidate<T>> {
        self.as_slice().get(index)
    }
}
