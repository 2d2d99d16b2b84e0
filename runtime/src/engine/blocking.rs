//! Blocking operations over borrowed slices: the safe face of the engine for `comm` and `coll`.
//!
//! Each function turns the caller's slices into engine views ([`RawSlice`], [`RawMut`]), starts
//! the operations and waits for all of them before returning. `wait`/`wait_all` return only once
//! their operations have left the engine (completed, failed, or cancelled), so no view outlives
//! the borrow it came from: this is how the `buf.rs` invariant is kept for blocking calls.

use super::schedule::{ByteCombine, Round, Schedule};
use super::{Engine, OpId, RawStatus, Started};
use crate::buf::{Laid, RawMut, RawSlice};
use crate::error::{Error, Result};

/// One send of an exchange.
pub(crate) struct SendSpec<'a> {
    pub peer: usize,
    pub tag: u32,
    pub buf: &'a [u8],
    /// The blocks of `buf` that travel, if not all of it.
    pub laid: Option<Laid<'a>>,
}

/// One receive of an exchange.
pub(crate) struct RecvSpec<'a> {
    pub src: Option<usize>,
    pub tag: Option<u32>,
    pub buf: &'a mut [u8],
    /// The blocks of `buf` the message goes into, if not all of it.
    pub laid: Option<Laid<'a>>,
}

/// A layout that does not fit its buffer: callers check layouts first, so this only keeps a
/// mistake from becoming an out-of-bounds view.
fn unfit() -> Error {
    Error::InvalidArgument {
        what: "layout",
        detail: "the layout does not fit its buffer".into(),
    }
}

/// The view of `buf` (or of its blocks in `laid`) a send holds.
///
/// # Safety
/// As `RawSlice::new` / `RawSlice::laid`.
unsafe fn view(buf: &[u8], laid: Option<Laid<'_>>) -> Result<RawSlice> {
    // SAFETY: the caller's promise, passed on.
    unsafe {
        match laid {
            None => Ok(RawSlice::new(buf)),
            Some(l) => RawSlice::laid(buf, l).ok_or_else(unfit),
        }
    }
}

/// The view of `buf` (or of its blocks in `laid`) a receive holds.
///
/// # Safety
/// As `RawMut::new` / `RawMut::laid`.
unsafe fn view_mut(buf: &mut [u8], laid: Option<Laid<'_>>) -> Result<RawMut> {
    // SAFETY: the caller's promise, passed on.
    unsafe {
        match laid {
            None => Ok(RawMut::new(buf)),
            Some(l) => RawMut::laid(buf, l).ok_or_else(unfit),
        }
    }
}

impl Engine {
    /// Sends `buf` to world rank `peer` and waits until it may be reused (or, if `synchronous`,
    /// until the receiver matched it).
    pub(crate) fn send(
        &mut self,
        ctx: u32,
        peer: usize,
        tag: u32,
        buf: &[u8],
        synchronous: bool,
    ) -> Result<RawStatus> {
        self.send_laid(ctx, peer, tag, buf, None, synchronous)
    }

    /// [`Engine::send`] of the blocks of `buf` that `laid` names (all of it for `None`).
    pub(crate) fn send_laid(
        &mut self,
        ctx: u32,
        peer: usize,
        tag: u32,
        buf: &[u8],
        laid: Option<Laid<'_>>,
        synchronous: bool,
    ) -> Result<RawStatus> {
        // SAFETY (view): `buf` and `laid` are borrowed for this whole call; a send that went at
        // once holds no view of them, and `wait` returns only once the operation has left the
        // engine.
        let buf = unsafe { view(buf, laid)? };
        match self.start_send(ctx, peer, tag, buf, synchronous)? {
            Started::Written(st) => Ok(st),
            Started::Queued(op) => self.wait(op),
        }
    }

    /// Receives into `buf` and waits for the message.
    pub(crate) fn recv(
        &mut self,
        ctx: u32,
        src: Option<usize>,
        tag: Option<u32>,
        buf: &mut [u8],
    ) -> Result<RawStatus> {
        if let Some(st) = self.recv_direct(ctx, src, tag, buf)? {
            return Ok(st);
        }
        self.recv_laid(ctx, src, tag, buf, None)
    }

    /// [`Engine::recv`] into the blocks of `buf` that `laid` names (all of it for `None`),
    /// without the direct path of a contiguous receive.
    pub(crate) fn recv_laid(
        &mut self,
        ctx: u32,
        src: Option<usize>,
        tag: Option<u32>,
        buf: &mut [u8],
        laid: Option<Laid<'_>>,
    ) -> Result<RawStatus> {
        // SAFETY (view_mut): `buf` and `laid` are borrowed (`buf` mutably) for this whole call
        // and `wait` returns only once the operation has left the engine.
        let op = self.irecv(ctx, src, tag, unsafe { view_mut(buf, laid)? })?;
        self.wait(op)
    }

    /// Posts every receive, starts every send, and waits for all of them. Returns the receives'
    /// statuses, in order. On an error in starting, what was started is waited for (sends) or
    /// cancelled (receives) before returning.
    pub(crate) fn exchange(
        &mut self,
        ctx: u32,
        sends: &[SendSpec<'_>],
        recvs: &mut [RecvSpec<'_>],
    ) -> Result<Vec<RawStatus>> {
        let mut ops: Vec<OpId> = Vec::with_capacity(sends.len() + recvs.len());
        let mut failure = None;
        for r in recvs.iter_mut() {
            // SAFETY (view_mut): `recvs` is borrowed mutably for this whole call; every op is
            // waited for or cancelled below before it returns.
            match unsafe { view_mut(r.buf, r.laid) }.and_then(|v| self.irecv(ctx, r.src, r.tag, v))
            {
                Ok(op) => ops.push(op),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let n_recvs = ops.len();
        if failure.is_none() {
            for s in sends {
                // SAFETY (view): as above, `sends` outlives every op started here.
                match unsafe { view(s.buf, s.laid) }
                    .and_then(|v| self.isend(ctx, s.peer, s.tag, v, false))
                {
                    Ok(op) => ops.push(op),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(e) = failure {
            for &op in &ops[..n_recvs] {
                self.cancel(op);
            }
            let _ = self.wait_all(&ops[n_recvs..]);
            return Err(e);
        }
        let mut all = self.wait_all(&ops)?;
        all.truncate(n_recvs);
        Ok(all)
    }

    /// Runs a collective's rounds over `input` and `output` to the end (a blocking collective).
    pub(crate) fn run_rounds(
        &mut self,
        ctx: u32,
        input: &[u8],
        output: &mut [u8],
        scratch_bytes: usize,
        rounds: Vec<Round>,
        combine: Option<ByteCombine<'_>>,
    ) -> Result<()> {
        // SAFETY (RawSlice::new, RawMut::new): `input` and `output` are borrowed (the output
        // mutably) for this whole call, and `run_schedule` returns only once none of the
        // schedule's operations is left in the engine.
        let (i, o) = unsafe { (RawSlice::new(input), RawMut::new(output)) };
        let mut sched = Schedule::new(ctx, i, o, scratch_bytes, rounds, combine);
        self.run_schedule(&mut sched)
    }
}
