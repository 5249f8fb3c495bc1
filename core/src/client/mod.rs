//! The client's cores: from a verified broadcast to a clock decision.
//!
//! - [`association`]: one per server; every trust check a packet passes
//!   (key, replay, sanity) and the per-server counters.
//! - [`calibration`]: the one-time mode-3 volley that measures the path delay.
//! - [`filter`]: the clock filter of each server (RFC 5905 section 10).
//! - [`select`]: intersection, clustering and combining (RFC 5905 section 11).
//! - [`discipline`]: monitor, slew or step, and the frequency estimate.
//! - [`kernel`]: the kernel's clock state (synchronized, error bounds, leap).
//! - [`engine`]: [`ClientCore`], the one entry point joining them.
//! - [`status`]: the plain status struct the shell serializes.
//! - [`persist`]: what survives a restart (the replay floor per server).
//! - [`silence`]: has the multicast group stopped delivering (issue 17).

pub mod association;
pub mod bound;
pub mod calibration;
pub mod discipline;
pub mod engine;
pub mod filter;
pub mod kernel;
pub mod persist;
pub mod select;
pub mod silence;
pub mod status;

pub use engine::{Action, ClientCore, CoreConfig, Incoming};
