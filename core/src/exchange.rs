//! The mode-3 exchange both sides use: the client's calibration volley and
//! the server's query to its upstream daemon.
//!
//! - The request's transmit field is a random 64-bit **cookie**, never our
//!   clock reading, so an off-path host cannot guess what a reply must echo
//!   and an on-path one learns nothing of our clock from it. T1 is kept
//!   here, beside the cookie.
//! - Each request gets a [`Ticket`]; the shell hands the kernel's transmit
//!   time of that datagram back with it ([`Exchanges::transmitted`]), so
//!   nothing re-parses the bytes it sent.
//! - A reply belongs to a request only when its origin is that request's
//!   cookie ([`Exchanges::find`]).
//! - A Kiss-o'-Death counts only when it echoes the cookie in origin,
//!   receive and transmit (RFC 5905 section 7.4: the server copies the
//!   request's transmit into both) *and* passes the same authentication a
//!   reply must pass ([`kiss`]): an unsigned KoD from a LAN host cannot end a
//!   calibration whose replies are signed.

use std::time::Duration;

use mcast_proto::{Header, KissCode, NtpDuration, NtpTimestamp};

/// Names one sent request, so its kernel transmit time can be given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

impl Ticket {
    /// The ticket's number (for the shell's bookkeeping).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A request that has been sent and not yet answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outstanding {
    /// The transmit field it carried, which a reply must echo as origin.
    pub cookie: NtpTimestamp,
    /// When it left on our clock (T1): the clock reading when it was built,
    /// or the kernel's transmit time once that came back.
    pub t1: NtpTimestamp,
    /// When it was sent, monotonic.
    pub sent: Duration,
    /// Its ticket.
    pub ticket: Ticket,
}

/// The requests in flight of one exchange partner.
#[derive(Debug, Clone, Default)]
pub struct Exchanges {
    outstanding: Vec<Outstanding>,
    next_ticket: u64,
}

/// The largest plausible wait between building a request and the kernel
/// sending it: a later "transmit time" belongs to something else.
const MAX_SEND_LAG: NtpDuration = NtpDuration::from_secs(1);

impl Exchanges {
    /// No request in flight.
    pub fn new() -> Self {
        Exchanges::default()
    }

    /// Records a request sent now: `random` becomes its cookie (zero, which
    /// means "no origin" on the wire, becomes 1), `t1` our clock reading.
    /// Returns the cookie to put in the transmit field and the ticket.
    pub fn send(&mut self, random: u64, t1: NtpTimestamp, now: Duration) -> (NtpTimestamp, Ticket) {
        let cookie = NtpTimestamp::from_bits(random.max(1));
        let ticket = Ticket(self.next_ticket);
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.outstanding.push(Outstanding {
            cookie,
            t1,
            sent: now,
            ticket,
        });
        (cookie, ticket)
    }

    /// The kernel's transmit time `at` of the request with `ticket`: it
    /// replaces the clock reading as T1, so time spent between building and
    /// sending counts neither as path delay nor as bias. Ignored (false)
    /// when no such request is in flight or `at` is not within a second
    /// after the build time.
    pub fn transmitted(&mut self, ticket: Ticket, at: NtpTimestamp) -> bool {
        let Some(o) = self.outstanding.iter_mut().find(|o| o.ticket == ticket) else {
            return false;
        };
        let lag = at - o.t1;
        if lag.is_negative() || lag > MAX_SEND_LAG {
            return false;
        }
        o.t1 = at;
        true
    }

    /// The request a reply with this origin answers.
    pub fn find(&self, origin: NtpTimestamp) -> Option<Outstanding> {
        if origin.is_zero() {
            return None;
        }
        self.outstanding
            .iter()
            .find(|o| o.cookie == origin)
            .copied()
    }

    /// The request with this cookie is answered (or given up): forget it.
    pub fn complete(&mut self, cookie: NtpTimestamp) {
        self.outstanding.retain(|o| o.cookie != cookie);
    }

