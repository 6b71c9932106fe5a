//! The queue in Redis: each job a hash `{prefix}job:{id}` (expiring with the job), its turn an entry in the
//! stream `{prefix}jobs` read by the consumer group `workers` (one consumer per replica), and jobs waiting for a
//! retry in the sorted set `{prefix}jobs:delayed` by due time. Every change that touches more than one key is
//! one Lua script, so it happens whole or not at all, and two replicas never take the same job: an entry is
//! delivered to one consumer, and the entries of a replica that died are taken over with `XAUTOCLAIM` once they
//! have been idle longer than the lease.

use super::redis::Redis;
use crate::queue::{Job, JobStatus, Outcome, QUEUE_OP_TIMEOUT};
use crate::StateError;
use redis::Value;
use std::collections::HashMap;

const GROUP: &str = "workers";

/// Stores a job and its stream entry, unless the queue is at its cap (0) or the id is taken (-1).
const ENQUEUE: &str = r"
if redis.call('exists', KEYS[1]) == 1 then return -1 end
if redis.call('xlen', KEYS[2]) + redis.call('zcard', KEYS[3]) >= tonumber(ARGV[1]) then return 0 end
redis.call('hset', KEYS[1], unpack(ARGV, 4))
redis.call('pexpireat', KEYS[1], ARGV[3])
redis.call('xadd', KEYS[2], '*', 'id', ARGV[2])
return 1";

