//! Import profiles: which files of a tenant's `/inbox` are imported, into which
//! table, and what their columns must hold.
//!
//! A tenant's profile file is TOML with one `[[import]]` table per profile
//! (every key is documented in the README, section "Import profiles": a
//! client interface). [`Profiles::parse`] checks everything it
//! can before any file arrives — unknown keys, globs, identifiers, types, date
//! formats, keys — and refuses with one line naming the profile and the key.
//! A [`Profile`] cannot be built any other way, so code holding one may rely on
//! its invariants (identifiers are safe, the key names declared columns, a
//! date format reads back what it writes).

mod datefmt;
mod personal;
mod raw;

use std::collections::HashSet;
use std::fmt;

use globset::{GlobBuilder, GlobMatcher};
use passerelle_config::ByteSize;
use thiserror::Error;

pub use datefmt::DateFormat;
pub use personal::{MAX_WINDOW_DAYS, Personal};

/// `max_bytes` when a profile does not set it.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
/// Columns a profile may declare (PostgreSQL allows 1600 per table, SQLite 2000).
pub const MAX_COLUMNS: usize = 1000;
/// Columns the loader adds to every table; a profile cannot declare them.
pub const RESERVED_COLUMNS: [&str; 2] = ["_import_id", "_line"];

/// A profile file that was refused; the message is one line and names the
/// profile and the key.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{location}: {message}")]
pub struct ProfileError {
    location: String,
    message: String,
}

impl ProfileError {
    fn syntax(line: Option<usize>, message: &str) -> Self {
        let location = match line {
            Some(line) => format!("line {line}"),
            None => "profile file".to_owned(),
        };
        Self { location, message: format!("not valid TOML: {}", one_line(message)) }
    }

    fn at(profile: &str, key: impl fmt::Display, message: impl fmt::Display) -> Self {
        Self { location: format!("profile {profile:?}, key {key}"), message: one_line(&message.to_string()) }
    }

    fn in_file(key: impl fmt::Display, message: impl fmt::Display) -> Self {
        Self { location: format!("profile file, key {key}"), message: one_line(&message.to_string()) }
    }

    /// Where the problem is: `profile "employees", key columns[2].type`, or
    /// `line 4` for a TOML syntax error.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// What is wrong there.
    pub fn message(&self) -> &str {
        &self.message
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// All import profiles of one tenant, in file order.
#[derive(Clone, Debug)]
pub struct Profiles {
    profiles: Vec<Profile>,
}

impl Profiles {
    /// Reads and checks a profile file. A file without any `[[import]]` is
    /// valid: the tenant has no imports, and every file is rejected as
    /// matching no profile.
    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        let raw = raw::parse(text)?;
        let mut profiles: Vec<Profile> = Vec::with_capacity(raw.len());
        for (index, raw) in raw.into_iter().enumerate() {
            let profile = Profile::from_raw(raw, index)?;
            if profiles.iter().any(|p| p.name == profile.name) {
                return Err(ProfileError::at(
                    &profile.name,
                    format!("import[{index}].name"),
                    "another profile has this name",
                ));
            }
            if let Some(other) = profiles.iter().find(|p| p.table == profile.table && !same_table_columns(p, &profile))
            {
                return Err(ProfileError::at(
                    &profile.name,
                    "table",
                    format!(
                        "profile {:?} loads table {:?} with other columns; profiles sharing a table must declare the same columns, types and personal kinds",
                        other.name, profile.table
                    ),
                ));
            }
            profiles.push(profile);
        }
        Ok(Self { profiles })
    }

    /// The profile for a file at `inbox_relative_path` (such as
    /// `employees/2026-11.csv`, `/` separated, one leading `/` ignored): the
    /// **first** profile in file order whose `match` glob matches, so put
    /// specific globs before general ones. Temporary names
    /// ([`is_temporary_name`]) never match.
    pub fn matching(&self, inbox_relative_path: &str) -> Option<&Profile> {
        let path = inbox_relative_path.strip_prefix('/').unwrap_or(inbox_relative_path);
        if path.is_empty() || is_temporary_name(path) {
            return None;
        }
        self.profiles.iter().find(|p| p.matcher.is_match(path))
    }

    /// The profile called `name`.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// Every profile, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Profile> {
        self.profiles.iter()
    }

    /// How many profiles there are.
    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    /// Whether the tenant has no profile at all.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }
}

