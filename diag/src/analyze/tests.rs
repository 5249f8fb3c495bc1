use super::*;
use etherparse::PacketBuilder;
use mcast_keys::{Key, KeyId, KeyType};
use mcast_proto::{Header, Mode, NtpTimestamp, RefId};
use std::net::Ipv4Addr;
use std::path::Path;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const OTHER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 1);

fn store() -> KeyStore {
    let key = Key::new(
        KeyId::new(7).unwrap(),
        KeyType::Aes128Cmac,
        b"0123456789abcdef",
    );
    KeyStore::from_keys(Path::new("lab.keys"), [key]).unwrap()
}

/// A raw-IPv4 frame (link type 101) carrying `payload` over UDP.
fn ip_frame(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src.octets(), dst.octets(), 64).udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

fn ntp(mode: Mode, poll: i8, key: Option<&KeyStore>) -> Vec<u8> {
    let mut h = Header::new(mode);
    h.poll = mcast_proto::Log2Seconds(poll);
    h.stratum = 2;
    h.transmit = NtpTimestamp::from_unix(1_800_000_000, 0);
    let d = Datagram::new(h);
    match key {
        Some(store) => {
            let mut out = Vec::new();
            packet::sign(store.get(KeyId::new(7).unwrap()).unwrap(), &d, &mut out);
            out
        }
        None => d.to_bytes(),
    }
}

fn kod_rate(with_key: Option<&KeyStore>) -> Vec<u8> {
    let mut h = Header::new(Mode::Server);
    h.stratum = 0;
    h.leap = mcast_proto::LeapIndicator::Unsynchronized;
    h.reference_id = RefId(*b"RATE");
    let d = Datagram::new(h);
    match with_key {
        Some(store) => {
            let mut out = Vec::new();
            packet::sign(store.get(KeyId::new(7).unwrap()).unwrap(), &d, &mut out);
            out
        }
        None => d.to_bytes(),
    }
}

/// Frames in time order: (seconds, bytes).
struct Lab {
    frames: Vec<(Duration, Vec<u8>)>,
}

impl Lab {
    fn new() -> Lab {
        Lab { frames: Vec::new() }
    }
    fn add(&mut self, t: f64, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, payload: &[u8]) {
        self.frames.push((
            Duration::from_secs_f64(1_800_000_000.0 + t),
            ip_frame(src, dst, sport, 123, payload),
        ));
    }
    /// Broadcasts from SERVER to the group every 2^poll s (+ a little
    /// jitter), `n` of them.
    fn broadcasts(&mut self, n: usize, poll: i8, key: Option<&KeyStore>) {
        let every = f64::from(1u32 << poll);
        for i in 0..n {
            let jitter = (i % 3) as f64 * 0.01;
            self.add(
                i as f64 * every + jitter,
                SERVER,
                GROUP,
                123,
                &ntp(Mode::Broadcast, poll, key),
            );
        }
    }
    fn report(&self, keys: Option<&KeyStore>, settings: Settings) -> Report {
        let mut sorted: Vec<&(Duration, Vec<u8>)> = self.frames.iter().collect();
        sorted.sort_by_key(|f| f.0);
        analyze(
            sorted.iter().map(|(time, data)| Frame {
                time: *time,
                link_type: decode::link_type::RAW,
                data,
            }),
            keys,
            settings,
        )
    }
}

fn pair(r: &Report, src: Ipv4Addr, dst: Ipv4Addr) -> &PairReport {
    r.pairs
        .iter()
        .find(|p| p.source == IpAddr::V4(src) && p.destination == IpAddr::V4(dst))
        .unwrap_or_else(|| panic!("no pair {src} -> {dst} in {:#?}", r.pairs))
}

#[test]
fn broadcasts_show_their_poll_interval_in_the_histogram() {
    let mut lab = Lab::new();
    lab.broadcasts(10, 6, None);
    let r = lab.report(None, Settings::default());
    let p = pair(&r, SERVER, GROUP);
    assert_eq!(p.packets, 10);
    assert_eq!(
        p.modes,
        vec![ModeCount {
            mode: 5,
            name: "broadcast",
            packets: 10
        }]
    );
    assert_eq!(
        p.poll_field,
        vec![PollCount {
            log2: 6,
            packets: 10
        }]
    );
    assert_eq!(p.intervals.len(), 1, "one bucket: {:?}", p.intervals);
    assert_eq!((p.intervals[0].log2, p.intervals[0].count), (6, 9));
    let mean = p.intervals[0].mean_s.as_secs_f64();
    assert!((mean - 64.0).abs() < 0.05, "mean interval {mean}");
    assert!(r.broadcasts_seen);
    let g = r
        .hosts
        .iter()
        .find(|h| h.address == IpAddr::V4(GROUP))
        .unwrap();
    assert_eq!(
        (g.kind, g.received_packets, g.sent_packets),
        ("group", 10, 0)
    );
    assert_eq!(p.bytes, 10 * (20 + 8 + 48));
}

