//! `down`: stops what a lab recorded (by PID and start time), deletes its
//! namespaces and its state directory; also after an `up` that failed half
//! way, and by name when the state is lost.

use std::fs;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::process::{ip, is_running, signal};
use super::state::state_file;
use super::{
    HostRecord, LabState, ProcRecord, STATE_ROOT, STOP_GRACE, check_name, ns_prefix, state_dir,
};
use crate::netns;

/// Stops every process lab `name` recorded, deletes its namespaces and its
/// state directory (`keep_files`: everything but `state.json`). Idempotent;
/// also cleans up after an `up` that failed half way. Returns what it did.
pub fn down(name: &str, keep_files: bool) -> Result<Vec<String>, String> {
    check_name(name)?;
    let mut done = Vec::new();
    let dir = state_dir(name);
    let state = match LabState::load(name) {
        Ok(s) => Some(s),
        Err(e) if state_file(&dir).exists() => {
            done.push(format!(
                "state file unreadable ({e}); removing by name only"
            ));
            None
        }
        Err(_) => None,
    };
    // Clients first, then servers, then the capture (it sees the end).
    let mut procs: Vec<(String, ProcRecord)> = Vec::new();
    if let Some(s) = &state {
        let mut hosts: Vec<&HostRecord> = s.hosts.iter().collect();
        hosts.sort_by_key(|h| h.kind.is_server());
        for h in hosts {
            if let Some(p) = &h.process {
                procs.push((format!("{} in {}", h.kind.program(), h.name), p.clone()));
            }
        }
        if let Some(p) = &s.capture {
            procs.push(("tcpdump".into(), p.clone()));
        }
    }
    let mut stopping = Vec::new();
    for (label, p) in &procs {
        if signal(p, Signal::TERM) {
            stopping.push((label.clone(), p.clone()));
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    while stopping.iter().any(|(_, p)| is_running(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (label, p) in &stopping {
        if signal(p, Signal::KILL) {
            done.push(format!(
                "killed {label} (pid {}) after {STOP_GRACE:?}",
                p.pid
            ));
        } else {
            done.push(format!("stopped {label} (pid {})", p.pid));
        }
    }
    // A process that exited may stay a zombie (reparented to an init that
    // does not reap): it no longer runs, which is what counts.
    if let Some((label, p)) = procs.iter().find(|(_, p)| is_running(p)) {
        return Err(format!(
            "{label} (pid {}) still runs after SIGKILL; namespaces left in place",
            p.pid
        ));
    }
    // Every namespace of this lab: recorded ones and, should the state be
    // lost, any with the lab's prefix. Hosts first, the switch last.
    let prefix = ns_prefix(name);
    let mut names: Vec<String> = state
        .as_ref()
        .map(|s| s.namespaces.clone())
        .unwrap_or_default();
    let present = netns::list_namespaces().map_err(|e| e.to_string())?;
    for n in &present {
        if n.starts_with(&prefix) && !names.contains(n) {
            names.push(n.clone());
        }
    }
    names.sort_by_key(|n| n.ends_with("-sw"));
    for ns in names.iter().filter(|n| present.contains(n)) {
        let pids = netns::run_ip(&["netns", "pids", ns]).unwrap_or_default();
        if !pids.trim().is_empty() {
            done.push(format!(
                "processes the lab did not start remain in {ns}: {} (left alone; deleting the name only)",
                pids.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
        ip(&["netns", "del", ns])?;
        done.push(format!("deleted namespace {ns}"));
    }
    if dir.exists() {
        if keep_files {
            let _ = fs::remove_file(state_file(&dir));
            done.push(format!("kept files in {}", dir.display()));
        } else {
            fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            done.push(format!("removed {}", dir.display()));
        }
    }
    if done.is_empty() {
        done.push(format!("lab {name:?} is not up; nothing to do"));
    }
    Ok(done)
}

/// Names of the labs with a state directory.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(STATE_ROOT)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("state.json").exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
