//! A tiny OpenAI-compatible upstream on a raw TCP socket, for misbehaviour the mock has no
//! fault for: streams that never end and come as fast as the socket takes them, streams of
//! SSE comments only, and large answers that all arrive at once. Each connection gets one
//! answer and is closed after it (`connection: close`, the body ends with the connection).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Barrier;

/// What the upstream answers to every request.
#[derive(Clone)]
pub enum Behaviour {
    /// Text deltas in a loop, written as fast as the socket takes them.
    EndlessDeltas,
    /// `: keepalive` comments only, as fast as the socket takes them.
    CommentsOnly,
    /// One text delta, then a comment every `every`, forever.
    EventThenComments { every: Duration },
    /// Deltas of `delta` bytes of text each until `text` bytes were sent, then the
    /// connection is closed with no finish and no terminator.
    DeltasThenCut { text: usize, delta: usize },
    /// A non-streaming answer whose body is exactly `bytes` long. Headers go out at once;
    /// the bodies only once `together` requests have arrived, so they are read at once.
    LargeAnswer { bytes: usize, together: usize },
}

/// What the upstream saw.
#[derive(Default)]
pub struct Stats {
    /// Requests received.
    pub requests: AtomicUsize,
    /// Body bytes written to the gateway (after the headers).
    pub written: AtomicU64,
    /// A write has waited over half a second: the gateway stopped reading.
    pub blocked: AtomicBool,
}

/// A running raw upstream.
pub struct RawUpstream {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
}

impl RawUpstream {
    /// Starts it on a free port.
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let together = match behaviour {
            Behaviour::LargeAnswer { together, .. } => together,
            _ => 1,
        };
        let barrier = Arc::new(Barrier::new(together));
        let shared = stats.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (stats, behaviour, barrier) =
                    (shared.clone(), behaviour.clone(), barrier.clone());
                tokio::spawn(async move {
                    let _ = answer(socket, &behaviour, &stats, &barrier).await;
                });
            }
        });
        Self { addr, stats }
    }

    /// The base URL of an OpenAI provider on it.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

/// One OpenAI stream chunk carrying `text`.
pub fn delta(text: &str) -> String {
    format!(
        "data: {{\"id\":\"raw\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"raw\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n"
    )
}

/// A non-streaming OpenAI answer exactly `bytes` long (padded with text).
pub fn large_answer(bytes: usize) -> String {
    let shell = |text: &str| {
        format!(
            "{{\"id\":\"raw\",\"object\":\"chat.completion\",\"created\":0,\"model\":\"raw\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{text}\"}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}}}"
        )
    };
    let padding = bytes - shell("").len();
    shell(&"a".repeat(padding))
}

async fn answer(
    mut socket: TcpStream,
    behaviour: &Behaviour,
    stats: &Stats,
    barrier: &Barrier,
) -> std::io::Result<()> {
    read_request(&mut socket).await?;
    stats.requests.fetch_add(1, Ordering::SeqCst);
    let stream_head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
    match behaviour {
        Behaviour::LargeAnswer { bytes, .. } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {bytes}\r\nconnection: close\r\n\r\n"
            );
            socket.write_all(head.as_bytes()).await?;
            barrier.wait().await;
            write_counted(&mut socket, large_answer(*bytes).as_bytes(), stats).await
        }
        Behaviour::EndlessDeltas => {
            socket.write_all(stream_head.as_bytes()).await?;
            let block = delta("0123456789abcdef").repeat(512);
            loop {
                write_counted(&mut socket, block.as_bytes(), stats).await?;
            }
        }
        Behaviour::CommentsOnly => {
            socket.write_all(stream_head.as_bytes()).await?;
            let block = ": keepalive\n\n".repeat(4096);
            loop {
                write_counted(&mut socket, block.as_bytes(), stats).await?;
            }
        }
        Behaviour::EventThenComments { every } => {
            socket.write_all(stream_head.as_bytes()).await?;
            write_counted(&mut socket, delta("Hello").as_bytes(), stats).await?;
            loop {
                tokio::time::sleep(*every).await;
                write_counted(&mut socket, b": keepalive\n\n", stats).await?;
            }
        }
        Behaviour::DeltasThenCut { text, delta: size } => {
            socket.write_all(stream_head.as_bytes()).await?;
            let piece = delta(&"x".repeat(*size));
            for _ in 0..text.div_ceil(*size) {
                write_counted(&mut socket, piece.as_bytes(), stats).await?;
            }
            socket.shutdown().await
        }
    }
}

/// Writes `bytes`, counting them, and noting when the reader has stopped taking them.
async fn write_counted(socket: &mut TcpStream, bytes: &[u8], stats: &Stats) -> std::io::Result<()> {
    let write = socket.write_all(bytes);
    tokio::pin!(write);
    if tokio::time::timeout(Duration::from_millis(500), &mut write)
        .await
        .is_err()
    {
        stats.blocked.store(true, Ordering::SeqCst);
        write.await?;
    }
    stats
        .written
        .fetch_add(bytes.len() as u64, Ordering::SeqCst);
    Ok(())
}

/// Reads one request: its headers and a `content-length` body.
async fn read_request(socket: &mut TcpStream) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buffer.len() - end;
    while body < length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body += n;
    }
    Ok(())
}
