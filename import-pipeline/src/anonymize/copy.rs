//! One copy: which tables, in which order, and the rows' way from the
//! source through the replacements into the target.

use std::io;
use std::path::{Path, PathBuf};

use passerelle_catalog::TenantDatabase;
use thiserror::Error;

use super::key::CopyKey;
use super::replace::{Cell, Replacer};
use super::source::Source;
use super::target::{Target, Writer};
use crate::profile::{Personal, Profile, Profiles};

/// Where a copy goes. (No `Debug`: a tenant database's URL carries its password.)
#[derive(Clone, Copy)]
pub enum CopyTarget<'a> {
    /// A tenant's database (a test zone's: the caller checks), reached with its own account.
    Tenant(&'a TenantDatabase),
    /// A new SQLite file, created 0600; it must not exist.
    File(&'a Path),
}

/// Why a copy failed. Nothing was committed to the target; a new file is removed.
/// No message carries a value of the source.
#[derive(Debug, Error)]
pub enum CopyError {
    /// A database refused or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The target file could not be created.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The operating system's random generator failed: no key, no copy.
    #[error("no random key could be made for the copy")]
    Random,
    /// A personal column holds a value its kind cannot replace (a `date`
    /// column holding something else than a date).
    #[error("table {table}, column {column}: a value is not a {kind} as the import pipeline stores it")]
    NotReplaceable {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Its `personal` kind.
        kind: &'static str,
    },
}

/// Told how a copy goes, for a progress display.
pub trait CopyObserver {
    /// Table `table`, of `rows` rows, starts.
    fn table_started(&mut self, table: &str, rows: u64);
    /// `rows` more rows of the current table were copied.
    fn rows_copied(&mut self, rows: u64);
}

/// What a copy did with one table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TableCopied {
    /// The table.
    pub table: String,
    /// Rows copied.
    pub rows: u64,
    /// Its personal columns, replaced.
    pub personal_columns: Vec<String>,
}

/// The tables of `database` (passerelle's own left out): with a profile's
/// tables, which a copy takes and which it leaves.
pub async fn source_tables(database: &TenantDatabase) -> Result<Vec<String>, CopyError> {
    let mut source = Source::open(database).await?;
    let tables = source.tables().await;
    source.close().await;
    Ok(tables?)
}

/// Copies, from `source`, every table one of `profiles` loads that exists
/// there (the first profile naming a table describes it), into `target`,
/// replacing the values of personal columns. One transaction: all the
/// tables or none. Tables of the source no profile names are not copied.
pub async fn copy_anonymized(
    source: &TenantDatabase,
    target: CopyTarget<'_>,
    profiles: &Profiles,
    observer: &mut dyn CopyObserver,
) -> Result<Vec<TableCopied>, CopyError> {
    let mut replacer = Replacer::new(CopyKey::generate().map_err(|_| CopyError::Random)?);
    let created = match target {
        CopyTarget::File(path) => Some(create_file(path)?),
        CopyTarget::Tenant(_) => None,
    };
    let copied = copy_all(source, target, profiles, &mut replacer, observer).await;
    if copied.is_err()
        && let Some(path) = created
    {
        let _ = std::fs::remove_file(&path);
    }
    copied
}

async fn copy_all(
    source: &TenantDatabase,
    target: CopyTarget<'_>,
    profiles: &Profiles,
    replacer: &mut Replacer,
    observer: &mut dyn CopyObserver,
) -> Result<Vec<TableCopied>, CopyError> {
    let mut source = Source::open(source).await?;
    let existing = source.tables().await?;
    let mut target = match target {
        CopyTarget::Tenant(database) => Target::open(database).await?,
        CopyTarget::File(path) => Target::open_file(path).await?,
    };
    let mut copied: Vec<TableCopied> = Vec::new();
    for profile in profiles {
        if !existing.iter().any(|t| t == profile.table()) || copied.iter().any(|c| c.table == profile.table()) {
            continue;
        }
        let rows = source.count(profile.table()).await?;
        observer.table_started(profile.table(), rows);
        target.recreate(profile).await?;
        let mut sink = Rows::new(profile, &mut *replacer, target.writer(profile).await?, observer);
        source.pump(profile, &mut sink).await?;
        let rows = sink.finish().await?;
        let personal_columns =
            profile.columns().iter().filter(|c| c.personal().is_some()).map(|c| c.name().to_owned()).collect();
        copied.push(TableCopied { table: profile.table().to_owned(), rows, personal_columns });
    }
    target.commit().await?;
    source.close().await;
    Ok(copied)
}

/// Rows counted for the observer at a time.
const OBSERVED_ROWS: u64 = 10_000;

/// The rows of one table on their way: personal values replaced, then written.
pub(super) struct Rows<'c, 'o> {
    table: &'c str,
    columns: Vec<(&'c str, Option<Personal>)>,
    replacer: &'c mut Replacer,
    writer: Writer<'c>,
    observer: &'o mut dyn CopyObserver,
    rows: u64,
}

impl<'c, 'o> Rows<'c, 'o> {
    fn new(
        profile: &'c Profile,
        replacer: &'c mut Replacer,
        writer: Writer<'c>,
        observer: &'o mut dyn CopyObserver,
    ) -> Self {
        let columns = profile.columns().iter().map(|c| (c.name(), c.personal())).collect();
        Self { table: profile.table(), columns, replacer, writer, observer, rows: 0 }
    }

    /// Replaces the personal values of `row` (declared columns, then
    /// `_import_id` and `_line`, kept) and writes it.
    pub(super) async fn push(&mut self, mut row: Vec<Cell>) -> Result<(), CopyError> {
        for (cell, (column, personal)) in row.iter_mut().zip(&self.columns) {
            if let Some(personal) = personal {
                let value = std::mem::replace(cell, Cell::Null);
                *cell = self.replacer.replace(*personal, value).map_err(|_| CopyError::NotReplaceable {
                    table: self.table.to_owned(),
                    column: (*column).to_owned(),
                    kind: personal.kind(),
                })?;
            }
        }
        self.writer.push(row).await?;
        self.rows += 1;
        if self.rows.is_multiple_of(OBSERVED_ROWS) {
            self.observer.rows_copied(OBSERVED_ROWS);
        }
        Ok(())
    }

    async fn finish(self) -> Result<u64, CopyError> {
        self.writer.finish().await?;
        self.observer.rows_copied(self.rows % OBSERVED_ROWS);
        Ok(self.rows)
    }
}

/// Creates the target file, empty, 0600; an existing file is refused.
fn create_file(path: &Path) -> Result<PathBuf, CopyError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| CopyError::File { path: path.to_owned(), source })?;
    Ok(path.to_owned())
}
