//! Gather, scatter, allgather.
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

use super::{bytes, bytes_mut, expect_len, tag, two_blocks};
use crate::comm::Comm;
use crate::error::Result;

impl Comm {
    /// Collects every rank's `send` at `root`, in rank order: there `recv.len()` must be
    /// `size() * send.len()` (elsewhere `recv` is not used and may be empty).
    pub fn gather<T: Pod>(&self, send: &[T], recv: &mut [T], root: usize) -> Result<()> {
        self.begin_coll();
        self.check_root(root)?;
        let (n, me, bs) = (self.size(), self.rank(), send.len());
        if me != root {
            return self.coll_xchg(tag::GATHER, &[(root, bytes(send))], &mut []);
        }
        expect_len("gather", recv.len(), n * bs)?;
        let mut blocks: Vec<(usize, &mut [u8])> = Vec::with_capacity(n);
        for (r, block) in recv.chunks_mut(bs.max(1)).enumerate().take(n) {
            if r == me {
                block.copy_from_slice(send);
            } else {
                blocks.push((r, bytes_mut(block)));
            }
        }
        if bs == 0 {
            // Zero-length blocks: still one (empty) message per rank, so lengths are checked.
            let mut empties: Vec<[u8; 0]> = vec![[]; n];
            let mut v: Vec<(usize, &mut [u8])> = empties
                .iter_mut()
                .enumerate()
                .filter(|&(r, _)| r != me)
                .map(|(r, e)| (r, &mut e[..]))
                .collect();
            return self.coll_xchg(tag::GATHER, &[], &mut v);
        }
        self.coll_xchg(tag::GATHER, &[], &mut blocks)
    }

    /// Hands block `i` of `send` at `root` to rank `i`, into its `recv`: at the root
    /// `send.len()` must be `size() * recv.len()` (elsewhere `send` is not used).
    pub fn scatter<T: Pod>(&self, send: &[T], recv: &mut [T], root: usize) -> Result<()> {
        self.begin_coll();
        self.check_root(root)?;
        let (n, me, bs) = (self.size(), self.rank(), recv.len());
        if me != root {
            return self.coll_xchg(tag::SCATTER, &[], &mut [(root, bytes_mut(recv))]);
        }
        expect_len("scatter", send.len(), n * bs)?;
        let sends: Vec<(usize, &[u8])> = (0..n)
            .filter(|&r| r != me)
            .map(|r| (r, bytes(&send[r * bs..(r + 1) * bs])))
            .collect();
        recv.copy_from_slice(&send[me * bs..(me + 1) * bs]);
        self.coll_xchg(tag::SCATTER, &sends, &mut [])
    }

    /// Every rank gets every rank's `send`, in rank order: `recv.len()` must be
    /// `size() * send.len()`.
    pub fn allgather<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        self.begin_coll();
        let (n, me, bs) = (self.size(), self.rank(), send.len());
        expect_len("allgather", recv.len(), n * bs)?;
        recv[me * bs..(me + 1) * bs].copy_from_slice(send);
        let (right, left) = ((me + 1) % n, (me + n - 1) % n);
        for step in 0..n.saturating_sub(1) {
            let s = (me + n - step) % n; // the block we pass on
            let r = (me + n - step - 1) % n; // the block we get
            let (out, inb) = two_blocks(recv, s, r, bs);
            self.coll_xchg(
                tag::ALLGATHER,
                &[(right, bytes(out))],
                &mut [(left, bytes_mut(inb))],
            )?;
        }
        Ok(())
    }
}
