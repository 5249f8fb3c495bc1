//! `mcast-server` configuration: where to send broadcasts, with which key,
//! where the time comes from, and how the calibration responder behaves.
//!
//! The annotated reference is `config/examples/server.toml`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcast_keys::signed::ServerKey;
use mcast_keys::{KeyId, KeyStore};
use serde::Deserialize;

use crate::common::{self, DEFAULT_GROUP_V4, DEFAULT_PORT};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::locate::Origin;
use crate::units::{self, Poll, RefId};

/// Default control socket of the server.
pub const DEFAULT_SERVER_CONTROL_SOCKET: &str = "/run/mcast-ntp/server.sock";

/// The whole server configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    /// The ntpd-format keys file (`keys`, default `/etc/mcast-ntp/ntp.keys`);
    /// a relative path is resolved against the configuration file's directory.
    #[serde(default = "common::default_keys")]
    pub keys: PathBuf,
    /// UDP port broadcasts are sent to and calibration requests are answered
    /// on (`port`, default 123; any other port lets the server run unprivileged).
    #[serde(default = "common::default_port")]
    pub port: u16,
    /// Allows poll exponents 0..=2 (`lab-allow-fast-poll`, default false):
    /// only for labs without ntpd clients.
    #[serde(default)]
    pub lab_allow_fast_poll: bool,
    /// Where to send broadcasts, one entry per `[[destination]]` table.
    #[serde(default, rename = "destination")]
    pub destinations: Vec<Destination>,
    /// Where the server's own time and header fields come from (`[time-source]`).
    pub time_source: TimeSource,
    /// The unicast responder that answers clients' calibration requests
    /// (`[responder]`).
    #[serde(default)]
    pub responder: Responder,
    /// Per-source rate limiting of unicast requests (`[rate-limit]`).
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// Unix socket of the control interface (`control-socket`, default
    /// `/run/mcast-ntp/server.sock`); relative paths as for `keys`.
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    /// Address to serve metrics on (`metrics`, e.g. `"127.0.0.1:9123"`);
    /// `None` (the default) serves none.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// User to switch to after the sockets are open (`user`); `None` keeps
    /// the starting user.
    #[serde(default)]
    pub user: Option<String>,
    /// How much to log (`log-level`, default `info`); a SIGHUP applies a
    /// changed value. `RUST_LOG`, when set, overrides it.
    #[serde(default)]
    pub log_level: common::LogLevel,
    #[serde(skip)]
    origin: Origin,
}

/// One `[[destination]]`: a group (or broadcast address) on one interface.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Destination {
    /// IPv4 or IPv6 multicast group (`address`, default 224.0.1.1, the IANA
    /// NTP group; `ff05::101` is the IPv6 site-local one), or an IPv4 subnet
    /// broadcast address when `broadcast = true`.
    #[serde(default = "default_group")]
    pub address: IpAddr,
    /// The interface to send on, by name (`interface`, e.g. `"bond0"`; required).
    pub interface: String,
    /// `address` is an IPv4 subnet broadcast address rather than a multicast
    /// group (`broadcast`, default false). Required for a non-multicast
    /// address so that a mistyped group never becomes a unicast destination.
    #[serde(default)]
    pub broadcast: bool,
    /// IP TTL / IPv6 hop limit of the packets (`ttl`, 1..=255, default 1 =
    /// this link only). A hop count, unlike ntpd's `ttl` index.
    #[serde(
        default = "default_ttl",
        deserialize_with = "units::ranged::<_, u8, 1, 255>"
    )]
    pub ttl: u8,
    /// Key id that signs every packet (`key`); `None` only when
    /// `authentication = false` was set explicitly.
    #[serde(default, deserialize_with = "units::opt_key_id")]
    pub key: Option<KeyId>,
    /// `authentication` (default true): must be set to false, explicitly, to
    /// send unauthenticated packets.
    #[serde(default = "common::yes")]
    pub authentication: bool,
    /// The key that takes over from `key` at `next-key-from` (`next-key`,
    /// a key rollover: clients list both in `keys = [old, new]`).
    #[serde(default, deserialize_with = "units::opt_key_id")]
    pub next_key: Option<KeyId>,
    /// When `next-key` starts signing (`next-key-from`, RFC 3339 UTC, e.g.
    /// `"2026-12-03T20:00:00Z"`): packets whose transmit time is at or
    /// after it are signed with `next-key`.
    #[serde(default, deserialize_with = "units::opt_rfc3339")]
    pub next_key_from: Option<std::time::SystemTime>,
    /// Broadcast interval as a log2 exponent (`poll`, default 6 = 64 s).
    #[serde(default)]
    pub poll: Poll,
    /// Whether local listeners on the sending host also receive the packets
    /// (`multicast-loop`, IP_MULTICAST_LOOP; default false).
    #[serde(default)]
    pub multicast_loop: bool,
    /// Interleaved broadcast (RFC 5905 §9): the origin field carries the
    /// kernel transmit timestamp of the previous packet (`interleave`,
    /// default false).
    #[serde(default)]
    pub interleave: bool,
    /// This server's Ed25519 signing key file (`signing-key`, made by
    /// `mcast-keygen signing-key`, mode 0600): every packet also carries a
    /// signature clients check with the public key alone; the legacy MAC
    /// (`key`) is then computed over the signature field too, so ntpd 4.2.8
    /// clients still verify the stream.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
}

