//! mcast-ntp configuration (skeleton).