#[test]
fn a_calibration_volley_is_not_polling_but_continued_requests_are() {
    let mut lab = Lab::new();
    lab.broadcasts(40, 6, None);
    // OTHER: a normal volley of 6 requests 2 s apart, answered.
    for i in 0..6 {
        let t = 10.0 + 2.0 * f64::from(i);
        lab.add(t, OTHER, SERVER, 123, &ntp(Mode::Client, 6, None));
        lab.add(t + 0.001, SERVER, OTHER, 123, &ntp(Mode::Server, 6, None));
    }
    // CLIENT: a volley, then a request every 64 s (the ntpd failure).
    for i in 0..5 {
        lab.add(
            5.0 + 2.0 * f64::from(i),
            CLIENT,
            SERVER,
            123,
            &ntp(Mode::Client, 6, None),
        );
    }
    for i in 0..20 {
        lab.add(
            77.0 + 64.0 * f64::from(i),
            CLIENT,
            SERVER,
            123,
            &ntp(Mode::Client, 6, None),
        );
    }
    let r = lab.report(None, Settings::default());
    assert_eq!(r.unicast_pollers.len(), 1, "{:#?}", r.unicast_pollers);
    let p = &r.unicast_pollers[0];
    assert_eq!(
        (p.client, p.server),
        (IpAddr::V4(CLIENT), IpAddr::V4(SERVER))
    );
    assert_eq!((p.requests, p.replies), (25, 0));
    let b = p.poll_interval.as_ref().expect("an interval");
    assert_eq!(b.log2, 6, "polls every 2^6 s: {b:?}");
    assert!((b.mean_s.as_secs_f64() - 64.0).abs() < 0.01, "{b:?}");
    assert!(p.reason.contains("25 requests"), "{}", p.reason);
    let text = r.to_text();
    assert!(
        text.contains("multicast clients polling by unicast\n") && text.contains("64.000 s (2^6)"),
        "{text}"
    );
}

#[test]
fn few_requests_spread_over_minutes_are_polling_too() {
    let mut lab = Lab::new();
    lab.broadcasts(60, 6, None);
    for t in [0.0, 1024.0, 2048.0, 3072.0] {
        lab.add(t + 3.0, CLIENT, SERVER, 123, &ntp(Mode::Client, 10, None));
    }
    let r = lab.report(None, Settings::default());
    assert_eq!(r.unicast_pollers.len(), 1);
    let p = &r.unicast_pollers[0];
    assert_eq!(p.poll_interval.as_ref().map(|b| b.log2), Some(10));
    assert!(p.reason.contains("over 3072 s"), "{}", p.reason);
}

#[test]
fn no_flag_without_broadcasts_nor_for_a_broadcasting_server() {
    // A plain unicast client polling every 64 s, no broadcast anywhere.
    let mut lab = Lab::new();
    for i in 0..20 {
        lab.add(
            64.0 * f64::from(i),
            CLIENT,
            SERVER,
            123,
            &ntp(Mode::Client, 6, None),
        );
    }
    let r = lab.report(None, Settings::default());
    assert!(!r.broadcasts_seen);
    assert!(r.unicast_pollers.is_empty());
    assert!(
        r.to_text()
            .contains("not checked: the capture holds no broadcast")
    );
    // A broadcasting server polling its upstream by unicast is normal.
    let mut lab = Lab::new();
    lab.broadcasts(20, 6, None);
    for i in 0..20 {
        lab.add(
            64.0 * f64::from(i),
            SERVER,
            OTHER,
            123,
            &ntp(Mode::Client, 6, None),
        );
    }
    assert!(
        lab.report(None, Settings::default())
            .unicast_pollers
            .is_empty()
    );
}