/// Where the server's time comes from (`[time-source]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeSourceKind {
    /// The kernel's synchronization state (adjtimex), kept by another daemon
    /// (chronyd, ntpd, phc2sys). Stratum and refid come from this file.
    Kernel,
    /// A local NTP daemon queried by unicast; stratum (its own + 1), refid,
    /// root delay and dispersion come from its replies.
    Upstream,
    /// The local clock taken as is, always synchronized: labs and isolated
    /// networks only.
    Local,
}

/// What to do while the time source is not synchronized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unsynchronized {
    /// Send nothing (as ntpd 4.2.6 and later do).
    #[default]
    Silent,
    /// Keep sending with leap indicator 3 (alarm), so clients see the
    /// server is alive but unsynchronized.
    SendAlarm,
}

/// `[time-source]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TimeSource {
    /// `kind = "kernel" | "upstream" | "local"` (required).
    pub kind: TimeSourceKind,
    /// Stratum to announce (`stratum`, 1..=14): required for `kernel` and
    /// `local`, refused for `upstream` (which announces upstream's + 1).
    #[serde(default, deserialize_with = "units::opt_stratum")]
    pub stratum: Option<u8>,
    /// Refid to announce (`refid`): for `kernel` (default `"KERN"`) and
    /// `local` (default `"LOCL"`); refused for `upstream`. After parsing it is
    /// always `Some` for those two kinds.
    #[serde(default)]
    pub refid: Option<RefId>,
    /// The daemon to query when `kind = "upstream"` (`upstream`, default
    /// `127.0.0.1:123`).
    #[serde(default = "default_upstream")]
    pub upstream: SocketAddr,
    /// How often to query it (`query-interval-s`, 16..=64 s, default 16).
    #[serde(
        default = "default_query_interval",
        rename = "query-interval-s",
        deserialize_with = "units::secs"
    )]
    pub query_interval: Duration,
    /// `unsynchronized = "silent" | "send-alarm"` (default silent).
    #[serde(default)]
    pub unsynchronized: Unsynchronized,
}

/// `[responder]`: answers clients' calibration requests (mode 3 -> mode 4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Responder {
    /// `enabled` (default true). Without it clients cannot calibrate and use
    /// their fallback delay.
    pub enabled: bool,
    /// Answer only requests with a valid MAC (`require-auth`, default true).
    pub require_auth: bool,
    /// Receive threads (`workers`, 1..=64): each has its own socket per
    /// bound address (`SO_REUSEPORT`, the kernel spreads clients among
    /// them), all share one rate-limit table. `None` (left out, the
    /// default) means one per CPU, at most [`Responder::AUTO_WORKERS_MAX`];
    /// see [`Responder::workers_for`].
    #[serde(deserialize_with = "opt_workers")]
    pub workers: Option<u16>,
    /// Ed25519-signed replies per second for all clients together
    /// (`sign-rate`, 1..=100000, default 200), on top of the per-source
    /// limit: calibration requests from public-key clients need no key, so
    /// this bounds the CPU a flood of them can cost (about 20 us a
    /// signature). Over it such requests are dropped and counted as
    /// `sign-budget`.
    #[serde(deserialize_with = "units::ranged::<_, u32, 1, 100_000>")]
    pub sign_rate: u32,
    /// Signed replies allowed at once after a quiet spell (`sign-burst`,
    /// 1..=1000000, default 400): a few hundred clients starting together
    /// calibrate without waiting.
    #[serde(deserialize_with = "units::ranged::<_, u32, 1, 1_000_000>")]
    pub sign_burst: u32,
}

