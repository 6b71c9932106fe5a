//! Counts the heap allocations the gateway adds to a request. One process holds a mock upstream,
//! a gateway in front of it and a client (one kept-alive connection, one request at a time);
//! every allocation of the process is counted (dhat's global allocator), first over requests
//! sent to the mock directly, then over the same requests sent through the gateway. The
//! difference, divided by the requests, is what the gateway allocates per request (its server
//! and client sides, the pipeline, logging when asked). Non-streaming and streaming requests.
//!
//! `RUST_LOG=error cargo run --release -p backstop-gateway --example allocations -- [requests=2000] [profile.json] 2>/dev/null`
//!
//! The gateway logs as `backstop serve` does, at the level `RUST_LOG` names (`info` unless it
//! is set). With a second argument, the run's allocation sites are saved there for DHAT's
//! viewer (`dh_view.html`).

use backstop_gateway::pipeline::Gateway;
use backstop_gateway::{config, logging, server};
use backstop_mock::{MockConfig, MockServer};
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const CHAT: &str = r#"{"model":"gpt","messages":[{"role":"user","content":"Say hello"}]}"#;
const STREAM: &str =
    r#"{"model":"gpt","stream":true,"messages":[{"role":"user","content":"Say hello"}]}"#;

/// Requests sent before counting, so that pools, caches and lazy statics are warm.
const WARM_UP: usize = 200;

/// Allocations and bytes per request over `requests` posts of `body` to `url`.
async fn count(
    client: &reqwest::Client,
    url: &str,
    body: &'static str,
    requests: usize,
) -> Result<(f64, f64), Box<dyn Error>> {
    let send = || async {
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if response.status() != 200 {
            return Err(format!("{url} answered {}", response.status()).into());
        }
        response.bytes().await?;
        Ok::<_, Box<dyn Error>>(())
    };
    for _ in 0..WARM_UP {
        send().await?;
    }
    let before = dhat::HeapStats::get();
    for _ in 0..requests {
        send().await?;
    }
    let after = dhat::HeapStats::get();
    let n = requests.max(1) as f64;
    Ok((
        (after.total_blocks - before.total_blocks) as f64 / n,
        (after.total_bytes - before.total_bytes) as f64 / n,
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().map_or(Ok(2000), |n| n.parse())?;
    let profile = args.next();
    let _log = logging::init(logging::LogFormat::Text);
    let _profiler = match profile {
        Some(path) => dhat::Profiler::builder()
            .file_name(path)
            .trim_backtraces(Some(64))
            .build(),
        None => dhat::Profiler::builder().testing().build(),
    };

    let mock = MockServer::start(MockConfig::default()).await?;
    let config = config::parse(
        &format!(
            "[providers.up]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n\
             [models.gpt]\ntargets = [{{ provider = \"up\", model = \"mock-model\" }}]\n",
            mock.url()
        ),
        &|_| None,
    )?;
    let gateway = Arc::new(Gateway::new(config)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(
        gateway,
        listener,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));

    let client = reqwest::Client::new();
    let direct = format!("{}/v1/chat/completions", mock.url());
    let through = format!("http://{addr}/v1/chat/completions");
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    println!("{requests} requests, one connection, gateway logging at {level}");
    println!("| per request | direct to the mock | through the gateway | the gateway's |");
    println!("|---|---|---|---|");
    for (name, body) in [("non-streaming", CHAT), ("streaming", STREAM)] {
        let (direct_blocks, direct_bytes) = count(&client, &direct, body, requests).await?;
        let (gateway_blocks, gateway_bytes) = count(&client, &through, body, requests).await?;
        println!(
            "| {name}: allocations | {direct_blocks:.1} | {gateway_blocks:.1} | {:.1} |",
            gateway_blocks - direct_blocks
        );
        println!(
            "| {name}: bytes | {direct_bytes:.0} | {gateway_bytes:.0} | {:.0} |",
            gateway_bytes - direct_bytes
        );
    }
    let _ = stop.send(());
    served.await??;
    Ok(())
}
