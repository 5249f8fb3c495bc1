//! `mcast-client analyze`: what the NTP traffic in a tcpdump capture
//! says, per host and per host pair, replacing the `tcpdump | awk | sort |
//! uniq` pipelines operators write by hand.
//!
//! The analysis is sans-I/O: an [`Analyzer`] takes frames (capture time,
//! link type, bytes) one at a time and [`Analyzer::finish`] returns a
//! [`Report`]. [`capture`] reads pcap and pcapng files into frames,
//! [`decode`] finds the UDP datagram in a frame, and
//! [`mcast_proto::Datagram::parse`] decodes the NTP packet. Nothing
//! received can panic: what does not decode is counted.
//!
//! # Multicast clients polling by unicast
//!
//! The failure this looks for: a multicast client that treats a server
//! as a unicast server and keeps polling it (ntpd 4.2.8 does it every
//! 64-1024 s). A pair (client, server) is flagged when
//!
//! 1. the capture holds at least one mode-5 (broadcast) packet, so the
//!    segment carries broadcasts;
//! 2. the client sends no broadcast itself (a broadcasting server polling
//!    its own upstream by unicast is normal) and the server address is
//!    not a multicast group (manycast);
//! 3. the client's mode-3 requests to that server go beyond a calibration
//!    volley: more than [`VOLLEY_MAX_REQUESTS`] (8) of them, or at least 3
//!    spread over more than [`VOLLEY_WINDOW`] (60 s). A volley is 4-6
//!    requests 2 s apart (ntpd 4.2.8, mcast-client), so a volley never
//!    trips this; the same thresholds drive `mcast-server status`'s list
//!    of clients polling by unicast.
//!
//! The reported polling interval is the most common interval between the
//! client's requests to the server (log2 bucket and the mean of the
//! intervals in it), next to the mean over all of them.

pub mod capture;
pub mod decode;
pub mod report;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mcast_keys::{KeyStore, MacVerdict, PacketAuth, packet};
use mcast_proto::Datagram;

pub use capture::{CaptureError, FileSummary, Format, Frame};
pub use report::Report;

use decode::{Decoded, Udp};
use report::{
    Bucket, CaptureInfo, Counts, HostReport, KeyUse, KodReport, MacReport, MacRow, ModeCount,
    NakReport, PairReport, PollCount, Reason, Talker, UnicastPoller, mode_name,
};

/// More mode-3 requests than this from one client to one server is more
/// than a calibration volley.
pub const VOLLEY_MAX_REQUESTS: u64 = 8;
/// At least 3 requests from one client to one server spread over more
/// than this is more than a calibration volley.
pub const VOLLEY_WINDOW: Duration = Duration::from_secs(60);
/// Ports listed per pair in the report (the count of distinct ones is
/// given too).
pub const PORTS_LISTED: usize = 4;
/// Distinct ports remembered per pair and direction.
const PORTS_REMEMBERED: usize = 1024;
/// Distinct malformed-packet reasons kept (the rest are counted as "other").
const REASONS_KEPT: usize = 32;
/// Interval buckets are clamped to 2^-10 s .. 2^20 s.
const BUCKET_MIN: i8 = -10;
const BUCKET_MAX: i8 = 20;

/// What to look at and how much to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The NTP port: datagrams from or to it are analysed (default 123).
    pub port: u16,
    /// How many top talkers to list.
    pub top: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { port: 123, top: 10 }
    }
}

/// Analyses frames one at a time; see the module documentation.
pub struct Analyzer<'k> {
    settings: Settings,
    keys: Option<&'k KeyStore>,
    counts: Counts,
    malformed_reasons: BTreeMap<String, u64>,
    link_types: BTreeSet<u32>,
    first: Option<Duration>,
    last: Option<Duration>,
    modes: BTreeMap<u8, u64>,
    hosts: HashMap<IpAddr, HostAcc>,
    pairs: HashMap<(IpAddr, IpAddr), PairAcc>,
    kods: BTreeMap<(IpAddr, IpAddr, String), KodAcc>,
    naks: BTreeMap<(IpAddr, IpAddr), u64>,
    macs: BTreeMap<(IpAddr, u32), MacRow>,
}

#[derive(Default)]
struct HostAcc {
    sent_packets: u64,
    sent_bytes: u64,
    received_packets: u64,
    received_bytes: u64,
    received_broadcasts: u64,
    modes_sent: BTreeMap<u8, u64>,
    keys: BTreeMap<u32, u64>,
    without_mac: u64,
    malformed_sent: u64,
}

