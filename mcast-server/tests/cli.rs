//! The `mcast-server` binary's command line, run as a user would.

// Test helpers outside #[test] functions fail the test on purpose.
#![allow(clippy::panic)]

use std::path::Path;

#[path = "../../tests/support/cli.rs"]
mod support;

use support::{Program, example, line_of, text};

const PROGRAM: Program = Program {
    bin: env!("CARGO_BIN_EXE_mcast-server"),
    name: "mcast-server",
    default_config: "/etc/mcast-ntp/server.toml",
};

fn run(args: &[&str]) -> std::process::Output {
    PROGRAM.run(args)
}

#[test]
fn version_prints_name_and_version() {
    PROGRAM.version_prints_name_and_version();
}

#[test]
fn version_lists_commit_target_macs_and_features() {
    PROGRAM.version_lists_the_build(&["logging: journald", "metrics: ", "time sources: "]);
}

#[test]
fn help_lists_subcommands_and_examples() {
    PROGRAM.help_lists_subcommands_and_examples();
}

#[test]
fn check_config_accepts_the_lab_example_and_summarizes_it() {
    // needs real keys
    let path = example("lab-loopback-server.toml");
    let out = run(&["check-config", "-c", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    for needle in [
        "destination[0]",
        "224.0.1.1",
        "on lo",
        "ttl 1",
        "poll 3",
        "key 3 (AES128CMAC)",
        "stratum 8",
    ] {
        assert!(
            stdout.contains(needle),
            "summary should mention {needle:?}:\n{stdout}"
        );
    }
}

#[test]
fn check_config_on_a_broken_file_names_file_line_field_and_exits_2() {
    let original = std::fs::read_to_string(example("lab-loopback-server.toml")).unwrap();
    let broken = original.replace("ttl = 1", "ttl = 300");
    assert_ne!(broken, original, "the lab example should set ttl = 1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(&path, &broken).unwrap();

    let out = run(&["check-config", "-c", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    let expected = format!(
        "{}:{}: destination[0].ttl = 300: must be 1..255",
        path.display(),
        line_of(&broken, "ttl = 300")
    );
    assert!(
        stderr.contains(&expected),
        "stderr should contain {expected:?}:\n{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
}

#[test]
fn check_config_reports_a_key_missing_from_the_keys_file() {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/vectors/ntp.keys");
    let original = std::fs::read_to_string(example("lab-loopback-server.toml")).unwrap();
    let broken = original
        .replace(
            "\"../../tests/data/vectors/ntp.keys\"",
            &format!("{:?}", keys.display().to_string()),
        )
        .replace("key = 3", "key = 99");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(&path, &broken).unwrap();
    let out = run(&["check-config", "-c", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    let expected = format!(
        "{}:{}: destination[0] 224.0.1.1 on lo: key 99 is not in {}",
        path.display(),
        line_of(&broken, "key = 99"),
        keys.display()
    );
    assert!(
        stderr.contains(&expected),
        "stderr should contain {expected:?}:\n{stderr}"
    );
}

#[test]
fn a_missing_config_file_exits_2_and_names_it() {
    PROGRAM.a_missing_config_file_exits_2_and_names_it();
}

#[test]
fn the_default_config_path_is_under_etc() {
    PROGRAM.the_default_config_path_is_under_etc();
}

#[test]
fn usage_errors_exit_2() {
    PROGRAM.usage_errors_exit_2();
}
