//! systemd's readiness protocol (`sd_notify(3)`): datagrams such as
//! `READY=1`, `STATUS=...` and `WATCHDOG=1` sent to the unix socket named
//! by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
//! A few lines over [`std::os::unix::net::UnixDatagram`]; no crate needed.

use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The service manager's notification socket, opened once.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The socket `$NOTIFY_SOCKET` names; `None` when it is unset or empty
    /// (not started by systemd with `Type=notify`).
    ///
    /// # Errors
    /// The socket cannot be created, or the variable is no socket address.
    pub fn from_env() -> Option<io::Result<Notifier>> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let name = name.to_string_lossy().into_owned();
        if name.is_empty() {
            return None;
        }
        Some(Self::open(&name))
    }

    /// A notifier for the socket `name` (a path or `@abstract`).
    ///
    /// # Errors
    /// As [`Notifier::from_env`].
    pub fn open(name: &str) -> io::Result<Notifier> {
        let addr = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name)?,
            None if name.starts_with('/') => SocketAddr::from_pathname(name)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("NOTIFY_SOCKET={name:?} is neither a path nor @abstract"),
                ));
            }
        };
        Ok(Notifier {
            sock: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Sends one notification (`KEY=value` lines).
    ///
    /// # Errors
    /// The send failed (the service manager is gone).
    pub fn send(&self, message: &str) -> io::Result<()> {
        self.sock
            .send_to_addr(message.as_bytes(), &self.addr)
            .map(|_| ())
    }
}

/// How often systemd expects `WATCHDOG=1`: `$WATCHDOG_USEC`, when it is
/// set and `$WATCHDOG_PID` (if set) is this process.
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_string_lossy().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier::open(path.to_str().expect("utf-8")).expect("open");
        n.send("READY=1\nSTATUS=hello").expect("send");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).expect("recv");
        assert_eq!(buf.get(..len), Some(&b"READY=1\nSTATUS=hello"[..]));

        let name = format!("mcast-ntp-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(&name).expect("abstract");
        let listener = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        Notifier::open(&format!("@{name}"))
            .expect("open")
            .send("WATCHDOG=1")
            .expect("send");
        let len = listener.recv(&mut buf).expect("recv");
        assert_eq!(buf.get(..len), Some(&b"WATCHDOG=1"[..]));

        assert!(Notifier::open("relative").is_err());
    }
}
