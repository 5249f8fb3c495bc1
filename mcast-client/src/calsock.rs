//! The calibration sockets: where unicast requests leave from and replies
//! come back to. With a configured `source-port` there is one socket (pair,
//! IPv4 and IPv6) for the life of the process, as firewalls that let only
//! that port through need. Without one, each burst of requests (a volley or
//! a check, numbered by the core) leaves from a fresh ephemeral port, so an
//! off-path host that learnt one volley's port learns nothing of the next;
//! a socket is closed two minutes after its burst last used it (late
//! replies still find it meanwhile).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mcast_sys::{EndpointOptions, UdpEndpoint};
use tokio::time::Instant;

/// How long a socket stays open after its burst last sent from it.
pub const LINGER: Duration = Duration::from_secs(120);

/// Most sockets open at once; more bursts at a time share the newest.
const MAX_OPEN: usize = 16;

/// One calibration socket and the transmit-timestamp id of the next
/// datagram it sends (`SOF_TIMESTAMPING_OPT_ID`), held across a send and
/// the read of its kernel transmit time so each request gets its own.
pub struct CalSocket {
    /// The socket.
    pub ep: UdpEndpoint,
    /// Id of the next datagram sent.
    pub next_id: tokio::sync::Mutex<u32>,
}

/// The IPv4 socket and, where the host has IPv6, one on the same port.
pub struct CalPair {
    /// IPv4.
    pub v4: Arc<CalSocket>,
    /// IPv6 (v6-only), when it could be opened.
    pub v6: Option<Arc<CalSocket>>,
    /// The local port.
    pub port: u16,
    /// Closed for new requests at this time (its reply loops end then).
    closes_at: std::sync::Mutex<Option<Instant>>,
}

impl CalPair {
    /// Opens a pair on `port` (0: ephemeral).
    pub fn open(port: u16) -> std::io::Result<CalPair> {
        let opts = EndpointOptions::new().reuse_addr(port != 0);
        let v4 = UdpEndpoint::bind(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            &opts,
        )?;
        v4.enable_rx_metadata()?;
        // Kernel transmit timestamps make T1 the moment the request left,
        // not the moment it was built (without them T1 is the clock read
        // at build).
        if let Err(e) = v4.enable_tx_timestamps() {
            tracing::debug!("no kernel transmit timestamps on the calibration socket: {e}");
        }
        let port = v4.local_addr().map(|a| a.port()).unwrap_or(port);
        let v6 = UdpEndpoint::bind(
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            &opts.clone().v6_only(true),
        )
        .ok();
        if let Some(c) = &v6 {
            let _ = c.enable_rx_metadata();
            let _ = c.enable_tx_timestamps();
        }
        let wrap = |ep| {
            Arc::new(CalSocket {
                ep,
                next_id: tokio::sync::Mutex::new(0),
            })
        };
        Ok(CalPair {
            v4: wrap(v4),
            v6: v6.map(wrap),
            port,
            closes_at: std::sync::Mutex::new(None),
        })
    }

    /// The socket for a destination's family.
    pub fn for_destination(&self, to: SocketAddr) -> Option<&Arc<CalSocket>> {
        if to.is_ipv6() {
            self.v6.as_ref()
        } else {
            Some(&self.v4)
        }
    }

    /// Whether its reply loops should end now.
    pub fn closed(&self, now: Instant) -> bool {
        self.closes_at
            .lock()
            .ok()
            .and_then(|c| *c)
            .is_some_and(|at| now >= at)
    }
}

/// A pair in use and the burst it serves.
struct Slot {
    /// The burst, or `None` for the pair opened at start not yet used.
    burst: Option<u64>,
    pair: Arc<CalPair>,
    used: Instant,
}

/// Every calibration socket pair open.
pub struct CalSockets {
    fixed: bool,
    slots: tokio::sync::Mutex<Vec<Slot>>,
}

impl CalSockets {
    /// Opens the first pair: on `port` for good, or (0) an ephemeral one
    /// for the first burst. Returns it too, for its reply loops.
    pub fn open(port: u16) -> std::io::Result<(CalSockets, Arc<CalPair>)> {
        let pair = Arc::new(CalPair::open(port)?);
        let sockets = CalSockets {
            fixed: port != 0,
            slots: tokio::sync::Mutex::new(vec![Slot {
                burst: None,
                pair: Arc::clone(&pair),
                used: Instant::now(),
            }]),
        };
        Ok((sockets, pair))
    }

    /// Whether the port is fixed by configuration.
    pub fn is_fixed(&self) -> bool {
        self.fixed
    }

    /// The pair requests of `burst` leave from, and whether it was opened
    /// now (its reply loops must be started). `None` only when no socket
    /// is open and none can be.
    pub async fn for_burst(&self, burst: u64) -> Option<(Arc<CalPair>, bool)> {
        let now = Instant::now();
        let mut slots = self.slots.lock().await;
        if self.fixed {
            return slots.first().map(|s| (Arc::clone(&s.pair), false));
        }
        // Close the pairs no burst used for LINGER (the newest stays).
        let newest_at = slots.len().saturating_sub(1);
        let mut i = 0;
        slots.retain(|s| {
            let keep = i == newest_at
                || s.burst.is_none()
                || now.saturating_duration_since(s.used) < LINGER;
            i += 1;
            if !keep && let Ok(mut c) = s.pair.closes_at.lock() {
                *c = Some(now);
            }
            keep
        });
        if let Some(s) = slots.iter_mut().find(|s| s.burst == Some(burst)) {
            s.used = now;
            return Some((Arc::clone(&s.pair), false));
        }
        if let Some(s) = slots.iter_mut().find(|s| s.burst.is_none()) {
            s.burst = Some(burst);
            s.used = now;
            return Some((Arc::clone(&s.pair), false));
        }
        let newest = slots.last().map(|s| Arc::clone(&s.pair));
        if slots.len() >= MAX_OPEN {
            return newest.map(|p| (p, false));
        }
        match CalPair::open(0) {
            Ok(pair) => {
                let pair = Arc::new(pair);
                slots.push(Slot {
                    burst: Some(burst),
                    pair: Arc::clone(&pair),
                    used: now,
                });
                Some((pair, true))
            }
            Err(e) => {
                tracing::warn!("no fresh calibration socket ({e}); reusing the last one");
                newest.map(|p| (p, false))
            }
        }
    }
}

/// The kernel transmit time of datagram `id` of `ep` (older entries left in
/// the error queue by an earlier timeout are skipped), if it comes soon.
pub async fn kernel_tx_time(ep: &UdpEndpoint, id: u32) -> Option<std::time::SystemTime> {
    for _ in 0..8 {
        let ts = ep
            .take_tx_timestamp_within(Duration::from_millis(20))
            .await
            .ok()
            .flatten()?;
        match ts.id {
            None => return Some(ts.time),
            Some(got) if got == id => return Some(ts.time),
            // An older datagram's: skip it.
            Some(got) if got.wrapping_sub(id) > u32::MAX / 2 => {}
            Some(_) => return None,
        }
    }
    None
}
