//! Batches of datagrams for one `recvmmsg(2)` or `sendmmsg(2)` each, with
//! buffers allocated once and reused: a busy responder receives up to
//! [`MAX_BATCH`] requests per system call and answers them with one more,
//! each reply from the address its request was sent to.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::SockAddr;

use crate::cmsg;
use crate::ffi::{self, CmsgSpace, RecvSlot, SendSlot};
use crate::msg::RecvMeta;

/// Most datagrams in one batch.
pub const MAX_BATCH: usize = ffi::MAX_BATCH;

/// Receive buffers for up to `capacity` datagrams, filled by
/// [`crate::UdpEndpoint::recv_batch`].
pub struct RecvBatch {
    slots: Vec<RecvSlot>,
    /// What the kernel said about each datagram, and its slot.
    metas: Vec<(RecvMeta, usize)>,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.slots.len())
            .field("received", &self.metas.len())
            .finish()
    }
}

impl RecvBatch {
    /// Room for `capacity` datagrams (1..=[`MAX_BATCH`]) of up to
    /// `datagram_size` bytes each; longer ones are cut and flagged
    /// [`RecvMeta::truncated`].
    pub fn new(capacity: usize, datagram_size: usize) -> Self {
        let n = capacity.clamp(1, MAX_BATCH);
        RecvBatch {
            slots: (0..n)
                .map(|_| RecvSlot::new(datagram_size.max(1)))
                .collect(),
            metas: Vec::with_capacity(n),
        }
    }

    /// How many datagrams fit.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Datagrams received by the last call.
    pub fn len(&self) -> usize {
        self.metas.len()
    }

    /// Whether the last call received nothing.
    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// The datagrams received by the last call, in arrival order: what the
    /// kernel said about each, and its payload.
    pub fn iter(&self) -> impl Iterator<Item = (&RecvMeta, &[u8])> {
        self.metas.iter().map(|(meta, i)| {
            let bytes = self
                .slots
                .get(*i)
                .and_then(|slot| slot.buf.get(..meta.len))
                .unwrap_or_default();
            (meta, bytes)
        })
    }

    /// One non-blocking `recvmmsg`; `WouldBlock` when nothing is queued.
    pub(crate) fn receive(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> io::Result<usize> {
        self.metas.clear();
        let n = ffi::recv_mmsg(fd, &mut self.slots)?;
        for (i, slot) in self.slots.iter_mut().enumerate().take(n) {
            // A datagram without an IP source cannot be answered (the
            // kernel never gives one on a UDP socket): left out.
            let Some(source) = slot.source() else {
                continue;
            };
            let control = slot.control.0.get(..slot.controllen).unwrap_or_default();
            let meta = cmsg::parse(control).meta(slot.len, slot.flags, source);
            self.metas.push((meta, i));
        }
        Ok(self.metas.len())
    }
}

/// Datagrams queued for one [`crate::UdpEndpoint::send_batch`].
pub struct SendBatch {
    slots: Vec<SendSlot>,
    len: usize,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("capacity", &self.slots.len())
            .field("queued", &self.len)
            .finish()
    }
}

/// What [`crate::UdpEndpoint::send_batch`] did.
#[derive(Debug, Default)]
pub struct SendOutcome {
    /// Datagrams the kernel accepted.
    pub sent: usize,
    /// Datagrams refused (each skipped, the rest still sent).
    pub failed: usize,
    /// The last refusal's error.
    pub last_error: Option<io::Error>,
}

impl SendBatch {
    /// Room for `capacity` datagrams (1..=[`MAX_BATCH`]).
    pub fn new(capacity: usize) -> Self {
        let n = capacity.clamp(1, MAX_BATCH);
        let unspecified = SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0)));
        SendBatch {
            slots: (0..n)
                .map(|_| SendSlot {
                    buf: Vec::with_capacity(128),
                    to: unspecified.clone(),
                    control: CmsgSpace::new(),
                    controllen: 0,
                })
                .collect(),
            len: 0,
        }
    }

    /// How many datagrams fit.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the queued datagrams (their buffers are kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The (emptied) payload buffer of the next datagram, to write into
    /// before [`SendBatch::commit`]; `None` when the batch is full.
    pub fn next_payload(&mut self) -> Option<&mut Vec<u8>> {
        let slot = self.slots.get_mut(self.len)?;
        slot.buf.clear();
        Some(&mut slot.buf)
    }

    /// Queues the payload written into [`SendBatch::next_payload`] for
    /// `dest`, leaving from `source_ip` when given (an address of this
    /// host, chosen with `IP_PKTINFO`/`IPV6_PKTINFO` as in
    /// [`crate::UdpEndpoint::send_from`]); otherwise from the socket's
    /// address as routing chooses.
    ///
    /// # Errors
    /// `InvalidInput` when the batch is full or `source_ip` and `dest` are
    /// of different IP families.
    pub fn commit(&mut self, dest: SocketAddr, source_ip: Option<IpAddr>) -> io::Result<()> {
        let Some(slot) = self.slots.get_mut(self.len) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "send batch is full",
            ));
        };
        if source_ip.is_some_and(|s| s.is_ipv4() != dest.is_ipv4()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source and destination must be the same IP family",
            ));
        }
        slot.to = SockAddr::from(dest);
        slot.controllen = match source_ip {
            Some(ip) => cmsg::encode_pktinfo(&mut slot.control, ip, 0),
            None => 0,
        };
        self.len += 1;
        Ok(())
    }

    /// The queued slots from `first`.
    pub(crate) fn pending(&self, first: usize) -> &[SendSlot] {
        self.slots.get(first..self.len).unwrap_or_default()
    }
}
