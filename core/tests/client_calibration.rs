//! Calibration through the client core: the kernel transmit time of a
//! request, when the I/O layer reports it, is T1 (not the clock reading
//! taken when the request was built), so time spent between building and
//! sending is neither path delay nor offset.
#![cfg(test)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use mcast_core::client::association::ServerSpec;
use mcast_core::client::calibration::CalibrationConfig;
use mcast_core::client::engine::{Action, ClientCore, CoreConfig, Incoming};
use mcast_core::client::status::CalibrationStatus;
use mcast_keys::{KeyId, KeyStore};
use mcast_proto::{Datagram, Mode, NtpDuration};
use support::packets::{NoClock, epoch, server_header, sign};
use support::vectors;

const SERVER: &str = "198.18.0.1:123";

fn us(n: i64) -> NtpDuration {
    NtpDuration::from_micros(n)
}

/// One server, one request per volley; a broadcast at 0 s that takes
/// 200 us, then one exchange whose request leaves `build_lag` after it was
/// built (and 200 us later reaches the server). Returns the status line.
fn calibrate(build_lag: NtpDuration, report_kernel_tx: bool) -> CalibrationStatus {
    let keys = KeyStore::load(&vectors::keys_file()).expect("lab keys");
    let server: SocketAddr = SERVER.parse().expect("addr");
    let mut core = ClientCore::new(
        CoreConfig {
            calibration: CalibrationConfig {
                start_delay_max: Duration::ZERO,
                requests: 1,
                retries: 0,
                ..CalibrationConfig::default()
            },
            ..CoreConfig::with_servers(vec![ServerSpec::new(server.ip(), KeyId::new(1))])
        },
        keys.clone(),
    );
    let mut b = server_header(Mode::Broadcast);
    b.transmit = epoch();
    let bytes = sign(&keys, Some(1), b);
    core.on_broadcast(
        Incoming {
            bytes: &bytes,
            source: server,
            rx: epoch() + us(200),
            mono: Duration::ZERO,
        },
        0,
        &mut NoClock,
    );
    // The request is built at 1 s and leaves build_lag later.
    let built = epoch() + NtpDuration::from_secs(1);
    let actions = core.on_tick(
        Duration::from_secs(1),
        built,
        &mut rand::random::<u64>,
        &mut NoClock,
    );
    let (request, ticket) = actions
        .iter()
        .find_map(|a| match a {
            Action::Send {
                to, bytes, ticket, ..
            } if *to == server => Some((bytes.clone(), *ticket)),
            _ => None,
        })
        .expect("a calibration request at the first tick");
    let left = built + build_lag;
    if report_kernel_tx {
        core.request_transmitted(ticket, left);
    }
    let cookie = Datagram::parse(&request)
        .expect("our request parses")
        .header
        .transmit;
    assert_ne!(cookie, built, "the request carries a cookie, not our clock");
    let mut r = server_header(Mode::Server);
    r.origin = cookie;
    r.receive = left + us(200);
    r.transmit = r.receive + us(10);
    let reply = sign(&keys, Some(1), r);
    core.on_reply(
        Incoming {
            bytes: &reply,
            source: server,
            rx: r.transmit + us(200),
            mono: Duration::from_secs(1),
        },
        &mut NoClock,
    );
    core.on_tick(
        Duration::from_secs(4),
        built + NtpDuration::from_secs(3),
        &mut rand::random::<u64>,
        &mut NoClock,
    );
    CalibrationStatus::of_association(core.associations().next().expect("association"))
}

/// Calibrated, to `ms` within half a microsecond.
fn near_ms(c: &CalibrationStatus, ms: f64) -> bool {
    c.measured_one_way_delay_ms()
        .is_some_and(|d| (d - ms).abs() < 0.0005)
}

#[test]
fn the_kernel_transmit_time_replaces_the_build_time_as_t1() {
    let lag = us(300);
    let refined = calibrate(lag, true);
    assert!(
        near_ms(&refined, 0.200),
        "with the kernel transmit time the 200 us path is measured: {refined:?}"
    );
    let naive = calibrate(lag, false);
    assert!(
        near_ms(&naive, 0.350),
        "without it, half the 300 us build-to-send lag is taken for path delay: {naive:?}"
    );
}

#[test]
fn an_implausible_kernel_transmit_time_is_ignored() {
    // Two seconds after the build is no transmit time of this request.
    let out = calibrate(NtpDuration::from_secs(2), true);
    assert!(!near_ms(&out, 0.200), "{out:?}");
}
