//! mcast-ntp test support (skeleton).
