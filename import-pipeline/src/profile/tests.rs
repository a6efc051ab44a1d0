use super::*;

/// The example of the README's "Import profiles" section, without its comments.
const EMPLOYEES: &str = r#"
[[import]]
name = "employees"
match = "employees/*.csv"
table = "employees"
delimiter = ";"
encoding = "auto"
header = true
mode = "upsert"
key = ["employee_id"]
max_bytes = "1GiB"
  [[import.columns]]
  name = "employee_id"
  type = "integer"
  required = true
  [[import.columns]]
  name = "email"
  type = "email"
  [[import.columns]]
  name = "hired_on"
  type = "date"
  format = "%d/%m/%Y"
  [[import.columns]]
  name = "salary"
  type = "decimal"
  decimal_separator = ","
"#;

/// A minimal profile whose `[[import]]` keys are `extra` plus the essentials.
fn with(extra: &str, columns: &str) -> String {
    format!("[[import]]\nname = \"p\"\nmatch = \"*.csv\"\ntable = \"t\"\n{extra}\n{columns}")
}

const ONE_COLUMN: &str = "[[import.columns]]\nname = \"a\"\ntype = \"text\"\n";

fn refused(text: &str) -> ProfileError {
    match Profiles::parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(error) => {
            assert!(!error.to_string().contains('\n'), "not one line: {error}");
            error
        }
    }
}

