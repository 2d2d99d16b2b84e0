//! Blocking receives that take a small message straight out of its sender's ring.
//!
//! The general path of a receive posts it, polls every connection, matches each arriving
//! header against the posted queue, completes the operation and unwinds the poll before the
//! caller learns of it: on this machine some 300 cycles on the path of every small message,
//! more than the ring itself costs. A blocking receive from one rank of this host, when nothing
//! already here matches it, instead looks at that peer's ring alone: the next frame's header is
//! read where it lies, and if it is the message this receive takes (an eager message of its
//! context and tag, that no receive posted earlier would take), its payload goes straight into
//! the caller's buffer, and the receive is done without ever being an operation.
//!
//! Everything else falls back to the general path, which then finds the frame where it left
//! it: a frame of another kind, context or tag, one that an earlier posted receive matches,
//! one in pieces, a ring whose frames are half read, a peer that failed, and every receive
//! that waits longer than [`DIRECT_SPIN`] ([`DIRECT_CROWDED`] when ranks outnumber cores, where
//! every look yields the core; the general wait then spins, sleeps, and is seen by the
//! `--timeout` report). While it looks, the rest of the engine keeps moving: every 32 (16)
//! looks run a poll of everything, which may itself read the awaited message into the
//! unexpected queue (then the general path takes it from there). The order of a pair holds:
//! frames of the peer are taken in the order they came, by one path or the other.

use std::time::{Duration, Instant};

use super::{Engine, RawStatus};
use crate::error::Result;
use crate::transport::net::RingPeek;
use crate::wire::Kind;

/// The longest a receive looks at one ring before the general wait takes over.
const DIRECT_SPIN: Duration = Duration::from_micros(20);

/// The same when ranks outnumber cores, where each look yields the core: a reply then takes a
/// few time slices of other ranks, longer than [`DIRECT_SPIN`].
const DIRECT_CROWDED: Duration = Duration::from_micros(100);

/// Looks between two polls of everything.
const LOOKS_PER_POLL: u32 = 32;

impl Engine {
    /// Receives a message from `src` into `buf` straight from `src`'s ring, if it comes that
    /// way soon (see the module docs); `None` when the general path must receive it.
    pub(crate) fn recv_direct(
        &mut self,
        ctx: u32,
        src: Option<usize>,
        tag: Option<u32>,
        buf: &mut [u8],
    ) -> Result<Option<RawStatus>> {
        let Some(peer) = src else { return Ok(None) };
        if peer == self.rank
            || peer >= self.size
            || self.broken.is_some()
            || self.waiter.budget().is_zero()
            || self.core.gone[peer].is_some()
            || self.core.matching.peek_unexpected(ctx, src, tag).is_some()
        {
            return Ok(None);
        }
        // When ranks outnumber cores, the peer needs a core to answer: yield between looks (a
        // look then lasts as long as the others run), and poll everything (and look at the
        // clock) every 16 looks. 4 pairs ping-ponging on 8 ranks and 2 cores took 8.9 us one
        // way by the general wait, 5.9 this way (medians of 7 alternating runs).
        let crowded = self.waiter.yield_between;
        let (per_poll, limit) = match crowded {
            true => (16, DIRECT_CROWDED),
            false => (LOOKS_PER_POLL, DIRECT_SPIN),
        };
        let mut looks = 0u32;
        let mut started: Option<Instant> = None;
        loop {
            match self.transport.peek_ring(peer) {
                RingPeek::Whole(h) => {
                    let ours = h.kind == Kind::Eager
                        && h.flags == 0
                        && h.context == ctx
                        && tag.is_none_or(|t| t == h.tag)
                        && !self.core.matching.would_take(h.context, peer, h.tag);
                    let len = h.len as usize;
                    if !ours || !self.transport.take_ring(peer, len, buf, &mut self.core) {
                        return Ok(None);
                    }
                    self.core.give_back(peer, len);
                    self.flush_outbox();
                    return Ok(Some(RawStatus {
                        source: peer,
                        tag: h.tag,
                        bytes: len,
                    }));
                }
                RingPeek::Other => return Ok(None),
                RingPeek::Empty => {}
            }
            looks += 1;
            if looks % per_poll == 0 {
                self.progress(Some(Duration::ZERO))?;
                if self.core.matching.peek_unexpected(ctx, src, tag).is_some() {
                    return Ok(None);
                }
                if started.get_or_insert_with(Instant::now).elapsed() > limit {
                    return Ok(None);
                }
            }
            if crowded {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}