impl<'a> IntoIterator for &'a Profiles {
    type Item = &'a Profile;
    type IntoIter = std::slice::Iter<'a, Profile>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::str::FromStr for Profiles {
    type Err = ProfileError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

fn same_table_columns(a: &Profile, b: &Profile) -> bool {
    a.columns.len() == b.columns.len()
        && a.columns.iter().all(|col| {
            b.column(&col.name).is_some_and(|other| {
                other.column_type.kind() == col.column_type.kind() && other.personal == col.personal
            })
        })
}

/// Whether a file name is one that uploaders use while writing, and so is
/// never imported: any path component starting with `.` (dot-files, files in
/// dot-directories, rsync's `.name.XXXXXX`), and names ending in `.part`,
/// `.filepart`, `.partial` or `.tmp` (case-insensitive).
pub fn is_temporary_name(path: &str) -> bool {
    const SUFFIXES: [&str; 4] = [".part", ".filepart", ".partial", ".tmp"];
    let hidden = path.split('/').any(|component| component.starts_with('.'));
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    hidden || SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

/// One `[[import]]`: which files, which table, which columns.
#[derive(Clone, Debug)]
pub struct Profile {
    name: String,
    pattern: String,
    matcher: GlobMatcher,
    table: String,
    delimiter: DelimiterSetting,
    encoding: EncodingSetting,
    header: bool,
    mode: Mode,
    key: Vec<String>,
    max_bytes: u64,
    reject_at_close: bool,
    columns: Vec<Column>,
}

impl Profile {
    /// The profile's name, unique within the tenant.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `match` glob, relative to `/inbox`. `*` and `?` stay within one
    /// path component; `**` crosses them.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The table rows are loaded into; a checked identifier.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The field delimiter, or detection from the first line.
    pub fn delimiter(&self) -> DelimiterSetting {
        self.delimiter
    }

    /// The character encoding files must have, or detection.
    pub fn encoding(&self) -> EncodingSetting {
        self.encoding
    }

    /// Whether the first line names the columns (default); without it, fields
    /// are the declared columns in declared order.
    pub fn header(&self) -> bool {
        self.header
    }

    /// How rows meet the rows already in the table.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The key columns (upsert only; empty otherwise). Each names a declared
    /// column, and key columns are always required.
    pub fn key(&self) -> &[String] {
        &self.key
    }

    /// The largest file accepted, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Whether an upload of a file this profile matches is validated as it
    /// streams in, and refused at its close when invalid (default), rather
    /// than accepted and rejected by its import job.
    pub fn reject_at_close(&self) -> bool {
        self.reject_at_close
    }

    /// The declared columns, in declared order; values reach the loader in this order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The declared column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Checks the `index`-th `[[import]]` key by key; the first refusal is
    /// returned, naming the profile and the key.
    fn from_raw(raw: raw::RawProfile, index: usize) -> Result<Self, ProfileError> {
        let name = check_name(raw.name, index)?;
        let at = |key: &str, message: String| ProfileError::at(&name, key, message);
        let matcher = compile_glob(&raw.pattern).map_err(|m| at("match", m))?;
        check_table(&raw.table).map_err(|m| at("table", m))?;
        let delimiter = DelimiterSetting::parse(&raw.delimiter).map_err(|m| at("delimiter", m))?;
        let encoding = EncodingSetting::parse(&raw.encoding).map_err(|m| at("encoding", m))?;
        let mode = Mode::parse(&raw.mode).map_err(|m| at("mode", m))?;
        let max_bytes = parse_max_bytes(raw.max_bytes.as_ref()).map_err(|m| at("max_bytes", m))?;
        let mut columns = parse_columns(raw.columns).map_err(|(key, m)| at(&key, m))?;
        let key = raw.key.unwrap_or_default();
        check_key(&key, mode, &mut columns).map_err(|(key, m)| at(&key, m))?;
        personal::check_required(&columns, &key).map_err(|(i, m)| at(&format!("columns[{i}].personal"), m))?;
        Ok(Self {
            name,
            pattern: raw.pattern,
            matcher,
            table: raw.table,
            delimiter,
            encoding,
            header: raw.header,
            mode,
            key,
            max_bytes,
            reject_at_close: raw.reject_at_close,
            columns,
        })
    }
}

/// `name`: named in errors by its position, as it is not a valid name.
fn check_name(name: String, index: usize) -> Result<String, ProfileError> {
    if name.is_empty()
        || name.len() > 64
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(ProfileError::at(
            &name,
            format!("import[{index}].name"),
            "expected 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(name)
}

/// `table`: an identifier outside the names the databases and passerelle keep for themselves.
fn check_table(table: &str) -> Result<(), String> {
    check_identifier(table)?;
    if table.starts_with("sqlite_") || table.starts_with("pg_") {
        return Err(format!("{table:?}: names starting with sqlite_ or pg_ belong to the database"));
    }
    if table.starts_with("_passerelle") {
        return Err(format!("{table:?}: names starting with _passerelle belong to passerelle"));
    }
    Ok(())
}

/// `max_bytes`: a size string, a positive number of bytes, or [`DEFAULT_MAX_BYTES`] when absent.
fn parse_max_bytes(value: Option<&toml::Value>) -> Result<u64, String> {
    match value {
        None => Ok(DEFAULT_MAX_BYTES),
        Some(toml::Value::String(text)) => match ByteSize::parse(text)?.bytes() {
            0 => Err("must be at least 1 byte".to_owned()),
            bytes => Ok(bytes),
        },
        Some(toml::Value::Integer(n)) if *n > 0 => Ok(u64::try_from(*n).unwrap_or(u64::MAX)),
        Some(other) => Err(format!("expected a size such as \"1GiB\" or a positive number of bytes, got {other}")),
    }
}

/// `[[import.columns]]`: 1 to [`MAX_COLUMNS`] columns with distinct names.
/// An error names its key within the profile.
fn parse_columns(raw: Vec<raw::RawColumn>) -> Result<Vec<Column>, (String, String)> {
    if raw.is_empty() {
        return Err(("columns".to_owned(), "declare at least one [[import.columns]]".to_owned()));
    }
    if raw.len() > MAX_COLUMNS {
        return Err(("columns".to_owned(), format!("at most {MAX_COLUMNS} columns")));
    }
    let mut columns: Vec<Column> = Vec::with_capacity(raw.len());
    for (i, column) in raw.into_iter().enumerate() {
        let column = Column::from_raw(column, i)?;
        if columns.iter().any(|c| c.name == column.name) {
            return Err((format!("columns[{i}].name"), format!("column {:?} is declared twice", column.name)));
        }
        columns.push(column);
    }
    Ok(columns)
}

/// `key`: required by upsert and refused otherwise; each entry names a
/// declared column once, and that column becomes required. An error names
/// its key within the profile.
fn check_key(key: &[String], mode: Mode, columns: &mut [Column]) -> Result<(), (String, String)> {
    match mode {
        Mode::Upsert if key.is_empty() => {
            return Err(("key".to_owned(), "mode = \"upsert\" needs key = [\"column\", ...]".to_owned()));
        }
        Mode::Append | Mode::Replace if !key.is_empty() => {
            return Err((
                "key".to_owned(),
                format!("key is only used with mode = \"upsert\" (this profile has mode = \"{mode}\")"),
            ));
        }
        _ => {}
    }
    let mut seen = HashSet::new();
    for (i, key_column) in key.iter().enumerate() {
        let Some(column) = columns.iter_mut().find(|c| &c.name == key_column) else {
            return Err((format!("key[{i}]"), format!("{key_column:?} is not a declared column")));
        };
        if !seen.insert(key_column) {
            return Err((format!("key[{i}]"), format!("{key_column:?} is listed twice")));
        }
        column.required = true;
    }
    Ok(())
}

fn compile_glob(pattern: &str) -> Result<GlobMatcher, String> {
    if pattern.is_empty() {
        return Err("the glob is empty".to_owned());
    }
    if pattern.starts_with('/') {
        return Err(format!("{pattern:?}: the glob is relative to /inbox and cannot start with '/'"));
    }
    if pattern.split('/').any(|c| c == ".." || c == ".") {
        return Err(format!("{pattern:?}: '.' and '..' components are not allowed"));
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|glob| glob.compile_matcher())
        .map_err(|e| format!("bad glob {pattern:?}: {}", e.kind()))
}

/// Checks a table or column name: `[a-z_][a-z0-9_]{0,62}`, so it fits every
/// backend unquoted and needs no escaping anywhere.
fn check_identifier(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if first_ok && rest_ok && name.len() <= 63 {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an identifier: lower-case letters, digits and '_', not starting with a digit, at most 63 characters"
        ))
    }
}

/// The `delimiter` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelimiterSetting {
    /// Detected from the first line among `;` `,` tab `|`.
    Auto,
    /// This byte, one of `;` `,` tab `|`.
    Fixed(u8),
}

/// The delimiters a profile may name or detection may find.
pub const DELIMITERS: [u8; 4] = [b';', b',', b'\t', b'|'];

impl DelimiterSetting {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(Self::Auto),
            ";" => Ok(Self::Fixed(b';')),
            "," => Ok(Self::Fixed(b',')),
            "\t" | "\\t" => Ok(Self::Fixed(b'\t')),
            "|" => Ok(Self::Fixed(b'|')),
            other => Err(format!("expected \";\", \",\", \"\\t\", \"|\" or \"auto\", got {other:?}")),
        }
    }
}

