//! The `upstream` time source: a local NTP daemon (chronyd, ntpd) queried
//! in client mode (RFC 5905 section 8), whose replies become the header
//! fields this server advertises.
//!
//! Sans-I/O: [`Upstream`] builds the mode-3 queries and judges the replies;
//! the caller owns the socket, the clock and the randomness, and hands in
//! monotonic time (`Duration` since start), NTP timestamps and the random
//! transmit cookie.
//!
//! What is advertised (RFC 5905 A.5.5.2, `clock_update`):
//! - stratum = upstream's + 1, at most 14 ([`MAX_ADVERTISED_STRATUM`]);
//!   an upstream at stratum 14 or 15 makes us unsynchronized instead;
//! - reference id = the upstream's address ([`refid_of`]);
//! - root delay = upstream's root delay + the measured round-trip delay;
//! - root dispersion = upstream's root dispersion + the sample dispersion
//!   (both precisions + 15 ppm of the round trip) + |offset| + 15 ppm of
//!   the sample's age;
//! - leap indicator and reference time copied from the upstream.
//!
//! When we are unsynchronized (and say why, see [`Upstream::status`]):
//! - no usable reply yet;
//! - the latest reply that answered our query was not usable time (LI=3,
//!   stratum 0 or 16, Kiss-o'-Death DENY/RSTR, root distance >= 16 s,
//!   stratum that would make ours 15 or more): at once, since the upstream
//!   itself says so;
//! - no usable reply for [`MISSED_INTERVALS`] query intervals plus
//!   [`REPLY_TIMEOUT`] (50 s at the default 16 s interval).
//!
//! Query schedule: every `query-interval-s` while synchronized. While
//! unsynchronized the first [`FAST_QUERIES`] queries go [`FAST_INTERVAL`]
//! apart (at start-up, and again each time synchronization is lost), so the
//! server starts sending within seconds of the upstream being ready.
//!
//! Only a reply from the queried address and port, in mode 4, whose origin
//! timestamp equals the random transmit timestamp of our latest query, is
//! an answer: anything else is ignored and cannot change our state, so a
//! stray or forged packet can neither feed us time nor silence the server.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mcast_proto::time::exchange;
use mcast_proto::{
    Header, KissCode, Log2Seconds, Mode, NtpDuration, NtpShort, NtpTimestamp, RefId, SampleLimits,
    Unusable,
};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::exchange::{Exchanges, Kiss, Outstanding, Ticket, kiss};
use crate::labels;
use crate::server::sync::{MAX_ADVERTISED_STRATUM, SyncStatus, SystemHeader, Unsync};

/// Query spacing while unsynchronized, for the first [`FAST_QUERIES`].
pub const FAST_INTERVAL: Duration = Duration::from_secs(2);

/// How many queries go [`FAST_INTERVAL`] apart after start-up or after
/// losing synchronization.
pub const FAST_QUERIES: u32 = 8;

/// Query intervals without a usable reply before we declare ourselves
/// unsynchronized.
pub const MISSED_INTERVALS: u32 = 3;

/// How long a query may wait for its reply before it counts as lost (also
/// the grace added to the staleness limit, so the reply to the query that
/// completes the last interval still counts).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Frequency tolerance (RFC 5905 PHI, 15 ppm): how fast dispersion grows.
const PHI_PPM: i64 = 15;

/// What the caller configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The daemon queried (`time-source.upstream`).
    pub address: SocketAddr,
    /// Query interval while synchronized (`time-source.query-interval-s`).
    pub query_interval: Duration,
    /// Our own clock's precision (part of every sample's dispersion).
    pub precision: Log2Seconds,
}

/// The reference id of an upstream server (RFC 5905 section 7.3): its IPv4
/// address, or for IPv6 the first four bytes of the MD5 digest of the
/// 16-byte address (as ntpd computes it). An IPv4-mapped IPv6 address is
/// the IPv4 address.
pub fn refid_of(addr: IpAddr) -> RefId {
    match addr {
        IpAddr::V4(a) => RefId::from_ipv4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => RefId::from_ipv4(v4),
            None => RefId::from_ipv6(a, |bytes| Md5::digest(bytes).into()),
        },
    }
}

/// One usable reply, measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The upstream's header as it sent it.
    pub header: Header,
    /// Upstream's clock minus ours.
    pub offset: NtpDuration,
    /// Round-trip delay (at least our precision).
    pub delay: NtpDuration,
    /// Sample dispersion when received: both precisions + PHI x round trip.
    pub dispersion: NtpDuration,
    /// Monotonic time it arrived.
    pub at: Duration,
}

/// What became of a datagram handed to [`Upstream::on_reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Usable time: it is now the sample we advertise from.
    Accepted(Sample),
    /// The upstream answered our query, but with something that is not
    /// usable time; we are unsynchronized (except after a `RATE` KoD, which
    /// only slows the queries down).
    Refused(UpstreamProblem),
    /// Not an answer to our latest query: ignored.
    Ignored(Ignored),
}