#[test]
fn kod_and_crypto_nak_are_listed_with_sender_receiver_and_code() {
    let keys = store();
    let mut lab = Lab::new();
    for i in 0..3 {
        lab.add(
            f64::from(i) * 0.03,
            CLIENT,
            SERVER,
            40000 + i as u16,
            &ntp(Mode::Client, 0, None),
        );
    }
    lab.add(0.031, SERVER, CLIENT, 123, &kod_rate(None));
    lab.add(5.0, SERVER, CLIENT, 123, &kod_rate(Some(&keys)));
    let mut nak = Header::new(Mode::Server).to_bytes().to_vec();
    nak.extend(0u32.to_be_bytes());
    lab.add(6.0, SERVER, OTHER, 123, &nak);
    let r = lab.report(None, Settings::default());
    assert_eq!(r.kods.len(), 1, "{:?}", r.kods);
    let k = &r.kods[0];
    assert_eq!(
        (k.from, k.to, k.code.as_str(), k.packets, k.with_mac),
        (IpAddr::V4(SERVER), IpAddr::V4(CLIENT), "RATE", 2, 1)
    );
    assert_eq!(r.crypto_naks.len(), 1);
    assert_eq!(r.crypto_naks[0].to, IpAddr::V4(OTHER));
    let p = pair(&r, CLIENT, SERVER);
    assert_eq!(p.distinct_source_ports, 3);
    assert_eq!(p.source_ports, vec![40000, 40001, 40002]);
    let text = r.to_text();
    assert!(text.contains("RATE"), "{text}");
}

#[test]
fn mac_verdicts_per_source_and_key() {
    let keys = store();
    let mut lab = Lab::new();
    let good = ntp(Mode::Broadcast, 6, Some(&keys));
    let mut bad = good.clone();
    bad[45] ^= 0xff;
    let mut unknown = good.clone();
    unknown[48..52].copy_from_slice(&9u32.to_be_bytes());
    for i in 0..4 {
        lab.add(f64::from(i) * 64.0, SERVER, GROUP, 123, &good);
    }
    lab.add(300.0, OTHER, GROUP, 123, &bad);
    lab.add(301.0, OTHER, GROUP, 123, &unknown);
    lab.add(302.0, OTHER, GROUP, 123, &ntp(Mode::Broadcast, 6, None));
    let r = lab.report(Some(&keys), Settings::default());
    let mac = r.mac.as_ref().expect("keys given");
    assert_eq!(mac.keys_file, "lab.keys");
    let row = |src: Ipv4Addr, key: u32| {
        mac.rows
            .iter()
            .find(|r| r.source == Some(IpAddr::V4(src)) && r.key_id == key)
            .unwrap_or_else(|| panic!("no row {src} key {key}: {:#?}", mac.rows))
    };
    assert_eq!(row(SERVER, 7).ok, 4);
    assert_eq!((row(OTHER, 7).ok, row(OTHER, 7).bad_mac), (0, 1));
    assert_eq!(row(OTHER, 9).unknown_key, 1);
    let other = r
        .hosts
        .iter()
        .find(|h| h.address == IpAddr::V4(OTHER))
        .unwrap();
    assert_eq!(other.sent_without_mac, 1);
    assert_eq!(
        other.keys_used,
        vec![
            KeyUse {
                key_id: 7,
                packets: 1
            },
            KeyUse {
                key_id: 9,
                packets: 1
            }
        ]
    );
    // Without keys: no verdicts, the key ids are still shown.
    let r = lab.report(None, Settings::default());
    assert!(r.mac.is_none());
    assert!(r.to_text().contains("MACs: not checked"));
}

