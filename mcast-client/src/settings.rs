//! Configuration to core configuration: what `client.toml` says, in the
//! types of [`mcast_core::client`].

use mcast_config::{ClientConfig, ClockMode as ConfigClockMode};
use mcast_core::client::CoreConfig;
use mcast_core::client::association::ServerSpec;
use mcast_core::client::bound::BoundConfig;
use mcast_core::client::calibration::CalibrationConfig;
use mcast_core::client::discipline::{ClockMode, DisciplineConfig, Ppm};
use mcast_core::client::engine::KeyBinding;
use mcast_core::client::select::SelectParams;
use std::time::Duration;

use mcast_proto::{Log2Seconds, NtpDuration, SampleLimits};

/// The clock mode of `[clock] mode`.
pub fn clock_mode(m: ConfigClockMode) -> ClockMode {
    match m {
        ConfigClockMode::Monitor => ClockMode::Monitor,
        ConfigClockMode::Slew => ClockMode::Slew,
        ConfigClockMode::Step => ClockMode::Step,
    }
}

/// The discipline's settings from `[clock]`.
pub fn discipline_config(c: &mcast_config::Clock) -> DisciplineConfig {
    DisciplineConfig {
        mode: clock_mode(c.mode),
        step_threshold: NtpDuration::from_std(c.step_threshold),
        stepout: c.stepout,
        panic_threshold: NtpDuration::from_std(c.panic_threshold),
        slew_only: c.slew_only,
        max_slew_ppm: Ppm(500.0),
        unsync_after: c.unsync_after,
        first_step_max: NtpDuration::from_std(c.first_step_max),
    }
}

/// Each configured server's keys, for a reload that rebinds them
/// ([`mcast_core::client::ClientCore::rebind_keys`]).
pub fn key_bindings(config: &ClientConfig) -> Vec<KeyBinding> {
    config
        .servers
        .iter()
        .map(|s| KeyBinding {
            address: s.address,
            key: s.signing_key(),
            more_keys: s.key_ids().into_iter().skip(1).collect(),
        })
        .collect()
}

/// The core's settings from the configuration.
pub fn core_config(config: &ClientConfig, precision: Log2Seconds) -> CoreConfig {
    let c = &config.calibration;
    CoreConfig {
        servers: config
            .servers
            .iter()
            .map(|s| ServerSpec {
                address: s.address,
                key: s.signing_key(),
                more_keys: s.key_ids().into_iter().skip(1).collect(),
                name: s.name.clone().unwrap_or_else(|| s.address.to_string()),
                interleave: s.interleave,
                public_key: s.public_key.clone(),
            })
            .collect(),
        groups: config
            .listen
            .iter()
            .map(|l| std::net::SocketAddr::new(l.group, config.port))
            .collect(),
        discover: config.discover,
        discover_max: config.discover_max,
        discover_keys: config.discover_keys.clone(),
        calibration: CalibrationConfig {
            start_delay_max: c.start_delay_max,
            requests: c.requests,
            spacing: c.spacing,
            max_round_trip: c.max_round_trip,
            retries: c.retries,
            fallback_delay: c.fallback_delay,
            spot_check: (c.spot_check_hours > 0)
                .then(|| Duration::from_secs(u64::from(c.spot_check_hours) * 3600)),
            reuse_max_age: c.reuse_max_age,
        },
        select: SelectParams {
            min_agreeing: config.selection.min_agreeing,
            max_root_distance: NtpDuration::from_std(config.selection.max_root_distance),
            ..SelectParams::default()
        },
        silent_intervals: config.selection.silent_intervals,
        limits: SampleLimits::default(),
        server_port: config.port,
        precision,
        discipline: discipline_config(&config.clock),
        group_silent_intervals: config.group_silent_intervals,
        bound: BoundConfig {
            max_drift_ppb: config.clock_bound.max_drift_ppm.saturating_mul(1000),
            validity: Duration::from_secs(u64::from(config.clock_bound.void_after_s)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The simulator and the core's own tests run on the core's defaults:
    /// they must be what a user who sets nothing gets.
    #[test]
    fn a_configuration_that_sets_nothing_gives_the_cores_defaults() {
        let text = "keys = \"k.keys\"\n\n[[listen]]\ninterface = \"eth0\"\n\n\
                    [[server]]\naddress = \"198.18.0.1\"\nkey = 1\n";
        let config = ClientConfig::parse(text, Path::new("client.toml")).expect("parses");
        let got = core_config(&config, Log2Seconds(-20));
        let want = CoreConfig::with_servers(vec![ServerSpec {
            address: "198.18.0.1".parse().expect("address"),
            key: mcast_keys::KeyId::new(1),
            more_keys: Vec::new(),
            name: "198.18.0.1".into(),
            interleave: false,
            public_key: None,
        }]);
        // The one thing a configuration always says: where it listens.
        let want = CoreConfig {
            groups: vec!["224.0.1.1:123".parse().expect("group")],
            ..want
        };
        assert_eq!(got, want);
    }
}
