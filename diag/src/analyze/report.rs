//! The analysis result ([`Report`], serialized as is by `--json`) and its
//! rendering as text tables.
//!
//! Times in the JSON are seconds (`*_s`; absolute ones `*_unix_s` since the
//! Unix epoch, as the capturing host's clock said). Bytes are IP packet
//! bytes (IP header, UDP header and payload), the same whatever the link
//! layer.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::capture::Format;

/// Serializes a duration as seconds (f64).
fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Serializes an optional duration as seconds or null.
fn opt_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Everything `mcast-client analyze` found in one capture.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The file and its frames.
    pub capture: CaptureInfo,
    /// The NTP port looked at (`--port`).
    pub port: u16,
    /// What the frames held.
    pub counts: Counts,
    /// NTP packets per mode, all hosts together.
    pub modes: Vec<ModeCount>,
    /// Hosts (and groups) that sent or were sent NTP packets, by address.
    pub hosts: Vec<HostReport>,
    /// Traffic from one address to another, by source then destination.
    pub pairs: Vec<PairReport>,
    /// Whether any mode-5 (broadcast/multicast) packet was captured: the
    /// condition for flagging unicast pollers.
    pub broadcasts_seen: bool,
    /// Multicast clients polling a server by unicast (see
    /// [`super::VOLLEY_MAX_REQUESTS`] and [`super::VOLLEY_WINDOW`]).
    pub unicast_pollers: Vec<UnicastPoller>,
    /// Kiss-o'-Death packets, per sender, receiver and code.
    pub kods: Vec<KodReport>,
    /// Crypto-NAKs (key id 0, no digest), per sender and receiver.
    pub crypto_naks: Vec<NakReport>,
    /// MAC verdicts, when a keys file was given.
    pub mac: Option<MacReport>,
    /// Senders with the most packets, most first.
    pub top_by_packets: Vec<Talker>,
    /// Senders with the most bytes, most first.
    pub top_by_bytes: Vec<Talker>,
}

/// The capture file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CaptureInfo {
    /// The file, as given.
    pub file: Option<String>,
    /// pcap or pcapng.
    pub format: Option<Format>,
    /// Link types of the frames.
    pub link_types: Vec<String>,
    /// Frames read.
    pub frames: u64,
    /// Time of the first frame.
    #[serde(serialize_with = "opt_secs")]
    pub first_unix_s: Option<Duration>,
    /// Time of the last frame.
    #[serde(serialize_with = "opt_secs")]
    pub last_unix_s: Option<Duration>,
    /// From the first frame to the last.
    #[serde(serialize_with = "secs")]
    pub duration_s: Duration,
    /// Why reading stopped before the end of the file, if it did.
    pub stopped_early: Option<String>,
}

/// What the frames held.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Frames read.
    pub frames: u64,
    /// UDP datagrams to or from the NTP port.
    pub ntp_packets: u64,
    /// Their IP bytes.
    pub ntp_bytes: u64,
    /// NTP-port datagrams that are not NTP packets (counted, not decoded).
    pub malformed: u64,
    /// Why they did not decode, with counts.
    pub malformed_reasons: Vec<Reason>,
    /// UDP datagrams on other ports.
    pub other_udp: u64,
    /// Frames that are not UDP (TCP, ICMP, ARP ...).
    pub not_udp: u64,
    /// First fragments of fragmented NTP-port datagrams (not reassembled,
    /// so not decoded).
    pub fragmented_ntp: u64,
    /// Later IP fragments (no UDP header, so skipped).
    pub later_fragments: u64,
    /// Frames whose headers do not parse (truncated, garbage).
    pub undecodable: u64,
    /// Frames of a link type the analyzer does not read.
    pub unsupported_link_type: u64,
}

/// A reason and how often it was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// What was wrong.
    pub reason: String,
    /// How often.
    pub count: u64,
}

/// Packets of one NTP mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModeCount {
    /// The mode number (1..=7).
    pub mode: u8,
    /// Its name: symmetric-active, symmetric-passive, client, server,
    /// broadcast, control, private.
    pub name: &'static str,
    /// Packets.
    pub packets: u64,
}

