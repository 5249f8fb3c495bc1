//! mcast-server library (skeleton).
