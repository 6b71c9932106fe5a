//! Measures the heap an open stream holds in the gateway. One process holds a mock upstream
//! (every stream slowed to one event a second, 30 events, so none ends while counted), a gateway in front of
//! it and a client of plain sockets. The client opens N streams straight to the mock and, once
//! each has its first event, reads the heap in use (dhat's global allocator counts every
//! allocation of the process); it closes them and does the same through the gateway. The
//! difference, divided by N, is what the gateway holds per open stream: its two connections,
//! their tasks, the pipeline and the relay. Unlike the RSS that `bench/streams.sh` reads, the
//! figure does not depend on the allocator's retained pages or the machine's load.
//!
//! `cargo run --release -p backstop-gateway --example open_streams -- [streams=500] [profile.json] 2>/dev/null`
//!
//! With a second argument, the allocation sites at the heap's peak (the N streams open through
//! the gateway) are saved there for DHAT's viewer (`dh_view.html`).

use backstop_gateway::pipeline::Gateway;
use backstop_gateway::{config, server};
use backstop_mock::{Fault, FaultKind, MockConfig, MockServer};
use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const STREAM: &str =
    r#"{"model":"gpt","stream":true,"messages":[{"role":"user","content":"Say hello"}]}"#;

/// Opens one streaming request on a new connection and returns it once its first event arrived.
async fn open(addr: SocketAddr, model: &str) -> Result<TcpStream, Box<dyn Error>> {
    let body = STREAM.replace("\"gpt\"", &format!("\"{model}\""));
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut socket = TcpStream::connect(addr).await?;
    socket.write_all(request.as_bytes()).await?;
    let mut seen = Vec::with_capacity(4096);
    let mut buf = [0u8; 2048];
    // The head, then the first event's blank line.
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") || count(&seen, b"\n\n") < 1 {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Err("the stream closed before its first event".into());
        }
        seen.extend_from_slice(&buf[..n]);
    }
    if !seen.starts_with(b"HTTP/1.1 200") {
        return Err(format!("answered {}", String::from_utf8_lossy(&seen[..12])).into());
    }
    Ok(socket)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// Heap bytes and blocks held per stream while `n` streams to `addr` are open (opened 32 at a
/// time, each counted once its first event arrived).
async fn held(addr: SocketAddr, model: &str, n: usize) -> Result<(f64, f64), Box<dyn Error>> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = dhat::HeapStats::get();
    let gate = Arc::new(tokio::sync::Semaphore::new(32));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (gate, model) = (gate.clone(), model.to_owned());
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await;
            open(addr, &model).await.map_err(|e| e.to_string())
        });
    }
    let mut streams = Vec::with_capacity(n);
    while let Some(opened) = opening.join_next().await {
        streams.push(opened??);
    }
    drop(opening);
    let after = dhat::HeapStats::get();
    drop(streams);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n = n.max(1) as f64;
    Ok((
        (after.curr_bytes as f64 - before.curr_bytes as f64) / n,
        (after.curr_blocks as f64 - before.curr_blocks as f64) / n,
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let streams: usize = args.next().map_or(Ok(500), |n| n.parse())?;
    let profile = args.next();
    let _profiler = match profile {
        Some(path) => dhat::Profiler::builder()
            .file_name(path)
            .trim_backtraces(Some(64))
            .build(),
        None => dhat::Profiler::builder().testing().build(),
    };

    let mock = MockServer::start(MockConfig {
        chunks: 30,
        log_capacity: 10,
        ..MockConfig::default()
    })
    .await?;
    mock.add_fault(Fault::new(FaultKind::SlowStream {
        delay: Duration::from_secs(1),
    }));
    let config = config::parse(
        &format!(
            "state = \"memory\"\n[server]\nmax_connections = 60000\n\
             [providers.up]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n\
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

    // Warm-up: pools, lazy statics and the first request's one-time allocations.
    held(addr, "gpt", 20).await?;
    let (direct_bytes, direct_blocks) = held(mock.addr(), "mock-model", streams).await?;
    let (through_bytes, through_blocks) = held(addr, "gpt", streams).await?;
    println!("{streams} open streams, heap held per stream (dhat)");
    println!("| per open stream | direct to the mock | through the gateway | the gateway's |");
    println!("|---|---|---|---|");
    println!(
        "| bytes | {direct_bytes:.0} | {through_bytes:.0} | {:.0} |",
        through_bytes - direct_bytes
    );
    println!(
        "| blocks | {direct_blocks:.1} | {through_blocks:.1} | {:.1} |",
        through_blocks - direct_blocks
    );
    let _ = stop.send(());
    served.await??;
    Ok(())
}
