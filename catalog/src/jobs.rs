//! Import jobs and import profiles. A job is the durable record of one file
//! handed to the import pipeline, from its arrival to its verdict:
//!
//! ```text
//!  received ─► validating ─► loading ─► imported
//!      │            │           │  └──► waiting-retry ─► loading …
//!      └────────────┴───────────┴─────► rejected | duplicate
//! ```
//!
//! Each tenant has one profile file (TOML, several `[[import]]` tables),
//! stored as its text: the import pipeline parses and checks it.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::access::bump_revision;
use crate::error::CatalogError;
use crate::names::TenantName;
use crate::store::{Catalog, now_ms};

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobStatus {
    /// Recorded; the file is being taken out of the inbox.
    Received,
    /// The file is being checked against its profile.
    Validating,
    /// The rows are being written to the tenant's database.
    Loading,
    /// The tenant's database was unreachable, or the disk full; the job is tried again later.
    WaitingRetry,
    /// Every row is in the tenant's database (terminal).
    Imported,
    /// The file was refused; the receipt says why (terminal).
    Rejected,
    /// The same content was imported before with the same profile (terminal).
    Duplicate,
}

impl JobStatus {
    /// Every status, in life order.
    pub const ALL: [Self; 7] = [
        Self::Received,
        Self::Validating,
        Self::Loading,
        Self::WaitingRetry,
        Self::Imported,
        Self::Rejected,
        Self::Duplicate,
    ];

    /// The name used in the catalog, the CLI and receipts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Validating => "validating",
            Self::Loading => "loading",
            Self::WaitingRetry => "waiting-retry",
            Self::Imported => "imported",
            Self::Rejected => "rejected",
            Self::Duplicate => "duplicate",
        }
    }

    /// Parses a name printed by [`JobStatus::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Whether the job has its verdict.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Imported | Self::Rejected | Self::Duplicate)
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One import job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportJob {
    /// Job id (a UUID), also the `_import_id` of every row it loads.
    pub id: String,
    /// Tenant name.
    pub tenant: String,
    /// The file's path relative to `/inbox` (`employees/2026-11.csv`).
    pub path: String,
    /// SHA-256 of the content, lower-case hex, once the file is taken.
    pub sha256: Option<String>,
    /// Size in bytes, once the file is taken.
    pub bytes: Option<i64>,
    /// The profile that matched, once known.
    pub profile: Option<String>,
    /// Where the job is.
    pub status: JobStatus,
    /// Rows written by the committed load.
    pub rows_loaded: Option<i64>,
    /// Runs of the job so far: each start counts, whatever ended it (a
    /// verdict, a wait for the database, a crash, a run after `import retry`).
    pub attempts: i64,
    /// When a waiting job is tried again, Unix milliseconds.
    pub next_try_at: Option<i64>,
    /// Why the job was rejected or is waiting, for people.
    pub error: Option<String>,
    /// When the file arrived, Unix milliseconds.
    pub received_at: i64,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
    /// When the job reached its verdict, Unix milliseconds.
    pub finished_at: Option<i64>,
    /// How far its last run got, as that run recorded it (about once a
    /// second); `None` before any run recorded progress.
    pub progress: Option<JobProgress>,
}

/// How far a run of a job got: what `import list` and `import show` tell
/// about a running import. Written only through
/// [`Catalog::record_import_progress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct JobProgress {
    /// Rows validated and handed to the database so far.
    pub rows: i64,
    /// Bytes of the file read (and validated) so far.
    pub bytes: i64,
    /// When the run started, Unix milliseconds.
    pub started_at: i64,
    /// When these figures were taken, Unix milliseconds.
    pub at: i64,
}

impl JobProgress {
    /// Rows per second since the run started; `None` before any time passed.
    pub fn rows_per_second(&self) -> Option<f64> {
        let seconds = self.elapsed_seconds()?;
        Some(self.rows as f64 / seconds)
    }

    /// Bytes per second since the run started; `None` before any time passed.
    pub fn bytes_per_second(&self) -> Option<f64> {
        let seconds = self.elapsed_seconds()?;
        Some(self.bytes as f64 / seconds)
    }

    /// When the run should end, Unix milliseconds, at the rate so far, for
    /// a file of `total_bytes`; `None` while nothing was read yet.
    pub fn estimated_end(&self, total_bytes: i64) -> Option<i64> {
        let rate = self.bytes_per_second().filter(|rate| *rate > 0.0)?;
        let left = (total_bytes - self.bytes).max(0) as f64;
        Some(self.at + (left / rate * 1000.0) as i64)
    }

    fn elapsed_seconds(&self) -> Option<f64> {
        let millis = self.at - self.started_at;
        (millis > 0).then(|| millis as f64 / 1000.0)
    }
}

