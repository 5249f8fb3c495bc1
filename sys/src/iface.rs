//! Network interfaces by name and index (`if_nametoindex`, `getifaddrs`).

use std::io;
use std::net::IpAddr;

use nix::ifaddrs::getifaddrs;
use nix::net::if_::{if_indextoname, if_nametoindex};

/// The kernel index of the interface called `name` (`if_nametoindex(3)`).
///
/// # Errors
/// `NotFound`-like OS error (`ENODEV`) when no such interface exists, or
/// `InvalidInput` for a name the kernel cannot hold.
pub fn interface_index(name: &str) -> io::Result<u32> {
    if_nametoindex(name).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("interface {name:?}: {e}"),
        )
    })
}

/// Whether this network namespace has an interface called `name`.
pub fn interface_exists(name: &str) -> bool {
    interface_index(name).is_ok()
}

/// The name of the interface with kernel index `index`, or `None` when there
/// is none (the interface was removed, or never existed).
pub fn interface_by_index(index: u32) -> Option<String> {
    let name = if_indextoname(index).ok()?.into_string().ok()?;
    // nix 0.31 misses if_indextoname's NULL (error) return and hands back the
    // untouched, empty buffer; no interface has an empty name.
    (!name.is_empty()).then_some(name)
}

/// The IP addresses configured on interface `name`, IPv4 first, then IPv6
/// addresses of wider scope, then IPv6 link-local (`fe80::/10`) ones; within
/// each group, in the kernel's order.
///
/// An interface that exists but has no address gives an empty list.
///
/// # Errors
/// When `getifaddrs(3)` fails, or when no interface is called `name`.
pub fn interface_addresses(name: &str) -> io::Result<Vec<IpAddr>> {
    let mut v4 = Vec::new();
    let mut v6_wide = Vec::new();
    let mut v6_link = Vec::new();
    for ifa in getifaddrs().map_err(io::Error::from)? {
        if ifa.interface_name != name {
            continue;
        }
        let Some(addr) = ifa.address else { continue };
        if let Some(sin) = addr.as_sockaddr_in() {
            v4.push(IpAddr::V4(sin.ip()));
        } else if let Some(sin6) = addr.as_sockaddr_in6() {
            let ip = sin6.ip();
            if ip.is_unicast_link_local() {
                v6_link.push(IpAddr::V6(ip));
            } else {
                v6_wide.push(IpAddr::V6(ip));
            }
        }
    }
    if v4.is_empty() && v6_wide.is_empty() && v6_link.is_empty() {
        // Tell "no such interface" apart from "interface without addresses".
        interface_index(name)?;
    }
    v4.extend(v6_wide);
    v4.extend(v6_link);
    Ok(v4)
}

/// The IPv4 broadcast addresses of every interface of this host (what
/// `getifaddrs(3)` gives as `ifa_broadaddr` for interfaces flagged
/// `IFF_BROADCAST`), each once: the directed broadcasts a datagram can be
/// sent to. `255.255.255.255` is not among them unless configured.
///
/// # Errors
/// When `getifaddrs(3)` fails.
pub fn interface_broadcast_addresses() -> io::Result<Vec<IpAddr>> {
    use nix::net::if_::InterfaceFlags;
    let all: Vec<_> = getifaddrs().map_err(io::Error::from)?.collect();
    // For an address configured without a broadcast address (`ip addr add
    // A/24` without `brd`), glibc's getifaddrs puts the address itself in
    // ifa_broadaddr: an address of this host is never taken as one.
    let own: Vec<IpAddr> = all
        .iter()
        .filter_map(|i| {
            i.address
                .as_ref()?
                .as_sockaddr_in()
                .map(|s| IpAddr::V4(s.ip()))
        })
        .collect();
    let mut out = Vec::new();
    for ifa in &all {
        if !ifa.flags.contains(InterfaceFlags::IFF_BROADCAST) {
            continue;
        }
        let Some(sin) = ifa.broadcast.as_ref().and_then(|b| b.as_sockaddr_in()) else {
            continue;
        };
        let ip = IpAddr::V4(sin.ip());
        if !ip.is_unspecified() && !own.contains(&ip) && !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_index_and_name() {
        let idx = interface_index("lo").unwrap();
        assert_eq!(interface_by_index(idx).as_deref(), Some("lo"));
    }

    #[test]
    fn broadcast_addresses_are_ipv4_and_never_loopback() {
        let all = interface_broadcast_addresses().unwrap();
        let own: Vec<IpAddr> = getifaddrs()
            .unwrap()
            .filter_map(|i| i.address?.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())))
            .collect();
        assert!(
            all.iter().all(|b| !own.contains(b)),
            "never an address of this host: {all:?} (own {own:?})"
        );
        assert!(
            all.iter().all(|ip| ip.is_ipv4() && !ip.is_loopback()),
            "{all:?}"
        );
    }

    #[test]
    fn unknown_interface_is_an_error() {
        assert!(interface_index("no-such-if0").is_err());
        assert!(interface_addresses("no-such-if0").is_err());
        assert_eq!(interface_by_index(0), None);
    }
}
