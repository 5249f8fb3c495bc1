//! `status`: every host's state, from our daemons' control sockets, ntpq
//! and the bridge capture, as the rows of the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};

use mcast_core::client::association::State;
use mcast_core::client::status::ClientStatus;
use serde::{Deserialize, Serialize};

use super::process::{is_running, ntpq};
use super::state::now_unix;
use super::{HostRecord, Kind, LabState, UpOptions, check_name};
use crate::netns::{self, UdpDatagram};
use crate::refntpd;

/// One row of the status table: a server, or one client's view of one
/// server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `h<i>`.
    pub host: String,
    /// `server` or `client`.
    pub role: String,
    /// `mcast-server`, `mcast-client` or `ntpd 4.2.8p15`.
    pub program: String,
    /// The host's address.
    pub address: Ipv4Addr,
    /// For a client row: the server this row is about.
    pub server: Option<Ipv4Addr>,
    /// ntpq's `t`: `b` broadcast client, `u` unicast client, `-` nothing
    /// yet, `M` multicast server.
    pub t: String,
    /// Ours: `listening`, `calibrating`, `tracking`; ntpd: `unicast` (t =
    /// u: its calibration volley, or polling by unicast), `broadcast`, or
    /// `no association`; servers: `sending` or `silent`; `exited` when the
    /// process is gone.
    pub mode: String,
    /// Ours: tracking with the fallback delay after calibration failed.
    pub fallback: bool,
    /// Reach register.
    pub reach: Option<u8>,
    /// Clients: unicast requests the program says it sent to this server
    /// (ours: `unicast_sent`; ntpd: the association's `sent`). Our
    /// servers: replies sent.
    pub unicast_sent: Option<u64>,
    /// The same on the wire, counted in the bridge capture: clients'
    /// mode-3 requests to this server, servers' mode-4 replies.
    pub wire: u64,
    /// Offset, ms.
    pub offset_ms: Option<f64>,
    /// Whether the process runs.
    pub running: bool,
    /// Calibration result, the servers' unicast pollers, or why the
    /// process exited.
    pub note: String,
}

/// What `status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The lab's name.
    pub lab: String,
    /// Seconds since `up`.
    pub up_s: u64,
    /// What was asked for.
    pub options: UpOptions,
    /// Whether `up` finished.
    pub complete: bool,
    /// Hosts.
    pub hosts: usize,
    /// The switch namespace.
    pub switch_ns: String,
    /// The rows, servers first.
    pub rows: Vec<Row>,
}

/// Unicast NTP packets on the bridge, by (source, destination, mode).
#[derive(Debug, Default)]
struct Wire(BTreeMap<(IpAddr, IpAddr, u8), u64>);

impl Wire {
    fn from_packets(packets: &[UdpDatagram]) -> Wire {
        let mut map = BTreeMap::new();
        for p in packets {
            if p.payload.len() < 48 {
                continue;
            }
            let mode = p.payload.first().map_or(0, |b| b & 7);
            *map.entry((p.src.ip(), p.dst.ip(), mode)).or_insert(0) += 1;
        }
        Wire(map)
    }

    /// Mode-3 requests from `client` to `server`.
    fn requests(&self, client: Ipv4Addr, server: Ipv4Addr) -> u64 {
        self.0
            .get(&(IpAddr::V4(client), IpAddr::V4(server), 3))
            .copied()
            .unwrap_or(0)
    }