impl ImportJob {
    /// A new job for `path` of `tenant`, received now.
    pub fn received(id: String, tenant: &TenantName, path: String) -> Self {
        let now = now_ms();
        Self {
            id,
            tenant: tenant.to_string(),
            path,
            sha256: None,
            bytes: None,
            profile: None,
            status: JobStatus::Received,
            rows_loaded: None,
            attempts: 0,
            next_try_at: None,
            error: None,
            received_at: now,
            updated_at: now,
            finished_at: None,
            progress: None,
        }
    }

    fn from_row(row: &AnyRow) -> Result<Self, CatalogError> {
        let status: String = row.try_get("status")?;
        Ok(Self {
            id: row.try_get("id")?,
            tenant: row.try_get("tenant")?,
            path: row.try_get("path")?,
            sha256: row.try_get("sha256")?,
            bytes: row.try_get("bytes")?,
            profile: row.try_get("profile")?,
            status: JobStatus::parse(&status)
                .ok_or_else(|| CatalogError::Corrupt(format!("import job status {status:?}")))?,
            rows_loaded: row.try_get("rows_loaded")?,
            attempts: row.try_get("attempts")?,
            next_try_at: row.try_get("next_try_at")?,
            error: row.try_get("error")?,
            received_at: row.try_get("received_at")?,
            updated_at: row.try_get("updated_at")?,
            finished_at: row.try_get("finished_at")?,
            progress: match (
                row.try_get::<Option<i64>, _>("progress_rows")?,
                row.try_get::<Option<i64>, _>("progress_bytes")?,
                row.try_get::<Option<i64>, _>("run_started_at")?,
                row.try_get::<Option<i64>, _>("progress_at")?,
            ) {
                (Some(rows), Some(bytes), Some(started_at), Some(at)) => {
                    Some(JobProgress { rows, bytes, started_at, at })
                }
                _ => None,
            },
        })
    }
}

/// Which jobs [`Catalog::import_jobs`] returns.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// At most this many, the most recent.
    pub limit: Option<i64>,
}

/// The columns [`ImportJob::from_row`] reads, as a literal so that queries stay `&'static str`.
macro_rules! job_columns {
    () => {
        "id, tenant, path, sha256, bytes, profile, status, rows_loaded, attempts, next_try_at, error, received_at, \
         updated_at, finished_at, progress_rows, progress_bytes, run_started_at, progress_at"
    };
}

/// The condition of a job without a verdict yet, exactly as the partial
/// index `import_jobs_open` states it (both engines use such an index only
/// for a query that repeats its condition).
macro_rules! open_job {
    () => {
        "status NOT IN ('imported', 'rejected', 'duplicate')"
    };
}

/// Records a job, every field bound by [`bind_job`].
const INSERT_JOB: &str = "INSERT INTO import_jobs (id, tenant, path, sha256, bytes, profile, status, rows_loaded, \
     attempts, next_try_at, error, received_at, updated_at, finished_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// A statement on `import_jobs` with every field of `job` bound, in
/// column order: `$1` id … `$14` finished_at.
fn bind_job<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    job: &'q ImportJob,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(&job.id)
        .bind(&job.tenant)
        .bind(&job.path)
        .bind(job.sha256.as_deref())
        .bind(job.bytes)
        .bind(job.profile.as_deref())
        .bind(job.status.as_str())
        .bind(job.rows_loaded)
        .bind(job.attempts)
        .bind(job.next_try_at)
        .bind(job.error.as_deref())
        .bind(job.received_at)
        .bind(job.updated_at)
        .bind(job.finished_at)
}

impl Catalog {
    /// Records a new job.
    pub async fn insert_import_job(&self, job: &ImportJob) -> Result<(), CatalogError> {
        bind_job(sqlx::query(INSERT_JOB), job)
            .execute(&self.pool)
            .await
            .map_err(|e| CatalogError::on_conflict(e, || format!("import job {}", job.id)))?;
        Ok(())
    }

