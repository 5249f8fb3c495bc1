//! mcast-server: sends authenticated NTP broadcasts (mode 5) to multicast
//! groups and answers clients' calibration requests.
//!
//! For now this crate holds the command line ([`cli`]) and the
//! configuration summary ([`summary`]); the broadcaster and the responder
//! come with issue 3.
#![forbid(unsafe_code)]

pub mod cli;
pub mod control;
pub mod daemon;
pub mod import_ntp_conf;
pub mod metrics;
pub mod settings;
pub mod text;

use std::fmt::Write as _;

use mcast_config::{ServerConfig, TimeSourceKind, Unsynchronized};
use mcast_keys::KeyStore;

/// Configuration file used when `-c` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/mcast-ntp/server.toml";

/// A short, human-readable summary of a validated configuration, one item
/// per line, as printed by `mcast-server check-config`.
pub fn summary(config: &ServerConfig, keys: &KeyStore) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: OK", config.file().display());
    let _ = writeln!(out, "keys file: {}", keys.path().display());
    let _ = writeln!(out, "port: {}", config.port);

    let ts = &config.time_source;
    let when_unsync = match ts.unsynchronized {
        Unsynchronized::Silent => "silent",
        Unsynchronized::SendAlarm => "send with leap alarm",
    };
    let source = match ts.kind {
        TimeSourceKind::Upstream => format!(
            "upstream daemon {}, queried every {:?}",
            ts.upstream, ts.query_interval
        ),
        TimeSourceKind::Kernel | TimeSourceKind::Local => {
            let kind = if ts.kind == TimeSourceKind::Kernel {
                "kernel sync state"
            } else {
                "local clock (lab)"
            };
            let stratum = ts.stratum.map_or_else(|| "?".to_owned(), |s| s.to_string());
            let refid = ts.refid.map_or_else(|| "?".to_owned(), |r| r.to_string());
            format!("{kind}, stratum {stratum}, refid {refid}")
        }
    };
    let _ = writeln!(
        out,
        "time source: {source}; when unsynchronized: {when_unsync}"
    );

    if config.destinations.is_empty() {
        let _ = writeln!(out, "destinations: none (calibration responder only)");
    }
    for (i, d) in config.destinations.iter().enumerate() {
        let what = if d.broadcast {
            "subnet broadcast"
        } else {
            "group"
        };
        let auth = match d.key {
            Some(id) => match keys.get(id) {
                Some(key) => format!("key {id} ({})", key.key_type()),
                None => format!("key {id} (not in the keys file)"),
            },
            None => "UNAUTHENTICATED".to_owned(),
        };
        let auth = match (d.next_key, d.next_key_from) {
            (Some(n), Some(from)) => {
                let from = jiff::Timestamp::try_from(from)
                    .map_or_else(|_| format!("{from:?}"), |t| t.to_string());
                format!("{auth}, then key {n} from {from}")
            }
            _ => auth,
        };
        let _ = writeln!(
            out,
            "destination[{i}]: {what} {} port {} on {}, ttl {}, poll {} ({:?}), {auth}, \
             multicast-loop {}, interleave {}",
            d.address,
            config.port,
            d.interface,
            d.ttl,
            d.poll,
            d.poll.interval(),
            on_off(d.multicast_loop),
            on_off(d.interleave),
        );
    }

    let r = &config.responder;
    if r.enabled {
        let auth = if r.require_auth {
            "authenticated requests only"
        } else {
            "also unauthenticated requests"
        };
        let workers = match r.workers {
            Some(n) => format!("{n} receive threads"),
            None => format!(
                "one receive thread per CPU (at most {})",
                mcast_config::Responder::AUTO_WORKERS_MAX
            ),
        };
        let _ = writeln!(out, "responder: on, {auth}, {workers}");
    } else {
        let _ = writeln!(out, "responder: off (clients use their fallback delay)");
    }
    let rl = &config.rate_limit;
    let _ = writeln!(
        out,
        "rate limit: min interval {:?}, average interval {:?}, {} sources remembered, KoD {}",
        rl.min_interval,
        rl.average_interval(),
        rl.mru_size,
        on_off(rl.kod)
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
    if let Some(user) = &config.user {
        let _ = writeln!(out, "user: {user}");
    }
    out
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}
