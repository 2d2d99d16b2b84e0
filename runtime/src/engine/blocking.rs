//! Blocking operations over borrowed slices: the safe face of the engine for `comm` and `coll`.
//!
//! Each function turns the caller's slices into engine views ([`RawSlice`], [`RawMut`]), starts
//! the operations and waits for all of them before returning. `wait`/`wait_all` return only once
//! their operations have left the engine (completed, failed, or cancelled), so no view outlives
//! the borrow it came from: this is how the `buf.rs` invariant is kept for blocking calls.

use super::schedule::{ByteCombine, Round, Schedule};
use super::{Engine, OpId, RawStatus, Started};
use crate::buf::{RawMut, RawSlice};
use crate::error::Result;

/// One send of an exchange.
pub(crate) struct SendSpec<'a> {
    pub peer: usize,
    pub tag: u32,
    pub buf: &'a [u8],
}

/// One receive of an exchange.
pub(crate) struct RecvSpec<'a> {
    pub src: Option<usize>,
    pub tag: Option<u32>,
    pub buf: &'a mut [u8],
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
        // SAFETY (RawSlice::new): `buf` is borrowed for this whole call; a send that went at
        // once holds no view of it, and `wait` returns only once the operation has left the
        // engine.
        let buf = unsafe { RawSlice::new(buf) };
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
        // SAFETY (RawMut::new): `buf` is borrowed mutably for this whole call and `wait` returns
        // only once the operation has left the engine.
        let op = self.irecv(ctx, src, tag, unsafe { RawMut::new(buf) })?;
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
            // SAFETY (RawMut::new): `recvs` is borrowed mutably for this whole call; every op is
            // waited for or cancelled below before it returns.
            match self.irecv(ctx, r.src, r.tag, unsafe { RawMut::new(r.buf) }) {
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
                // SAFETY (RawSlice::new): as above, `sends` outlives every op started here.
                match self.isend(ctx, s.peer, s.tag, unsafe { RawSlice::new(s.buf) }, false) {
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
