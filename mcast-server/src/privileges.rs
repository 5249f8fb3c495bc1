//! Dropping root after the sockets are bound (`user = "..."` in the config).

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