struct PairAcc {
    packets: u64,
    bytes: u64,
    modes: BTreeMap<u8, u64>,
    malformed: u64,
    src_ports: BTreeSet<u16>,
    dst_ports: BTreeSet<u16>,
    polls: BTreeMap<i8, u64>,
    intervals: Histogram,
    first: Duration,
    last: Duration,
    /// Time of the latest packet in file order (for intervals).
    previous: Duration,
    requests: Option<Requests>,
    /// Mode-4 packets in this direction.
    replies: u64,
}

/// Mode-3 requests of one pair.
struct Requests {
    count: u64,
    first: Duration,
    last: Duration,
    previous: Duration,
    intervals: Histogram,
}

/// Intervals in log2 buckets, with their sums for the means.
#[derive(Default, Clone)]
struct Histogram(BTreeMap<i8, (u64, Duration)>);

impl Histogram {
    fn add(&mut self, interval: Duration) {
        let slot = self.0.entry(bucket_of(interval)).or_default();
        slot.0 += 1;
        slot.1 = slot.1.saturating_add(interval);
    }

    fn buckets(&self) -> Vec<Bucket> {
        self.0
            .iter()
            .map(|(&log2, &(count, sum))| Bucket {
                log2,
                count,
                mean_s: mean(sum, count),
            })
            .collect()
    }

    /// The fullest bucket (the longer interval on a tie).
    fn mode(&self) -> Option<Bucket> {
        self.buckets()
            .into_iter()
            .max_by(|a, b| a.count.cmp(&b.count).then(a.log2.cmp(&b.log2)))
    }
}

fn mean(sum: Duration, count: u64) -> Duration {
    match u32::try_from(count) {
        Ok(0) => Duration::ZERO,
        Ok(n) => sum / n,
        Err(_) => Duration::from_secs_f64(sum.as_secs_f64() / count as f64),
    }
}

/// The bucket n whose 2^n is nearest to `interval` on a log scale.
fn bucket_of(interval: Duration) -> i8 {
    let s = interval.as_secs_f64();
    if s <= 0.0 {
        return BUCKET_MIN;
    }
    let n = s.log2().round();
    if n <= f64::from(BUCKET_MIN) {
        BUCKET_MIN
    } else if n >= f64::from(BUCKET_MAX) {
        BUCKET_MAX
    } else {
        // In range, so the conversion is exact.
        n as i8
    }
}

struct KodAcc {
    packets: u64,
    with_mac: u64,
    first: Duration,
    last: Duration,
}

impl<'k> Analyzer<'k> {
    /// An analyzer; with `keys`, every MAC is checked.
    pub fn new(settings: Settings, keys: Option<&'k KeyStore>) -> Self {
        Analyzer {
            settings,
            keys,
            counts: Counts::default(),
            malformed_reasons: BTreeMap::new(),
            link_types: BTreeSet::new(),
            first: None,
            last: None,
            modes: BTreeMap::new(),
            hosts: HashMap::new(),
            pairs: HashMap::new(),
            kods: BTreeMap::new(),
            naks: BTreeMap::new(),
            macs: BTreeMap::new(),
        }
    }

    /// Takes one captured frame.
    pub fn push(&mut self, frame: Frame<'_>) {
        self.counts.frames += 1;
        self.link_types.insert(frame.link_type);
        self.first = Some(self.first.map_or(frame.time, |f| f.min(frame.time)));
        self.last = Some(self.last.map_or(frame.time, |l| l.max(frame.time)));
        let port = self.settings.port;
        match decode::decode(frame.link_type, frame.data) {
            Decoded::Udp(u) if u.src_port == port || u.dst_port == port => {
                self.ntp(frame.time, &u);
            }
            Decoded::FirstFragment(u) if u.src_port == port || u.dst_port == port => {
                self.counts.fragmented_ntp += 1;
            }
            Decoded::Udp(_) | Decoded::FirstFragment(_) => self.counts.other_udp += 1,
            Decoded::LaterFragment => self.counts.later_fragments += 1,
            Decoded::NotUdp => self.counts.not_udp += 1,
            Decoded::UnsupportedLinkType => self.counts.unsupported_link_type += 1,
            Decoded::Undecodable(_) => self.counts.undecodable += 1,
        }
    }