/// What went wrong with the upstream (`kind`; status JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum UpstreamProblem {
    /// A query went unanswered.
    NoReply,
    /// Sending or receiving failed (e.g. nothing listens there).
    SocketError {
        /// The system's error.
        error: String,
    },
    /// A `RATE` Kiss-o'-Death: queries slow down to the configured interval.
    RateLimited {
        /// The interval now used, seconds.
        query_interval_s: u64,
    },
    /// A `DENY`, `RSTR` or other Kiss-o'-Death.
    Refused {
        /// The kiss code.
        kiss_code: String,
    },
    /// It is not synchronized itself.
    Unsynchronized {
        /// Its leap indicator.
        leap: u8,
        /// Its stratum.
        stratum: u8,
        /// Its reference id as ntpq shows it.
        refid: String,
    },
    /// Its time failed a sanity check ([`crate::labels::unusable`]).
    UnusableTime {
        /// Which check.
        detail: String,
    },
    /// Its stratum is so high that we would announce 15 or more, which
    /// ntpd 4.2.8 clients refuse.
    StratumTooHigh {
        /// Its stratum.
        stratum: u8,
    },
    /// A zero receive timestamp.
    ZeroReceive,
    /// A reference time later than its transmit time.
    ReferenceAfterTransmit,
}

/// Why a datagram on the upstream socket was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// It came from another address.
    WrongSource(SocketAddr),
    /// It did not parse.
    Malformed,
    /// Not a server reply (mode 4).
    NotAReply(Mode),
    /// No query is outstanding (a duplicate?).
    NoQueryOutstanding,
    /// Its origin is not our query's cookie.
    WrongOrigin,
    /// A Kiss-o'-Death that does not echo the cookie in all three fields.
    BogusKissOfDeath,
}

/// Counters and the latest measurement, as `mcast-server status` shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpstreamReport {
    /// The daemon queried.
    pub address: Option<SocketAddr>,
    /// Query interval while synchronized, seconds.
    pub query_interval_s: f64,
    /// Queries sent.
    pub queries: u64,
    /// Replies that answered a query (usable or not).
    pub replies: u64,
    /// Datagrams ignored (not an answer to our query).
    pub ignored: u64,
    /// Seconds since the latest usable reply.
    pub last_reply_ago_s: Option<f64>,
    /// The upstream's stratum in that reply.
    pub stratum: Option<u8>,
    /// Upstream's clock minus ours, seconds.
    pub offset_s: Option<f64>,
    /// Round-trip delay, seconds.
    pub delay_s: Option<f64>,
    /// The upstream's own root delay, seconds.
    pub upstream_root_delay_s: Option<f64>,
    /// The upstream's own root dispersion, seconds.
    pub upstream_root_dispersion_s: Option<f64>,
    /// The latest problem (no reply, refused reply, socket error), if any.
    pub last_problem: Option<UpstreamProblem>,
}

/// Client-mode state against one upstream daemon.
#[derive(Debug, Clone)]
pub struct Upstream {
    config: UpstreamConfig,
    refid: RefId,
    /// The query in flight (at most one: each query forgets the last).
    exchanges: Exchanges,
    next_query: Duration,
    fast_left: u32,
    /// Whether we were synchronized when the last query was sent (to refill
    /// the fast queries when synchronization is lost).
    synced_at_last_query: bool,
    /// Slow down after a RATE KoD until the next usable reply.
    rate_limited: bool,
    /// The latest usable reply; cleared by a refused one.
    sample: Option<Sample>,
    /// Why the latest answer to our query was refused, if it was.
    refused: Option<UpstreamProblem>,
    /// The latest problem of any kind, for status.
    problem: Option<UpstreamProblem>,
    /// A socket error was reported since the outstanding query was sent
    /// (it explains the missing reply better than "no reply").
    error_for_outstanding: bool,
    queries: u64,
    replies: u64,
    ignored: u64,
}