    /// Forgets requests sent more than `max_age` before `now`.
    pub fn expire(&mut self, now: Duration, max_age: Duration) {
        self.outstanding
            .retain(|o| now.saturating_sub(o.sent) <= max_age);
    }

    /// Forgets every request.
    pub fn clear(&mut self) {
        self.outstanding.clear();
    }

    /// The oldest request in flight.
    pub fn oldest(&self) -> Option<Outstanding> {
        self.outstanding.first().copied()
    }

    /// True when no request is in flight.
    pub fn is_empty(&self) -> bool {
        self.outstanding.is_empty()
    }
}

/// What a reply with a kiss code means for the request it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kiss {
    /// Not a Kiss-o'-Death: judge it as a reply.
    NotKiss,
    /// A Kiss-o'-Death that counts.
    Counts(KissCode),
    /// It looks like one but does not echo the cookie everywhere or fails
    /// authentication: counted and dropped, it changes nothing.
    Bogus,
}

/// The KoD rule of both sides. `authentic` is the verdict the caller's
/// authentication gave the packet (for a partner without a key: true).
pub fn kiss(h: &Header, cookie: NtpTimestamp, authentic: bool) -> Kiss {
    let Some(code) = h.kiss_code() else {
        return Kiss::NotKiss;
    };
    if h.origin == cookie && h.receive == cookie && h.transmit == cookie && authentic {
        Kiss::Counts(code)
    } else {
        Kiss::Bogus
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcast_proto::{Mode, RefId};

    fn at(s: u64) -> NtpTimestamp {
        NtpTimestamp::from_bits(s << 32)
    }

    #[test]
    fn the_cookie_is_the_random_value_and_never_zero() {
        let mut x = Exchanges::new();
        let (c, _) = x.send(0xdead_beef_0123_4567, at(100), Duration::ZERO);
        assert_eq!(c.to_bits(), 0xdead_beef_0123_4567);
        let (zero, _) = x.send(0, at(100), Duration::ZERO);
        assert_eq!(zero.to_bits(), 1, "a zero origin means none on the wire");
        assert_eq!(x.find(c).map(|o| o.t1), Some(at(100)));
        assert_eq!(x.find(NtpTimestamp::ZERO), None);
    }

    #[test]
    fn the_kernel_transmit_time_comes_back_by_ticket_within_a_second() {
        let mut x = Exchanges::new();
        let (c, t) = x.send(7, at(100), Duration::ZERO);
        assert!(!x.transmitted(t, at(102)), "two seconds late is not ours");
        assert!(!x.transmitted(t, at(99)), "before it was built is not ours");
        let later = at(100) + NtpDuration::from_micros(30);
        assert!(x.transmitted(t, later));
        assert_eq!(x.find(c).map(|o| o.t1), Some(later));
        x.complete(c);
        assert!(
            !x.transmitted(t, later),
            "a completed request has no ticket"
        );
        assert!(x.is_empty());
    }

    #[test]
    fn a_kiss_counts_only_echoing_the_cookie_and_authentic() {
        let cookie = NtpTimestamp::from_bits(0x1234_5678_9abc_def0);
        let mut h = Header::new(Mode::Server);
        h.stratum = 0;
        h.reference_id = RefId::from_code("DENY");
        h.origin = cookie;
        h.receive = cookie;
        h.transmit = cookie;
        assert_eq!(kiss(&h, cookie, true), Kiss::Counts(KissCode::Deny));
        assert_eq!(kiss(&h, cookie, false), Kiss::Bogus, "unsigned");
        h.transmit = NtpTimestamp::ZERO;
        assert_eq!(kiss(&h, cookie, true), Kiss::Bogus, "no full echo");
        h.stratum = 2;
        assert_eq!(kiss(&h, cookie, true), Kiss::NotKiss);
    }
}
