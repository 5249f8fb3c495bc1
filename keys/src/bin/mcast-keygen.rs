//! mcast-keygen.
fn main() {}
