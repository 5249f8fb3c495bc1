//! The sockets of the server: one broadcast socket per destination and the
//! responder's `SO_REUSEPORT` sockets.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mcast_config::{ServerConfig, Unsynchronized};
use mcast_core::server::broadcaster::{BroadcastConfig, Broadcaster, NextKey};
use mcast_core::server::status::DestinationStatus;
use mcast_proto::Log2Seconds;
use mcast_sys::{EndpointOptions, UdpEndpoint};

use super::{DaemonError, io_err};

/// DSCP EF, what ntpd marks its packets with.
const TOS_EF: u8 = 0xb8;

/// The source address of an interface for a destination's family.
pub(super) fn source_address(interface: &str, v6: bool) -> Result<IpAddr, DaemonError> {
    let addrs = mcast_sys::interface_addresses(interface)
        .map_err(io_err(format!("interface {interface}")))?;
    addrs
        .into_iter()
        .find(|a| a.is_ipv6() == v6)
        .ok_or_else(|| {
            let fam = if v6 { "IPv6" } else { "IPv4" };
            DaemonError::Config(format!(
                "interface {interface} has no {fam} address to send from"
            ))
        })
}

/// Addresses the responder answers on: each destination's source address
/// (so calibration goes to the address broadcasts come from), or, without
/// destinations, the IPv4 and IPv6 wildcard addresses.
pub(super) fn responder_addresses(senders: &[Sender]) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for s in senders {
        if !addrs.contains(&s.local) {
            addrs.push(s.local);
        }
    }
    addrs
}

/// One destination's broadcasts: socket, status slot, schedule.
pub(super) struct Sender {
    pub(super) index: usize,
    pub(super) local: SocketAddr,
    pub(super) ep: Arc<UdpEndpoint>,
    pub(super) dest: SocketAddr,
    pub(super) broadcaster: Broadcaster,
    pub(super) status: DestinationStatus,
}

/// Opens the broadcast socket of destination `i` on the current runtime:
/// bound to the interface's address and the NTP port (broadcasts leave from
/// the address clients calibrate with), and *connected* to the destination,
/// so it never receives a request: requests go to the responder's
/// `SO_REUSEPORT` sockets on the same address, and the error queue holds
/// only this destination's transmit timestamps (interleaved mode).
pub(super) fn open_sender(
    config: &ServerConfig,
    i: usize,
    precision: Log2Seconds,
    start: Duration,
) -> Result<Sender, DaemonError> {
    let Some(d) = config.destinations.get(i) else {
        return Err(DaemonError::Config(format!("no destination[{i}]")));
    };
    let v6 = d.address.is_ipv6();
    let ifindex = mcast_sys::interface_index(&d.interface).map_err(io_err(format!(
        "destination[{i}]: interface {}",
        d.interface
    )))?;
    let src = source_address(&d.interface, v6)?;
    let local = SocketAddr::new(src, config.port);
    let dest = SocketAddr::new(d.address, config.port);
    let opts = EndpointOptions::new().reuse_addr(true);
    let ep = UdpEndpoint::bind(local, &opts).map_err(io_err(format!(
        "destination[{i}]: bind {src} port {}",
        config.port
    )))?;
    let what = format!("destination[{i}]: socket options");
    if v6 {
        ep.set_multicast_if_v6(ifindex)
            .map_err(io_err(what.clone()))?;
        ep.set_multicast_hops_v6(u32::from(d.ttl))
            .map_err(io_err(what.clone()))?;
    } else {
        ep.set_multicast_if_v4_index(ifindex)
            .map_err(io_err(what.clone()))?;
        ep.set_multicast_ttl_v4(u32::from(d.ttl))
            .map_err(io_err(what.clone()))?;
        ep.set_broadcast(d.broadcast)
            .map_err(io_err(what.clone()))?;
        ep.set_tos(TOS_EF).map_err(io_err(what.clone()))?;
    }
    ep.set_multicast_loop(d.multicast_loop)
        .map_err(io_err(what.clone()))?;
    if d.interleave {
        ep.enable_tx_timestamps().map_err(io_err(what))?;
    }
    ep.socket()
        .connect(&dest.into())
        .map_err(io_err(format!("destination[{i}]: connect to {dest}")))?;
    let poll = i8::try_from(d.poll.log2()).unwrap_or(6);
    let mut broadcaster = Broadcaster::new(
        BroadcastConfig {
            poll: Log2Seconds(poll),
            key: d.key,
            next_key: d.next_key.zip(d.next_key_from).map(|(key, from)| NextKey {
                key,
                from: mcast_proto::NtpTimestamp::from_system_time(from),
            }),
            interleave: d.interleave,
            send_when_unsynchronized: config.time_source.unsynchronized
                == Unsynchronized::SendAlarm,
            precision,
        },
        start,
    );
    if let Some(key) = config
        .signing_key(i)
        .map_err(|e| DaemonError::Config(e.headline()))?
    {
        tracing::info!(
            destination = %dest,
            fingerprint = %key.public().fingerprint(),
            "signing broadcasts with Ed25519"
        );
        broadcaster = broadcaster.with_signer(Arc::new(key), dest);
    }
    Ok(Sender {
        index: i,
        local,
        ep: Arc::new(ep),
        dest,
        broadcaster,
        status: DestinationStatus {
            address: d.address,
            interface: d.interface.clone(),
            source: src,
            poll,
            key: d.key.map(|k| k.get()),
            sent: 0,
            skipped: 0,
            last_problem: None,
        },
    })
}

/// Opens one responder socket on `addr` for the current runtime:
/// `SO_REUSEPORT`, so each receive thread has its own and the kernel
/// spreads clients among them (a client's requests, same address and
/// port, always reach the same one).
pub(super) fn open_responder_socket(addr: SocketAddr) -> std::io::Result<UdpEndpoint> {
    let opts = EndpointOptions::new()
        .reuse_addr(true)
        .reuse_port(true)
        .v6_only(true);
    let ep = UdpEndpoint::bind(addr, &opts)?;
    // Every request's destination address (`IP_PKTINFO`): replies on a
    // wildcard socket leave from it, and a request to a multicast or
    // broadcast address is dropped (issue 13). A socket bound to a unicast
    // address should only ever see that address; it is checked all the
    // same, the cost is one control message per datagram.
    ep.enable_rx_metadata()?;
    ep.set_tos(TOS_EF)?;
    Ok(ep)
}
