//! The protocol cores of mcast-ntp, sans-I/O.
//!
//! Nothing here opens a socket, reads a clock, draws a random number or
//! logs: time, randomness and received bytes come in as arguments, and
//! typed outcomes (actions, events, rejection reasons, status structs) go
//! out. The daemons (`mcast-client`, `mcast-server`), the simulator and the
//! fuzz targets all drive the same entry points.
//!
//! - [`client`]: one association per server (trust checks), the one-time
//!   calibration of the path delay, the clock filter, selection and the
//!   clock discipline, joined by [`client::ClientCore`].
//! - [`server`]: the broadcaster (mode 5), the responder to calibration
//!   requests (mode 3 to mode 4) with its rate limit, the upstream query and
//!   the sync state the server advertises.
//! - [`exchange`]: the mode-3 request/reply bookkeeping both sides use.
//! - [`labels`]: the identifiers status and metrics use for outcomes of
//!   the lower crates.
#![forbid(unsafe_code)]

pub mod client;
pub mod exchange;
pub mod labels;
pub mod server;
