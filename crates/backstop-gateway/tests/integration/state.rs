//! Shared state with real parts: two in-process gateways on one real redis-server, in front of the same mock
//! upstreams, as two replicas behind a load balancer.

use crate::common::{
    chat, eventually, fault, gateway_with_state, mock, two_upstreams, TestGateway,
};
use backstop_core::BreakerState;
use backstop_gateway::pipeline::Gateway;
use backstop_mock::redis_server::RedisServer;
use backstop_mock::MockServer;
use std::sync::Arc;
use std::time::Duration;

const PRIMARY: &str = "primary/gpt-4o-mini";

struct Replicas {
    primary: MockServer,
    _secondary: MockServer,
    a: (Arc<Gateway>, TestGateway),
    b: (Arc<Gateway>, TestGateway),
}

async fn replicas(redis: &RedisServer, open_for: &str) -> Replicas {
    let (primary, secondary) = (mock().await, mock().await);
    let extra = format!(
        "[circuit_breaker]\nfailure_threshold = 2\nopen_for = \"{open_for}\"\nsuccess_threshold = 1\n"
    );
    let text = two_upstreams(&primary, &secondary, &extra).replace(
        "state = \"memory\"",
        &format!(
            "state = \"{}\"\nstate_prefix = \"t{}:\"",
            redis.url(),
            redis.port()
        ),
    );
    let a = gateway_with_state(&text).await;
    let b = gateway_with_state(&text).await;
    Replicas {
        primary,
        _secondary: secondary,
        a,
        b,
    }
}

async fn ask(gw: &TestGateway) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&chat("gpt", false))
        .send()
        .await
        .expect("request")
        .status()
}

