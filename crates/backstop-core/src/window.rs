//! A ring of time slots counting two numbers each: the sliding window shared by the retry budget (deposits,
//! withdrawals) and the breaker (calls, failures).
//!
//! The window is slot-aligned: at any time it covers the current slot and the `n - 1` before it, so its span is
//! between `(n - 1)` and `n` slot lengths. Slots that fell out of the window are recycled lazily, so a quiet period
//! costs nothing.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    index: u64,
    a: u64,
    b: u64,
}

/// Counts `(a, b)` pairs over a sliding window of `n` slots.
#[derive(Debug)]
pub(crate) struct SlotRing {
    origin: Instant,
    slot_len: Duration,
    slots: Vec<Slot>,
}

impl SlotRing {
    /// A ring covering `window`, cut into `n` slots (at least one slot; a zero window gets 1 ms slots).
    pub(crate) fn new(window: Duration, n: u32, origin: Instant) -> Self {
        let n = n.max(1);
        let slot_len = (window / n).max(Duration::from_millis(1));
        SlotRing {
            origin,
            slot_len,
            slots: vec![Slot::default(); n as usize],
        }
    }

    fn slot_index(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        let idx = elapsed / self.slot_len.as_nanos().max(1);
        // Slot 0 is the "never used" marker of a default slot, so real indices start at 1.
        u64::try_from(idx).unwrap_or(u64::MAX - 1) + 1
    }

    fn current(&mut self, now: Instant) -> &mut Slot {
        let idx = self.slot_index(now);
        let len = self.slots.len() as u64;
        let pos = (idx % len) as usize;
        let slot = &mut self.slots[pos];
        if slot.index != idx {
            *slot = Slot {
                index: idx,
                a: 0,
                b: 0,
            };
        }
        slot
    }

    /// Adds to the current slot.
    pub(crate) fn add(&mut self, now: Instant, a: u64, b: u64) {
        let slot = self.current(now);
        slot.a += a;
        slot.b += b;
    }

    /// The sums of `a` and `b` over the window ending now.
    pub(crate) fn sums(&self, now: Instant) -> (u64, u64) {
        let idx = self.slot_index(now);
        let len = self.slots.len() as u64;
        self.slots
            .iter()
            .filter(|s| s.index != 0 && s.index <= idx && idx - s.index < len)
            .fold((0, 0), |(a, b), s| (a + s.a, b + s.b))
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = Slot::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_slide_out() {
        let mut r = SlotRing::new(Duration::from_secs(10), 10, Instant::now());
        r.add(Instant::now(), 1, 0);
        tokio::time::advance(Duration::from_millis(4500)).await;
        r.add(Instant::now(), 2, 1);
        assert_eq!(r.sums(Instant::now()), (3, 1));
        tokio::time::advance(Duration::from_millis(5600)).await;
        assert_eq!(
            r.sums(Instant::now()),
            (2, 1),
            "the first slot left the window"
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(r.sums(Instant::now()), (0, 0));
        r.add(Instant::now(), 5, 5);
        assert_eq!(r.sums(Instant::now()), (5, 5));
        r.clear();
        assert_eq!(r.sums(Instant::now()), (0, 0));
    }
}
