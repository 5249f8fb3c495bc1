//! Per-source rate limiting over a bounded most-recently-used table, as
//! ntpd's `ntp_monitor()` does it, plus the statistics operators read from
//! it (`ntpq -c mrulist`-like entries, and the clients that keep polling by
//! unicast after their calibration volley).
//!
//! Each source has two leaky buckets with the same settings (issue 13,
//! attack 5): the **verified** bucket is charged only with requests whose
//! MAC verified under a key the keys file has, and it alone decides time
//! replies and KoDs to keyed clients; every other packet (no MAC, unknown
//! key, bad MAC, key not allowed from that address, crypto-NAKs, modes we
//! never answer) is charged to the **unverified** bucket. Anyone can send
//! packets with a client's address as source; only the key holder can
//! charge its verified bucket, so spoofed traffic cannot lock a keyed
//! client out. Each bucket drains from its own last charge, so unverified
//! packets do not shorten the interval the verified bucket sees either.
//! Over the unverified budget there is only silence, never a KoD: a KoD to
//! an address we cannot authenticate is a weapon against that address.
//!
//! The table holds at most `capacity` source addresses; when full, the
//! least recently seen one is evicted. Lookup, update and eviction are
//! O(1): a hash map from address to slot, and an intrusive doubly linked
//! list over the slots in recency order.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Rate-limit settings (ntpd's `discard` knobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Guard time: packets closer together than this are limited
    /// (`discard minimum`, default 2 s). The test is `interval + 1 s >= min`,
    /// as in ntpd, so a volley spaced 1 s apart passes.
    pub min_interval: Duration,
    /// Average interval as log2 seconds (`discard average`, default 3 = 8 s).
    pub average_log2: u8,
    /// Maximum number of source addresses remembered.
    pub capacity: usize,
    /// Whether a limited request gets a KoD RATE (once per burst).
    pub kod: bool,
    /// A client that sends requests over a span longer than this is not
    /// doing a calibration volley: it is polling by unicast.
    pub volley_window: Duration,
    /// Nor is one that sends more requests than this.
    pub volley_max_requests: u32,
    /// Ed25519 signatures per second the responder makes for all sources
    /// together (`responder.sign-rate`), on top of each source's own
    /// limit: see [`SignBudget`].
    pub sign_rate: u32,
    /// Signatures it may make at once after a quiet spell
    /// (`responder.sign-burst`).
    pub sign_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            min_interval: Duration::from_secs(2),
            average_log2: 3,
            capacity: 100_000,
            kod: true,
            volley_window: Duration::from_secs(60),
            volley_max_requests: 8,
            sign_rate: 200,
            sign_burst: 400,
        }
    }
}

/// The responder's global signing budget: a token bucket over **all**
/// sources, holding up to `burst` signatures and refilled at `rate` per
/// second. Each source's own budget bounds what one address gets, but
/// requests that ask for a signed reply need no key, so a flood from many
/// (spoofed) addresses could otherwise turn the responder into a CPU sink
/// of Ed25519 signatures (about 20 us each). Over this budget a request
/// that wants a signature is dropped silently and counted (`sign-budget`);
/// nothing else the responder does is affected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignBudget {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Option<Duration>,
}

impl SignBudget {
    /// A full bucket of `burst` tokens refilled at `rate` per second.
    pub fn new(rate: u32, burst: u32) -> Self {
        SignBudget {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: None,
        }
    }

    /// Takes one signature's token at monotonic time `now`; false (nothing
    /// taken) when the bucket is empty. A `now` before the last call (a
    /// thread with an older reading) refills nothing.
    pub fn take(&mut self, now: Duration) -> bool {
        if let Some(at) = self.at {
            let gained = now.saturating_sub(at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + gained).min(self.burst);
        }
        if self.at.is_none_or(|at| now > at) {
            self.at = Some(now);
        }
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Which of a source's two budgets a packet is charged to (see the module
/// documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// A mode-3 request whose MAC verified with a key of the keys file
    /// (allowed from this source).
    Verified,
    /// Everything else: it may come from anyone.
    Unverified,
}

/// One leaky bucket of a source: its score and when it was last charged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Leaky-bucket score in milliseconds.
    leak_ms: u64,
    /// When this bucket was last charged (monotonic).
    last: Option<Duration>,
}