    /// Mode-4 replies from `server` to anyone.
    fn replies(&self, server: Ipv4Addr) -> u64 {
        self.0
            .iter()
            .filter(|((src, _, mode), _)| *src == IpAddr::V4(server) && *mode == 4)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Reads every host's state: the rows of the table.
pub fn status(name: &str) -> Result<Report, String> {
    check_name(name)?;
    let state = LabState::load(name)?;
    let packets = netns::read_growing_pcap_udp(&state.pcap).unwrap_or_default();
    let wire = Wire::from_packets(&packets);
    let servers: Vec<Ipv4Addr> = state.servers().map(|s| s.addr).collect();
    let mut rows = Vec::new();
    for h in &state.hosts {
        let running = h.process.as_ref().is_some_and(is_running);
        let base = Row {
            host: h.name.clone(),
            role: h.kind.role().into(),
            program: h.kind.program(),
            address: h.addr,
            server: None,
            t: "-".into(),
            mode: "-".into(),
            fallback: false,
            reach: None,
            unicast_sent: None,
            wire: 0,
            offset_ms: None,
            running,
            note: String::new(),
        };
        if !running {
            let note = if h.process.is_none() {
                "not started".to_owned()
            } else {
                exit_reason(h)
            };
            let mode = if h.process.is_none() { "-" } else { "exited" };
            if h.kind.is_server() {
                rows.push(Row {
                    mode: mode.into(),
                    wire: wire.replies(h.addr),
                    note,
                    ..base
                });
            } else {
                for &s in &servers {
                    rows.push(Row {
                        server: Some(s),
                        mode: mode.into(),
                        wire: wire.requests(h.addr, s),
                        note: note.clone(),
                        ..base.clone()
                    });
                }
            }
            continue;
        }
        match h.kind {
            Kind::OurServer => rows.push(our_server_row(h, base, &wire)),
            Kind::RefServer => rows.push(ref_server_row(&state, h, base, &wire)),
            Kind::OurClient => rows.extend(our_client_rows(h, &base, &servers, &wire)),
            Kind::RefClient => rows.extend(ref_client_rows(&state, h, &base, &servers, &wire)),
        }
    }
    Ok(Report {
        lab: state.name.clone(),
        up_s: now_unix().saturating_sub(state.created_unix_s),
        options: state.options.clone(),
        complete: state.complete,
        hosts: state.hosts.len(),
        switch_ns: state.switch_ns.clone(),
        rows,
    })
}

/// Why a process is gone: the lines of its logs that say so (ntpd's
/// assertion failures), else the last line; without syslog-style prefixes
/// and each once (ntpd writes them to its log file and to stderr).
fn exit_reason(h: &HostRecord) -> String {
    let mut text = fs::read_to_string(&h.log).unwrap_or_default();
    if h.out != h.log {
        text.push_str(&fs::read_to_string(&h.out).unwrap_or_default());
    }
    let messages: Vec<&str> = text
        .lines()
        .map(|l| l.split_once("]: ").map_or(l, |(_, m)| m).trim())
        .filter(|l| !l.is_empty())
        .collect();
    let mut telling: Vec<&str> = Vec::new();
    for m in &messages {
        let l = m.to_ascii_lowercase();
        let says = [
            "insist",
            "assertion",
            "require",
            "error",
            "exiting",
            "fatal",
        ]
        .iter()
        .any(|w| l.contains(w));
        if says && !telling.contains(m) {
            telling.push(m);
        }
    }
    let picked = if telling.is_empty() {
        messages.last().copied().unwrap_or_default().to_owned()
    } else {
        telling.join(" | ")
    };
    format!("exited: {picked}")
}

fn our_server_row(h: &HostRecord, base: Row, wire: &Wire) -> Row {
    let socket = h.socket.clone().unwrap_or_default();
    let status = mcast_sys::control_request(&socket, "status")
        .map_err(|e| e.to_string())
        .and_then(|t| {
            serde_json::from_str::<mcast_core::server::status::Status>(&t)
                .map_err(|e| e.to_string())
        });
    let wire_replies = wire.replies(h.addr);
    match status {
        Ok(s) => {
            let sent: u64 = s.destinations.iter().map(|d| d.sent).sum();
            let mut note = format!("{sent} broadcasts");
            if !s.unicast_polling_clients.is_empty() {
                let who: Vec<String> = s
                    .unicast_polling_clients
                    .iter()
                    .map(|p| {
                        format!(
                            "{} ({} requests, every {:.0} s)",
                            p.address, p.requests, p.average_interval_s
                        )
                    })
                    .collect();
                let _ = write!(note, "; polling by unicast: {}", who.join(", "));
            }
            let (mode, why) = if s.synchronized {
                ("sending", String::new())
            } else {
                (
                    "silent",
                    s.unsynchronized
                        .map(|r| format!("; {}", mcast_server::text::unsync_words(&r)))
                        .unwrap_or_default(),
                )
            };
            Row {
                t: "M".into(),
                mode: mode.into(),
                unicast_sent: Some(s.counters.replies_sent),
                wire: wire_replies,
                note: note + &why,
                ..base
            }
        }
        Err(e) => Row {
            mode: "?".into(),
            wire: wire_replies,
            note: format!("status: {e}"),
            ..base
        },
    }
}

fn ref_server_row(state: &LabState, h: &HostRecord, base: Row, wire: &Wire) -> Row {
    let wire_replies = wire.replies(h.addr);
    match ntpq(state, &h.ns, &["-c", "rv 0 leap,stratum"]) {
        Ok(text) => {
            let vars = refntpd::parse_vars(&text);
            let leap = vars.get("leap").map_or("?", String::as_str);
            let (mode, note) = if leap == "11" || leap == "3" {
                (
                    "silent",
                    "unsynchronized (LOCAL clock not yet selected): no broadcasts".to_owned(),
                )
            } else {
                (
                    "sending",
                    format!(
                        "stratum {}",
                        vars.get("stratum").map_or("?", String::as_str)
                    ),
                )
            };
            Row {
                t: "M".into(),
                mode: mode.into(),
                wire: wire_replies,
                note,
                ..base
            }
        }
        Err(e) => Row {
            mode: "?".into(),
            wire: wire_replies,
            note: e,
            ..base
        },
    }
}

fn our_client_rows(h: &HostRecord, base: &Row, servers: &[Ipv4Addr], wire: &Wire) -> Vec<Row> {
    let socket = h.socket.clone().unwrap_or_default();
    let status = mcast_sys::control_request(&socket, "status")
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<ClientStatus>(&t).map_err(|e| e.to_string()));
    servers
        .iter()
        .map(|&s| {
            let row = Row {
                server: Some(s),
                wire: wire.requests(h.addr, s),
                ..base.clone()
            };
            let st = match &status {
                Ok(st) => st,
                Err(e) => {
                    return Row {
                        mode: "?".into(),
                        note: format!("status: {e}"),
                        ..row
                    };
                }
            };
            let Some(r) = st.servers.iter().find(|r| r.remote == IpAddr::V4(s)) else {
                return Row {
                    mode: "not configured".into(),
                    ..row
                };
            };
            let mode = match r.state {
                State::Listening => "listening",
                State::Calibrating => "calibrating",
                State::Tracking => "tracking",
                State::Untrusted => "untrusted",
            };
            Row {
                t: r.t.to_string(),
                mode: mode.into(),
                fallback: r.state == State::Tracking && r.calibration.is_fallback(),
                reach: Some(r.reach),
                unicast_sent: Some(r.unicast_sent),
                offset_ms: r.offset_ms,
                note: mcast_client::text::calibration_words(&r.calibration),
                ..row
            }
        })
        .collect()
}

/// ntpd's association ids, from `ntpq -c lassociations` (`associations`
/// leaves out a volley association that never got a reply).
fn parse_assids(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.next()?.parse::<u32>().ok()?;
            w.next()?.parse::<u32>().ok()
        })
        .collect()
}

