//! A real `redis-server` for tests: started on a free port in a temporary directory, stopped (killed) on drop,
//! and restartable on the same port to test a store that goes away and comes back.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` owned by a test.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// The TLS port, and the certificate and key files it serves.
    tls: Option<(u16, PathBuf, PathBuf)>,
}

impl RedisServer {
    /// Starts `redis-server` (from `PATH`) on a free loopback port, without persistence.
    pub fn start() -> std::io::Result<RedisServer> {
        Self::start_with(None)
    }

    /// Starts `redis-server` that also accepts TLS connections on a second free port, with the
    /// certificate and private key in these PEM files (clients need not present one).
    pub fn start_tls(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> std::io::Result<RedisServer> {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(
        tls: Option<(&std::path::Path, &std::path::Path)>,
    ) -> std::io::Result<RedisServer> {
        let mut last = None;
        for _ in 0..5 {
            match Self::start_once(tls) {
                Ok(server) => return Ok(server),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("redis-server did not start")))
    }

    fn start_once(
        tls: Option<(&std::path::Path, &std::path::Path)>,
    ) -> std::io::Result<RedisServer> {
        let free = || -> std::io::Result<u16> {
            Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
        };
        let port = free()?;
        let tls = match tls {
            Some((cert, key)) => Some((free()?, cert.to_path_buf(), key.to_path_buf())),
            None => None,
        };
        let dir =
            std::env::temp_dir().join(format!("backstop-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut server = RedisServer {
            port,
            dir,
            child: None,
            tls,
        };
        server.restart()?;
        Ok(server)
    }

    /// `rediss://127.0.0.1:PORT` of a server started with [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|(port, _, _)| format!("rediss://127.0.0.1:{port}"))
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (as a crash would); [`RedisServer::restart`] brings it back on the same port, empty.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it accepts connections.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir);
        if let Some((port, cert, key)) = &self.tls {
            command
                .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(cert);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let pid = child.id();
        self.child = Some(child);
        let started = Instant::now();
        // The port was free when it was chosen, but another test may have taken it since: only
        // a server that reports our child's process id is ours.
        while server_pid(self.port) != Some(pid) {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited || started.elapsed() > Duration::from_secs(10) {
                return Err(std::io::Error::other(format!(
                    "redis-server did not start on port {}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// The process id the Redis server on `port` reports, if one answers.
fn server_pid(port: u16) -> Option<u32> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream
        .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        .ok()?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !reply.windows(11).any(|w| w == b"process_id:") || !reply.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&reply);
    let line = text.lines().find_map(|l| l.strip_prefix("process_id:"))?;
    line.trim().parse().ok()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
