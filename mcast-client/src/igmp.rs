//! `igmp-version` / `mld-version` of a `[[listen]]` entry: the kernel's
//! per-interface setting, written at start only when the operator set it.
//!
//! The client never changes it on its own: it is a host-wide setting of
//! the interface (every program's memberships on it), so it is written only
//! when a `[[listen]]` entry asks for it, which is meant for a client that
//! has the interface to itself (its own network namespace or container).
//! Where kernel settings are read-only (the packaged systemd unit has
//! `ProtectKernelTunables=yes` and no `CAP_NET_ADMIN`), the client warns
//! and names the sysctl to set instead; a value already in force needs no
//! write, so a host configured through sysctl.d starts quietly.

use std::path::{Path, PathBuf};

use mcast_config::Listen;

/// Where the kernel's settings are.
const PROC_SYS: &str = "/proc/sys";

/// What applying one entry's version did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Written (`old` is what it was) or already in force (`old` equal).
    Set {
        /// The setting's file.
        path: PathBuf,
        /// Its value before.
        old: String,
        /// The version asked for.
        new: u8,
    },
    /// Could not be read or written.
    Failed {
        /// The setting's file.
        path: PathBuf,
        /// The version asked for.
        new: u8,
        /// The system's error.
        error: String,
    },
}

/// The setting file and version an entry asks for, if any.
fn wanted(root: &Path, l: &Listen) -> Option<(PathBuf, u8)> {
    let (family, file, v) = match (l.igmp_version, l.mld_version) {
        (Some(v), _) => ("ipv4", "force_igmp_version", v),
        (None, Some(v)) => ("ipv6", "force_mld_version", v),
        (None, None) => return None,
    };
    Some((
        root.join("net")
            .join(family)
            .join("conf")
            .join(&l.interface)
            .join(file),
        v,
    ))
}

/// Applies every entry's version under `root` (`/proc/sys` in the daemon).
pub fn apply_under(root: &Path, listen: &[Listen]) -> Vec<Applied> {
    let mut out: Vec<Applied> = Vec::new();
    for (path, new) in listen.iter().filter_map(|l| wanted(root, l)) {
        // Two entries on one interface share the setting.
        if out.iter().any(|a| matches!(a, Applied::Set { path: p, .. } | Applied::Failed { path: p, .. } if *p == path)) {
            continue;
        }
        let result = std::fs::read_to_string(&path).and_then(|old| {
            let old = old.trim().to_string();
            if old != new.to_string() {
                std::fs::write(&path, format!("{new}\n"))?;
            }
            Ok(old)
        });
        out.push(match result {
            Ok(old) => Applied::Set { path, old, new },
            Err(e) => Applied::Failed {
                path,
                new,
                error: e.to_string(),
            },
        });
    }
    out
}

/// Applies the versions the `[[listen]]` entries ask for and logs what
/// happened (a failure is a warning: the kernel's version stays).
pub fn apply_versions(listen: &[Listen]) {
    for a in apply_under(Path::new(PROC_SYS), listen) {
        match a {
            Applied::Set { path, old, new } => tracing::info!(
                "{}",
                crate::text::multicast_version_applied(&path.display().to_string(), &old, new)
            ),
            Applied::Failed { path, new, error } => tracing::warn!(
                "{}",
                crate::text::multicast_version_failed(&path.display().to_string(), new, &error)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    fn listen(interface: &str, igmp: Option<u8>) -> Listen {
        Listen {
            group: "224.0.1.1".parse().unwrap(),
            interface: interface.into(),
            broadcast: false,
            igmp_version: igmp,
            mld_version: None,
        }
    }

    #[test]
    fn only_a_configured_version_is_written_and_a_missing_interface_is_reported() {
        let root = tempfile::tempdir().unwrap();
        let conf = root.path().join("net/ipv4/conf/eth0");
        std::fs::create_dir_all(&conf).unwrap();
        let file = conf.join("force_igmp_version");
        std::fs::write(&file, "0\n").unwrap();
        assert_eq!(apply_under(root.path(), &[listen("eth0", None)]), vec![]);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n", "untouched");

        let got = apply_under(
            root.path(),
            &[listen("eth0", Some(2)), listen("eth0", Some(2))],
        );
        assert_eq!(
            got,
            vec![Applied::Set {
                path: file.clone(),
                old: "0".into(),
                new: 2
            }]
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "2");

        let got = apply_under(root.path(), &[listen("bond0", Some(3))]);
        assert!(
            matches!(&got[..], [Applied::Failed { new: 3, .. }]),
            "{got:?}"
        );
        let Applied::Failed { path, new, error } = &got[0] else {
            unreachable!()
        };
        let line = crate::text::multicast_version_failed(&path.display().to_string(), *new, error);
        assert!(line.contains("force_igmp_version = 3"), "{line}");
    }
}
