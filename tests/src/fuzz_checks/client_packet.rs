//! The `client_packet` property: the client's protocol core
//! (`mcast_core::client::engine::ClientCore`) driven by a sequence of events
//! decoded from the fuzzer's bytes. See [`client_packet`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use mcast_core::client::association::{Association, Rejection, ServerSpec, State};
use mcast_core::client::calibration::{CalibrationConfig, Failure, Phase};
use mcast_core::client::discipline::{Clock, ClockMode, Decision, KernelState, MAX_FREQUENCY, Ppm};
use mcast_core::client::engine::{Action, ClientCore, CoreConfig, Event, Incoming};
use mcast_core::client::filter::FilterOutput;
use mcast_core::client::select::SelectOutcome;
use mcast_core::exchange::Ticket;
use mcast_keys::{KeyId, KeyStore, MacVerdict, PacketAuth, packet};
use mcast_proto::{
    Datagram, HEADER_LEN, Header, LeapIndicator, Log2Seconds, Mode, NtpDuration, NtpShort,
    NtpTimestamp, RefId,
};

use super::{NET_KEYS, flip_digest_bit, quote, sign_with, take_advance, take_byte, take_datagram};

/// A sender of packets to the client.
struct Source {
    addr: IpAddr,
    /// The key id it signs with when told to use its own (the lab's
    /// convention: 198.18.0.N has key N).
    own_key: u32,
    /// Its clock minus true time, in microseconds, for fixed-up timestamps.
    theta_us: i64,
}

const fn v4(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, n))
}

/// The sources an event can pick (3 bits). The first four are configured
/// servers (see [`config`]); 198.18.0.5 and .6 are not (discovery binds
/// them when it is on); the IPv4-mapped form of server 1's address and ::1
/// are other addresses again.
const SOURCES: [Source; 8] = [
    Source {
        addr: v4(1),
        own_key: 1,
        theta_us: 300,
    },
    Source {
        addr: v4(2),
        own_key: 2,
        theta_us: -200,
    },
    Source {
        addr: v4(3),
        own_key: 3,
        theta_us: 100,
    },
    Source {
        addr: v4(4),
        own_key: 4,
        theta_us: 150_000,
    },
    Source {
        addr: v4(5),
        own_key: 5,
        theta_us: 50,
    },
    Source {
        addr: v4(6),
        own_key: 6,
        theta_us: -700_000,
    },
    Source {
        addr: IpAddr::V6(Ipv4Addr::new(198, 18, 0, 1).to_ipv6_mapped()),
        own_key: 1,
        theta_us: 300,
    },
    Source {
        addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
        own_key: 9,
        theta_us: 0,
    },
];

/// Poll exponents a sane broadcast header can carry (3 bits of the fix byte).
const POLLS: [i8; 8] = [6, 3, 4, 5, 7, 8, 10, 17];

/// Kiss codes a forged KoD reply can carry (2 bits of the fix byte).
const KISS: [&str; 4] = ["RATE", "DENY", "RSTR", "XFUZ"];

/// Most events decoded from one input (keeps every input fast).
const MAX_EVENTS: usize = 256;

/// Where our clock and the servers' clocks start (2027-01-15).
const BASE_UNIX: i64 = 1_800_000_000;

/// The port the servers answer on (`CoreConfig::server_port`).
const SERVER_PORT: u16 = 123;

/// An address no association has (a tick concerns none in particular).
const NO_FOCUS: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// Reasons a broadcast is rejected at or before its MAC check.
const BEFORE_AUTH: [Rejection; 6] = [
    Rejection::Unauthenticated,
    Rejection::CryptoNak,
    Rejection::WrongKey,
    Rejection::UnknownKey,
    Rejection::BadMac,
    Rejection::SourceNotAllowed,
];

fn source(i: u8) -> &'static Source {
    SOURCES
        .get(usize::from(i) % SOURCES.len())
        .unwrap_or(&SOURCES[0])
}

/// The fixed configuration, with what the flags byte varies.
fn config(flags: u8) -> CoreConfig {
    // Bit 4: servers 1 and 3 send interleaved broadcasts.
    let spec = |n: u8, key: Option<u32>| ServerSpec {
        name: format!("server-{n}"),
        interleave: flags & 16 != 0 && n % 2 == 1,
        ..ServerSpec::new(v4(n), key.and_then(KeyId::new))
    };
    let mut c = CoreConfig::with_servers(vec![
        spec(1, Some(1)),
        spec(2, Some(2)),
        spec(3, Some(3)),
        // Authentication explicitly off for this one.
        spec(4, None),
    ]);
    c.discover = flags & 1 != 0;
    c.discipline.mode = match (flags >> 1) & 3 {
        0 => ClockMode::Monitor,
        1 => ClockMode::Slew,
        _ => ClockMode::Step,
    };
    c.discipline.slew_only = (flags >> 1) & 3 == 3;
    if flags & 8 != 0 {
        c.calibration = CalibrationConfig {
            start_delay_max: Duration::from_secs(1),
            requests: 2,
            retries: 1,
            ..CalibrationConfig::default()
        };
    }
    c
}

/// A clock that does what it is told and counts how often it was told
/// (the core keeps its own record of what it did,
/// [`ClientCore::adjustment`], which is all the harness uses).
#[derive(Default)]
struct NullClock {
    changes: u64,
}

impl Clock for NullClock {
    fn now(&self) -> NtpTimestamp {
        NtpTimestamp::ZERO
    }
    fn step(&mut self, _: NtpDuration) -> Result<(), String> {
        self.changes += 1;
        Ok(())
    }
    fn slew(&mut self, _: NtpDuration) -> Result<(), String> {
        self.changes += 1;
        Ok(())
    }
    fn set_frequency_ppm(&mut self, _: Ppm) -> Result<(), String> {
        self.changes += 1;
        Ok(())
    }
    fn set_kernel_state(&mut self, _: KernelState) -> Result<(), String> {
        self.changes += 1;
        Ok(())
    }
}

