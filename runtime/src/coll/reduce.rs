//! Reduce (allreduce is in `allreduce.rs`).
//!
//! **Reduce: binomial tree** toward the root (ranks renumbered relative to it): in round `k`, a
//! rank whose bit `k` is set sends its partial result to `r - 2^k` and is done; the others
//! receive from `r + 2^k` (if it exists) and combine. The lower rank's data always goes first.

use bytemuck::Pod;

use super::op::{builtin, user, Combiner, Op, Reduce};
use super::{bytes, bytes_mut, expect_len, tag};
use crate::comm::Comm;
use crate::error::Result;

impl Comm {
    /// Combines every rank's `send` element-wise with `op` into `recv` at `root` (`recv` is only
    /// used at the root, where it must have `send.len()` elements; elsewhere it may be empty).
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// let (rank, n) = (world.rank(), world.size() as u64);
    /// let mut total = [0u64]; // read at the root only: the other ranks may pass &mut []
    /// world.reduce(&[rank as u64 + 1], &mut total, Op::Sum, 0)?;
    /// if rank == 0 {
    ///     assert_eq!(total[0], n * (n + 1) / 2);
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn reduce<T: Reduce>(&self, send: &[T], recv: &mut [T], op: Op, root: usize) -> Result<()> {
        let _seen = self.seen("reduce", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("reduce")
                .root(root)
                .op(Some(op))
                .elems::<T>(send.len()),
        )?;
        let f = builtin::<T>(op, self.par_reduce())?;
        self.reduce_impl(send, recv, &*f, root)
    }

    /// [`Comm::reduce`] with a user operation, which must be associative and commutative.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let rank = world.rank();
    /// let local_max = (rank as f64 * 0.7).sin();
    /// // The largest value and the rank that holds it (MPI_MAXLOC), as [value, rank] pairs.
    /// let mut best = [[0.0f64; 2]];
    /// // Ties go to the lower rank, so the operation is commutative as it must be.
    /// let better = |a: &[f64; 2], b: &[f64; 2]| if (b[0], -b[1]) > (a[0], -a[1]) { *b } else { *a };
    /// world.reduce_with(&[[local_max, rank as f64]], &mut best, better, 0)?;
    /// if rank == 0 {
    ///     println!("max {} on rank {}", best[0][0], best[0][1]);
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn reduce_with<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        f: impl Fn(&T, &T) -> T,
        root: usize,
    ) -> Result<()> {
        let _seen = self.seen("reduce", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("reduce_with")
                .root(root)
                .op(None)
                .elems::<T>(send.len()),
        )?;
        self.reduce_impl(send, recv, &user(f), root)
    }

    fn reduce_impl<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        f: Combiner<T>,
        root: usize,
    ) -> Result<()> {
        self.begin_coll();
        self.check_root(root)?;
        let n = self.size();
        let me = self.rank();
        if me == root {
            expect_len("reduce", recv.len(), send.len())?;
        }
        let r = (me + n - root) % n;
        let abs = |rel: usize| (rel + root) % n;
        let mut acc = send.to_vec();
        let mut tmp = vec![T::zeroed(); send.len()];
        let mut mask = 1;
        while mask < n {
            if r & mask != 0 {
                self.coll_xchg(tag::REDUCE, &[(abs(r - mask), bytes(&acc))], &mut [])?;
                break;
            }
            if r + mask < n {
                self.coll_xchg(
                    tag::REDUCE,
                    &[],
                    &mut [(abs(r + mask), bytes_mut(&mut tmp))],
                )?;
                // The partner's subtree holds higher relative ranks. Relative order is the
                // rank order rotated by the root; every caller sees the same rotation.
                f(&mut acc, &tmp, false)?;
            }
            mask <<= 1;
        }
        if me == root {
            recv.copy_from_slice(&acc);
        }
        Ok(())
    }
}
