//! The reference ntpd 4.2.8p15 in a [`Lan`](crate::netns::Lan) host: start a
//! multicast server or client, query it with ntpq, parse what ntpq prints.
//!
//! The binaries come from `scripts/ref-ntpd install` (run by
//! `scripts/install-deps`); [`Install::locate`] finds them through
//! `scripts/ref-ntpd path`, which honours `REF_NTPD_ROOT`.
//!
//! Safety: the daemon runs through [`Host::spawn_env`] (no `CAP_SYS_TIME`,
//! checked), and every generated configuration has `disable ntp` and
//! `disable kernel`, checked before start. ntpd still calls `ntp_adjtime` at
//! start-up; its log then shows "Operation not permitted", which is the
//! dropped capability at work.
//!
//! Facts the configurations rely on: with `disable ntp` and only the LOCAL
//! clock ntpd never becomes synchronized (and never broadcasts);
//! `tos orphan 5 orphanwait 1` makes it so. The broadcast interval is at
//! least 8 s (`minpoll 3`).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::netns::{Host, NsChild};

/// The version string the installed ntpd must report.
pub const VERSION: &str = "4.2.8p15";

/// How long a started daemon may take to answer ntpq.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the reference ntpd is unpacked.
#[derive(Debug, Clone)]
pub struct Install {
    /// The root (`usr/sbin/ntpd` under it).
    pub root: PathBuf,
    /// The directory of its shared libraries (for `LD_LIBRARY_PATH`).
    pub libdir: PathBuf,
}

impl Install {
    /// Finds the installation via `scripts/ref-ntpd path` (cached). The
    /// error says to run `scripts/install-deps` when it is missing.
    pub fn locate() -> io::Result<Install> {
        static FOUND: OnceLock<Result<Install, String>> = OnceLock::new();
        FOUND
            .get_or_init(locate_uncached)
            .clone()
            .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e))
    }

    /// `usr/sbin/ntpd`.
    pub fn ntpd(&self) -> PathBuf {
        self.root.join("usr/sbin/ntpd")
    }

    /// `usr/bin/ntpq`.
    pub fn ntpq(&self) -> PathBuf {
        self.root.join("usr/bin/ntpq")
    }

    /// `usr/bin/sntp`.
    pub fn sntp(&self) -> PathBuf {
        self.root.join("usr/bin/sntp")
    }

    /// The environment its programs need.
    pub fn env(&self) -> [(&'static str, &OsStr); 1] {
        [("LD_LIBRARY_PATH", self.libdir.as_os_str())]
    }
}