/// What a user can see of an association (status, the clock), without
/// the replay/rate bookkeeping that authenticated packets move on.
#[derive(Debug, Clone, PartialEq)]
struct Observable {
    state: State,
    phase: Option<Phase>,
    failures: Vec<Failure>,
    requests_sent: Option<u32>,
    one_way: Option<NtpDuration>,
    poll: Option<i8>,
    reach: u8,
    last_header: Option<Header>,
    accepted: u64,
    unicast_sent: u64,
    filter: Option<FilterOutput>,
    filter_len: usize,
    last_offset: Option<NtpDuration>,
}

/// One association before or after an event.
#[derive(Debug, Clone)]
struct AssocSnap {
    addr: IpAddr,
    key: Option<KeyId>,
    accepted: u64,
    rejected: BTreeMap<Rejection, u64>,
    /// Its whole `Debug` state (replay, rate and poll bookkeeping,
    /// calibration internals), rejection counters masked; only for the
    /// association an event concerns (formatting is the costly part of a
    /// run), empty for the others, whose [`Observable`] state is compared.
    full: String,
    observable: Observable,
}

/// The core before or after an event.
#[derive(Debug, Clone)]
struct Snapshot {
    global: BTreeMap<&'static str, u64>,
    assocs: Vec<AssocSnap>,
    selection: Option<SelectOutcome>,
    last_decision: Option<Decision>,
}

/// `debug` with the contents of the `rejected: {...}` map blanked (the
/// map's entries contain no braces).
fn mask_rejected(debug: &str) -> String {
    const FIELD: &str = "rejected: {";
    let Some(start) = debug.find(FIELD) else {
        return debug.to_owned();
    };
    let open = start + FIELD.len();
    let close = debug
        .get(open..)
        .and_then(|s| s.find('}'))
        .map_or(debug.len(), |i| open + i);
    format!(
        "{}..{}",
        debug.get(..open).unwrap_or_default(),
        debug.get(close..).unwrap_or_default()
    )
}

impl Snapshot {
    /// The core's state, with the whole state of the association of
    /// `focus` (the address an event concerns).
    fn take(core: &ClientCore, focus: IpAddr) -> Snapshot {
        let assocs = core
            .associations()
            .map(|a| snap_assoc(core, a, a.spec().address == focus))
            .collect();
        Snapshot {
            global: core.global_rejects().clone(),
            assocs,
            selection: core.selection().cloned(),
            last_decision: core.last_decision().copied(),
        }
    }

    fn global_total(&self) -> u64 {
        self.global.values().sum()
    }

    /// Every packet the core has counted: globally, accepted or rejected.
    fn counted(&self) -> u64 {
        self.global_total()
            + self
                .assocs
                .iter()
                .map(|a| a.accepted + a.rejected.values().sum::<u64>())
                .sum::<u64>()
    }

    fn observables(&self) -> Vec<&Observable> {
        self.assocs.iter().map(|a| &a.observable).collect()
    }

    fn fulls(&self) -> Vec<&str> {
        self.assocs.iter().map(|a| a.full.as_str()).collect()
    }
}

fn snap_assoc(core: &ClientCore, a: &Association, full: bool) -> AssocSnap {
    let addr = a.spec().address;
    let cal = a.calibration();
    let filter = core.filter(addr);
    AssocSnap {
        addr,
        key: a.spec().key,
        accepted: a.accepted(),
        rejected: a.rejected().clone(),
        full: if full {
            mask_rejected(&format!("{a:?}"))
        } else {
            String::new()
        },
        observable: Observable {
            state: a.state(),
            phase: cal.map(|c| c.phase().clone()),
            failures: cal.map(|c| c.failures().to_vec()).unwrap_or_default(),
            requests_sent: cal.map(|c| c.requests_sent()),
            one_way: cal.and_then(|c| c.one_way_delay()),
            poll: a.poll(),
            reach: a.reach(),
            last_header: a.last_header().copied(),
            accepted: a.accepted(),
            unicast_sent: a.unicast_sent(),
            filter: filter.and_then(|f| f.output()),
            filter_len: filter.map_or(0, |f| f.len()),
            last_offset: core.last_offset(addr),
        },
    }
}

/// A bijective mix of a counter (splitmix64's finalizer): distinct,
/// random-looking cookies, the same in every run.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The run: the core, our model of what it was sent and asked to send,
/// and the clock.
struct Run<'a> {
    data: &'a [u8],
    config: CoreConfig,
    keys: &'static KeyStore,
    core: ClientCore,
    /// Monotonic time.
    mono: Duration,
    /// Transmit timestamps (cookies) of the requests sent to each address
    /// and not yet answered, oldest first.
    outstanding: BTreeMap<IpAddr, Vec<NtpTimestamp>>,
    /// Requests sent to each address over the whole run.
    sent: BTreeMap<IpAddr, u64>,
    /// Requests sent to each address after its calibration was done: only
    /// checks, each announced by a `Checking` event: (checks started, with
    /// when; requests since the last one started).
    checks: BTreeMap<IpAddr, (Vec<Duration>, u64)>,
    /// Servers the core said it followed back (a check confirmed their
    /// clock went back): their next accepted broadcast may be older.
    followed_back: BTreeSet<String>,
    /// Addresses whose association has reached Tracking.
    tracking: BTreeSet<IpAddr>,
    /// The last request sent (its ticket and the clock when it was
    /// built), for kernel transmit time events.
    last_send: Option<(SocketAddr, Ticket, NtpTimestamp)>,
    /// Cookies handed to the core so far (a counter through a bijective
    /// mix, so they are distinct and look random).
    cookies: u64,
    /// Steps decided so far.
    steps: u32,
    /// A slew or step was decided (the discipline left NSET).
    adjusted: bool,
    /// The clock the core is given.
    clock: NullClock,
}

