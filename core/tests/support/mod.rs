//! Support for the core crate's own integration tests (the tests that drive
//! one core directly, with no daemon, socket or simulator): packets and
//! the reference vectors, whose files live in `tests/data/vectors`.
#![allow(dead_code, reason = "each test binary uses a part of the support")]

pub mod packets;
#[path = "../../../tests/src/vectors.rs"]
pub mod vectors;
