//! mcast-client library (skeleton).
