//! The Redis backend (Redis 6.2+ or Valkey): shared by every replica.
//!
//! Commands go through one multiplexed connection that reconnects by itself; the change feed is a pub/sub channel
//! `{prefix}changes` on its own connection, re-subscribed with backoff after a loss (the sync task's periodic
//! resync repairs what was missed meanwhile). Nothing here waits longer than the operation timeout.

use crate::record::{Change, Entry};
use crate::StateError;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot, Mutex};

/// Deletes a key only if it still holds the given value (a lease released by its holder).
const DELETE_IF: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/// The client of `url`. A `rediss://` server's certificate is checked against the built-in
/// public roots or, when `SSL_CERT_FILE` names a PEM file, against the certificates in it (as
/// for the gateway's upstreams): a Redis behind a private CA.
fn client_for(url: &str) -> Result<redis::Client, StateError> {
    let private_ca = std::env::var_os("SSL_CERT_FILE").filter(|_| url.starts_with("rediss://"));
    let Some(path) = private_ca else {
        return Ok(redis::Client::open(url)?);
    };
    let pem = std::fs::read(&path).map_err(|error| {
        StateError::Spec(format!(
            "SSL_CERT_FILE ({}) cannot be read for the Redis TLS connection: {error}",
            std::path::Path::new(&path).display()
        ))
    })?;
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    Ok(redis::Client::build_with_tls(url, certificates)?)
}

/// Adds to a number and sets its expiry when the key has none yet (it was just created).
const ADD: &str = "local total = redis.call('incrbyfloat', KEYS[1], ARGV[1]) \
    if tonumber(ARGV[2]) > 0 and redis.call('pttl', KEYS[1]) < 0 then redis.call('pexpire', KEYS[1], ARGV[2]) end \
    return total";

/// A Redis server.
pub struct Redis {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    timeout: Duration,
    /// The durable queue's connection: its commits may wait longer than the breakers' writes.
    queue_conn: Mutex<Option<ConnectionManager>>,
}

