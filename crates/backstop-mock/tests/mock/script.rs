//! The `backstop-mock` binary with a script: a bad one is refused with exit code 2.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Writes `text` to a script file of its own for this test.
fn script_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("backstop-mock-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the binary on `script` and waits (at most 10 s) for it to exit: its exit code and stderr.
fn run_script(script: &PathBuf) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_backstop-mock"))
        .args(["--listen", "127.0.0.1:0", "--script"])
        .arg(script)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("the mock kept running on a bad script");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

#[test]
fn an_absurd_duration_in_a_script_exits_2_naming_it() {
    let cases = [
        (
            "window.toml",
            "[[faults]]\nkind = \"status\"\nstatus = 503\nwindow = [\"99999999999999999999s\"]\n",
        ),
        (
            "delay.json",
            r#"{"faults":[{"kind":"slow_stream","delay":"99999999999999999999s"}]}"#,
        ),
    ];
    for (name, text) in cases {
        let script = script_file(name, text);
        let (code, stderr) = run_script(&script);
        std::fs::remove_file(&script).unwrap();
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains("`99999999999999999999s` is too long"),
            "{name}: {stderr}"
        );
    }
}
