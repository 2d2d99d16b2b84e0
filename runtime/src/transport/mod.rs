//! Moving frames between ranks. The transport knows frames and peers (world ranks), never tags,
//! communicators or collectives.
//!
//! # The contract every transport provides
//!
//! - `send(peer, OutFrame, sink)`: queue a frame (header bytes + a borrowed payload) for `peer`,
//!   writing as much as possible at once. Frames to one peer leave in the order given. When a
//!   frame carrying a token has been handed over completely (its payload may be reused), the
//!   transport calls `sink.on_sent(token)`. Connections are made on first use.
//! - `poll(sink, timeout)`: move bytes. For each arriving frame with a payload, ask
//!   `sink.on_header` where the payload goes ([`Dest`]) and read it straight there; then report the
//!   whole frame with `sink.on_frame`.
//! - On a broken link: `sink.on_peer_failed(peer, cause)`, once, and drop that peer's frames.
//!
//! Reaches, chosen per peer: [`loopback`] for a rank sending to itself, [`net`] for every other
//! rank (TCP between hosts, Unix-domain sockets within one, where large messages may also be
//! copied straight between the two processes: see [`Sink::on_link_up`]).

pub(crate) mod loopback;
pub(crate) mod net;
pub(crate) mod shm;

use std::collections::VecDeque;
use std::io::IoSliceMut;
use std::time::Duration;

use crate::buf::{RawMut, RawSlice};
use crate::error::{PeerCause, Result};
use crate::wire::{Header, HEADER_LEN};

/// A frame on its way out: encoded header plus a view of the payload (the user's bytes).
pub(crate) struct OutFrame {
    pub header: [u8; HEADER_LEN],
    pub payload: RawSlice,
    /// Reported through `Sink::on_sent` once the whole frame is handed over.
    pub token: Option<u64>,
    /// Bytes of header + payload already written.
    pub written: usize,
}

impl OutFrame {
    pub(crate) fn new(header: &Header, payload: RawSlice, token: Option<u64>) -> OutFrame {
        OutFrame {
            header: header.encode(),
            payload,
            token,
            written: 0,
        }
    }

    pub(crate) fn total(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }
}

/// Where an arriving payload goes.
pub(crate) struct Dest {
    pub buf: DestBuf,
    /// The first `keep` payload bytes go into `buf`; the rest are read and dropped (truncation).
    pub keep: usize,
    /// The receive operation this payload completes, if it was matched.
    pub op: Option<u64>,
}

pub(crate) enum DestBuf {
    /// Straight into a posted receive buffer.
    User(RawMut),
    /// Into memory of the engine's own (an unexpected eager message).
    Owned(Vec<u8>),
}

impl Dest {
    /// Where payload bytes `start..end` go (clamped to `keep`), as far as they lie together: all
    /// of them unless a laid-out receive's block ends first (then the caller comes back for the
    /// rest, or uses [`Dest::pieces`]).
    pub(crate) fn slot(&mut self, start: usize, end: usize) -> &mut [u8] {
        let end = end.min(self.keep);
        match &mut self.buf {
            DestBuf::User(m) => m.range_mut(start, end),
            DestBuf::Owned(v) if start < end => &mut v[start..end],
            DestBuf::Owned(_) => &mut [],
        }
    }

    /// The places of payload bytes `start..end` (clamped to `keep`), at most `max` of them, for
    /// a `readv`: one but for a laid-out receive, whose blocks they are.
    pub(crate) fn pieces(&mut self, start: usize, end: usize, max: usize) -> Vec<IoSliceMut<'_>> {
        let end = end.min(self.keep);
        match &mut self.buf {
            DestBuf::User(m) => m.pieces_mut(start, end, max),
            DestBuf::Owned(v) if start < end => vec![IoSliceMut::new(&mut v[start..end])],
            DestBuf::Owned(_) => Vec::new(),
        }
    }

    /// Hands `f` the places of payload bytes `start..end` (clamped to `keep`) one at a time,
    /// while it returns true: one but for a laid-out receive, whose blocks they are.
    #[inline]
    pub(crate) fn each_piece(
        &mut self,
        start: usize,
        end: usize,
        mut f: impl FnMut(&mut [u8]) -> bool,
    ) {
        let end = end.min(self.keep);
        match &mut self.buf {
            DestBuf::User(m) => m.each_piece_mut(start, end, f),
            DestBuf::Owned(v) if start < end => {
                f(&mut v[start..end]);
            }
            DestBuf::Owned(_) => {}
        }
    }

    /// Whether the payload's places are scattered (a laid-out receive).
    pub(crate) fn scattered(&self) -> bool {
        matches!(&self.buf, DestBuf::User(m) if m.addr().is_none())
    }

    /// Writes `src` as payload bytes `at..` (what falls past `keep` is dropped).
    pub(crate) fn copy_in(&mut self, at: usize, src: &[u8]) {
        let n = self.keep.saturating_sub(at).min(src.len());
        match &mut self.buf {
            DestBuf::User(m) => m.copy_in(at, &src[..n]),
            DestBuf::Owned(v) => v[at..at + n].copy_from_slice(&src[..n]),
        }
    }
}