/// The `encoding` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodingSetting {
    /// UTF-8 (with or without BOM) if the file is valid UTF-8, else Windows-1252.
    Auto,
    /// UTF-8, with or without BOM; anything else is refused.
    Utf8,
    /// Windows-1252, converted to UTF-8.
    Windows1252,
}

impl EncodingSetting {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(Self::Auto),
            "utf-8" => Ok(Self::Utf8),
            "windows-1252" => Ok(Self::Windows1252),
            other => Err(format!("expected \"utf-8\", \"windows-1252\" or \"auto\", got {other:?}")),
        }
    }
}

/// The `mode` key: how a file's rows meet the rows already in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Rows are added.
    Append,
    /// Rows replace the rows with the same key; others are added.
    Upsert,
    /// The table's rows are replaced by the file's.
    Replace,
}

impl Mode {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "append" => Ok(Self::Append),
            "upsert" => Ok(Self::Upsert),
            "replace" => Ok(Self::Replace),
            other => Err(format!("expected \"append\", \"upsert\" or \"replace\", got {other:?}")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Append => "append",
            Self::Upsert => "upsert",
            Self::Replace => "replace",
        })
    }
}

/// One declared column.
#[derive(Clone, Debug)]
pub struct Column {
    name: String,
    column_type: ColumnType,
    required: bool,
    personal: Option<Personal>,
}

