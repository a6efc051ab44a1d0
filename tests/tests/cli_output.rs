//! Issue #18 item 3: the CLI's outputs agree with each other. One time
//! format in every JSON output, `profile show --json`, `profile list` with
//! its header and sizes as written, an audit actor named without `$USER`,
//! and no user created who could never log in.

use passerelle_tests::{Outcome, Passerelle, json_time_ms, ssh_keygen};
use serde_json::Value;

const PASSWORD: &str = "Correct-Horse-Battery-42";

/// The JSON fields that hold a time.
const TIME_FIELDS: [&str; 10] = [
    "at",
    "created_at",
    "added_at",
    "banned_at",
    "expires_at",
    "locked_until",
    "received_at",
    "updated_at",
    "finished_at",
    "next_try_at",
];

/// Checks every time field under `value` (each must be RFC 3339 UTC with
/// milliseconds, or null) and returns how many held a time.
fn check_times(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.iter().map(check_times).sum(),
        Value::Object(fields) => fields
            .iter()
            .map(|(name, field)| {
                if TIME_FIELDS.contains(&name.as_str()) {
                    if field.is_null() {
                        return 0;
                    }
                    let ms = json_time_ms(field);
                    // Sanity: after 2020 and before 2100.
                    assert!((1_577_836_800_000..4_102_444_800_000).contains(&ms), "{name}: {field}");
                    1
                } else {
                    check_times(field)
                }
            })
            .sum(),
        _ => 0,
    }
}

fn json(p: &Passerelle, args: &[&str]) -> Value {
    let out = p.run(args);
    assert!(out.success(), "passerelle {args:?} failed ({}): {}", out.code, out.stderr);
    out.json()
}

fn acme_with_alice() -> Passerelle {
    let p = Passerelle::new();
    p.tenant_with_user("acme", "alice", PASSWORD);
    p
}

#[test]
fn every_json_output_writes_times_the_same_way() {
    let p = acme_with_alice();
    let public = ssh_keygen(&p.scratch(), "id_alice", "ed25519", None, "alice@test");
    p.ok(&["key", "add", "alice", &public.display().to_string()]);
    p.ok(&["ban", "add", "192.0.2.7"]);
    for (args, at_least) in [
        (&["tenant", "list", "--json"][..], 1),
        (&["tenant", "show", "acme", "--json"], 1),
        (&["user", "list", "--json"], 1),
        (&["key", "list", "alice", "--json"], 1),
        (&["ban", "list", "--json"], 2),
        (&["audit", "--json"], 4),
        (&["import", "list", "--json"], 0),
    ] {
        let value = json(&p, args);
        let times = check_times(&value);
        assert!(times >= at_least, "{args:?}: {times} times in {value}");
    }
    // The tables print the same form as the JSON.
    let tenants = json(&p, &["tenant", "list", "--json"]);
    let created = tenants[0]["created_at"].as_str().expect("created_at");
    assert!(p.ok(&["tenant", "list"]).contains(created), "tenant list shows {created}");
}

#[test]
fn profile_list_prints_its_header_and_sizes_as_written() {
    let p = acme_with_alice();
    let empty = p.ok(&["profile", "list", "acme"]);
    assert!(empty.starts_with("PROFILE") && empty.lines().count() == 1, "header only: {empty:?}");
    assert_eq!(json(&p, &["profile", "list", "acme", "--json"]), Value::Array(Vec::new()));

    let profile = "[[import]]\nname = \"employees\"\nmatch = \"employees/*.csv\"\ntable = \"employees\"\n\
                   max_bytes = \"1GiB\"\n\n  [[import.columns]]\n  name = \"id\"\n  type = \"integer\"\n";
    p.set_profile("acme", profile);
    let listed = p.ok(&["profile", "list", "acme"]);
    let row = listed.lines().find(|l| l.starts_with("employees")).expect("employees row");
    assert!(row.trim_end().ends_with("1GiB") && !row.contains("1073741824"), "{listed}");
    let listed = json(&p, &["profile", "list", "acme", "--json"]);
    assert_eq!(listed[0]["max_bytes"], 1_073_741_824_u64, "{listed}");
    assert_eq!(listed[0]["max_bytes_written"], "1GiB", "{listed}");

    let shown = json(&p, &["profile", "show", "acme", "--json"]);
    assert_eq!(shown["tenant"], "acme");
    assert_eq!(shown["text"], profile, "the stored text, verbatim");
    assert_eq!(shown["profiles"], listed, "the profiles as profile list --json prints them");
}