/// The name of an NTP mode.
pub fn mode_name(mode: u8) -> &'static str {
    match mode {
        1 => "symmetric-active",
        2 => "symmetric-passive",
        3 => "client",
        4 => "server",
        5 => "broadcast",
        6 => "control",
        7 => "private",
        _ => "reserved",
    }
}

/// One address's traffic.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    /// The address.
    pub address: IpAddr,
    /// `host`, `group` (a multicast address) or `broadcast` (the limited
    /// broadcast address, or an address that only ever received
    /// broadcasts).
    pub kind: &'static str,
    /// NTP-port datagrams sent.
    pub sent_packets: u64,
    /// Their IP bytes.
    pub sent_bytes: u64,
    /// NTP-port datagrams addressed to it.
    pub received_packets: u64,
    /// Their IP bytes.
    pub received_bytes: u64,
    /// Packets sent per mode.
    pub modes_sent: Vec<ModeCount>,
    /// Key ids in the MACs it sent, with packet counts.
    pub keys_used: Vec<KeyUse>,
    /// Packets it sent without any MAC.
    pub sent_without_mac: u64,
    /// Malformed datagrams it sent.
    pub malformed_sent: u64,
}

/// Packets sent with one key id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyUse {
    /// The key id as sent.
    pub key_id: u32,
    /// Packets.
    pub packets: u64,
}

/// Traffic from one address to another.
#[derive(Debug, Clone, Serialize)]
pub struct PairReport {
    /// Sender.
    pub source: IpAddr,
    /// Destination (a host, group or broadcast address).
    pub destination: IpAddr,
    /// Datagrams.
    pub packets: u64,
    /// Their IP bytes.
    pub bytes: u64,
    /// Per mode.
    pub modes: Vec<ModeCount>,
    /// Malformed datagrams among them.
    pub malformed: u64,
    /// Source ports (at most [`super::PORTS_LISTED`], lowest first).
    pub source_ports: Vec<u16>,
    /// How many distinct source ports (counted up to 1024).
    pub distinct_source_ports: usize,
    /// Destination ports (at most [`super::PORTS_LISTED`], lowest first).
    pub destination_ports: Vec<u16>,
    /// How many distinct destination ports (counted up to 1024).
    pub distinct_destination_ports: usize,
    /// The poll field (log2 s) the packets carried, with counts.
    pub poll_field: Vec<PollCount>,
    /// Intervals between consecutive packets, in log2 buckets.
    pub intervals: Vec<Bucket>,
    /// First packet.
    #[serde(serialize_with = "secs")]
    pub first_unix_s: Duration,
    /// Last packet.
    #[serde(serialize_with = "secs")]
    pub last_unix_s: Duration,
}

/// Packets carrying one poll exponent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PollCount {
    /// The poll field, log2 seconds.
    pub log2: i8,
    /// Packets.
    pub packets: u64,
}

/// Intervals whose base-2 logarithm rounds to `log2`: the bucket `2^n`
/// holds intervals from `2^(n-0.5)` to `2^(n+0.5)` seconds, so a poll of
/// 2^6 = 64 s with jitter lands in bucket 6, as ntpd reports polls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// n of 2^n seconds.
    pub log2: i8,
    /// Intervals in the bucket.
    pub count: u64,
    /// Their mean.
    #[serde(serialize_with = "secs")]
    pub mean_s: Duration,
}

/// A multicast client that polls a server by unicast: see
/// [`super::VOLLEY_MAX_REQUESTS`] and [`super::VOLLEY_WINDOW`].
#[derive(Debug, Clone, Serialize)]
pub struct UnicastPoller {
    /// The client.
    pub client: IpAddr,
    /// The server it polls.
    pub server: IpAddr,
    /// Mode-3 requests it sent to the server.
    pub requests: u64,
    /// Mode-4 packets (replies and KoDs) the server sent it.
    pub replies: u64,
    /// First request.
    #[serde(serialize_with = "secs")]
    pub first_unix_s: Duration,
    /// Last request.
    #[serde(serialize_with = "secs")]
    pub last_unix_s: Duration,
    /// From the first request to the last.
    #[serde(serialize_with = "secs")]
    pub span_s: Duration,
    /// The most common interval between its requests (bucket and mean):
    /// its polling interval.
    pub poll_interval: Option<Bucket>,
    /// The mean interval over all its requests.
    #[serde(serialize_with = "opt_secs")]
    pub mean_interval_s: Option<Duration>,
    /// Why it is flagged.
    pub reason: String,
}

