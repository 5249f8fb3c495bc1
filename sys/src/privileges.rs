//! Dropping root once the sockets are bound, keeping only the capabilities a
//! daemon still needs (`user = "..."` in either configuration).
//!
//! The model, for a daemon started as root without systemd:
//!
//! 1. bind every socket (port 123 needs root or `CAP_NET_BIND_SERVICE`);
//! 2. [`drop_privileges`]: drop every capability not kept from the bounding
//!    set, set `PR_SET_KEEPCAPS`, switch to the user (its primary group, no
//!    supplementary groups), clear `PR_SET_KEEPCAPS`, then reduce the
//!    permitted and effective sets to the kept capabilities, empty the
//!    inheritable and ambient sets, and check the result.
//!
//! Under systemd the unit starts the daemon as the user with the
//! capabilities in `AmbientCapabilities=`; the same call (user already
//! switched) then only reduces the sets to what is kept, so a client in
//! monitor mode gives up the `CAP_SYS_TIME` the unit granted.
//!
//! Capabilities are per thread. glibc applies `setuid`/`setgid`/`setgroups`
//! to every thread of the process, and a thread whose uids all become
//! non-zero without `PR_SET_KEEPCAPS` loses all its capabilities; only the
//! calling thread keeps the ones asked for. So a thread that must use a kept
//! capability (the client's clock adjustments) has to be the calling thread
//! or be started after the call.
//!
//! The bounding set (`PR_CAPBSET_DROP`), the inheritable set and the
//! ambient set are per thread too, and `setuid` changes none of them on the
//! other threads: a thread that exists before [`drop_privileges`] keeps
//! its full bounding set (and so could regain everything through an
//! `execve` of a file with capabilities). There is no system call that
//! changes another thread's sets (libcap's psx does it by signalling every
//! thread), so the daemons call [`drop_privileges`] while the process has
//! one thread, and every thread they start later inherits the dropped sets
//! from the one that started it. [`check_every_thread`] then reads
//! `/proc/self/task/*/status` and fails when any thread holds a capability
//! (effective, permitted, inheritable, ambient or bounding) that the
//! calling thread gave up.

use std::fmt;
use std::io;

use nix::unistd::{Uid, User, getresgid, getresuid, setgid, setgroups, setuid};
use rustix::thread::{
    CapabilitySet, CapabilitySets, capabilities, capability_is_in_bounding_set,
    clear_ambient_capability_set, remove_capability_from_bounding_set, set_capabilities,
    set_keep_capabilities,
};

/// A capability a daemon may keep after dropping privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// `CAP_NET_BIND_SERVICE`: bind UDP port 123 (or any port below 1024).
    NetBindService,
    /// `CAP_SYS_TIME`: adjust the system clock (the client in slew or step
    /// mode).
    SysTime,
}