    fn ntp(&mut self, time: Duration, u: &Udp<'_>) {
        let bytes = u.ip_len as u64;
        self.counts.ntp_packets += 1;
        self.counts.ntp_bytes += bytes;
        let src = self.hosts.entry(u.src).or_default();
        src.sent_packets += 1;
        src.sent_bytes += bytes;
        let dst = self.hosts.entry(u.dst).or_default();
        dst.received_packets += 1;
        dst.received_bytes += bytes;
        let pair = self.pairs.entry((u.src, u.dst)).or_insert_with(|| PairAcc {
            packets: 0,
            bytes: 0,
            modes: BTreeMap::new(),
            malformed: 0,
            src_ports: BTreeSet::new(),
            dst_ports: BTreeSet::new(),
            polls: BTreeMap::new(),
            intervals: Histogram::default(),
            first: time,
            last: time,
            previous: time,
            requests: None,
            replies: 0,
        });
        if pair.packets > 0
            && let Some(gap) = time.checked_sub(pair.previous)
        {
            pair.intervals.add(gap);
        }
        pair.packets += 1;
        pair.bytes += bytes;
        pair.first = pair.first.min(time);
        pair.last = pair.last.max(time);
        pair.previous = time;
        for (set, port) in [
            (&mut pair.src_ports, u.src_port),
            (&mut pair.dst_ports, u.dst_port),
        ] {
            if set.len() < PORTS_REMEMBERED {
                set.insert(port);
            }
        }

        // Modes 6 (ntpq) and 7 (ntpdc) have their own formats, shorter than
        // the 48-byte header: counted by mode, not parsed.
        let first = u.payload.first().copied().unwrap_or(0);
        let (version, mode) = ((first >> 3) & 7, first & 7);
        if (1..=4).contains(&version) && (mode == 6 || mode == 7) {
            self.count_mode(u, mode);
            return;
        }
        let d = match Datagram::parse(u.payload) {
            Ok(d) => d,
            Err(e) => {
                self.counts.malformed += 1;
                if let Some(h) = self.hosts.get_mut(&u.src) {
                    h.malformed_sent += 1;
                }
                if let Some(p) = self.pairs.get_mut(&(u.src, u.dst)) {
                    p.malformed += 1;
                }
                let reason = e.to_string();
                if self.malformed_reasons.len() < REASONS_KEPT
                    || self.malformed_reasons.contains_key(&reason)
                {
                    *self.malformed_reasons.entry(reason).or_default() += 1;
                } else {
                    *self
                        .malformed_reasons
                        .entry("other reasons".into())
                        .or_default() += 1;
                }
                return;
            }
        };
        let mode = d.header.mode.to_bits();
        self.count_mode(u, mode);
        if let Some(pair) = self.pairs.get_mut(&(u.src, u.dst)) {
            *pair.polls.entry(d.header.poll.0).or_default() += 1;
            match mode {
                3 => {
                    let r = pair.requests.get_or_insert_with(|| Requests {
                        count: 0,
                        first: time,
                        last: time,
                        previous: time,
                        intervals: Histogram::default(),
                    });
                    if r.count > 0
                        && let Some(gap) = time.checked_sub(r.previous)
                    {
                        r.intervals.add(gap);
                    }
                    r.count += 1;
                    r.first = r.first.min(time);
                    r.last = r.last.max(time);
                    r.previous = time;
                }
                4 => pair.replies += 1,
                _ => {}
            }
        }
        if mode == 5
            && let Some(h) = self.hosts.get_mut(&u.dst)
        {
            h.received_broadcasts += 1;
        }

        let has_mac = d.mac.as_ref().is_some_and(|m| !m.is_crypto_nak());
        if let Some(h) = self.hosts.get_mut(&u.src) {
            match &d.mac {
                Some(m) if !m.is_crypto_nak() => *h.keys.entry(m.key_id).or_default() += 1,
                Some(_) => {}
                None => h.without_mac += 1,
            }
        }
        if d.is_crypto_nak() {
            *self.naks.entry((u.src, u.dst)).or_default() += 1;
        }
        if let Some(code) = d.header.kiss_code() {
            let k = self
                .kods
                .entry((u.src, u.dst, code.to_string()))
                .or_insert(KodAcc {
                    packets: 0,
                    with_mac: 0,
                    first: time,
                    last: time,
                });
            k.packets += 1;
            k.with_mac += u64::from(has_mac);
            k.first = k.first.min(time);
            k.last = k.last.max(time);
        }
        if let Some(keys) = self.keys
            && let PacketAuth::Mac(verdict) = packet::authenticate(keys, u.payload, &d, Some(u.src))
        {
            let wire_id = d.mac.as_ref().map_or(0, |m| m.key_id);
            let row = self.macs.entry((u.src, wire_id)).or_insert_with(|| MacRow {
                source: Some(u.src),
                key_id: wire_id,
                ..MacRow::default()
            });
            match verdict {
                MacVerdict::Valid(_) => row.ok += 1,
                MacVerdict::InvalidMac(_) => row.bad_mac += 1,
                MacVerdict::BadLength { .. } => row.bad_length += 1,
                MacVerdict::UnknownKey(_) => row.unknown_key += 1,
                MacVerdict::SourceNotAllowed { .. } => row.source_not_allowed += 1,
            }
        }
    }

