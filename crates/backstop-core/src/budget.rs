//! A retry budget: retries may add at most a fixed fraction of the traffic.
//!
//! Per-request retry limits are not enough. With 3 attempts per request, a total outage turns every client request
//! into 3 upstream calls, and a fallback chain of three models into 9: the retries triple the load on a provider at
//! the very moment it is struggling, and keep it down longer. A *budget* bounds the retries of all requests
//! together instead. Every request deposits, every retry withdraws, and a retry that finds the budget empty is not
//! made (the caller moves on to the next candidate or gives up). With the default ratio of 0.2, upstreams see at most
//! about 1.2 attempts per client request under a total outage, whatever `max_attempts` says, while a healthy system
//! with occasional failures still retries every one of them.
//!
//! The budget counts over a sliding window (default 10 s, in 1 s slots), so old traffic does not fund today's
//! retries, and a small floor (`min_per_sec`) lets a quiet client still retry its rare failures.
//!
//! The idea and the vocabulary come from Finagle's `RetryBudget` and tower's `retry::budget`. A hedged request
//! (a second copy sent because the first is slow) is paid for in the same currency: it withdraws like a retry.

use crate::window::SlotRing;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The number of slots the window is cut into.
const SLOTS: u32 = 10;

/// A retry budget shared by many requests; see the [module documentation](self). `Send + Sync`.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    reserve: f64,
    ring: Mutex<SlotRing>,
}

impl Default for RetryBudget {
    /// Ratio 0.2, floor 10 retries per second, 10 s window.
    fn default() -> Self {
        RetryBudget::new(0.2, 10, Duration::from_secs(10))
    }
}

impl RetryBudget {
    /// A budget allowing, over any `window`, `ratio` retries per deposited request plus `min_per_sec` retries per
    /// second of the window. A negative or non-finite ratio counts as 0.
    pub fn new(ratio: f64, min_per_sec: u32, window: Duration) -> Self {
        let ratio = if ratio.is_finite() {
            ratio.max(0.0)
        } else {
            0.0
        };
        RetryBudget {
            ratio,
            reserve: f64::from(min_per_sec) * window.as_secs_f64(),
            ring: Mutex::new(SlotRing::new(window, SLOTS, Instant::now())),
        }
    }

    /// Records one request (call it once per client request, not per attempt).
    pub fn deposit(&self) {
        let now = Instant::now();
        self.with_ring(|ring| ring.add(now, 1, 0));
    }

    /// Takes one retry from the budget; `false` means "don't retry".
    pub fn try_withdraw(&self) -> bool {
        let now = Instant::now();
        self.with_ring(|ring| {
            let (deposits, withdrawals) = ring.sums(now);
            let allowed = self.ratio * deposits as f64 + self.reserve;
            let ok = (withdrawals + 1) as f64 <= allowed;
            if ok {
                ring.add(now, 0, 1);
            }
            ok
        })
    }

    /// The retries that could be withdrawn right now (rounded down).
    pub fn available(&self) -> u64 {
        let now = Instant::now();
        self.with_ring(|ring| {
            let (deposits, withdrawals) = ring.sums(now);
            let allowed = (self.ratio * deposits as f64 + self.reserve).floor();
            (allowed - withdrawals as f64).max(0.0) as u64
        })
    }

