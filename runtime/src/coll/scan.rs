//! Prefix reductions (scan, exscan) and reduce-scatter.
//!
//! **Scan / exscan: recursive doubling** (Hillis and Steele): in round `k` each rank exchanges
//! its partial reduction of a block of 2^k ranks with the rank `2^k` apart (`rank ^ 2^k`); a
//! rank folds in what comes from below into its result. ceil(log2 n) rounds. Contributions are
//! combined lower ranks first.
//!
//! **Reduce-scatter (block): pairwise exchange.** In step `s` each rank sends to `rank + s` its
//! contribution to that rank's block and receives from `rank - s` a contribution to its own,
//! which it folds in. n - 1 steps, each moving one block: bandwidth-optimal, and no rank ever
//! holds more than its block and one incoming block.

use bytemuck::Pod;

use super::op::{builtin, user, Combiner, Op, Reduce};
use super::{bytes, bytes_mut, expect_len, tag};
use crate::comm::Comm;
use crate::error::{Error, Result};

const SCAN: u32 = tag::ALLREDUCE + 0x100;
const REDUCE_SCATTER: u32 = tag::ALLREDUCE + 0x200;

impl Comm {
    /// Inclusive prefix reduction: rank `r` gets `send` of ranks `0..=r` combined with `op`.
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// let rank = world.rank() as u64;
    /// let mut upto = [0u64];
    /// world.scan(&[rank + 1], &mut upto, Op::Sum)?; // 1 + 2 + ... + (rank + 1)
    /// assert_eq!(upto[0], (rank + 1) * (rank + 2) / 2);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn scan<T: Reduce>(&self, send: &[T], recv: &mut [T], op: Op) -> Result<()> {
        let _seen = self.seen("scan", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("scan")
                .op(Some(op))
                .elems::<T>(send.len()),
        )?;
        let f = builtin::<T>(op, self.par_reduce())?;
        expect_len("scan", recv.len(), send.len())?;
        self.prefix(send, recv, &*f, true)
    }

    /// Exclusive prefix reduction: rank `r` gets `send` of ranks `0..r` combined with `op`;
    /// rank 0's `recv` is left as it was (there is nothing before it).
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// // Where this rank's items start in a global numbering: the sum of the counts before it.
    /// let my_count = 100 + world.rank() as u64;
    /// let mut offset = [0u64]; // rank 0 keeps its own value (0 here): nothing comes before it
    /// world.exscan(&[my_count], &mut offset, Op::Sum)?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn exscan<T: Reduce>(&self, send: &[T], recv: &mut [T], op: Op) -> Result<()> {
        let _seen = self.seen("exscan", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("exscan")
                .op(Some(op))
                .elems::<T>(send.len()),
        )?;
        let f = builtin::<T>(op, self.par_reduce())?;
        expect_len("exscan", recv.len(), send.len())?;
        self.prefix(send, recv, &*f, false)
    }

    /// [`Comm::scan`] with a user operation: associative, applied lower ranks first (so it
    /// need not be commutative).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// // A running product of 2x2 matrices, in rank order: associative, not commutative.
    /// let m = [[1u64, world.rank() as u64], [0, 1]];
    /// let mul = |a: &[[u64; 2]; 2], b: &[[u64; 2]; 2]| {
    ///     let c = |i: usize, j: usize| a[i][0] * b[0][j] + a[i][1] * b[1][j];
    ///     [[c(0, 0), c(0, 1)], [c(1, 0), c(1, 1)]]
    /// };
    /// let mut upto = [[[0u64; 2]; 2]];
    /// world.scan_with(&[m], &mut upto, mul)?;
    /// let r = world.rank() as u64;
    /// assert_eq!(upto[0][0][1], r * (r + 1) / 2); // 0 + 1 + ... + r
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn scan_with<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        f: impl Fn(&T, &T) -> T,
    ) -> Result<()> {
        let _seen = self.seen("scan", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("scan_with")
                .op(None)
                .elems::<T>(send.len()),
        )?;
        expect_len("scan_with", recv.len(), send.len())?;
        self.prefix(send, recv, &user(f), true)
    }

    /// [`Comm::exscan`] with a user operation (associative, lower ranks first).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let mut before = [0u32]; // rank 0's is left as it was
    /// world.exscan_with(&[world.rank() as u32 % 3], &mut before, |a: &u32, b: &u32| a.max(b).to_owned())?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn exscan_with<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        f: impl Fn(&T, &T) -> T,
    ) -> Result<()> {
        let _seen = self.seen("exscan", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("exscan_with")
                .op(None)
                .elems::<T>(send.len()),
        )?;
        expect_len("exscan_with", recv.len(), send.len())?;
        self.prefix(send, recv, &user(f), false)
    }

    fn prefix<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        f: Combiner<T>,
        inclusive: bool,
    ) -> Result<()> {
        self.begin_coll();
        let (n, me) = (self.size(), self.rank());
        let mut partial = send.to_vec();
        let mut tmp = vec![T::zeroed(); send.len()];
        let mut have = inclusive;
        if inclusive {
            recv.copy_from_slice(send);
        }
        let mut mask = 1;
        while mask < n {
            let partner = me ^ mask;
            if partner < n {
                self.coll_xchg(
                    SCAN,
                    &[(partner, bytes(&partial))],
                    &mut [(partner, bytes_mut(&mut tmp))],
                )?;
                if partner < me {
                    f(&mut partial, &tmp, true)?;
                    if have {
                        f(recv, &tmp, true)?;
                    } else {
                        recv.copy_from_slice(&tmp);
                        have = true;
                    }
                } else {
                    f(&mut partial, &tmp, false)?;
                }
            }
            mask <<= 1;
        }
        Ok(())
    }

    /// Combines every rank's `send` (`size()` blocks of `recv.len()` elements) with `op` and
    /// leaves block `r` of the result at rank `r`.
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// let size = world.size();
    /// // Every rank holds a contribution to all of a vector of 4 * size; each keeps its 4 summed.
    /// let contrib = vec![1i64; 4 * size];
    /// let mut mine = [0i64; 4];
    /// world.reduce_scatter_block(&contrib, &mut mine, Op::Sum)?;
    /// assert_eq!(mine, [size as i64; 4]);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn reduce_scatter_block<T: Reduce>(
        &self,
        send: &[T],
        recv: &mut [T],
        op: Op,
    ) -> Result<()> {
        let _seen = self.seen("reduce_scatter_block", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("reduce_scatter_block")
                .op(Some(op))
                .elems::<T>(recv.len()),
        )?;
        let f = builtin::<T>(op, self.par_reduce())?;
        self.reduce_scatter_impl(send, recv, &*f)
    }

    /// [`Comm::reduce_scatter_block`] with a user operation (associative and commutative).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let size = world.size();
    /// let votes: Vec<u8> = (0..size).map(|i| (i + world.rank()) as u8 % 2).collect();
    /// let mut any = [0u8];
    /// world.reduce_scatter_block_with(&votes, &mut any, |a: &u8, b: &u8| a | b)?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn reduce_scatter_block_with<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        f: impl Fn(&T, &T) -> T,
    ) -> Result<()> {
        let _seen = self.seen("reduce_scatter_block", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("reduce_scatter_block_with")
                .op(None)
                .elems::<T>(recv.len()),
        )?;
        self.reduce_scatter_impl(send, recv, &user(f))
    }

    fn reduce_scatter_impl<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        f: Combiner<T>,
    ) -> Result<()> {
        self.begin_coll();
        let (n, me, bs) = (self.size(), self.rank(), recv.len());
        if send.len() != n * bs {
            return Err(Error::InvalidArgument {
                what: "reduce_scatter_block",
                detail: format!(
                    "send has {} elements, {} blocks of {bs} expected",
                    send.len(),
                    n
                ),
            });
        }
        recv.copy_from_slice(&send[me * bs..(me + 1) * bs]);
        let mut tmp = vec![T::zeroed(); bs];
        for step in 1..n {
            let to = (me + step) % n;
            let from = (me + n - step) % n;
            self.coll_xchg(
                REDUCE_SCATTER,
                &[(to, bytes(&send[to * bs..(to + 1) * bs]))],
                &mut [(from, bytes_mut(&mut tmp))],
            )?;
            f(recv, &tmp, false)?;
        }
        Ok(())
    }
}