/// What the transport reports to (the engine's matching layer).
pub(crate) trait Sink {
    /// A header announcing a payload arrived: where does the payload go?
    /// An `Err` is a protocol violation by the peer; its link is failed.
    fn on_header(&mut self, peer: usize, h: &Header) -> std::result::Result<Dest, String>;
    /// A whole frame arrived (with its payload in `dest`, if it had one).
    fn on_frame(
        &mut self,
        peer: usize,
        h: Header,
        dest: Option<Dest>,
    ) -> std::result::Result<(), String>;
    /// The frame carrying `token` has been handed over.
    fn on_sent(&mut self, token: u64);
    /// The link to `peer` broke; called once per peer.
    fn on_peer_failed(&mut self, peer: usize, cause: PeerCause);
    /// The link to `peer` is up. `pull_from`: the peer is process `pid` of this host, whose
    /// memory this rank may copy large messages out of itself (`sys::pull`).
    fn on_link_up(&mut self, peer: usize, pull_from: Option<u32>);
}

/// Every reach of this rank, dispatched per peer.
/// What one poll saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Polled {
    /// Something can still arrive (false only for a singleton with nothing queued).
    pub live: bool,
    /// Something happened: a socket event or a local delivery. Waits use it to tell a busy
    /// stream (keep spinning) from an idle one (sleep soon).
    pub active: bool,
}

pub(crate) struct Transport {
    me: usize,
    loopback: loopback::Loopback,
    net: Option<net::Net>,
}

impl Transport {
    pub(crate) fn new(me: usize, net: Option<net::Net>) -> Transport {
        Transport {
            me,
            loopback: loopback::Loopback::default(),
            net,
        }
    }

    /// Queues `header` + `payload` for `peer` (see the contract above).
    pub(crate) fn send(
        &mut self,
        peer: usize,
        header: &Header,
        payload: RawSlice,
        token: Option<u64>,
        sink: &mut impl Sink,
    ) {
        if peer == self.me {
            self.loopback.send(header, payload, token, sink);
        } else if let Some(net) = &mut self.net {
            net.send(peer, OutFrame::new(header, payload, token), sink);
        } else {
            sink.on_peer_failed(
                peer,
                PeerCause::Unreachable("this process has no network transport".into()),
            );
        }
    }

    /// Writes `header` + `payload` for `peer` at once, if it can go whole and first in line
    /// (a ring with room and nothing queued before it): true if it went. Nothing is queued
    /// otherwise, and no `on_sent` follows either way.
    pub(crate) fn write_now(
        &mut self,
        peer: usize,
        header: &Header,
        payload: &[u8],
        sink: &mut impl Sink,
    ) -> bool {
        match &mut self.net {
            Some(net) if peer != self.me => net.write_now(peer, header, payload, sink),
            _ => false,
        }
    }

    /// Like [`Transport::send`], but the frame may wait in its queue until
    /// [`Transport::flush_deferred`], so that frames to one peer go out in one `writev`.
    pub(crate) fn send_deferred(
        &mut self,
        peer: usize,
        header: &Header,
        payload: RawSlice,
        token: Option<u64>,
        sink: &mut impl Sink,
    ) {
        match &mut self.net {
            Some(net) if peer != self.me => {
                net.send_deferred(peer, OutFrame::new(header, payload, token), sink)
            }
            _ => self.send(peer, header, payload, token, sink),
        }
    }

    /// Writes what [`Transport::send_deferred`] queued.
    pub(crate) fn flush_deferred(&mut self, sink: &mut impl Sink) {
        if let Some(net) = &mut self.net {
            net.flush_deferred(sink);
        }
    }

    /// Moves bytes, sleeping at most `timeout` (`None`: until something happens) when nothing
    /// is ready. Returns false if nothing can ever arrive (no network, nothing queued).
    pub(crate) fn poll(
        &mut self,
        sink: &mut impl Sink,
        timeout: Option<Duration>,
    ) -> Result<Polled> {
        let had_local = self.loopback.deliver(self.me, sink);
        match &mut self.net {
            Some(net) => {
                let t = if had_local || self.loopback.pending() {
                    Some(Duration::ZERO)
                } else {
                    timeout
                };
                let active = net.poll(sink, t)?;
                Ok(Polled {
                    live: true,
                    active: active || had_local,
                })
            }
            None => {
                let live = had_local || self.loopback.pending();
                Ok(Polled {
                    live,
                    active: had_local,
                })
            }
        }
    }

    /// The next frame from `peer`'s ring, looked at and left there (see `Net::peek_ring`).
    pub(crate) fn peek_ring(&mut self, peer: usize) -> net::RingPeek {
        match &mut self.net {
            Some(net) if peer != self.me => net.peek_ring(peer),
            _ => net::RingPeek::Other,
        }
    }

    /// Takes the frame [`Transport::peek_ring`] saw (see `Net::take_ring`).
    pub(crate) fn take_ring(
        &mut self,
        peer: usize,
        len: usize,
        dst: &mut [u8],
        sink: &mut impl Sink,
    ) -> bool {
        match &mut self.net {
            Some(net) if peer != self.me => net.take_ring(peer, len, dst, sink),
            _ => false,
        }
    }

    /// True when nothing is waiting to be written to any peer.
    pub(crate) fn flushed(&self) -> bool {
        self.net.as_ref().is_none_or(|t| t.flushed())
    }

    pub(crate) fn net(&mut self) -> Option<&mut net::Net> {
        self.net.as_mut()
    }

    pub(crate) fn net_ref(&self) -> Option<&net::Net> {
        self.net.as_ref()
    }

    /// Drops every queued frame and connection (the engine is being torn down after a fatal error).
    pub(crate) fn abandon(&mut self) {
        self.loopback = loopback::Loopback::default();
        if let Some(t) = &mut self.net {
            t.abandon();
        }
    }
}

/// Frames of one peer not yet written.
pub(crate) type SendQueue = VecDeque<OutFrame>;
