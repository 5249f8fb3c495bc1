//! The persistent lab behind `scripts/lab` (binary `mcast-lab`): a LAN of
//! network namespaces that outlives the command that built it, running our
//! servers and clients and reference ntpd 4.2.8p15 ones, with a live table
//! of every association's mode and unicast traffic. It exists to reproduce
//! the multicast/unicast failures of older daemons on one machine.
//!
//! | what        | value                                                    |
//! |-------------|----------------------------------------------------------|
//! | namespaces  | `mlab-<name>-sw` (bridge `br0`), `mlab-<name>-h<i>`     |
//! | IPv4        | `198.18.0.<i>/24` on `eth0`, route `224.0.0.0/4 dev eth0` |
//! | group       | `224.0.1.1`, port 123                                    |
//! | state       | `/run/mcast-lab/<name>/` (`state.json`, configs, logs, keys, pcap) |
//!
//! Hosts are numbered servers first (ours, then ntpd), then clients (ours,
//! then ntpd). Each lab is its own bridge, so labs of different names never
//! see each other even though their addresses repeat; the test harness
//! (`netns.rs`, prefix `mn`, subnets 198.18.1.0 and up) never touches
//! names starting with `mlab-`, and this module touches no other names.
//!
//! Safety (DESIGN.md): every process runs through `ip netns exec NS setpriv
//! --bounding-set=-sys_time --inh-caps=-sys_time`, is checked in
//! `/proc/PID/status` once it runs its program and killed at once if it
//! still holds `CAP_SYS_TIME`; our clients run in monitor mode and ntpd
//! with `disable ntp` and `disable kernel`. Each process is recorded in the
//! state file with its PID *and* its start time before anything else
//! happens, and `down` signals a PID only while its start time still
//! matches, so a PID reused by another program is never touched.
//!
//! The daemons are detached (own process group, no parent-death signal):
//! they run until `down`. The state file is written before each step of
//! `up`, so `down` also cleans up after an `up` that failed half way.
//!
//! One file per verb and per piece they share: `options` (what `up` is
//! asked for), `state` (`state.json`, names, our binaries), `process`
//! (detached processes without `CAP_SYS_TIME`, `ip`, ntpq), `up`,
//! `config` (the daemons' configurations `up` writes), `status`, `table`
//! (what `status` prints) and `down`.

use std::net::Ipv4Addr;
use std::time::Duration;

mod config;
mod down;
mod options;
mod process;
mod state;
mod status;
mod table;
mod up;

pub use down::{down, list};
pub use options::{KeyType, UpOptions};
pub use process::is_running;
pub use state::{Bins, HostRecord, Kind, LabState, ProcRecord, check_name, ns_prefix, state_dir};
pub use status::{Report, Row, status};
pub use table::render;
pub use up::up;

/// Every namespace a lab makes starts with this (never `mn`, the test
/// harness's prefix).
pub const NS_PREFIX: &str = "mlab-";
/// Where labs keep their state, one directory per lab name.
pub const STATE_ROOT: &str = "/run/mcast-lab";
/// The multicast group.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 1);
/// The lab's /24: slot 0 of 198.18.0.0/15, the one the test harness leaves
/// to hand-built labs.
const SUBNET: [u8; 3] = [198, 18, 0];
const NTP_PORT: u16 = 123;
/// Hosts per lab (the /24 has 254 addresses).
const MAX_HOSTS: usize = 250;
/// How long a started program may take to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `down` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The environment variable naming the directory of prebuilt
/// `mcast-server` and `mcast-client` (set by `scripts/lab`).
pub const BIN_DIR_ENV: &str = "MCAST_LAB_BIN_DIR";