impl Responder {
    /// The most receive threads chosen automatically.
    pub const AUTO_WORKERS_MAX: usize = 8;
    /// The most receive threads that may be configured.
    pub const WORKERS_MAX: u16 = 64;

    /// Receive threads to run on a machine with `cpus` CPUs: the
    /// configured number, or one per CPU up to
    /// [`Responder::AUTO_WORKERS_MAX`].
    pub fn workers_for(&self, cpus: usize) -> usize {
        match self.workers {
            Some(n) => usize::from(n),
            None => cpus.clamp(1, Self::AUTO_WORKERS_MAX),
        }
    }
}

impl Default for Responder {
    fn default() -> Self {
        Responder {
            enabled: true,
            require_auth: true,
            workers: None,
            sign_rate: 200,
            sign_burst: 400,
        }
    }
}

fn opt_workers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    units::ranged::<_, u16, 1, { Responder::WORKERS_MAX as i64 }>(d).map(Some)
}

/// `[rate-limit]`: per-source limits on unicast requests, as ntpd's
/// `discard` and `restrict limited kod`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RateLimit {
    /// Number of sources remembered (`mru-size`, default 100000).
    #[serde(deserialize_with = "units::ranged::<_, usize, 1, 10_000_000>")]
    pub mru_size: usize,
    /// Minimum time between two requests of one source (`min-interval-s`,
    /// default 2, ntpd's `discard minimum`).
    #[serde(rename = "min-interval-s", deserialize_with = "units::secs")]
    pub min_interval: Duration,
    /// Allowed average interval as a log2 exponent of seconds
    /// (`average-interval-log2`, default 3 = 8 s, ntpd's `discard average`).
    #[serde(deserialize_with = "units::ranged::<_, u8, 0, 17>")]
    pub average_interval_log2: u8,
    /// Answer a limited source with a Kiss-o'-Death `RATE` (`kod`, default
    /// true); otherwise drop silently.
    pub kod: bool,
}

impl RateLimit {
    /// The average interval, 2^`average_interval_log2` seconds.
    pub fn average_interval(&self) -> Duration {
        Duration::from_secs(1u64 << self.average_interval_log2.min(17))
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            mru_size: 100_000,
            min_interval: Duration::from_secs(2),
            average_interval_log2: 3,
            kod: true,
        }
    }
}

fn default_control_socket() -> PathBuf {
    PathBuf::from(DEFAULT_SERVER_CONTROL_SOCKET)
}

fn default_group() -> IpAddr {
    IpAddr::V4(DEFAULT_GROUP_V4)
}

fn default_ttl() -> u8 {
    1
}

fn default_upstream() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT)
}

fn default_query_interval() -> Duration {
    Duration::from_secs(16)
}

