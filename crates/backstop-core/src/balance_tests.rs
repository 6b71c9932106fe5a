use super::*;
use proptest::prelude::{any, prop_assert_eq, proptest};
use rand::rngs::SmallRng;
use rand::SeedableRng;

fn c(weight: u32, latency_ms: Option<u64>, available: bool) -> BalanceCandidate {
    BalanceCandidate {
        weight,
        latency: latency_ms.map(Duration::from_millis),
        available,
    }
}

fn first_pick_share(strategy: Strategy, cands: &[BalanceCandidate], draws: usize) -> Vec<f64> {
    let mut rng = SmallRng::seed_from_u64(42);
    let mut counts = vec![0usize; cands.len()];
    for _ in 0..draws {
        counts[order(strategy, cands, &mut rng)[0]] += 1;
    }
    counts
        .into_iter()
        .map(|n| n as f64 / draws as f64)
        .collect()
}

#[test]
fn weighted_three_to_one() {
    let share = first_pick_share(
        Strategy::Weighted,
        &[c(3, None, true), c(1, None, true)],
        10_000,
    );
    assert!((share[0] - 0.75).abs() < 0.02, "{share:?}");
}

#[test]
fn weighted_proportions_with_three() {
    let cands = [c(1, None, true), c(2, None, true), c(7, None, true)];
    let share = first_pick_share(Strategy::Weighted, &cands, 20_000);
    for (s, expected) in share.iter().zip([0.1, 0.2, 0.7]) {
        assert!((s - expected).abs() < 0.02, "{share:?}");
    }
}

#[test]
fn unavailable_last_and_standby_before_them() {
    let cands = [c(1, None, false), c(0, None, true), c(5, None, true)];
    let mut rng = SmallRng::seed_from_u64(1);
    for strategy in [Strategy::Weighted, Strategy::LeastLatency] {
        assert_eq!(order(strategy, &cands, &mut rng), [2, 1, 0]);
    }
}

#[test]
fn least_latency_prefers_the_fast_one() {
    let two = [c(1, Some(300), true), c(1, Some(100), true)];
    let share = first_pick_share(Strategy::LeastLatency, &two, 1_000);
    assert_eq!(share[1], 1.0);

    let three = [
        c(1, Some(50), true),
        c(1, Some(100), true),
        c(1, Some(300), true),
    ];
    let share = first_pick_share(Strategy::LeastLatency, &three, 9_000);
    assert!((share[0] - 2.0 / 3.0).abs() < 0.03, "{share:?}");
    assert!((share[1] - 1.0 / 3.0).abs() < 0.03, "{share:?}");
    assert_eq!(share[2], 0.0, "the slowest never wins a duel");
    let mut rng = SmallRng::seed_from_u64(3);
    let o = order(Strategy::LeastLatency, &three, &mut rng);
    let rest: Vec<usize> = o[1..].to_vec();
    let mut sorted = rest.clone();
    sorted.sort();
    assert_eq!(rest, sorted, "failover by latency");
}

#[test]
fn least_latency_explores_unknown() {
    let cands = [c(1, Some(10), true), c(1, None, true)];
    let share = first_pick_share(Strategy::LeastLatency, &cands, 100);
    assert_eq!(share[1], 1.0);
    let cands = [c(1, None, true), c(1, Some(10), true), c(1, Some(20), true)];
    let mut rng = SmallRng::seed_from_u64(9);
    for _ in 0..100 {
        let o = order(Strategy::LeastLatency, &cands, &mut rng);
        if o[0] != 0 {
            assert_eq!(
                *o.last().unwrap(),
                0,
                "unknown after known in the failover: {o:?}"
            );
        }
    }
}

#[test]
fn strategy_names() {
    assert_eq!("weighted".parse::<Strategy>(), Ok(Strategy::Weighted));
    assert_eq!(
        "least_latency".parse::<Strategy>(),
        Ok(Strategy::LeastLatency)
    );
    let err = "fastest".parse::<Strategy>().unwrap_err();
    assert!(err.to_string().contains("\"fastest\""));
    assert_eq!(Strategy::LeastLatency.to_string(), "least_latency");
}

#[test]
fn latency_ewma_and_percentiles() {
    let s = LatencyStats::with_params(0.5, 100);
    assert_eq!(s.estimate(), None);
    assert_eq!(s.percentiles(), None);
    s.observe(Duration::from_millis(100));
    assert_eq!(s.estimate(), Some(Duration::from_millis(100)));
    s.observe(Duration::from_millis(300));
    assert_eq!(s.estimate(), Some(Duration::from_millis(200)));
    for ms in 1..=100 {
        s.observe(Duration::from_millis(ms));
    }
    let p = s.percentiles().unwrap();
    assert_eq!(p.samples, 100);
    assert_eq!(p.p50, Duration::from_millis(50));
    assert_eq!(p.p95, Duration::from_millis(95));
    assert_eq!(p.p99, Duration::from_millis(99));
    assert_eq!(s.percentile(1.0), Some(Duration::from_millis(100)));
    assert_eq!(s.count(), 102);
}

proptest! {
    /// Every strategy returns a permutation of all the indices.
    #[test]
    fn order_is_a_permutation(cands in proptest::collection::vec((0u32..5, proptest::option::of(0u64..500), any::<bool>()), 0..8), seed: u64, ll: bool) {
        let cands: Vec<BalanceCandidate> = cands.into_iter().map(|(w, l, a)| c(w, l, a)).collect();
        let strategy = if ll { Strategy::LeastLatency } else { Strategy::Weighted };
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut o = order(strategy, &cands, &mut rng);
        let available_first = o.iter().take_while(|&&i| cands[i].available).count();
        prop_assert_eq!(available_first, cands.iter().filter(|x| x.available).count());
        o.sort();
        prop_assert_eq!(o, (0..cands.len()).collect::<Vec<_>>());
    }
}
