//! Coexistence: in slew and step modes the client refuses to start while
//! another daemon disciplines the clock (two loops fighting over one clock
//! make both wrong). [`conflict`] is a pure function of a process list and
//! the kernel's status word, so it is tested without such daemons;
//! [`check`] reads this host's (`/proc/*/comm`, read-only `adjtimex`).
//! `mcast-client run --force` skips the check. It sees only what `/proc`
//! shows: the shipped unit keeps `ProtectProc=default` for it; a host that
//! mounts `/proc` with `hidepid` hides other users' daemons from it.

use std::fmt;

/// Process names (`/proc/PID/comm`, cut by the kernel to 15 bytes) of
/// daemons that discipline the clock.
pub const TIME_DAEMONS: [&str; 4] = ["chronyd", "ntpd", "ntpsec", "systemd-timesyn"];

/// The kernel's `STA_PLL` and `STA_FLL` bits (`adjtimex(2)`): a kernel
/// discipline someone else turned on (the client disciplines in user
/// space and never sets them).
pub const STA_PLL: i32 = 0x0001;
/// See [`STA_PLL`].
pub const STA_FLL: i32 = 0x0008;

/// Who else disciplines the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// A time daemon runs.
    Daemon {
        /// Its process name.
        name: String,
        /// Its process id.
        pid: u32,
    },
    /// The kernel's PLL or FLL is on.
    KernelDiscipline {
        /// Which of the bits is set.
        bits: &'static str,
    },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::Daemon { name, pid } => {
                let shown = if *name == "systemd-timesyn" {
                    "systemd-timesyncd"
                } else {
                    name
                };
                write!(
                    f,
                    "{shown} (pid {pid}) is running and disciplines the clock"
                )
            }
            Conflict::KernelDiscipline { bits } => write!(
                f,
                "the kernel's {bits} is set: another program (ntpd?) disciplines the clock \
                 through the kernel"
            ),
        }
    }
}

/// The first conflict in `processes` (pid, comm) and the kernel status word
/// `status_bits`; our own process (`own_pid`) never counts.
pub fn conflict(processes: &[(u32, String)], status_bits: i32, own_pid: u32) -> Option<Conflict> {
    if let Some((pid, name)) = processes
        .iter()
        .find(|(pid, name)| *pid != own_pid && TIME_DAEMONS.contains(&name.trim_end()))
    {
        return Some(Conflict::Daemon {
            name: name.trim_end().to_string(),
            pid: *pid,
        });
    }
    let bits = match (status_bits & STA_PLL != 0, status_bits & STA_FLL != 0) {
        (true, true) => "STA_PLL and STA_FLL",
        (true, false) => "STA_PLL",
        (false, true) => "STA_FLL",
        (false, false) => return None,
    };
    Some(Conflict::KernelDiscipline { bits })
}

/// Every process visible in `/proc`: pid and name.
fn processes() -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            Some((pid, comm.trim_end_matches('\n').to_string()))
        })
        .collect()
}

/// This host's conflict, if any (reads only).
pub fn check() -> Option<Conflict> {
    let bits = mcast_sys::kernel_time_status().map_or(0, |k| k.status_bits);
    conflict(&processes(), bits, std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn procs(list: &[(u32, &str)]) -> Vec<(u32, String)> {
        list.iter().map(|(p, n)| (*p, (*n).to_string())).collect()
    }

    #[test]
    fn each_time_daemon_is_found_by_name() {
        for name in TIME_DAEMONS {
            let found = conflict(&procs(&[(1, "systemd"), (812, name)]), 0, 99);
            assert_eq!(
                found,
                Some(Conflict::Daemon {
                    name: name.to_string(),
                    pid: 812
                })
            );
        }
        let shown = conflict(&procs(&[(5, "systemd-timesyn")]), 0, 99)
            .expect("found")
            .to_string();
        assert!(shown.starts_with("systemd-timesyncd (pid 5)"), "{shown}");
    }

    #[test]
    fn other_processes_and_ourselves_do_not_count() {
        let list = procs(&[
            (1, "systemd"),
            (2, "ntpdate-helper"),
            (3, "chrony"),
            (4, "sshd"),
        ]);
        assert_eq!(conflict(&list, 0, 99), None);
        assert_eq!(conflict(&procs(&[(99, "ntpd")]), 0, 99), None);
        // STA_UNSYNC (0x40), STA_NANO (0x2000): no kernel discipline.
        assert_eq!(conflict(&list, 0x40 | 0x2000, 99), None);
    }

    #[test]
    fn kernel_pll_or_fll_set_by_someone_else() {
        assert_eq!(
            conflict(&[], STA_PLL | 0x2000, 1),
            Some(Conflict::KernelDiscipline { bits: "STA_PLL" })
        );
        assert_eq!(
            conflict(&[], STA_FLL, 1),
            Some(Conflict::KernelDiscipline { bits: "STA_FLL" })
        );
        assert_eq!(
            conflict(&[], STA_PLL | STA_FLL, 1),
            Some(Conflict::KernelDiscipline {
                bits: "STA_PLL and STA_FLL"
            })
        );
        // A running daemon is named first.
        assert!(matches!(
            conflict(&procs(&[(7, "chronyd")]), STA_PLL, 1),
            Some(Conflict::Daemon { .. })
        ));
    }
}
