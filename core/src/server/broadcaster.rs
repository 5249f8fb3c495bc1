//! Builds and schedules the mode-5 broadcasts of one destination, sans-I/O.
//!
//! Timing rules that keep ntpd 4.2.8 clients happy: never send sooner than
//! 2^poll after the previous packet (they drop early packets), add a small
//! positive random jitter (up to 1/16 of the interval, as ntpd does), and
//! never change the poll field while running (they reject a changed poll
//! for good).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mcast_keys::signed::ServerKey;
use mcast_keys::{KeyId, KeyStore, packet};
use mcast_proto::{Datagram, Log2Seconds, Mode, NtpTimestamp};

use serde::{Deserialize, Serialize};

use crate::server::sync::{SyncStatus, Unsync};

/// Settings of one destination's broadcasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastConfig {
    /// Poll exponent: one packet every 2^poll s (plus jitter).
    pub poll: Log2Seconds,
    /// Key every packet is signed with; `None` only when the configuration
    /// explicitly turns authentication off.
    pub key: Option<KeyId>,
    /// A rollover: the key that signs instead of `key` from a time on.
    pub next_key: Option<NextKey>,
    /// Interleaved broadcast: origin carries the previous packet's kernel
    /// transmit time (RFC 9769).
    pub interleave: bool,
    /// Send LI=3, stratum 16 while unsynchronized instead of staying silent.
    pub send_when_unsynchronized: bool,
    /// Our clock's precision.
    pub precision: Log2Seconds,
}

/// The key that takes over at a time (`next-key`, `next-key-from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextKey {
    /// The key.
    pub key: KeyId,
    /// Packets whose transmit timestamp is at or after this are signed with it.
    pub from: NtpTimestamp,
}

/// What [`Broadcaster::build`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// The packet is in the output buffer: send it now.
    Send,
    /// Send nothing this time, for this reason (shown in status and logs).
    Silent(Silence),
}

/// Why an interval's broadcast was not sent (`kind`; status JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Silence {
    /// Not synchronized (and `send-when-unsynchronized` is off).
    NotSynchronized {
        /// Why.
        reason: Unsync,
    },
    /// The destination's key is no longer in the keys file.
    KeyMissing {
        /// Its id.
        key: u16,
    },
    /// The send itself failed (the shell reports this one).
    SendFailed {
        /// The system's error.
        error: String,
    },
}

/// Scheduler and packet builder of one destination.
#[derive(Debug, Clone)]
pub struct Broadcaster {
    config: BroadcastConfig,
    due: Duration,
    last_sent: Option<Duration>,
    previous_kernel_tx: Option<NtpTimestamp>,
    sent: u64,
    silent: u64,
    last_key: Option<KeyId>,
    /// The Ed25519 key every packet is also signed with, and the
    /// destination the signature names.
    signer: Option<(Arc<ServerKey>, SocketAddr)>,
}

impl Broadcaster {
    /// A broadcaster whose first packet is due at monotonic time `start`.
    pub fn new(config: BroadcastConfig, start: Duration) -> Self {
        Broadcaster {
            config,
            due: start,
            last_sent: None,
            previous_kernel_tx: None,
            sent: 0,
            silent: 0,
            last_key: config.key,
            signer: None,
        }
    }

    /// Also signs every packet with `key` for `destination` (the group or
    /// broadcast address and port it is sent to): the signature field goes
    /// after the header, the MAC (if any) after the field.
    #[must_use]
    pub fn with_signer(mut self, key: Arc<ServerKey>, destination: SocketAddr) -> Self {
        self.signer = Some((key, destination));
        self
    }

    /// The key that signs its packets, if any.
    pub fn signer(&self) -> Option<&Arc<ServerKey>> {
        self.signer.as_ref().map(|(k, _)| k)
    }

    /// The settings.
    pub fn config(&self) -> &BroadcastConfig {
        &self.config
    }

    /// Monotonic time the next packet is due.
    pub fn due(&self) -> Duration {
        self.due
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The key the last packet was signed with (before the first: `key`).
    pub fn signing_key(&self) -> Option<KeyId> {
        self.last_key
    }

    /// Intervals skipped because we could not vouch for our time.
    pub fn silent_intervals(&self) -> u64 {
        self.silent
    }

    /// The interval 2^poll.
    pub fn interval(&self) -> Duration {
        let secs = 1u64 << self.config.poll.0.clamp(0, 17);
        Duration::from_secs(secs)
    }

    /// Builds the packet due now into `out`. `clock` is read once, as late
    /// as possible, for the transmit timestamp, which also decides between
    /// `key` and a `next_key` due. A missing key is never replaced by
    /// sending unauthenticated (nor by the other key).
    pub fn build(
        &mut self,
        sync: &SyncStatus,
        keys: &KeyStore,
        clock: impl FnOnce() -> NtpTimestamp,
        out: &mut Vec<u8>,
    ) -> Build {
        out.clear();
        if let SyncStatus::Unsynchronized { reason } = sync
            && !self.config.send_when_unsynchronized
        {
            return Build::Silent(Silence::NotSynchronized {
                reason: reason.clone(),
            });
        }
        let mut h = sync.fill(Mode::Broadcast, self.config.poll, self.config.precision);
        if self.config.interleave {
            h.origin = self.previous_kernel_tx.unwrap_or(NtpTimestamp::ZERO);
        }
        h.transmit = clock();
        let id = match self.config.next_key {
            Some(n) if (h.transmit - n.from).as_nanos() >= 0 => Some(n.key),
            _ => self.config.key,
        };
        let key = match id {
            Some(id) => match keys.get(id) {
                Some(k) => Some(k),
                None => return Build::Silent(Silence::KeyMissing { key: id.get() }),
            },
            None => None,
        };
        self.last_key = id;
        let mut d = Datagram::new(h);
        if let Some((signer, destination)) = &self.signer {
            d.extensions
                .push(signer.sign_field(&h.to_bytes(), *destination));
        }
        match key {
            Some(k) => packet::sign(k, &d, out),
            None => d.write_signed_part(out),
        }
        Build::Send
    }

    /// Records that the due packet was sent at monotonic `now` (or skipped,
    /// with `sent = false`) and schedules the next one 2^poll later plus a
    /// jitter of `random / 65536 / 16` of the interval.
    pub fn advance(
        &mut self,
        now: Duration,
        sent: bool,
        random: u16,
        kernel_tx: Option<NtpTimestamp>,
    ) {
        if sent {
            self.sent += 1;
            self.last_sent = Some(now);
            self.previous_kernel_tx = kernel_tx;
        } else {
            self.silent += 1;
        }
        let interval = self.interval();
        let jitter = interval.mul_f64(f64::from(random) / 65536.0 / 16.0);
        self.due = now + interval + jitter;
    }

    /// Records the kernel transmit timestamp of the last packet when it
    /// arrives after [`Broadcaster::advance`] (the error queue is read later).
    pub fn set_previous_kernel_tx(&mut self, ts: NtpTimestamp) {
        self.previous_kernel_tx = Some(ts);
    }
}
