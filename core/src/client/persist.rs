//! What the client keeps across a restart, sans-I/O: the shell writes the
//! snapshot ([`ClientCore::persisted`]) to its state directory and gives
//! it back at start ([`ClientCore::restore`]).
//!
//! Per server, the transmit timestamp of the last packet accepted from it:
//! a restarted client is never fed older packets than the last ones it
//! accepted (a recording made before its restart is a replay). A server
//! whose clock went back while the client was down is followed as a
//! backward step is: consistent older packets, then an authenticated
//! unicast exchange that agrees with them. One store: the time-daemon work
//! adds the frequency and the calibrations here.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::client::ClientCore;

/// The format version written; a file of another version is ignored.
pub const VERSION: u32 = 1;

/// The persisted state of a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedState {
    /// [`VERSION`].
    pub version: u32,
    /// One entry per server with an accepted packet.
    pub servers: Vec<PersistedServer>,
}

/// One server's persisted state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedServer {
    /// Its address.
    pub address: IpAddr,
    /// The key it was bound to (none: authentication off).
    pub key: Option<u16>,
    /// The last accepted transmit timestamp, as the 64-bit NTP format.
    pub last_transmit: u64,
}

/// What a restore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Restored {
    /// Servers whose last transmit timestamp was restored.
    pub servers: usize,
    /// Entries ignored: another address or key than configured now.
    pub ignored: usize,
}

/// Why a state file was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreError {
    /// Written by another format version.
    Version(u32),
}

impl ClientCore {
    /// The state to persist now.
    pub fn persisted(&self) -> PersistedState {
        PersistedState {
            version: VERSION,
            servers: self
                .associations()
                .filter_map(|a| {
                    Some(PersistedServer {
                        address: a.spec().address,
                        key: a.spec().key.map(mcast_keys::KeyId::get),
                        last_transmit: a.last_transmit()?.to_bits(),
                    })
                })
                .collect(),
        }
    }

    /// Takes back a persisted state at start: each entry whose address and
    /// key match a configured server (a changed key or address measures
    /// afresh) sets its replay floor.
    pub fn restore(&mut self, state: &PersistedState) -> Result<Restored, RestoreError> {
        if state.version != VERSION {
            return Err(RestoreError::Version(state.version));
        }
        let mut done = Restored::default();
        for s in &state.servers {
            if self.restore_last_transmit(s.address, s.key, s.last_transmit) {
                done.servers += 1;
            } else {
                done.ignored += 1;
            }
        }
        Ok(done)
    }
}
