//! What `up` is asked for: counts, poll, key type, calibration, checked
//! before anything is built.

use serde::{Deserialize, Serialize};

use super::MAX_HOSTS;

/// Which keys the servers sign with: one key per server, of this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// MD5 (20-byte secrets), what most ntpd sites use.
    Md5,
    /// SHA1 (20-byte secrets).
    Sha1,
    /// AES-128-CMAC (RFC 8573).
    Cmac,
    /// AES-128-CMAC, MD5 and SHA1 in turn.
    Mixed,
}

impl KeyType {
    /// The keys-file type name and secret length (bytes, written as hex)
    /// for the key of server number `n` (1-based).
    pub(super) fn for_server(self, n: usize) -> (&'static str, usize) {
        let one = match self {
            KeyType::Mixed => match n.saturating_sub(1) % 3 {
                0 => KeyType::Cmac,
                1 => KeyType::Md5,
                _ => KeyType::Sha1,
            },
            other => other,
        };
        match one {
            KeyType::Md5 => ("MD5", 20),
            KeyType::Sha1 => ("SHA1", 20),
            KeyType::Cmac | KeyType::Mixed => ("AES128CMAC", 16),
        }
    }
}

/// What `up` builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpOptions {
    /// Our servers (`mcast-server`).
    pub servers: usize,
    /// Reference ntpd 4.2.8p15 broadcast servers.
    pub ref_servers: usize,
    /// Our clients (`mcast-client`, monitor mode).
    pub clients: usize,
    /// Reference ntpd 4.2.8p15 multicast clients (`disable ntp`).
    pub ref_clients: usize,
    /// Broadcast poll exponent of our servers (0..=17; below 3 only with
    /// `lab-allow-fast-poll`); ntpd servers use at least 3.
    pub poll: u8,
    /// Blackhole routes in every server's namespace to every client, so no
    /// unicast reply (calibration) ever arrives; broadcasts still do.
    pub drop_replies: bool,
    /// The servers' key type.
    pub key_type: KeyType,
    /// Our clients' calibration: requests per volley.
    pub cal_requests: u8,
    /// Our clients' calibration: further volleys after a failed one.
    pub cal_retries: u8,
    /// Our clients' calibration: random wait before the first request, up
    /// to this many seconds.
    pub cal_start_delay_s: u32,
    /// Lines appended to every reference ntpd client's `ntpd.conf`.
    pub ref_client_conf: Vec<String>,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            servers: 1,
            ref_servers: 0,
            clients: 1,
            ref_clients: 1,
            poll: 3,
            drop_replies: false,
            key_type: KeyType::Mixed,
            cal_requests: 6,
            cal_retries: 3,
            cal_start_delay_s: 5,
            ref_client_conf: Vec::new(),
        }
    }
}

impl UpOptions {
    /// Checks counts and ranges; the message says what to change.
    pub fn check(&self) -> Result<(), String> {
        let servers = self.servers + self.ref_servers;
        let hosts = servers + self.clients + self.ref_clients;
        if servers == 0 {
            return Err("a lab needs at least one server (--servers or --ref-servers)".into());
        }
        if hosts > MAX_HOSTS {
            return Err(format!("{hosts} hosts: a lab has at most {MAX_HOSTS}"));
        }
        if servers > usize::from(u16::MAX) {
            return Err("too many servers for distinct key ids".into());
        }
        if self.poll > 17 {
            return Err(format!("--poll {}: must be 0..17", self.poll));
        }
        if !(1..=8).contains(&self.cal_requests) {
            return Err(format!(
                "--cal-requests {}: must be 1..8",
                self.cal_requests
            ));
        }
        if self.cal_retries > 10 {
            return Err(format!("--cal-retries {}: must be 0..10", self.cal_retries));
        }
        if let Some(line) = self.ref_client_conf.iter().find(|l| l.contains('\n')) {
            return Err(format!("--ref-conf {line:?}: one line per option"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_keys_cycle_through_the_types() {
        let t: Vec<&str> = (1..=4).map(|n| KeyType::Mixed.for_server(n).0).collect();
        assert_eq!(t, ["AES128CMAC", "MD5", "SHA1", "AES128CMAC"]);
        assert_eq!(KeyType::Md5.for_server(2), ("MD5", 20));
        assert_eq!(KeyType::Cmac.for_server(1), ("AES128CMAC", 16));
    }

    #[test]
    fn options_are_checked() {
        let ok = UpOptions::default();
        assert!(ok.check().is_ok());
        let none = UpOptions {
            servers: 0,
            ..UpOptions::default()
        };
        assert!(none.check().unwrap_err().contains("at least one server"));
        let big = UpOptions {
            clients: 300,
            ..UpOptions::default()
        };
        assert!(big.check().unwrap_err().contains("at most"));
        let poll = UpOptions {
            poll: 18,
            ..UpOptions::default()
        };
        assert!(poll.check().is_err());
    }
}
