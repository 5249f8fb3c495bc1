//! mcast-client binary.
fn main() {}
