//! The server's cores.
//!
//! - [`broadcaster`]: when to send and what each mode-5 packet carries.
//! - [`responder`]: the answer to a calibration request (mode 4, KoD or drop).
//! - [`ratelimit`]: the per-address MRU table the responder consults.
//! - [`upstream`]: the query to a local upstream daemon and its verdict.
//! - [`sync`]: the sync state and system header the server advertises.
//! - [`timesource`]: the `kernel` and `local` time sources.
//! - [`status`]: the plain status structs the shell serializes.

pub mod broadcaster;
pub mod ratelimit;
pub mod responder;
pub mod status;
pub mod sync;
pub mod timesource;
pub mod upstream;
