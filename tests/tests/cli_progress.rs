//! Issue #18: long administration work shows progress on a terminal and
//! stays quiet when piped. `tenant remove --purge` of a tenant with many
//! files is the long verb here; `tenant show` measures under a spinner.

use std::path::Path;
use std::process::Command;

use passerelle_tests::{Passerelle, binary, bounded, run_command};

/// Files put in each of the tenant's inbox and archive.
const FILES: usize = 3_000;

/// A tenant with [`FILES`] files in its inbox (in 30 folders) and as many archived originals.
fn big_tenant(p: &Passerelle, name: &str) {
    p.ok(&["tenant", "add", name]);
    let layout = p.layout();
    for i in 0..FILES {
        let folder = layout.inbox(name).join(format!("batch-{}", i % 30));
        std::fs::create_dir_all(&folder).expect("inbox folder");
        std::fs::write(folder.join(format!("{i}.csv")), b"id\n1\n").expect("inbox file");
    }
    let archive = layout.archive(name);
    std::fs::create_dir_all(&archive).expect("archive");
    for i in 0..FILES {
        std::fs::write(archive.join(format!("job-{i}")), b"sealed").expect("archived file");
    }
}

fn gone(path: &Path) -> bool {
    !path.exists()
}

#[test]
fn tenant_remove_piped_prints_its_result_only_and_removes_everything() {
    let p = Passerelle::new();
    big_tenant(&p, "bulk");
    let out = p.run(&["tenant", "remove", "bulk", "--purge", "--yes"]);
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(out.stdout, "tenant bulk removed\n");
    assert_eq!(out.stderr, "", "nothing but results when piped");
    assert!(gone(&p.layout().tenant_root("bulk")) && gone(&p.layout().archive("bulk")));

    p.ok(&["tenant", "add", "small"]);
    let shown = p.run(&["tenant", "show", "small"]);
    assert!(shown.success() && shown.stderr.is_empty(), "{shown:?}");
}

#[test]
fn tenant_remove_on_a_terminal_shows_a_progress_bar_then_its_result() {
    let p = Passerelle::new();
    big_tenant(&p, "bulk");
    // `script` gives the command a terminal and records what it drew.
    let line = format!("{} --data-dir {} tenant remove bulk --purge --yes", binary().display(), p.data_dir().display());
    let mut command: Command = bounded("script", 120);
    command.args(["-q", "-e", "-c", &line, "/dev/null"]);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PASSERELLE_") {
            command.env_remove(name);
        }
    }
    let out = run_command(&mut command, b"");
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("removing tenant bulk's files ["), "no bar drawn: {:?}", out.stdout);
    assert!(out.stdout.contains("tenant bulk removed"), "{:?}", out.stdout);
    assert!(gone(&p.layout().tenant_root("bulk")) && gone(&p.layout().archive("bulk")));
}
