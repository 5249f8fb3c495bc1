//! System calls for mcast-ntp (Linux): the one crate of the project allowed
//! `unsafe`, and that only in the private `ffi` module.
//!
//! - [`UdpEndpoint`]: a tokio-registered UDP socket with receive metadata
//!   (destination address, arrival interface, kernel receive timestamp),
//!   per-datagram source address, multicast options and kernel transmit
//!   timestamps; [`RecvBatch`] and [`SendBatch`] for `recvmmsg`/`sendmmsg`
//!   with reused buffers and a source address per datagram.
//! - [`interface_index`], [`interface_by_index`], [`interface_addresses`],
//!   [`interface_broadcast_addresses`]: interfaces by name and index.
//! - [`kernel_time_status`]: the kernel's NTP state, read-only;
//!   [`adjust_clock`]: the client's real clock control (needs
//!   `CAP_SYS_TIME`; never called by tests).
//! - [`RealClock`] and [`measure_precision`]: reading the clocks.
//! - [`bind_control`], [`serve_control`], [`control_request`],
//!   [`wait_for_stop`]: the daemons' control sockets and signals.
//! - [`serve_http`], [`http_response`]: the minimal HTTP endpoint that
//!   serves metrics; [`prometheus`]: the text exposition format both
//!   daemons write there (and their tests read back).
//! - [`Notifier`], [`watchdog_interval`]: systemd's readiness protocol
//!   (`sd_notify`).
//! - [`init_logging`], [`set_log_level`]: journald or plain-text logs at
//!   the configured level, changed on reload.
//! - [`drop_privileges`]: switching from root to the configured user after
//!   binding, keeping only the capabilities a daemon still needs.
//!
//! Everything else goes through `nix` and `socket2`.

mod batch;
mod clock;
mod cmsg;
mod control;
mod endpoint;
mod ffi;
mod http;
mod iface;
mod kernel_time;
mod logging;
mod msg;
mod notify;
mod privileges;
pub mod prometheus;

pub use batch::{MAX_BATCH, RecvBatch, SendBatch, SendOutcome};
pub use clock::{RealClock, measure_precision};
pub use control::{
    Peer, bind_control, bind_private, control_request, real_uid, run_daemon,
    run_daemon_single_threaded, serve_control, serve_control_with_peer, wait_for_stop,
};
pub use endpoint::{DEFAULT_TX_TIMESTAMP_WAIT, EndpointOptions, UdpEndpoint};
pub use http::{HttpLimits, head_end, http_response, serve_http, serve_metrics};
pub use iface::{
    interface_addresses, interface_broadcast_addresses, interface_by_index, interface_exists,
    interface_index,
};
pub use kernel_time::{
    ClockAdjustment, KernelLeap, KernelTimeStatus, adjust_clock, kernel_time_status,
};
pub use logging::{
    LevelChange, LogSink, apply_log_level, init_logging, journal_sink, set_log_level,
};
pub use msg::{RecvMeta, TxTimestamp};
pub use notify::{Notifier, watchdog_interval};
pub use privileges::{
    Capability, PrivilegeError, Privileges, check_every_thread, drop_privileges, has_capability,
    user_exists,
};
