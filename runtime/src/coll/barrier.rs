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
use crate::error::Result;

impl Comm {
    /// Blocks until every rank of the communicator has called `barrier`.
    pub fn barrier(&self) -> Result<()> {
        self.begin_coll();
        if self.use_flat(0) {
            return self.flat_barrier();
        }
        let (n, me) = (self.size(), self.rank());
        let mut dist = 1;
        let mut round = 0u32;
        while dist < n {
            let (to, from) = ((me + dist) % n, (me + n - dist) % n);
            self.coll_xchg(tag::BARRIER + round, &[(to, &[])], &mut [(from, &mut [])])?;
            dist *= 2;
            round += 1;
        }
        Ok(())
    }
}