impl Upstream {
    /// A fresh client whose first query is due at `now`.
    pub fn new(config: UpstreamConfig, now: Duration) -> Self {
        Upstream {
            refid: refid_of(config.address.ip()),
            config,
            exchanges: Exchanges::new(),
            next_query: now,
            fast_left: FAST_QUERIES,
            synced_at_last_query: false,
            rate_limited: false,
            sample: None,
            refused: None,
            problem: None,
            error_for_outstanding: false,
            queries: 0,
            replies: 0,
            ignored: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// The reference id we advertise while synchronized.
    pub fn refid(&self) -> RefId {
        self.refid
    }

    /// Monotonic time the next query is due.
    pub fn due(&self) -> Duration {
        self.next_query
    }

    /// How old the latest usable reply may get before we are unsynchronized.
    pub fn stale_after(&self) -> Duration {
        self.config.query_interval * MISSED_INTERVALS + REPLY_TIMEOUT
    }

    /// The mode-3 query to send now and its ticket. `random` becomes the
    /// cookie sent as the transmit timestamp (a reply must echo it as its
    /// origin; see [`crate::exchange`]), so our clock reading is never on
    /// the wire; `t1` is our clock right before the send (refine it with
    /// [`Upstream::transmitted`] and the ticket).
    pub fn query(
        &mut self,
        now: Duration,
        random: u64,
        t1: NtpTimestamp,
    ) -> ([u8; mcast_proto::HEADER_LEN], Ticket) {
        let unanswered = !self.exchanges.is_empty();
        self.exchanges.clear();
        if unanswered && !self.error_for_outstanding {
            self.problem = Some(UpstreamProblem::NoReply);
        }
        self.error_for_outstanding = false;
        let synced = self.status(now).header().is_some();
        if self.synced_at_last_query && !synced {
            self.fast_left = FAST_QUERIES;
        }
        self.synced_at_last_query = synced;
        let interval = if !synced && !self.rate_limited && self.fast_left > 0 {
            self.fast_left -= 1;
            FAST_INTERVAL
        } else {
            self.config.query_interval
        };
        self.next_query = now + interval;
        let (cookie, ticket) = self.exchanges.send(random, t1, now);
        self.queries += 1;
        let mut h = Header::new(Mode::Client);
        h.poll = Log2Seconds(log2_ceil(self.config.query_interval));
        h.precision = self.config.precision;
        h.transmit = cookie;
        (h.to_bytes(), ticket)
    }

    /// The kernel's transmit timestamp of the query sent with `ticket`,
    /// when the socket reports one: a better T1 than the clock reading.
    /// False when it is not that query's (too late, or another query's).
    pub fn transmitted(&mut self, ticket: Ticket, at: NtpTimestamp) -> bool {
        self.exchanges.transmitted(ticket, at)
    }

    /// Sending the query or receiving failed (e.g. `ECONNREFUSED`: nothing
    /// listens at the upstream's address). Shown in status; the schedule
    /// goes on.
    pub fn socket_error(&mut self, error: String) {
        self.error_for_outstanding = !self.exchanges.is_empty();
        self.problem = Some(UpstreamProblem::SocketError { error });
    }

    /// A datagram arrived from `from` at our clock `t4` (T4, the kernel
    /// receive timestamp where there is one), monotonic time `now`.
    pub fn on_reply(
        &mut self,
        from: SocketAddr,
        bytes: &[u8],
        t4: NtpTimestamp,
        now: Duration,
    ) -> Verdict {
        let verdict = match self.matching(from, bytes) {
            Ok((h, out)) => self.judge(h, out, t4, now),
            Err(why) => Verdict::Ignored(why),
        };
        match &verdict {
            Verdict::Ignored(_) => self.ignored += 1,
            Verdict::Accepted(s) => {
                self.replies += 1;
                self.sample = Some(*s);
                self.refused = None;
                self.problem = None;
                self.rate_limited = false;
            }
            Verdict::Refused(why) => {
                self.replies += 1;
                self.problem = Some(why.clone());
            }
        }
        verdict
    }

    /// The reply's header and the query it answers, or why it answers none.
    fn matching(&self, from: SocketAddr, bytes: &[u8]) -> Result<(Header, Outstanding), Ignored> {
        if from != self.config.address {
            return Err(Ignored::WrongSource(from));
        }
        let h = Header::parse(bytes).map_err(|_| Ignored::Malformed)?;
        if h.mode != Mode::Server {
            return Err(Ignored::NotAReply(h.mode));
        }
        if self.exchanges.is_empty() {
            return Err(Ignored::NoQueryOutstanding);
        }
        let Some(out) = self.exchanges.find(h.origin) else {
            return Err(Ignored::WrongOrigin);
        };
        Ok((h, out))
    }

    /// Judges an answer to our query `out`, received at `t4`.
    fn judge(&mut self, h: Header, out: Outstanding, t4: NtpTimestamp, now: Duration) -> Verdict {
        // It answers our query: from now on it counts, usable or not.
        match kiss(&h, out.cookie, true) {
            Kiss::Counts(code) => {
                self.exchanges.clear();
                return self.kiss(code, now);
            }
            Kiss::Bogus => return Verdict::Ignored(Ignored::BogusKissOfDeath),
            Kiss::NotKiss => self.exchanges.clear(),
        }
        let limits = SampleLimits::default();
        if let Some(why) = h.unusable_reason(&limits) {
            return self.refuse(match why {
                Unusable::Unsynchronized | Unusable::StratumZero => {
                    UpstreamProblem::Unsynchronized {
                        leap: h.leap.to_bits(),
                        stratum: h.stratum,
                        refid: h.reference_id.display(h.stratum),
                    }
                }
                other => UpstreamProblem::UnusableTime {
                    detail: labels::unusable(&other).into(),
                },
            });
        }
        if h.stratum >= MAX_ADVERTISED_STRATUM {
            return self.refuse(UpstreamProblem::StratumTooHigh { stratum: h.stratum });
        }
        if h.receive.is_zero() {
            return self.refuse(UpstreamProblem::ZeroReceive);
        }
        if !h.reference.is_zero() && h.reference - h.transmit > NtpDuration::ZERO {
            return self.refuse(UpstreamProblem::ReferenceAfterTransmit);
        }
        let (offset, delay) = exchange(out.t1, h.receive, h.transmit, t4);
        let ours = self.config.precision.to_duration();
        let delay = delay.max(ours);
        let round_trip = (t4 - out.t1).max(NtpDuration::ZERO);
        let dispersion = h.precision.to_duration() + ours + phi(round_trip);
        // Synchronized now: the fast start-up queries are over.
        self.next_query = out.sent + self.config.query_interval;
        Verdict::Accepted(Sample {
            header: h,
            offset,
            delay,
            dispersion,
            at: now,
        })
    }

    fn refuse(&mut self, why: UpstreamProblem) -> Verdict {
        self.sample = None;
        self.refused = Some(why.clone());
        Verdict::Refused(why)
    }

    fn kiss(&mut self, code: KissCode, now: Duration) -> Verdict {
        match code {
            KissCode::Rate => {
                // Keep the sample we have; query at the configured interval
                // until the next usable reply.
                self.rate_limited = true;
                self.next_query = self.next_query.max(now + self.config.query_interval);
                Verdict::Refused(UpstreamProblem::RateLimited {
                    query_interval_s: self.config.query_interval.as_secs(),
                })
            }
            KissCode::Deny | KissCode::Rstr | KissCode::Experimental(_) => {
                self.refuse(UpstreamProblem::Refused {
                    kiss_code: code.to_string(),
                })
            }
        }
    }

    /// The latest problem, counting an outstanding query older than
    /// [`REPLY_TIMEOUT`] as lost.
    fn problem(&self, now: Duration) -> Option<UpstreamProblem> {
        match self.exchanges.oldest() {
            Some(o)
                if now.saturating_sub(o.sent) > REPLY_TIMEOUT && !self.error_for_outstanding =>
            {
                Some(UpstreamProblem::NoReply)
            }
            _ => self.problem.clone(),
        }
    }

    /// Whether we can vouch for our time at monotonic `now`, with the
    /// header fields to advertise (dispersion grown to `now`), or why not.
    pub fn status(&self, now: Duration) -> SyncStatus {
        let unsync = |reason: Unsync| SyncStatus::Unsynchronized { reason };
        let upstream = self.config.address;
        if let Some(why) = &self.refused {
            // The refusal, unless something newer went wrong since (the
            // upstream stopped answering, say).
            return unsync(Unsync::UpstreamRefused {
                upstream,
                problem: self.problem(now).unwrap_or_else(|| why.clone()),
            });
        }
        let Some(s) = self.sample else {
            return unsync(Unsync::UpstreamNoSampleYet {
                upstream,
                problem: self.problem(now),
            });
        };
        let age = now.saturating_sub(s.at);
        if age > self.stale_after() {
            return unsync(Unsync::UpstreamStale {
                upstream,
                after_s: self.stale_after().as_secs(),
                intervals: MISSED_INTERVALS,
                problem: self.problem(now).unwrap_or(UpstreamProblem::NoReply),
            });
        }
        let up = &s.header;
        let root_delay = up.root_delay.to_duration() + s.delay;
        let root_dispersion = up.root_dispersion.to_duration()
            + s.dispersion
            + s.offset.abs()
            + phi(NtpDuration::from_std(age));
        SyncStatus::Synchronized(SystemHeader {
            leap: up.leap,
            stratum: up.stratum.saturating_add(1).min(MAX_ADVERTISED_STRATUM),
            reference_id: self.refid,
            root_delay: NtpShort::from_duration(root_delay),
            root_dispersion: NtpShort::from_duration(root_dispersion),
            reference_time: up.reference,
        })
    }

    /// The latest usable sample, if any.
    pub fn sample(&self) -> Option<&Sample> {
        self.sample.as_ref()
    }

    /// Counters and the latest measurement at monotonic `now`.
    pub fn report(&self, now: Duration) -> UpstreamReport {
        let s = self.sample.as_ref();
        UpstreamReport {
            address: Some(self.config.address),
            query_interval_s: self.config.query_interval.as_secs_f64(),
            queries: self.queries,
            replies: self.replies,
            ignored: self.ignored,
            last_reply_ago_s: s.map(|s| now.saturating_sub(s.at).as_secs_f64()),
            stratum: s.map(|s| s.header.stratum),
            offset_s: s.map(|s| s.offset.as_seconds_f64()),
            delay_s: s.map(|s| s.delay.as_seconds_f64()),
            upstream_root_delay_s: s.map(|s| s.header.root_delay.as_seconds_f64()),
            upstream_root_dispersion_s: s.map(|s| s.header.root_dispersion.as_seconds_f64()),
            last_problem: self.problem(now),
        }
    }
}

/// Dispersion growth over `d` at 15 ppm.
fn phi(d: NtpDuration) -> NtpDuration {
    d * PHI_PPM / 1_000_000
}

/// The smallest n with 2^n s >= `d` (the poll field of our queries).
fn log2_ceil(d: Duration) -> i8 {
    let secs = d.as_secs().max(1);
    let n = u64::BITS - (secs - 1).leading_zeros();
    i8::try_from(n).unwrap_or(i8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcast_proto::LeapIndicator;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const UP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 123);
    const Q: Duration = Duration::from_secs(16);

    fn config() -> UpstreamConfig {
        UpstreamConfig {
            address: UP,
            query_interval: Q,
            precision: Log2Seconds(-20),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// `m` binary milliseconds (2^-10 s each): exact in NTP fixed point,
    /// so halving and summing them in the tests never rounds.
    fn ms(m: i64) -> NtpDuration {
        NtpDuration::from_bits(m << 22)
    }

    /// Our clock at monotonic `mono`: NTP time 3_900_000_000 s + mono.
    fn clock(mono: Duration) -> NtpTimestamp {
        NtpTimestamp::from_parts(3_900_000_000, 0) + NtpDuration::from_std(mono)
    }

    /// A synchronized stratum-2 reply to `cookie` from an upstream whose
    /// clock is `offset` ahead, received `delay` after `t1` (symmetric).
    fn reply(
        cookie: NtpTimestamp,
        t1: NtpTimestamp,
        offset: NtpDuration,
        delay: NtpDuration,
    ) -> Header {
        let mut h = Header::new(Mode::Server);
        h.stratum = 2;
        h.precision = Log2Seconds(-20);
        h.root_delay = NtpShort::from_duration(ms(10));
        h.root_dispersion = NtpShort::from_duration(ms(20));
        h.reference_id = RefId::from_ipv4(Ipv4Addr::new(198, 18, 0, 9));
        h.origin = cookie;
        h.receive = t1 + delay / 2 + offset;
        h.transmit = h.receive;
        h.reference = h.receive - NtpDuration::from_secs(30);
        h
    }

    /// Sends a query at `mono` and returns (cookie, t1).
    fn ask(u: &mut Upstream, mono: Duration, cookie: u64) -> (NtpTimestamp, NtpTimestamp) {
        let (c, t1, _) = ask_with_ticket(u, mono, cookie);
        (c, t1)
    }

    /// Sends a query at `mono` and returns (cookie, t1, ticket).
    fn ask_with_ticket(
        u: &mut Upstream,
        mono: Duration,
        cookie: u64,
    ) -> (NtpTimestamp, NtpTimestamp, Ticket) {
        let t1 = clock(mono);
        let (bytes, ticket) = u.query(mono, cookie, t1);
        let cookie = NtpTimestamp::from_bits(cookie);
        let q = Header::parse(&bytes).unwrap();
        assert_eq!(
            (
                q.mode,
                q.version,
                q.transmit,
                q.origin,
                q.receive,
                q.reference
            ),
            (
                Mode::Client,
                4,
                cookie,
                NtpTimestamp::ZERO,
                NtpTimestamp::ZERO,
                NtpTimestamp::ZERO
            ),
            "a v4 mode-3 query carrying only the cookie"
        );
        (cookie, t1, ticket)
    }

    /// One full good exchange at `mono`; returns the verdict.
    fn good_exchange(u: &mut Upstream, mono: Duration, cookie: u64) -> Verdict {
        let (c, t1) = ask(u, mono, cookie);
        let h = reply(c, t1, ms(3), ms(2));
        u.on_reply(
            UP,
            &h.to_bytes(),
            t1 + ms(2),
            mono + Duration::from_millis(2),
        )
    }

    fn reason(s: &SyncStatus) -> Unsync {
        match s {
            SyncStatus::Unsynchronized { reason } => reason.clone(),
            SyncStatus::Synchronized(h) => panic!("expected unsynchronized, got {h:?}"),
        }
    }

    #[test]
    fn a_good_reply_gives_stratum_plus_one_refid_and_accumulated_distance() {
        let mut u = Upstream::new(config(), secs(0));
        assert!(
            u.status(secs(0)).header().is_none(),
            "unsynchronized before any reply"
        );
        let v = good_exchange(&mut u, secs(0), 0x1234_5678_9abc_def0);
        let Verdict::Accepted(s) = v else {
            panic!("good reply refused: {v:?}")
        };
        // offset 3 ms, delay 2 ms (the upstream's turnaround is zero).
        assert_eq!(s.offset, ms(3));
        assert_eq!(s.delay, ms(2));
        let st = u.status(secs(10));
        let h = st.header().expect("synchronized after a good reply");
        assert_eq!(h.stratum, 3, "upstream stratum 2 + 1");
        assert_eq!(h.reference_id, RefId::from_ipv4(Ipv4Addr::LOCALHOST));
        assert_eq!(h.leap, LeapIndicator::NoWarning);
        assert_eq!(
            h.reference_time, s.header.reference,
            "upstream's reference time"
        );
        // Root delay = 10 ms upstream + 2 ms measured.
        assert_eq!(h.root_delay, NtpShort::from_duration(ms(12)));
        // Root dispersion = 20 ms upstream + (2^-20 + 2^-20 + 15 ppm x 2 ms)
        // + |3 ms offset| + 15 ppm x 10 s age.
        let precision = NtpDuration::from_log2(-20);
        let expected = ms(20)
            + precision
            + precision
            + ms(2) * 15 / 1_000_000
            + ms(3)
            + NtpDuration::from_micros(150);
        let got = h.root_dispersion.to_duration();
        assert!(
            (got - expected).abs() <= NtpDuration::from_micros(16),
            "root dispersion {got} s, expected {expected} s (within one NtpShort unit)"
        );
        // Ten seconds later it has grown by 150 us more.
        let later = u.status(secs(20));
        let grown = later.header().unwrap().root_dispersion.to_duration() - got;
        assert!(
            (grown - NtpDuration::from_micros(150)).abs() <= NtpDuration::from_micros(16),
            "dispersion grows 15 ppm with age: +{grown} s over 10 s"
        );
    }

    #[test]
    fn leap_warning_is_copied() {
        let mut u = Upstream::new(config(), secs(0));
        let (c, t1) = ask(&mut u, secs(0), 77);
        let mut h = reply(c, t1, ms(0), ms(1));
        h.leap = LeapIndicator::AddSecond;
        assert!(matches!(
            u.on_reply(UP, &h.to_bytes(), t1 + ms(1), secs(0)),
            Verdict::Accepted(_)
        ));
        assert_eq!(
            u.status(secs(1)).header().unwrap().leap,
            LeapIndicator::AddSecond
        );
    }

    #[test]
    fn replies_not_answering_our_query_are_ignored_and_change_nothing() {
        let mut u = Upstream::new(config(), secs(0));
        let (c, t1) = ask(&mut u, secs(0), 1000);
        let good = reply(c, t1, ms(0), ms(1));
        let t4 = t1 + ms(1);

        let mut wrong_origin = good;
        wrong_origin.origin = NtpTimestamp::from_bits(999);
        let other_port = SocketAddr::new(UP.ip(), 1123);
        let other_host = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 66)), 123);
        let mut broadcast = good;
        broadcast.mode = Mode::Broadcast;
        for (what, from, bytes) in [
            ("wrong origin", UP, wrong_origin.to_bytes().to_vec()),
            ("other port", other_port, good.to_bytes().to_vec()),
            ("other host", other_host, good.to_bytes().to_vec()),
            ("mode 5", UP, broadcast.to_bytes().to_vec()),
            ("truncated", UP, good.to_bytes()[..40].to_vec()),
        ] {
            let v = u.on_reply(from, &bytes, t4, secs(0));
            assert!(matches!(v, Verdict::Ignored(_)), "{what}: {v:?}");
            assert!(
                u.status(secs(0)).header().is_none(),
                "{what} must not synchronize us"
            );
        }
        // The real answer still counts afterwards ...
        assert!(matches!(
            u.on_reply(UP, &good.to_bytes(), t4, secs(0)),
            Verdict::Accepted(_)
        ));
        // ... once: a duplicate is ignored.
        assert!(matches!(
            u.on_reply(UP, &good.to_bytes(), t4, secs(0)),
            Verdict::Ignored(_)
        ));
        assert_eq!(u.report(secs(0)).ignored, 6);
        assert_eq!(u.report(secs(0)).replies, 1);

        // A forged "unsynchronized" packet without our cookie cannot silence us.
        let mut forged = good;
        forged.leap = LeapIndicator::Unsynchronized;
        forged.origin = NtpTimestamp::from_bits(5);
        assert!(matches!(
            u.on_reply(UP, &forged.to_bytes(), t4, secs(1)),
            Verdict::Ignored(_)
        ));
        assert!(u.status(secs(1)).header().is_some());
    }

    #[test]
    fn kiss_of_death_deny_unsynchronizes_and_rate_slows_down() {
        let mut u = Upstream::new(config(), secs(0));
        assert!(matches!(
            good_exchange(&mut u, secs(0), 1),
            Verdict::Accepted(_)
        ));

        // RATE: keep the sample, next query not before the configured interval.
        let (c, t1) = ask(&mut u, secs(16), 2);
        let mut kod = Header::new(Mode::Server);
        kod.leap = LeapIndicator::Unsynchronized;
        kod.reference_id = RefId::from_code("RATE");
        // Only the origin echoed: not a KoD by the exchange's rule.
        kod.origin = c;
        assert!(matches!(
            u.on_reply(UP, &kod.to_bytes(), t1, secs(16)),
            Verdict::Ignored(_)
        ));
        // As ntpd sends it: the query's transmit in all three fields.
        kod.receive = c;
        kod.transmit = c;
        let v = u.on_reply(UP, &kod.to_bytes(), t1, secs(16));
        assert!(
            matches!(
                &v,
                Verdict::Refused(UpstreamProblem::RateLimited {
                    query_interval_s: 16
                })
            ),
            "{v:?}"
        );
        assert!(
            u.status(secs(17)).header().is_some(),
            "RATE keeps the last good sample"
        );
        assert!(
            u.due() >= secs(32),
            "next query at the configured interval: {:?}",
            u.due()
        );

        // DENY: unsynchronized at once, with the reason.
        let (c, t1) = ask(&mut u, secs(32), 3);
        kod.reference_id = RefId::from_code("DENY");
        kod.origin = c;
        kod.receive = c;
        kod.transmit = c;
        let v = u.on_reply(UP, &kod.to_bytes(), t1, secs(32));
        assert!(matches!(v, Verdict::Refused(_)), "{v:?}");
        let r = reason(&u.status(secs(32)));
        assert_eq!(
            r,
            Unsync::UpstreamRefused {
                upstream: UP,
                problem: UpstreamProblem::Refused {
                    kiss_code: "DENY".into()
                }
            }
        );
        // A KoD that does not echo our cookie is ignored.
        let mut u = Upstream::new(config(), secs(0));
        assert!(matches!(
            good_exchange(&mut u, secs(0), 1),
            Verdict::Accepted(_)
        ));
        let (_, t1) = ask(&mut u, secs(16), 4);
        kod.origin = NtpTimestamp::from_bits(12345);
        assert!(matches!(
            u.on_reply(UP, &kod.to_bytes(), t1, secs(16)),
            Verdict::Ignored(_)
        ));
        assert!(u.status(secs(16)).header().is_some());
    }

    #[test]
    fn upstream_unsynchronized_or_too_high_makes_us_unsynchronized() {
        type Tweak = fn(&mut Header);
        type Expect = fn(&UpstreamProblem) -> bool;
        let cases: [(&str, Tweak, Expect); 5] = [
            (
                "LI=3",
                |h| h.leap = LeapIndicator::Unsynchronized,
                |p| matches!(p, UpstreamProblem::Unsynchronized { leap: 3, .. }),
            ),
            (
                "stratum 16",
                |h| h.stratum = 16,
                |p| matches!(p, UpstreamProblem::UnusableTime { detail } if detail == "stratum-too-high"),
            ),
            (
                "stratum 0",
                |h| {
                    h.stratum = 0;
                    h.reference_id = RefId::from_code("INIT");
                },
                |p| matches!(p, UpstreamProblem::Unsynchronized { stratum: 0, .. }),
            ),
            (
                "stratum 15",
                |h| h.stratum = 15,
                |p| matches!(p, UpstreamProblem::StratumTooHigh { stratum: 15 }),
            ),
            (
                "stratum 14",
                |h| h.stratum = 14,
                |p| matches!(p, UpstreamProblem::StratumTooHigh { stratum: 14 }),
            ),
        ];
        for (what, tweak, expect) in cases {
            let mut u = Upstream::new(config(), secs(0));
            assert!(matches!(
                good_exchange(&mut u, secs(0), 1),
                Verdict::Accepted(_)
            ));
            let (c, t1) = ask(&mut u, secs(16), 2);
            let mut h = reply(c, t1, ms(0), ms(1));
            tweak(&mut h);
            let v = u.on_reply(UP, &h.to_bytes(), t1 + ms(1), secs(16));
            assert!(matches!(v, Verdict::Refused(_)), "{what}: {v:?}");
            let r = reason(&u.status(secs(16)));
            assert!(
                matches!(&r, Unsync::UpstreamRefused { upstream, problem }
                    if *upstream == UP && expect(problem)),
                "{what}: {r:?}"
            );
        }
        // Stratum 13 is the highest that works: we announce 14.
        let mut u = Upstream::new(config(), secs(0));
        let (c, t1) = ask(&mut u, secs(0), 1);
        let mut h = reply(c, t1, ms(0), ms(1));
        h.stratum = 13;
        assert!(matches!(
            u.on_reply(UP, &h.to_bytes(), t1 + ms(1), secs(0)),
            Verdict::Accepted(_)
        ));
        assert_eq!(u.status(secs(0)).header().unwrap().stratum, 14);
    }

    #[test]
    fn a_refusing_upstream_that_then_falls_silent_is_reported_as_silent() {
        let mut u = Upstream::new(config(), secs(0));
        let (c, t1) = ask(&mut u, secs(0), 1);
        let mut h = reply(c, t1, ms(0), ms(1));
        h.leap = LeapIndicator::Unsynchronized;
        assert!(matches!(
            u.on_reply(UP, &h.to_bytes(), t1, secs(0)),
            Verdict::Refused(_)
        ));
        assert!(matches!(
            reason(&u.status(secs(1))),
            Unsync::UpstreamRefused {
                problem: UpstreamProblem::Unsynchronized { leap: 3, .. },
                ..
            }
        ));
        ask(&mut u, secs(2), 2);
        let r = reason(&u.status(secs(5)));
        assert_eq!(
            r,
            Unsync::UpstreamRefused {
                upstream: UP,
                problem: UpstreamProblem::NoReply
            }
        );
    }

    #[test]
    fn bogus_header_values_are_refused() {
        let mut u = Upstream::new(config(), secs(0));
        let (c, t1) = ask(&mut u, secs(0), 1);
        let mut h = reply(c, t1, ms(0), ms(1));
        h.root_dispersion = NtpShort::from_duration(NtpDuration::from_secs(17));
        let v = u.on_reply(UP, &h.to_bytes(), t1 + ms(1), secs(0));
        assert!(
            matches!(&v, Verdict::Refused(UpstreamProblem::UnusableTime { detail })
                if detail == "root-distance-too-large"),
            "{v:?}"
        );

        let (c, t1) = ask(&mut u, secs(2), 2);
        let mut h = reply(c, t1, ms(0), ms(1));
        h.reference = h.transmit + NtpDuration::from_secs(1);
        let v = u.on_reply(UP, &h.to_bytes(), t1 + ms(1), secs(2));
        assert!(
            matches!(
                &v,
                Verdict::Refused(UpstreamProblem::ReferenceAfterTransmit)
            ),
            "{v:?}"
        );
        assert!(u.status(secs(2)).header().is_none());
    }

    #[test]
    fn no_reply_for_three_intervals_makes_us_unsynchronized() {
        let mut u = Upstream::new(config(), secs(0));
        assert!(matches!(
            good_exchange(&mut u, secs(0), 1),
            Verdict::Accepted(_)
        ));
        assert_eq!(
            u.due(),
            Q,
            "synchronized: next query after the configured interval"
        );
        // Three queries go unanswered.
        for i in 1..=3u64 {
            let t = Q * u32::try_from(i).unwrap();
            assert_eq!(u.due(), t);
            ask(&mut u, t, 10 + i);
        }
        let limit = Q * MISSED_INTERVALS + REPLY_TIMEOUT;
        assert_eq!(limit, secs(50), "documented: 50 s at the default 16 s");
        assert!(
            u.status(limit).header().is_some(),
            "still synchronized at the limit"
        );
        let r = reason(&u.status(limit + secs(1)));
        assert_eq!(
            r,
            Unsync::UpstreamStale {
                upstream: UP,
                after_s: 50,
                intervals: MISSED_INTERVALS,
                problem: UpstreamProblem::NoReply
            }
        );
        // Having lost synchronization, the next queries go fast again.
        let t = u.due();
        ask(&mut u, t, 20);
        assert_eq!(u.due(), t + FAST_INTERVAL);
        assert_eq!(u.report(t).queries, 5);
    }

    #[test]
    fn startup_queries_go_fast_then_settle_to_the_interval() {
        let mut u = Upstream::new(config(), secs(0));
        assert_eq!(u.due(), secs(0), "first query at once");
        let mut times = Vec::new();
        for i in 0..(FAST_QUERIES + 2) {
            let t = u.due();
            times.push(t.as_secs());
            ask(&mut u, t, u64::from(i) + 1);
        }
        assert_eq!(times, [0, 2, 4, 6, 8, 10, 12, 14, 16, 32]);
        let r = reason(&u.status(secs(40)));
        assert_eq!(
            r,
            Unsync::UpstreamNoSampleYet {
                upstream: UP,
                problem: Some(UpstreamProblem::NoReply)
            }
        );
        // A refused socket shows as such.
        u.socket_error("Connection refused".into());
        let r = reason(&u.status(secs(40)));
        assert_eq!(
            r,
            Unsync::UpstreamNoSampleYet {
                upstream: UP,
                problem: Some(UpstreamProblem::SocketError {
                    error: "Connection refused".into()
                })
            }
        );
        // And a good reply synchronizes and sets the interval.
        let t = u.due();
        assert!(matches!(good_exchange(&mut u, t, 99), Verdict::Accepted(_)));
        assert!(u.status(t).header().is_some());
        assert_eq!(u.due(), t + Q);
        assert_eq!(u.report(t).last_problem, None);
    }

    #[test]
    fn kernel_transmit_timestamp_refines_t1() {
        let mut u = Upstream::new(config(), secs(0));
        let (_, _, earlier) = ask_with_ticket(&mut u, secs(0), 41);
        let (c, t1, ticket) = ask_with_ticket(&mut u, secs(0), 42);
        // The packet really left 1 ms after the clock read.
        let real_t1 = t1 + ms(1);
        assert!(
            !u.transmitted(earlier, t1 + ms(500)),
            "an earlier query's transmit time is not this one's"
        );
        assert!(u.transmitted(ticket, real_t1));
        let h = reply(c, real_t1, ms(0), ms(2));
        let Verdict::Accepted(s) = u.on_reply(UP, &h.to_bytes(), real_t1 + ms(2), secs(0)) else {
            panic!("refused")
        };
        assert_eq!((s.offset, s.delay), (ms(0), ms(2)));
    }

    #[test]
    fn refid_is_the_ipv4_address_or_md5_of_the_ipv6_address() {
        assert_eq!(
            refid_of(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))),
            RefId([127, 0, 0, 1])
        );
        // MD5 of the 16 bytes of ::1 is cf404dc806178c245b5b4fe2531e6d8c
        // (`printf '\0...\1' | md5sum`).
        assert_eq!(
            refid_of(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            RefId([0xcf, 0x40, 0x4d, 0xc8])
        );
        assert_eq!(
            refid_of(IpAddr::V6(Ipv4Addr::new(198, 18, 0, 1).to_ipv6_mapped())),
            RefId([198, 18, 0, 1])
        );
        let mut u = Upstream::new(
            UpstreamConfig {
                address: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 123),
                ..config()
            },
            secs(0),
        );
        assert_eq!(u.refid(), RefId([0xcf, 0x40, 0x4d, 0xc8]));
        let up6 = u.config().address;
        let (c, t1) = ask(&mut u, secs(0), 1);
        let h = reply(c, t1, ms(0), ms(1));
        assert!(matches!(
            u.on_reply(up6, &h.to_bytes(), t1 + ms(1), secs(0)),
            Verdict::Accepted(_)
        ));
        assert_eq!(
            u.status(secs(0)).header().unwrap().reference_id,
            RefId([0xcf, 0x40, 0x4d, 0xc8])
        );
    }

    #[test]
    fn exchange_arithmetic_and_poll_field() {
        let t1 = clock(secs(0));
        // Server 5 ms ahead, 4 ms each way, 1 ms turnaround.
        let t2 = t1 + ms(4) + ms(5);
        let t3 = t2 + ms(1);
        let t4 = t1 + ms(9);
        assert_eq!(exchange(t1, t2, t3, t4), (ms(5), ms(8)));
        assert_eq!(log2_ceil(secs(16)), 4);
        assert_eq!(log2_ceil(secs(17)), 5);
        assert_eq!(log2_ceil(secs(64)), 6);
    }
}
