//! The queue in SQLite: the `jobs` table, one row a job. Every change is one statement or one transaction, so a
//! job acknowledged is on disk (WAL) and two processes on one file never claim the same job. The number of
//! unfinished jobs of each queue is kept in `job_counts`, changed in the same transaction as the rows, so that
//! the cap is checked without counting rows.

use super::sqlite::Sqlite;
use crate::queue::{Job, JobStatus, Outcome};
use crate::StateError;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// The columns [`job_of`] reads, in its order.
const COLUMNS: &str =
    "id, owner, status, payload, callback, attempts, max_attempts, created_ms, expires_ms, result, status_code";

/// Adds `delta` to the unfinished jobs of `queue`.
fn count(conn: &Connection, queue: &str, delta: i64) -> rusqlite::Result<()> {
    if delta != 0 {
        conn.execute(
            "INSERT INTO job_counts (queue, unfinished) VALUES (?1, ?2)
             ON CONFLICT (queue) DO UPDATE SET unfinished = unfinished + ?2",
            params![queue, delta],
        )?;
    }
    Ok(())
}

fn job_of(row: &Row<'_>) -> rusqlite::Result<Job> {
    let status: String = row.get(2)?;
    Ok(Job {
        id: row.get(0)?,
        owner: row.get(1)?,
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
        payload: row.get(3)?,
        callback: row.get(4)?,
        attempts: row.get(5)?,
        max_attempts: row.get(6)?,
        created_ms: row.get::<_, i64>(7)? as u64,
        expires_ms: row.get::<_, i64>(8)? as u64,
        result: row.get(9)?,
        status_code: row.get(10)?,
    })
}

impl Sqlite {
    pub(crate) async fn job_enqueue(
        &self,
        queue: String,
        job: Job,
        purge_ms: u64,
        cap: u64,
    ) -> Result<bool, StateError> {
        self.run(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let unfinished: i64 = tx
                .query_row(
                    "SELECT unfinished FROM job_counts WHERE queue = ?1",
                    params![queue],
                    |row| row.get(0),
                )
                .optional()?
                .unwrap_or(0);
            if unfinished.max(0) as u64 >= cap {
                return Ok(false);
            }
            count(&tx, &queue, 1)?;
            tx.execute(
                "INSERT INTO jobs (queue, id, owner, status, payload, callback, attempts, max_attempts,
                     created_ms, expires_ms, purge_ms, not_before_ms, lease_until_ms)
                 VALUES (?1, ?2, ?3, 'queued', ?4, ?5, 0, ?6, ?7, ?8, ?9, 0, 0)",
                params![
                    queue,
                    job.id,
                    job.owner,
                    job.payload,
                    job.callback,
                    job.max_attempts,
                    job.created_ms as i64,
                    job.expires_ms as i64,
                    purge_ms as i64
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn job_claim(
        &self,
        queue: String,
        now: u64,
        lease_ms: u64,
        token: String,
    ) -> Result<Option<Job>, StateError> {
        self.run(move |conn| {
            let now = now as i64;
            let tx = conn.unchecked_transaction()?;
            let expired = tx.execute(
                "UPDATE jobs SET status = 'expired', lease_token = NULL
                 WHERE queue = ?1 AND status IN ('queued', 'running') AND expires_ms <= ?2",
                params![queue, now],
            )?;
            count(&tx, &queue, -(expired as i64))?;
            tx.execute(
                "DELETE FROM jobs WHERE queue = ?1 AND purge_ms <= ?2",
                params![queue, now],
            )?;
            let job = tx
                .query_row(
                    &format!(
                        "UPDATE jobs SET status = 'running', attempts = attempts + 1,
                             lease_until_ms = ?3, lease_token = ?4
                         WHERE queue = ?1 AND id = (
                             SELECT id FROM jobs WHERE queue = ?1 AND (
                                 (status = 'queued' AND not_before_ms <= ?2)
                                 OR (status = 'running' AND lease_until_ms <= ?2))
                             ORDER BY not_before_ms, created_ms LIMIT 1)
                         RETURNING {COLUMNS}"
                    ),
                    params![queue, now, now.saturating_add(lease_ms as i64), token],
                    job_of,
                )
                .optional()?;
            tx.commit()?;
            Ok(job)
        })
        .await
    }

    pub(crate) async fn job_finish(
        &self,
        queue: String,
        id: String,
        outcome: Outcome,
    ) -> Result<bool, StateError> {
        self.run(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let written = tx.execute(
                "UPDATE jobs SET status = ?3, result = ?4, status_code = ?5, lease_token = NULL
                 WHERE queue = ?1 AND id = ?2 AND status = 'running'",
                params![
                    queue,
                    id,
                    outcome.status.as_str(),
                    outcome.result,
                    outcome.status_code
                ],
            )?;
            count(&tx, &queue, -(written as i64))?;
            tx.commit()?;
            Ok(written == 1)
        })
        .await
    }

    pub(crate) async fn job_retry(
        &self,
        queue: String,
        id: String,
        token: String,
        not_before: u64,
        last: Outcome,
        counted: bool,
    ) -> Result<bool, StateError> {
        self.run(move |conn| {
            Ok(conn.execute(
                "UPDATE jobs SET status = 'queued', not_before_ms = ?4, result = ?5, status_code = ?6,
                     lease_token = NULL, attempts = max(attempts - ?7, 0)
                 WHERE queue = ?1 AND id = ?2 AND status = 'running' AND lease_token = ?3",
                params![
                    queue,
                    id,
                    token,
                    not_before as i64,
                    last.result,
                    last.status_code,
                    i64::from(!counted)
                ],
            )? == 1)
        })
        .await
    }

    pub(crate) async fn job_get(
        &self,
        queue: String,
        id: String,
    ) -> Result<Option<Job>, StateError> {
        self.run(move |conn| {
            Ok(conn
                .query_row(
                    &format!(
                        "SELECT {COLUMNS} FROM jobs WHERE queue = ?1 AND id = ?2 AND purge_ms > ?3"
                    ),
                    params![queue, id, crate::record::now_ms() as i64],
                    job_of,
                )
                .optional()?)
        })
        .await
    }

    pub(crate) async fn job_cancel(&self, queue: String, id: String) -> Result<bool, StateError> {
        self.run(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let cancelled = tx.execute(
                "UPDATE jobs SET status = 'cancelled' WHERE queue = ?1 AND id = ?2 AND status = 'queued'",
                params![queue, id],
            )?;
            count(&tx, &queue, -(cancelled as i64))?;
            tx.commit()?;
            Ok(cancelled == 1)
        })
        .await
    }

    pub(crate) async fn job_wake(&self, queue: String) -> Result<(), StateError> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE jobs SET not_before_ms = 0 WHERE queue = ?1 AND status = 'queued'",
                params![queue],
            )?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn job_depth(&self, queue: String, now: u64) -> Result<u64, StateError> {
        self.run(move |conn| {
            let count: i64 = conn.query_row(
                "SELECT count(*) FROM jobs
                 WHERE queue = ?1 AND status IN ('queued', 'running') AND expires_ms > ?2",
                params![queue, now as i64],
                |row| row.get(0),
            )?;
            Ok(count as u64)
        })
        .await
    }
}
