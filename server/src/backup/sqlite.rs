//! SQLite copies: `VACUUM INTO` makes a consistent copy while the server goes on writing (it reads in
//! one transaction; in WAL mode writers are not held up), and the copy's tables are counted and
//! checked with `PRAGMA integrity_check`. Blocking calls: run them on a blocking thread.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::BackupError;

/// How long a copy waits for a lock another connection holds.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn sqlite_error(path: &Path, e: &rusqlite::Error) -> BackupError {
    BackupError::Database(format!("{}: {e}", path.display()))
}

/// Copies the database at `source` into the new file `target`, consistently.
pub(super) fn vacuum_into(source: &Path, target: &Path) -> Result<(), BackupError> {
    let connection =
        Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| sqlite_error(source, &e))?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(|e| sqlite_error(source, &e))?;
    let target_text =
        target.to_str().ok_or_else(|| BackupError::Invalid(format!("{}: not UTF-8", target.display())))?;
    connection.execute("VACUUM INTO ?1", [target_text]).map_err(|e| sqlite_error(source, &e))?;
    Ok(())
}

/// Rows of each table of the database at `path` (SQLite's own tables left out).
pub(super) fn row_counts(path: &Path) -> Result<BTreeMap<String, u64>, BackupError> {
    let connection =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| sqlite_error(path, &e))?;
    let tables: Vec<String> = {
        let mut statement = connection
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .map_err(|e| sqlite_error(path, &e))?;
        statement.query_map([], |row| row.get(0)).and_then(Iterator::collect).map_err(|e| sqlite_error(path, &e))?
    };
    let mut rows = BTreeMap::new();
    for table in tables {
        // A table name read from the schema, quoted as an identifier.
        let sql = format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\""));
        let count: i64 = connection.query_row(&sql, [], |row| row.get(0)).map_err(|e| sqlite_error(path, &e))?;
        rows.insert(table, u64::try_from(count).unwrap_or(0));
    }
    Ok(rows)
}

/// `PRAGMA integrity_check` of the database at `path`: `None` when it says ok, else what it says.
pub(super) fn integrity_problem(path: &Path) -> Result<Option<String>, BackupError> {
    let connection =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| sqlite_error(path, &e))?;
    let mut statement = connection.prepare("PRAGMA integrity_check").map_err(|e| sqlite_error(path, &e))?;
    let lines: Vec<String> =
        statement.query_map([], |row| row.get(0)).and_then(Iterator::collect).map_err(|e| sqlite_error(path, &e))?;
    Ok((lines != ["ok"]).then(|| lines.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_has_the_rows_and_passes_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("a.db");
        let db = Connection::open(&source).unwrap();
        db.execute_batch("CREATE TABLE \"t x\" (v); INSERT INTO \"t x\" VALUES (1), (2);").unwrap();
        let copy = dir.path().join("b.db");
        vacuum_into(&source, &copy).unwrap();
        assert_eq!(row_counts(&copy).unwrap().get("t x"), Some(&2));
        assert_eq!(integrity_problem(&copy).unwrap(), None);
    }
}