fn state_of(gateway: &Gateway) -> BreakerState {
    gateway.health(PRIMARY).breaker.state()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opened_on_one_replica_keeps_the_other_away_and_one_probes() {
    let redis = RedisServer::start().unwrap();
    let r = replicas(&redis, "1s").await;
    fault(&r.primary, serde_json::json!({"kind": "overloaded"})).await;

    while state_of(&r.a.0) != BreakerState::Open {
        assert_eq!(ask(&r.a.1).await, 200, "served by the fallback");
    }
    assert!(
        eventually(Duration::from_secs(3), || state_of(&r.b.0)
            == BreakerState::Open)
        .await,
        "B adopts A's open breaker"
    );
    r.primary.clear_requests();
    for _ in 0..5 {
        assert_eq!(ask(&r.b.1).await, 200);
    }
    assert_eq!(
        r.primary.requests().len(),
        0,
        "B sends nothing to the open target"
    );

    // Past open_for, both replicas take turns: exactly one probe reaches the dead target.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..20 {
        assert_eq!(ask(&r.a.1).await, 200);
        assert_eq!(ask(&r.b.1).await, 200);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        r.primary.requests().len(),
        1,
        "one probe in total, not one per replica"
    );

    let targets: serde_json::Value = reqwest::get(r.b.1.url("/admin/targets"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = targets.to_string();
    assert!(listed.contains("opened_by"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_seen_by_one_replica_holds_the_target_on_the_other() {
    let redis = RedisServer::start().unwrap();
    let r = replicas(&redis, "30s").await;
    fault(
        &r.primary,
        serde_json::json!({"kind": "rate_limit", "retry_after": "5", "count": 1}),
    )
    .await;
    assert_eq!(
        ask(&r.a.1).await,
        200,
        "max_delay is 100ms: A moves on to the fallback"
    );
    assert_eq!(r.primary.requests().len(), 1);
    assert!(
        eventually(Duration::from_secs(3), || r
            .b
            .0
            .health(PRIMARY)
            .breaker
            .snapshot()
            .held_until
            .is_some())
        .await,
        "B learns the hold"
    );
    for _ in 0..3 {
        assert_eq!(ask(&r.a.1).await, 200);
        assert_eq!(ask(&r.b.1).await, 200);
    }
    assert_eq!(
        r.primary.requests().len(),
        1,
        "neither replica calls the held target"
    );
    assert_eq!(
        state_of(&r.b.0),
        BreakerState::Closed,
        "a hold is not a trip"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_injected_on_one_replica_applies_on_the_other_until_cleared_there() {
    let redis = RedisServer::start().unwrap();
    let r = replicas(&redis, "30s").await;
    let admin = reqwest::Client::new();
    let injected = admin
        .post(r.a.1.url("/admin/faults"))
        .json(&serde_json::json!({"target": PRIMARY, "kind": "status", "status": 503, "duration": "60s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(injected.status(), 200);
    assert!(
        eventually(Duration::from_secs(3), || r.b.0.injected(PRIMARY).is_some()).await,
        "B learns the fault"
    );
    assert_eq!(ask(&r.b.1).await, 200, "B's fallback answers");
    assert!(
        r.primary.requests().is_empty(),
        "B plays the fault instead of calling the target"
    );
    let cleared = admin
        .delete(r.b.1.url(&format!("/admin/faults?target={PRIMARY}")))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    assert!(
        eventually(Duration::from_secs(3), || r.a.0.injected(PRIMARY).is_none()).await,
        "A learns it was cleared"
    );
    // B's played failures opened the breaker (shared too): closing it brings the target back.
    let closed = admin
        .post(r.b.1.url(&format!("/admin/breakers/{PRIMARY}/close")))
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 200);
    assert!(
        eventually(Duration::from_secs(3), || state_of(&r.a.0)
            == BreakerState::Closed)
        .await
    );
    assert_eq!(ask(&r.a.1).await, 200);
    assert_eq!(r.primary.requests().len(), 1, "A calls the target again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_under_load_fails_no_request_and_sharing_resumes() {
    let mut redis = RedisServer::start().unwrap();
    let r = replicas(&redis, "30s").await;
    redis.kill();
    for _ in 0..20 {
        assert_eq!(ask(&r.a.1).await, 200);
        assert_eq!(ask(&r.b.1).await, 200);
    }
    // The breakers' writes fail in the background; the first failure marks the store down.
    r.a.0.health(PRIMARY).breaker.force_open(None);
    assert!(
        eventually(Duration::from_secs(3), || !r
            .a
            .0
            .state()
            .unwrap()
            .store()
            .is_up())
        .await
    );
    let status: serde_json::Value = reqwest::get(r.a.1.url("/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"]["up"], false, "{status}");
    assert_eq!(status["status"], "degraded", "{status}");
    let metrics = reqwest::get(r.a.1.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("backstop_state_backend_up 0"), "{metrics}");
    assert_eq!(
        ask(&r.a.1).await,
        200,
        "served by the fallback on local state"
    );

    redis.restart().unwrap();
    assert!(
        eventually(Duration::from_secs(15), || state_of(&r.b.0)
            == BreakerState::Open)
        .await,
        "what A learned while Redis was down reaches B once it is back"
    );
    assert!(r.a.0.state().unwrap().store().is_up());
}

mod process {
    //! The real `backstop` binary with a state store: kill -9 with an open breaker and restart, and bad settings.

    use crate::common::{eventually, ConfigFile};
    use crate::hostile::auth::process::{run, Served};
    use backstop_mock::redis_server::RedisServer;
    use std::time::Duration;

    fn config(state: &str) -> String {
        format!(
            "state = \"{state}\"\n[providers.p]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key = \"sk-x\"\n[models.m]\ntargets = [{{ provider = \"p\", model = \"x\" }}]\n[circuit_breaker]\nopen_for = \"5m\"\n"
        )
    }

    async fn target_state(served: &Served) -> serde_json::Value {
        let status: serde_json::Value = reqwest::get(served.url("/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status["models"]["m"]["targets"][0].clone()
    }

    /// Forces the breaker open through the admin API, kills the process with SIGKILL, starts it again: the
    /// breaker is still open with most of its five minutes left.
    async fn survives_kill_9(file: &ConfigFile) {
        let path = file.path.to_str().unwrap();
        let mut first = Served::start(&["--config", path], &file.directory);
        let forced = reqwest::Client::new()
            .post(first.url("/admin/breakers/p/x/open"))
            .json(&serde_json::json!({"for": "5m"}))
            .send()
            .await
            .unwrap();
        assert!(
            forced.status().is_success(),
            "{}",
            forced.text().await.unwrap()
        );
        assert_eq!(target_state(&first).await["state"], "open");
        tokio::time::sleep(Duration::from_millis(300)).await;
        first.signal("-KILL");
        assert!(eventually(Duration::from_secs(5), || !first.alive()).await);

        let again = Served::start(&["--config", path], &file.directory);
        let target = target_state(&again).await;
        assert_eq!(target["state"], "open", "{target}");
        assert!(
            target["half_open_in_ms"].as_u64().unwrap() > 200_000,
            "{target}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_breaker_survives_kill_9_on_sqlite() {
        let file = ConfigFile::new("state-sqlite-kill", &config("sqlite:state/state.db"));
        survives_kill_9(&file).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_breaker_survives_kill_9_on_redis() {
        let redis = RedisServer::start().unwrap();
        let file = ConfigFile::new("state-redis-kill", &config(&redis.url()));
        survives_kill_9(&file).await;
    }

    #[test]
    fn a_tls_redis_is_trusted_through_ssl_cert_file() {
        let certs = backstop_mock::TestCerts::generate().unwrap();
        let file = ConfigFile::new("state-rediss", "");
        let write = |name: &str, pem: &str| {
            let path = file.directory.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let cert = write("redis-cert.pem", &certs.cert_pem);
        let key = write("redis-key.pem", &certs.key_pem);
        let ca = write("ca.pem", &certs.ca_pem);
        let redis = RedisServer::start_tls(&cert, &key).unwrap();
        let url = redis.tls_url().unwrap();
        file.write(&config(&url));
        let check = |envs: &[(&str, &str)]| {
            let output = run(
                &["check", "--config", file.path.to_str().unwrap()],
                envs,
                &file.directory,
            );
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            (output.status.code(), stdout)
        };
        let (code, stdout) = check(&[("SSL_CERT_FILE", ca.to_str().unwrap())]);
        assert_eq!(code, Some(0), "{stdout}");
        assert!(
            stdout.contains(&url) && !stdout.contains("UNREACHABLE"),
            "{stdout}"
        );
        // Without the private CA, the server's certificate is not trusted.
        let (_, stdout) = check(&[]);
        assert!(stdout.contains("UNREACHABLE"), "{stdout}");
    }

    #[test]
    fn bad_state_settings_exit_2_naming_the_key() {
        let file = ConfigFile::new(
            "state-bad-url",
            &config("redis://user:hunter2@host:notaport"),
        );
        let output = run(
            &["check", "--config", file.path.to_str().unwrap()],
            &[],
            &file.directory,
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("`state`") && !stderr.contains("hunter2"),
            "{stderr}"
        );

        let file = ConfigFile::new("state-corrupt", &config("sqlite:corrupt.db"));
        std::fs::write(file.directory.join("corrupt.db"), vec![7u8; 8192]).unwrap();
        let path = file.path.to_str().unwrap();
        let commands: [&[&str]; 2] = [
            &["check", "--config", path],
            &["serve", "--config", path, "--listen", "127.0.0.1:0"],
        ];
        for command in commands {
            let output = run(command, &[], &file.directory);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{command:?}: {stderr}");
            assert!(
                stderr.contains("corrupt.db") && stderr.contains("not a SQLite database"),
                "{stderr}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_redis_at_start_is_a_warning_and_the_gateway_serves() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = ConfigFile::new(
            "state-unreachable",
            &config(&format!("redis://:s3cret@127.0.0.1:{port}")),
        );
        let output = run(
            &["check", "--config", file.path.to_str().unwrap()],
            &[],
            &file.directory,
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0));
        assert!(
            stdout.contains("UNREACHABLE") && !stdout.contains("s3cret"),
            "{stdout}"
        );

        let served = Served::start(&["--config", file.path.to_str().unwrap()], &file.directory);
        let stderr = served.stderr_once_it_says("serving on local state").await;
        assert!(!stderr.contains("s3cret"), "{stderr}");
        let status: serde_json::Value = reqwest::get(served.url("/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status["state"]["up"], false, "{status}");
        assert_eq!(
            status["state"]["backend"],
            format!("redis://:***@127.0.0.1:{port}")
        );
    }
}
