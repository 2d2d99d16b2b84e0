//! Collective operations, written against the point-to-point engine on the communicator's
//! collective context (`ctx + 1`), which user traffic can never match. One file per family;
//! each algorithm is a sequence of rounds in which all of the round's sends and receives start
//! at once, so no round can deadlock on its own order. Barrier, broadcast and allreduce are
//! plans of rounds for the engine's schedule executor (blocking: run to the end at once;
//! nonblocking: advanced by the progress engine); the others run each round directly with
//! [`Comm::coll_xchg`].
//!
//! Messages of one collective between a pair are matched by tag and arrive in the order sent;
//! all ranks call collectives in the same order, so successive collectives never mix.

#![forbid(unsafe_code)]

mod allreduce;
mod alltoall;
mod barrier;
mod bcast;
mod check;
mod flat;
mod gather;
mod in_place;
mod neighbor;
mod node;
mod nonblocking;
pub(crate) mod op;
mod plan;
mod reduce;
mod scan;
mod vector;

use crate::comm::Comm;
pub(crate) use crate::comm::{bytes, bytes_mut};
use crate::engine::{RecvSpec, SendSpec};
use crate::error::{Error, Result};
pub(crate) use neighbor::Neighbors;
pub(crate) use node::NodeState;

/// Collective calls of one communicator that may be in flight at once (see `Comm::begin_coll`).
pub(crate) use crate::engine::coll_tag::SEQ_SPAN;

/// Tags of the collective families (on the collective context); the layout, with the call's
/// number above, is `engine::coll_tag`'s.
pub(crate) mod tag {
    use crate::engine::coll_tag::family;
    pub const BARRIER: u32 = family(0);
    pub const BCAST: u32 = family(1);
    pub const REDUCE: u32 = family(2);
    pub const ALLREDUCE: u32 = family(3);
    pub const GATHER: u32 = family(4);
    pub const SCATTER: u32 = family(5);
    pub const ALLGATHER: u32 = family(6);
    pub const ALLTOALL: u32 = family(7);
    pub const NEIGHBOR: u32 = family(8);
}

impl Comm {
    /// Marks the start of a collective call: every rank calls collectives in the same order, so
    /// a per-communicator count of them names each call alike on every rank, and its messages
    /// carry that number in their tag. Two collectives in flight at once (a nonblocking one and
    /// the next, say) can therefore never take each other's messages. The count wraps at
    /// [`SEQ_SPAN`]: that many collectives of one communicator may be in flight at once.
    pub(crate) fn begin_coll(&self) {
        self.coll_seq.set(self.coll_seq.get().wrapping_add(1));
    }

    /// The tag of `family` in the current collective call.
    pub(crate) fn coll_tag(&self, family: u32) -> u32 {
        crate::engine::coll_tag::tag(self.coll_seq.get(), family)
    }

    /// The element count from which reductions run on rayon, if they may here (see
    /// [`crate::Tuning::par_reduce`]).
    pub(crate) fn par_reduce(&self) -> Option<usize> {
        self.engine.borrow().par_reduce
    }

    /// One round of a collective: every send and receive (communicator ranks) at once, then a
    /// wait for all. Each receive must be filled exactly: a message of another length means the
    /// ranks passed mismatched lengths, which is an error, not a silent partial result.
    pub(crate) fn coll_xchg(
        &self,
        family: u32,
        sends: &[(usize, &[u8])],
        recvs: &mut [(usize, &mut [u8])],
    ) -> Result<()> {
        let tag = self.coll_tag(family);
        let sends: Vec<SendSpec> = sends
            .iter()
            .map(|&(r, buf)| {
                Ok(SendSpec {
                    peer: self.world_rank(r)?,
                    tag,
                    buf,
                    laid: None,
                })
            })
            .collect::<Result<_>>()?;
        let mut specs: Vec<RecvSpec> = Vec::with_capacity(recvs.len());
        for (r, buf) in recvs.iter_mut() {
            specs.push(RecvSpec {
                src: Some(self.world_rank(*r)?),
                tag: Some(tag),
                buf,
                laid: None,
            });
        }
        let got = self
            .engine
            .borrow_mut()
            .exchange(self.coll_ctx(), &sends, &mut specs)?;
        for (st, spec) in got.iter().zip(&specs) {
            if st.bytes != spec.buf.len() {
                return Err(Error::InvalidArgument {
                    what: "collective",
                    detail: format!(
                        "rank {} sent {} bytes where {} were expected: the ranks passed mismatched lengths",
                        self.comm_rank(st.source),
                        st.bytes,
                        spec.buf.len()
                    ),
                });
            }
        }
        Ok(())
    }

    /// A root argument, checked.
    pub(crate) fn check_root(&self, root: usize) -> Result<()> {
        if root >= self.size() {
            return Err(Error::InvalidRank {
                rank: root,
                size: self.size(),
            });
        }
        Ok(())
    }
}

/// A length check of a collective's arguments.
pub(crate) fn expect_len(what: &'static str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::InvalidArgument {
            what,
            detail: format!("buffer has {got} elements, {want} expected"),
        });
    }
    Ok(())
}
