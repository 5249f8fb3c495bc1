//! Talking to a running server over its control socket.

use mcast_core::server::status::Status;

/// Asks a running server for its status over the control socket.
pub fn query_status(socket: &std::path::Path) -> std::io::Result<Status> {
    let text = mcast_sys::control_request(socket, "status")?;
    serde_json::from_str(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
