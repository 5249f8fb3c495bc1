//! The reference vectors in `tests/data/vectors` (real packets and keys
//! captured from ntpd 4.2.8p15 and chronyd, with expected verdicts).

use std::path::PathBuf;

use serde::Deserialize;

/// The folder holding `manifest.json`, `ntp.keys` and the pcaps. (The
/// core crate's tests include this file too, hence the path from the
/// workspace root.)
pub fn dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/vectors"
    ))
}

/// The lab keys file (ntpd syntax, public test keys).
pub fn keys_file() -> PathBuf {
    dir().join("ntp.keys")
}

/// `manifest.json`.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    /// Format tag, `ntp-multicast-lab-vectors/1`.
    pub format: String,
    /// The keys of `ntp.keys`, with their decoded bytes.
    pub keys: Vec<KeyInfo>,
    /// Every vector.
    pub vectors: Vec<Vector>,
}

/// A key as the manifest describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyInfo {
    /// Key id.
    pub id: u32,
    /// Type name as in the keys file.
    #[serde(rename = "type")]
    pub key_type: String,
    /// The secret's bytes in hex.
    pub key_hex: String,
    /// Digest length in bytes.
    pub mac_len: usize,
}

/// The key a vector names (possibly one the keys file does not have).
#[derive(Debug, Clone, Deserialize)]
pub struct VectorKey {
    /// Key id.
    pub id: u32,
    /// Type name, absent for a key that is not in the keys file.
    #[serde(rename = "type")]
    pub key_type: Option<String>,
}

/// One packet with what it must decode to.
#[derive(Debug, Deserialize)]
pub struct Vector {
    /// Name, e.g. `mcast5-md5-ascii-k1`.
    pub name: String,
    /// captured, derived or crafted.
    pub source: String,
    /// Sender `address:port`.
    pub src: String,
    /// Destination `address:port`.
    pub dst: String,
    /// The UDP payload in hex.
    pub udp_payload_hex: String,
    /// The key the MAC was made with, if any.
    pub key: Option<VectorKey>,
    /// valid, invalid-mac, unknown-key, no-mac or crypto-nak.
    pub expected_verdict: String,
    /// Decoded fields.
    pub expected: Expected,
}

/// Decoded fields of a vector.
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct Expected {
    pub li: u8,
    pub vn: u8,
    pub mode: u8,
    pub stratum: u8,
    pub poll: i8,
    pub precision: i8,
    pub root_delay_raw: String,
    pub root_dispersion_raw: String,
    pub root_delay_s: f64,
    pub root_dispersion_s: f64,
    pub refid_hex: String,
    pub refid_ascii: Option<String>,
    pub refid_ipv4: Option<String>,
    pub reference_ts: String,
    pub origin_ts: String,
    pub receive_ts: String,
    pub transmit_ts: String,
    pub transmit_unix: Option<f64>,
    pub reference_unix: Option<f64>,
    pub keyid: Option<u32>,
    pub mac: Option<String>,
    pub kiss_code: Option<String>,
    pub crypto_nak: Option<bool>,
}

impl Vector {
    /// The payload bytes.
    pub fn payload(&self) -> Vec<u8> {
        hex::decode(&self.udp_payload_hex).unwrap_or_default()
    }
}

/// Reads `manifest.json`.
pub fn manifest() -> Result<Manifest, String> {
    let path = dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}
