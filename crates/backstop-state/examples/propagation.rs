//! Measures how long a breaker opened on one replica takes to open on another through a real redis-server:
//! 100 trips, p50 and p99. Run with `cargo run -p backstop-state --example propagation --release`
//! (`redis-server` on PATH); `bench/state.sh` runs it.

use backstop_core::{Breaker, BreakerConfig, BreakerState, NoopObserver};
use backstop_mock::redis_server::RedisServer;
use backstop_state::{NoStateObserver, State, StateSpec};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TRIPS: usize = 100;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redis = RedisServer::start()?;
    let spec = StateSpec::parse(&redis.url())?;
    let open_for = Duration::from_secs(60);
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let state = State::open(&spec, "bench:", open_for, Arc::new(NoStateObserver)).await?;
        let breaker = Breaker::new_with_observer(
            "bench/target",
            BreakerConfig {
                open_for,
                ..BreakerConfig::default()
            },
            Arc::new(NoopObserver),
        );
        state.targets().register(&breaker, Vec::new());
        replicas.push((state, breaker));
    }
    let (a, b) = (&replicas[0].1, &replicas[1].1);
    let mut delays = Vec::with_capacity(TRIPS);
    for _ in 0..TRIPS {
        a.force_close();
        let closed = Instant::now();
        while b.state() != BreakerState::Closed && closed.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        // Transitions are ordered by wall-clock milliseconds: let the clock move on.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let opened = Instant::now();
        a.force_open(Some(open_for));
        while b.state() != BreakerState::Open {
            if opened.elapsed() > Duration::from_secs(2) {
                return Err("the other replica did not see the open breaker within 2 s".into());
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        delays.push(opened.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    delays.sort();
    let at = |q: f64| delays[((delays.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "propagation over {TRIPS} trips (Redis pub/sub): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        delays[delays.len() - 1].as_secs_f64() * 1000.0
    );
    Ok(())
}
