//! The tasks of the running server: keeping the sync state current, one
//! broadcast loop per destination and the responder's receive loops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mcast_config::ServerConfig;
use mcast_core::server::broadcaster::{Broadcaster, Build, Silence};
use mcast_core::server::responder::{
    Addressed, Answerer, BatchScratch, Context, Destination, Replies, Request,
};
use mcast_core::server::sync::SyncStatus;
use mcast_proto::NtpTimestamp;
use mcast_sys::{RealClock, RecvBatch, RecvMeta, SendBatch, UdpEndpoint};

use super::upstream::{UpstreamLink, current_sync};
use super::{Shared, lock, now_ntp};

/// Keeps `shared.sync` current (every second, and after every upstream
/// event) and logs each change of synchronization, stratum, leap warning
/// or reason. With an upstream source it also runs the queries.
pub(super) async fn sync_loop(
    shared: Arc<Shared>,
    config: ServerConfig,
    upstream: Option<UpstreamLink>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 2048];
    let mut last_logged = None;
    let mut ticks: u32 = 0;
    loop {
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(BROADCAST_REFRESH_TICKS) {
            shared.refresh_broadcast_addresses();
        }
        match &upstream {
            Some(link) => link.step(&mut tick, &mut buf).await,
            None => {
                tick.tick().await;
            }
        }
        let s = current_sync(&config, shared.upstream.as_deref());
        let key = match &s {
            SyncStatus::Synchronized(h) => (true, h.stratum, h.leap.to_bits(), None),
            SyncStatus::Unsynchronized { reason } => (false, 16, 3, Some(reason.clone())),
        };
        if last_logged.as_ref() != Some(&key) {
            match &s {
                SyncStatus::Synchronized(h) => tracing::info!(
                    stratum = h.stratum,
                    refid = %h.reference_id.display(h.stratum),
                    leap = h.leap.to_bits(),
                    "time source synchronized"
                ),
                SyncStatus::Unsynchronized { reason } => {
                    tracing::warn!("not synchronized: {}", crate::text::unsync_words(reason))
                }
            }
            last_logged = Some(key);
        }
        if let Ok(mut slot) = shared.sync.write() {
            *slot = s;
        }
    }
}

pub(super) async fn broadcast_loop(
    shared: Arc<Shared>,
    config: ServerConfig,
    index: usize,
    ep: Arc<UdpEndpoint>,
    dest: SocketAddr,
    mut b: Broadcaster,
) {
    let mut buf = Vec::with_capacity(72);
    loop {
        tokio::time::sleep_until(shared.start + b.due()).await;
        // Fresh state right before the send.
        let sync = current_sync(&config, shared.upstream.as_deref());
        let keys = shared.keys();
        let problem = match b.build(&sync, &keys, now_ntp, &mut buf) {
            Build::Send => match ep.send_to(&buf, dest).await {
                Ok(_) => None,
                Err(e) => Some(Silence::SendFailed {
                    error: e.to_string(),
                }),
            },
            Build::Silent(why) => Some(why),
        };
        let kernel_tx = if b.config().interleave && problem.is_none() {
            ep.take_tx_timestamp()
                .await
                .ok()
                .flatten()
                .map(NtpTimestamp::from_system_time)
        } else {
            None
        };
        b.advance(
            shared.mono(),
            problem.is_none(),
            rand::random::<u16>(),
            kernel_tx,
        );
        if let Some(p) = &problem {
            tracing::warn!(
                destination = %dest,
                "skipped a broadcast: {}",
                crate::text::silence_words(p, Some(keys.path()))
            );
        }
        if let Ok(mut list) = shared.destinations.lock()
            && let Some(d) = list.get_mut(index)
        {
            d.sent = b.sent();
            d.key = b.signing_key().map(|k| k.get());
            d.skipped = b.silent_intervals();
            d.last_problem = problem;
        }
    }
}

/// How often (in seconds, ticks of the sync loop) the interfaces'
/// directed broadcast addresses are read again.
const BROADCAST_REFRESH_TICKS: u32 = 30;

