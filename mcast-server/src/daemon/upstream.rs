//! The `upstream` time source: the query socket and the task that feeds
//! the sans-I/O [`Upstream`], and the sync state read from it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mcast_config::{ServerConfig, TimeSourceKind};
use mcast_core::server::sync::{SyncStatus, Unsync};
use mcast_core::server::timesource;
use mcast_core::server::upstream::{Upstream, UpstreamConfig, UpstreamReport, Verdict};
use mcast_proto::{Log2Seconds, NtpTimestamp};
use mcast_sys::{EndpointOptions, RealClock, UdpEndpoint};
use tokio::time::Instant;

use super::{DaemonError, io_err, now_ntp};
use crate::settings::advertised;

/// The `upstream` time source of this process: its sans-I/O state, shared
/// by the query task (in [`sync_loop`]), `status` and [`current_sync`].
pub(super) struct UpstreamCell {
    pub(super) start: Instant,
    pub(super) core: Mutex<Upstream>,
}

impl UpstreamCell {
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Upstream, Duration) -> T) -> T {
        let now = self.start.elapsed();
        let mut core = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut core, now)
    }

    pub(super) fn sync(&self) -> SyncStatus {
        self.with(|u, now| u.status(now))
    }

    pub(super) fn report(&self) -> UpstreamReport {
        self.with(|u, now| u.report(now))
    }
}

/// The time source's state now, read right before each send (so the
/// dispersion is grown to that moment). `upstream` is the handle of the
/// running upstream source, when the source is `upstream`.
pub(super) fn current_sync(config: &ServerConfig, upstream: Option<&UpstreamCell>) -> SyncStatus {
    let ts = &config.time_source;
    match ts.kind {
        TimeSourceKind::Local => timesource::local(&advertised(ts), now_ntp()),
        TimeSourceKind::Kernel => match mcast_sys::kernel_time_status() {
            Ok(k) => timesource::kernel(&advertised(ts), &kernel_sync(&k), now_ntp()),
            Err(e) => SyncStatus::Unsynchronized {
                reason: Unsync::KernelUnreadable {
                    error: e.to_string(),
                },
            },
        },
        TimeSourceKind::Upstream => match upstream {
            Some(u) => u.sync(),
            None => SyncStatus::Unsynchronized {
                reason: Unsync::UpstreamNotRunning,
            },
        },
    }
}

/// What a read of the kernel's NTP state (read-only `adjtimex`) means for
/// the broadcasts: its leap bits become the leap indicator, its maxerror
/// the root dispersion.
fn kernel_sync(k: &mcast_sys::KernelTimeStatus) -> timesource::KernelSync {
    use mcast_proto::LeapIndicator;
    timesource::KernelSync {
        synchronized: k.synchronized,
        maxerror: mcast_proto::NtpDuration::from_std(k.maxerror),
        leap: match k.leap() {
            mcast_sys::KernelLeap::None => LeapIndicator::NoWarning,
            mcast_sys::KernelLeap::Insert => LeapIndicator::AddSecond,
            mcast_sys::KernelLeap::Delete => LeapIndicator::DeleteSecond,
        },
    }
}

/// The socket the upstream task queries from, and the state it feeds.
pub(super) struct UpstreamLink {
    pub(super) cell: Arc<UpstreamCell>,
    pub(super) ep: UdpEndpoint,
}

/// Opens the ephemeral query socket (connected to the upstream, kernel
/// receive and transmit timestamps on) and installs the upstream state
/// for [`current_sync`].
pub(super) fn start_upstream(
    config: &ServerConfig,
    precision: Log2Seconds,
    start: Instant,
) -> Result<UpstreamLink, DaemonError> {
    let ts = &config.time_source;
    let addr = ts.upstream;
    let what = format!("time-source.upstream {addr}: query socket");
    let any = if addr.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    let ep = UdpEndpoint::bind(SocketAddr::new(any, 0), &EndpointOptions::new())
        .map_err(io_err(what.clone()))?;
    ep.connect(addr).map_err(io_err(what.clone()))?;
    ep.enable_rx_metadata().map_err(io_err(what.clone()))?;
    if let Err(e) = ep.enable_tx_timestamps() {
        tracing::debug!("{what}: no kernel transmit timestamps ({e}); using the clock");
    }
    let cell = Arc::new(UpstreamCell {
        start,
        core: Mutex::new(Upstream::new(
            UpstreamConfig {
                address: addr,
                query_interval: ts.query_interval,
                precision,
            },
            start.elapsed(),
        )),
    });
    Ok(UpstreamLink { cell, ep })
}