/// Kiss-o'-Death packets from one sender to one receiver with one code.
#[derive(Debug, Clone, Serialize)]
pub struct KodReport {
    /// The server that sent them.
    pub from: IpAddr,
    /// The client they were sent to.
    pub to: IpAddr,
    /// The kiss code (RATE, DENY, RSTR, X...).
    pub code: String,
    /// Packets.
    pub packets: u64,
    /// Of which carried a MAC.
    pub with_mac: u64,
    /// First one.
    #[serde(serialize_with = "secs")]
    pub first_unix_s: Duration,
    /// Last one.
    #[serde(serialize_with = "secs")]
    pub last_unix_s: Duration,
}

/// Crypto-NAKs from one sender to one receiver.
#[derive(Debug, Clone, Serialize)]
pub struct NakReport {
    /// The sender (a server refusing a request's MAC).
    pub from: IpAddr,
    /// The receiver.
    pub to: IpAddr,
    /// Packets.
    pub packets: u64,
}

/// MAC verdicts with a keys file.
#[derive(Debug, Clone, Serialize)]
pub struct MacReport {
    /// The keys file.
    pub keys_file: String,
    /// One row per sender and key id, by sender then key id.
    pub rows: Vec<MacRow>,
}

/// MAC verdicts for one sender and one key id (as sent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MacRow {
    /// The sender.
    pub source: Option<IpAddr>,
    /// The key id on the wire.
    pub key_id: u32,
    /// MACs that verified (and whose source the key allows).
    pub ok: u64,
    /// MACs that do not verify.
    pub bad_mac: u64,
    /// Digests of the wrong length for the key's type.
    pub bad_length: u64,
    /// Key ids not in the keys file.
    pub unknown_key: u64,
    /// Right MAC, but the keys file does not allow this source the key.
    pub source_not_allowed: u64,
}

/// A sender and its totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Talker {
    /// The sender.
    pub address: IpAddr,
    /// Datagrams sent.
    pub packets: u64,
    /// IP bytes sent.
    pub bytes: u64,
}

