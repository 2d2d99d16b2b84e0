//! Flat (root-centred) algorithms for small messages when ranks outnumber cores (on some host of
//! the job: `MPR_CROWDED`, which mprun sets alike for every rank, so all choose alike). On a job
//! of one host the shared segment of `node.rs` takes these calls first; the flat algorithms serve
//! jobs across hosts and `MPR_NODE_COLL=0`.
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

use super::tag;
use crate::comm::Comm;
use crate::engine::schedule::{Loc, Local, Round};
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
    pub(crate) fn flat_barrier_plan(&self) -> Result<Vec<Round>> {
        let n = self.size();
        let (up, down) = (self.coll_tag(tag::BARRIER), self.coll_tag(tag::BARRIER + 1));
        let none = (Loc::Input(0, 0), Loc::Scratch(0, 0));
        Ok(if self.rank() == 0 {
            let others = (1..n)
                .map(|r| self.world_rank(r))
                .collect::<Result<Vec<_>>>()?;
            vec![
                Round {
                    recvs: others.iter().map(|&w| (w, up, none.1)).collect(),
                    ..Round::default()
                },
                Round {
                    sends: others.iter().map(|&w| (w, down, none.0)).collect(),
                    ..Round::default()
                },
            ]
        } else {
            let root = self.world_rank(0)?;
            vec![
                Round {
                    sends: vec![(root, up, none.0)],
                    ..Round::default()
                },
                Round {
                    recvs: vec![(root, down, none.1)],
                    ..Round::default()
                },
            ]
        })
    }

    /// Allreduce: rank 0 gathers the vectors into its scratch, folds them into its output in
    /// rank order, and sends the result. `rounds` already holds the copy of the input into the
    /// output; returns the rounds and the scratch they use.
    pub(crate) fn flat_allreduce_plan(
        &self,
        mut rounds: Vec<Round>,
        len: usize,
    ) -> Result<(Vec<Round>, usize)> {
        let n = self.size();
        let tag = self.coll_tag(tag::ALLREDUCE);
        let out = Loc::Output(0, len);
        if self.rank() != 0 {
            let root = self.world_rank(0)?;
            rounds.push(Round {
                sends: vec![(root, tag, out)],
                ..Round::default()
            });
            rounds.push(Round {
                recvs: vec![(root, tag, out)],
                ..Round::default()
            });
            return Ok((rounds, 0));
        }
        let slot = |r: usize| Loc::Scratch((r - 1) * len, len);
        let mut gather = Round::default();
        for r in 1..n {
            gather.recvs.push((self.world_rank(r)?, tag, slot(r)));
            gather.then.push(Local::Combine {
                acc: out,
                x: slot(r),
                x_lower: false,
            });
        }
        rounds.push(gather);
        let sends = (1..n)
            .map(|r| Ok((self.world_rank(r)?, tag, out)))
            .collect::<Result<Vec<_>>>()?;
        rounds.push(Round {
            sends,
            ..Round::default()
        });
        Ok((rounds, (n - 1) * len))
    }
}