fn locate_uncached() -> Result<Install, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/ref-ntpd");
    let hint = "reference ntpd 4.2.8p15 is not installed: run scripts/install-deps (as root)";
    let out = Command::new("bash")
        .arg(&script)
        .arg("path")
        .output()
        .map_err(|e| format!("{hint} ({}: {e})", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{hint} ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let marker = fs::read_to_string(root.join(".installed")).unwrap_or_default();
    let libdir = marker
        .lines()
        .find_map(|l| l.strip_prefix("libdir="))
        .map(|rel| root.join(rel))
        .ok_or_else(|| format!("{hint} ({} has no libdir record)", root.display()))?;
    Ok(Install { root, libdir })
}

/// A running reference ntpd in a Lan host. Dropping it kills the daemon;
/// its run directory (config, logs) is removed unless the thread is
/// panicking, in which case the path is printed for the post-mortem.
pub struct RefNtpd {
    child: NsChild,
    host: Host,
    install: Install,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
}

impl RefNtpd {
    /// Starts a multicast (mode 5) server in `host`, broadcasting to
    /// `group` every 2^`poll` s (3..=17), signed with `key_id` from
    /// `keys_path` (unsigned if `None`). Its time source is the LOCAL clock
    /// at stratum 1 (so it serves stratum 2, refid `LOCAL(0)`), made
    /// synchronized by orphan mode. `extra_conf` is appended verbatim.
    pub fn server(
        host: &Host,
        keys_path: &Path,
        key_id: Option<u16>,
        group: IpAddr,
        poll: u8,
        extra_conf: &str,
    ) -> io::Result<RefNtpd> {
        let trusted: Vec<u16> = key_id.into_iter().collect();
        let body = server_body(group, key_id, poll)?;
        Self::start(host, "server", keys_path, &trusted, &body, extra_conf)
    }

    /// Starts the daemon our server's `upstream` time source queries: in
    /// `host`, answering on 127.0.0.1:123 (and ::1) only, so that our
    /// server can use port 123 on the LAN interface next to it.
    ///
    /// With `local_stratum = Some(n)` its source is the LOCAL clock fudged
    /// to stratum `n`: it first runs as an orphan (stratum
    /// `orphan_stratum`, refid 127.0.0.1, leap 0) and after about 10 s
    /// synchronizes to LOCAL and serves stratum `n + 1`. With `None` it has
    /// no source and stays an orphan at `orphan_stratum`.
    pub fn loopback_upstream(
        host: &Host,
        local_stratum: Option<u8>,
        orphan_stratum: u8,
    ) -> io::Result<RefNtpd> {
        let mut body = String::new();
        if let Some(n) = local_stratum {
            let _ = write!(
                body,
                "server 127.127.1.0 minpoll 3 maxpoll 3\nfudge 127.127.1.0 stratum {n}\n"
            );
        }
        let _ = write!(
            body,
            "tos orphan {orphan_stratum} orphanwait 1\n\
             interface ignore wildcard\n\
             interface ignore all\n\
             interface listen 127.0.0.1\n\
             interface listen ::1\n"
        );
        let keys = crate::lab::keys_file();
        Self::start(host, "upstream", &keys, &[], &body, "")
    }

    /// Starts a multicast client in `host` listening to `group`, trusting
    /// `trusted` keys of `keys_path`. `extra_conf` is appended verbatim
    /// (e.g. `broadcastdelay 0.004` to skip the calibration volley).
    pub fn multicast_client(
        host: &Host,
        keys_path: &Path,
        trusted: &[u16],
        group: IpAddr,
        extra_conf: &str,
    ) -> io::Result<RefNtpd> {
        Self::start(
            host,
            "client",
            keys_path,
            trusted,
            &client_body(group),
            extra_conf,
        )
    }

    fn start(
        host: &Host,
        role: &str,
        keys_path: &Path,
        trusted: &[u16],
        body: &str,
        extra_conf: &str,
    ) -> io::Result<RefNtpd> {
        let install = Install::locate()?;
        let keys_path = fs::canonicalize(keys_path).map_err(|e| {
            io::Error::new(e.kind(), format!("keys file {}: {e}", keys_path.display()))
        })?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("refntpd-{}-{role}-", host.name()))
            .tempdir()?;
        let dir_path = dir.path().to_owned();
        let conf_path = dir_path.join("ntpd.conf");
        let conf = config_text(
            &format!("{role} for {}", host.name()),
            &keys_path,
            trusted,
            &dir_path.join("ntpd.log"),
            body,
            extra_conf,
        )?;
        fs::write(&conf_path, &conf)?;
        let ntpd = install.ntpd();
        let args = [OsStr::new("-n"), OsStr::new("-c"), conf_path.as_os_str()];
        let child = host.spawn_env(
            &ntpd.to_string_lossy(),
            &args,
            &install.env(),
            &dir_path.join("ntpd.out"),
        )?;
        let me = RefNtpd {
            child,
            host: host.clone(),
            install,
            dir: Some(dir),
            dir_path,
        };
        me.wait_ready()?;
        Ok(me)
    }

    /// Waits until ntpq gets an answer; fails with the daemon's log if it
    /// exits or stays silent.
    fn wait_ready(&self) -> io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !self.child.is_running() {
                return Err(io::Error::other(format!(
                    "ntpd in {} exited at start ({:?}); log:\n{}\n{}",
                    self.host.name(),
                    self.child.exit_status(),
                    self.log(),
                    fs::read_to_string(self.dir_path.join("ntpd.out")).unwrap_or_default()
                )));
            }
            if let Ok(out) = self.ntpq(&["-c", "rv 0 version"])
                && out.contains("version=")
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "ntpd in {} did not answer ntpq within {START_TIMEOUT:?}; log:\n{}",
                    self.host.name(),
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `ntpq ARGS 127.0.0.1` in the daemon's namespace; its stdout, or
    /// an error with its stderr.
    pub fn ntpq(&self, args: &[&str]) -> io::Result<String> {
        let mut all: Vec<&str> = args.to_vec();
        all.push("127.0.0.1");
        let out = self.host.exec_env(
            &self.install.ntpq().to_string_lossy(),
            &all,
            &self.install.env(),
        )?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(io::Error::other(format!(
                "ntpq {} in {}: {}{}",
                args.join(" "),
                self.host.name(),
                stdout,
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// `ntpq -w -pn`, parsed (full remote addresses; hides associations ntpd considers unusable).
    pub fn peers(&self) -> io::Result<Vec<PeerRow>> {
        Ok(parse_peers(&self.ntpq(&["-w", "-pn"])?))
    }

    /// `ntpq -w -n -c lpeers`, parsed (every association).
    pub fn lpeers(&self) -> io::Result<Vec<PeerRow>> {
        Ok(parse_peers(&self.ntpq(&["-w", "-n", "-c", "lpeers"])?))
    }

    /// `ntpq -c "rv 0"`: the system variables.
    pub fn sysvars(&self) -> io::Result<BTreeMap<String, String>> {
        Ok(parse_vars(&self.ntpq(&["-c", "rv 0"])?))
    }

    /// `ntpq -c sysstats`: the packet counters.
    pub fn sysstats(&self) -> io::Result<BTreeMap<String, String>> {
        Ok(parse_vars(&self.ntpq(&["-c", "sysstats"])?))
    }

    /// The daemon's log file so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir_path.join("ntpd.log")).unwrap_or_default()
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Whether the daemon still runs.
    pub fn is_running(&self) -> bool {
        self.child.is_running()
    }

    /// The host it runs in.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Its run directory (`ntpd.conf`, `ntpd.log`, `ntpd.out`).
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after 5 s).
    pub fn stop(self) -> io::Result<()> {
        self.child.stop().map(drop)
    }
}

impl Drop for RefNtpd {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!(
                "refntpd: keeping {} (ntpd.conf, ntpd.log) of the failed test",
                dir.keep().display()
            );
        }
    }
}

/// The part of `ntpd.conf` that makes a multicast (mode 5) server: the
/// LOCAL clock at stratum 1, synchronized by orphan mode, broadcasting to
/// `group` every 2^`poll` s (3..=17) signed with `key_id`.
pub fn server_body(group: IpAddr, key_id: Option<u16>, poll: u8) -> io::Result<String> {
    if !(3..=17).contains(&poll) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("ntpd broadcast poll must be 3..=17 (8 s .. 36 h), not {poll}"),
        ));
    }
    let key = key_id.map(|k| format!(" key {k}")).unwrap_or_default();
    Ok(format!(
        "server 127.127.1.0 minpoll 3 maxpoll 3\n\
         fudge 127.127.1.0 stratum 1\n\
         tos orphan 5 orphanwait 1\n\
         broadcast {group}{key} minpoll {poll}\n"
    ))
}