impl Column {
    /// The column's name; a checked identifier.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What its values must be.
    pub fn column_type(&self) -> &ColumnType {
        &self.column_type
    }

    /// Whether an empty value is refused (always true for key columns).
    pub fn required(&self) -> bool {
        self.required
    }

    /// The kind of personal data it holds (`personal`), replaced in anonymized copies.
    pub fn personal(&self) -> Option<Personal> {
        self.personal
    }

    fn from_raw(raw: raw::RawColumn, index: usize) -> Result<Self, (String, String)> {
        let key = |name: &str| format!("columns[{index}].{name}");
        check_identifier(&raw.name).map_err(|m| (key("name"), m))?;
        if RESERVED_COLUMNS.contains(&raw.name.as_str()) {
            return Err((key("name"), format!("{:?} is reserved: the loader adds it to every table", raw.name)));
        }
        let kind = raw.column_type.as_str();
        let only_for = |option: &str, types: &str| {
            (key(option), format!("{option} applies to {types} columns only, not to type = {kind:?}"))
        };
        if raw.format.is_some() && !matches!(kind, "date" | "timestamp") {
            return Err(only_for("format", "date and timestamp"));
        }
        if raw.decimal_separator.is_some() && kind != "decimal" {
            return Err(only_for("decimal_separator", "decimal"));
        }
        let column_type = match kind {
            "text" => ColumnType::Text,
            "integer" => ColumnType::Integer,
            "boolean" => ColumnType::Boolean,
            "email" => ColumnType::Email,
            "decimal" => {
                let separator = match raw.decimal_separator.as_deref() {
                    None | Some(".") => b'.',
                    Some(",") => b',',
                    Some(other) => {
                        return Err((key("decimal_separator"), format!("expected \".\" or \",\", got {other:?}")));
                    }
                };
                ColumnType::Decimal { separator }
            }
            "date" => ColumnType::Date(
                DateFormat::date(raw.format.as_deref().unwrap_or("%Y-%m-%d")).map_err(|m| (key("format"), m))?,
            ),
            "timestamp" => ColumnType::Timestamp(
                DateFormat::timestamp(raw.format.as_deref().unwrap_or("%Y-%m-%dT%H:%M:%S"))
                    .map_err(|m| (key("format"), m))?,
            ),
            other => {
                return Err((
                    key("type"),
                    format!(
                        "unknown type {other:?}; expected one of text, integer, decimal, boolean, date, timestamp, email"
                    ),
                ));
            }
        };
        let personal = Personal::parse(raw.personal.as_deref(), raw.window_days, &column_type)
            .map_err(|(option, m)| (key(option), m))?;
        Ok(Self { name: raw.name, column_type, required: raw.required, personal })
    }
}

/// A column's type, with its options.
#[derive(Clone, Debug)]
pub enum ColumnType {
    /// Any text.
    Text,
    /// A 64-bit signed integer.
    Integer,
    /// An exact decimal number.
    Decimal {
        /// `b'.'` (default) or `b','`.
        separator: u8,
    },
    /// `true`/`false`, `1`/`0`, `yes`/`no`, in any case.
    Boolean,
    /// A calendar date in this format (default `%Y-%m-%d`).
    Date(DateFormat),
    /// A date and time of day, without zone, in this format (default `%Y-%m-%dT%H:%M:%S`).
    Timestamp(DateFormat),
    /// An e-mail address (checked for shape only).
    Email,
}

impl ColumnType {
    /// The type's name as written in profiles: `text`, `integer`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Integer => "integer",
            Self::Decimal { .. } => "decimal",
            Self::Boolean => "boolean",
            Self::Date(_) => "date",
            Self::Timestamp(_) => "timestamp",
            Self::Email => "email",
        }
    }
}

#[cfg(test)]
mod tests;
