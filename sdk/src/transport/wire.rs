//! What actually left for each peer: a stream muxer wrapper that counts the
//! bytes written on every substream of a connection.
//!
//! gossipsub queues each message per peer and writes it later; when its
//! queue is full or a message waits longer than the publish timeout the
//! message is dropped (reported in `Event::SlowPeer`), and whatever is still
//! queued when the connection or the swarm goes away is lost without any
//! event. The bytes written on the connection's substreams are what the
//! gossip transport compares with what it handed over, to know which
//! envelopes really left, to hold new ones back while a peer is behind, and
//! to count what a close or a disconnection abandoned.

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::PeerId;
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};

/// Counters of one connection, shared with its muxer.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    /// Bytes written on all of the connection's substreams (gossipsub
    /// frames, and a little identify and protocol negotiation).
    written: AtomicU64,
    /// A write is waiting (the peer is not taking data).
    blocked: AtomicBool,
    /// The connection's muxer is gone.
    closed: AtomicBool,
}

impl Wire {
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    pub(crate) fn blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed)
    }

    fn wrote(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        self.blocked.store(false, Ordering::Relaxed);
    }
}

/// Each peer's connection counters, kept until the peer is forgotten (so the
/// bytes a connection wrote just before it closed still count).
#[derive(Debug, Clone, Default)]
pub(crate) struct Wires {
    peers: Arc<Mutex<HashMap<PeerId, PeerWires>>>,
}

#[derive(Debug, Default)]
struct PeerWires {
    /// Bytes written by connections already closed.
    retired: u64,
    live: Vec<Arc<Wire>>,
}

impl Wires {
    /// Counters for a new connection to `peer`.
    pub(crate) fn register(&self, peer: PeerId) -> Arc<Wire> {
        let wire = Arc::new(Wire::default());
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        peers.entry(peer).or_default().live.push(Arc::clone(&wire));
        wire
    }

    /// Bytes written to `peer` over all its connections so far, and whether
    /// an open one has a write waiting. `None` for a peer never connected
    /// (or forgotten).
    pub(crate) fn peer(&self, peer: &PeerId) -> Option<(u64, bool)> {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let p = peers.get_mut(peer)?;
        let mut retired = 0;
        p.live.retain(|w| {
            let open = !w.closed.load(Ordering::Relaxed);
            if !open {
                retired += w.written();
            }
            open
        });
        p.retired += retired;
        let live = p.live.iter().fold((0, false), |(n, b), w| (n + w.written(), b || w.blocked()));
        Some((p.retired + live.0, live.1))
    }

    /// Drops `peer`'s counters (it has no connection left).
    pub(crate) fn forget(&self, peer: &PeerId) {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner).remove(peer);
    }
}

/// A stream muxer whose substreams count what is written on them (into
/// `wire`).
pub(crate) struct CountingMuxer<M> {
    inner: M,
    wire: Arc<Wire>,
}

impl<M> CountingMuxer<M> {
    pub(crate) fn new(inner: M, wire: Arc<Wire>) -> Self {
        CountingMuxer { inner, wire }
    }
}

impl<M> Drop for CountingMuxer<M> {
    fn drop(&mut self) {
        self.wire.closed.store(true, Ordering::Relaxed);
    }
}

impl<M> StreamMuxer for CountingMuxer<M>
where
    M: StreamMuxer + Unpin,
    M::Substream: Unpin,
{
    type Substream = Counted<M::Substream>;
    type Error = M::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let wire = this.wire.clone();
        Pin::new(&mut this.inner).poll_inbound(cx).map_ok(|inner| Counted { inner, wire })
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let wire = this.wire.clone();
        Pin::new(&mut this.inner).poll_outbound(cx).map_ok(|inner| Counted { inner, wire })
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// A substream that adds what is written on it to its connection's counters.
pub(crate) struct Counted<S> {
    inner: S,
    wire: Arc<Wire>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.count(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.count(&polled);
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

impl<S> Counted<S> {
    fn count(&self, polled: &Poll<std::io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) => self.wire.wrote(*n),
            Poll::Pending => self.wire.blocked.store(true, Ordering::Relaxed),
            Poll::Ready(Err(_)) => {}
        }
    }
}

/// Envelopes handed to gossipsub for each peer and not yet seen leaving on
/// its connection. A publish is attributed to every peer it may go to; the
/// bytes written on the peer's substreams then retire them oldest first,
/// each by its exact gossipsub frame size ([`publish_frame_len`]). The few
/// other bytes on the wire (identify, protocol negotiation) can only retire
/// an envelope early, never keep one back.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    peers: HashMap<PeerId, PeerFlight>,
}

#[derive(Debug, Default)]
struct PeerFlight {
    /// Frame sizes, oldest first.
    frames: VecDeque<u64>,
    /// The wire counter up to which bytes were matched with frames.
    consumed: u64,
    /// Envelopes no peer's queue took (already counted as lost) whose failure
    /// gossipsub has yet to report for this peer in a `SlowPeer` event.
    unreported_full: u64,
}

impl InFlight {
    /// A publish gossipsub took, of `frame` bytes, for `peers`.
    pub(crate) fn sent(&mut self, peers: &[PeerId], frame: u64, wires: &Wires) {
        for peer in peers {
            let flight = self.peers.entry(*peer).or_insert_with(|| PeerFlight {
                consumed: wires.peer(peer).map_or(0, |(written, _)| written),
                ..PeerFlight::default()
            });
            flight.frames.push_back(frame);
        }
    }