impl Capability {
    /// The kernel's name, e.g. `CAP_SYS_TIME`.
    pub fn name(self) -> &'static str {
        match self {
            Capability::NetBindService => "CAP_NET_BIND_SERVICE",
            Capability::SysTime => "CAP_SYS_TIME",
        }
    }

    fn set(self) -> CapabilitySet {
        match self {
            Capability::NetBindService => CapabilitySet::NET_BIND_SERVICE,
            Capability::SysTime => CapabilitySet::SYS_TIME,
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the calling thread holds after [`drop_privileges`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileges {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// The process switched from root to the configured user.
    pub switched_user: bool,
    /// The permitted and effective sets were reduced to the kept
    /// capabilities (false only when running as root without `user`).
    pub reduced: bool,
    /// Capabilities asked for and held (effective).
    pub kept: Vec<Capability>,
    /// Capabilities asked for but not held: the process never had them
    /// (bounding set, or started unprivileged without them).
    pub missing: Vec<Capability>,
}

impl Privileges {
    /// Whether `cap` is in the effective set.
    pub fn has(&self, cap: Capability) -> bool {
        self.kept.contains(&cap)
    }
}

/// Why privileges could not be dropped. The process must not go on.
#[derive(Debug)]
pub struct PrivilegeError(String);

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PrivilegeError {}

fn fail(what: &str, e: impl fmt::Display) -> PrivilegeError {
    PrivilegeError(format!("{what}: {e}"))
}

/// Whether the user database knows a user called `name`.
pub fn user_exists(name: &str) -> bool {
    matches!(User::from_name(name), Ok(Some(_)))
}

/// Switches to `user` (when given and not already that user) and reduces
/// the capabilities to `keep`; see the module documentation.
///
/// - `user = None` and running as root: nothing is changed (root keeps
///   every capability); [`Privileges::missing`] still says what root lacks.
/// - `user = None` and not root (systemd's `User=`): the sets are reduced.
/// - `user = Some` and running as root: switch, then reduce.
/// - `user = Some` and already that user: reduce.
/// - `user = Some`, another non-root user: an error.
///
/// # Errors
/// An unknown user, not running as root when a switch is needed, or any
/// system call failing; also when the result is not what was asked (still
/// root, or a capability held that was not kept).
pub fn drop_privileges(
    user: Option<&str>,
    keep: &[Capability],
) -> Result<Privileges, PrivilegeError> {
    let keep_set = keep
        .iter()
        .fold(CapabilitySet::empty(), |acc, c| acc | c.set());
    let euid = Uid::effective();
    let target = match user {
        Some(name) => Some(
            User::from_name(name)
                .map_err(|e| fail(&format!("cannot look up user {name}"), e))?
                .ok_or_else(|| PrivilegeError(format!("no such user: {name}")))?,
        ),
        None => None,
    };
    let mut switched_user = false;
    if let Some(u) = &target
        && u.uid != euid
    {
        if !euid.is_root() {
            return Err(PrivilegeError(format!(
                "cannot switch to user {} (uid {}): running as uid {euid}, not root",
                u.name, u.uid
            )));
        }
        drop_bounding_set(keep_set)?;
        set_keep_capabilities(true).map_err(|e| fail("prctl(PR_SET_KEEPCAPS, 1)", e))?;
        setgroups(&[u.gid]).map_err(|e| fail("setgroups", e))?;
        setgid(u.gid).map_err(|e| fail("setgid", e))?;
        setuid(u.uid).map_err(|e| fail("setuid", e))?;
        set_keep_capabilities(false).map_err(|e| fail("prctl(PR_SET_KEEPCAPS, 0)", e))?;
        switched_user = true;
    }
    let reduced = target.is_some() || !euid.is_root();
    if reduced {
        let now = capabilities(None).map_err(|e| fail("capget", e))?;
        let want = now.permitted & keep_set;
        set_capabilities(
            None,
            CapabilitySets {
                effective: want,
                permitted: want,
                inheritable: CapabilitySet::empty(),
            },
        )
        .map_err(|e| fail("capset", e))?;
        // With an empty inheritable set the ambient set is empty already;
        // clearing it explicitly also covers kernels that keep it otherwise.
        match clear_ambient_capability_set() {
            Ok(()) => {}
            // Kernels before 4.3 have no ambient set.
            Err(e) if e == rustix::io::Errno::INVAL => {}
            Err(e) => return Err(fail("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", e)),
        }
    }
    verify(target.as_ref(), keep_set, reduced, switched_user, keep)
}

/// Removes every capability not in `keep` from the bounding set, so that
/// not even an `execve` of a file with capabilities can bring one back.
/// Needs `CAP_SETPCAP`; skipped (the bounding set is left alone) without it.
fn drop_bounding_set(keep: CapabilitySet) -> Result<(), PrivilegeError> {
    let now = capabilities(None).map_err(|e| fail("capget", e))?;
    if !now.effective.contains(CapabilitySet::SETPCAP) {
        return Ok(());
    }
    for bit in 0..64u32 {
        let cap = CapabilitySet::from_bits_retain(1u64 << bit);
        if keep.contains(cap) {
            continue;
        }
        match capability_is_in_bounding_set(cap) {
            Ok(true) => remove_capability_from_bounding_set(cap)
                .map_err(|e| fail(&format!("prctl(PR_CAPBSET_DROP, {bit})"), e))?,
            Ok(false) => {}
            // Past the kernel's last capability.
            Err(_) => break,
        }
    }
    Ok(())
}

fn verify(
    target: Option<&User>,
    keep_set: CapabilitySet,
    reduced: bool,
    switched_user: bool,
    keep: &[Capability],
) -> Result<Privileges, PrivilegeError> {
    let uids = getresuid().map_err(|e| fail("getresuid", e))?;
    let gids = getresgid().map_err(|e| fail("getresgid", e))?;
    if let Some(u) = target {
        let uid_ok = [uids.real, uids.effective, uids.saved]
            .iter()
            .all(|&id| id == u.uid);
        let gid_ok = [gids.real, gids.effective, gids.saved]
            .iter()
            .all(|&id| id == u.gid);
        if !uid_ok || !gid_ok {
            return Err(PrivilegeError(format!(
                "after switching to {}: uids {}/{}/{}, gids {}/{}/{} (expected {} and {})",
                u.name,
                uids.real,
                uids.effective,
                uids.saved,
                gids.real,
                gids.effective,
                gids.saved,
                u.uid,
                u.gid
            )));
        }
    }
    let sets = capabilities(None).map_err(|e| fail("capget", e))?;
    if reduced {
        let extra = (sets.permitted | sets.effective | sets.inheritable) - keep_set;
        if !extra.is_empty() {
            return Err(PrivilegeError(format!(
                "capabilities still held after reducing them: {:#x}",
                extra.bits()
            )));
        }
    }
    let (kept, missing) = keep.iter().partition(|c| sets.effective.contains(c.set()));
    Ok(Privileges {
        uid: uids.effective.as_raw(),
        gid: gids.effective.as_raw(),
        switched_user,
        reduced,
        kept,
        missing,
    })
}

/// The five capability sets of one task, from its `/proc/.../status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TaskCaps {
    inheritable: u64,
    permitted: u64,
    effective: u64,
    bounding: u64,
    ambient: u64,
}

impl TaskCaps {
    fn read(path: &std::path::Path) -> io::Result<TaskCaps> {
        let text = std::fs::read_to_string(path)?;
        let field = |name: &str| -> io::Result<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                // A kernel without ambient capabilities (before 4.3) has no CapAmb.
                .or_else(|| (name == "CapAmb").then_some(0))
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("no {name} in {}", path.display()),
                    )
                })
        };
        Ok(TaskCaps {
            inheritable: field("CapInh")?,
            permitted: field("CapPrm")?,
            effective: field("CapEff")?,
            bounding: field("CapBnd")?,
            ambient: field("CapAmb")?,
        })
    }

    /// What this task holds beyond `reference`, set by set.
    fn beyond(&self, reference: &TaskCaps) -> Vec<(&'static str, u64)> {
        [
            ("CapInh", self.inheritable & !reference.inheritable),
            ("CapPrm", self.permitted & !reference.permitted),
            ("CapEff", self.effective & !reference.effective),
            ("CapBnd", self.bounding & !reference.bounding),
            ("CapAmb", self.ambient & !reference.ambient),
        ]
        .into_iter()
        .filter(|(_, extra)| *extra != 0)
        .collect()
    }
}