/// The client core's packet handling: `ClientCore::on_broadcast`,
/// `on_reply`, `on_tick` and `request_transmitted`, driven by events from
/// the input with a fixed configuration: servers 198.18.0.1, .2 and .3
/// with lab keys 1 (MD5), 2 (SHA1) and 3 (AES-CMAC), and 198.18.0.4 with
/// authentication off; the lab keys plus key 13 (allowed only from
/// 198.18.0.10 and .2). Time and randomness come from the input only; our
/// clock reads 2027-01-15 plus the monotonic time plus the adjustments the
/// core made (`ClientCore::adjustment`), and decisions are carried out on a
/// clock that accepts everything.
///
/// Input layout: a flags byte (bit 0: discovery on; bits 1-2: clock mode
/// monitor / slew / step / step with slew-only; bit 3: short calibration,
/// 2 requests, 1 retry, start within 1 s; bit 4: servers 1 and 3 are
/// configured as interleaved), then events until the input
/// ends (at most 256). Each event is an op byte (bits 0-1: broadcast /
/// reply / tick / kernel transmit time of the last request; bits 2-4: the
/// source, see `SOURCES`: 198.18.0.1-.6, ::ffff:198.18.0.1, ::1; bit 5:
/// source port 1123 instead of 123; bits 6-7: the MAC: keep the bytes' own
/// / sign with the source's own key (198.18.0.N: key N) / as the key byte
/// says / own key with the digest bit the key byte picks flipped) and an
/// advance byte (time passing before the event, see `take_advance`). A
/// tick has nothing more; a transmit-time event one more byte (the kernel
/// saw the request leave that many x 5 ms after it was built). A broadcast
/// or a reply goes on with:
///
/// * a fix byte: bit 0 sets mode (5, or 4 for a reply) and version 4;
///   bit 1 (reply) sets origin to the newest unanswered request to that
///   source (bit 7: the oldest); bit 2 sets the timestamps from a model
///   where the source's clock is off by its `theta_us` plus a jitter and
///   the path takes 1 ms; bit 3 makes the header sane (stratum 2, refid
///   GPS, small root delay and dispersion, reference 16 s old; a broadcast
///   gets the poll bits 5-7 pick from `POLLS`); bit 4 makes a broadcast an
///   alarm (LI 3, stratum 16) and a reply a KoD echoing the request (code
///   from bits 5-6: RATE, DENY, RSTR, XFUZ);
/// * a key byte, when the MAC bits are 2 or 3: with 2, 15 writes a
///   crypto-NAK, 14 no MAC, anything else signs with key id (byte % 16),
///   a key the store lacks as 16 zero digest bytes; with 3, the bit to flip;
/// * a jitter byte, when fix bit 2 is set (signed, x 100 us);
/// * for a broadcast, a random byte (the calibration start, times 0x01010101);
/// * a length byte L and L datagram bytes. With no fix bits and MAC bits 0
///   they go to the core as they are; otherwise they are parsed (a short or
///   broken datagram becomes its header, or a zero header) and rebuilt.
///
/// Properties, checked after every event (the panic names the property):
///
/// * nothing panics;
/// * accounting: each broadcast adds exactly one to the core's counters
///   (a global reject reason, or one association's accepted or rejected
///   count, of the association of the packet's source address); a reply
///   adds one global reject or none, and one it does not count must echo
///   (as origin) a request the core sent to that source and that no earlier
///   reply used; a tick or a transmit time adds nothing;
/// * a packet rejected at or before authentication (globally counted,
///   or no MAC, crypto-NAK, wrong or unknown key, bad MAC, source not
///   allowed) changes no association: not the whole `Debug` state of its
///   source's association (replay, rate and poll bookkeeping, calibration
///   internals) but its rejection counter, nor what a user sees of the
///   others, nor the selection or the last decision, and
///   yields no action; one rejected after it (replay, too early, poll
///   changed, unusable) changes nothing a user sees (state, calibration,
///   poll, reach, filter, last offset); a reply that fails authentication
///   or is not usable time changes nothing a user sees either, except a KoD
///   that echoes our request in origin, receive and transmit, which the
///   design honours before authentication (security model: "Kiss-o'-Death
///   is honoured only when ... origin, receive and transmit all equal our
///   request's transmit timestamp");
/// * an association appears only in discovery mode, for a broadcast from
///   a new address whose MAC verifies, bound to that key;
/// * requests go only to an association's address, port 123, are mode-3
///   datagrams carrying the tick's clock reading as transmit, signed with
///   that server's key (unsigned only with authentication off), at most
///   requests x (retries + 1) per server over the whole run, never once its
///   association reached Tracking (which it never leaves), and the count
///   matches the association's `unicast_sent`;
/// * clock decisions only come with a broadcast or reply, only when
///   selection has a system peer, on the selection's offset; monitor mode
///   only reports; a panic decision exactly for offsets over the panic
///   threshold; a step only in step mode, over the step threshold, and with
///   slew-only at most once; a slew corrects no more than the offset, at a
///   frequency within +-500 ppm;
/// * after a tick, the selection is coherent: the system peer is the
///   first survivor, survivors are truechimers, the offset lies within the
///   survivors' filter offsets; and always: one-way delays lie between 0 and
///   max(max round trip / 2, fallback delay), filter delays and jitters are
///   not negative.
pub fn client_packet(data: &[u8]) {
    let mut rest = data;
    let flags = take_byte(&mut rest);
    let config = config(flags);
    let keys: &'static KeyStore = &NET_KEYS;
    let mut run = Run {
        data,
        core: ClientCore::new(config.clone(), keys.clone()),
        config,
        keys,
        mono: Duration::ZERO,
        outstanding: BTreeMap::new(),
        sent: BTreeMap::new(),
        tracking: BTreeSet::new(),
        checks: BTreeMap::new(),
        followed_back: BTreeSet::new(),
        last_send: None,
        cookies: 0,
        steps: 0,
        adjusted: false,
        clock: NullClock::default(),
    };
    for _ in 0..MAX_EVENTS {
        if rest.is_empty() {
            break;
        }
        run.event(&mut rest);
        run.check_always();
    }
}

