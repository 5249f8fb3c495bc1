//! The `server_request` property: the server's calibration responder
//! (`mcast_core::server::responder::Responder`, with its rate limiter) fed a
//! sequence of requests decoded from the fuzzer's bytes. See
//! [`server_request`].

use std::cell::Cell;
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use mcast_core::server::ratelimit::{Bucket, Mru, MruEntry, RateLimitConfig};
use mcast_core::server::responder::{
    Addressed, Destination, DropReason, Outcome, ReplyKind, Request, Responder, ResponderConfig,
    ResponderCounters,
};
use mcast_core::server::sync::{MAX_ADVERTISED_STRATUM, SyncStatus, SystemHeader};
use mcast_keys::{KeyStore, MacVerdict, PacketAuth, packet};
use mcast_proto::{
    Datagram, HEADER_LEN, Header, KissCode, LeapIndicator, Log2Seconds, Mode, NtpDuration,
    NtpShort, NtpTimestamp, RefId,
};

use super::{NET_KEYS, flip_digest_bit, quote, sign_with, take_advance, take_byte, take_datagram};

/// A client.
struct Client {
    addr: IpAddr,
    /// The key id it signs with when told to use its own.
    own_key: u32,
}

/// The clients an event can pick (3 bits). Key 13 allows only
/// 198.18.0.10 (and 198.18.0.2), so it verifies from the first, is not
/// allowed from the others.
const CLIENTS: [Client; 8] = [
    Client {
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)),
        own_key: 13,
    },
    Client {
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 11)),
        own_key: 1,
    },
    Client {
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 12)),
        own_key: 2,
    },
    Client {
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 13)),
        own_key: 3,
    },
    Client {
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 14)),
        own_key: 13,
    },
    Client {
        addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
        own_key: 6,
    },
    Client {
        addr: IpAddr::V6(Ipv4Addr::new(198, 18, 0, 10).to_ipv6_mapped()),
        own_key: 13,
    },
    Client {
        addr: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
        own_key: 9,
    },
];

/// The group destinations an event with op bit 7 can pick (by its client
/// bits): multicast, broadcast, IPv6 multicast, IPv4-mapped multicast, a
/// directed broadcast the shell recognized.
const GROUPS: [Destination; 8] = [
    Destination::Address(IpAddr::V4(Ipv4Addr::new(224, 0, 1, 1))),
    Destination::Address(IpAddr::V4(Ipv4Addr::BROADCAST)),
    Destination::Address(IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x101))),
    Destination::Address(IpAddr::V6(Ipv6Addr::new(
        0, 0, 0, 0, 0, 0xffff, 0xef01, 0x0203,
    ))),
    Destination::InterfaceBroadcast(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 255))),
    Destination::Address(IpAddr::V4(Ipv4Addr::new(239, 255, 255, 255))),
    Destination::Address(IpAddr::V6(Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 0x101))),
    Destination::Address(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1))),
];

/// Most requests decoded from one input.
const MAX_REQUESTS: usize = 512;

/// Where the server's clock starts (2027-01-15).
const BASE_UNIX: i64 = 1_800_000_000;

/// What the clock reads when the responder takes its transmit timestamp:
/// this long after the request arrived.
const TURNAROUND_US: i64 = 20;

fn client(i: u8) -> &'static Client {
    CLIENTS
        .get(usize::from(i) % CLIENTS.len())
        .unwrap_or(&CLIENTS[0])
}

/// The server's own synchronization: stratum 2 from GPS, or none.
fn sync_status(unsynchronized: bool) -> SyncStatus {
    if unsynchronized {
        SyncStatus::Unsynchronized {
            reason: mcast_core::server::sync::Unsync::ReferenceLost,
        }
    } else {
        SyncStatus::Synchronized(SystemHeader {
            leap: LeapIndicator::NoWarning,
            stratum: 2,
            reference_id: RefId::from_code("GPS"),
            root_delay: NtpShort::from_duration(NtpDuration::from_millis(1)),
            root_dispersion: NtpShort::from_duration(NtpDuration::from_millis(2)),
            reference_time: NtpTimestamp::from_unix(BASE_UNIX - 16, 0),
        })
    }
}

