//! Gather, scatter, allgather.
//!
//! These are the v-variants (`vector.rs`) with equal counts.
//!
//! **Gather / scatter: direct.** The root posts all of its receives (sends) at once and the
//! engine moves them together; the others make one send (receive). n - 1 messages at the root,
//! one round. (Binomial trees, which cut the root's message count to log2 n for small blocks,
//! are in issue 4's list.)
//!
//! **Allgather: ring.** In step `s` (1..n) each rank sends to its right neighbour the block it
//! received in the previous step (its own at first) and receives the next from its left: n - 1
//! steps, each moving one block per rank, which is bandwidth-optimal for large blocks.

use bytemuck::Pod;

use super::expect_len;
use crate::comm::Comm;
use crate::error::Result;

impl Comm {
    /// Collects every rank's `send` at `root`, in rank order: there `recv.len()` must be
    /// `size() * send.len()` (elsewhere `recv` is not used and may be empty).
    pub fn gather<T: Pod>(&self, send: &[T], recv: &mut [T], root: usize) -> Result<()> {
        self.check_root(root)?;
        let n = self.size();
        if self.rank() == root {
            expect_len("gather", recv.len(), n * send.len())?;
        }
        self.gatherv(send, recv, &vec![send.len(); n], root)
    }

    /// Hands block `i` of `send` at `root` to rank `i`, into its `recv`: at the root
    /// `send.len()` must be `size() * recv.len()` (elsewhere `send` is not used).
    pub fn scatter<T: Pod>(&self, send: &[T], recv: &mut [T], root: usize) -> Result<()> {
        self.check_root(root)?;
        let n = self.size();
        if self.rank() == root {
            expect_len("scatter", send.len(), n * recv.len())?;
        }
        self.scatterv(send, &vec![recv.len(); n], recv, root)
    }

    /// Every rank gets every rank's `send`, in rank order: `recv.len()` must be
    /// `size() * send.len()`.
    pub fn allgather<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        let n = self.size();
        expect_len("allgather", recv.len(), n * send.len())?;
        self.allgatherv(send, recv, &vec![send.len(); n])
    }
}