/// A socket error in words.
pub(super) fn describe(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        "connection refused: nothing listens on that address and port".into()
    } else {
        e.to_string()
    }
}

impl UpstreamLink {
    /// Waits for the next event (a query due, a datagram, the 1 s tick)
    /// and handles it.
    pub(super) async fn step(&self, tick: &mut tokio::time::Interval, buf: &mut [u8]) {
        let due = self.cell.start + self.cell.with(|u, _| u.due());
        tokio::select! {
            _ = tick.tick() => {
                // An ICMP "port unreachable" for a query is a pending error.
                if let Ok(Some(e)) = self.ep.socket().take_error() {
                    self.cell.with(|u, _| u.socket_error(describe(&e)));
                }
            }
            () = tokio::time::sleep_until(due) => self.query().await,
            r = self.ep.recv(buf) => match r {
                Ok(meta) => {
                    let t4 = NtpTimestamp::from_system_time(
                        meta.kernel_rx.unwrap_or_else(RealClock::now),
                    );
                    let bytes = buf.get(..meta.len).unwrap_or_default();
                    let v = self.cell.with(|u, now| u.on_reply(meta.source, bytes, t4, now));
                    match v {
                        Verdict::Accepted(s) => tracing::debug!(
                            stratum = s.header.stratum,
                            offset = %s.offset,
                            delay = %s.delay,
                            "upstream reply"
                        ),
                        Verdict::Refused(why) => tracing::debug!(
                            "upstream reply refused: {}",
                            crate::text::upstream_problem_words(meta.source, &why)
                        ),
                        Verdict::Ignored(why) => tracing::debug!(
                            "ignored a datagram: {}",
                            crate::text::ignored_words(&why)
                        ),
                    }
                }
                Err(e) => {
                    self.cell.with(|u, _| u.socket_error(describe(&e)));
                    // Never spin on a socket that keeps failing.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }

    /// Sends one query: a random cookie as its transmit timestamp, T1 from
    /// the kernel's transmit timestamp when there is one.
    pub(super) async fn query(&self) {
        let t1 = now_ntp();
        let (bytes, ticket) = self
            .cell
            .with(|u, now| u.query(now, rand::random::<u64>(), t1));
        let to = self.cell.with(|u, _| u.config().address);
        if let Err(e) = self.ep.send_to(&bytes, to).await {
            self.cell.with(|u, _| u.socket_error(describe(&e)));
            return;
        }
        // The oldest queued transmit timestamp the exchange takes as this
        // query's (an older one belongs to an earlier query).
        while let Ok(Some(tx)) = self
            .ep
            .take_tx_timestamp_within(Duration::from_millis(100))
            .await
        {
            let tx = NtpTimestamp::from_system_time(tx.time);
            if self.cell.with(|u, _| u.transmitted(ticket, tx)) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcast_proto::{LeapIndicator, NtpShort};

    /// A fake reading (never this host's kernel): `STA_INS` (0x10) and a
    /// 5 ms maxerror give a leap warning and a 5 ms root dispersion; after
    /// the leap (`TIME_WAIT`, 4) the warning is gone.
    #[test]
    fn kernel_leap_bits_and_maxerror_reach_the_broadcasts() {
        let reading = |status_bits, state| mcast_sys::KernelTimeStatus {
            synchronized: true,
            maxerror: Duration::from_millis(5),
            esterror: Duration::from_micros(20),
            status_bits,
            state,
        };
        let header = |k: &mcast_sys::KernelTimeStatus| {
            let s = timesource::kernel(
                &timesource::Advertised::default(),
                &kernel_sync(k),
                NtpTimestamp::from_unix(1_800_000_000, 0),
            );
            *s.header().expect("synchronized")
        };
        let h = header(&reading(0x10, 1));
        assert_eq!(h.leap, LeapIndicator::AddSecond);
        assert_eq!(
            h.root_dispersion,
            NtpShort::from_duration(mcast_proto::NtpDuration::from_millis(5))
        );
        assert_eq!(header(&reading(0x10, 3)).leap, LeapIndicator::AddSecond);
        assert_eq!(header(&reading(0x10, 4)).leap, LeapIndicator::NoWarning);
        assert_eq!(header(&reading(0x20, 0)).leap, LeapIndicator::DeleteSecond);
        assert_eq!(header(&reading(0, 0)).leap, LeapIndicator::NoWarning);
    }
}
