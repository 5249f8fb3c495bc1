//! mcast-server binary.
fn main() {}
