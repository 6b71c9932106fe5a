//! Measures how many durable jobs per second the queue commits on SQLite: 20,000 jobs of a 1 KiB request each,
//! from 1 and from 32 concurrent callers, against a baseline of what the file itself allows: the same rows
//! inserted straight with rusqlite, one transaction each, same pragmas (WAL, `synchronous = NORMAL`), in one
//! thread, with no queue logic and no async hand-off. Also Redis, when `redis-server` is on PATH. Run with `cargo run -p backstop-state --example enqueue --release`;
//! `bench/queue.sh` runs it.

use backstop_mock::redis_server::RedisServer;
use backstop_state::queue::{Enqueued, NewJob, Queue};
use backstop_state::{NoStateObserver, StateSpec, Store};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const JOBS: usize = 20_000;

fn job(n: usize) -> NewJob {
    NewJob {
        id: format!("job_{n:032x}"),
        owner: "0".repeat(64),
        payload: format!("{{\"body\":\"{}\"}}", "x".repeat(1024)),
        callback: None,
        ttl: Duration::from_secs(3600),
        max_attempts: 20,
    }
}

/// Runs `op(n)` for n in 0..JOBS from `callers` tasks; returns operations per second and how many failed
/// (a store that does not answer within its operation timeout).
async fn rate<F, Fut>(callers: usize, op: F) -> Result<(f64, usize), Box<dyn std::error::Error>>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (op, next, failed) = (op.clone(), next.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= JOBS {
                    return Ok::<(), String>(());
                }
                if op(n).await.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let failed = failed.load(Ordering::Relaxed);
    Ok((
        (JOBS - failed) as f64 / started.elapsed().as_secs_f64(),
        failed,
    ))
}

async fn measure(
    name: &str,
    spec: &StateSpec,
    baseline: Option<f64>,
) -> Result<(), Box<dyn std::error::Error>> {
    for callers in [1, 32] {
        let prefix = format!("bench{callers}:");
        let store = Arc::new(Store::open(
            spec,
            &prefix,
            "bench",
            Arc::new(NoStateObserver),
        )?);
        let queue = Arc::new(Queue::new(store));
        let (enqueued, failed) = rate(callers, move |n| {
            let queue = queue.clone();
            async move {
                match queue.enqueue(job(n), u64::MAX).await {
                    Ok(Enqueued::Stored) => Ok(()),
                    Ok(Enqueued::Full) => Err("full".to_string()),
                    Err(error) => Err(error.to_string()),
                }
            }
        })
        .await?;
        let versus = baseline.map_or(String::new(), |raw| {
            format!(
                ", {:.0}% of the raw insert baseline",
                100.0 * enqueued / raw
            )
        });
        println!(
            "{name:<7} {callers:>2} callers: enqueue {enqueued:>8.0} jobs/s ({failed} not stored{versus})"
        );
    }
    Ok(())
}

/// Rows per second inserted straight into a fresh WAL file, one transaction each.
fn raw_inserts(path: &std::path::Path) -> Result<f64, rusqlite::Error> {
    let conn = rusqlite::Connection::open(path)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         CREATE TABLE jobs (id TEXT PRIMARY KEY, owner TEXT, status TEXT, payload TEXT, created_ms INTEGER)",
    )?;
    let started = Instant::now();
    for n in 0..JOBS {
        let job = job(n);
        let tx = conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO jobs VALUES (?1, ?2, 'queued', ?3, ?4)",
            rusqlite::params![job.id, job.owner, job.payload, n as i64],
        )?;
        tx.commit()?;
    }
    Ok(JOBS as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("backstop-bench-queue-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let raw = raw_inserts(&dir.join("raw.db"))?;
    println!("sqlite  baseline: raw insert {raw:>8.0} rows/s (one transaction each, no queue)");
    let result = measure(
        "sqlite",
        &StateSpec::Sqlite(dir.join("state.db")),
        Some(raw),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    match RedisServer::start() {
        Ok(redis) => measure("redis", &StateSpec::parse(&redis.url())?, None).await?,
        Err(error) => println!("redis: not measured ({error})"),
    }
    Ok(())
}
