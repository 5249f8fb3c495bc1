//! Coexistence: in slew mode `mcast-client run` refuses to start while
//! another time daemon runs. The "daemon" is a copy of /bin/sleep named
//! chronyd; the client runs without CAP_SYS_TIME and refuses before it
//! touches any clock (the detection itself is unit-tested in
//! mcast-client's `coexist` module).
#![cfg(test)]

use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use mcast_tests::loopback::{LoopbackLab, tool, wait_until};

/// A process whose name (`/proc/PID/comm`) is `chronyd`, killed when dropped.
struct FakeDaemon(Child);

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One fake chronyd at a time: the tests of this file run in parallel, and
/// the refusal names the first chronyd it finds, which must be the test's
/// own (another test's may have ended by the time its pid is checked).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn fake_chronyd(dir: &std::path::Path) -> FakeDaemon {
    let bin = dir.join("chronyd");
    std::fs::copy("/bin/sleep", &bin).expect("copy /bin/sleep");
    let child = tool(&bin)
        .arg("300")
        .stdout(Stdio::null())
        .spawn()
        .expect("fake chronyd starts");
    let comm = format!("/proc/{}/comm", child.id());
    let fake = FakeDaemon(child);
    wait_until(
        "the fake chronyd runs",
        Duration::from_secs(5),
        || match std::fs::read_to_string(&comm) {
            Ok(c) if c.trim() == "chronyd" => Ok(()),
            other => Err(format!("{comm}: {other:?}")),
        },
    );
    fake
}

fn slew_config(lab: &LoopbackLab) -> std::path::PathBuf {
    let conf = lab.dir.path().join("client.toml");
    std::fs::write(
        &conf,
        format!(
            "keys = {keys:?}\nport = {port}\ncontrol-socket = {sock:?}\n\
             [[listen]]\ngroup = \"224.0.1.1\"\ninterface = \"lo\"\n\
             [[server]]\naddress = \"127.0.0.1\"\nkey = 3\n\
             [clock]\nmode = \"slew\"\n",
            keys = lab.keys(),
            port = lab.port,
            sock = lab.client_socket(),
        ),
    )
    .expect("client config");
    conf
}

#[test]
fn slew_mode_refuses_to_start_beside_chronyd_unless_forced() {
    let _one = one_at_a_time();
    let lab = LoopbackLab::new();
    let conf = slew_config(&lab);
    let fake = fake_chronyd(lab.dir.path());
    let pid = fake.0.id();

    let out = tool(&lab.client_bin)
        .args(["run", "-c"])
        .arg(&conf)
        .output()
        .expect("run runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // Ours, or a real chronyd of this machine.
    let named: u32 = stderr
        .split("refusing to start in slew mode: chronyd (pid ")
        .nth(1)
        .and_then(|rest| rest.split(") is running").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("names a chronyd pid: {stderr}"));
    let comm = std::fs::read_to_string(format!("/proc/{named}/comm")).unwrap_or_default();
    assert!(
        named == pid || comm.trim() == "chronyd",
        "pid {named} is a running chronyd (ours is {pid}): {stderr}"
    );
    assert!(stderr.contains("--force"), "names the way out: {stderr}");
    assert!(
        !lab.client_socket().exists(),
        "refused before anything was opened"
    );

    // --force goes on, and stops only for want of CAP_SYS_TIME (setpriv
    // took it away): the clock is safe either way.
    let out = tool(&lab.client_bin)
        .args(["run", "--force", "-c"])
        .arg(&conf)
        .output()
        .expect("run runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--force: starting in slew mode"),
        "{stderr}"
    );
    assert!(stderr.contains("needs CAP_SYS_TIME"), "{stderr}");
}

#[test]
fn monitor_mode_starts_beside_chronyd() {
    let _one = one_at_a_time();
    let lab = LoopbackLab::new();
    let _fake = fake_chronyd(lab.dir.path());
    // Monitor mode never touches the clock: no reason to refuse.
    let _client = lab.start_client("");
}