    fn count_mode(&mut self, u: &Udp<'_>, mode: u8) {
        *self.modes.entry(mode).or_default() += 1;
        if let Some(h) = self.hosts.get_mut(&u.src) {
            *h.modes_sent.entry(mode).or_default() += 1;
        }
        if let Some(p) = self.pairs.get_mut(&(u.src, u.dst)) {
            *p.modes.entry(mode).or_default() += 1;
        }
    }

    /// The report (`keys_file` names the keys file in it, when keys were
    /// given).
    pub fn finish(self, keys_file: Option<String>) -> Report {
        let broadcasters: BTreeSet<IpAddr> = self
            .hosts
            .iter()
            .filter(|(_, h)| h.modes_sent.contains_key(&5))
            .map(|(a, _)| *a)
            .collect();
        let broadcasts_seen = self.modes.contains_key(&5);

        let mut hosts: Vec<HostReport> = self
            .hosts
            .iter()
            .map(|(&address, h)| HostReport {
                address,
                kind: host_kind(address, h),
                sent_packets: h.sent_packets,
                sent_bytes: h.sent_bytes,
                received_packets: h.received_packets,
                received_bytes: h.received_bytes,
                modes_sent: mode_counts(&h.modes_sent),
                keys_used: h
                    .keys
                    .iter()
                    .map(|(&key_id, &packets)| KeyUse { key_id, packets })
                    .collect(),
                sent_without_mac: h.without_mac,
                malformed_sent: h.malformed_sent,
            })
            .collect();
        hosts.sort_by_key(|h| h.address);

        let mut pairs: Vec<PairReport> = self
            .pairs
            .iter()
            .map(|(&(source, destination), p)| PairReport {
                source,
                destination,
                packets: p.packets,
                bytes: p.bytes,
                modes: mode_counts(&p.modes),
                malformed: p.malformed,
                source_ports: p.src_ports.iter().take(PORTS_LISTED).copied().collect(),
                distinct_source_ports: p.src_ports.len(),
                destination_ports: p.dst_ports.iter().take(PORTS_LISTED).copied().collect(),
                distinct_destination_ports: p.dst_ports.len(),
                poll_field: p
                    .polls
                    .iter()
                    .map(|(&log2, &packets)| PollCount { log2, packets })
                    .collect(),
                intervals: p.intervals.buckets(),
                first_unix_s: p.first,
                last_unix_s: p.last,
            })
            .collect();
        pairs.sort_by_key(|p| (p.source, p.destination));

        let mut unicast_pollers = Vec::new();
        if broadcasts_seen {
            for (&(client, server), p) in &self.pairs {
                let Some(r) = &p.requests else { continue };
                if broadcasters.contains(&client) || server.is_multicast() {
                    continue;
                }
                let span = r.last.saturating_sub(r.first);
                let reason = if r.count > VOLLEY_MAX_REQUESTS {
                    format!(
                        "{} requests (a calibration volley has at most {VOLLEY_MAX_REQUESTS})",
                        r.count
                    )
                } else if r.count >= 3 && span > VOLLEY_WINDOW {
                    format!(
                        "requests over {:.0} s (a calibration volley lasts at most {} s)",
                        span.as_secs_f64(),
                        VOLLEY_WINDOW.as_secs()
                    )
                } else {
                    continue;
                };
                let replies = self.pairs.get(&(server, client)).map_or(0, |b| b.replies);
                let mean_interval = u32::try_from(r.count - 1)
                    .ok()
                    .filter(|&g| g > 0)
                    .map(|g| span / g);
                unicast_pollers.push(UnicastPoller {
                    client,
                    server,
                    requests: r.count,
                    replies,
                    first_unix_s: r.first,
                    last_unix_s: r.last,
                    span_s: span,
                    poll_interval: r.intervals.mode(),
                    mean_interval_s: mean_interval,
                    reason,
                });
            }
        }
        unicast_pollers.sort_by_key(|p| (std::cmp::Reverse(p.requests), p.client, p.server));

        let kods = self
            .kods
            .iter()
            .map(|((from, to, code), k)| KodReport {
                from: *from,
                to: *to,
                code: code.clone(),
                packets: k.packets,
                with_mac: k.with_mac,
                first_unix_s: k.first,
                last_unix_s: k.last,
            })
            .collect();
        let crypto_naks = self
            .naks
            .iter()
            .map(|(&(from, to), &packets)| NakReport { from, to, packets })
            .collect();
        let mac = self.keys.map(|_| MacReport {
            keys_file: keys_file.unwrap_or_default(),
            rows: self.macs.values().cloned().collect(),
        });

        let mut talkers: Vec<Talker> = hosts
            .iter()
            .filter(|h| h.sent_packets > 0)
            .map(|h| Talker {
                address: h.address,
                packets: h.sent_packets,
                bytes: h.sent_bytes,
            })
            .collect();
        talkers.sort_by(|a, b| {
            b.packets
                .cmp(&a.packets)
                .then(b.bytes.cmp(&a.bytes))
                .then(a.address.cmp(&b.address))
        });
        let top_by_packets: Vec<Talker> = talkers.iter().take(self.settings.top).cloned().collect();
        talkers.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then(b.packets.cmp(&a.packets))
                .then(a.address.cmp(&b.address))
        });
        let top_by_bytes: Vec<Talker> = talkers.into_iter().take(self.settings.top).collect();

        let mut counts = self.counts;
        counts.malformed_reasons = self
            .malformed_reasons
            .into_iter()
            .map(|(reason, count)| Reason { reason, count })
            .collect();
        Report {
            capture: CaptureInfo {
                file: None,
                format: None,
                link_types: self
                    .link_types
                    .iter()
                    .map(|&l| decode::link_type_name(l))
                    .collect(),
                frames: counts.frames,
                first_unix_s: self.first,
                last_unix_s: self.last,
                duration_s: match (self.first, self.last) {
                    (Some(f), Some(l)) => l.saturating_sub(f),
                    _ => Duration::ZERO,
                },
                stopped_early: None,
            },
            port: self.settings.port,
            counts,
            modes: mode_counts(&self.modes),
            hosts,
            pairs,
            broadcasts_seen,
            unicast_pollers,
            kods,
            crypto_naks,
            mac,
            top_by_packets,
            top_by_bytes,
        }
    }
}