/// The part of `ntpd.conf` that makes a multicast client of `group`.
pub fn client_body(group: IpAddr) -> String {
    format!("multicastclient {group}\n")
}

/// A whole `ntpd.conf`: `keys_path` with `trusted` keys, clock discipline
/// off (`disable ntp`, `disable kernel`), logging to `log`, then `body` and
/// `extra_conf` verbatim. Refused (see [`check_conf`]) if the result could
/// discipline the clock.
pub fn config_text(
    label: &str,
    keys_path: &Path,
    trusted: &[u16],
    log: &Path,
    body: &str,
    extra_conf: &str,
) -> io::Result<String> {
    let mut conf = format!(
        "# reference ntpd {label} (generated by mcast-tests)\n\
         keys {}\n",
        keys_path.display()
    );
    if !trusted.is_empty() {
        let ids: Vec<String> = trusted.iter().map(u16::to_string).collect();
        let _ = writeln!(conf, "trustedkey {}", ids.join(" "));
    }
    // Never discipline the clock (it is shared with the whole machine).
    conf.push_str("disable ntp\ndisable kernel\n");
    let _ = writeln!(conf, "logfile {}", log.display());
    conf.push_str(body);
    if !extra_conf.is_empty() {
        conf.push_str(extra_conf);
        conf.push('\n');
    }
    check_conf(&conf)?;
    Ok(conf)
}