#[test]
fn profile_show_json_of_a_tenant_without_profiles() {
    let p = acme_with_alice();
    let shown = json(&p, &["profile", "show", "acme", "--json"]);
    assert_eq!(shown["text"], Value::Null, "{shown}");
    assert_eq!(shown["profiles"], Value::Array(Vec::new()), "{shown}");
}

/// Runs `args` with `$USER` and `$LOGNAME` unset (a root shell, systemd,
/// cron), and `SUDO_USER` as given.
fn run_without_user(p: &Passerelle, args: &[&str], sudo_user: Option<&str>) -> Outcome {
    let mut command = p.command(args);
    command.env_remove("USER").env_remove("LOGNAME").env_remove("SUDO_USER");
    if let Some(sudo_user) = sudo_user {
        command.env("SUDO_USER", sudo_user);
    }
    let out = Outcome::from(command.output().expect("run passerelle"));
    assert!(out.success(), "{args:?}: {out:?}");
    out
}

#[test]
fn the_audit_actor_is_the_real_user_even_without_user_set() {
    let p = Passerelle::new();
    let me = passerelle_tests::run_command(std::process::Command::new("id").arg("-un"), b"").stdout.trim().to_owned();
    assert!(!me.is_empty());
    run_without_user(&p, &["tenant", "add", "acme"], None);
    run_without_user(&p, &["tenant", "add", "beta"], Some("bob"));
    let events = json(&p, &["audit", "--json"]);
    let actor = |tenant: &str| {
        events
            .as_array()
            .expect("array")
            .iter()
            .find(|e| e["action"] == "tenant_add" && e["tenant"] == tenant)
            .map(|e| e["actor"].as_str().expect("actor").to_owned())
            .unwrap_or_else(|| panic!("tenant_add {tenant} in {events}"))
    };
    assert_eq!(actor("acme"), format!("admin:{me}"));
    assert_eq!(actor("beta"), format!("admin:bob via sudo as {me}"));
}

#[test]
fn a_user_without_credentials_needs_no_credentials() {
    let p = Passerelle::new();
    p.ok(&["tenant", "add", "acme"]);
    let out = p.run(&["user", "add", "acme", "bob"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--no-credentials") && out.stderr.contains("could never log in"), "{}", out.stderr);
    assert_eq!(json(&p, &["user", "list", "--json"]), Value::Array(Vec::new()), "nothing created");

    p.ok(&["user", "add", "acme", "bob", "--no-credentials"]);
    let users = json(&p, &["user", "list", "--json"]);
    assert_eq!(users[0]["login"], "bob");
    assert_eq!(users[0]["has_password"], false);
    assert_eq!(users[0]["key_count"], 0);
    // --no-credentials with a credential is a contradiction.
    let out = p.run_with_stdin(&["user", "add", "acme", "carol", "--no-credentials", "--password-stdin"], "x\n");
    assert_eq!(out.code, 2, "{out:?}");
}

/// `passerelle audit | head -n 1`: a reader that goes away early ends the
/// command quietly with status 0 (no "Broken pipe" panic), whatever verb
/// is writing: tables, JSON and verbatim text alike.
#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    let p = Passerelle::new();
    p.ok(&["init"]);
    p.ok(&["tenant", "add", "acme"]);
    for verbs in [&["audit"][..], &["audit", "--json"], &["config", "show"]] {
        let mut child = p
            .command(verbs)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn passerelle");
        // Closing the read end before the command writes: its first write
        // meets a broken pipe.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait for passerelle");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{verbs:?}: {:?}, stderr: {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{verbs:?}: {stderr}");
    }
}