#[test]
fn the_interface_example_is_read_with_every_key() {
    let profiles = Profiles::parse(EMPLOYEES).unwrap();
    assert_eq!(profiles.len(), 1);
    let p = profiles.get("employees").unwrap();
    assert_eq!(p.pattern(), "employees/*.csv");
    assert_eq!(p.table(), "employees");
    assert_eq!(p.delimiter(), DelimiterSetting::Fixed(b';'));
    assert_eq!(p.encoding(), EncodingSetting::Auto);
    assert!(p.header());
    assert_eq!(p.mode(), Mode::Upsert);
    assert_eq!(p.key(), ["employee_id"]);
    assert_eq!(p.max_bytes(), 1 << 30);
    let names: Vec<&str> = p.columns().iter().map(Column::name).collect();
    assert_eq!(names, ["employee_id", "email", "hired_on", "salary"]);
    assert!(p.column("employee_id").unwrap().required());
    assert!(!p.column("email").unwrap().required());
    match p.column("hired_on").unwrap().column_type() {
        ColumnType::Date(format) => {
            assert_eq!(format.pattern(), "%d/%m/%Y");
            assert_eq!(format.example(), "31/12/2026");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(p.column("salary").unwrap().column_type(), ColumnType::Decimal { separator: b',' }));
}

#[test]
fn defaults_apply_to_keys_left_out() {
    let text = with(
        "",
        "[[import.columns]]\nname = \"d\"\ntype = \"date\"\n[[import.columns]]\nname = \"t\"\ntype = \"timestamp\"\n[[import.columns]]\nname = \"n\"\ntype = \"decimal\"\n",
    );
    let profiles = Profiles::parse(&text).unwrap();
    let p = profiles.get("p").unwrap();
    assert_eq!(p.delimiter(), DelimiterSetting::Auto);
    assert_eq!(p.encoding(), EncodingSetting::Auto);
    assert!(p.header());
    assert_eq!(p.mode(), Mode::Append);
    assert!(p.key().is_empty());
    assert_eq!(p.max_bytes(), DEFAULT_MAX_BYTES);
    assert!(p.reject_at_close(), "invalid uploads are refused at close unless the profile says otherwise");
    let ColumnType::Date(date) = p.column("d").unwrap().column_type() else { panic!() };
    assert_eq!(date.example(), "2026-12-31");
    let ColumnType::Timestamp(ts) = p.column("t").unwrap().column_type() else { panic!() };
    assert_eq!(ts.example(), "2026-12-31T23:59:59");
    assert!(matches!(p.column("n").unwrap().column_type(), ColumnType::Decimal { separator: b'.' }));
}

#[test]
fn every_delimiter_encoding_mode_and_type_is_accepted() {
    for (written, expected) in [("\";\"", b';'), ("\",\"", b','), ("\"\\t\"", b'\t'), ("'\\t'", b'\t'), ("\"|\"", b'|')]
    {
        let profiles = Profiles::parse(&with(&format!("delimiter = {written}"), ONE_COLUMN)).unwrap();
        assert_eq!(profiles.get("p").unwrap().delimiter(), DelimiterSetting::Fixed(expected));
    }
    for (written, expected) in [
        ("utf-8", EncodingSetting::Utf8),
        ("windows-1252", EncodingSetting::Windows1252),
        ("auto", EncodingSetting::Auto),
    ] {
        let profiles = Profiles::parse(&with(&format!("encoding = \"{written}\""), ONE_COLUMN)).unwrap();
        assert_eq!(profiles.get("p").unwrap().encoding(), expected);
    }
    for mode in ["append", "replace"] {
        let profiles = Profiles::parse(&with(&format!("mode = \"{mode}\""), ONE_COLUMN)).unwrap();
        assert_eq!(profiles.get("p").unwrap().mode().to_string(), mode);
    }
    for kind in ["text", "integer", "decimal", "boolean", "date", "timestamp", "email"] {
        let columns = format!("[[import.columns]]\nname = \"c\"\ntype = \"{kind}\"\n");
        let profiles = Profiles::parse(&with("", &columns)).unwrap();
        assert_eq!(profiles.get("p").unwrap().columns()[0].column_type().kind(), kind);
    }
}

#[test]
fn max_bytes_takes_sizes_and_plain_numbers() {
    for (written, bytes) in [
        ("\"500MB\"", 500_000_000),
        ("\"10KiB\"", 10 << 10),
        ("\"2 GiB\"", 2 << 30),
        ("\"4096\"", 4096),
        ("4096", 4096),
    ] {
        let profiles = Profiles::parse(&with(&format!("max_bytes = {written}"), ONE_COLUMN)).unwrap();
        assert_eq!(profiles.get("p").unwrap().max_bytes(), bytes, "{written}");
    }
    for bad in ["\"1.5GB\"", "\"lots\"", "0", "-1", "\"0\"", "true"] {
        let error = refused(&with(&format!("max_bytes = {bad}"), ONE_COLUMN));
        assert_eq!(error.location(), "profile \"p\", key max_bytes", "{bad}");
    }
}

#[test]
fn unknown_keys_are_refused_naming_profile_and_key() {
    let error = refused(&with("colour = \"blue\"", ONE_COLUMN));
    assert!(error.to_string().starts_with("profile \"p\", key colour: unknown field `colour`"), "{error}");

    let error = refused(&with("", "[[import.columns]]\nname = \"a\"\ntype = \"text\"\nwidth = 3\n"));
    assert!(error.to_string().starts_with("profile \"p\", key columns[0].width: unknown field"), "{error}");

    let error = refused(&format!("imports = 1\n{}", with("", ONE_COLUMN)));
    assert!(error.to_string().starts_with("profile file, key imports: unknown field"), "{error}");
}

#[test]
fn missing_and_mistyped_keys_are_refused() {
    let error = refused("[[import]]\nname = \"p\"\ntable = \"t\"\n");
    assert_eq!(error.location(), "profile \"p\", key (the table itself)");
    assert!(error.message().contains("missing field `match`"), "{error}");

    let error = refused(&with("header = \"yes\"", ONE_COLUMN));
    assert_eq!(error.location(), "profile \"p\", key header");
    assert_eq!(error.message(), "invalid type: string \"yes\", expected a boolean");

    // A profile without a name is named by its position.
    let error = refused("[[import]]\nmatch = \"*.csv\"\n");
    assert!(error.location().starts_with("profile \"import[0]\""), "{error}");
}

#[test]
fn toml_syntax_errors_give_the_line() {
    let error = refused("[[import]]\nname = \"p\"\nmatch = \n");
    assert!(error.to_string().starts_with("line 3: not valid TOML"), "{error}");
}

#[test]
fn bad_globs_are_refused() {
    for bad in ["employees/[.csv", "{a,b", "", "/inbox/*.csv", "../*.csv", "a/./b.csv"] {
        let text = format!("[[import]]\nname = \"p\"\nmatch = {bad:?}\ntable = \"t\"\n{ONE_COLUMN}");
        let error = refused(&text);
        assert_eq!(error.location(), "profile \"p\", key match", "{bad}: {error}");
    }
}

#[test]
fn unknown_types_and_misplaced_options_are_refused() {
    let error = refused(&with("", "[[import.columns]]\nname = \"a\"\ntype = \"datetime\"\n"));
    assert_eq!(error.location(), "profile \"p\", key columns[0].type");
    assert!(error.message().starts_with("unknown type \"datetime\""), "{error}");

    let error = refused(&with("", "[[import.columns]]\nname = \"a\"\ntype = \"integer\"\nformat = \"%Y\"\n"));
    assert_eq!(error.location(), "profile \"p\", key columns[0].format");

    let error = refused(&with("", "[[import.columns]]\nname = \"a\"\ntype = \"text\"\ndecimal_separator = \",\"\n"));
    assert_eq!(error.location(), "profile \"p\", key columns[0].decimal_separator");

    let error = refused(&with("", "[[import.columns]]\nname = \"a\"\ntype = \"decimal\"\ndecimal_separator = \"'\"\n"));
    assert_eq!(error.location(), "profile \"p\", key columns[0].decimal_separator");
}

#[test]
fn date_formats_are_checked_when_the_profile_is_read() {
    for bad in ["%d/%m", "%Q", "%Y-%m-%d %H:%M"] {
        let columns = format!("[[import.columns]]\nname = \"a\"\ntype = \"date\"\nformat = {bad:?}\n");
        let error = refused(&with("", &columns));
        assert_eq!(error.location(), "profile \"p\", key columns[0].format", "{bad}");
    }
    let columns = "[[import.columns]]\nname = \"a\"\ntype = \"timestamp\"\nformat = \"%d/%m/%Y\"\n";
    assert_eq!(refused(&with("", columns)).location(), "profile \"p\", key columns[0].format");
}

#[test]
fn identifiers_are_checked() {
    for bad in ["Employees", "1table", "my-table", "", "t\u{e9}", &"a".repeat(64)] {
        let text = format!("[[import]]\nname = \"p\"\nmatch = \"*.csv\"\ntable = {bad:?}\n{ONE_COLUMN}");
        assert_eq!(refused(&text).location(), "profile \"p\", key table", "{bad}");
    }
    for database_owned in ["sqlite_master", "pg_class"] {
        let text = format!("[[import]]\nname = \"p\"\nmatch = \"*.csv\"\ntable = {database_owned:?}\n{ONE_COLUMN}");
        assert_eq!(refused(&text).location(), "profile \"p\", key table");
    }
    let longest = "a".repeat(63);
    let text = format!(
        "[[import]]\nname = \"p\"\nmatch = \"*.csv\"\ntable = \"{longest}\"\n[[import.columns]]\nname = \"_{}\"\ntype = \"text\"\n",
        "b".repeat(62)
    );
    Profiles::parse(&text).unwrap();

    let error = refused(&with("", "[[import.columns]]\nname = \"Email\"\ntype = \"text\"\n"));
    assert_eq!(error.location(), "profile \"p\", key columns[0].name");
}

#[test]
fn reserved_and_duplicate_columns_are_refused() {
    for reserved in RESERVED_COLUMNS {
        let columns = format!("[[import.columns]]\nname = \"{reserved}\"\ntype = \"text\"\n");
        let error = refused(&with("", &columns));
        assert_eq!(error.location(), "profile \"p\", key columns[0].name");
        assert!(error.message().contains("reserved"), "{error}");
    }
    let error = refused(&with("", &format!("{ONE_COLUMN}{ONE_COLUMN}")));
    assert_eq!(error.location(), "profile \"p\", key columns[1].name");
    assert!(error.message().contains("declared twice"), "{error}");

    let error = refused(&with("", ""));
    assert_eq!(error.location(), "profile \"p\", key columns");
}

#[test]
fn duplicate_profile_names_are_refused() {
    let text = format!("{}\n{}", with("", ONE_COLUMN), with("", ONE_COLUMN));
    let error = refused(&text);
    assert_eq!(error.location(), "profile \"p\", key import[1].name");
}

#[test]
fn profiles_sharing_a_table_must_agree_on_its_columns() {
    let same =
        format!("{}\n[[import]]\nname = \"q\"\nmatch = \"q/*.csv\"\ntable = \"t\"\n{ONE_COLUMN}", with("", ONE_COLUMN));
    Profiles::parse(&same).unwrap();
    let other = format!(
        "{}\n[[import]]\nname = \"q\"\nmatch = \"q/*.csv\"\ntable = \"t\"\n[[import.columns]]\nname = \"a\"\ntype = \"integer\"\n",
        with("", ONE_COLUMN)
    );
    assert_eq!(refused(&other).location(), "profile \"q\", key table");
}

#[test]
fn keys_are_checked_against_mode_and_columns() {
    let error = refused(&with("mode = \"upsert\"", ONE_COLUMN));
    assert_eq!(error.location(), "profile \"p\", key key");

    let error = refused(&with("mode = \"upsert\"\nkey = [\"b\"]", ONE_COLUMN));
    assert_eq!(error.location(), "profile \"p\", key key[0]");
    assert!(error.message().contains("\"b\" is not a declared column"), "{error}");

    let error = refused(&with("mode = \"upsert\"\nkey = [\"a\", \"a\"]", ONE_COLUMN));
    assert_eq!(error.location(), "profile \"p\", key key[1]");

    let error = refused(&with("mode = \"append\"\nkey = [\"a\"]", ONE_COLUMN));
    assert_eq!(error.location(), "profile \"p\", key key");

    // Key columns are required even when not declared so.
    let profiles = Profiles::parse(&with("mode = \"upsert\"\nkey = [\"a\"]", ONE_COLUMN)).unwrap();
    assert!(profiles.get("p").unwrap().columns()[0].required());
}

#[test]
fn bad_values_for_enumerated_keys_are_refused() {
    for (key, bad) in
        [("delimiter", "\":\""), ("encoding", "\"latin1\""), ("mode", "\"merge\""), ("name", "\"has space\"")]
    {
        let text = if key == "name" {
            format!("[[import]]\nname = {bad}\nmatch = \"*.csv\"\ntable = \"t\"\n{ONE_COLUMN}")
        } else {
            with(&format!("{key} = {bad}"), ONE_COLUMN)
        };
        let error = refused(&text);
        assert!(
            error.location().ends_with(&format!("key {}", if key == "name" { "import[0].name" } else { key })),
            "{error}"
        );
    }
}

#[test]
fn an_empty_file_has_no_profiles() {
    let profiles = Profiles::parse("").unwrap();
    assert!(profiles.is_empty());
    assert!(profiles.matching("a.csv").is_none());
}

#[test]
fn the_first_matching_profile_wins() {
    let text = r#"
[[import]]
name = "special"
match = "employees/special-*.csv"
table = "special"
  [[import.columns]]
  name = "a"
  type = "text"
[[import]]
name = "employees"
match = "employees/*.csv"
table = "employees"
  [[import.columns]]
  name = "a"
  type = "text"
[[import]]
name = "anything"
match = "**/*.csv"
table = "everything"
  [[import.columns]]
  name = "a"
  type = "text"
"#;
    let profiles = Profiles::parse(text).unwrap();
    let name = |path: &str| profiles.matching(path).map(Profile::name);
    assert_eq!(name("employees/special-1.csv"), Some("special"));
    assert_eq!(name("employees/2026-11.csv"), Some("employees"));
    assert_eq!(name("/employees/2026-11.csv"), Some("employees"));
    // `*` stays within one directory; `**` crosses them.
    assert_eq!(name("employees/archive/2026-11.csv"), Some("anything"));
    assert_eq!(name("top.csv"), Some("anything"));
    assert_eq!(name("deep/er/x.csv"), Some("anything"));
    assert_eq!(name("employees/2026-11.txt"), None);
    assert_eq!(name("Employees/2026-11.CSV"), None, "globs are case-sensitive");
    assert_eq!(name(""), None);
    // Temporary names are never matched, even by a glob that would.
    assert_eq!(name("employees/.2026-11.csv"), None);
    assert_eq!(name(".hidden/x.csv"), None);
}

#[test]
fn temporary_names() {
    for temporary in [
        ".env",
        "a/.b.csv",
        ".cache/x.csv",
        "x.csv.part",
        "x.csv.filepart",
        "x.csv.partial",
        "x.csv.tmp",
        "X.CSV.PART",
        "dir/x.TMP",
        ".x.csv.ABC123",
    ] {
        assert!(is_temporary_name(temporary), "{temporary}");
    }
    for taken in ["x.csv", "a/b.csv", "x.part.csv", "parts/x.csv", "x.csv~", "tmp/x.csv"] {
        assert!(!is_temporary_name(taken), "{taken}");
    }
}

#[test]
fn profiles_parse_through_from_str() {
    let profiles: Profiles = EMPLOYEES.parse().unwrap();
    assert_eq!(profiles.iter().count(), 1);
    assert_eq!((&profiles).into_iter().next().unwrap().name(), "employees");
}

#[test]
fn max_bytes_reads_sizes_as_the_configuration_does() {
    for (written, bytes) in [("\"500MB\"", 500_000_000), ("\"10 kib\"", 10 << 10), ("4096", 4096)] {
        let profiles = Profiles::parse(&with(&format!("max_bytes = {written}"), ONE_COLUMN)).unwrap();
        assert_eq!(profiles.get("p").unwrap().max_bytes(), bytes, "{written}");
    }
    for (written, message) in [
        ("\"0\"", "must be at least 1 byte"),
        ("\"1.5GiB\"", "expected a size such as \"10 GiB\", \"500 MiB\" or a number of bytes (got \"1.5GiB\")"),
        ("\"99999999999TiB\"", "size \"99999999999TiB\" is too large"),
    ] {
        let error = refused(&with(&format!("max_bytes = {written}"), ONE_COLUMN));
        assert_eq!(error.location(), "profile \"p\", key max_bytes");
        assert_eq!(error.message(), message);
    }
}

#[test]
fn reject_at_close_is_a_boolean() {
    let off = Profiles::parse(&with("reject_at_close = false", ONE_COLUMN)).unwrap();
    assert!(!off.get("p").unwrap().reject_at_close());
    let err = Profiles::parse(&with("reject_at_close = \"no\"", ONE_COLUMN)).unwrap_err();
    assert!(err.to_string().contains("reject_at_close"), "{err}");
}

#[test]
fn personal_kinds_are_read_and_checked_against_types_and_keys() {
    let columns = "columns = [\n  { name = \"id\", type = \"integer\", personal = \"id\" },\n  \
                   { name = \"who\", type = \"text\", personal = \"name\" },\n  \
                   { name = \"born\", type = \"date\", personal = \"date\", window_days = 30 },\n  \
                   { name = \"note\", type = \"text\", personal = \"drop\" },\n  { name = \"n\", type = \"integer\" },\n]";
    let profiles = Profiles::parse(&with("mode = \"upsert\"\nkey = [\"id\"]", columns)).unwrap();
    let personal: Vec<Option<Personal>> =
        profiles.iter().next().unwrap().columns().iter().map(Column::personal).collect();
    assert_eq!(
        personal,
        [
            Some(Personal::Id),
            Some(Personal::Name),
            Some(Personal::Date { window_days: Some(30) }),
            Some(Personal::Drop),
            None
        ]
    );

    let column = |kind: &str, extra: &str| with("", &format!("[[import.columns]]\nname = \"a\"\n{kind}\n{extra}\n"));
    let error = refused(&column("type = \"text\"", "personal = \"ssn\""));
    assert_eq!(error.location(), "profile \"p\", key columns[0].personal");
    assert!(error.message().starts_with("unknown kind \"ssn\""), "{error}");
    let error = refused(&column("type = \"integer\"", "personal = \"email\""));
    assert_eq!(error.location(), "profile \"p\", key columns[0].personal", "{error}");
    let error = refused(&column("type = \"date\"", "personal = \"id\""));
    assert_eq!(error.location(), "profile \"p\", key columns[0].personal", "{error}");
    let error = refused(&column("type = \"text\"", "personal = \"name\"\nwindow_days = 3"));
    assert_eq!(error.location(), "profile \"p\", key columns[0].window_days", "{error}");
    let error = refused(&column("type = \"date\"", "personal = \"date\"\nwindow_days = 0"));
    assert_eq!(error.location(), "profile \"p\", key columns[0].window_days", "{error}");
    let error = refused(&column("type = \"text\"", "personal = \"drop\"\nrequired = true"));
    assert_eq!(error.location(), "profile \"p\", key columns[0].personal", "{error}");
    let error = refused(&with(
        "mode = \"upsert\"\nkey = [\"a\"]",
        "[[import.columns]]\nname = \"a\"\ntype = \"text\"\npersonal = \"name\"\n",
    ));
    assert!(error.message().contains("may only be personal = \"id\" or \"email\""), "{error}");
}
