//! Flat (root-centred) algorithms for small messages when ranks outnumber cores (on some host of
//! the job: `MPR_CROWDED`, which mprun sets alike for every rank, so all choose alike).
//!
//! Trees and dissemination need log2 n rounds in which *every* rank must get a core in turn; when
//! ranks outnumber cores each round costs a trip through the scheduler. A flat exchange needs
//! each rank to run about twice (send to rank 0, then receive from it) and rank 0 to make n - 1
//! cheap sends: fewer scheduling hops, at the price of rank 0's linear work, which is small for
//! small messages and small n. Measured with 8 ranks on 2 cores: barrier 220-311 -> 123-192 µs,
//! 8-byte allreduce 197-282 -> 139-207 µs; a flat broadcast was slower than the binomial tree (69 vs
//! 21 µs: the root's n - 1 sends then sit on the critical path of every rank), so broadcast keeps
//! its tree. [`Comm::use_flat`] decides (`MPR_FLAT_RANKS` overrides the size
//! limit; 0 turns it off). Results stay bit-identical: rank 0 folds the contributions in rank
//! order.

use bytemuck::Pod;

use super::op::Combiner;
use super::{bytes, bytes_mut, tag};
use crate::comm::Comm;
use crate::error::Result;

/// Communicators above this size take the flat algorithms (at 4 ranks on 2 cores the trees were
/// as fast: barrier 63-72 vs 68-75 µs).
const FLAT_MIN: usize = 4;

/// Messages up to this size take the flat algorithms when they apply.
const FLAT_BYTES: usize = 8 << 10;

impl Comm {
    /// Whether a collective of `bytes` per rank takes the flat algorithm here.
    pub(crate) fn use_flat(&self, bytes: usize) -> bool {
        let e = self.engine.borrow();
        let n = self.size();
        n > FLAT_MIN && bytes <= FLAT_BYTES && e.crowded() && n <= e.tuning.flat_ranks
    }

    /// Barrier: everyone tells rank 0, rank 0 tells everyone.
    pub(crate) fn flat_barrier(&self) -> Result<()> {
        let n = self.size();
        if self.rank() == 0 {
            let mut none: Vec<(usize, &mut [u8])> = (1..n).map(|r| (r, &mut [][..])).collect();
            self.coll_xchg(tag::BARRIER, &[], &mut none)?;
            let all: Vec<(usize, &[u8])> = (1..n).map(|r| (r, &[][..])).collect();
            self.coll_xchg(tag::BARRIER + 1, &all, &mut [])
        } else {
            self.coll_xchg(tag::BARRIER, &[(0, &[])], &mut [])?;
            self.coll_xchg(tag::BARRIER + 1, &[], &mut [(0, &mut [])])
        }
    }

    /// Allreduce: rank 0 gathers the vectors, folds them in rank order, and sends the result.
    /// `recv` holds this rank's contribution on entry.
    pub(crate) fn flat_allreduce<T: Pod>(&self, recv: &mut [T], f: Combiner<T>) -> Result<()> {
        let n = self.size();
        if self.rank() != 0 {
            self.coll_xchg(tag::ALLREDUCE, &[(0, bytes(recv))], &mut [])?;
            return self.coll_xchg(tag::ALLREDUCE, &[], &mut [(0, bytes_mut(recv))]);
        }
        let len = recv.len();
        let mut parts = vec![T::zeroed(); len * (n - 1)];
        {
            let mut slots: Vec<(usize, &mut [u8])> = parts
                .chunks_mut(len.max(1))
                .take(n - 1)
                .enumerate()
                .map(|(i, c)| (i + 1, bytes_mut(c)))
                .collect();
            if len == 0 {
                slots = (1..n).map(|r| (r, &mut [][..])).collect();
            }
            self.coll_xchg(tag::ALLREDUCE, &[], &mut slots)?;
        }
        for part in parts
            .chunks(len.max(1))
            .take(if len == 0 { 0 } else { n - 1 })
        {
            f(recv, part, false)?;
        }
        let out = bytes(recv);
        let all: Vec<(usize, &[u8])> = (1..n).map(|r| (r, out)).collect();
        self.coll_xchg(tag::ALLREDUCE, &all, &mut [])
    }
}
