//! The `mcast-client` binary's command line, run as a user would.

// Test helpers outside #[test] functions fail the test on purpose.
#![allow(clippy::panic)]

use std::path::Path;

#[path = "../../tests/support/cli.rs"]
mod support;

use support::{Program, example, line_of, text};

const PROGRAM: Program = Program {
    bin: env!("CARGO_BIN_EXE_mcast-client"),
    name: "mcast-client",
    default_config: "/etc/mcast-ntp/client.toml",
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
    PROGRAM.version_lists_the_build(&["logging: journald", "metrics: ", "diagnostics: "]);
}

#[test]
fn help_lists_subcommands_and_examples() {
    PROGRAM.help_lists_subcommands_and_examples();
}

#[test]
fn check_config_accepts_the_lab_example_and_summarizes_it() {
    // needs real keys
    let path = example("lab-loopback-client.toml");
    let out = run(&["check-config", "-c", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    for needle in [
        "listen[0]: group 224.0.1.1 on lo",
        "server[0]: 127.0.0.1 (lab-server), key 3 (AES128CMAC)",
        "calibration: ",
        "6 requests",
        "clock: monitor",
        "step threshold 128ms",
        "group silent after 3 intervals of the slowest poll",
    ] {
        assert!(
            stdout.contains(needle),
            "summary should mention {needle:?}:\n{stdout}"
        );
    }
}

#[test]
fn check_config_warns_of_an_interface_this_host_lacks_and_still_exits_0() {
    let original = std::fs::read_to_string(example("lab-loopback-client.toml")).unwrap();
    let keys = example("lab-loopback-client.toml")
        .parent()
        .unwrap()
        .join("../../tests/data/vectors/ntp.keys");
    let moved = original
        .replace("interface = \"lo\"", "interface = \"nosuch0\"")
        .replace(
            "keys = \"../../tests/data/vectors/ntp.keys\"",
            &format!("keys = {:?}", keys.display().to_string()),
        );
    assert_ne!(moved, original, "the lab example listens on lo");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.toml");
    std::fs::write(&path, &moved).unwrap();
    let out = run(&["check-config", "-c", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: ")
            && stderr.contains("listen[0].interface = \"nosuch0\": no interface of that name"),
        "{stderr}"
    );
    let quiet = run(&[
        "check-config",
        "-c",
        example("lab-loopback-client.toml").to_str().unwrap(),
    ]);
    assert!(
        !text(&quiet.stderr).contains("warning: "),
        "no warning for lo: {}",
        text(&quiet.stderr)
    );
}

#[test]
fn check_config_on_a_broken_file_names_file_line_field_and_exits_2() {
    let original = std::fs::read_to_string(example("lab-loopback-client.toml")).unwrap();
    let broken = original.replace("start-delay-max-s = 1", "start-delay-max-s = -1");
    assert_ne!(
        broken, original,
        "the lab example should set start-delay-max-s = 1"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.toml");
    std::fs::write(&path, &broken).unwrap();

    let out = run(&["check-config", "-c", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    let expected = format!(
        "{}:{}: calibration.start-delay-max-s = -1: must be a non-negative",
        path.display(),
        line_of(&broken, "start-delay-max-s = -1")
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
    let original = std::fs::read_to_string(example("lab-loopback-client.toml")).unwrap();
    let broken = original
        .replace(
            "\"../../tests/data/vectors/ntp.keys\"",
            &format!("{:?}", keys.display().to_string()),
        )
        .replace("key = 3", "key = 99");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.toml");
    std::fs::write(&path, &broken).unwrap();
    let out = run(&["check-config", "-c", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    let expected = format!(
        "{}:{}: server 127.0.0.1: key 99 is not in {}",
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

#[test]
fn listen_help_shows_an_example_and_the_exit_statuses() {
    let out = run(&["listen", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "Example:",
        "mcast-client listen --group 224.0.1.1 --interface bond0 --keys",
        "--timeout-s",
        "--count",
        "--json",
        "3 when nothing was heard",
    ] {
        assert!(help.contains(needle), "{needle:?} not in\n{help}");
    }
    assert!(text(&run(&["--help"]).stdout).contains("listen"));
}

/// `listen --group G --interface I` plus `extra`, as one argument line.
fn listen_args<'a>(group: &'a str, interface: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["listen", "--group", group, "--interface", interface];
    v.extend_from_slice(extra);
    v
}

#[test]
fn listen_refuses_a_bad_keys_file_naming_file_and_line_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("bad.keys");
    std::fs::write(&keys, "1 MD5 LabMd5Key-0001\n2 RIPEMD160 secret\n").unwrap();
    let out = run(&listen_args(
        "224.0.1.1",
        "lo",
        &["--keys", keys.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{}:2:", keys.display())), "{err}");
    assert!(out.stdout.is_empty(), "nothing heard or printed: {out:?}");
}

#[test]
fn listen_usage_errors_exit_2() {
    for args in [
        vec!["listen", "--interface", "lo"],
        vec!["listen", "--group", "224.0.1.1"],
        listen_args("ff02::zz", "lo", &[]),
        listen_args("2001:db8::1", "lo", &[]),
        listen_args("224.0.1.1", "lo", &["--count", "0"]),
        listen_args("224.0.1.1", "lo", &["--timeout-s=-1"]),
        listen_args("224.0.1.1", "no-such-if0", &[]),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: says why");
    }
}

/// A copy of the lab client configuration whose control socket is
/// `sock` (nothing listens there).
#[allow(clippy::unwrap_used)] // a test helper: failing is its way to fail the test
fn config_with_socket(dir: &Path, sock: &Path) -> std::path::PathBuf {
    let original = std::fs::read_to_string(example("lab-loopback-client.toml")).unwrap();
    let keys = example("lab-loopback-client.toml")
        .parent()
        .unwrap()
        .join("../../tests/data/vectors/ntp.keys");
    let mut text = format!(
        "keys = {:?}\ncontrol-socket = {:?}\n",
        keys.to_str().unwrap(),
        sock.to_str().unwrap()
    );
    for l in original.lines() {
        if !l.starts_with("keys") && !l.starts_with("control-socket") {
            text.push_str(l);
            text.push('\n');
        }
    }
    let path = dir.join("client.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn status_and_check_read_the_socket_of_the_config_given_with_short_c() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("elsewhere.sock");
    let conf = config_with_socket(dir.path(), &sock);
    let conf = conf.to_str().unwrap();
    for long in ["-c", "--config"] {
        let out = run(&["status", long, conf]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("no answer from {}", sock.display())),
            "status {long} FILE uses that file's socket: {err}"
        );
        let out = run(&["check", long, conf, "-w", "0.01", "-C", "0.1"]);
        let said = text(&out.stdout);
        assert_eq!(out.status.code(), Some(3), "{said}");
        assert!(
            said.starts_with("MCAST-NTP UNKNOWN")
                && said.contains(&format!("no answer from {}", sock.display())),
            "check {long} FILE uses that file's socket: {said}"
        );
    }
    // The critical threshold is -C/--critical now; a number after -c is a
    // file name, and the plugin says it cannot read it.
    let out = run(&["check", "-c", "0.05"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stdout).contains("0.05"), "{}", text(&out.stdout));
    let out = run(&[
        "check",
        "--critical",
        "0.05",
        "--socket",
        sock.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "parses: {out:?}");
}

#[test]
fn check_help_documents_c_as_the_config_and_capital_c_as_critical() {
    let help = text(&run(&["check", "--help"]).stdout);
    for needle in [
        "-c, --config <FILE>",
        "-C, --critical <SEC>",
        "-w, --warning <SEC>",
        "-c/--config is the configuration file",
    ] {
        assert!(help.contains(needle), "{needle:?} in\n{help}");
    }
}

#[test]
fn status_help_has_a_legend_for_t_and_the_tally_codes() {
    let help = text(&run(&["status", "--help"]).stdout);
    for needle in [
        "-c, --config <FILE>",
        "*  system peer",
        "+  survivor",
        "x  falseticker",
        "-  excluded",
        "b  tracking",
        "u  calibrating",
        "-  listening",
        "!  untrusted",
        "reach   octal",
    ] {
        assert!(help.contains(needle), "{needle:?} in\n{help}");
    }
}

#[test]
fn check_config_of_a_public_key_only_client_needs_no_keys_file_and_names_the_key() {
    let public = mcast_keys::signed::ServerKey::from_seed(&[5; 32]);
    let line = public.public().to_line();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.toml");
    std::fs::write(
        &path,
        format!(
            "keys = \"no-such.keys\"\n[[listen]]\ninterface = \"lo\"\n\
             [[server]]\naddress = \"127.0.0.1\"\npublic-key = \"{line}\"\n"
        ),
    )
    .unwrap();
    let out = run(&["check-config", "-c", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let want = format!(
        "server[0]: 127.0.0.1, Ed25519 public key {}, no shared key",
        public.public().fingerprint()
    );
    assert!(stdout.contains(&want), "{want:?} in:\n{stdout}");
    assert!(!stdout.contains("UNAUTHENTICATED"), "{stdout}");
}