#[test]
fn malformed_and_control_packets_are_counted_never_fatal() {
    let mut lab = Lab::new();
    lab.add(0.0, CLIENT, SERVER, 123, &[0x23; 20]); // too short
    lab.add(1.0, CLIENT, SERVER, 123, &[0x3b; 48]); // version 7
    let mut odd = ntp(Mode::Client, 6, None);
    odd.extend([1, 2, 3]); // trailer not a multiple of 4
    lab.add(2.0, CLIENT, SERVER, 123, &odd);
    // ntpq readvar: mode 6, 12 bytes.
    lab.add(
        3.0,
        CLIENT,
        SERVER,
        40000,
        &[0x16, 0x02, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    lab.add(4.0, CLIENT, SERVER, 123, &[]);
    let r = lab.report(None, Settings::default());
    assert_eq!(r.counts.ntp_packets, 5);
    assert_eq!(r.counts.malformed, 4, "{:?}", r.counts);
    assert_eq!(
        r.modes,
        vec![ModeCount {
            mode: 6,
            name: "control",
            packets: 1
        }]
    );
    assert!(
        r.counts
            .malformed_reasons
            .iter()
            .any(|m| m.reason.contains("version 7")),
        "{:?}",
        r.counts.malformed_reasons
    );
    assert_eq!(pair(&r, CLIENT, SERVER).malformed, 4);
    let text = r.to_text();
    assert!(text.contains("4 malformed NTP"), "{text}");
}

#[test]
fn other_ports_fragments_and_garbage_are_counted_apart() {
    let mut frames: Vec<Vec<u8>> = Vec::new();
    frames.push(ip_frame(CLIENT, SERVER, 5353, 5353, b"mdns"));
    let mut first = ip_frame(CLIENT, SERVER, 123, 123, &[0x23; 48]);
    first[6] |= 0x20; // more fragments
    frames.push(first);
    let mut later = ip_frame(CLIENT, SERVER, 123, 123, &[0x23; 48]);
    later[7] = 100; // offset 800
    frames.push(later);
    frames.push(vec![0x45, 0, 0]);
    let r = analyze(
        frames
            .iter()
            .map(|f| Frame {
                time: Duration::from_secs(1),
                link_type: decode::link_type::RAW,
                data: f,
            })
            .chain([Frame {
                time: Duration::from_secs(2),
                link_type: 147,
                data: b"user link type",
            }]),
        None,
        Settings::default(),
    );
    let c = &r.counts;
    assert_eq!(c.frames, 5);
    assert_eq!(
        (
            c.other_udp,
            c.fragmented_ntp,
            c.later_fragments,
            c.undecodable,
            c.unsupported_link_type
        ),
        (1, 1, 1, 1, 1),
        "{c:?}"
    );
    assert_eq!(c.ntp_packets, 0);
}

#[test]
fn the_port_setting_selects_the_traffic() {
    let mut lab = Lab::new();
    lab.frames.push((
        Duration::from_secs(1),
        ip_frame(SERVER, GROUP, 12300, 12300, &ntp(Mode::Broadcast, 3, None)),
    ));
    lab.broadcasts(2, 3, None);
    let r = lab.report(
        None,
        Settings {
            port: 12300,
            top: 10,
        },
    );
    assert_eq!(r.counts.ntp_packets, 1);
    assert_eq!(r.counts.other_udp, 2);
}

#[test]
fn top_talkers_rank_by_packets_and_by_bytes() {
    let keys = store();
    let mut lab = Lab::new();
    // CLIENT: 5 small packets; SERVER: 3 signed (larger) ones; OTHER: 1.
    for i in 0..5 {
        lab.add(
            f64::from(i),
            CLIENT,
            SERVER,
            123,
            &ntp(Mode::Client, 6, None),
        );
    }
    for i in 0..3 {
        lab.add(
            f64::from(i),
            SERVER,
            GROUP,
            123,
            &[ntp(Mode::Broadcast, 6, Some(&keys)), vec![0; 64]].concat(),
        );
    }
    lab.add(9.0, OTHER, SERVER, 123, &ntp(Mode::Client, 6, None));
    let r = lab.report(None, Settings { port: 123, top: 2 });
    let by_packets: Vec<IpAddr> = r.top_by_packets.iter().map(|t| t.address).collect();
    let by_bytes: Vec<IpAddr> = r.top_by_bytes.iter().map(|t| t.address).collect();
    assert_eq!(by_packets, vec![IpAddr::V4(CLIENT), IpAddr::V4(SERVER)]);
    assert_eq!(by_bytes, vec![IpAddr::V4(SERVER), IpAddr::V4(CLIENT)]);
    assert_eq!(r.top_by_packets[0].packets, 5);
}

#[test]
fn the_report_serializes_to_json_with_seconds() {
    let mut lab = Lab::new();
    lab.broadcasts(3, 3, None);
    let r = lab.report(None, Settings::default());
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["port"], 123);
    assert_eq!(v["pairs"][0]["intervals"][0]["log2"], 3);
    let mean = v["pairs"][0]["intervals"][0]["mean_s"].as_f64().unwrap();
    assert!((mean - 8.0).abs() < 0.02, "{mean}");
    let first = v["capture"]["first_unix_s"].as_f64().unwrap();
    assert!((first - 1_800_000_000.0).abs() < 0.001, "{first}");
    assert_eq!(v["mac"], serde_json::Value::Null);
}

#[test]
fn buckets_round_on_a_log_scale() {
    assert_eq!(bucket_of(Duration::from_secs(8)), 3);
    assert_eq!(bucket_of(Duration::from_millis(8_500)), 3);
    assert_eq!(bucket_of(Duration::from_secs(11)), 3);
    assert_eq!(bucket_of(Duration::from_secs(12)), 4);
    assert_eq!(bucket_of(Duration::from_secs(64)), 6);
    assert_eq!(bucket_of(Duration::from_millis(30)), -5);
    assert_eq!(bucket_of(Duration::ZERO), BUCKET_MIN);
    assert_eq!(bucket_of(Duration::from_secs(1 << 30)), BUCKET_MAX);
}
