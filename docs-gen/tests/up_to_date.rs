//! The committed man pages and completions are what the clap definitions
//! generate now, and every command's `--help` shows an example.

// Test helpers outside #[test] functions fail the test on purpose.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files_in(root: &Path, dir: &str) -> BTreeSet<PathBuf> {
    std::fs::read_dir(root.join(dir))
        .unwrap_or_else(|e| panic!("{}: {e}", root.join(dir).display()))
        .map(|e| Path::new(dir).join(e.unwrap().file_name()))
        .collect()
}

#[test]
fn committed_man_pages_and_completions_are_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    let generated: BTreeSet<PathBuf> = docs_gen::generate(tmp.path())
        .expect("generate")
        .into_iter()
        .collect();
    let root = workspace();
    let committed: BTreeSet<PathBuf> = files_in(&root, "man")
        .into_iter()
        .chain(files_in(&root, "completions"))
        .collect();
    let fix = "run `cargo run -p docs-gen` and commit man/ and completions/";
    assert_eq!(
        generated, committed,
        "the set of generated files differs from the committed one: {fix}"
    );
    for f in &generated {
        let want = std::fs::read_to_string(tmp.path().join(f)).unwrap();
        let have = std::fs::read_to_string(root.join(f)).unwrap();
        assert!(want == have, "{} is stale: {fix}", f.display());
    }
    // Nothing machine-specific in them.
    for f in &generated {
        let text = std::fs::read_to_string(tmp.path().join(f)).unwrap();
        assert!(
            !text.contains(&tmp.path().display().to_string()),
            "{} holds a path",
            f.display()
        );
    }
}

#[test]
fn generation_is_reproducible() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let files = docs_gen::generate(a.path()).unwrap();
    assert_eq!(files, docs_gen::generate(b.path()).unwrap());
    for f in &files {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{}",
            f.display()
        );
    }
}

/// Every command and subcommand, with its full name.
fn all_commands(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, clap::Command)>) {
    let name = if prefix.is_empty() {
        cmd.get_name().to_owned()
    } else {
        format!("{prefix} {}", cmd.get_name())
    };
    out.push((name.clone(), cmd.clone()));
    for sub in cmd.get_subcommands() {
        all_commands(sub, &name, out);
    }
}

#[test]
fn every_commands_help_gives_an_example() {
    let mut all = Vec::new();
    for (cmd, _) in docs_gen::commands() {
        let mut cmd = cmd.disable_help_subcommand(true);
        cmd.build();
        all_commands(&cmd, "", &mut all);
    }
    assert!(all.len() >= 15, "{} commands", all.len());
    for (name, mut cmd) in all {
        let help = cmd.render_long_help().to_string();
        let bin = name.split(' ').next().unwrap_or_default();
        let example = help
            .split_once("Example")
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("`{name} --help` shows no example:\n{help}"));
        assert!(
            example.contains(&format!("  {name}")) || example.contains(&format!("  {bin} ")),
            "`{name} --help`: the example should be a command line of {bin}:\n{help}"
        );
    }
}