/// Where a request was sent, as the responder core wants it: unknown
/// without packet info (taken as unicast), an interface's directed
/// broadcast, or the address itself (the core recognizes multicast and
/// 255.255.255.255).
fn destination(dest: Option<std::net::IpAddr>, broadcasts: &[std::net::IpAddr]) -> Destination {
    match dest {
        None => Destination::Unknown,
        Some(ip) if broadcasts.contains(&ip) => Destination::InterfaceBroadcast(ip),
        Some(ip) => Destination::Address(ip),
    }
}

/// Datagram buffer per request: larger requests are cut (and then fail to
/// parse or verify).
pub(super) const MAX_REQUEST: usize = 2048;

/// One receive loop: a batch of requests per `recvmmsg`, each with the
/// address it was sent to (`IP_PKTINFO`/`IPV6_RECVPKTINFO`, so that the core
/// drops requests to a group or broadcast address), handed to the
/// responder's one entry point ([`Answerer::handle_batch`]: the shared rate
/// limiter locked once per batch, MAC checks and signing outside that
/// lock), and all replies in one `sendmmsg`, each from the address its
/// request was sent to. Its counters go to `shared.counters[slot]`.
pub(super) async fn responder_loop(shared: Arc<Shared>, ep: Arc<UdpEndpoint>, slot: usize) {
    let mut rx = RecvBatch::new(mcast_sys::MAX_BATCH, MAX_REQUEST);
    let mut tx = SendBatch::new(mcast_sys::MAX_BATCH);
    let mut answerer = Answerer::new(shared.responder, shared.kod_average_log2);
    let mut scratch = BatchScratch::default();
    loop {
        if let Err(e) = ep.recv_batch(&mut rx).await {
            tracing::debug!("receive error: {e}");
            continue;
        }
        let monotonic = shared.mono();
        let sync = shared.sync();
        let keys = shared.keys();
        let broadcasts = shared.broadcast_addresses();
        let (metas, requests): (Vec<&RecvMeta>, Vec<Addressed<'_>>) = rx
            .iter()
            .map(|(meta, bytes)| {
                let req = Addressed {
                    request: Request {
                        bytes,
                        source: meta.source,
                        received_at: NtpTimestamp::from_system_time(
                            meta.kernel_rx.unwrap_or_else(RealClock::now),
                        ),
                        monotonic,
                    },
                    destination: destination(meta.dest, &broadcasts),
                };
                (meta, req)
            })
            .unzip();
        tx.clear();
        let mut out = Outgoing {
            tx: &mut tx,
            metas: &metas,
        };
        answerer.handle_batch(
            &mut scratch,
            &shared.mru,
            &requests,
            &Context {
                sync: &sync,
                keys: &keys,
                signers: &shared.signers,
            },
            &mut now_ntp,
            &mut out,
            &mut |_, _| {},
        );
        if let Some(c) = shared.counters.get(slot) {
            *lock(c) = *answerer.counters();
        }
        if !tx.is_empty() {
            let sent = ep.send_batch(&tx).await;
            if let Some(e) = sent.last_error {
                tracing::debug!(failed = sent.failed, "replies not sent: {e}");
            }
        }
    }
}

/// The replies of one batch, queued for one `sendmmsg`.
struct Outgoing<'a> {
    tx: &'a mut SendBatch,
    metas: &'a [&'a RecvMeta],
}

impl Replies for Outgoing<'_> {
    fn next(&mut self) -> Option<&mut Vec<u8>> {
        self.tx.next_payload()
    }

    fn commit(&mut self, index: usize) {
        let Some(meta) = self.metas.get(index) else {
            return;
        };
        // From the address the request went to (known on wildcard sockets
        // only; the others are bound to it); a request to a group (a
        // wildcard socket sees those) is answered from whatever address
        // routing picks.
        let from = meta.dest.filter(|ip| !ip.is_multicast());
        if let Err(e) = self.tx.commit(meta.source, from) {
            tracing::debug!(to = %meta.source, "reply not queued: {e}");
        }
    }
}
