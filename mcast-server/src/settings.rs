//! Configuration to core configuration: what `server.toml` says, in the
//! types of [`mcast_core::server`].

use mcast_config::{RefId as ConfigRefId, ServerConfig, TimeSource};
use mcast_core::server::ratelimit::RateLimitConfig;
use mcast_core::server::timesource::Advertised;
use mcast_proto::RefId;

/// What `[time-source]` sets for the advertised header.
pub fn advertised(source: &TimeSource) -> Advertised {
    Advertised {
        stratum: source.stratum,
        refid: source.refid.map(|r| match r {
            ConfigRefId::Code(b) => RefId(b),
            ConfigRefId::Address(a) => RefId::from_ipv4(a),
        }),
    }
}

/// The rate limiter's settings from `[rate-limit]`.
pub fn rate_limit(config: &ServerConfig) -> RateLimitConfig {
    let rate = &config.rate_limit;
    RateLimitConfig {
        min_interval: rate.min_interval,
        average_log2: rate.average_interval_log2,
        capacity: rate.mru_size,
        kod: rate.kod,
        sign_rate: config.responder.sign_rate,
        sign_burst: config.responder.sign_burst,
        ..RateLimitConfig::default()
    }
}