/// The server's calibration responder (`Responder::handle`: `Answerer::parse`
/// with the MAC check, the rate limiter's `observe` on its MRU table,
/// `Answerer::answer`) fed
/// requests from the input with the lab keys plus key 13 (allowed only
/// from 198.18.0.10 and .2), a synchronized (stratum 2, GPS) or
/// unsynchronized time source, the default rate limit (2 s minimum, 8 s
/// average, KoD on) over an MRU table of 3 addresses (1 with flag bit 3).
/// Time comes from the input only: requests arrive at 2027-01-15 plus the
/// monotonic time, and the clock read for the transmit timestamp says 20 us
/// later.
///
/// Input layout: a flags byte (bit 0: require authentication; bit 1: no
/// KoD; bit 2: unsynchronized; bit 3: an MRU table of 1), then requests
/// until the input ends (at most 512). Each is an op byte (bits 0-2: the
/// client, see `CLIENTS`: 198.18.0.10-.14, ::1, ::ffff:198.18.0.10,
/// fe80::1; bits 3-4: the MAC: keep the bytes' own / sign as the key byte
/// says / the same, then flip the digest bit the key byte's high nibble
/// picks / sign with the client's own key; bit 5: set mode 3 and version 4;
/// bit 6: source port 50000 + client instead of 123, and a unicast
/// destination (198.18.0.1) instead of an unknown one; bit 7: sent to the
/// group address `GROUPS` has at the client bits instead), an advance byte
/// (time passing before it arrives, see `take_advance`), a key byte when
/// the MAC bits are 1 or 2 (low nibble: 15 writes a crypto-NAK, 14 no MAC,
/// anything else signs with that key id, a key the store lacks as 16 zero
/// digest bytes), then a length byte L and L datagram bytes. With MAC bits
/// 0 and bit 5 clear the bytes go to the responder as they are; otherwise
/// they are parsed (a short or broken datagram becomes its header, or a
/// zero header) and rebuilt.
///
/// Properties, for every request (the panic names the property):
///
/// * nothing panics;
/// * a request sent to a multicast or broadcast address gets nothing, is
///   counted as `multicast_destination` (besides `received` and its
///   version) and leaves the MRU table as it was;
/// * only mode 3 is answered (mode 6/7: `ControlMode`; 1, 2, 4, 5:
///   `NotARequest`; a datagram that does not parse: `BadFormat`), and the
///   clock is read once for a time reply, never otherwise;
/// * every reply is mode 4 with the request's version, origin = the
///   request's transmit, and never longer than the request (no
///   amplification); precisely 48 bytes plus, when the request's MAC
///   verified, 4 + that key's digest length (time replies and KoDs), or 52
///   (crypto-NAK). A bigger request (extension fields) gets no bigger reply,
///   so `WouldAmplify` never happens;
/// * a time reply answers a request whose MAC verified (signed with that
///   key, and its MAC verifies with `KeyStore::check` under the same key
///   id) or one without MAC when authentication is not required (then
///   unsigned); receive = arrival, transmit = the clock read; synchronized:
///   stratum 2, refid GPS; unsynchronized: LI 3, stratum 16;
/// * a request whose MAC fails (unknown key, bad digest or length, key not
///   allowed from that source) gets a crypto-NAK (key id 0, no digest) or,
///   over its source's unverified budget, nothing; a crypto-NAK sent to us
///   gets nothing;
///   no MAC when one is required gets nothing;
/// * a KoD answers only a request whose MAC verified, over the rate limit,
///   with KoD on: stratum 0, LI 3, kiss code RATE, origin = receive =
///   transmit = the request's transmit, poll at least the average interval
///   (log2 3), signed like a time reply;
/// * counters add up: `received` grows by one per request, and exactly one
///   of `bad_format`, `current_version` or `older_version` (by version);
///   every parsed request is counted under exactly one verdict (`declined`,
///   `restricted`, `auth_failed`, `rate_limited` (verified, over the
///   limit), `unverified_limited` (unverified, over its budget), or
///   `replies_sent` for a time reply) and its `kod_sent` /
///   `crypto_naks_sent` when one is sent;
/// * the two budgets (issue 13): a packet that did not verify (any mode
///   but a mode-3 request whose MAC verified with a key allowed from its
///   source) never changes its source's verified bucket, nor its `limited`
///   and `kod_sent`, and never gets a KoD; a verified request never
///   changes its source's unverified bucket; an unverified request over
///   its budget gets nothing and counts as `unverified_limited` only;
/// * the MRU table: a parsed request adds one to its source's count, the
///   table never holds more than its capacity, and a datagram that does
///   not parse is not recorded.
pub fn server_request(data: &[u8]) {
    let mut rest = data;
    let flags = take_byte(&mut rest);
    let config = ResponderConfig {
        require_auth: flags & 1 != 0,
        precision: Log2Seconds(-20),
    };
    let rate = RateLimitConfig {
        kod: flags & 2 == 0,
        capacity: if flags & 8 != 0 { 1 } else { 3 },
        ..RateLimitConfig::default()
    };
    let sync = sync_status(flags & 4 != 0);
    let mut run = Run {
        data,
        config,
        rate,
        keys: &NET_KEYS,
        sync,
        responder: Responder::new(config, Mru::new(rate)),
        mono: Duration::ZERO,
    };
    let mut out = Vec::new();
    for _ in 0..MAX_REQUESTS {
        if rest.is_empty() {
            break;
        }
        run.request(&mut rest, &mut out);
    }
}

