//! Measures what the idempotency check adds to a request: an open-loop client sends requests at a fixed rate to
//! a running gateway, in rounds that alternate between requests without an `Idempotency-Key` and requests each
//! with a unique one (so every keyed request is a first: the check, the wait slot and the stored answer, never
//! a replay), and prints each round's p50 and the median of the per-round differences. Alternating rounds in
//! one run keeps a busy machine from favouring either side. `bench/idempotency.sh` starts the gateway and
//! runs it:
//!
//! `cargo run --release -p backstop-gateway --example idempotency_load -- URL [rate=1000] [seconds=5] [rounds=6]`
//!
//! With `GATEWAY_PID` set, each round also reports the gateway's CPU time per request (`/proc/PID/stat`, which
//! counts the threads that ended too, such as the blocking pool's; `GATEWAY_CLK_TCK` ticks a second) and the run
//! the median of the per-round differences: how much of the added latency is work, and how much waiting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const BODY: &str = r#"{"model":"gpt","messages":[{"role":"user","content":"Say hello"}]}"#;

/// Unique across the rounds of a run.
static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

/// One round at `rate` requests per second for `seconds`; returns the sorted latencies of the 200 answers in
/// microseconds and how many were not 200.
async fn round(
    client: &reqwest::Client,
    url: &str,
    rate: u64,
    seconds: u64,
    keyed: bool,
    run: u128,
) -> (Vec<u64>, u64) {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let mut tasks = Vec::new();
    for _ in 0..rate * seconds {
        ticks.tick().await;
        let mut request = client
            .post(url)
            .header("content-type", "application/json")
            .body(BODY);
        if keyed {
            let n = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
            request = request.header("idempotency-key", format!("bench-{run:x}-{n}"));
        }
        let (latencies, failed) = (latencies.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let ok = match request.send().await {
                Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            if ok {
                latencies.lock().await.push(micros);
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut latencies = std::mem::take(&mut *latencies.lock().await);
    latencies.sort_unstable();
    (latencies, failed.load(Ordering::Relaxed))
}

/// The `p` quantile of `sorted` (nearest rank).
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return 0;
    };
    let index = (last as f64 * p).round() as usize;
    sorted.get(index.min(last)).copied().unwrap_or(0)
}

/// Nanoseconds process `pid` has spent on a CPU so far, its ended threads included (`utime` and `stime` of
/// `/proc/PID/stat`, in clock ticks of `GATEWAY_CLK_TCK` a second, 100 unless told).
fn cpu_ns(pid: u32) -> u64 {
    let ticks_per_second: u64 = std::env::var("GATEWAY_CLK_TCK")
        .ok()
        .and_then(|ticks| ticks.parse().ok())
        .unwrap_or(100);
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The fields after the command name, which is in parentheses and may hold spaces.
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = fields.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    ticks * 1_000_000_000 / ticks_per_second.max(1)
}

fn median(values: &mut [i64]) -> i64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// A run id, so that keys never repeat across runs against one state file.
fn run_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let base = args
        .first()
        .ok_or("usage: idempotency_load URL [rate] [seconds] [rounds]")?;
    let number = |i: usize, default: u64| -> Result<u64, std::num::ParseIntError> {
        args.get(i).map_or(Ok(default), |text| text.parse())
    };
    let (rate, seconds, rounds) = (number(1, 1000)?, number(2, 5)?, number(3, 6)?);
    let url = format!("{base}/v1/chat/completions");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let run = run_id();
    // Warm-up: connections opened, the state file's pages touched.
    round(&client, &url, rate, 1, false, run).await;
    round(&client, &url, rate, 1, true, run).await;
    println!("{rate} requests/s, {seconds} s a round, {rounds} rounds of each, alternating");
    let gateway: Option<u32> = std::env::var("GATEWAY_PID")
        .ok()
        .and_then(|pid| pid.parse().ok());
    let mut differences = Vec::new();
    let mut cpu_differences = Vec::new();
    for n in 0..rounds {
        let mut p50 = [0u64; 2];
        let mut cpu = [0i64; 2];
        let order = if n % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for keyed in order {
            let spent = gateway.map(cpu_ns);
            let (latencies, failed) = round(&client, &url, rate, seconds, keyed, run).await;
            let (middle, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
            p50[usize::from(keyed)] = middle;
            let per_request = gateway.zip(spent).map(|(pid, spent)| {
                let answered = (rate * seconds).max(1);
                (cpu_ns(pid).saturating_sub(spent) / answered) as i64
            });
            cpu[usize::from(keyed)] = per_request.unwrap_or(0);
            let cpu_text = per_request.map_or(String::new(), |ns| {
                format!("  gateway CPU {:>5.1} µs/request", ns as f64 / 1000.0)
            });
            println!(
                "round {n} {:<16} p50 {middle:>6} µs  p99 {p99:>7} µs  answers {:>6}  failed {failed}{cpu_text}",
                if keyed { "Idempotency-Key" } else { "no key" },
                latencies.len()
            );
        }
        differences.push(p50[1] as i64 - p50[0] as i64);
        cpu_differences.push(cpu[1] - cpu[0]);
    }
    let added = median(&mut differences);
    println!(
        "added p50 (median of the per-round differences): {added} µs; per round: {differences:?}"
    );
    if gateway.is_some() {
        let added_cpu = median(&mut cpu_differences) as f64 / 1000.0;
        println!("added gateway CPU per request (median of the per-round differences): {added_cpu:.1} µs");
    }
    Ok(())
}