impl Redis {
    /// A client for `url`; nothing is connected yet.
    pub fn new(url: &str, timeout: Duration) -> Result<Redis, StateError> {
        Ok(Redis {
            client: client_for(url)?,
            conn: Mutex::new(None),
            timeout,
            queue_conn: Mutex::new(None),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, StateError> {
        self.connect(&self.conn, self.timeout).await
    }

    /// The connection of the durable queue, whose operations may take up to `timeout`.
    pub(super) async fn queue_conn(
        &self,
        timeout: Duration,
    ) -> Result<ConnectionManager, StateError> {
        self.connect(&self.queue_conn, timeout).await
    }

    async fn connect(
        &self,
        slot: &Mutex<Option<ConnectionManager>>,
        timeout: Duration,
    ) -> Result<ConnectionManager, StateError> {
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = self
            .client
            .get_connection_manager_with_config(config)
            .await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the connection after a failure, so the next operation connects afresh instead of waiting on a
    /// reconnect in progress.
    pub(crate) fn forget(&self) {
        for slot in [&self.conn, &self.queue_conn] {
            if let Ok(mut slot) = slot.try_lock() {
                *slot = None;
            }
        }
    }

    pub(crate) async fn put_many(
        &self,
        entries: Vec<(String, Entry)>,
        origin: String,
        channel: &str,
    ) -> Result<Vec<Change>, StateError> {
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        let mut changes = Vec::with_capacity(entries.len());
        for (key, entry) in entries {
            let set = pipe.cmd("SET").arg(&key).arg(&entry.value);
            if let Some(ttl) = entry.ttl {
                set.arg("PX").arg(ttl.as_millis().max(1) as u64);
            }
            let change = Change {
                key,
                value: Some(entry.value),
                origin: origin.clone(),
            };
            let payload =
                serde_json::to_string(&change).map_err(|e| StateError::Backend(e.to_string()))?;
            pipe.publish(channel, payload);
            changes.push(change);
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(changes)
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<String>, StateError> {
        Ok(self.conn().await?.get(key).await?)
    }

    pub(crate) async fn scan(&self, prefix: &str) -> Result<Vec<(String, String)>, StateError> {
        let mut conn = self.conn().await?;
        let pattern = format!("{}*", escape_glob(prefix));
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        Ok(keys
            .into_iter()
            .zip(values)
            .filter_map(|(key, value)| value.map(|value| (key, value)))
            .collect())
    }

    pub(crate) async fn set_if_absent(&self, key: &str, entry: &Entry) -> Result<bool, StateError> {
        let mut conn = self.conn().await?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(&entry.value).arg("NX");
        if let Some(ttl) = entry.ttl {
            cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        let reply: Option<String> = cmd.query_async(&mut conn).await?;
        Ok(reply.is_some())
    }

    /// Runs [`super::lookup::GET_OR_CLAIM`] on `record` and `lease`: the outcome's number and its value.
    pub(crate) async fn get_or_claim(
        &self,
        record: &str,
        lease: &str,
        entry: &Entry,
    ) -> Result<(i64, String), StateError> {
        let mut conn = self.conn().await?;
        let ttl = entry.ttl.map_or(0, |ttl| ttl.as_millis().max(1) as u64);
        Ok(redis::cmd("EVAL")
            .arg(super::lookup::GET_OR_CLAIM)
            .arg(2)
            .arg(record)
            .arg(lease)
            .arg(&entry.value)
            .arg(ttl)
            .query_async(&mut conn)
            .await?)
    }

    pub(crate) async fn delete_if(&self, key: &str, value: &str) -> Result<bool, StateError> {
        let mut conn = self.conn().await?;
        let deleted: i64 = redis::cmd("EVAL")
            .arg(DELETE_IF)
            .arg(1)
            .arg(key)
            .arg(value)
            .query_async(&mut conn)
            .await?;
        Ok(deleted == 1)
    }

    pub(crate) async fn add(
        &self,
        key: &str,
        amount: f64,
        ttl: Option<Duration>,
    ) -> Result<f64, StateError> {
        let mut conn = self.conn().await?;
        let ttl_ms = ttl.map_or(0, |ttl| ttl.as_millis().max(1) as u64);
        let total: String = redis::cmd("EVAL")
            .arg(ADD)
            .arg(1)
            .arg(key)
            .arg(amount)
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await?;
        total
            .parse()
            .map_err(|_| StateError::Backend(format!("`{key}` does not hold a number")))
    }

    pub(crate) async fn describe(&self) -> Result<String, StateError> {
        let mut conn = self.conn().await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name))
                .map(str::trim)
                .unwrap_or("?")
                .to_string()
        };
        let server = if info.contains("valkey_version:") {
            format!("valkey {}", field("valkey_version:"))
        } else {
            format!("redis {}", field("redis_version:"))
        };
        let info = self.client.get_connection_info();
        Ok(format!(
            "{server} at {}, database {}",
            info.addr(),
            info.redis_settings().db()
        ))
    }

    /// Forwards the pub/sub channel to `sender` for as long as the sender has receivers, re-subscribing with
    /// backoff after a loss.
    pub(crate) async fn feed(
        &self,
        channel: String,
        sender: broadcast::Sender<Change>,
        mut ready: Option<oneshot::Sender<()>>,
    ) {
        let mut delay = Duration::from_millis(100);
        loop {
            if sender.receiver_count() == 0 {
                return;
            }
            let subscribed = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            if let Ok(Ok(pubsub)) = tokio::time::timeout(self.timeout * 20, subscribed).await {
                delay = Duration::from_millis(100);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Ok(payload) = message.get_payload::<String>() else {
                        continue;
                    };
                    if let Ok(change) = serde_json::from_str::<Change>(&payload) {
                        let _ = sender.send(change);
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// `text` with the glob characters of `SCAN MATCH` escaped.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
