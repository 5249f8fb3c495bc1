//! What the command-line tests of `mcast-server` and `mcast-client` share
//! (`mcast-*/tests/cli.rs` include this file with `#[path]`): running the
//! binary, the example configurations, and the checks that hold for both
//! programs alike, with the program's own name and default config path.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    reason = "test helpers: a step that cannot be done fails the calling test"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One of the two daemons' binaries.
pub struct Program {
    /// Path of the binary (`env!("CARGO_BIN_EXE_...")`).
    pub bin: &'static str,
    /// `mcast-server` or `mcast-client`.
    pub name: &'static str,
    /// Its default configuration file.
    pub default_config: &'static str,
}

/// An example configuration shipped in `config/examples`.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/examples")
        .join(name)
}

/// Bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// 1-based number of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"))
}

impl Program {
    /// Runs the binary with `args` (no RUST_LOG from the caller).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(self.bin)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin))
    }

    /// `--version` prints the name and the package version.
    pub fn version_prints_name_and_version(&self) {
        let out = self.run(&["-V"]);
        assert!(out.status.success(), "-V failed: {out:?}");
        assert_eq!(
            text(&out.stdout).trim(),
            format!("{} {}", self.name, env!("CARGO_PKG_VERSION"))
        );
    }

    /// `--version`: name and version, then the commit this tree is at (when
    /// git knows it), target, build, MAC types and the program's
    /// `features` lines.
    pub fn version_lists_the_build(&self, features: &[&str]) {
        let out = self.run(&["--version"]);
        assert!(out.status.success(), "--version failed: {out:?}");
        let v = text(&out.stdout);
        let lines: Vec<&str> = v.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some(format!("{} {}", self.name, env!("CARGO_PKG_VERSION")).as_str())
        );
        let head = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| text(&o.stdout).trim().to_string());
        match std::env::var("MCAST_GIT_COMMIT").ok().or(head) {
            Some(c) => assert!(lines.contains(&format!("commit: {c}").as_str()), "{v}"),
            None => assert!(!v.contains("commit:"), "{v}"),
        }
        let arch = format!("target: {}-linux", std::env::consts::ARCH);
        let build = if cfg!(debug_assertions) {
            "build: debug"
        } else {
            "build: release"
        };
        assert!(lines.iter().any(|l| l.starts_with(&arch)), "{v}");
        assert!(lines.contains(&build), "{v}");
        assert!(
            lines.contains(&"macs: MD5 SHA1 SHA256 SHA384 SHA512 AES128CMAC HMAC-SHA256"),
            "{v}"
        );
        for f in features {
            assert!(lines.iter().any(|l| l.starts_with(f)), "{f:?} in\n{v}");
        }
    }

    /// `--help` lists `run` and `check-config` with examples, and each of
    /// them shows an example and the default path.
    pub fn help_lists_subcommands_and_examples(&self) {
        let out = self.run(&["--help"]);
        assert!(out.status.success());
        let help = text(&out.stdout);
        let example_line = format!("{} check-config -c", self.name);
        for needle in ["run", "check-config", "Examples:", example_line.as_str()] {
            assert!(
                help.contains(needle),
                "--help should mention {needle:?}:\n{help}"
            );
        }
        for sub in ["run", "check-config"] {
            let out = self.run(&[sub, "--help"]);
            assert!(out.status.success());
            let help = text(&out.stdout);
            assert!(
                help.contains("Example:"),
                "{sub} --help should have an example:\n{help}"
            );
            assert!(help.contains(&format!("{} {sub} -c ", self.name)), "{help}");
            assert!(
                help.contains(self.default_config),
                "default path shown:\n{help}"
            );
        }
    }

    /// `check-config` and `run` on a missing file exit 2 and name it.
    pub fn a_missing_config_file_exits_2_and_names_it(&self) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.toml");
        for sub in ["check-config", "run"] {
            let out = self.run(&[sub, "-c", path.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(2), "{sub}: {out:?}");
            assert!(
                text(&out.stderr).contains(&path.display().to_string()),
                "{sub}: {out:?}"
            );
        }
    }

    /// Without `-c` the default path under /etc is read (and named).
    pub fn the_default_config_path_is_under_etc(&self) {
        if Path::new(self.default_config).exists() {
            return; // an installed configuration would make this test machine-dependent
        }
        let out = self.run(&["check-config"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains(self.default_config), "{out:?}");
    }

    /// No subcommand, or an unknown one, exits 2.
    pub fn usage_errors_exit_2(&self) {
        assert_eq!(self.run(&[]).status.code(), Some(2));
        assert_eq!(self.run(&["frobnicate"]).status.code(), Some(2));
    }
}
