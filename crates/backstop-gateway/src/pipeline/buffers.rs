//! The gateway-wide budget of buffered bytes (`server.max_buffered_bytes`).
//!
//! A non-streaming answer is read whole before it is checked or translated, and a stream
//! with `stream_buffer = "full"` is held until it completes. One such answer is capped on
//! its own, but many at once could still take the process past any memory it has. Every
//! buffered byte therefore comes out of one budget shared by all requests, taken as the
//! bytes arrive and given back when the buffer is dropped (after the client received it).
//! A request that cannot get its bytes fails at once instead of waiting: waiting could
//! deadlock requests that each hold half of what they need.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of upstream answers that may be held in memory at once, over all requests.
#[derive(Debug)]
pub struct BufferBudget {
    bytes: Arc<Semaphore>,
    limit: u64,
}

/// Bytes taken from a [`BufferBudget`], given back when dropped.
#[derive(Debug, Default)]
pub struct Held {
    permit: Option<OwnedSemaphorePermit>,
}

impl BufferBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        let permits = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(permits)),
            limit,
        }
    }

    /// The size of the budget in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes not held by anyone right now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// Adds `bytes` to `held`, or says no (and leaves `held` as it was) when the budget
    /// does not have them.
    pub fn take(&self, held: &mut Held, bytes: usize) -> Result<(), BudgetExhausted> {
        if bytes == 0 {
            return Ok(());
        }
        let count = u32::try_from(bytes).map_err(|_| BudgetExhausted)?;
        let permit = self
            .bytes
            .clone()
            .try_acquire_many_owned(count)
            .map_err(|_| BudgetExhausted)?;
        match &mut held.permit {
            Some(existing) => existing.merge(permit),
            None => held.permit = Some(permit),
        }
        Ok(())
    }
}

impl Held {
    /// How many bytes are held.
    pub fn bytes(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

/// The budget of buffered bytes is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetExhausted;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_back_when_the_buffer_is_dropped() {
        let budget = BufferBudget::new(100);
        let mut first = Held::default();
        budget.take(&mut first, 60).unwrap();
        budget.take(&mut first, 30).unwrap();
        assert_eq!(first.bytes(), 90);
        let mut second = Held::default();
        assert_eq!(budget.take(&mut second, 20), Err(BudgetExhausted));
        assert_eq!(second.bytes(), 0, "a refused take holds nothing");
        budget.take(&mut second, 10).unwrap();
        assert_eq!(budget.available(), 0);
        drop(first);
        assert_eq!(budget.available(), 90);
        drop(second);
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn a_take_larger_than_the_budget_is_refused() {
        let budget = BufferBudget::new(10);
        assert_eq!(budget.take(&mut Held::default(), 11), Err(BudgetExhausted));
        assert_eq!(budget.available(), 10);
    }
}