impl Report {
    /// The readable text tables `mcast-client analyze` prints.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let origin = self.capture.first_unix_s.unwrap_or_default();
        self.write_summary(&mut o);
        self.write_hosts(&mut o);
        self.write_pairs(&mut o, origin);
        self.write_pollers(&mut o, origin);
        self.write_kods(&mut o, origin);
        self.write_mac(&mut o);
        self.write_top(&mut o);
        o
    }

    fn write_summary(&self, o: &mut String) {
        let c = &self.capture;
        let file = c.file.as_deref().unwrap_or("(capture)");
        let format = c.format.map(|f| format!("{f}, ")).unwrap_or_default();
        let _ = writeln!(
            o,
            "{file}: {format}{}, {} frames",
            if c.link_types.is_empty() {
                "no link type".to_owned()
            } else {
                c.link_types.join(" + ")
            },
            c.frames
        );
        if let (Some(first), Some(last)) = (c.first_unix_s, c.last_unix_s) {
            let _ = writeln!(
                o,
                "time: {} to {} ({}); times below are from the first frame",
                utc(first),
                utc(last),
                human(c.duration_s)
            );
        }
        if let Some(why) = &c.stopped_early {
            let _ = writeln!(o, "WARNING: read stopped early: {why}");
        }
        let n = &self.counts;
        let _ = writeln!(
            o,
            "NTP (UDP port {}): {} packets, {} bytes; {}",
            self.port,
            n.ntp_packets,
            n.ntp_bytes,
            if self.modes.is_empty() {
                "no decodable packet".to_owned()
            } else {
                self.modes
                    .iter()
                    .map(|m| format!("mode {} {} {}", m.mode, m.name, m.packets))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        let mut skipped = Vec::new();
        for (count, what) in [
            (n.malformed, "malformed NTP"),
            (n.fragmented_ntp, "fragmented NTP (not reassembled)"),
            (n.later_fragments, "later IP fragments"),
            (n.other_udp, "other UDP"),
            (n.not_udp, "not UDP"),
            (n.undecodable, "undecodable"),
            (n.unsupported_link_type, "unsupported link type"),
        ] {
            if count > 0 {
                skipped.push(format!("{count} {what}"));
            }
        }
        if !skipped.is_empty() {
            let _ = writeln!(o, "also: {}", skipped.join(", "));
        }
        for r in &n.malformed_reasons {
            let _ = writeln!(o, "  malformed: {} x{}", r.reason, r.count);
        }
    }

    fn write_hosts(&self, o: &mut String) {
        let _ = writeln!(o, "\nhosts");
        if self.hosts.is_empty() {
            let _ = writeln!(o, "  none");
            return;
        }
        let mut t = Table::new(&[
            ("address", Align::Left),
            ("kind", Align::Left),
            ("sent", Align::Right),
            ("bytes", Align::Right),
            ("recv", Align::Right),
            ("bytes", Align::Right),
            ("modes sent", Align::Left),
            ("keys sent", Align::Left),
        ]);
        for h in &self.hosts {
            let mut keys: Vec<String> = h
                .keys_used
                .iter()
                .map(|k| format!("{}:{}", k.key_id, k.packets))
                .collect();
            if h.sent_without_mac > 0 {
                keys.push(format!("none:{}", h.sent_without_mac));
            }
            t.row(vec![
                h.address.to_string(),
                h.kind.to_owned(),
                h.sent_packets.to_string(),
                h.sent_bytes.to_string(),
                h.received_packets.to_string(),
                h.received_bytes.to_string(),
                modes_short(&h.modes_sent, h.malformed_sent),
                dash_if_empty(keys.join(" ")),
            ]);
        }
        t.write(o);
    }

    fn write_pairs(&self, o: &mut String, origin: Duration) {
        let _ = writeln!(
            o,
            "\nhost pairs (intervals between packets: 2^n s buckets, count)"
        );
        if self.pairs.is_empty() {
            let _ = writeln!(o, "  none");
            return;
        }
        let mut t = Table::new(&[
            ("source", Align::Left),
            ("destination", Align::Left),
            ("ports", Align::Left),
            ("pkts", Align::Right),
            ("bytes", Align::Right),
            ("modes", Align::Left),
            ("poll", Align::Left),
            ("first", Align::Right),
            ("last", Align::Right),
            ("intervals", Align::Left),
        ]);
        for p in &self.pairs {
            t.row(vec![
                p.source.to_string(),
                p.destination.to_string(),
                format!(
                    "{}>{}",
                    ports(&p.source_ports, p.distinct_source_ports),
                    ports(&p.destination_ports, p.distinct_destination_ports)
                ),
                p.packets.to_string(),
                p.bytes.to_string(),
                modes_short(&p.modes, p.malformed),
                dash_if_empty(
                    p.poll_field
                        .iter()
                        .map(|c| format!("{}:{}", c.log2, c.packets))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                offset(p.first_unix_s, origin),
                offset(p.last_unix_s, origin),
                dash_if_empty(
                    p.intervals
                        .iter()
                        .map(|b| format!("2^{}:{}", b.log2, b.count))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            ]);
        }
        t.write(o);
    }

    fn write_pollers(&self, o: &mut String, origin: Duration) {
        let _ = writeln!(o, "\nmulticast clients polling by unicast");
        if !self.broadcasts_seen {
            let _ = writeln!(
                o,
                "  not checked: the capture holds no broadcast (mode 5) packet"
            );
            return;
        }
        if self.unicast_pollers.is_empty() {
            let _ = writeln!(
                o,
                "  none (every client sent at most {} requests per server within {} s)",
                super::VOLLEY_MAX_REQUESTS,
                super::VOLLEY_WINDOW.as_secs()
            );
            return;
        }
        let mut t = Table::new(&[
            ("client", Align::Left),
            ("server", Align::Left),
            ("requests", Align::Right),
            ("replies", Align::Right),
            ("first", Align::Right),
            ("last", Align::Right),
            ("poll interval", Align::Left),
            ("why flagged", Align::Left),
        ]);
        for p in &self.unicast_pollers {
            let interval = match &p.poll_interval {
                Some(b) => format!("{} (2^{})", human(b.mean_s), b.log2),
                None => "-".into(),
            };
            t.row(vec![
                p.client.to_string(),
                p.server.to_string(),
                p.requests.to_string(),
                p.replies.to_string(),
                offset(p.first_unix_s, origin),
                offset(p.last_unix_s, origin),
                interval,
                p.reason.clone(),
            ]);
        }
        t.write(o);
    }

    fn write_kods(&self, o: &mut String, origin: Duration) {
        let _ = writeln!(o, "\nKiss-o'-Death");
        if self.kods.is_empty() {
            let _ = writeln!(o, "  none");
        } else {
            let mut t = Table::new(&[
                ("from", Align::Left),
                ("to", Align::Left),
                ("code", Align::Left),
                ("packets", Align::Right),
                ("with MAC", Align::Right),
                ("first", Align::Right),
                ("last", Align::Right),
            ]);
            for k in &self.kods {
                t.row(vec![
                    k.from.to_string(),
                    k.to.to_string(),
                    k.code.clone(),
                    k.packets.to_string(),
                    k.with_mac.to_string(),
                    offset(k.first_unix_s, origin),
                    offset(k.last_unix_s, origin),
                ]);
            }
            t.write(o);
        }
        if !self.crypto_naks.is_empty() {
            let _ = writeln!(
                o,
                "crypto-NAKs (the server did not accept the request's MAC)"
            );
            let mut t = Table::new(&[
                ("from", Align::Left),
                ("to", Align::Left),
                ("packets", Align::Right),
            ]);
            for n in &self.crypto_naks {
                t.row(vec![
                    n.from.to_string(),
                    n.to.to_string(),
                    n.packets.to_string(),
                ]);
            }
            t.write(o);
        }
    }

    fn write_mac(&self, o: &mut String) {
        let Some(mac) = &self.mac else {
            let _ = writeln!(o, "\nMACs: not checked (give --keys FILE)");
            return;
        };
        let _ = writeln!(o, "\nMAC verdicts with {}", mac.keys_file);
        if mac.rows.is_empty() {
            let _ = writeln!(o, "  no packet carried a MAC");
            return;
        }
        let mut t = Table::new(&[
            ("source", Align::Left),
            ("key", Align::Right),
            ("ok", Align::Right),
            ("bad MAC", Align::Right),
            ("bad length", Align::Right),
            ("unknown key", Align::Right),
            ("source not allowed", Align::Right),
        ]);
        for r in &mac.rows {
            t.row(vec![
                r.source.map(|s| s.to_string()).unwrap_or_default(),
                r.key_id.to_string(),
                r.ok.to_string(),
                r.bad_mac.to_string(),
                r.bad_length.to_string(),
                r.unknown_key.to_string(),
                r.source_not_allowed.to_string(),
            ]);
        }
        t.write(o);
    }

    fn write_top(&self, o: &mut String) {
        for (title, list) in [
            ("top talkers by packets", &self.top_by_packets),
            ("top talkers by bytes", &self.top_by_bytes),
        ] {
            let _ = writeln!(o, "\n{title}");
            if list.is_empty() {
                let _ = writeln!(o, "  none");
                continue;
            }
            let mut t = Table::new(&[
                ("address", Align::Left),
                ("packets", Align::Right),
                ("bytes", Align::Right),
            ]);
            for x in list {
                t.row(vec![
                    x.address.to_string(),
                    x.packets.to_string(),
                    x.bytes.to_string(),
                ]);
            }
            t.write(o);
        }
    }
}

fn dash_if_empty(s: String) -> String {
    if s.is_empty() { "-".into() } else { s }
}

/// `5:12 3:4` (mode:count), with `bad:N` for malformed datagrams.
fn modes_short(modes: &[ModeCount], malformed: u64) -> String {
    let mut parts: Vec<String> = modes
        .iter()
        .map(|m| format!("{}:{}", m.mode, m.packets))
        .collect();
    if malformed > 0 {
        parts.push(format!("bad:{malformed}"));
    }
    dash_if_empty(parts.join(" "))
}

/// `123`, `123,124` or `40321,...(57)`.
fn ports(listed: &[u16], distinct: usize) -> String {
    let mut s = listed
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if distinct > listed.len() {
        let _ = write!(s, ",...({distinct})");
    }
    s
}

/// `+12.345s` from the first frame.
fn offset(t: Duration, origin: Duration) -> String {
    match t.checked_sub(origin) {
        Some(d) => format!("+{:.3}s", d.as_secs_f64()),
        None => format!("-{:.3}s", (origin - t).as_secs_f64()),
    }
}

/// `8.000 s`, `31.2 ms`, `1h02m`.
fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 3600.0 {
        let total = d.as_secs();
        format!(
            "{}h{:02}m{:02}s",
            total / 3600,
            total % 3600 / 60,
            total % 60
        )
    } else if s >= 0.9995 {
        // (0.9995 and up prints as 1.000 s, not 999.5 ms.)
        format!("{s:.3} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

/// `2026-11-22 02:42:53.118 UTC`.
fn utc(t: Duration) -> String {
    // A corrupt or odd capture can hold any 64-bit time.
    let Some(time) = std::time::UNIX_EPOCH.checked_add(t) else {
        return format!("{} s after 1970", t.as_secs());
    };
    let base = mcast_keys::keygen::format_utc(time);
    // format_utc gives whole seconds: `YYYY-MM-DD HH:MM:SS UTC`.
    match base.strip_suffix(" UTC") {
        Some(head) => format!("{head}.{:03} UTC", t.subsec_millis()),
        None => base,
    }
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// A text table: columns as wide as their widest cell, two spaces apart,
/// indented by two.
struct Table {
    header: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            header: columns.iter().map(|(n, a)| ((*n).to_owned(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn write(&self, o: &mut String) {
        let mut widths: Vec<usize> = self.header.iter().map(|(n, _)| n.len()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|(n, _)| n.clone()).collect();
        for r in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::from(" ");
            for ((c, w), (_, align)) in r.iter().zip(&widths).zip(&self.header) {
                line.push(' ');
                match align {
                    Align::Left => {
                        let _ = write!(line, "{c:<w$} ");
                    }
                    Align::Right => {
                        let _ = write!(line, "{c:>w$} ");
                    }
                }
            }
            let _ = writeln!(o, "{}", line.trim_end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&[("a", Align::Left), ("n", Align::Right)]);
        t.row(vec!["198.18.0.1".into(), "7".into()]);
        t.row(vec!["x".into(), "1234".into()]);
        let mut o = String::new();
        t.write(&mut o);
        assert_eq!(
            o,
            "  a              n\n  198.18.0.1     7\n  x           1234\n"
        );
    }

    #[test]
    fn times_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(8)), "8.000 s");
        assert_eq!(human(Duration::from_micros(31_250)), "31.2 ms");
        assert_eq!(human(Duration::from_micros(999_900)), "1.000 s");
        assert_eq!(human(Duration::from_secs(3723)), "1h02m03s");
        assert_eq!(
            utc(Duration::from_millis(1_795_315_275_118)),
            "2026-11-22 02:41:15.118 UTC"
        );
        assert_eq!(
            utc(Duration::MAX),
            format!("{} s after 1970", u64::MAX),
            "no overflow on absurd capture times"
        );
        assert_eq!(
            offset(Duration::from_secs(10), Duration::from_secs(4)),
            "+6.000s"
        );
        assert_eq!(ports(&[123], 1), "123");
        assert_eq!(ports(&[1, 2], 9), "1,2,...(9)");
    }
}