/// Each association's variables, from `ntpq -c "rv ASSID srcadr,..."`
/// run for several associations at once: ntpq prints no association id
/// when given a variable list, so a block starts at each `srcadr=`.
fn parse_rv_blocks(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with("srcadr=") {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    blocks.iter().map(|b| refntpd::parse_vars(b)).collect()
}

/// ntpq's `t` for a peer's `hmode`.
fn hmode_t(hmode: &str) -> &'static str {
    match hmode {
        "1" | "2" => "s",
        "3" => "u",
        "5" => "M",
        "6" => "b",
        _ => "?",
    }
}

fn ref_client_rows(
    state: &LabState,
    h: &HostRecord,
    base: &Row,
    servers: &[Ipv4Addr],
    wire: &Wire,
) -> Vec<Row> {
    let peers = ntpq(state, &h.ns, &["-n", "-c", "lassociations"]).and_then(|text| {
        let ids = parse_assids(&text);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let cmds: Vec<String> = ids
            .iter()
            .map(|id| format!("rv {id} srcadr,hmode,reach,unreach,hpoll,offset,sent"))
            .collect();
        let mut args: Vec<&str> = Vec::new();
        for c in &cmds {
            args.extend(["-c", c.as_str()]);
        }
        ntpq(state, &h.ns, &args).map(|t| parse_rv_blocks(&t))
    });
    servers
        .iter()
        .map(|&s| {
            let row = Row {
                server: Some(s),
                wire: wire.requests(h.addr, s),
                ..base.clone()
            };
            let peers = match &peers {
                Ok(p) => p,
                Err(e) => {
                    return Row {
                        mode: "?".into(),
                        note: e.clone(),
                        ..row
                    };
                }
            };
            let Some(v) = peers
                .iter()
                .find(|v| v.get("srcadr").is_some_and(|a| a == &s.to_string()))
            else {
                return Row {
                    mode: "no association".into(),
                    ..row
                };
            };
            let t = hmode_t(v.get("hmode").map_or("", String::as_str));
            let mode = match t {
                "u" => "unicast",
                "b" => "broadcast",
                other => other,
            };
            let reach = v.get("reach").and_then(|r| u8::from_str_radix(r, 8).ok());
            let note = if t == "u" {
                let every = v
                    .get("hpoll")
                    .and_then(|p| p.parse::<u32>().ok())
                    .and_then(|p| 1u64.checked_shl(p))
                    .map_or_else(|| "?".to_owned(), |s| s.to_string());
                format!(
                    "client mode (calibration volley): a request every {every} s, {} unanswered polls",
                    v.get("unreach").map_or("?", String::as_str)
                )
            } else {
                String::new()
            };
            Row {
                t: t.into(),
                mode: mode.into(),
                reach,
                note,
                unicast_sent: v.get("sent").and_then(|x| x.parse().ok()),
                // ntpd shows 0 for an association without a sample.
                offset_ms: v
                    .get("offset")
                    .and_then(|x| x.parse().ok())
                    .filter(|_| reach != Some(0)),
                ..row
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ntpq_association_output_is_parsed() {
        let as_text = "
ind assid status  conf reach auth condition  last_event cnt
===========================================================
  1 51234  8011   yes    no  none    reject    mobilize  1
  2 51235  f63a   yes   yes   ok   sys.peer   sys_peer  3
";
        assert_eq!(parse_assids(as_text), [51234, 51235]);
        // As ntpq 4.2.8p15 prints two `rv ASSID srcadr,...` in one run.
        let rv = "srcadr=198.18.0.1, hmode=3, reach=000, offset=0.000, sent=9
srcadr=198.18.0.2, hmode=6, reach=377, offset=-0.021,
sent=5
";
        let blocks = parse_rv_blocks(rv);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0]["srcadr"], "198.18.0.1");
        assert_eq!(blocks[0]["sent"], "9");
        assert_eq!(hmode_t(&blocks[0]["hmode"]), "u");
        assert_eq!(hmode_t(&blocks[1]["hmode"]), "b");
        assert_eq!(blocks[1]["offset"], "-0.021");
    }

    #[test]
    fn wire_counts_requests_and_replies() {
        let pkt = |src: &str, dst: &str, mode: u8| UdpDatagram {
            time: Duration::ZERO,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            payload: {
                let mut p = vec![0u8; 48];
                p[0] = 0x20 | mode;
                p
            },
        };
        let w = Wire::from_packets(&[
            pkt("198.18.0.3:123", "198.18.0.1:123", 3),
            pkt("198.18.0.3:123", "198.18.0.1:123", 3),
            pkt("198.18.0.1:123", "198.18.0.3:123", 4),
            pkt("198.18.0.4:40000", "198.18.0.1:123", 3),
        ]);
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(w.requests(a("198.18.0.3"), a("198.18.0.1")), 2);
        assert_eq!(w.requests(a("198.18.0.4"), a("198.18.0.1")), 1);
        assert_eq!(w.requests(a("198.18.0.4"), a("198.18.0.2")), 0);
        assert_eq!(w.replies(a("198.18.0.1")), 1);
    }
}
