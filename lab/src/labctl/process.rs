//! The lab's processes: started detached in a namespace without
//! `CAP_SYS_TIME` (checked), identified by PID and start time, signalled
//! only while both still match; and the commands every verb runs there
//! (`ip`, ntpq).

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use super::{LabState, ProcRecord, START_TIMEOUT};
use crate::netns;

/// State letter and start time of a process, from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Fields after the command name (which may hold spaces and parentheses):
/// state is field 3, start time field 22.
fn parse_stat(text: &str) -> Option<(char, u64)> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Whether the recorded process still runs (a zombie has exited: on a
/// machine whose init does not reap, a lab's exited daemons stay zombies).
pub fn is_running(p: &ProcRecord) -> bool {
    proc_stat(p.pid)
        .is_some_and(|(state, start)| start == p.start_time && !matches!(state, 'Z' | 'X' | 'x'))
}

/// Signals a recorded process if it still is that process.
pub(super) fn signal(p: &ProcRecord, sig: Signal) -> bool {
    if !is_running(p) {
        return false;
    }
    let Some(pid) = i32::try_from(p.pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    kill_process(pid, sig).is_ok()
}

pub(super) fn tool(name: &str) -> Result<PathBuf, String> {
    netns::find_program(name).ok_or_else(|| format!("`{name}` not found: run scripts/install-deps"))
}

/// `ip netns exec NS setpriv <no CAP_SYS_TIME> PROGRAM`.
fn ns_command(ns: &str, program: &Path) -> Result<Command, String> {
    let mut cmd = Command::new(tool("ip")?);
    cmd.args(["netns", "exec", ns])
        .arg(tool("setpriv")?)
        .args(netns::DROP_SYS_TIME)
        .arg(program);
    Ok(cmd)
}

/// Runs a program in a namespace (without `CAP_SYS_TIME`) and waits.
pub(super) fn ns_output(
    ns: &str,
    program: &Path,
    args: &[&str],
    envs: &[(&str, &OsStr)],
) -> Result<Output, String> {
    let mut cmd = ns_command(ns, program)?;
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output()
        .map_err(|e| format!("in {ns}: {}: {e}", program.display()))
}

/// Starts `program ARGS` in `ns` without `CAP_SYS_TIME`, detached (own
/// process group, stdout and stderr to `out`), and returns its record
/// once it runs its program without the capability (killed otherwise).
/// `record` is called with the process before anything else happens, so
/// the caller can write it to the state file.
#[allow(
    clippy::zombie_processes,
    reason = "the daemon outlives this command on purpose; `down` ends it by PID and start time"
)]
pub(super) fn spawn_detached(
    ns: &str,
    program: &Path,
    args: &[OsString],
    envs: &[(&str, &OsStr)],
    out: &Path,
    record: &mut dyn FnMut(&ProcRecord) -> Result<(), String>,
) -> Result<ProcRecord, String> {
    let log = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let mut cmd = ns_command(ns, program)?;
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Not in the terminal's job: Ctrl-C on a later command never
        // reaches the lab's daemons.
        .process_group(0);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("start {} in {ns}: {e}", program.display()))?;
    // Unreaped until this process exits, so the PID cannot be reused
    // before its start time is read.
    let pid = child.id();
    let start_time = proc_stat(pid).map(|(_, s)| s).ok_or_else(|| {
        format!(
            "{} in {ns} (pid {pid}) vanished at start",
            program.display()
        )
    })?;
    let rec = ProcRecord {
        pid,
        start_time,
        program: program.to_owned(),
    };
    record(&rec)?;
    verify_no_sys_time(&rec, ns)?;
    Ok(rec)
}

/// Waits until the process has passed `ip` and `setpriv` and checks that
/// `CAP_SYS_TIME` is in none of its permitted, effective and bounding sets;
/// SIGKILLs it otherwise.
fn verify_no_sys_time(p: &ProcRecord, ns: &str) -> Result<(), String> {
    let want = fs::canonicalize(&p.program).unwrap_or_else(|_| p.program.clone());
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if !is_running(p) {
            // Exited already: it holds nothing any more.
            return Ok(());
        }
        let exe = fs::read_link(format!("/proc/{}/exe", p.pid)).ok();
        if exe.as_deref() == Some(want.as_path()) {
            let caps = netns::read_caps(p.pid);
            if caps.len() == 3 {
                if let Some((name, v)) = caps.iter().find(|(_, v)| netns::has_sys_time(*v)) {
                    signal(p, Signal::KILL);
                    return Err(format!(
                        "SAFETY: {} in {ns} (pid {}) held CAP_SYS_TIME in {name} ({v:x}); killed it",
                        p.program.display(),
                        p.pid
                    ));
                }
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            signal(p, Signal::KILL);
            return Err(format!(
                "{} in {ns} (pid {}) did not reach its program within {START_TIMEOUT:?}; killed it",
                p.program.display(),
                p.pid
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The last `n` lines of a file.
pub(super) fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}

pub(super) fn ip(args: &[&str]) -> Result<String, String> {
    netns::run_ip(args).map_err(|e| e.to_string())
}

/// Runs `ntpq ARGS 127.0.0.1` in a namespace (1 s timeout per query).
pub(super) fn ntpq(state: &LabState, ns: &str, args: &[&str]) -> Result<String, String> {
    let ntpq = state
        .ntpq
        .as_deref()
        .ok_or_else(|| "this lab has no ntpq".to_owned())?;
    let mut all = vec!["-c", "timeout 1000"];
    all.extend_from_slice(args);
    all.push("127.0.0.1");
    let lib = state.ntpd_libdir.clone().unwrap_or_default();
    let out = ns_output(ns, ntpq, &all, &[("LD_LIBRARY_PATH", lib.as_os_str())])?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && !stdout.contains("timed out") {
        Ok(stdout)
    } else {
        Err(format!(
            "ntpq {} in {ns}: {}{}",
            args.join(" "),
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let line = "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 987_654)));
        assert_eq!(parse_stat("1 (x) Z"), None);
    }
}