    fn with_ring<R>(&self, f: impl FnOnce(&mut SlotRing) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-update of two counters: the data is still usable.
        let mut guard = match self.ring.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[tokio::test(start_paused = true)]
    async fn floor_alone_allows_min_per_sec_times_window() {
        let b = RetryBudget::new(0.2, 1, secs(10));
        let granted = (0..20).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 10);
        assert_eq!(b.available(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_fund_a_fifth_of_retries() {
        let b = RetryBudget::new(0.2, 0, secs(10));
        for _ in 0..100 {
            b.deposit();
        }
        assert_eq!(b.available(), 20);
        let granted = (0..100).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn old_deposits_expire() {
        let b = RetryBudget::new(0.5, 0, secs(10));
        for _ in 0..10 {
            b.deposit();
        }
        assert_eq!(b.available(), 5);
        tokio::time::advance(secs(11)).await;
        assert_eq!(b.available(), 0);
        assert!(!b.try_withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn withdrawals_are_repaid_as_time_passes() {
        let b = RetryBudget::new(0.0, 1, secs(10));
        assert_eq!((0..10).filter(|_| b.try_withdraw()).count(), 10);
        assert!(!b.try_withdraw());
        tokio::time::advance(secs(10)).await;
        assert!(b.try_withdraw());
    }

    #[test]
    fn bad_ratio_is_zero() {
        let b = RetryBudget::new(f64::NAN, 0, secs(10));
        b.deposit();
        assert!(!b.try_withdraw());
        let b = RetryBudget::new(-1.0, 0, secs(10));
        b.deposit();
        assert!(!b.try_withdraw());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Deposit(u8),
        Withdraw(u8),
        Advance(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u8..20).prop_map(Op::Deposit),
            (1u8..20).prop_map(Op::Withdraw),
            (1u16..4000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Within one window (no time passing), over any interleaving: withdrawals never exceed
        /// `ratio * deposits + min_per_sec * window_secs`, and a withdrawal is refused only when it would.
        #[test]
        fn one_window_never_over_budget(ops in proptest::collection::vec(op(), 1..80), ratio in 0.0f64..1.0, floor in 0u32..3) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            rt.block_on(async {
                let b = RetryBudget::new(ratio, floor, secs(10));
                let reserve = f64::from(floor) * 10.0;
                let (mut deposits, mut granted) = (0u64, 0u64);
                for op in ops {
                    match op {
                        Op::Deposit(n) => {
                            for _ in 0..n { b.deposit(); }
                            deposits += u64::from(n);
                        }
                        Op::Withdraw(n) => {
                            for _ in 0..n {
                                let fits = (granted + 1) as f64 <= ratio * deposits as f64 + reserve;
                                prop_assert_eq!(b.try_withdraw(), fits);
                                granted += u64::from(fits);
                            }
                        }
                        Op::Advance(_) => {}
                    }
                    prop_assert!(granted as f64 <= ratio * deposits as f64 + reserve);
                }
                Ok(())
            })?;
        }

        /// With time passing: every decision matches a reference computed from the full event log over the
        /// 10 one-second slots ending now, and overall `withdrawals <= 2 * ratio * deposits + reserve * blocks`
        /// (a withdrawal may be funded by deposits up to one window old).
        #[test]
        fn sliding_window_matches_reference(ops in proptest::collection::vec(op(), 1..80), ratio in 0.0f64..1.0, floor in 0u32..3) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            rt.block_on(async {
                let start = Instant::now();
                let b = RetryBudget::new(ratio, floor, secs(10));
                let reserve = f64::from(floor) * 10.0;
                // (slot, deposits, withdrawals granted)
                let mut log: Vec<(u64, u64, u64)> = Vec::new();
                let (mut total_d, mut total_w) = (0u64, 0u64);
                for op in ops {
                    let slot = (Instant::now() - start).as_secs();
                    match op {
                        Op::Deposit(n) => {
                            for _ in 0..n { b.deposit(); }
                            total_d += u64::from(n);
                            log.push((slot, u64::from(n), 0));
                        }
                        Op::Withdraw(n) => {
                            for _ in 0..n {
                                let (d, w) = log.iter()
                                    .filter(|(s, _, _)| slot - s < 10)
                                    .fold((0, 0), |(d, w), (_, dd, ww)| (d + dd, w + ww));
                                let fits = (w + 1) as f64 <= ratio * d as f64 + reserve;
                                prop_assert_eq!(b.try_withdraw(), fits, "slot {}: {} withdrawn, {} deposited", slot, w, d);
                                total_w += u64::from(fits);
                                log.push((slot, 0, u64::from(fits)));
                            }
                        }
                        Op::Advance(ms) => tokio::time::advance(Duration::from_millis(u64::from(ms))).await,
                    }
                }
                let blocks = ((Instant::now() - start).as_secs() / 10 + 1) as f64;
                prop_assert!(total_w as f64 <= 2.0 * ratio * total_d as f64 + reserve * blocks + 1e-9);
                Ok(())
            })?;
        }
    }
}