impl Bucket {
    /// The score in milliseconds (0 = empty; over 8 x the average interval
    /// = over the limit).
    pub fn score_ms(&self) -> u64 {
        self.leak_ms
    }

    /// When it was last charged.
    pub fn last_charged(&self) -> Option<Duration> {
        self.last
    }

    /// ntpd's `ntp_monitor()` algorithm, in milliseconds, on this bucket.
    fn charge(&mut self, now: Duration, head_ms: u64, limit_ms: u64, min_ms: u64) -> Charge {
        let interval_ms = match self.last {
            None => u64::MAX,
            Some(last) => u64::try_from(now.saturating_sub(last).as_millis()).unwrap_or(u64::MAX),
        };
        self.last = Some(now);
        self.leak_ms = self.leak_ms.saturating_sub(interval_ms);
        if interval_ms.saturating_add(1000) >= min_ms && self.leak_ms + head_ms < limit_ms {
            self.leak_ms += head_ms.saturating_sub(2000);
            Charge::Within
        } else if self.leak_ms < limit_ms {
            self.leak_ms = limit_ms + head_ms;
            Charge::NewlyOver
        } else {
            Charge::StillOver
        }
    }
}

/// What charging a bucket found.
enum Charge {
    Within,
    /// Over the limit, the first time in this burst (ntpd's KoD point).
    NewlyOver,
    StillOver,
}

/// What to do with a packet, as far as its rate is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// Within limits.
    Allowed,
    /// Over the limit: answer a request with a KoD RATE.
    LimitedKod,
    /// Over the limit, and a KoD was already sent in this burst (or KoDs
    /// are off, or the packet is unverified): nothing.
    LimitedSilent,
}

/// One remembered source address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MruEntry {
    /// The source address (all ports share it).
    pub addr: IpAddr,
    /// Packets seen.
    pub count: u64,
    /// When first seen (monotonic).
    pub first_seen: Duration,
    /// When last seen (monotonic).
    pub last_seen: Duration,
    /// Mode of the last packet.
    pub last_mode: u8,
    /// Version of the last packet.
    pub last_version: u8,
    /// Key id of the last packet's MAC, if it had one.
    pub last_key_id: Option<u32>,
    /// Source port of the last packet.
    pub last_port: u16,
    /// Mode-3 requests seen.
    pub requests: u32,
    /// When the first mode-3 request was seen.
    pub first_request: Option<Duration>,
    /// When the last mode-3 request was seen.
    pub last_request: Option<Duration>,
    /// Verified requests limited.
    pub limited: u32,
    /// KoDs this source was sent.
    pub kod_sent: u32,
    /// Packets charged to the unverified budget.
    pub unverified: u64,
    /// Unverified packets over that budget.
    pub unverified_limited: u32,
    /// The bucket of verified requests.
    verified_bucket: Bucket,
    /// The bucket of everything else.
    unverified_bucket: Bucket,
}

impl MruEntry {
    /// The bucket of this source's verified requests.
    pub fn verified_bucket(&self) -> Bucket {
        self.verified_bucket
    }

    /// The bucket of this source's unverified packets.
    pub fn unverified_bucket(&self) -> Bucket {
        self.unverified_bucket
    }

    /// Average interval between its packets.
    pub fn average_interval(&self) -> Option<Duration> {
        let span = self.last_seen.checked_sub(self.first_seen)?;
        let gaps = u32::try_from(self.count.checked_sub(1)?)
            .ok()
            .filter(|&g| g > 0)?;
        Some(span / gaps)
    }

    /// Average interval between its mode-3 requests.
    pub fn average_request_interval(&self) -> Option<Duration> {
        let span = self.last_request?.checked_sub(self.first_request?)?;
        let gaps = self.requests.checked_sub(1).filter(|&g| g > 0)?;
        Some(span / gaps)
    }
}