/// Moves the jobs due by ARGV[1] (at most ARGV[2]) from the delayed set to the stream.
const PROMOTE: &str = r"
local ids = redis.call('zrangebyscore', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('zrem', KEYS[2], id)
  redis.call('xadd', KEYS[1], '*', 'id', id)
end
return #ids";

/// Takes the job of stream entry ARGV[1] for this replica, or drops an entry whose job is gone or finished.
const TAKE: &str = r"
local function drop()
  redis.call('xack', KEYS[2], 'workers', ARGV[1])
  redis.call('xdel', KEYS[2], ARGV[1])
end
local status = redis.call('hget', KEYS[1], 'status')
if not status or (status ~= 'queued' and status ~= 'running') then drop() return false end
local now = tonumber(ARGV[2])
if tonumber(redis.call('hget', KEYS[1], 'expires_ms')) <= now then
  redis.call('hset', KEYS[1], 'status', 'expired')
  drop()
  return false
end
if status == 'running' and tonumber(redis.call('hget', KEYS[1], 'lease_until_ms')) > now then return false end
redis.call('hset', KEYS[1], 'status', 'running', 'lease_until_ms', ARGV[3], 'lease_token', ARGV[4], 'entry', ARGV[1])
redis.call('hincrby', KEYS[1], 'attempts', 1)
return redis.call('hgetall', KEYS[1])";

/// Stores the result of a running job and retires its stream entry; 0 when it is no longer running.
const FINISH: &str = r"
if redis.call('hget', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('hset', KEYS[1], 'status', ARGV[1], 'result', ARGV[2], 'status_code', ARGV[3])
redis.call('hdel', KEYS[1], 'lease_token')
local entry = redis.call('hget', KEYS[1], 'entry')
if entry then
  redis.call('xack', KEYS[2], 'workers', entry)
  redis.call('xdel', KEYS[2], entry)
end
return 1";

/// Puts a job held under token ARGV[1] back to wait until ARGV[2].
const RETRY: &str = r"
if redis.call('hget', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('hget', KEYS[1], 'lease_token') ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[1], 'status', 'queued', 'not_before_ms', ARGV[2], 'result', ARGV[3], 'status_code', ARGV[4])
redis.call('hdel', KEYS[1], 'lease_token')
if ARGV[6] == '0' and tonumber(redis.call('hget', KEYS[1], 'attempts') or '0') > 0 then
  redis.call('hincrby', KEYS[1], 'attempts', -1)
end
local entry = redis.call('hget', KEYS[1], 'entry')
if entry then
  redis.call('xack', KEYS[2], 'workers', entry)
  redis.call('xdel', KEYS[2], entry)
end
redis.call('zadd', KEYS[3], ARGV[2], ARGV[5])
return 1";

/// Cancels a waiting job.
const CANCEL: &str = r"
if redis.call('hget', KEYS[1], 'status') ~= 'queued' then return 0 end
redis.call('hset', KEYS[1], 'status', 'cancelled')
redis.call('zrem', KEYS[2], ARGV[1])
return 1";

struct Keys {
    job: String,
    stream: String,
    delayed: String,
}

fn keys(prefix: &str, id: &str) -> Keys {
    Keys {
        job: format!("{prefix}job:{id}"),
        stream: format!("{prefix}jobs"),
        delayed: format!("{prefix}jobs:delayed"),
    }
}

fn eval(script: &str, keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys);
    cmd
}

/// The job in a flat `HGETALL` reply.
fn job_of(id: &str, fields: HashMap<String, String>) -> Option<Job> {
    let number = |name: &str| fields.get(name).and_then(|v| v.parse::<u64>().ok());
    Some(Job {
        id: id.to_string(),
        owner: fields.get("owner")?.clone(),
        status: JobStatus::parse(fields.get("status")?)?,
        payload: fields.get("payload")?.clone(),
        callback: fields.get("callback").filter(|c| !c.is_empty()).cloned(),
        attempts: number("attempts").unwrap_or(0) as u32,
        max_attempts: number("max_attempts").unwrap_or(1) as u32,
        created_ms: number("created_ms")?,
        expires_ms: number("expires_ms")?,
        result: fields.get("result").cloned(),
        status_code: number("status_code").map(|c| c as u16),
    })
}

/// `(entry id, job id)` of the stream entries in an `XREADGROUP` or `XAUTOCLAIM` reply.
fn entries(reply: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    collect_entries(reply, &mut found);
    found
}

fn collect_entries(value: &Value, found: &mut Vec<(String, String)>) {
    let Value::Array(items) = value else {
        return;
    };
    if let [Value::BulkString(entry), Value::Array(fields)] = items.as_slice() {
        if let [Value::BulkString(name), Value::BulkString(id)] = fields.as_slice() {
            if name.as_slice() == b"id" {
                found.push((
                    String::from_utf8_lossy(entry).into_owned(),
                    String::from_utf8_lossy(id).into_owned(),
                ));
                return;
            }
        }
    }
    for item in items {
        collect_entries(item, found);
    }
}

fn is_nogroup(error: &redis::RedisError) -> bool {
    error.to_string().contains("NOGROUP")
}

impl Redis {
    pub(crate) async fn job_enqueue(
        &self,
        prefix: &str,
        job: &Job,
        purge_ms: u64,
        cap: u64,
    ) -> Result<bool, StateError> {
        let k = keys(prefix, &job.id);
        let mut cmd = eval(ENQUEUE, &[&k.job, &k.stream, &k.delayed]);
        cmd.arg(cap).arg(&job.id).arg(purge_ms);
        cmd.arg("owner").arg(&job.owner);
        cmd.arg("status").arg(JobStatus::Queued.as_str());
        cmd.arg("payload").arg(&job.payload);
        cmd.arg("callback")
            .arg(job.callback.as_deref().unwrap_or(""));
        cmd.arg("attempts").arg(0);
        cmd.arg("max_attempts").arg(job.max_attempts);
        cmd.arg("created_ms").arg(job.created_ms);
        cmd.arg("expires_ms").arg(job.expires_ms);
        cmd.arg("not_before_ms").arg(0);
        cmd.arg("lease_until_ms").arg(0);
        let stored: i64 = cmd
            .query_async(&mut self.queue_conn(QUEUE_OP_TIMEOUT).await?)
            .await?;
        if stored < 0 {
            return Err(StateError::Backend(format!("job id {} is taken", job.id)));
        }
        Ok(stored == 1)
    }

    async fn read_group(
        &self,
        stream: &str,
        consumer: &str,
        lease_ms: u64,
    ) -> Result<Vec<(String, String)>, redis::RedisError> {
        let mut conn = self.queue_conn(QUEUE_OP_TIMEOUT).await.map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Io, "connect", e.to_string()))
        })?;
        let stale: Value = redis::cmd("XAUTOCLAIM")
            .arg(stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(lease_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let mut found = match &stale {
            Value::Array(parts) => parts.get(1).map(entries).unwrap_or_default(),
            _ => Vec::new(),
        };
        if found.is_empty() {
            let fresh: Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(consumer)
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(stream)
                .arg(">")
                .query_async(&mut conn)
                .await?;
            found = entries(&fresh);
        }
        Ok(found)
    }

    pub(crate) async fn job_claim(
        &self,
        prefix: &str,
        consumer: &str,
        now: u64,
        lease_ms: u64,
        token: &str,
    ) -> Result<Option<Job>, StateError> {
        let k = keys(prefix, "");
        let mut conn = self.queue_conn(QUEUE_OP_TIMEOUT).await?;
        let _: i64 = eval(PROMOTE, &[&k.stream, &k.delayed])
            .arg(now)
            .arg(100)
            .query_async(&mut conn)
            .await?;
        // A few entries may be stale (their job finished or was cancelled): each is dropped as it comes.
        for _ in 0..8 {
            let found = match self.read_group(&k.stream, consumer, lease_ms).await {
                Ok(found) => found,
                Err(error) if is_nogroup(&error) => {
                    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                        .arg("CREATE")
                        .arg(&k.stream)
                        .arg(GROUP)
                        .arg("0")
                        .arg("MKSTREAM")
                        .query_async(&mut conn)
                        .await;
                    if let Some(error) = created
                        .err()
                        .filter(|e| !e.to_string().contains("BUSYGROUP"))
                    {
                        return Err(StateError::Backend(error.to_string()));
                    }
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let Some((entry, id)) = found.into_iter().next() else {
                return Ok(None);
            };
            let job_key = keys(prefix, &id).job;
            let taken: Option<HashMap<String, String>> = eval(TAKE, &[&job_key, &k.stream])
                .arg(&entry)
                .arg(now)
                .arg(now.saturating_add(lease_ms))
                .arg(token)
                .query_async(&mut conn)
                .await?;
            if let Some(job) = taken.and_then(|fields| job_of(&id, fields)) {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    pub(crate) async fn job_finish(
        &self,
        prefix: &str,
        id: &str,
        _token: &str,
        outcome: &Outcome,
    ) -> Result<bool, StateError> {
        let k = keys(prefix, id);
        let written: i64 = eval(FINISH, &[&k.job, &k.stream])
            .arg(outcome.status.as_str())
            .arg(&outcome.result)
            .arg(outcome.status_code)
            .query_async(&mut self.queue_conn(QUEUE_OP_TIMEOUT).await?)
            .await?;
        Ok(written == 1)
    }

    pub(crate) async fn job_retry(
        &self,
        prefix: &str,
        id: &str,
        token: &str,
        not_before: u64,
        last: &Outcome,
        counted: bool,
    ) -> Result<bool, StateError> {
        let k = keys(prefix, id);
        let written: i64 = eval(RETRY, &[&k.job, &k.stream, &k.delayed])
            .arg(token)
            .arg(not_before)
            .arg(&last.result)
            .arg(last.status_code)
            .arg(id)
            .arg(u8::from(counted))
            .query_async(&mut self.queue_conn(QUEUE_OP_TIMEOUT).await?)
            .await?;
        Ok(written == 1)
    }

    pub(crate) async fn job_get(&self, prefix: &str, id: &str) -> Result<Option<Job>, StateError> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys(prefix, id).job)
            .query_async(&mut self.queue_conn(QUEUE_OP_TIMEOUT).await?)
            .await?;
        Ok(job_of(id, fields))
    }

    pub(crate) async fn job_cancel(&self, prefix: &str, id: &str) -> Result<bool, StateError> {
        let k = keys(prefix, id);
        let cancelled: i64 = eval(CANCEL, &[&k.job, &k.delayed])
            .arg(id)
            .query_async(&mut self.queue_conn(QUEUE_OP_TIMEOUT).await?)
            .await?;
        Ok(cancelled == 1)
    }

    pub(crate) async fn job_wake(&self, prefix: &str) -> Result<(), StateError> {
        let k = keys(prefix, "");
        let _: i64 = eval(PROMOTE, &[&k.stream, &k.delayed])
            .arg("+inf")
            .arg(10_000)
            .query_async(&mut self.queue_conn(QUEUE_OP_TIMEOUT).await?)
            .await?;
        Ok(())
    }

    pub(crate) async fn job_depth(&self, prefix: &str) -> Result<u64, StateError> {
        let k = keys(prefix, "");
        let (queued, delayed): (u64, u64) = redis::pipe()
            .cmd("XLEN")
            .arg(&k.stream)
            .cmd("ZCARD")
            .arg(&k.delayed)
            .query_async(&mut self.queue_conn(QUEUE_OP_TIMEOUT).await?)
            .await?;
        Ok(queued + delayed)
    }
}