/// Refuses a configuration that could let ntpd discipline the clock.
pub fn check_conf(conf: &str) -> io::Result<()> {
    let has = |line: &str| conf.lines().any(|l| l.trim() == line);
    let enables = conf.lines().any(|l| {
        let mut words = l.split_whitespace();
        words.next() == Some("enable") && words.any(|w| w == "ntp" || w == "kernel")
    });
    if has("disable ntp") && has("disable kernel") && !enables {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "SAFETY: an ntpd config must have `disable ntp` and `disable kernel` \
             and must not enable them again",
        ))
    }
}

/// One row of `ntpq -p` / `ntpq -c lpeers`.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRow {
    /// Tally code: `' '`, `x`, `.`, `-`, `+`, `#`, `*` or `o`.
    pub tally: char,
    /// Remote address (or name).
    pub remote: String,
    /// Reference id as shown (`LOCAL(0)`, `.MCST.`, an address ...).
    pub refid: String,
    /// Stratum.
    pub stratum: u8,
    /// Association type: `u` unicast/multicast client, `b`
    /// broadcast/multicast, `l` local, `s` symmetric, `m` manycast, `p` pool.
    pub kind: char,
    /// Seconds since the last packet, as printed (`-`, `12`, `5m`, `3h`).
    pub when: String,
    /// Poll interval in seconds.
    pub poll: u32,
    /// Reach register (printed in octal).
    pub reach: u8,
    /// Delay in milliseconds.
    pub delay_ms: f64,
    /// Offset in milliseconds.
    pub offset_ms: f64,
    /// Jitter in milliseconds.
    pub jitter_ms: f64,
}

/// Parses the table of `ntpq -p`/`-c lpeers`; lines that are not rows
/// (headers, messages) are skipped. A remote too long for its column
/// (printed on a line of its own) is joined with the next line.
pub fn parse_peers(text: &str) -> Vec<PeerRow> {
    let mut rows = Vec::new();
    let mut pending: Option<(char, String)> = None;
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with("====") || line.contains("remote") {
            pending = None;
            continue;
        }
        let mut chars = line.chars();
        let tally = chars.next().unwrap_or(' ');
        let rest = chars.as_str();
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.len() == 1
            && let Some(remote) = words.first()
        {
            pending = Some((tally, (*remote).to_owned()));
            continue;
        }
        let (tally, remote, fields) = match (pending.take(), words.len()) {
            (Some((t, r)), 9) => (t, r, words.as_slice()),
            (_, 10) => match words.split_first() {
                Some((r, f)) => (tally, (*r).to_owned(), f),
                None => continue,
            },
            _ => continue,
        };
        if let Some(row) = peer_fields(tally, remote, fields) {
            rows.push(row);
        }
    }
    rows
}

fn peer_fields(tally: char, remote: String, f: &[&str]) -> Option<PeerRow> {
    let [refid, st, t, when, poll, reach, delay, offset, jitter] = f else {
        return None;
    };
    Some(PeerRow {
        tally,
        remote,
        refid: (*refid).to_owned(),
        stratum: st.parse().ok()?,
        kind: t.chars().next()?,
        when: (*when).to_owned(),
        poll: parse_interval(poll)?,
        reach: u8::from_str_radix(reach, 8).ok()?,
        delay_ms: delay.parse().ok()?,
        offset_ms: offset.trim_start_matches('+').parse().ok()?,
        jitter_ms: jitter.parse().ok()?,
    })
}

/// `64`, `17m`, `2h`, `1d` -> seconds.
fn parse_interval(s: &str) -> Option<u32> {
    let (num, mult) = match s.char_indices().last()? {
        (i, 'm') => (s.get(..i)?, 60),
        (i, 'h') => (s.get(..i)?, 3600),
        (i, 'd') => (s.get(..i)?, 86400),
        _ => (s, 1),
    };
    num.parse::<u32>().ok()?.checked_mul(mult)
}