    /// A publish no peer's queue could take: gossipsub reports it per peer later.
    pub(crate) fn refused(&mut self, peers: &[PeerId]) {
        for peer in peers {
            self.peers.entry(*peer).or_default().unreported_full += 1;
        }
    }

    /// gossipsub reported `n` sends to `peer` failed (queue full, or waited
    /// past the publish timeout, oldest first). Returns how many of them
    /// were not counted yet (not refused outright at publish).
    pub(crate) fn failed(&mut self, peer: &PeerId, n: u64) -> u64 {
        let Some(flight) = self.peers.get_mut(peer) else { return n };
        let known = n.min(flight.unreported_full);
        flight.unreported_full -= known;
        let new = n - known;
        for _ in 0..new {
            if flight.frames.pop_front().is_none() {
                break;
            }
        }
        new
    }

    /// Retires what each peer's wire shows written.
    pub(crate) fn settle(&mut self, wires: &Wires) {
        for (peer, flight) in &mut self.peers {
            let Some((written, _)) = wires.peer(peer) else { continue };
            let mut available = written.saturating_sub(flight.consumed);
            while let Some(&frame) = flight.frames.front() {
                if available < frame {
                    break;
                }
                available -= frame;
                flight.consumed += frame;
                flight.frames.pop_front();
            }
            if flight.frames.is_empty() {
                // Bytes written while nothing was in flight were other traffic.
                flight.consumed = written;
            }
        }
    }

    /// The connection to `peer` is gone and with it gossipsub's queue for
    /// it: returns how many envelopes were still waiting there.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) -> u64 {
        self.peers.remove(peer).map_or(0, |f| f.frames.len() as u64)
    }

    /// Envelopes waiting for `peer`.
    pub(crate) fn backlog(&self, peer: &PeerId) -> usize {
        self.peers.get(peer).map_or(0, |f| f.frames.len())
    }

    /// The longest backlog of any peer.
    pub(crate) fn max_backlog(&self) -> usize {
        self.peers.values().map(|f| f.frames.len()).max().unwrap_or(0)
    }

    /// Forgets every backlog (the transport is closing); returns the
    /// longest, the envelopes that may not have left.
    pub(crate) fn abandon(&mut self) -> u64 {
        let lost = self.max_backlog() as u64;
        self.peers.clear();
        lost
    }
}

/// The exact length on the wire (inside the muxer) of gossipsub's frame for
/// one anonymous publish of `data_len` bytes on `topic`: a length-prefixed
/// `RPC { publish: [Message { data, topic }] }`.
pub(crate) fn publish_frame_len(topic: &str, data_len: usize) -> u64 {
    fn varint_len(n: u64) -> u64 {
        u64::from((64 - (n | 1).leading_zeros()).div_ceil(7))
    }
    let field = |len: u64| 1 + varint_len(len) + len;
    let message = field(data_len as u64) + field(topic.len() as u64);
    let rpc = field(message);
    varint_len(rpc) + rpc
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wires_sum_every_connection_of_a_peer_until_it_is_forgotten() {
        let wires = Wires::default();
        let peer = PeerId::random();
        assert_eq!(wires.peer(&peer), None);
        let a = wires.register(peer);
        let b = wires.register(peer);
        a.wrote(10);
        b.wrote(5);
        b.blocked.store(true, Ordering::Relaxed);
        assert_eq!(wires.peer(&peer), Some((15, true)));
        // A closed connection's bytes still count; its blocked write does not.
        b.closed.store(true, Ordering::Relaxed);
        drop(b);
        assert_eq!(wires.peer(&peer), Some((15, false)));
        a.wrote(1);
        assert_eq!(wires.peer(&peer), Some((16, false)));
        wires.forget(&peer);
        assert_eq!(wires.peer(&peer), None);
    }

    #[test]
    fn frame_length_matches_the_protobuf_encoding() {
        // 1 + 1 + 1 (data) + 1 + 1 + 3 (topic) = 8; RPC 1 + 1 + 8 = 10; prefix 1.
        assert_eq!(publish_frame_len("abc", 1), 11);
        // 200 bytes of data need a 2-byte length: 1 + 2 + 200 + 1 + 1 + 3 = 208,
        // RPC 1 + 2 + 208 = 211, prefix 2.
        assert_eq!(publish_frame_len("abc", 200), 213);
    }

    #[test]
    fn in_flight_envelopes_retire_by_bytes_and_failures_oldest_first() {
        let wires = Wires::default();
        let peer = PeerId::random();
        let wire = wires.register(peer);
        wire.wrote(500); // identify and the like, before anything was sent
        let mut f = InFlight::default();
        f.sent(&[peer], 100, &wires);
        f.sent(&[peer], 100, &wires);
        f.sent(&[peer], 100, &wires);
        assert_eq!(f.backlog(&peer), 3);
        wire.wrote(150);
        f.settle(&wires);
        assert_eq!(f.backlog(&peer), 2, "one and a half frames written");
        // One queue-full refusal, then gossipsub reports two failures: the
        // refusal and the oldest envelope in flight, which timed out.
        f.refused(&[peer]);
        assert_eq!(f.failed(&peer, 2), 1);
        assert_eq!(f.backlog(&peer), 1);
        wire.wrote(50);
        f.settle(&wires);
        assert_eq!(f.backlog(&peer), 0);
        f.sent(&[peer], 100, &wires);
        assert_eq!((f.max_backlog(), f.disconnected(&peer)), (1, 1));
        assert_eq!(f.failed(&peer, 3), 3, "an unknown peer's failures are all new");
        f.sent(&[peer], 100, &wires);
        assert_eq!(f.abandon(), 1);
    }
}