impl ServerConfig {
    /// Reads, parses and fully validates a server configuration file,
    /// including the keys file it names and the keys it references.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        Self::load_with_keys(path).map(|(config, _)| config)
    }

    /// As [`ServerConfig::load`], and also returns the loaded keys file.
    pub fn load_with_keys(path: &Path) -> Result<(ServerConfig, KeyStore), ConfigError> {
        let text = common::read(path)?;
        let config = Self::parse(&text, path)?;
        let keys = config.load_keys()?;
        config.validate_with_keys(&keys)?;
        Ok((config, keys))
    }

    /// Parses and validates configuration text without touching the file
    /// system: TOML syntax, schema, and self-consistency. `path` names the
    /// file in errors and anchors relative paths (`keys`, `control-socket`).
    pub fn parse(text: &str, path: &Path) -> Result<ServerConfig, ConfigError> {
        let (mut config, origin) = common::deserialize::<ServerConfig>(text, path)?;
        config.origin = origin;
        config.keys = common::resolve(path, &config.keys);
        config.control_socket = common::resolve(path, &config.control_socket);
        for d in &mut config.destinations {
            d.signing_key = d.signing_key.as_ref().map(|p| common::resolve(path, p));
        }
        config.validate()?;
        let ts = &mut config.time_source;
        match ts.kind {
            TimeSourceKind::Kernel => {
                ts.refid.get_or_insert(RefId::Code(*b"KERN"));
            }
            TimeSourceKind::Local => {
                ts.refid.get_or_insert(RefId::Code(*b"LOCL"));
            }
            TimeSourceKind::Upstream => {}
        }
        Ok(config)
    }

    /// What `check-config` warns about: an interface or `user` this host
    /// does not have.
    pub fn warnings(&self, host: &common::Host<'_>) -> Vec<ConfigError> {
        let interfaces: Vec<(String, &str)> = self
            .destinations
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("destination[{i}].interface"), d.interface.as_str()))
            .collect();
        common::host_warnings(&self.origin, &interfaces, self.user.as_deref(), host)
    }

    /// Loads the keys file this configuration names; errors point at the
    /// `keys` line.
    pub fn load_keys(&self) -> Result<KeyStore, ConfigError> {
        common::load_keys(&self.origin, &self.keys)
    }

    /// Checks that every destination's key exists in `keys`.
    pub fn validate_with_keys(&self, keys: &KeyStore) -> Result<(), ConfigError> {
        for i in 0..self.destinations.len() {
            self.signing_key(i)?;
        }
        for (i, d) in self.destinations.iter().enumerate() {
            for (field, id) in [("key", d.key), ("next-key", d.next_key)] {
                let Some(id) = id else { continue };
                if keys.get(id).is_none() {
                    return Err(self.origin.labelled(
                        &format!("destination[{i}].{field}"),
                        format!("destination[{i}] {} on {}", d.address, d.interface),
                        format!("{field} {id} is not in {}", keys.path().display()),
                        ConfigErrorKind::Keys,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Destination `i`'s signing key, loaded from its file (`None` when it
    /// has none); errors point at the `signing-key` line.
    pub fn signing_key(&self, i: usize) -> Result<Option<ServerKey>, ConfigError> {
        let Some(path) = self
            .destinations
            .get(i)
            .and_then(|d| d.signing_key.as_ref())
        else {
            return Ok(None);
        };
        ServerKey::load(path).map(Some).map_err(|e| {
            let mut err = self.origin.error(
                &format!("destination[{i}].signing-key"),
                format!("{:?}", path.display().to_string()),
                format!("cannot use the signing key: {e}"),
            );
            err.kind = ConfigErrorKind::Keys;
            err
        })
    }

    /// The configuration file this came from.
    pub fn file(&self) -> &Path {
        &self.origin.file
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let o = &self.origin;
        common::check_path(o, "keys", &self.keys)?;
        common::check_path(o, "control-socket", &self.control_socket)?;
        if self.port == 0 {
            return Err(o.error("port", self.port, "must be 1..65535"));
        }
        common::check_user(o, self.user.as_deref())?;
        if self.destinations.is_empty() && !self.responder.enabled {
            return Err(o.error(
                "responder.enabled",
                false,
                "no [[destination]] and the responder is disabled: the server would do nothing",
            ));
        }
        let mut seen = HashSet::new();
        for (i, d) in self.destinations.iter().enumerate() {
            self.validate_destination(i, d)?;
            if !seen.insert((d.address, d.interface.as_str())) {
                return Err(o.error(
                    &format!("destination[{i}].address"),
                    d.address,
                    format!(
                        "a destination with this address on interface {} appears earlier",
                        d.interface
                    ),
                ));
            }
        }
        self.validate_time_source()?;
        let rl = &self.rate_limit;
        if rl.min_interval > Duration::from_secs(3600) {
            return Err(o.error(
                "rate-limit.min-interval-s",
                units::show_secs(rl.min_interval),
                "must be at most 3600",
            ));
        }
        Ok(())
    }

    fn validate_destination(&self, i: usize, d: &Destination) -> Result<(), ConfigError> {
        let o = &self.origin;
        let f = |name: &str| format!("destination[{i}].{name}");
        common::check_interface(o, &f("interface"), &d.interface)?;
        match (d.address, d.broadcast) {
            (a, false) if a.is_multicast() => {}
            (IpAddr::V4(a), false) => {
                return Err(o.error(
                    &f("address"),
                    a,
                    "is not a multicast group (224.0.0.0/4); for an IPv4 subnet broadcast \
                     address set broadcast = true on this destination",
                ));
            }
            (IpAddr::V6(a), false) => {
                return Err(o.error(
                    &f("address"),
                    a,
                    "is not an IPv6 multicast group (ff00::/8); IPv6 has no broadcast, use a \
                     group such as ff05::101",
                ));
            }
            (IpAddr::V4(a), true) if !a.is_multicast() && !a.is_unspecified() => {}
            (a, true) => {
                return Err(o.error(
                    &f("broadcast"),
                    true,
                    format!(
                        "address {a} is not an IPv4 broadcast address; leave broadcast out for \
                         a multicast group"
                    ),
                ));
            }
        }
        match (d.key, d.authentication) {
            (Some(_), true) | (None, false) => {}
            (None, true) => {
                return Err(o.labelled(
                    &format!("destination[{i}]"),
                    f("key"),
                    "is required: every packet is signed with the key this destination's \
                     clients verify (set authentication = false on this destination to send \
                     unauthenticated packets)",
                    ConfigErrorKind::Invalid,
                ));
            }
            (Some(k), false) => {
                return Err(o.error(
                    &f("authentication"),
                    false,
                    format!("contradicts key = {k}: remove one of them"),
                ));
            }
        }
        match (d.next_key, d.next_key_from, d.key) {
            (Some(_), Some(_), Some(_)) | (None, None, _) => {}
            (Some(n), None, _) => {
                return Err(o.error(
                    &f("next-key"),
                    n,
                    "needs next-key-from, the time (RFC 3339 UTC) it starts signing",
                ));
            }
            (None, Some(_), _) => {
                return Err(o.labelled(
                    &f("next-key-from"),
                    f("next-key-from"),
                    "needs next-key, the key that signs from then on",
                    ConfigErrorKind::Invalid,
                ));
            }
            (Some(n), Some(_), None) => {
                return Err(o.error(
                    &f("next-key"),
                    n,
                    "is a rollover from key: this destination sends unauthenticated",
                ));
            }
        }
        if d.poll.is_lab_only() && !self.lab_allow_fast_poll {
            return Err(o.error(
                &f("poll"),
                d.poll,
                "must be 3..17: ntpd 4.2.8 clients abort on a broadcast with poll 1 or 2 and \
                 drop packets that arrive earlier than 2^poll s; set lab-allow-fast-poll = true \
                 at the top of the file to allow 0..2 in a lab",
            ));
        }
        Ok(())
    }

    fn validate_time_source(&self) -> Result<(), ConfigError> {
        let o = &self.origin;
        let ts = &self.time_source;
        let kind = match ts.kind {
            TimeSourceKind::Kernel => "kernel",
            TimeSourceKind::Upstream => "upstream",
            TimeSourceKind::Local => "local",
        };
        if ts.kind == TimeSourceKind::Upstream {
            if let Some(s) = ts.stratum {
                return Err(o.error(
                    "time-source.stratum",
                    s,
                    "is not used with kind = \"upstream\": the server announces the upstream's \
                     stratum + 1",
                ));
            }
            if let Some(r) = ts.refid {
                return Err(o.error(
                    "time-source.refid",
                    r,
                    "is not used with kind = \"upstream\": the refid is the upstream's address",
                ));
            }
            let up = ts.upstream;
            if up.ip().is_unspecified() || up.ip().is_multicast() || up.port() == 0 {
                return Err(o.error(
                    "time-source.upstream",
                    up,
                    "must be a unicast address and a port, e.g. \"127.0.0.1:123\"",
                ));
            }
            // Our sockets bind each destination interface's address on
            // `port` (the wildcard address when there is no destination):
            // a loopback upstream on the same port collides only when one of
            // them covers the loopback address. chronyd or ntpd answering on
            // 127.0.0.1:123 next to broadcasts on bond0 port 123 is the
            // normal set-up.
            let clash = if self.destinations.is_empty() {
                Some("with no [[destination]] the responder listens on every address".to_owned())
            } else {
                self.destinations
                    .iter()
                    .position(|d| d.interface == "lo")
                    .map(|i| format!("destination[{i}] sends from the loopback interface"))
            };
            if up.ip().is_loopback()
                && up.port() == self.port
                && let Some(clash) = clash
            {
                return Err(o.error(
                    "time-source.upstream",
                    up,
                    format!(
                        "is on this server's own port {} and {clash}, the upstream's address \
                         included: run the upstream daemon on another port",
                        self.port
                    ),
                ));
            }
            let q = ts.query_interval;
            if q < Duration::from_secs(16) || q > Duration::from_secs(64) {
                return Err(o.error(
                    "time-source.query-interval-s",
                    units::show_secs(q),
                    "must be 16..64",
                ));
            }
        } else {
            if ts.stratum.is_none() {
                return Err(o.labelled(
                    "time-source",
                    "time-source.stratum",
                    format!("is required with kind = \"{kind}\" (1..14)"),
                    ConfigErrorKind::Invalid,
                ));
            }
            for field in ["upstream", "query-interval-s"] {
                let path = format!("time-source.{field}");
                if o.has(&path) {
                    return Err(o.error(
                        &path,
                        "",
                        format!("is only used with kind = \"upstream\", not \"{kind}\""),
                    ));
                }
            }
        }
        Ok(())
    }
}
