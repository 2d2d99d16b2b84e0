//! Broadcast.
//!
//! **Binomial tree**: with ranks renumbered relative to the root, rank `r` receives from
//! `r - 2^k` where `2^k` is its lowest set bit, then sends to `r + 2^j` for every `2^j` below
//! that bit (largest first, so the farthest subtrees start earliest). ceil(log2 n) rounds, each
//! message whole. Large messages will get scatter + ring allgather (issue 4's list); the tree is
//! what MPICH uses below 12 KiB and is correct at every size.

use bytemuck::Pod;

use super::{bytes, bytes_mut, tag};
use crate::comm::Comm;
use crate::error::Result;

impl Comm {
    /// Sends `buf` of rank `root` to every rank, into their `buf` (same length everywhere).
    pub fn broadcast<T: Pod>(&self, buf: &mut [T], root: usize) -> Result<()> {
        self.begin_coll();

        self.check_root(root)?;
        let n = self.size();
        let r = (self.rank() + n - root) % n;
        let abs = |rel: usize| (rel + root) % n;
        let mut mask = 1;
        while mask < n {
            if r & mask != 0 {
                self.coll_xchg(tag::BCAST, &[], &mut [(abs(r - mask), bytes_mut(buf))])?;
                break;
            }
            mask <<= 1;
        }
        mask >>= 1;
        let mut children = Vec::new();
        while mask > 0 {
            if r + mask < n {
                children.push(abs(r + mask));
            }
            mask >>= 1;
        }
        let data = bytes(buf);
        let sends: Vec<(usize, &[u8])> = children.into_iter().map(|c| (c, data)).collect();
        self.coll_xchg(tag::BCAST, &sends, &mut [])
    }
}
