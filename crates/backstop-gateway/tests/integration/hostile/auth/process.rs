//! The real `backstop` binary: `check` and `serve` refusing unsafe configurations,
//! SIGHUP, a closed stdout.

use super::ConfigFile;
use crate::common::*;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_backstop");

/// `backstop ARGS` run to its end with `envs`, in `directory`.
pub fn run(args: &[&str], envs: &[(&str, &str)], directory: &std::path::Path) -> Output {
    Command::new(BINARY)
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("RUST_LOG")
        .current_dir(directory)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A `backstop serve` process, its address and everything it wrote to stderr so far.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Served {
    /// Starts `backstop serve ARGS --listen 127.0.0.1:0` and waits for its address.
    pub fn start(args: &[&str], directory: &std::path::Path) -> Self {
        let mut child = Command::new(BINARY)
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .env_remove("OPENAI_API_KEY")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("GEMINI_API_KEY")
            .current_dir(directory)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("no address in {line:?}; stderr: {}", stderr.lock().unwrap()))
            .parse()
            .unwrap();
        Self {
            child,
            addr,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (at most 10 s) until stderr holds `text`, and returns all of it.
    pub async fn stderr_once_it_says(&self, text: &str) -> String {
        let seen = eventually(Duration::from_secs(10), || self.stderr().contains(text)).await;
        let stderr = self.stderr();
        assert!(seen, "stderr never said {text:?}:\n{stderr}");
        stderr
    }

    /// Sends `signal` (e.g. "-HUP") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn empty_keys_from_the_environment_fail_check() {
    let file = ConfigFile::new(
        "empty-keys",
        "[auth]\nclient_keys = [\"${BACKSTOP_TEST_EMPTY}\"]\n",
    );
    let path = file.path.to_str().unwrap();
    let output = run(
        &["check", "--config", path],
        &[("BACKSTOP_TEST_EMPTY", "")],
        &file.directory,
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("auth.client_keys[0]"),
        "{}",
        stderr_of(&output)
    );

    file.write("[auth]\nadmin_key = \" \"\n");
    let output = run(&["check", "--config", path], &[], &file.directory);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("auth.admin_key"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn check_says_when_the_admin_api_is_disabled() {
    let file = ConfigFile::new("disabled", "[auth]\nclient_keys = [\"ck-client-1\"]\n");
    let output = run(
        &["check", "--config", file.path.to_str().unwrap()],
        &[],
        &file.directory,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("the admin API is disabled because no auth.admin_key is set"),
        "{stdout}"
    );
    assert!(!stdout.contains("ck-client-1"), "{stdout}");
}

#[test]
fn an_exposed_address_without_client_keys_is_refused_by_check_and_serve() {
    let file = ConfigFile::new("exposed", "listen = \"0.0.0.0:0\"\nstate = \"memory\"\n");
    let path = file.path.to_str().unwrap();
    let how = |text: &str| {
        text.contains("auth.client_keys")
            && text.contains("auth.open = true")
            && text.contains("127.0.0.1")
    };
    let output = run(&["check", "--config", path], &[], &file.directory);
    assert_eq!(output.status.code(), Some(2));
    assert!(how(&stderr_of(&output)), "{}", stderr_of(&output));
    let output = run(&["serve", "--config", path], &[], &file.directory);
    assert_eq!(output.status.code(), Some(2));
    assert!(how(&stderr_of(&output)), "{}", stderr_of(&output));

    // The same through --listen, from a file and in zero-config mode (no file at all).
    file.write("state = \"memory\"\n");
    let output = run(
        &["serve", "--config", path, "--listen", "0.0.0.0:0"],
        &[],
        &file.directory,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("--listen"),
        "{}",
        stderr_of(&output)
    );
    std::fs::remove_file(&file.path).unwrap();
    let output = run(&["serve", "--listen", "[::]:0"], &[], &file.directory);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(how(&stderr_of(&output)), "{}", stderr_of(&output));

    file.write("listen = \"0.0.0.0:0\"\nstate = \"memory\"\n[auth]\nopen = true\n");
    let output = run(&["check", "--config", path], &[], &file.directory);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
}

#[test]
fn check_into_a_closed_pipe_exits_quietly() {
    let file = ConfigFile::new("pipe", "[providers.o]\nkind = \"openai\"\n");
    let mut text = std::fs::read_to_string(&file.path).unwrap();
    for index in 0..200 {
        text.push_str(&format!(
            "[models.m{index}]\ntargets = [{{ provider = \"o\", model = \"x\" }}]\n"
        ));
    }
    file.write(&text);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(BINARY)
        .args(["check", "--config", file.path.to_str().unwrap()])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

#[tokio::test]
async fn sighup_reloads_the_file_without_stopping_the_process_or_its_streams() {
    let upstream = mock().await;
    fault(
        &upstream,
        serde_json::json!({"kind": "slow_stream", "delay": "20ms"}),
    )
    .await;
    let config = |model: &str| {
        format!(
            "state = \"memory\"\n[providers.p]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key = \"sk-test-1\"\n\
             [models.{model}]\ntargets = [{{ provider = \"p\", model = \"gpt-4o-mini\" }}]\n",
            upstream.url()
        )
    };
    let file = ConfigFile::new("sighup", &config("before"));
    let mut served = Served::start(&["--config", file.path.to_str().unwrap()], &file.directory);
    let client = reqwest::Client::new();
    let mut stream = client
        .post(served.url("/v1/chat/completions"))
        .json(&chat("before", true))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut body = String::from_utf8_lossy(&stream.chunk().await.unwrap().unwrap()).into_owned();

    file.write(&config("after"));
    served.signal("-HUP");
    served.stderr_once_it_says("configuration reloaded").await;
    assert!(served.alive(), "SIGHUP killed the gateway");

    while let Some(chunk) = stream.chunk().await.unwrap() {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        body.contains("[DONE]"),
        "the stream in flight was cut: {body}"
    );
    let after = client
        .post(served.url("/v1/chat/completions"))
        .json(&chat("after", false))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200, "the new config is not served");

    // A refused reload is logged, and the process still lives.
    file.write("state = \"memory\"\n");
    served.signal("-HUP");
    served.stderr_once_it_says("reload refused").await;
    assert!(served.alive());
}

#[tokio::test]
async fn sighup_in_zero_config_mode_says_there_is_nothing_to_reload() {
    let directory = std::env::temp_dir().join(format!("backstop-auth-zero-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let mut served = Served::start(&[], &directory);
    served.signal("-HUP");
    served.stderr_once_it_says("nothing to reload").await;
    assert!(served.alive());
    let _ = std::fs::remove_dir_all(&directory);
}
