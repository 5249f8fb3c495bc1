//! NTP wire format (skeleton).
