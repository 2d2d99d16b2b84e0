//! Gather, scatter, allgather.
//!
//! These are the v-variants (`vector.rs`) with equal counts.
//!
//! **Gather / scatter: direct.** The root posts all of its receives (sends) at once and the
//! engine moves them together; the others make one send (receive). n - 1 messages at the root,
//! one round. (Binomial trees, which cut the root's message count to log2 n for small blocks,
//! are in issue 4's list.)
//!
//! **Allgather: Bruck** for small totals (up to 64 KiB): ceil(log2 n) rounds; **ring** above.
//!
//! **Ring:** In step `s` (1..n) each rank sends to its right neighbour the block it
//! received in the previous step (its own at first) and receives the next from its left: n - 1
//! steps, each moving one block per rank, which is bandwidth-optimal for large blocks.

use bytemuck::Pod;

use super::{bytes, bytes_mut, expect_len, tag};
use crate::comm::Comm;
use crate::error::Result;

/// Allgathers of at most this many bytes in all use Bruck's algorithm (log2 n rounds) instead
/// of the ring (n - 1 rounds): few rounds matter more than volume for small blocks.
const BRUCK_BYTES: usize = 64 << 10;

impl Comm {
    /// Collects every rank's `send` at `root`, in rank order: there `recv.len()` must be
    /// `size() * send.len()` (elsewhere `recv` is not used and may be empty).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let mine = [rank as u32, 2 * rank as u32];
    /// // Only the root needs room for everything; the others pass an empty buffer.
    /// let mut all = if rank == 0 { vec![0u32; 2 * size] } else { Vec::new() };
    /// world.gather(&mine, &mut all, 0)?;
    /// if rank == 0 {
    ///     assert_eq!(all[..2], [0, 0]);
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn gather<T: Pod>(&self, send: &[T], recv: &mut [T], root: usize) -> Result<()> {
        let _seen = self.seen("gather", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("gather")
                .root(root)
                .elems::<T>(send.len()),
        )?;
        self.check_root(root)?;
        let n = self.size();
        if self.rank() != root {
            return self.gatherv(send, recv, &[], root); // non-roots need no counts
        }
        expect_len("gather", recv.len(), n * send.len())?;
        self.gatherv(send, recv, &vec![send.len(); n], root)
    }

    /// Hands block `i` of `send` at `root` to rank `i`, into its `recv`: at the root
    /// `send.len()` must be `size() * recv.len()` (elsewhere `send` is not used).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// // The root holds size blocks of 3; block i goes to rank i.
    /// let work: Vec<f64> = if rank == 0 { (0..3 * size).map(|i| i as f64).collect() } else { Vec::new() };
    /// let mut mine = [0.0f64; 3];
    /// world.scatter(&work, &mut mine, 0)?;
    /// assert_eq!(mine[0], (3 * rank) as f64);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn scatter<T: Pod>(&self, send: &[T], recv: &mut [T], root: usize) -> Result<()> {
        let _seen = self.seen("scatter", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("scatter")
                .root(root)
                .elems::<T>(recv.len()),
        )?;
        self.check_root(root)?;
        let n = self.size();
        if self.rank() != root {
            return self.scatterv(send, &[], recv, root); // non-roots need no counts
        }
        expect_len("scatter", send.len(), n * recv.len())?;
        self.scatterv(send, &vec![recv.len(); n], recv, root)
    }

    /// Every rank gets every rank's `send`, in rank order: `recv.len()` must be
    /// `size() * send.len()`.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let size = world.size();
    /// let mut all = vec![0u64; size];
    /// world.allgather(&[world.rank() as u64 * 10], &mut all)?; // every rank gets every value
    /// assert_eq!(all[size - 1], (size as u64 - 1) * 10);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn allgather<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        let _seen = self.seen("allgather", std::mem::size_of_val(send));
        self.agree(super::check::Signature::of("allgather").elems::<T>(send.len()))?;
        let n = self.size();
        expect_len("allgather", recv.len(), n * send.len())?;
        if std::mem::size_of_val(recv) <= BRUCK_BYTES {
            self.algorithm("bruck");
            return self.bruck_allgather(send, recv);
        }
        self.algorithm("ring");
        self.allgatherv(send, recv, &vec![send.len(); n])
    }

    /// Bruck's allgather: in round k (distance 2^k) each rank sends the blocks it holds to
    /// `rank - 2^k` and receives as many from `rank + 2^k`, so after ceil(log2 n) rounds it
    /// holds all n blocks, rotated by its rank, which a local copy undoes.
    pub(super) fn bruck_allgather<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        self.begin_coll();
        let (n, me, bs) = (self.size(), self.rank(), send.len());
        let mut held = vec![T::zeroed(); n * bs];
        held[..bs].copy_from_slice(send);
        let mut k = 1;
        while k < n {
            let cnt = k.min(n - k);
            let (to, from) = ((me + n - k) % n, (me + k) % n);
            let (have, room) = held.split_at_mut(k * bs);
            self.coll_xchg(
                tag::ALLGATHER + 1,
                &[(to, bytes(&have[..cnt * bs]))],
                &mut [(from, bytes_mut(&mut room[..cnt * bs]))],
            )?;
            k *= 2;
        }
        for i in 0..n {
            let owner = (me + i) % n;
            recv[owner * bs..(owner + 1) * bs].copy_from_slice(&held[i * bs..(i + 1) * bs]);
        }
        Ok(())
    }
}
