//! Barrier.
//!
//! **Dissemination** (Hensgen, Finkel, Manber 1988): in round `k` (k = 0, 1, ... while 2^k < n)
//! each rank sends an empty message to `rank + 2^k` and receives one from `rank - 2^k` (mod n).
//! After ceil(log2 n) rounds every rank has heard, directly or through others, from every rank,
//! so none leaves before all have arrived. Works for any n, power of two or not. The round number
//! is the tag; within one barrier each round's partner is distinct, and successive barriers' messages
//! between a pair arrive in order, so rounds never mix.

use super::tag;
use crate::comm::Comm;
use crate::engine::schedule::{Loc, Round, Schedule};
use crate::error::Result;
use crate::scope::{Request, Scope};

impl Comm {
    /// Blocks until every rank of the communicator has called `barrier`.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// world.barrier()?; // every rank starts the timed part together
    /// let t0 = mpr::wtime();
    /// // ... the work being timed ...
    /// world.barrier()?;
    /// if world.rank() == 0 {
    ///     println!("{:.3} s", mpr::wtime() - t0);
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn barrier(&self) -> Result<()> {
        let _seen = self.seen("barrier", 0);
        self.agree(super::check::Signature::of("barrier"))?;
        if self.use_node(0)? {
            self.algorithm("node_segment");
            return self.node_barrier();
        }
        self.begin_coll();
        let rounds = self.barrier_plan()?;
        self.engine
            .borrow_mut()
            .run_rounds(self.coll_ctx(), &[], &mut [], 0, rounds, None)
    }

    /// Starts a barrier; the request completes once every rank has started it.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let mut b = world.ibarrier(s)?;
    ///     while b.test()?.is_none() {
    ///         // ... useful work until every rank has arrived ...
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn ibarrier<'scope>(&self, s: &'scope Scope<'scope, '_>) -> Result<Request<'scope>> {
        let _seen = self.seen("ibarrier", 0);
        self.agree(super::check::Signature::of("ibarrier"))?;
        self.begin_coll();
        let rounds = self.barrier_plan()?;
        let ctx = self.coll_ctx();
        s.start_coll(self, &[], &mut [], |i, o| {
            Schedule::new(ctx, i, o, 0, rounds, None)
        })
    }

    /// The rounds of a barrier: dissemination, or flat when it applies.
    fn barrier_plan(&self) -> Result<Vec<Round>> {
        if self.use_flat(0) {
            self.algorithm("flat");
            return self.flat_barrier_plan();
        }
        self.algorithm("dissemination");
        let (n, me) = (self.size(), self.rank());
        let mut rounds = Vec::new();
        let (mut dist, mut round) = (1, 0u32);
        while dist < n {
            let tag = self.coll_tag(tag::BARRIER + round);
            rounds.push(Round {
                sends: vec![(self.world_rank((me + dist) % n)?, tag, Loc::Input(0, 0))],
                recvs: vec![(
                    self.world_rank((me + n - dist) % n)?,
                    tag,
                    Loc::Scratch(0, 0),
                )],
                then: Vec::new(),
            });
            dist *= 2;
            round += 1;
        }
        Ok(rounds)
    }
}
