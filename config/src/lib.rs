//! mcast-ntp configuration: TOML schemas, defaults and validation for
//! `mcast-server` ([`ServerConfig`]) and `mcast-client` ([`ClientConfig`]).
//!
//! Each configuration is checked in three steps, each an entry point:
//! - `parse(text, path)`: TOML syntax, the schema (unknown fields are
//!   refused by name) and self-consistency. No file system access, so
//!   fuzzers and tests can call it freely.
//! - `validate_with_keys(&KeyStore)`: every key id the configuration
//!   references exists (and, for a client, may be used by that server's
//!   address per the keys file's fourth field).
//! - `load(path)`: reads the file, `parse`, loads the keys file it names and
//!   `validate_with_keys`.
//!
//! Every error is a [`ConfigError`] naming the file, the line, the field and
//! the value; a program reporting one exits with [`ConfigError::exit_code`].
//!
//! Conventions of the files:
//! - Durations are numbers (integer or float) whose unit is the suffix of the
//!   field name: `spacing-s = 2`, `max-round-trip-ms = 50`. In the structs
//!   they are [`std::time::Duration`].
//! - Poll intervals are log2 exponents of seconds ([`Poll`]).
//! - Relative paths in a file (`keys`, `control-socket`) are resolved against
//!   the directory of that configuration file, not the working directory;
//!   the parsed structs hold the resolved paths.
//! - Authentication is never off by default: a destination or server without
//!   `key` is refused unless it says `authentication = false`.
#![forbid(unsafe_code)]

mod client;
mod common;
mod error;
pub mod import;
mod locate;
mod server;
mod units;

pub use client::{
    Calibration, ClientConfig, Clock, ClockBound, ClockMode, DEFAULT_CLIENT_CONTROL_SOCKET,
    DEFAULT_CLOCK_BOUND_PATH, Listen, Selection, Server, operations_socket_for,
};
pub use common::{DEFAULT_GROUP_V4, DEFAULT_KEYS, DEFAULT_PORT, EXAMPLES_DIR, Host, LogLevel};
pub use error::{ConfigError, ConfigErrorKind, Excerpt};
pub use server::{
    DEFAULT_SERVER_CONTROL_SOCKET, Destination, RateLimit, Responder, ServerConfig, TimeSource,
    TimeSourceKind, Unsynchronized,
};
pub use units::{Poll, RefId};
