//! Broadcast.
//!
//! **Binomial tree**: with ranks renumbered relative to the root, rank `r` receives from
//! `r - 2^k` where `2^k` is its lowest set bit, then sends to `r + 2^j` for every `2^j` below
//! that bit (largest first, so the farthest subtrees start earliest). ceil(log2 n) rounds, each
//! message whole. Large messages will get scatter + ring allgather (issue 4's list); the tree is
//! what MPICH uses below 12 KiB and is correct at every size.

use bytemuck::Pod;

use super::{bytes_mut, tag};
use crate::comm::Comm;
use crate::engine::schedule::{Loc, Round, Schedule};
use crate::error::Result;
use crate::scope::{Request, Scope};

impl Comm {
    /// Sends `buf` of rank `root` to every rank, into their `buf` (same length everywhere).
    pub fn broadcast<T: Pod>(&self, buf: &mut [T], root: usize) -> Result<()> {
        self.check_root(root)?;
        self.begin_coll();
        let rounds = self.bcast_plan(std::mem::size_of_val(buf), root)?;
        self.engine
            .borrow_mut()
            .run_rounds(self.coll_ctx(), &[], bytes_mut(buf), 0, rounds, None)
    }

    /// Starts a broadcast of `buf` from `root`; the request completes with it.
    pub fn ibroadcast<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope mut [T],
        root: usize,
    ) -> Result<Request<'scope>> {
        self.check_root(root)?;
        self.begin_coll();
        let rounds = self.bcast_plan(std::mem::size_of_val(buf), root)?;
        let ctx = self.coll_ctx();
        s.start_coll(self, &[], bytes_mut(buf), |i, o| {
            Schedule::new(ctx, i, o, 0, rounds, None)
        })
    }

    /// The rounds of a binomial broadcast of `len` bytes: receive from the parent, then send to
    /// every child at once.
    fn bcast_plan(&self, len: usize, root: usize) -> Result<Vec<Round>> {
        let n = self.size();
        let r = (self.rank() + n - root) % n;
        let abs = |rel: usize| self.world_rank((rel + root) % n);
        let tag = self.coll_tag(tag::BCAST);
        let all = Loc::Output(0, len);
        let mut rounds = Vec::new();
        let mut mask = 1;
        while mask < n {
            if r & mask != 0 {
                rounds.push(Round {
                    recvs: vec![(abs(r - mask)?, tag, all)],
                    ..Round::default()
                });
                break;
            }
            mask <<= 1;
        }
        mask >>= 1;
        let mut sends = Vec::new();
        while mask > 0 {
            if r + mask < n {
                sends.push((abs(r + mask)?, tag, all));
            }
            mask >>= 1;
        }
        rounds.push(Round {
            sends,
            ..Round::default()
        });
        Ok(rounds)
    }
}