/// A client that kept sending mode-3 requests after a normal volley: the
/// multicast client that fell back to unicast polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollingClient {
    /// Its address.
    pub addr: IpAddr,
    /// Requests seen.
    pub requests: u32,
    /// Their average interval.
    pub average_interval: Duration,
    /// Time since its last request.
    pub last_request_ago: Duration,
}

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Slot {
    entry: MruEntry,
    prev: u32,
    next: u32,
}

/// The bounded MRU table with ntpd's leaky-bucket rate limit.
#[derive(Debug, Clone)]
pub struct Mru {
    config: RateLimitConfig,
    slots: Vec<Slot>,
    index: HashMap<IpAddr, u32>,
    /// Most recently seen.
    head: u32,
    /// Least recently seen.
    tail: u32,
    /// The global signing budget (kept here because every receive thread
    /// already takes this table's lock once per batch).
    signatures: SignBudget,
}

/// What the packet being observed looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// Source address.
    pub addr: IpAddr,
    /// Source port.
    pub port: u16,
    /// NTP mode.
    pub mode: u8,
    /// NTP version.
    pub version: u8,
    /// Key id of its MAC, if any.
    pub key_id: Option<u32>,
    /// The budget it is charged to.
    pub budget: Budget,
}

impl Mru {
    /// An empty table.
    pub fn new(config: RateLimitConfig) -> Self {
        let capacity = config.capacity.max(1);
        Mru {
            config: RateLimitConfig { capacity, ..config },
            slots: Vec::new(),
            index: HashMap::new(),
            head: NIL,
            tail: NIL,
            signatures: SignBudget::new(config.sign_rate, config.sign_burst),
        }
    }

    /// Takes one token of the global signing budget ([`SignBudget`]).
    pub fn take_signature(&mut self, now: Duration) -> bool {
        self.signatures.take(now)
    }