struct Run<'a> {
    data: &'a [u8],
    config: ResponderConfig,
    rate: RateLimitConfig,
    keys: &'static KeyStore,
    sync: SyncStatus,
    responder: Responder,
    mono: Duration,
}

/// `after - before`, field by field; `None` if a counter went down.
fn delta(before: &ResponderCounters, after: &ResponderCounters) -> Option<ResponderCounters> {
    Some(ResponderCounters {
        received: after.received.checked_sub(before.received)?,
        current_version: after.current_version.checked_sub(before.current_version)?,
        older_version: after.older_version.checked_sub(before.older_version)?,
        bad_format: after.bad_format.checked_sub(before.bad_format)?,
        auth_failed: after.auth_failed.checked_sub(before.auth_failed)?,
        declined: after.declined.checked_sub(before.declined)?,
        restricted: after.restricted.checked_sub(before.restricted)?,
        rate_limited: after.rate_limited.checked_sub(before.rate_limited)?,
        kod_sent: after.kod_sent.checked_sub(before.kod_sent)?,
        replies_sent: after.replies_sent.checked_sub(before.replies_sent)?,
        crypto_naks_sent: after
            .crypto_naks_sent
            .checked_sub(before.crypto_naks_sent)?,
        multicast_destination: after
            .multicast_destination
            .checked_sub(before.multicast_destination)?,
        unverified_limited: after
            .unverified_limited
            .checked_sub(before.unverified_limited)?,
        signed_sent: after.signed_sent.checked_sub(before.signed_sent)?,
        sign_budget: after.sign_budget.checked_sub(before.sign_budget)?,
        sign_key_unknown: after
            .sign_key_unknown
            .checked_sub(before.sign_key_unknown)?,
    })
}

