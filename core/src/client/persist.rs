//! What the client keeps across a restart, sans-I/O: the shell writes the
//! snapshot ([`ClientCore::persisted`]) to its state directory and gives
//! it back at start ([`ClientCore::restore`]).
//!
//! Per server, the transmit timestamp of the last packet accepted from it:
//! a restarted client is never fed older packets than the last ones it
//! accepted (a recording made before its restart is a replay). A server
//! whose clock went back while the client was down is followed as a
//! backward step is: consistent older packets, then an authenticated
//! unicast exchange that agrees with them.
//!
//! The clock's frequency correction, like ntpd's driftfile: taken at most
//! hourly while the loop is in SYNC, and at exit ([`ClientCore::persisted_at_exit`]);
//! at start the discipline begins from it and skips the frequency
//! measurement (FREQ). Not in monitor mode, which has no frequency.
//!
//! Per server also its calibration (the one-way delay, how many exchanges
//! it rests on, and when it was measured on our clock): one younger than
//! `reuse-max-age-s` (default a day) is taken back, and the server is
//! tracked from its first broadcast without a volley. An older one, one
//! from the future (our clock went back), or one for another address or
//! key is measured again; so is any after `mcast-client recalibrate`.
//! Only a measured delay persists, never a fallback.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use mcast_proto::{NtpDuration, NtpTimestamp};

use crate::client::ClientCore;
use crate::client::calibration::{Calibration, Phase};

/// The format version written; a file of another version is ignored.
pub const VERSION: u32 = 1;

/// The persisted state of a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedState {
    /// [`VERSION`].
    pub version: u32,
    /// One entry per server with an accepted packet.
    pub servers: Vec<PersistedServer>,
    /// The frequency correction, ppm (positive: the clock is made faster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_ppm: Option<f64>,
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
    /// Its calibration, when one was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<PersistedCalibration>,
}

/// A measured calibration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedCalibration {
    /// The one-way delay, nanoseconds.
    pub one_way_ns: i64,
    /// Valid exchanges it rests on.
    pub exchanges: usize,
    /// When it was measured, our clock, as the 64-bit NTP format.
    pub measured_at: u64,
}

/// What a restore did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Restored {
    /// Servers whose last transmit timestamp was restored.
    pub servers: usize,
    /// Servers whose calibration was reused.
    pub calibrations: usize,
    /// Calibrations measured again: older than the reuse age, or from the
    /// future.
    pub calibrations_expired: usize,
    /// Entries ignored: another address or key than configured now.
    pub ignored: usize,
    /// The frequency correction the discipline starts from, if one was
    /// persisted and taken.
    pub frequency_ppm: Option<f64>,
}

/// Why a state file was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreError {
    /// Written by another format version.
    Version(u32),
}

impl ClientCore {
    /// The state to persist now (the frequency as last taken, at most
    /// hourly).
    pub fn persisted(&self) -> PersistedState {
        self.persisted_state(false)
    }

    /// The state to persist at exit (the loop's current frequency when it
    /// is in SYNC).
    pub fn persisted_at_exit(&self) -> PersistedState {
        self.persisted_state(true)
    }

    fn persisted_state(&self, at_exit: bool) -> PersistedState {
        PersistedState {
            frequency_ppm: self.frequency_to_persist(at_exit).map(|p| p.0),
            version: VERSION,
            servers: self
                .associations()
                .filter_map(|a| {
                    let calibration =
                        match (a.calibration().map(Calibration::phase), a.calibrated_at()) {
                            (Some(Phase::Calibrated { one_way, exchanges }), Some(at)) => {
                                Some(PersistedCalibration {
                                    one_way_ns: one_way.as_nanos(),
                                    exchanges: *exchanges,
                                    measured_at: at.to_bits(),
                                })
                            }
                            _ => None,
                        };
                    Some(PersistedServer {
                        address: a.spec().address,
                        key: a.spec().key.map(mcast_keys::KeyId::get),
                        last_transmit: a.last_transmit()?.to_bits(),
                        calibration,
                    })
                })
                .collect(),
        }
    }

    /// Takes back a persisted state at start, our clock reading `now`: each
    /// entry whose address and key match a configured server (a changed key
    /// or address measures afresh) sets its replay floor, and its
    /// calibration when younger than the reuse age.
    pub fn restore(
        &mut self,
        state: &PersistedState,
        now: NtpTimestamp,
    ) -> Result<Restored, RestoreError> {
        if state.version != VERSION {
            return Err(RestoreError::Version(state.version));
        }
        let mut done = Restored::default();
        if let Some(f) = state.frequency_ppm
            && self.restore_frequency(crate::client::discipline::Ppm(f))
        {
            done.frequency_ppm = Some(f);
        }
        for s in &state.servers {
            if !self.restore_last_transmit(s.address, s.key, s.last_transmit) {
                done.ignored += 1;
                continue;
            }
            done.servers += 1;
            let Some(c) = &s.calibration else {
                continue;
            };
            let max_age = NtpDuration::from_std(self.calibration_config().reuse_max_age);
            let age = now - NtpTimestamp::from_bits(c.measured_at);
            if age.is_negative() || age >= max_age {
                done.calibrations_expired += 1;
                continue;
            }
            if self.restore_calibration(
                s.address,
                s.key,
                NtpDuration::from_nanos(c.one_way_ns),
                c.exchanges,
                NtpTimestamp::from_bits(c.measured_at),
            ) {
                done.calibrations += 1;
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::CoreConfig;
    use crate::client::discipline::{ClockMode, DisciplineConfig};

    fn core(mode: ClockMode) -> ClientCore {
        ClientCore::new(
            CoreConfig {
                discipline: DisciplineConfig {
                    mode,
                    ..DisciplineConfig::default()
                },
                ..CoreConfig::with_servers(Vec::new())
            },
            mcast_keys::KeyStore::from_keys(std::path::Path::new("none"), []).expect("store"),
        )
    }

    #[test]
    fn the_frequency_is_restored_outside_monitor_mode_and_kept_until_replaced() {
        let state = PersistedState {
            version: VERSION,
            servers: Vec::new(),
            frequency_ppm: Some(-31.5),
        };
        let mut step = core(ClockMode::Step);
        assert_eq!(step.persisted().frequency_ppm, None, "nothing measured yet");
        let r = step.restore(&state, NtpTimestamp::ZERO).expect("restored");
        assert_eq!(r.frequency_ppm, Some(-31.5));
        // Written back as it was until the loop has one of its own.
        assert_eq!(step.persisted().frequency_ppm, Some(-31.5));
        assert_eq!(step.persisted_at_exit().frequency_ppm, Some(-31.5));

        let mut monitor = core(ClockMode::Monitor);
        let r = monitor
            .restore(&state, NtpTimestamp::ZERO)
            .expect("restored");
        assert_eq!(r.frequency_ppm, None, "monitor mode has no frequency");
        assert_eq!(monitor.persisted().frequency_ppm, None);
    }
}