/// Parses ntpq's variable lists: `rv`'s `name=value, name="quoted, text"`
/// (over several lines) and `sysstats`'s `name:   value` lines. Quotes are
/// removed from values.
pub fn parse_vars(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !line.contains('=')
            && let Some((k, v)) = line.split_once(':')
        {
            vars.insert(k.trim().to_owned(), v.trim().to_owned());
            continue;
        }
        for item in split_unquoted_commas(line) {
            if item.contains('"') {
                if let Some((k, v)) = item.split_once('=') {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    vars.insert(k.trim().to_owned(), v.to_owned());
                }
                continue;
            }
            // `associd=0 status=0615 leap_none` holds several pairs and bare
            // words (the status decoded); a timestamp is `hex  date` (the
            // date is dropped) or `(no time)` (kept whole).
            let mut open: Option<(String, String)> = None;
            for word in item.split_whitespace() {
                if let Some((k, v)) = word.split_once('=') {
                    if let Some((k, v)) = open.take() {
                        vars.insert(k, v);
                    }
                    open = Some((k.to_owned(), v.to_owned()));
                } else if let Some((_, v)) = open.as_mut()
                    && v.starts_with('(')
                    && !v.ends_with(')')
                {
                    v.push(' ');
                    v.push_str(word);
                }
            }
            if let Some((k, v)) = open {
                vars.insert(k, v);
            }
        }
    }
    vars
}

fn split_unquoted_commas(line: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.extend(line.get(start..i));
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.extend(line.get(start..));
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ntpq_p_rows() {
        let text = "     remote           refid      st t when poll reach   delay   offset  jitter
==============================================================================
*198.18.0.1      LOCAL(0)         2 b    4    8   16    0.169   -0.008   0.019
 224.0.1.1       .MCST.          16 u    -   64    0    0.000   +0.000   0.000
 198.18.0.3      LOCAL(0)         2 u   12   17m  377    0.176   +0.005   0.004
";
        let rows = parse_peers(text);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].tally, '*');
        assert_eq!(rows[0].remote, "198.18.0.1");
        assert_eq!(rows[0].refid, "LOCAL(0)");
        assert_eq!(rows[0].stratum, 2);
        assert_eq!(rows[0].kind, 'b');
        assert_eq!(rows[0].poll, 8);
        assert_eq!(rows[0].reach, 0o16);
        assert_eq!(rows[0].offset_ms, -0.008);
        assert_eq!(rows[1].when, "-");
        assert_eq!(rows[1].tally, ' ');
        assert_eq!(rows[2].poll, 17 * 60);
        assert_eq!(rows[2].reach, 255);
    }

    #[test]
    fn joins_a_wrapped_remote() {
        let text = " fd00:198:18:1::1
                 LOCAL(0)         2 b    4    8    1    0.169   -0.008   0.019
";
        let rows = parse_peers(text);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].remote, "fd00:198:18:1::1");
        assert_eq!(rows[0].reach, 1);
    }

    #[test]
    fn parses_rv_and_sysstats() {
        let rv = "associd=0 status=0615 leap_none, sync_ntp, 1 event, clock_sync,
version=\"ntpd 4.2.8p15@1.3728-o Wed Sep 23 11:46:38 UTC 2020 (1)\",
processor=\"x86_64\", system=\"Linux/6.1\", leap=00, stratum=2,
refid=LOCAL(0), tc=3, reftime=(no time),
clock=eeae6d73.123c1571  Sun, Nov 23 2025  7:45:23.071, peer=0";
        let v = parse_vars(rv);
        assert_eq!(v["stratum"], "2");
        assert_eq!(v["leap"], "00");
        assert_eq!(v["refid"], "LOCAL(0)");
        assert!(v["version"].contains("4.2.8p15"));
        assert_eq!(v["system"], "Linux/6.1");
        assert_eq!(v["associd"], "0");
        assert_eq!(v["status"], "0615");
        assert_eq!(v["reftime"], "(no time)");
        assert_eq!(v["clock"], "eeae6d73.123c1571");
        assert_eq!(v["peer"], "0");
        let stats = "uptime:                 40\npackets received:       93\n";
        let s = parse_vars(stats);
        assert_eq!(s["uptime"], "40");
        assert_eq!(s["packets received"], "93");
    }

    #[test]
    fn refuses_a_config_that_disciplines() {
        assert!(check_conf("disable ntp\ndisable kernel\n").is_ok());
        assert!(check_conf("disable ntp\n").is_err());
        assert!(check_conf("disable ntp\ndisable kernel\nenable kernel\n").is_err());
    }
}
