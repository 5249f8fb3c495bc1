//! What `--version` prints for the three programs: version, git commit
//! (when the build knew it), target, build profile, the MAC types and
//! crypto compiled in, and the program's own features.

use crate::KeyType;

/// The text after the program name for `--version`: the version on the
/// first line, then one `name: value` line per fact. `commit` is `None`
/// when the build had no git commit (the line is left out); `features`
/// are the program's own (e.g. `logging: journald, stderr`).
pub fn long_version(version: &str, commit: Option<&str>, features: &[(&str, &str)]) -> String {
    let mut lines = vec![version.to_string()];
    if let Some(c) = commit {
        lines.push(format!("commit: {c}"));
    }
    lines.push(format!("target: {}", target()));
    lines.push(format!(
        "build: {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    ));
    let macs: Vec<&str> = KeyType::ALL.iter().map(|t| t.name()).collect();
    lines.push(format!("macs: {}", macs.join(" ")));
    lines.push("crypto: RustCrypto (pure Rust; no OpenSSL)".to_string());
    for (name, value) in features {
        lines.push(format!("{name}: {value}"));
    }
    lines.join("\n")
}

/// `arch-os-env` of this build, e.g. `x86_64-linux-gnu`.
fn target() -> String {
    let env = if cfg!(target_env = "gnu") {
        "-gnu"
    } else if cfg!(target_env = "musl") {
        "-musl"
    } else {
        ""
    };
    format!("{}-{}{env}", std::env::consts::ARCH, std::env::consts::OS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_commit_only_when_known_and_every_mac_type() {
        let with = long_version("1.2.3", Some("abcdef012345"), &[("logging", "journald")]);
        let lines: Vec<&str> = with.lines().collect();
        assert_eq!(lines.first(), Some(&"1.2.3"));
        assert!(lines.contains(&"commit: abcdef012345"), "{with}");
        assert!(lines.contains(&"logging: journald"), "{with}");
        assert!(
            with.contains("AES128CMAC") && with.contains("MD5"),
            "{with}"
        );
        let without = long_version("1.2.3", None, &[]);
        assert!(!without.contains("commit"), "{without}");
        assert!(without.contains(&format!("target: {}", std::env::consts::ARCH)));
    }
}
