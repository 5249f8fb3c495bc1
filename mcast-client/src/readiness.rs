//! Readiness for systemd (`Type=notify`): `READY=1` once the client is
//! synchronized ([`ClientCore::synchronized`]: a server is selected and,
//! outside monitor mode, the clock is within the step threshold), or after
//! [`READY_AT_THE_LATEST`] unsynchronized, so that a host whose servers are
//! unreachable still finishes booting (`mcast-client-wait-sync.service` is
//! what holds `time-sync.target` until synchronization), `STATUS=`
//! with a one-line summary whenever it changes, and `WATCHDOG=1` from the
//! tick loop when systemd asks for it (`WatchdogSec=`): a client whose tick
//! loop hangs stops pinging and is restarted.

use std::time::Duration;

use mcast_core::client::ClientCore;
use mcast_core::client::status::status_of;
use mcast_sys::Notifier;
use tokio::time::Instant;

/// `READY=1` is sent after this long even when not synchronized (within
/// systemd's default start timeout of 90 s).
pub(crate) const READY_AT_THE_LATEST: Duration = Duration::from_secs(60);

/// What has been told to the service manager.
pub(crate) struct Readiness {
    notifier: Option<Notifier>,
    ready: bool,
    status: String,
    watchdog: Option<Duration>,
    pinged: Option<Instant>,
}

impl Readiness {
    /// From `$NOTIFY_SOCKET` and `$WATCHDOG_USEC`; does nothing without them.
    pub(crate) fn from_env() -> Self {
        let notifier = match Notifier::from_env() {
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                tracing::warn!("NOTIFY_SOCKET: {e}; readiness will not be reported");
                None
            }
            None => None,
        };
        let watchdog = notifier.as_ref().and(mcast_sys::watchdog_interval());
        Self::new(notifier, watchdog)
    }

    fn new(notifier: Option<Notifier>, watchdog: Option<Duration>) -> Self {
        Readiness {
            watchdog,
            notifier,
            ready: false,
            status: String::new(),
            pinged: None,
        }
    }

    /// After each tick: what changed, and the watchdog ping when due.
    pub(crate) fn after_tick(&mut self, core: &ClientCore, mono: Duration) {
        let Some(n) = &self.notifier else {
            return;
        };
        let status = status_of(core, mono, mono);
        let line = crate::text::status_line(&status);
        let mut message = Vec::new();
        if !self.ready && (status.synchronized || mono >= READY_AT_THE_LATEST) {
            self.ready = true;
            message.push("READY=1".to_string());
            if status.synchronized {
                tracing::info!("synchronized: {line}");
            } else {
                tracing::warn!(
                    "not synchronized after {} s, telling systemd the client is started: {line}",
                    READY_AT_THE_LATEST.as_secs()
                );
            }
        }
        if line != self.status {
            message.push(format!("STATUS={line}"));
            self.status = line;
        }
        let now = Instant::now();
        if let Some(every) = self.watchdog
            && self
                .pinged
                .is_none_or(|t| now.duration_since(t) >= every / 2)
        {
            message.push("WATCHDOG=1".to_string());
            self.pinged = Some(now);
        }
        if !message.is_empty()
            && let Err(e) = n.send(&message.join("\n"))
        {
            tracing::debug!("sd_notify: {e}");
        }
    }
}

/// `STOPPING=1` as the daemon shuts down.
pub(crate) fn stopping() {
    if let Some(Ok(n)) = Notifier::from_env() {
        let _ = n.send("STOPPING=1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    /// A client whose servers never answer still tells systemd it started,
    /// after [`READY_AT_THE_LATEST`], with the status saying why it is not
    /// synchronized (the synchronized case is tests/tests/client_readiness.rs).
    #[test]
    fn ready_is_sent_after_a_minute_even_when_nothing_is_selected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let n = Notifier::open(path.to_str().expect("utf-8")).expect("open");
        let mut r = Readiness::new(Some(n), None);
        let core = ClientCore::new(
            mcast_core::client::CoreConfig::with_servers(Vec::new()),
            mcast_keys::KeyStore::from_keys(std::path::Path::new("none"), []).expect("store"),
        );
        let mut buf = [0u8; 512];
        let mut recv = || {
            listener
                .recv(&mut buf)
                .ok()
                .map(|len| String::from_utf8_lossy(buf.get(..len).unwrap_or_default()).into_owned())
        };
        r.after_tick(&core, Duration::from_secs(1));
        let first = recv().expect("a status");
        assert!(!first.contains("READY=1"), "{first}");
        assert!(first.contains("STATUS=no server selected"), "{first}");
        r.after_tick(&core, Duration::from_secs(59));
        assert_eq!(recv(), None, "nothing changed, nothing sent");
        r.after_tick(&core, READY_AT_THE_LATEST);
        assert_eq!(recv().as_deref(), Some("READY=1"));
        r.after_tick(&core, READY_AT_THE_LATEST * 2);
        assert_eq!(recv(), None, "READY=1 once");
    }
}
