//! Dropping root after the sockets are bound (`user = "..."` in the config).
//!
//! `setuid` from root without `PR_SET_KEEPCAPS` clears the permitted and
//! effective capability sets of every thread (glibc applies it to all of
//! them), so nothing is kept, not even `CAP_NET_BIND_SERVICE`: every socket,
//! port 123 and the control socket included, is open before the switch.
//! The lab test `started_as_root_it_drops_to_nobody_after_binding_and_keeps_working`
//! checks each thread's ids and capabilities in `/proc`.

use nix::unistd::{Gid, Uid, User, setgid, setgroups, setuid};

/// Switches to `user` (its primary group, no supplementary groups). Does
/// nothing when not running as root and already that user.
pub fn drop_to(user: &str) -> Result<(), String> {
    let u = User::from_name(user)
        .map_err(|e| format!("cannot look up the user: {e}"))?
        .ok_or_else(|| "no such user".to_string())?;
    if Uid::effective() == u.uid {
        return Ok(());
    }
    if !Uid::effective().is_root() {
        return Err(format!("cannot switch to {user}: not running as root"));
    }
    setgroups(&[u.gid]).map_err(|e| format!("setgroups: {e}"))?;
    setgid(u.gid).map_err(|e| format!("setgid: {e}"))?;
    setuid(u.uid).map_err(|e| format!("setuid: {e}"))?;
    if Uid::effective().is_root() || Gid::effective() != u.gid {
        return Err("still privileged after switching".into());
    }
    tracing::info!(user, uid = u.uid.as_raw(), "dropped privileges");
    Ok(())
}
