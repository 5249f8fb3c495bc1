//! mcast-client: joins NTP multicast groups, verifies each server's
//! broadcasts with that server's key, calibrates the path delay once per
//! server and tracks and selects servers from their broadcasts.
//!
//! A thin shell around the sans-I/O cores of [`mcast_core::client`]:
//! [`cli`] (command line), [`settings`] (client.toml to core
//! configuration), [`daemon`] (sockets, timer, system clock), [`control`]
//! (the control socket), [`check`] (the monitoring plugin's verdict),
//! [`text`] (status table, log lines) and [`metrics`] (Prometheus text). The `analyze` and `listen`
//! diagnostics are [`mcast_diag`]'s; [`cli`] only wraps them.
#![forbid(unsafe_code)]

pub mod calsock;
pub mod check;
pub mod cli;
pub mod clock;
pub mod clockbound;
pub mod coexist;
pub mod control;
pub mod daemon;
pub mod igmp;
pub mod import_ntp_conf;
mod listen;
pub mod metrics;
mod readiness;
pub mod repeats;
pub mod settings;
pub mod state;
pub mod sync_cli;
pub mod text;

use std::fmt::Write as _;

use mcast_config::{ClientConfig, ClockMode};
use mcast_keys::KeyStore;

/// Configuration file used when `-c` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/mcast-ntp/client.toml";

/// A short, human-readable summary of a validated configuration, one item
/// per line, as printed by `mcast-client check-config`.
pub fn summary(config: &ClientConfig, keys: &KeyStore) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: OK", config.file().display());
    let _ = writeln!(out, "keys file: {}", keys.path().display());
    let _ = writeln!(out, "port: {}", config.port);
    if let Some(user) = &config.user {
        let keeps = match config.clock.mode {
            ClockMode::Monitor => "no capabilities",
            ClockMode::Slew | ClockMode::Step => "CAP_SYS_TIME",
        };
        let _ = writeln!(out, "user: {user} (after binding; keeps {keeps})");
    }
    for (i, l) in config.listen.iter().enumerate() {
        let what = if l.broadcast {
            "subnet broadcast"
        } else {
            "group"
        };
        let version = match (l.igmp_version, l.mld_version) {
            (Some(v), _) => format!(", IGMPv{v} (force_igmp_version)"),
            (None, Some(v)) => format!(", MLDv{v} (force_mld_version)"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "listen[{i}]: {what} {} on {}{version}",
            l.group, l.interface
        );
    }
    let _ = writeln!(
        out,
        "group silent after {} intervals of the slowest poll: logged, re-joined, check CRITICAL",
        config.group_silent_intervals
    );
    for (i, s) in config.servers.iter().enumerate() {
        let name = s
            .name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let ids = s.key_ids();
        let signed = s
            .public_key
            .as_ref()
            .map(|pk| format!("Ed25519 public key {}", pk.fingerprint()));
        let auth = if ids.is_empty() {
            signed.clone().map_or_else(
                || "UNAUTHENTICATED".to_owned(),
                |k| format!("{k}, no shared key"),
            )
        } else {
            let each: Vec<String> = ids
                .iter()
                .map(|id| match keys.get(*id) {
                    Some(key) => format!("key {id} ({})", key.key_type()),
                    None => format!("key {id} (not in the keys file)"),
                })
                .collect();
            let macs = each.join(" or ");
            match &signed {
                Some(k) => format!("{k} and {macs}"),
                None => macs,
            }
        };
        let interleave = if s.interleave { ", interleaved" } else { "" };
        let _ = writeln!(out, "server[{i}]: {}{name}, {auth}{interleave}", s.address);
    }
    let _ = writeln!(
        out,
        "discover unlisted servers: {}",
        if config.discover { "on" } else { "off" }
    );
    let c = &config.calibration;
    let source_port = match c.source_port {
        0 => "ephemeral".to_owned(),
        p => p.to_string(),
    };
    let _ = writeln!(
        out,
        "calibration: start within {:?}, {} requests {:?} apart, max round trip {:?}, \
         {} retries, fallback one-way delay {:?}, source port {source_port}",
        c.start_delay_max, c.requests, c.spacing, c.max_round_trip, c.retries, c.fallback_delay
    );
    let s = &config.selection;
    let _ = writeln!(
        out,
        "selection: at least {} agreeing, max root distance {:?}, age out after {} silent \
         intervals",
        s.min_agreeing, s.max_root_distance, s.silent_intervals
    );
    let k = &config.clock;
    let mode = match k.mode {
        ClockMode::Monitor => "monitor (never adjusts the clock)",
        ClockMode::Slew => "slew (never steps)",
        ClockMode::Step if k.slew_only => "step (once at start-up, then slew only)",
        ClockMode::Step => "step",
    };
    let _ = writeln!(
        out,
        "clock: {mode}; step threshold {:?}, stepout {:?}, panic threshold {:?}",
        k.step_threshold, k.stepout, k.panic_threshold
    );
    let _ = writeln!(out, "control socket: {}", config.control_socket.display());
    match config.metrics {
        Some(addr) => {
            let _ = writeln!(out, "metrics: {addr}");
        }
        None => {
            let _ = writeln!(out, "metrics: off");
        }
    }
    out
}