fn mode_counts(modes: &BTreeMap<u8, u64>) -> Vec<ModeCount> {
    modes
        .iter()
        .map(|(&mode, &packets)| ModeCount {
            mode,
            name: mode_name(mode),
            packets,
        })
        .collect()
}

fn host_kind(address: IpAddr, h: &HostAcc) -> &'static str {
    if address.is_multicast() {
        "group"
    } else if address == IpAddr::V4(Ipv4Addr::BROADCAST)
        || (h.sent_packets == 0 && h.received_broadcasts > 0)
    {
        "broadcast"
    } else {
        "host"
    }
}

/// Analyses `frames` in one go.
pub fn analyze<'a>(
    frames: impl IntoIterator<Item = Frame<'a>>,
    keys: Option<&KeyStore>,
    settings: Settings,
) -> Report {
    let mut a = Analyzer::new(settings, keys);
    for f in frames {
        a.push(f);
    }
    a.finish(keys.map(|k| k.path().display().to_string()))
}

/// Reads the capture file at `path` and analyses it; the report names the
/// file, its format, and says if reading stopped early.
pub fn analyze_file(
    path: &std::path::Path,
    keys: Option<&KeyStore>,
    settings: Settings,
) -> Result<Report, CaptureError> {
    let mut a = Analyzer::new(settings, keys);
    let summary = capture::read_file(path, |f| a.push(f))?;
    let mut report = a.finish(keys.map(|k| k.path().display().to_string()));
    report.capture.file = Some(path.display().to_string());
    report.capture.format = Some(summary.format);
    report.capture.stopped_early = summary.stopped_early;
    Ok(report)
}

#[cfg(test)]
mod tests;