impl Run<'_> {
    fn fail(&self, property: &str, detail: impl Display) -> ! {
        panic!(
            "client_packet: {property}: {detail}; input {}",
            quote(self.data)
        );
    }

    /// True time: the base plus the monotonic time.
    fn true_now(&self) -> NtpTimestamp {
        NtpTimestamp::from_unix(BASE_UNIX, 0) + NtpDuration::from_std(self.mono)
    }

    /// Our clock: true time plus what the core did to it.
    fn local_now(&self) -> NtpTimestamp {
        self.true_now() + self.core.adjustment(self.mono)
    }

    fn event(&mut self, rest: &mut &[u8]) {
        let op = take_byte(rest);
        let src = source(op >> 2);
        let port = if op & 0x20 != 0 { 1123 } else { SERVER_PORT };
        let mac = op >> 6;
        self.mono += take_advance(rest);
        match op & 3 {
            2 => self.tick(),
            3 => {
                let lag = take_byte(rest);
                self.transmitted(lag);
            }
            kind => {
                let reply = kind == 1;
                let fix = take_byte(rest);
                let key_byte = if mac >= 2 { take_byte(rest) } else { 0 };
                let jitter = if fix & 4 != 0 {
                    take_byte(rest).cast_signed()
                } else {
                    0
                };
                let random = if reply {
                    0
                } else {
                    u32::from(take_byte(rest)) * 0x0101_0101
                };
                let raw = take_datagram(rest);
                let wire = self.build(reply, src, fix, mac, key_byte, jitter, raw);
                let inc = Incoming {
                    bytes: &wire,
                    source: SocketAddr::new(src.addr, port),
                    rx: self.local_now(),
                    mono: self.mono,
                };
                if reply {
                    self.reply(inc);
                } else {
                    self.broadcast(inc, random);
                }
            }
        }
    }

    /// The datagram an event sends (see the input layout).
    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        reply: bool,
        src: &Source,
        fix: u8,
        mac: u8,
        key_byte: u8,
        jitter: i8,
        raw: &[u8],
    ) -> Vec<u8> {
        if fix == 0 && mac == 0 {
            return raw.to_vec();
        }
        let mode = if reply { Mode::Server } else { Mode::Broadcast };
        let mut d = Datagram::parse(raw).unwrap_or_else(|_| {
            let mut head = raw.get(..HEADER_LEN).unwrap_or(raw).to_vec();
            head.resize(HEADER_LEN, 0);
            Datagram::new(Header::parse(&head).unwrap_or(Header::new(mode)))
        });
        let cookie = self.cookie(src.addr, fix & 0x80 != 0);
        let h = &mut d.header;
        if fix & 8 != 0 {
            h.leap = LeapIndicator::NoWarning;
            h.stratum = 2;
            h.reference_id = RefId::from_code("GPS");
            h.precision = Log2Seconds(-20);
            h.root_delay = NtpShort::from_duration(NtpDuration::from_millis(1));
            h.root_dispersion = NtpShort::from_duration(NtpDuration::from_millis(1));
            h.reference = self.true_now() - NtpDuration::from_secs(16);
            if !reply {
                let poll = POLLS.get(usize::from(fix >> 5)).copied().unwrap_or(6);
                h.poll = Log2Seconds(poll);
            }
        }
        if fix & 1 != 0 {
            h.mode = mode;
            h.version = 4;
        }
        if fix & 4 != 0 {
            // Stamped by the source 1 ms before it arrives, on its clock.
            let theta = NtpDuration::from_micros(src.theta_us + i64::from(jitter) * 100);
            let t = self.true_now() - NtpDuration::from_millis(1) + theta;
            h.transmit = t;
            if reply {
                h.receive = t;
            } else {
                h.origin = NtpTimestamp::ZERO;
                h.receive = NtpTimestamp::ZERO;
            }
        }
        if reply
            && fix & 2 != 0
            && let Some(c) = cookie
        {
            h.origin = c;
        }
        if fix & 0x10 != 0 {
            h.leap = LeapIndicator::Unsynchronized;
            if reply {
                h.stratum = 0;
                let code = KISS
                    .get(usize::from((fix >> 5) & 3))
                    .copied()
                    .unwrap_or("RATE");
                h.reference_id = RefId::from_code(code);
                if let Some(c) = cookie {
                    h.origin = c;
                    h.receive = c;
                    h.transmit = c;
                }
            } else {
                h.stratum = 16;
            }
        }
        let mut out = Vec::new();
        match mac {
            0 => out = d.to_bytes(),
            1 => sign_with(self.keys, src.own_key, &d, &mut out),
            2 => match key_byte % 16 {
                15 => packet::crypto_nak(&d, &mut out),
                14 => d.write_signed_part(&mut out),
                id => sign_with(self.keys, u32::from(id), &d, &mut out),
            },
            _ => {
                sign_with(self.keys, src.own_key, &d, &mut out);
                flip_digest_bit(&mut out, d.signed_len(), usize::from(key_byte));
            }
        }
        out
    }

    /// The newest (or oldest) request sent to `addr` and not yet answered.
    fn cookie(&self, addr: IpAddr, oldest: bool) -> Option<NtpTimestamp> {
        let list = self.outstanding.get(&addr)?;
        if oldest {
            list.first().copied()
        } else {
            list.last().copied()
        }
    }

    fn association_index(&self, addr: IpAddr) -> Option<usize> {
        self.core
            .associations()
            .position(|a| a.spec().address == addr)
    }

    fn broadcast(&mut self, inc: Incoming<'_>, random: u32) {
        let src = inc.source.ip();
        let before = Snapshot::take(&self.core, src);
        let actions = self.core.on_broadcast(inc, random, &mut self.clock);
        let after = Snapshot::take(&self.core, src);
        if after.counted() != before.counted() + 1 {
            self.fail(
                "every broadcast counted once",
                format!(
                    "{} packets counted before, {} after",
                    before.counted(),
                    after.counted()
                ),
            );
        }
        let grown = after.assocs.len() - before.assocs.len().min(after.assocs.len());
        if after.assocs.len() < before.assocs.len() || grown > 1 {
            self.fail(
                "associations are never removed, at most one added",
                format!("{} -> {}", before.assocs.len(), after.assocs.len()),
            );
        }
        if grown == 1 {
            self.check_discovered(&inc, &after);
        }
        let parsed = Datagram::parse(inc.bytes).ok();

        if after.global_total() > before.global_total() {
            if after.fulls() != before.fulls()
                || after.observables() != before.observables()
                || after.selection != before.selection
                || after.last_decision != before.last_decision
                || !actions.is_empty()
            {
                self.fail(
                    "a globally rejected broadcast changes nothing",
                    format!("counted {:?}; actions {actions:?}", after.global),
                );
            }
            return;
        }
        // Counted by exactly one association: the source's.
        let Some(i) = after.assocs.iter().position(|a| a.addr == src) else {
            self.fail(
                "a broadcast not rejected globally is counted by its source's association",
                format!("no association for {src}"),
            );
        };
        let (Some(cur), old) = (after.assocs.get(i), before.assocs.get(i)) else {
            return;
        };
        let old_accepted = old.map_or(0, |o| o.accepted);
        if cur.accepted > old_accepted {
            self.check_accepted(cur, parsed.as_ref(), &inc);
            let name = self
                .core
                .associations()
                .find(|a| a.spec().address == src)
                .map(|a| a.spec().name.clone())
                .unwrap_or_default();
            let followed = self.followed_back.remove(&name);
            if let (Some(prev), Some(d)) = (
                old.and_then(|o| o.observable.last_header.as_ref()),
                parsed.as_ref(),
            ) && d.header.transmit - prev.transmit <= NtpDuration::ZERO
                && !followed
            {
                self.fail(
                    "an accepted broadcast is newer than the last one, unless a unicast check \
                     confirmed the server's clock went back",
                    format!("{} after {}", d.header.transmit, prev.transmit),
                );
            }
            self.check_actions(&actions, true);
            return;
        }
        let reason = cur
            .rejected
            .iter()
            .find(|(r, n)| old.and_then(|o| o.rejected.get(r)).copied().unwrap_or(0) < **n)
            .map(|(r, _)| *r);
        let Some(reason) = reason else {
            self.fail(
                "a broadcast not rejected globally is counted by its source's association",
                format!("association of {src} counted nothing"),
            );
        };
        // An authentic broadcast that is never time still shows the group
        // delivers: it may end a group silence, and nothing else.
        let other = actions.iter().any(|a| {
            !(reason == Rejection::Unusable && matches!(a, Action::Event(Event::GroupBack { .. })))
        });
        if other || after.selection != before.selection {
            self.fail(
                "a rejected broadcast yields no action (an unusable one: only the group's return)",
                format!("rejected as {reason:?}, actions {actions:?}"),
            );
        }
        if BEFORE_AUTH.contains(&reason) {
            if old.is_none() {
                self.fail(
                    "a discovered association accepts the MAC it was bound by",
                    format!("rejected as {reason:?}"),
                );
            }
            if after.fulls() != before.fulls() || after.last_decision != before.last_decision {
                self.fail(
                    "a broadcast rejected at authentication changes no association",
                    format!(
                        "rejected as {reason:?}\n before {:?}\n after  {:?}",
                        before.fulls(),
                        after.fulls()
                    ),
                );
            }
        }
        let unchanged = before
            .assocs
            .iter()
            .zip(&after.assocs)
            .all(|(b, a)| b.observable == a.observable);
        if !unchanged {
            self.fail(
                "a rejected broadcast changes nothing a user sees",
                format!(
                    "rejected as {reason:?}\n before {:?}\n after  {:?}",
                    before.observables(),
                    after.observables()
                ),
            );
        }
    }

    /// A new association: discovery is on, the source was unknown, its MAC
    /// verifies from that source, and the association is bound to that key.
    fn check_discovered(&self, inc: &Incoming<'_>, after: &Snapshot) {
        let src = inc.source.ip();
        let Some(new) = after.assocs.last() else {
            return;
        };
        let verdict = Datagram::parse(inc.bytes)
            .map(|d| packet::authenticate(self.keys, inc.bytes, &d, Some(src)));
        let bound = match verdict {
            Ok(PacketAuth::Mac(MacVerdict::Valid(k))) => Some(k),
            _ => None,
        };
        let key_taken = after
            .assocs
            .iter()
            .filter(|a| a.key.is_some() && a.key == new.key)
            .count()
            > 1;
        let discovered = after.assocs.len().saturating_sub(self.config.servers.len());
        if key_taken || discovered > self.config.discover_max {
            self.fail(
                "discovery binds one address per key, at most discover-max of them",
                format!(
                    "{} with key {:?}; {discovered} discovered",
                    new.addr, new.key
                ),
            );
        }
        if !self.config.discover || new.addr != src || bound.is_none() || new.key != bound {
            self.fail(
                "an association is added only by discovery, for a verified new source",
                format!(
                    "discover {}, new {} key {:?}, packet from {src}: {verdict:?}",
                    self.config.discover, new.addr, new.key
                ),
            );
        }
    }

    /// An accepted broadcast: it authenticated with the association's key
    /// and it is the association's last header.
    fn check_accepted(&self, a: &AssocSnap, parsed: Option<&Datagram>, inc: &Incoming<'_>) {
        let Some(d) = parsed else {
            self.fail(
                "only a datagram that parses is accepted",
                "it does not parse",
            );
        };
        let auth = packet::authenticate(self.keys, inc.bytes, d, Some(inc.source.ip()));
        let ok = match a.key {
            Some(k) => auth == PacketAuth::Mac(MacVerdict::Valid(k)),
            None => matches!(
                auth,
                PacketAuth::NoMac | PacketAuth::Mac(MacVerdict::Valid(_))
            ),
        };
        if !ok || d.header.mode != Mode::Broadcast {
            self.fail(
                "a broadcast is accepted only in mode 5 with its server's key",
                format!(
                    "server key {:?}, packet {auth}, mode {:?}",
                    a.key, d.header.mode
                ),
            );
        }
        if a.observable.last_header.as_ref() != Some(&d.header) {
            self.fail(
                "an accepted broadcast is the association's last header",
                format!("{:?}", a.observable.last_header),
            );
        }
    }

    fn reply(&mut self, inc: Incoming<'_>) {
        let src = inc.source.ip();
        let before = Snapshot::take(&self.core, src);
        let actions = self.core.on_reply(inc, &mut self.clock);
        let after = Snapshot::take(&self.core, src);
        let parsed = Datagram::parse(inc.bytes).ok();
        let counted_assocs = |s: &Snapshot| s.counted() - s.global_total();
        if after.assocs.len() != before.assocs.len()
            || counted_assocs(&after) != counted_assocs(&before)
        {
            self.fail(
                "a reply counts no broadcast and adds no association",
                format!(
                    "{} -> {} associations",
                    before.assocs.len(),
                    after.assocs.len()
                ),
            );
        }
        let global = after.global_total() - before.global_total().min(after.global_total());
        if global > 1 {
            self.fail(
                "every reply counted at most once",
                format!("{global} reasons"),
            );
        }
        if global == 1 {
            if after.fulls() != before.fulls()
                || after.observables() != before.observables()
                || after.selection != before.selection
                || !actions.is_empty()
            {
                self.fail(
                    "a globally rejected reply changes no association",
                    format!("counted {:?}; actions {actions:?}", after.global),
                );
            }
            // A KoD that does not echo our request in every field still
            // used up the request it named (as any reply echoing it does).
            let bogus_kod = after.global.get("bogus-kod") != before.global.get("bogus-kod");
            if let (true, Some(d)) = (bogus_kod, &parsed) {
                self.answered(src, d.header.origin);
            }
            return;
        }
        // Not counted globally: the reply answered a request.
        let Some(d) = parsed else {
            self.fail(
                "a reply the core takes parses",
                "it does not, and was not counted",
            );
        };
        if !self.answered(src, d.header.origin) {
            self.fail(
                "a reply the core takes echoes an unanswered request sent to its source",
                format!("origin {} from {src}", d.header.origin),
            );
        }
        if d.header.mode != Mode::Server || inc.source.port() != SERVER_PORT {
            self.fail(
                "a reply the core takes is mode 4 from the server port",
                format!("mode {:?}, port {}", d.header.mode, inc.source.port()),
            );
        }
        let h = &d.header;
        let kod_echo = h.kiss_code().is_some() && h.receive == h.origin && h.transmit == h.origin;
        let key = self
            .association_index(src)
            .and_then(|i| after.assocs.get(i))
            .and_then(|a| a.key);
        let auth = packet::authenticate(self.keys, inc.bytes, &d, Some(src));
        let authentic = match key {
            Some(k) => auth == PacketAuth::Mac(MacVerdict::Valid(k)),
            None => matches!(
                auth,
                PacketAuth::NoMac | PacketAuth::Mac(MacVerdict::Valid(_))
            ),
        };
        let usable = h.unusable_reason(&self.config.limits).is_none();
        if kod_echo {
            if after.assocs.iter().zip(&before.assocs).any(|(a, b)| {
                a.observable.filter != b.observable.filter
                    || a.observable.last_offset != b.observable.last_offset
            }) || actions.iter().any(|a| !matches!(a, Action::Event(_)))
            {
                self.fail("a KoD is never time", format!("actions {actions:?}"));
            }
            return;
        }
        if !authentic || !usable {
            if after.observables() != before.observables()
                || after.selection != before.selection
                || !actions.is_empty()
            {
                self.fail(
                    "a reply that fails authentication or is not time changes nothing a user sees",
                    format!(
                        "server key {key:?}, reply {auth}, usable {usable}; actions {actions:?}\n before {:?}\n after  {:?}",
                        before.observables(),
                        after.observables()
                    ),
                );
            }
            return;
        }
        self.check_actions(&actions, true);
    }

    /// Marks the request with transmit `cookie` to `addr` as answered;
    /// false if there was none.
    fn answered(&mut self, addr: IpAddr, cookie: NtpTimestamp) -> bool {
        let Some(list) = self.outstanding.get_mut(&addr) else {
            return false;
        };
        match list.iter().position(|c| *c == cookie) {
            Some(i) => {
                list.remove(i);
                true
            }
            None => false,
        }
    }

    fn tick(&mut self) {
        let clock_now = self.local_now();
        let before = Snapshot::take(&self.core, NO_FOCUS);
        let first_cookie = self.cookies;
        let mut counter = self.cookies;
        let actions = self.core.on_tick(
            self.mono,
            clock_now,
            &mut || {
                counter += 1;
                mix(counter)
            },
            &mut self.clock,
        );
        self.cookies = counter;
        let after = Snapshot::take(&self.core, NO_FOCUS);
        if after.counted() != before.counted() || after.assocs.len() != before.assocs.len() {
            self.fail(
                "a tick counts no packet and adds no association",
                format!("{} -> {} counted", before.counted(), after.counted()),
            );
        }
        let volley_bound = u64::from(self.config.calibration.requests)
            * (u64::from(self.config.calibration.retries) + 1);
        for action in &actions {
            if let Action::Event(Event::Checking { server, .. }) = action
                && let Some(a) = self.core.associations().find(|a| a.spec().name == *server)
            {
                let (started, since) = self.checks.entry(a.spec().address).or_default();
                started.push(self.mono);
                *since = 0;
            }
        }
        for action in &actions {
            let Action::Send {
                to, bytes, ticket, ..
            } = action
            else {
                continue;
            };
            self.check_request(*to, bytes, (first_cookie, self.cookies), &after);
            let is_check = self.tracking.contains(&to.ip())
                || after
                    .assocs
                    .iter()
                    .any(|a| a.addr == to.ip() && a.observable.state != State::Calibrating);
            if is_check && let Some((_, since)) = self.checks.get_mut(&to.ip()) {
                *since += 1;
            }
            let n = self.sent.entry(to.ip()).or_insert(0);
            *n += 1;
            let check_requests: u64 = self
                .checks
                .get(&to.ip())
                .map_or(0, |(started, _)| started.len() as u64 * 3);
            let n = *n;
            if n > volley_bound + check_requests {
                self.fail(
                    "at most requests x (retries + 1) requests per server",
                    format!("{n} requests to {to}, bound {volley_bound}"),
                );
            }
            if let Ok(d) = Datagram::parse(bytes) {
                self.outstanding
                    .entry(to.ip())
                    .or_default()
                    .push(d.header.transmit);
            }
            self.last_send = Some((*to, *ticket, clock_now));
        }
        for a in &after.assocs {
            let sent = self.sent.get(&a.addr).copied().unwrap_or(0);
            if a.observable.unicast_sent != sent {
                self.fail(
                    "unicast_sent counts the requests the core asked to send",
                    format!(
                        "{}: {} counted, {sent} sent",
                        a.addr, a.observable.unicast_sent
                    ),
                );
            }
        }
        self.check_actions(&actions, false);
        self.check_selection();
    }

    /// A calibration request: to an association's address and the server
    /// port, mode 3, our clock reading as transmit, signed with that
    /// server's key; never to a server done calibrating.
    fn check_request(&self, to: SocketAddr, bytes: &[u8], given: (u64, u64), after: &Snapshot) {
        let Some(a) = after.assocs.iter().find(|a| a.addr == to.ip()) else {
            self.fail(
                "requests go only to associations",
                format!("request to {to}"),
            );
        };
        if to.port() != SERVER_PORT {
            self.fail("requests go to the server port", format!("request to {to}"));
        }
        if self.tracking.contains(&a.addr) || a.observable.state != State::Calibrating {
            // After calibration only a check: announced, at most 3
            // requests, at most 24 started in any day.
            let day = Duration::from_secs(86_400);
            let ok = self.checks.get(&a.addr).is_some_and(|(started, since)| {
                let recent = started
                    .iter()
                    .filter(|t| self.mono.saturating_sub(**t) < day)
                    .count();
                !started.is_empty() && *since < 3 && recent <= 24
            });
            if !ok || a.observable.state == State::Untrusted {
                self.fail(
                    "after calibration only announced, bounded checks (3 requests, 24 a day), \
                     never to an untrusted server",
                    format!(
                        "request to {to} in state {:?}; checks {:?}",
                        a.observable.state,
                        self.checks.get(&a.addr)
                    ),
                );
            }
        }
        let Ok(d) = Datagram::parse(bytes) else {
            self.fail("a request parses", quote(bytes));
        };
        let auth = packet::authenticate(self.keys, bytes, &d, None);
        let want = match a.key.filter(|k| self.keys.get(*k).is_some()) {
            Some(k) => PacketAuth::Mac(MacVerdict::Valid(k)),
            None => PacketAuth::NoMac,
        };
        let (after_cookie, last_cookie) = given;
        let fresh = (after_cookie + 1..=last_cookie)
            .any(|c| d.header.transmit == NtpTimestamp::from_bits(mix(c).max(1)));
        if d.header.mode != Mode::Client || !fresh || auth != want || !d.extensions.is_empty() {
            self.fail(
                "a request is mode 3, carries a cookie it was given as transmit and the \
                 server's key",
                format!(
                    "mode {:?}, transmit {} (cookies {after_cookie}..={last_cookie}), {auth} \
                     (want {want})",
                    d.header.mode, d.header.transmit
                ),
            );
        }
    }

    /// The kernel's transmit time of the last request, `lag` x 5 ms after
    /// it was built: it changes nothing but that request's T1.
    fn transmitted(&mut self, lag: u8) {
        let Some((to, ticket, built)) = self.last_send else {
            return;
        };
        let at = built + NtpDuration::from_millis(i64::from(lag) * 5);
        let before = Snapshot::take(&self.core, to.ip());
        self.core.request_transmitted(ticket, at);
        let after = Snapshot::take(&self.core, to.ip());
        if after.fulls() != before.fulls() || after.counted() != before.counted() {
            self.fail(
                "a kernel transmit time changes no association",
                format!("lag {lag}"),
            );
        }
    }

    /// Clock decisions: only from a packet (`fresh`), only with a system
    /// peer and on the selection's offset, within the mode's limits; carried
    /// out by the core without error, and in monitor mode never at all.
    fn check_actions(&mut self, actions: &[Action], from_packet: bool) {
        if self.config.discipline.mode == ClockMode::Monitor && self.clock.changes > 0 {
            self.fail(
                "monitor mode never touches the clock",
                format!("{} changes", self.clock.changes),
            );
        }
        for action in actions {
            match action {
                Action::Clock(d) => self.check_decision(d, from_packet),
                Action::Event(Event::ClockAdjustmentFailed { error }) => {
                    self.fail("a decision is carried out", error);
                }
                Action::Event(Event::SteppedBack { server }) => {
                    self.followed_back.insert(server.clone());
                }
                Action::Send { to, .. } if from_packet => {
                    self.fail("requests are sent only on ticks", format!("to {to}"));
                }
                Action::Event(Event::GroupSilent { .. }) | Action::Rejoin { .. } if from_packet => {
                    self.fail("a group falls silent only on ticks", format!("{action:?}"));
                }
                Action::Event(Event::GroupBack { .. }) if !from_packet => {
                    self.fail(
                        "a group comes back only with a packet",
                        format!("{action:?}"),
                    );
                }
                // About the group, not a server.
                Action::Event(Event::GroupSilent { .. } | Event::GroupBack { .. }) => {}
                Action::Event(e)
                    if !self
                        .core
                        .associations()
                        .any(|a| Some(a.spec().name.as_str()) == e.server()) =>
                {
                    self.fail("events are about a known server", format!("{e:?}"));
                }
                _ => {}
            }
        }
    }

    fn check_decision(&mut self, d: &Decision, from_packet: bool) {
        let selection = self.core.selection();
        let offset = selection.and_then(|s| s.offset);
        let peer = selection.and_then(|s| s.system_peer);
        let Some(o) = offset.filter(|_| from_packet && peer.is_some()) else {
            self.fail(
                "a clock decision comes with a packet, with a system peer",
                format!("{d:?}, selection {selection:?}"),
            );
        };
        let dc = self.config.discipline;
        // Step mode's first clock update may step past the panic threshold,
        // up to first-step-max (like ntpd -g).
        let first_step =
            dc.mode == ClockMode::Step && !self.adjusted && o.abs() <= dc.first_step_max;
        let over_panic =
            !first_step && dc.panic_threshold > NtpDuration::ZERO && o.abs() > dc.panic_threshold;
        if matches!(d, Decision::Step { .. } | Decision::Slew { .. }) {
            self.adjusted = true;
        }
        let ok = d.offset() == o
            && match (dc.mode, *d) {
                (ClockMode::Monitor, Decision::Monitor { .. }) => true,
                (ClockMode::Monitor, _) | (_, Decision::Monitor { .. }) => false,
                (_, Decision::Panic { .. }) => over_panic,
                _ if over_panic => false,
                (mode, Decision::Step { .. }) => {
                    self.steps += 1;
                    mode == ClockMode::Step
                        && o.abs() > dc.step_threshold
                        && (!dc.slew_only || self.steps == 1)
                }
                (
                    _,
                    Decision::Slew {
                        correction,
                        frequency_ppm,
                        ..
                    },
                ) => {
                    correction.abs() <= o.abs()
                        && frequency_ppm.0.is_finite()
                        && frequency_ppm.0.abs() <= MAX_FREQUENCY.0
                }
                _ => true,
            };
        if !ok {
            self.fail(
                "a clock decision is on the selection's offset and within the mode's limits",
                format!(
                    "{d:?} in {:?} (slew-only {}), system offset {o}",
                    dc.mode, dc.slew_only
                ),
            );
        }
    }

    /// After a tick (which reselects when there was a selection): the
    /// system peer is the first survivor, survivors are truechimers, and
    /// the offset lies within the survivors' filter offsets.
    fn check_selection(&self) {
        let Some(s) = self.core.selection() else {
            return;
        };
        let addrs: Vec<IpAddr> = self.core.associations().map(|a| a.spec().address).collect();
        let offsets: Vec<NtpDuration> = s
            .survivors
            .iter()
            .filter_map(|i| addrs.get(*i))
            .filter_map(|addr| self.core.filter(*addr))
            .map(|f| f.offset())
            .collect();
        let assocs: Vec<_> = self.core.associations().collect();
        if let Some(bad) = s
            .survivors
            .iter()
            .filter_map(|i| assocs.get(*i))
            .find(|a| a.is_suspect() || a.state() == State::Untrusted)
        {
            self.fail(
                "a server whose broadcasts are stale, or that is untrusted, is never selected",
                format!("{} ({:?})", bad.spec().address, bad.state()),
            );
        }
        let coherent = s.system_peer == s.survivors.first().copied()
            && s.offset.is_some() == s.system_peer.is_some()
            && s.survivors.iter().all(|i| s.truechimers.contains(i))
            && offsets.len() == s.survivors.len()
            && !s.jitter.is_negative();
        let slack = NtpDuration::from_micros(1);
        let within = match (s.offset, offsets.iter().min(), offsets.iter().max()) {
            (Some(o), Some(lo), Some(hi)) => o >= *lo - slack && o <= *hi + slack,
            (None, ..) => true,
            _ => false,
        };
        if !coherent || !within {
            self.fail(
                "the selection is coherent",
                format!("{s:?}, survivors' offsets {offsets:?}"),
            );
        }
    }

    /// After every event: calibrated delays within their bounds, filters'
    /// delays and jitters not negative, Tracking never left.
    fn check_always(&mut self) {
        let cal = self.config.calibration;
        let bound = NtpDuration::from_std(cal.max_round_trip / 2)
            .max(NtpDuration::from_std(cal.fallback_delay));
        let mut now_tracking = Vec::new();
        for a in self.core.associations() {
            let addr = a.spec().address;
            if let Some(one_way) = a.calibration().and_then(|c| c.one_way_delay())
                && (one_way.is_negative() || one_way > bound)
            {
                self.fail(
                    "a one-way delay lies between 0 and max(max round trip / 2, fallback)",
                    format!("{addr}: {one_way}"),
                );
            }
            if let Some(out) = self.core.filter(addr).and_then(|f| f.output())
                && (out.delay.is_negative() || out.jitter.is_negative())
            {
                self.fail(
                    "filter delay and jitter are not negative",
                    format!("{addr}: {out:?}"),
                );
            }
            match a.state() {
                State::Tracking => now_tracking.push(addr),
                other if self.tracking.contains(&addr) => {
                    self.fail("Tracking is never left", format!("{addr} is {other:?}"));
                }
                _ => {}
            }
        }
        self.tracking.extend(now_tracking);
    }
}