    /// The settings in force.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Addresses remembered.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Records a packet seen at monotonic time `now` and says whether its
    /// rate is within limits of its budget (ntpd's algorithm, in
    /// milliseconds rather than whole seconds, on the bucket `obs.budget`
    /// names; the other bucket is left alone). An unverified packet is
    /// never told [`RateVerdict::LimitedKod`].
    pub fn observe(&mut self, obs: Observation, now: Duration) -> RateVerdict {
        let head_ms = 1000u64 << self.config.average_log2.min(20);
        let limit_ms = 8 * head_ms;
        let min_ms = u64::try_from(self.config.min_interval.as_millis()).unwrap_or(u64::MAX);
        let kod = self.config.kod;
        let slot = self.touch(obs.addr, now);
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return RateVerdict::Allowed;
        };
        let e = &mut s.entry;
        e.count += 1;
        e.last_seen = now;
        e.last_mode = obs.mode;
        e.last_version = obs.version;
        e.last_key_id = obs.key_id;
        e.last_port = obs.port;
        if obs.mode == 3 {
            e.requests = e.requests.saturating_add(1);
            e.first_request.get_or_insert(now);
            e.last_request = Some(now);
        }
        match obs.budget {
            Budget::Verified => match e.verified_bucket.charge(now, head_ms, limit_ms, min_ms) {
                Charge::Within => RateVerdict::Allowed,
                Charge::NewlyOver if kod => {
                    e.limited = e.limited.saturating_add(1);
                    e.kod_sent = e.kod_sent.saturating_add(1);
                    RateVerdict::LimitedKod
                }
                Charge::NewlyOver | Charge::StillOver => {
                    e.limited = e.limited.saturating_add(1);
                    RateVerdict::LimitedSilent
                }
            },
            Budget::Unverified => {
                e.unverified = e.unverified.saturating_add(1);
                match e.unverified_bucket.charge(now, head_ms, limit_ms, min_ms) {
                    Charge::Within => RateVerdict::Allowed,
                    Charge::NewlyOver | Charge::StillOver => {
                        e.unverified_limited = e.unverified_limited.saturating_add(1);
                        RateVerdict::LimitedSilent
                    }
                }
            }
        }
    }

    /// The entry for an address.
    pub fn get(&self, addr: IpAddr) -> Option<&MruEntry> {
        let i = *self.index.get(&addr)?;
        self.slots.get(i as usize).map(|s| &s.entry)
    }

    /// Entries, most recently seen first.
    pub fn iter(&self) -> impl Iterator<Item = &MruEntry> {
        let mut cur = self.head;
        std::iter::from_fn(move || {
            let s = self.slots.get(cur as usize)?;
            cur = s.next;
            Some(&s.entry)
        })
    }

    /// The `n` sources that sent the most packets.
    pub fn top(&self, n: usize) -> Vec<&MruEntry> {
        let mut all: Vec<&MruEntry> = self.iter().collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_seen.cmp(&a.last_seen)));
        all.truncate(n);
        all
    }

    /// Clients whose mode-3 requests go on past a calibration volley: more
    /// than `volley_max_requests`, or spread over more than `volley_window`.
    pub fn unicast_pollers(&self, now: Duration) -> Vec<PollingClient> {
        let mut out: Vec<PollingClient> = self
            .iter()
            .filter_map(|e| {
                let (first, last) = (e.first_request?, e.last_request?);
                let span = last.saturating_sub(first);
                let polling = e.requests > self.config.volley_max_requests
                    || (e.requests >= 3 && span > self.config.volley_window);
                polling.then(|| PollingClient {
                    addr: e.addr,
                    requests: e.requests,
                    average_interval: e.average_request_interval().unwrap_or_default(),
                    last_request_ago: now.saturating_sub(last),
                })
            })
            .collect();
        out.sort_by_key(|p| std::cmp::Reverse(p.requests));
        out
    }

    /// Finds or creates the slot for `addr` and moves it to the front.
    fn touch(&mut self, addr: IpAddr, now: Duration) -> u32 {
        if let Some(&i) = self.index.get(&addr) {
            self.unlink(i);
            self.push_front(i);
            return i;
        }
        let fresh = MruEntry {
            addr,
            count: 0,
            first_seen: now,
            last_seen: now,
            last_mode: 0,
            last_version: 0,
            last_key_id: None,
            last_port: 0,
            requests: 0,
            first_request: None,
            last_request: None,
            limited: 0,
            kod_sent: 0,
            unverified: 0,
            unverified_limited: 0,
            verified_bucket: Bucket::default(),
            unverified_bucket: Bucket::default(),
        };
        let i = if self.index.len() >= self.config.capacity && self.tail != NIL {
            // Evict the least recently seen and reuse its slot.
            let victim = self.tail;
            self.unlink(victim);
            if let Some(s) = self.slots.get_mut(victim as usize) {
                self.index.remove(&s.entry.addr);
                s.entry = fresh;
            }
            victim
        } else {
            let i = u32::try_from(self.slots.len()).unwrap_or(NIL - 1);
            self.slots.push(Slot {
                entry: fresh,
                prev: NIL,
                next: NIL,
            });
            i
        };
        self.index.insert(addr, i);
        self.push_front(i);
        i
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = match self.slots.get(i as usize) {
            Some(s) => (s.prev, s.next),
            None => return,
        };
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        if let Some(s) = self.slots.get_mut(i as usize) {
            s.prev = NIL;
            s.next = old;
        }
        match self.slots.get_mut(old as usize) {
            Some(h) => h.prev = i,
            None => self.tail = i,
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(a: &str) -> Observation {
        Observation {
            addr: a.parse().expect("address"),
            port: 123,
            mode: 3,
            version: 4,
            key_id: Some(1),
            budget: Budget::Verified,
        }
    }

    fn spoofed(a: &str) -> Observation {
        Observation {
            key_id: None,
            budget: Budget::Unverified,
            ..obs(a)
        }
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_calibration_volley_is_never_limited() {
        // 8 requests 1 s apart, and 6 requests 2 s apart (ntpd's volley).
        let mut mru = Mru::new(RateLimitConfig::default());
        for i in 0..8 {
            let v = mru.observe(obs("198.18.0.2"), secs(100.0 + f64::from(i)));
            assert_eq!(v, RateVerdict::Allowed, "request {i} of a 1-s volley");
        }
        for i in 0..6 {
            let v = mru.observe(obs("198.18.0.3"), secs(100.0 + 2.0 * f64::from(i)));
            assert_eq!(v, RateVerdict::Allowed, "request {i} of a 2-s volley");
        }
    }

    #[test]
    fn a_burst_gets_one_kod_then_silence() {
        let mut mru = Mru::new(RateLimitConfig::default());
        let mut verdicts = Vec::new();
        for i in 0..20 {
            verdicts.push(mru.observe(obs("198.18.0.9"), secs(10.0 + 0.01 * f64::from(i))));
        }
        assert_eq!(verdicts[0], RateVerdict::Allowed);
        assert_eq!(verdicts[1], RateVerdict::LimitedKod);
        assert!(
            verdicts[2..]
                .iter()
                .all(|v| *v == RateVerdict::LimitedSilent),
            "{verdicts:?}"
        );
        let e = mru.get("198.18.0.9".parse().expect("addr")).expect("entry");
        assert_eq!((e.count, e.kod_sent, e.limited), (20, 1, 19));
        // After the bucket drains the source is served again.
        assert_eq!(
            mru.observe(obs("198.18.0.9"), secs(200.0)),
            RateVerdict::Allowed
        );
    }

    #[test]
    fn kod_can_be_disabled() {
        let cfg = RateLimitConfig {
            kod: false,
            ..RateLimitConfig::default()
        };
        let mut mru = Mru::new(cfg);
        mru.observe(obs("198.18.0.9"), secs(1.0));
        assert_eq!(
            mru.observe(obs("198.18.0.9"), secs(1.0)),
            RateVerdict::LimitedSilent
        );
    }

    #[test]
    fn capacity_bounds_the_table_and_evicts_the_least_recent() {
        let cfg = RateLimitConfig {
            capacity: 3,
            ..RateLimitConfig::default()
        };
        let mut mru = Mru::new(cfg);
        for (i, a) in ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
            .iter()
            .enumerate()
        {
            mru.observe(obs(a), secs(i as f64));
        }
        mru.observe(obs("198.18.0.1"), secs(10.0)); // .2 is now the least recent
        mru.observe(obs("198.18.0.4"), secs(11.0));
        assert_eq!(mru.len(), 3);
        assert!(
            mru.get("198.18.0.2".parse().expect("addr")).is_none(),
            ".2 evicted"
        );
        let order: Vec<String> = mru.iter().map(|e| e.addr.to_string()).collect();
        assert_eq!(order, ["198.18.0.4", "198.18.0.1", "198.18.0.3"]);
    }

    #[test]
    fn unicast_pollers_are_listed_and_volleys_are_not() {
        let mut mru = Mru::new(RateLimitConfig::default());
        for i in 0..6 {
            mru.observe(obs("198.18.0.2"), secs(2.0 * f64::from(i)));
        }
        for i in 0..5 {
            mru.observe(obs("198.18.0.7"), secs(64.0 * f64::from(i)));
        }
        let p = mru.unicast_pollers(secs(300.0));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].addr.to_string(), "198.18.0.7");
        assert_eq!(p[0].requests, 5);
        assert_eq!(p[0].average_interval, Duration::from_secs(64));
        assert_eq!(p[0].last_request_ago, Duration::from_secs(44));
    }

    #[test]
    fn two_hundred_clients_each_with_a_volley_are_all_served() {
        let mut mru = Mru::new(RateLimitConfig::default());
        for i in 0..6 {
            for c in 0..200u32 {
                let a = format!("198.18.{}.{}", 1 + c / 250, 1 + c % 250);
                let t = secs(2.0 * f64::from(i) + f64::from(c) * 0.001);
                assert_eq!(
                    mru.observe(obs(&a), t),
                    RateVerdict::Allowed,
                    "client {a} request {i}"
                );
            }
        }
        assert_eq!(mru.len(), 200);
    }

    #[test]
    fn unverified_packets_in_a_clients_name_never_limit_its_verified_requests() {
        // Attack 5 of issue 13: two spoofed unsigned requests a second with
        // the client's address; its signed volley (6 requests 2 s apart)
        // is still allowed, every one.
        let mut mru = Mru::new(RateLimitConfig::default());
        let victim = "198.18.0.2";
        let mut t = 100.0;
        let mut verdicts = Vec::new();
        for i in 0..60 {
            mru.observe(spoofed(victim), secs(t));
            if i % 4 == 3 && verdicts.len() < 6 {
                verdicts.push(mru.observe(obs(victim), secs(t + 0.1)));
            }
            t += 0.5;
        }
        assert!(
            verdicts.iter().all(|v| *v == RateVerdict::Allowed),
            "{verdicts:?}"
        );
        let e = mru.get(victim.parse().expect("addr")).expect("entry");
        assert_eq!((e.limited, e.kod_sent), (0, 0), "{e:?}");
        assert!(
            e.unverified_limited > 40,
            "the spoofed flood is limited: {e:?}"
        );
    }

    #[test]
    fn over_the_unverified_budget_there_is_silence_never_a_kod() {
        let mut mru = Mru::new(RateLimitConfig::default());
        let verdicts: Vec<RateVerdict> = (0..10)
            .map(|i| mru.observe(spoofed("198.18.0.9"), secs(10.0 + 0.01 * f64::from(i))))
            .collect();
        assert_eq!(verdicts[0], RateVerdict::Allowed);
        assert!(
            verdicts[1..]
                .iter()
                .all(|v| *v == RateVerdict::LimitedSilent),
            "{verdicts:?}"
        );
        let e = mru.get("198.18.0.9".parse().expect("addr")).expect("entry");
        assert_eq!((e.kod_sent, e.limited, e.unverified_limited), (0, 0, 9));
        assert_eq!(e.verified_bucket(), Bucket::default(), "untouched");
        // The same source's signed request is still served.
        assert_eq!(
            mru.observe(obs("198.18.0.9"), secs(10.2)),
            RateVerdict::Allowed
        );
        // And a keyless (unsigned) ntpd client polling every 64 s is
        // always within its budget.
        for i in 0..20 {
            assert_eq!(
                mru.observe(spoofed("198.18.0.30"), secs(64.0 * f64::from(i))),
                RateVerdict::Allowed,
                "poll {i}"
            );
        }
    }

    #[test]
    fn the_signing_budget_allows_a_burst_then_its_rate() {
        let mut b = SignBudget::new(200, 400);
        let t0 = Duration::from_secs(10);
        let burst = (0..1000).filter(|_| b.take(t0)).count();
        assert_eq!(burst, 400, "a full bucket at start");
        assert!(!b.take(t0 + Duration::from_millis(4)), "under one token");
        // One second later: 200 more, not 400.
        let t1 = t0 + Duration::from_secs(1);
        let refilled = (0..1000).filter(|_| b.take(t1)).count();
        assert_eq!(refilled, 200);
        // A long quiet spell refills only up to the burst.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..1000).filter(|_| b.take(t2)).count(), 400);
        // An older reading from another thread gains nothing.
        assert!(!b.take(t1));
    }

    #[test]
    fn the_signing_budget_is_shared_by_every_source() {
        let mut mru = Mru::new(RateLimitConfig {
            sign_rate: 10,
            sign_burst: 5,
            ..RateLimitConfig::default()
        });
        let now = Duration::from_secs(1);
        let mut granted = 0;
        for i in 0..50u8 {
            let addr = IpAddr::from([198, 18, 0, i]);
            let v = mru.observe(
                Observation {
                    addr,
                    port: 123,
                    mode: 3,
                    version: 4,
                    key_id: None,
                    budget: Budget::Unverified,
                },
                now,
            );
            assert_eq!(v, RateVerdict::Allowed, "each source is within its own");
            if mru.take_signature(now) {
                granted += 1;
            }
        }
        assert_eq!(granted, 5, "fifty sources share one budget");
        assert!(mru.take_signature(now + Duration::from_millis(100)));
    }
}