    /// Records a new job for the inbox file whose identity is `claim`,
    /// unless a job claimed it already (another node sharing the data
    /// directory saw the same file): then [`CatalogError::AlreadyExists`].
    pub async fn insert_claimed_import_job(&self, job: &ImportJob, claim: &str) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        bind_job(sqlx::query(INSERT_JOB), job)
            .execute(&mut *tx)
            .await
            .map_err(|e| CatalogError::on_conflict(e, || format!("import job {}", job.id)))?;
        sqlx::query("INSERT INTO intake_claims (claim, job_id) VALUES ($1, $2)")
            .bind(claim)
            .bind(&job.id)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                CatalogError::on_conflict(e, || format!("claim of /inbox/{} of tenant {}", job.path, job.tenant))
            })?;
        tx.commit().await?;
        Ok(())
    }

    /// Records `jobs` in one transaction: all or none.
    pub async fn insert_import_jobs(&self, jobs: &[ImportJob]) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        for job in jobs {
            bind_job(sqlx::query(INSERT_JOB), job)
                .execute(&mut *tx)
                .await
                .map_err(|e| CatalogError::on_conflict(e, || format!("import job {}", job.id)))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores every changing field of `job` (matched by id; tenant, path
    /// and arrival never change).
    pub async fn update_import_job(&self, job: &ImportJob) -> Result<(), CatalogError> {
        let done = bind_job(
            sqlx::query(
                "UPDATE import_jobs SET sha256 = $4, bytes = $5, profile = $6, status = $7, rows_loaded = $8, \
                 attempts = $9, next_try_at = $10, error = $11, updated_at = $13, finished_at = $14 \
                 WHERE id = $1 AND tenant = $2 AND path = $3 AND received_at = $12",
            ),
            job,
        )
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("import job {}", job.id)));
        }
        Ok(())
    }

    /// Stores `job` like [`Catalog::update_import_job`], only if the job is
    /// still in status `from` (what its runner recorded last); returns
    /// whether it was. `false`: someone else moved it meanwhile (`import
    /// cancel`), and the runner must leave it alone.
    pub async fn advance_import_job(&self, job: &ImportJob, from: JobStatus) -> Result<bool, CatalogError> {
        let done = bind_job(
            sqlx::query(
                "UPDATE import_jobs SET sha256 = $4, bytes = $5, profile = $6, status = $7, rows_loaded = $8, \
                 attempts = $9, next_try_at = $10, error = $11, updated_at = $13, finished_at = $14 \
                 WHERE id = $1 AND tenant = $2 AND path = $3 AND received_at = $12 AND status = $15",
            ),
            job,
        )
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records how far the running job `id` got; returns whether it was
    /// still running (`loading`). Progress is kept apart from the job's
    /// other fields so that writing it never undoes a transition.
    pub async fn record_import_progress(&self, id: &str, progress: &JobProgress) -> Result<bool, CatalogError> {
        let done = sqlx::query(
            "UPDATE import_jobs SET progress_rows = $2, progress_bytes = $3, run_started_at = $4, progress_at = $5 \
             WHERE id = $1 AND status = 'loading'",
        )
        .bind(id)
        .bind(progress.rows)
        .bind(progress.bytes)
        .bind(progress.started_at)
        .bind(progress.at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The job with this id.
    pub async fn import_job(&self, id: &str) -> Result<Option<ImportJob>, CatalogError> {
        let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM import_jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(ImportJob::from_row).transpose()
    }

    /// Jobs matching `filter`, oldest first (the most recent `limit` ones).
    pub async fn import_jobs(&self, filter: &JobFilter) -> Result<Vec<ImportJob>, CatalogError> {
        let rows = sqlx::query(concat!(
            "SELECT * FROM (SELECT ",
            job_columns!(),
            " FROM import_jobs WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR status = $2) \
             ORDER BY received_at DESC, id DESC LIMIT $3) AS recent ORDER BY received_at, id"
        ))
        .bind(filter.tenant.as_deref())
        .bind(filter.status.map(JobStatus::as_str))
        .bind(filter.limit.unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ImportJob::from_row).collect()
    }

    /// The oldest job without a verdict of each tenant, oldest first: what
    /// the runner may start next (a tenant's jobs run one at a time, in
    /// arrival order). One row per tenant, however many jobs wait behind.
    pub async fn next_import_jobs(&self) -> Result<Vec<ImportJob>, CatalogError> {
        // The tenants with open jobs, one index step each (a loose index
        // scan), then each one's oldest: a few index reads however many jobs
        // were ever recorded or wait behind. Ordering by received_at too
        // makes both engines walk the index of open jobs.
        let rows = sqlx::query(concat!(
            "WITH RECURSIVE waiting(tenant) AS (",
            "SELECT (SELECT tenant FROM import_jobs WHERE ",
            open_job!(),
            " ORDER BY tenant, received_at LIMIT 1) UNION ALL ",
            "SELECT (SELECT j.tenant FROM import_jobs j WHERE j.tenant > waiting.tenant AND j.",
            open_job!(),
            " ORDER BY j.tenant, j.received_at LIMIT 1) FROM waiting WHERE waiting.tenant IS NOT NULL) ",
            "SELECT ",
            job_columns!(),
            " FROM import_jobs WHERE id IN (SELECT (SELECT o.id FROM import_jobs o",
            " WHERE o.tenant = waiting.tenant AND o.",
            open_job!(),
            " ORDER BY o.received_at, o.id LIMIT 1) FROM waiting WHERE waiting.tenant IS NOT NULL)",
            " ORDER BY received_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ImportJob::from_row).collect()
    }

    /// The ids of `tenant`'s jobs still under way or waiting.
    pub async fn open_import_job_ids(
        &self,
        tenant: &TenantName,
    ) -> Result<std::collections::HashSet<String>, CatalogError> {
        let rows = sqlx::query(concat!("SELECT id FROM import_jobs WHERE tenant = $1 AND ", open_job!()))
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
    }

    /// Whether a job without a verdict yet holds a file of `job`'s tenant
    /// and name that arrived after `job`'s.
    pub async fn newer_open_import_job(&self, job: &ImportJob) -> Result<bool, CatalogError> {
        let newer: i64 = sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM import_jobs WHERE tenant = $1 AND path = $2 AND ",
            open_job!(),
            " AND (received_at > $3 OR (received_at = $3 AND id > $4)) LIMIT 1) newer"
        ))
        .bind(&job.tenant)
        .bind(&job.path)
        .bind(job.received_at)
        .bind(&job.id)
        .fetch_one(&self.pool)
        .await?;
        Ok(newer > 0)
    }

    /// The id of an imported job of `tenant` with the same profile and
    /// content, if any (the exactly-once check).
    pub async fn imported_same_content(
        &self,
        tenant: &str,
        profile: &str,
        sha256: &str,
    ) -> Result<Option<String>, CatalogError> {
        let row = sqlx::query(
            "SELECT id FROM import_jobs WHERE tenant = $1 AND profile = $2 AND sha256 = $3 \
             AND status = 'imported' ORDER BY received_at LIMIT 1",
        )
        .bind(tenant)
        .bind(profile)
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("id")?),
            None => None,
        })
    }

    /// How many jobs there are in each status (statuses without jobs left out).
    pub async fn import_job_counts(&self) -> Result<Vec<(String, i64)>, CatalogError> {
        let rows = sqlx::query("SELECT status, count(*) AS n FROM import_jobs GROUP BY status ORDER BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok((row.try_get("status")?, row.try_get("n")?))).collect()
    }

    /// Replaces the tenant's profile file (already checked by the caller),
    /// and bumps the catalog revision in the same transaction: servers keep
    /// a session's profiles until the revision moves.
    pub async fn set_import_profiles(&self, tenant: &TenantName, source: &str) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO import_profiles (tenant, source, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant) DO UPDATE SET source = excluded.source, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(source)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's profile file, if one was set.
    pub async fn import_profiles(&self, tenant: &TenantName) -> Result<Option<String>, CatalogError> {
        let row = sqlx::query("SELECT source FROM import_profiles WHERE tenant = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("source")?),
            None => None,
        })
    }
}

