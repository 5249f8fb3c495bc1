//! The control socket's commands (`status`, `recalibrate`) and the metrics
//! page, answered from the core's status snapshot.

use std::net::IpAddr;
use std::path::Path;

use mcast_core::client::status::status_of;

use std::sync::Mutex;
use std::time::Duration;

use mcast_core::client::ClientCore;
use mcast_core::client::discipline::Clock;

/// The metrics page: the same snapshot `status` answers with.
pub fn metrics_text(core: &Mutex<ClientCore>, mono: Duration) -> String {
    match core.lock() {
        Ok(core) => crate::metrics::format_metrics(&status_of(&core, mono, mono)),
        Err(_) => String::new(),
    }
}

/// The answer (JSON) to one control-socket command: what anyone who may
/// connect may ask (`status`); operations are pointed at their socket.
pub fn control_command(
    core: &Mutex<ClientCore>,
    mono: Duration,
    command: &str,
    operations_socket: &str,
) -> String {
    match command.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["status"] => match core.lock() {
            Ok(core) => {
                serde_json::to_string(&status_of(&core, mono, mono)).unwrap_or_default()
            }
            Err(_) => "{\"error\":\"internal\"}".into(),
        },
        ["recalibrate" | "step-now", ..] => serde_json::json!({
            "error": format!("operations are served on {operations_socket}, not on the status socket")
        })
        .to_string(),
        _ => serde_json::json!({ "error": format!("unknown command {command:?}") }).to_string(),
    }
}

/// The answer (JSON) to one operations-socket command, from a peer whose
/// credentials the kernel gave: only root and `operator` (the user who
/// started the client) may change what it does.
pub fn operation(
    core: &Mutex<ClientCore>,
    mono: Duration,
    command: &str,
    peer: Option<mcast_sys::Peer>,
    operator: u32,
    clock: &mut dyn Clock,
) -> String {
    match peer {
        Some(p) if p.uid == 0 || p.uid == operator => {}
        Some(p) => {
            tracing::warn!(uid = p.uid, pid = ?p.pid, command, "operation refused");
            return serde_json::json!({
                "error": format!("uid {} may not operate this client (root or uid {operator} may)", p.uid)
            })
            .to_string();
        }
        None => return "{\"error\":\"no peer credentials\"}".into(),
    }
    match command.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["recalibrate", server] => match server.parse::<IpAddr>() {
            Ok(addr) => match core.lock().map(|mut c| c.recalibrate(addr, mono)) {
                Ok(Ok(())) => "{\"ok\":true}".to_string(),
                Ok(Err(e)) => serde_json::json!({ "error": e }).to_string(),
                Err(_) => "{\"error\":\"internal\"}".into(),
            },
            Err(_) => {
                serde_json::json!({ "error": format!("{server} is not an IP address") }).to_string()
            }
        },
        ["step-now"] => match core.lock().map(|mut c| c.step_now(mono, clock)) {
            Ok(Ok(offset)) => {
                tracing::warn!(offset = %offset, uid = ?peer.map(|p| p.uid), "step-now: stepped the clock to the selected time");
                serde_json::json!({ "ok": true, "stepped_s": offset.as_seconds_f64() }).to_string()
            }
            Ok(Err(e)) => {
                serde_json::json!({ "error": crate::text::step_now_refusal(&e) }).to_string()
            }
            Err(_) => "{\"error\":\"internal\"}".into(),
        },
        _ => serde_json::json!({ "error": format!("unknown command {command:?}") }).to_string(),
    }
}

/// Sends one command to a running client and returns its JSON answer.
pub fn control_request(socket: &Path, command: &str) -> std::io::Result<serde_json::Value> {
    let text = mcast_sys::control_request(socket, command)?;
    serde_json::from_str(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
