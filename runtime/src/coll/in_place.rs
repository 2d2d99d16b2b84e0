//! In-place forms (MPI's `MPI_IN_PLACE`): one buffer is both the contribution and the result,
//! which `allreduce(&v, &mut v, ..)` cannot say in Rust (a shared and a mutable borrow of `v`).
//!
//! Each takes a copy of this rank's contribution and runs the collective from the copy into the
//! buffer: one local copy of the contribution (a `memcpy`, small next to the messages), and
//! every algorithm of the two-buffer form unchanged. A rank calling the in-place form matches
//! ranks calling the two-buffer form of the same collective, as in MPI.

use bytemuck::Pod;

use super::op::{Op, Reduce};
use crate::comm::Comm;
use crate::error::{Error, Result};

impl Comm {
    /// [`Comm::allreduce`] with `buf` as both the contribution and the result.
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// let mut v = vec![1.0f64, world.rank() as f64];
    /// world.allreduce_in_place(&mut v, Op::Sum)?;
    /// assert_eq!(v[0], world.size() as f64);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn allreduce_in_place<T: Reduce>(&self, buf: &mut [T], op: Op) -> Result<()> {
        let _seen = self.seen("allreduce", std::mem::size_of_val(buf));
        let mine = buf.to_vec();
        self.allreduce(&mine, buf, op)
    }

    /// [`Comm::allreduce_with`] in place.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let mut v = [world.rank() as u32];
    /// world.allreduce_in_place_with(&mut v, |a: &u32, b: &u32| *a.max(b))?;
    /// assert_eq!(v[0], world.size() as u32 - 1);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn allreduce_in_place_with<T: Pod>(
        &self,
        buf: &mut [T],
        f: impl Fn(&T, &T) -> T,
    ) -> Result<()> {
        let _seen = self.seen("allreduce", std::mem::size_of_val(buf));
        let mine = buf.to_vec();
        self.allreduce_with(&mine, buf, f)
    }

    /// [`Comm::reduce`] in place: at the root `buf` is the contribution and then the result;
    /// elsewhere it is only read.
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// let mut v = [world.rank() as u64 + 1];
    /// world.reduce_in_place(&mut v, Op::Prod, 0)?;
    /// if world.rank() == 0 {
    ///     assert_eq!(v[0], (1..=world.size() as u64).product::<u64>());
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn reduce_in_place<T: Reduce>(&self, buf: &mut [T], op: Op, root: usize) -> Result<()> {
        let _seen = self.seen("reduce", std::mem::size_of_val(buf));
        if self.rank() == root {
            let mine = buf.to_vec();
            self.reduce(&mine, buf, op, root)
        } else {
            self.reduce(buf, &mut [], op, root)
        }
    }

    /// [`Comm::allgather`] in place: `buf` holds `size()` blocks, of which this rank's own
    /// (block `rank()`) is its contribution; the others are filled in.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let mut all = vec![0u16; 2 * size];
    /// all[2 * rank..2 * rank + 2].copy_from_slice(&[rank as u16, 7]);
    /// world.allgather_in_place(&mut all)?;
    /// assert_eq!(all[2 * (size - 1)], size as u16 - 1);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn allgather_in_place<T: Pod>(&self, buf: &mut [T]) -> Result<()> {
        let _seen = self.seen("allgather", std::mem::size_of_val(buf));
        let (n, me) = (self.size(), self.rank());
        let bs = blocks_of("allgather_in_place", buf.len(), n)?;
        let mine = buf[me * bs..(me + 1) * bs].to_vec();
        self.allgather(&mine, buf)
    }

    /// [`Comm::alltoall`] in place: block `i` of `buf` goes to rank `i` and is replaced by
    /// rank `i`'s block for this rank.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let mut m: Vec<u32> = (0..size as u32).map(|j| 10 * rank as u32 + j).collect();
    /// world.alltoall_in_place(&mut m)?; // a transpose of the matrix with one row per rank
    /// assert_eq!(m[0], rank as u32);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn alltoall_in_place<T: Pod>(&self, buf: &mut [T]) -> Result<()> {
        let _seen = self.seen("alltoall", std::mem::size_of_val(buf));
        blocks_of("alltoall_in_place", buf.len(), self.size())?;
        let mine = buf.to_vec();
        self.alltoall(&mine, buf)
    }

    /// [`Comm::scan`] in place.
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// let mut v = [1i64];
    /// world.scan_in_place(&mut v, Op::Sum)?;
    /// assert_eq!(v[0], world.rank() as i64 + 1);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn scan_in_place<T: Reduce>(&self, buf: &mut [T], op: Op) -> Result<()> {
        let _seen = self.seen("scan", std::mem::size_of_val(buf));
        let mine = buf.to_vec();
        self.scan(&mine, buf, op)
    }

    /// [`Comm::exscan`] in place (rank 0's `buf` keeps its contribution: nothing comes before it).
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// let mut offset = [10u64]; // each rank owns 10 items; where do mine start?
    /// world.exscan_in_place(&mut offset, Op::Sum)?;
    /// if world.rank() > 0 {
    ///     assert_eq!(offset[0], 10 * world.rank() as u64);
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn exscan_in_place<T: Reduce>(&self, buf: &mut [T], op: Op) -> Result<()> {
        let _seen = self.seen("exscan", std::mem::size_of_val(buf));
        let mine = buf.to_vec();
        self.exscan(&mine, buf, op)
    }
}

/// The block length of a buffer of `len` elements split among `n` ranks.
fn blocks_of(what: &'static str, len: usize, n: usize) -> Result<usize> {
    if len % n != 0 {
        return Err(Error::InvalidArgument {
            what,
            detail: format!("{len} elements do not split into {n} equal blocks"),
        });
    }
    Ok(len / n)
}
