//! Read-only system queries: kernel time state, clock precision, interfaces.
//! Nothing here changes the clock (`adjust_clock` is never called by tests).
#![cfg(test)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use mcast_sys::{
    RealClock, interface_addresses, interface_by_index, interface_index, kernel_time_status,
    measure_precision,
};

#[test]
fn kernel_time_status_reads() {
    let s = kernel_time_status().expect("read-only adjtimex succeeds");
    assert!(
        (0..=5).contains(&s.state),
        "clock state TIME_OK..TIME_ERROR, got {}",
        s.state
    );
    // The kernel caps maxerror at 16 s (NTP_PHASE_LIMIT).
    assert!(
        s.maxerror <= Duration::from_secs(16),
        "maxerror {:?}",
        s.maxerror
    );
    eprintln!("kernel time status: {s:?}");
}

#[test]
fn precision_is_plausible() {
    let p = measure_precision(64);
    assert!((-30..=0).contains(&p), "precision {p} should be in -30..=0");
    eprintln!("measured precision: {p}");
}

#[test]
fn clocks_read() {
    let now = RealClock::now();
    assert!(now > std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000));
    let a = RealClock::monotonic_now();
    let b = RealClock::monotonic_now();
    assert!(b >= a, "monotonic clock goes forward");
}

#[test]
fn loopback_interface() {
    let idx = interface_index("lo").expect("lo exists");
    assert_eq!(interface_by_index(idx).as_deref(), Some("lo"));
    let addrs = interface_addresses("lo").expect("lo addresses");
    assert_eq!(
        addrs.first(),
        Some(&IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "IPv4 first: {addrs:?}"
    );
    if let Some(pos) = addrs.iter().position(|a| a.is_ipv6()) {
        assert!(
            addrs.iter().skip(pos).all(IpAddr::is_ipv6),
            "IPv6 after IPv4: {addrs:?}"
        );
        assert!(
            addrs.contains(&IpAddr::V6(Ipv6Addr::LOCALHOST)),
            "{addrs:?}"
        );
    }
    assert!(interface_addresses("no-such-if0").is_err());
}
