//! Authentication that fails closed, reloads that cannot remove it, and secrets kept out of every output.

pub(crate) mod process;
mod secrets;

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEYS: &str = "[auth]\nclient_keys = [\"ck-client-1\"]\nadmin_key = \"adm-admin-1\"\n";

async fn post(gw: &TestGateway, path: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(gw.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_with(gw: &TestGateway, path: &str, authorization: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().get(gw.url(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap().status().as_u16()
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_reload_cannot_remove_authentication_nor_every_model() {
    let (primary, secondary) = (mock().await, mock().await);
    let file = ConfigFile::new("weaken", &two_upstreams(&primary, &secondary, KEYS));
    let gw = gateway_from_file(&file.path).await;
    let admin = Some("adm-admin-1");

    for (weaker, why) in [
        (
            two_upstreams(&primary, &secondary, ""),
            "the client keys and the admin key",
        ),
        (
            two_upstreams(
                &primary,
                &secondary,
                "[auth]\nadmin_key = \"adm-admin-1\"\n",
            ),
            "the client keys",
        ),
        (
            two_upstreams(
                &primary,
                &secondary,
                "[auth]\nclient_keys = [\"ck-client-1\"]\n",
            ),
            "the admin key",
        ),
        (String::new(), "no model"),
        ("state = \"memory\"\n".to_string(), "no model"),
    ] {
        file.write(&weaker);
        let (status, body) = post(&gw, "/admin/reload", admin).await;
        assert_eq!(status, 400, "{body}");
        assert!(message(&body).contains(why), "{body}");
        assert_eq!(
            get_with(&gw, "/v1/models", None).await,
            401,
            "auth must stay"
        );
        assert_eq!(
            get_with(&gw, "/admin/targets", None).await,
            401,
            "admin must stay"
        );
    }

    let other_keys = "[auth]\nclient_keys = [\"ck-client-2\"]\nadmin_key = \"adm-admin-2\"\n";
    file.write(&two_upstreams(&primary, &secondary, other_keys));
    let (status, body) = post(&gw, "/admin/reload", admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get_with(&gw, "/v1/models", Some("Bearer ck-client-2")).await,
        200
    );
    assert_eq!(
        get_with(&gw, "/v1/models", Some("Bearer ck-client-1")).await,
        401
    );
}

#[tokio::test]
async fn client_keys_without_an_admin_key_disable_the_admin_api() {
    let extra = "[auth]\nclient_keys = [\"ck-client-1\"]\n";
    let s = setup(extra).await;
    for key in [None, Some("Bearer ck-client-1"), Some("Bearer anything")] {
        let response = reqwest::Client::new()
            .get(s.gw.url("/admin/targets"))
            .header("authorization", key.unwrap_or(""))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await.unwrap();
        assert!(
            message(&body).contains("disabled because no auth.admin_key is set"),
            "{body}"
        );
    }
    let (status, _) = post(&s.gw, "/admin/reload", Some("ck-client-1")).await;
    assert_eq!(status, 403);
    // Without [auth] at all, on loopback, it stays open as before.
    let open = setup("").await;
    assert_eq!(get_with(&open.gw, "/admin/targets", None).await, 200);
}

#[tokio::test]
async fn protect_metrics_needs_a_client_or_admin_key_for_metrics_and_status() {
    let s = setup(&format!("{KEYS}protect_metrics = true\n")).await;
    for path in ["/metrics", "/status"] {
        assert_eq!(get_with(&s.gw, path, None).await, 401, "{path}");
        assert_eq!(
            get_with(&s.gw, path, Some("Bearer wrong")).await,
            401,
            "{path}"
        );
        assert_eq!(
            get_with(&s.gw, path, Some("Bearer ck-client-1")).await,
            200,
            "{path}"
        );
        assert_eq!(
            get_with(&s.gw, path, Some("Bearer adm-admin-1")).await,
            200,
            "{path}"
        );
    }
    let open = setup(KEYS).await;
    assert_eq!(get_with(&open.gw, "/metrics", None).await, 200);
    assert_eq!(get_with(&open.gw, "/status", None).await, 200);
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let s = setup(KEYS).await;
    for header in [
        "Bearer ck-client-1",
        "BEARER ck-client-1",
        "bearer ck-client-1",
        "Bearer   ck-client-1",
        "bEaReR\tck-client-1",
    ] {
        assert_eq!(
            get_with(&s.gw, "/v1/models", Some(header)).await,
            200,
            "{header:?}"
        );
    }
    for header in ["Basic ck-client-1", "Bearerck-client-1", "ck-client-1"] {
        assert_eq!(
            get_with(&s.gw, "/v1/models", Some(header)).await,
            401,
            "{header:?}"
        );
    }
    assert_eq!(
        get_with(&s.gw, "/admin/targets", Some("BEARER adm-admin-1")).await,
        200
    );
}

#[tokio::test]
async fn an_admin_body_is_refused_once_it_passes_64_kib() {
    let s = setup(KEYS).await;
    let mut stream = tokio::net::TcpStream::connect(s.gw.addr).await.unwrap();
    let head = "POST /admin/faults HTTP/1.1\r\nhost: x\r\nauthorization: Bearer adm-admin-1\r\n\
                content-type: application/json\r\ncontent-length: 314572800\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    // 128 KiB of the announced 300 MB: a server that reads the whole body never answers.
    stream.write_all(&vec![b' '; 128 << 10]).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            answer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&answer);
            if n == 0 || text.contains("}}") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer while the body was still coming");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains("larger than the limit of 65536 bytes"),
        "{text}"
    );
}

#[tokio::test]
async fn a_reload_names_what_needs_a_restart_and_forgets_removed_targets() {
    let (primary, secondary) = (mock().await, mock().await);
    let file = ConfigFile::new("restart", &two_upstreams(&primary, &secondary, ""));
    let gw = gateway_from_file(&file.path).await;
    let targets = |body: &Value| -> Vec<String> {
        body["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["target"].as_str().unwrap().to_string())
            .collect()
    };
    let listed: Value = reqwest::get(gw.url("/admin/targets"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(targets(&listed).contains(&"anth/claude-sonnet-4-5".to_string()));

    // Without the claude model, on another address and thread count.
    let fewer = two_upstreams(&primary, &secondary, "")
        .replace(
            "[models.claude]\ntargets = [{ provider = \"anth\", model = \"claude-sonnet-4-5\" }]\n",
            "",
        )
        .replace(
            "state = \"memory\"",
            "state = \"memory\"\nlisten = \"127.0.0.1:1\"\n[server]\nthreads = 3\n",
        );
    file.write(&fewer);
    let (status, body) = post(&gw, "/admin/reload", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["restart_required"],
        json!(["listen", "server.threads"])
    );
    assert_eq!(body["models"], json!(["backup", "gpt"]));

    let listed: Value = reqwest::get(gw.url("/admin/targets"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !targets(&listed).contains(&"anth/claude-sonnet-4-5".to_string()),
        "{listed}"
    );
    let status: Value = reqwest::get(gw.url("/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(status["models"].get("claude").is_none(), "{status}");
    let answer = post_json(&gw, "/v1/chat/completions", &chat("gpt", false)).await;
    assert_eq!(answer.status(), 200, "still served on the running address");
}