impl Catalog {
    /// Sends a job back to the runner, atomically, if it is still in status
    /// `from`; returns whether it was. A `waiting-retry` job is tried now (its
    /// attempts kept); a `rejected` job starts again as `received`, its
    /// verdict cleared and its attempts kept (they count every run). Any other `from` changes nothing.
    pub async fn retry_import_job(&self, id: &str, from: JobStatus) -> Result<bool, CatalogError> {
        let sql = match from {
            JobStatus::WaitingRetry => {
                "UPDATE import_jobs SET next_try_at = $2, updated_at = $2 WHERE id = $1 AND status = 'waiting-retry'"
            }
            JobStatus::Rejected => {
                "UPDATE import_jobs SET status = 'received', error = NULL, next_try_at = NULL, \
                 finished_at = NULL, rows_loaded = NULL, updated_at = $2 WHERE id = $1 AND status = 'rejected'"
            }
            _ => return Ok(false),
        };
        let done = sqlx::query(sql).bind(id).bind(now_ms()).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a job as `rejected` for `reason`, atomically, if it is still in
    /// status `from`; returns whether it was. Only jobs that wait or have not
    /// started writing rows (`received`, `validating`, `waiting-retry`) may
    /// be ended so: any other `from` changes nothing.
    pub async fn cancel_import_job(&self, id: &str, from: JobStatus, reason: &str) -> Result<bool, CatalogError> {
        if !matches!(from, JobStatus::Received | JobStatus::Validating | JobStatus::WaitingRetry) {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE import_jobs SET status = 'rejected', error = $3, next_try_at = NULL, finished_at = $4, \
             rows_loaded = 0, updated_at = $4 WHERE id = $1 AND status = $2",
        )
        .bind(id)
        .bind(from.as_str())
        .bind(reason)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