impl Run<'_> {
    fn fail(&self, property: &str, detail: impl Display) -> ! {
        panic!(
            "server_request: {property}: {detail}; input {}",
            quote(self.data)
        );
    }

    fn request(&mut self, rest: &mut &[u8], out: &mut Vec<u8>) {
        let op = take_byte(rest);
        let who = client(op);
        let mac = (op >> 3) & 3;
        let fix = op & 0x20 != 0;
        let port = if op & 0x40 != 0 {
            50_000 + u16::from(op & 7)
        } else {
            123
        };
        self.mono += take_advance(rest);
        let key_byte = if mac == 1 || mac == 2 {
            take_byte(rest)
        } else {
            0
        };
        let raw = take_datagram(rest);
        let bytes = self.build(raw, fix, mac, key_byte, who.own_key);

        let received_at = NtpTimestamp::from_unix(BASE_UNIX, 0) + NtpDuration::from_std(self.mono);
        let transmit = received_at + NtpDuration::from_micros(TURNAROUND_US);
        let destination = if op & 0x80 != 0 {
            GROUPS.get(usize::from(op & 7)).copied().unwrap_or_default()
        } else if op & 0x40 != 0 {
            Destination::Address(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)))
        } else {
            Destination::Unknown
        };
        let req = Addressed {
            request: Request {
                bytes: &bytes,
                source: SocketAddr::new(who.addr, port),
                received_at,
                monotonic: self.mono,
            },
            destination,
        };
        let counters_before = *self.responder.counters();
        let entry_before = self.responder.mru().get(who.addr).cloned();
        let len_before = self.responder.mru().len();
        let reads = Cell::new(0u32);
        let outcome = self.responder.handle(
            &req,
            &self.sync,
            self.keys,
            || {
                reads.set(reads.get() + 1);
                transmit
            },
            out,
        );
        let Some(counted) = delta(&counters_before, self.responder.counters()) else {
            self.fail(
                "counters never go down",
                format!("{:?}", self.responder.counters()),
            );
        };
        let entry_after = self.responder.mru().get(who.addr).cloned();
        let len_after = self.responder.mru().len();
        if len_after > self.rate.capacity {
            self.fail(
                "the MRU table holds at most its capacity",
                format!("{len_after} > {}", self.rate.capacity),
            );
        }

        let Ok(d) = Datagram::parse(&bytes) else {
            let want = ResponderCounters {
                received: 1,
                bad_format: 1,
                ..ResponderCounters::default()
            };
            if outcome != Outcome::Dropped(DropReason::BadFormat)
                || counted != want
                || entry_after != entry_before
                || len_after != len_before
                || !out.is_empty()
            {
                self.fail(
                    "a datagram that does not parse is counted as bad format and not recorded",
                    format!("{outcome:?}, counted {counted:?}"),
                );
            }
            return;
        };

        if destination.is_group() {
            let mut want = ResponderCounters {
                received: 1,
                multicast_destination: 1,
                ..ResponderCounters::default()
            };
            if d.header.version == 4 {
                want.current_version = 1;
            } else {
                want.older_version = 1;
            }
            if outcome != Outcome::Dropped(DropReason::MulticastDestination)
                || counted != want
                || entry_after != entry_before
                || len_after != len_before
                || !out.is_empty()
                || reads.get() != 0
            {
                self.fail(
                    "a request to a multicast or broadcast address gets nothing, is counted and not recorded",
                    format!("{destination:?}: {outcome:?}, counted {counted:?}"),
                );
            }
            return;
        }

        let Some(entry) = entry_after else {
            self.fail("a parsed request is recorded in the MRU table", "no entry");
        };
        let (count, limited, kod_sent, unverified_limited) =
            entry_before.as_ref().map_or((0, 0, 0, 0), |e: &MruEntry| {
                (e.count, e.limited, e.kod_sent, e.unverified_limited)
            });
        if entry.count != count + 1 {
            self.fail(
                "a parsed request adds one to its source's MRU count",
                format!("{count} -> {}", entry.count),
            );
        }
        // The rate limiter's verdict, as its entry shows it: over the limit
        // (`limited` grew), and at a KoD point (`kod_sent` grew too).
        let kod_point = entry.kod_sent > kod_sent;
        let over_unverified = entry.unverified_limited > unverified_limited;
        let limited_now = entry.limited > limited;

        let auth = packet::authenticate(self.keys, &bytes, &d, Some(who.addr));
        let verified =
            d.header.mode == Mode::Client && matches!(auth, PacketAuth::Mac(MacVerdict::Valid(_)));
        let (verified_before, unverified_before) = entry_before
            .as_ref()
            .map_or((Bucket::default(), Bucket::default()), |e| {
                (e.verified_bucket(), e.unverified_bucket())
            });
        if !verified
            && (entry.verified_bucket() != verified_before
                || limited_now
                || kod_point
                || outcome == Outcome::Reply(ReplyKind::KissOfDeath))
        {
            self.fail(
                "an unverified packet never changes its source's verified bucket and never gets a KoD",
                format!(
                    "{auth} (mode {:?}): {outcome:?}, bucket {verified_before:?} -> {:?}",
                    d.header.mode,
                    entry.verified_bucket()
                ),
            );
        }
        if verified && (entry.unverified_bucket() != unverified_before || over_unverified) {
            self.fail(
                "a verified request never changes its source's unverified bucket",
                format!(
                    "{auth}: {outcome:?}, bucket {unverified_before:?} -> {:?}",
                    entry.unverified_bucket()
                ),
            );
        }
        let want =
            self.expected_counts(&d, &auth, outcome, kod_point, limited_now, over_unverified);
        if counted != want {
            self.fail(
                "counters add up: one verdict per request",
                format!("{outcome:?} for {auth}: counted {counted:?}, expected {want:?}"),
            );
        }
        let clock_reads = u32::from(matches!(outcome, Outcome::Reply(ReplyKind::Time(_))));
        if reads.get() != clock_reads {
            self.fail(
                "the clock is read once for a time reply, never otherwise",
                format!("{} reads for {outcome:?}", reads.get()),
            );
        }
        match outcome {
            Outcome::Dropped(_) if !out.is_empty() => {
                self.fail(
                    "nothing is sent for a dropped request",
                    format!("{outcome:?}"),
                );
            }
            Outcome::Dropped(_) => {}
            Outcome::Reply(kind) => {
                self.check_reply(kind, &bytes, &d, &auth, out, received_at, transmit)
            }
        }
    }

    /// The request as the event describes it (see the input layout).
    fn build(&self, raw: &[u8], fix: bool, mac: u8, key_byte: u8, own_key: u32) -> Vec<u8> {
        if !fix && mac == 0 {
            return raw.to_vec();
        }
        let mut d = Datagram::parse(raw).unwrap_or_else(|_| {
            let mut head = raw.get(..HEADER_LEN).unwrap_or(raw).to_vec();
            head.resize(HEADER_LEN, 0);
            Datagram::new(Header::parse(&head).unwrap_or(Header::new(Mode::Client)))
        });
        if fix {
            d.header.mode = Mode::Client;
            d.header.version = 4;
        }
        let mut out = Vec::new();
        match mac {
            0 => out = d.to_bytes(),
            3 => sign_with(self.keys, own_key, &d, &mut out),
            _ => {
                match key_byte & 15 {
                    15 => packet::crypto_nak(&d, &mut out),
                    14 => d.write_signed_part(&mut out),
                    id => sign_with(self.keys, u32::from(id), &d, &mut out),
                }
                if mac == 2 {
                    flip_digest_bit(&mut out, d.signed_len(), usize::from(key_byte >> 4) * 11);
                }
            }
        }
        out
    }

    /// The counters a parsed request must move, given what became of it.
    fn expected_counts(
        &self,
        d: &Datagram,
        auth: &PacketAuth,
        outcome: Outcome,
        kod_point: bool,
        limited: bool,
        over_unverified: bool,
    ) -> ResponderCounters {
        let mut want = ResponderCounters {
            received: 1,
            ..ResponderCounters::default()
        };
        if d.header.version == 4 {
            want.current_version = 1;
        } else {
            want.older_version = 1;
        }
        let mode = d.header.mode;
        if mode != Mode::Client
            && !matches!(
                outcome,
                Outcome::Dropped(DropReason::ControlMode | DropReason::NotARequest)
            )
        {
            self.fail(
                "only mode 3 is answered or rate limited",
                format!("mode {mode:?}: {outcome:?}"),
            );
        }
        let verified = matches!(auth, PacketAuth::Mac(MacVerdict::Valid(_)));
        let bad_mac = matches!(
            auth,
            PacketAuth::Mac(
                MacVerdict::UnknownKey(_)
                    | MacVerdict::InvalidMac(_)
                    | MacVerdict::BadLength { .. }
            )
        );
        let refused = |want: &mut ResponderCounters| {
            if bad_mac {
                want.auth_failed = 1;
            } else {
                want.restricted = 1;
            }
        };
        // No signing key here: a request for a signed reply is never
        // answered, whatever its MAC or rate.
        let wishes = mode == Mode::Client
            && mcast_keys::signed::requested_key(d) != mcast_keys::signed::SignatureWish::None;
        if wishes != (outcome == Outcome::Dropped(DropReason::SigningKeyUnknown)) {
            self.fail(
                "a request for a signed reply with no signing key gets nothing",
                format!("{outcome:?}"),
            );
        }
        let ok = match outcome {
            Outcome::Dropped(DropReason::SigningKeyUnknown) => {
                want.sign_key_unknown = 1;
                wishes
            }
            // Without signing keys there is no signing budget to spend.
            Outcome::Dropped(DropReason::SignBudget) => false,
            Outcome::Dropped(DropReason::BadFormat) => false,
            Outcome::Dropped(DropReason::ControlMode) => {
                want.restricted = 1;
                matches!(mode, Mode::Control | Mode::Private)
            }
            Outcome::Dropped(DropReason::NotARequest) => {
                want.declined = 1;
                !matches!(mode, Mode::Client | Mode::Control | Mode::Private)
            }
            Outcome::Dropped(DropReason::Unauthenticated) => {
                want.restricted = 1;
                *auth == PacketAuth::NoMac && self.config.require_auth && !over_unverified
            }
            Outcome::Dropped(DropReason::CryptoNak) => {
                want.restricted = 1;
                *auth == PacketAuth::CryptoNak && !over_unverified
            }
            Outcome::Dropped(DropReason::RateLimited) => {
                want.rate_limited = 1;
                verified && limited && !(kod_point && self.rate.kod)
            }
            Outcome::Dropped(DropReason::UnverifiedLimited) => {
                want.unverified_limited = 1;
                !verified && over_unverified
            }
            // Step 1 drops these; the caller checked them.
            Outcome::Dropped(DropReason::MulticastDestination) => false,
            // A batch of one always has room for its reply.
            Outcome::Dropped(DropReason::WouldAmplify | DropReason::NoRoom) => false,
            Outcome::Reply(ReplyKind::Time(k)) => {
                want.replies_sent = 1;
                !limited
                    && !over_unverified
                    && match (auth, k) {
                        (PacketAuth::Mac(MacVerdict::Valid(v)), Some(k)) => *v == k,
                        (PacketAuth::NoMac, None) => !self.config.require_auth,
                        _ => false,
                    }
            }
            Outcome::Reply(ReplyKind::KissOfDeath) => {
                want.rate_limited = 1;
                want.kod_sent = 1;
                kod_point && verified && self.rate.kod
            }
            Outcome::Reply(ReplyKind::CryptoNak) => {
                want.crypto_naks_sent = 1;
                refused(&mut want);
                !over_unverified && matches!(auth, PacketAuth::Mac(v) if !v.is_valid())
            }
        };
        if !ok {
            self.fail(
                "the outcome fits the request",
                format!(
                    "{outcome:?} for mode {mode:?}, {auth}, require_auth {}, over limit {limited} (KoD point {kod_point})",
                    self.config.require_auth
                ),
            );
        }
        if matches!(auth, PacketAuth::Mac(v) if !v.is_valid())
            && !matches!(
                outcome,
                Outcome::Reply(ReplyKind::CryptoNak)
                    | Outcome::Dropped(
                        DropReason::UnverifiedLimited
                            | DropReason::ControlMode
                            | DropReason::NotARequest
                    )
            )
        {
            self.fail(
                "a request whose MAC fails gets a crypto-NAK or nothing",
                format!("{outcome:?} for {auth}"),
            );
        }
        want
    }

    /// A reply: its framing, size, timestamps and MAC.
    #[allow(clippy::too_many_arguments)]
    fn check_reply(
        &self,
        kind: ReplyKind,
        request: &[u8],
        d: &Datagram,
        auth: &PacketAuth,
        out: &[u8],
        received_at: NtpTimestamp,
        transmit: NtpTimestamp,
    ) {
        let Ok(r) = Datagram::parse(out) else {
            self.fail("a reply parses", quote(out));
        };
        let q = &d.header;
        let h = &r.header;
        // The key the reply must carry: the request's, when it verified.
        let key = match auth {
            PacketAuth::Mac(MacVerdict::Valid(k)) => self.keys.get(*k),
            _ => None,
        };
        let size = match kind {
            ReplyKind::CryptoNak => HEADER_LEN + 4,
            _ => HEADER_LEN + key.map_or(0, |k| 4 + k.mac_len()),
        };
        if out.len() != size || out.len() > request.len() || !r.extensions.is_empty() {
            self.fail(
                "a reply is 48 bytes plus the request's MAC size (52 for a crypto-NAK), never more than the request",
                format!("{kind:?}: {} bytes for a {}-byte request", out.len(), request.len()),
            );
        }
        if h.mode != Mode::Server || h.version != q.version || h.origin != q.transmit {
            self.fail(
                "a reply is mode 4 with the request's version, origin = request transmit",
                format!("{kind:?}: {h:?} to {q:?}"),
            );
        }
        let reply_auth = packet::authenticate(self.keys, out, &r, None);
        let want_auth = match (kind, key) {
            (ReplyKind::CryptoNak, _) => PacketAuth::CryptoNak,
            (_, Some(k)) => PacketAuth::Mac(MacVerdict::Valid(k.id())),
            (_, None) => PacketAuth::NoMac,
        };
        let mac_ok = match (&r.mac, key) {
            (Some(m), Some(k)) if kind != ReplyKind::CryptoNak => {
                m.key_id == u32::from(k.id().get())
                    && self.keys.check(
                        m.key_id,
                        out.get(..r.signed_len()).unwrap_or_default(),
                        &m.digest,
                        None,
                    ) == MacVerdict::Valid(k.id())
            }
            _ => true,
        };
        if reply_auth != want_auth || !mac_ok {
            self.fail(
                "a reply is signed with the request's key (crypto-NAK: key id 0, no digest)",
                format!("{kind:?}: reply {reply_auth}, expected {want_auth}"),
            );
        }
        match kind {
            ReplyKind::Time(_) => {
                let synced = match self.sync.header() {
                    Some(s) => {
                        h.stratum == s.stratum.min(MAX_ADVERTISED_STRATUM)
                            && h.reference_id == s.reference_id
                            && h.leap == s.leap
                    }
                    None => h.stratum == 16 && h.leap == LeapIndicator::Unsynchronized,
                };
                if h.receive != received_at || h.transmit != transmit || h.poll != q.poll || !synced
                {
                    self.fail(
                        "a time reply carries arrival, clock, the request's poll and our sync state",
                        format!("{h:?}"),
                    );
                }
            }
            ReplyKind::KissOfDeath => {
                let floor = i8::try_from(self.rate.average_log2).unwrap_or(i8::MAX);
                if h.kiss_code() != Some(KissCode::Rate)
                    || h.stratum != 0
                    || h.leap != LeapIndicator::Unsynchronized
                    || h.receive != q.transmit
                    || h.transmit != q.transmit
                    || h.poll.0 != q.poll.0.max(floor)
                {
                    self.fail(
                        "a KoD is RATE, stratum 0, LI 3, echoes the request, poll at least the average",
                        format!("{h:?}"),
                    );
                }
            }
            ReplyKind::CryptoNak => {
                if h.receive != received_at || h.transmit != NtpTimestamp::ZERO {
                    self.fail(
                        "a crypto-NAK carries arrival and no transmit time",
                        format!("{h:?}"),
                    );
                }
            }
        }
    }
}
