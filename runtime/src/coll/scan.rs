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

use super::op::{builtin, Combiner, Op, Reduce};
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
        self.agree(
            super::check::Signature::of("exscan")
                .op(Some(op))
                .elems::<T>(send.len()),
        )?;
        let f = builtin::<T>(op, self.par_reduce())?;
        expect_len("exscan", recv.len(), send.len())?;
        self.prefix(send, recv, &*f, false)
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
        self.agree(
            super::check::Signature::of("reduce_scatter_block")
                .op(Some(op))
                .elems::<T>(recv.len()),
        )?;
        self.begin_coll();
        let f = builtin::<T>(op, self.par_reduce())?;
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