/// Checks that no thread of this process holds a capability the calling
/// thread does not (in any of the five sets), reading
/// `/proc/self/task/*/status`; call it after [`drop_privileges`] (see the
/// module documentation). Returns how many threads were checked.
///
/// # Errors
/// A thread holding more than the calling one (named by its thread id and
/// the sets), or `/proc` unreadable. A thread that ends while being read is
/// skipped.
pub fn check_every_thread() -> Result<usize, PrivilegeError> {
    let reference = TaskCaps::read(std::path::Path::new("/proc/thread-self/status"))
        .map_err(|e| fail("reading /proc/thread-self/status", e))?;
    let tasks =
        std::fs::read_dir("/proc/self/task").map_err(|e| fail("reading /proc/self/task", e))?;
    let mut checked = 0;
    let mut problems = Vec::new();
    for task in tasks {
        let task = task.map_err(|e| fail("reading /proc/self/task", e))?;
        let caps = match TaskCaps::read(&task.path().join("status")) {
            Ok(c) => c,
            // The thread ended meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail(&format!("reading {}", task.path().display()), e)),
        };
        checked += 1;
        for (set, extra) in caps.beyond(&reference) {
            problems.push(format!(
                "thread {} holds {set} {extra:#x}",
                task.file_name().to_string_lossy()
            ));
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(PrivilegeError(format!(
            "capabilities not dropped on every thread: {}",
            problems.join(", ")
        )))
    }
}

/// Whether this thread's effective set holds `cap` (e.g. to explain an
/// `EPERM` before trying).
///
/// # Errors
/// `capget(2)` failing.
pub fn has_capability(cap: Capability) -> io::Result<bool> {
    capabilities(None)
        .map(|s| s.effective.contains(cap.set()))
        .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_kernels() {
        assert_eq!(Capability::SysTime.to_string(), "CAP_SYS_TIME");
        assert_eq!(
            Capability::NetBindService.to_string(),
            "CAP_NET_BIND_SERVICE"
        );
        // Bits as in <linux/capability.h>.
        assert_eq!(Capability::SysTime.set().bits(), 1 << 25);
        assert_eq!(Capability::NetBindService.set().bits(), 1 << 10);
    }

    #[test]
    fn every_thread_is_checked_against_the_calling_one() {
        // This test process: every thread was started by the harness with
        // the same sets, so none holds more than this one.
        let n = check_every_thread().expect("no thread holds more");
        assert!(n >= 1, "at least this thread: {n}");
        let reference = TaskCaps {
            inheritable: 0,
            permitted: 1 << 10,
            effective: 1 << 10,
            bounding: 1 << 10,
            ambient: 0,
        };
        let full = TaskCaps {
            bounding: u64::MAX >> 23,
            ..reference
        };
        assert_eq!(
            full.beyond(&reference),
            vec![("CapBnd", (u64::MAX >> 23) & !(1 << 10))]
        );
        assert!(reference.beyond(&reference).is_empty());
    }

    #[test]
    fn unknown_user_is_an_error_and_changes_nothing() {
        let before = capabilities(None).expect("capget");
        let err = drop_privileges(Some("no-such-user-mcast-ntp-test"), &[])
            .expect_err("an unknown user cannot be switched to");
        assert!(err.to_string().contains("no such user"), "{err}");
        assert_eq!(capabilities(None).expect("capget"), before);
    }
}
