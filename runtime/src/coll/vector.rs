//! The v-variants: gather, scatter, allgather and all-to-all with a count per rank.
//!
//! Same algorithms as their fixed-size versions (direct at the root for gatherv/scatterv, ring
//! for allgatherv, pairwise exchange for alltoallv), with each block placed at the prefix sum of
//! the counts before it (blocks packed in rank order, as `MPI_*v` with displacements equal to
//! those prefix sums).

use bytemuck::Pod;

use std::mem::{size_of, size_of_val};

use super::plan::Blocks;
use super::{bytes, bytes_mut, expect_len, tag};
use crate::comm::Comm;
use crate::engine::schedule::Round;
use crate::error::{Error, Result};

/// Offsets of packed blocks: `offs[i]` is where block `i` starts; `offs[n]` is the total.
fn offsets(counts: &[usize]) -> Result<Vec<usize>> {
    let mut offs = Vec::with_capacity(counts.len() + 1);
    let mut total = 0usize;
    offs.push(0);
    for &c in counts {
        total = total.checked_add(c).ok_or_else(|| Error::InvalidArgument {
            what: "counts",
            detail: "the counts add up to more than memory can hold".into(),
        })?;
        offs.push(total);
    }
    Ok(offs)
}

fn counts_for(what: &'static str, counts: &[usize], n: usize) -> Result<Vec<usize>> {
    if counts.len() != n {
        return Err(Error::InvalidArgument {
            what,
            detail: format!("{} counts given for {n} ranks", counts.len()),
        });
    }
    offsets(counts)
}

/// At a rank other than the root, `counts` may be empty; if given, it must be one count per
/// rank and name this rank's length.
fn check_own_count(
    what: &'static str,
    counts: &[usize],
    n: usize,
    me: usize,
    len: usize,
) -> Result<()> {
    if counts.is_empty() {
        return Ok(());
    }
    counts_for(what, counts, n)?;
    expect_len(what, len, counts[me])
}

impl Comm {
    /// Collects `counts[i]` elements from each rank `i` at `root`, packed in rank order into
    /// `recv` (`recv.len()` = the sum of `counts`). `counts` is read at the root; elsewhere it
    /// may be empty, or if given, `counts[rank]` must equal `send.len()`.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// // Rank i contributes i + 1 elements.
    /// let mine = vec![rank as u8; rank + 1];
    /// let counts: Vec<usize> = (1..=size).collect();
    /// let mut all = vec![0u8; counts.iter().sum()];
    /// world.gatherv(&mine, &mut all, &counts, 0)?; // counts and all are read at the root only
    /// if rank == 0 {
    ///     assert_eq!(all.len(), size * (size + 1) / 2);
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn gatherv<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        counts: &[usize],
        root: usize,
    ) -> Result<()> {
        let _seen = self.seen("gatherv", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("gatherv")
                .root(root)
                .elem_type::<T>(),
        )?;
        self.begin_coll();
        self.check_root(root)?;
        let (n, me) = (self.size(), self.rank());
        if me != root {
            check_own_count("gatherv send", counts, n, me, send.len())?;
            return self.coll_xchg(tag::GATHER, &[(root, bytes(send))], &mut []);
        }
        let offs = counts_for("gatherv", counts, n)?;
        expect_len("gatherv recv", recv.len(), offs[n])?;
        expect_len("gatherv send", send.len(), counts[me])?;
        recv[offs[me]..offs[me + 1]].copy_from_slice(send);
        let mut blocks: Vec<(usize, &mut [u8])> = Vec::with_capacity(n);
        let mut rest = recv;
        for (r, &count) in counts.iter().enumerate() {
            let (block, tail) = std::mem::take(&mut rest).split_at_mut(count);
            rest = tail;
            if r != me {
                blocks.push((r, bytes_mut(block)));
            }
        }
        self.coll_xchg(tag::GATHER, &[], &mut blocks)
    }

    /// Hands `counts[i]` elements of `send` (packed in rank order) at `root` to each rank `i`,
    /// into its `recv`. `counts` is read at the root; elsewhere it may be empty, or if given,
    /// `counts[rank]` must equal `recv.len()`.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// // Uneven shares of 10 items: the first 10 % size ranks get one more.
    /// let counts: Vec<usize> = (0..size).map(|r| 10 / size + usize::from(r < 10 % size)).collect();
    /// let items: Vec<i32> = if rank == 0 { (0..10).collect() } else { Vec::new() };
    /// let mut mine = vec![0i32; counts[rank]];
    /// world.scatterv(&items, &counts, &mut mine, 0)?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn scatterv<T: Pod>(
        &self,
        send: &[T],
        counts: &[usize],
        recv: &mut [T],
        root: usize,
    ) -> Result<()> {
        let _seen = self.seen("scatterv", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("scatterv")
                .root(root)
                .elem_type::<T>(),
        )?;
        self.begin_coll();
        self.check_root(root)?;
        let (n, me) = (self.size(), self.rank());
        if me != root {
            check_own_count("scatterv recv", counts, n, me, recv.len())?;
            return self.coll_xchg(tag::SCATTER, &[], &mut [(root, bytes_mut(recv))]);
        }
        let offs = counts_for("scatterv", counts, n)?;
        expect_len("scatterv send", send.len(), offs[n])?;
        expect_len("scatterv recv", recv.len(), counts[me])?;
        recv.copy_from_slice(&send[offs[me]..offs[me + 1]]);
        let sends: Vec<(usize, &[u8])> = (0..n)
            .filter(|&r| r != me)
            .map(|r| (r, bytes(&send[offs[r]..offs[r + 1]])))
            .collect();
        self.coll_xchg(tag::SCATTER, &sends, &mut [])
    }

    /// Every rank gets `counts[i]` elements from each rank `i`, packed in rank order (every rank
    /// passes the same `counts`; `send.len()` = `counts[rank]`).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let counts: Vec<usize> = (0..size).map(|r| r % 3 + 1).collect(); // the same on every rank
    /// let mine = vec![rank as f32; counts[rank]];
    /// let mut all = vec![0.0f32; counts.iter().sum()];
    /// world.allgatherv(&mine, &mut all, &counts)?;
    /// assert_eq!(all[0], 0.0);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn allgatherv<T: Pod>(&self, send: &[T], recv: &mut [T], counts: &[usize]) -> Result<()> {
        let _seen = self.seen("allgatherv", std::mem::size_of_val(send));
        self.agree(super::check::Signature::of("allgatherv").elem_type::<T>())?;
        self.begin_coll();
        let (n, me) = (self.size(), self.rank());
        let offs = counts_for("allgatherv", counts, n)?;
        expect_len("allgatherv recv", recv.len(), offs[n])?;
        expect_len("allgatherv send", send.len(), counts[me])?;
        recv[offs[me]..offs[me + 1]].copy_from_slice(send);
        let (right, left) = ((me + 1) % n, (me + n - 1) % n);
        for step in 0..n.saturating_sub(1) {
            let s = (me + n - step) % n;
            let r = (me + n - step - 1) % n;
            // Blocks s and r are distinct ranges of `recv`, in rank order (either may be empty).
            let (out, inb) = if s < r {
                let (a, b) = recv.split_at_mut(offs[r]);
                (&a[offs[s]..offs[s + 1]], &mut b[..counts[r]])
            } else {
                let (a, b) = recv.split_at_mut(offs[s]);
                (&b[..counts[s]], &mut a[offs[r]..offs[r + 1]])
            };
            self.coll_xchg(
                tag::ALLGATHER,
                &[(right, bytes(out))],
                &mut [(left, bytes_mut(inb))],
            )?;
        }
        Ok(())
    }

    /// `send_counts[i]` elements of `send` (packed in rank order) go to rank `i`;
    /// `recv_counts[j]` elements from rank `j` land packed in rank order in `recv`.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// // Rank r sends r + 1 elements to every rank, so it receives j + 1 from each rank j.
    /// let send_counts = vec![rank + 1; size];
    /// let recv_counts: Vec<usize> = (1..=size).collect();
    /// let send = vec![rank as u16; (rank + 1) * size];
    /// let mut recv = vec![0u16; recv_counts.iter().sum()];
    /// world.alltoallv(&send, &send_counts, &mut recv, &recv_counts)?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn alltoallv<T: Pod>(
        &self,
        send: &[T],
        send_counts: &[usize],
        recv: &mut [T],
        recv_counts: &[usize],
    ) -> Result<()> {
        let _seen = self.seen("alltoallv", std::mem::size_of_val(send));
        self.agree(super::check::Signature::of("alltoallv").elem_type::<T>())?;
        self.begin_coll();
        let (n, me) = (self.size(), self.rank());
        let so = counts_for("alltoallv send", send_counts, n)?;
        let ro = counts_for("alltoallv recv", recv_counts, n)?;
        expect_len("alltoallv send", send.len(), so[n])?;
        expect_len("alltoallv recv", recv.len(), ro[n])?;
        expect_len("alltoallv own block", recv_counts[me], send_counts[me])?;
        recv[ro[me]..ro[me + 1]].copy_from_slice(&send[so[me]..so[me + 1]]);
        for step in 1..n {
            let to = (me + step) % n;
            let from = (me + n - step) % n;
            self.coll_xchg(
                tag::ALLTOALL,
                &[(to, bytes(&send[so[to]..so[to + 1]]))],
                &mut [(from, bytes_mut(&mut recv[ro[from]..ro[from + 1]]))],
            )?;
        }
        Ok(())
    }
}

/// The v-collectives with displacements (MPI's `displs`): block `i` starts at element
/// `displs[i]` of its buffer instead of at the sum of the counts before it, so blocks may come
/// in any order, with gaps between them (a receive buffer's blocks must not overlap). They run
/// the plans of `plan.rs` to the end at once.
impl Comm {
    fn run_plan(&self, input: &[u8], output: &mut [u8], rounds: Vec<Round>) -> Result<()> {
        self.engine
            .borrow_mut()
            .run_rounds(self.coll_ctx(), input, output, 0, rounds, None)
    }

    /// [`Comm::gatherv`] with displacements: the block of rank `i` lands at element
    /// `displs[i]` of the root's `recv`. `counts` and `displs` are read at the root only.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// // Rows of 4 with room for 2 per rank: rank i's 2 values land at 4 i, in reverse rank order.
    /// let counts = vec![2; size];
    /// let displs: Vec<usize> = (0..size).map(|i| 4 * (size - 1 - i)).collect();
    /// let mut table = vec![-1i32; 4 * size];
    /// world.gatherv_displs(&[rank as i32; 2], &mut table, &counts, &displs, 0)?;
    /// if rank == 0 {
    ///     assert_eq!(table[..4], [size as i32 - 1, size as i32 - 1, -1, -1]);
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn gatherv_displs<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        counts: &[usize],
        displs: &[usize],
        root: usize,
    ) -> Result<()> {
        let _seen = self.seen("gatherv", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("gatherv_displs")
                .root(root)
                .elem_type::<T>(),
        )?;
        self.check_root(root)?;
        let (n, me) = (self.size(), self.rank());
        let blocks = if me == root {
            let b = Blocks::displaced("gatherv_displs", counts, displs, size_of::<T>())?;
            b.check("gatherv_displs", n, size_of_val(recv), true)?;
            expect_len("gatherv_displs send", send.len(), counts[me])?;
            b
        } else {
            Blocks(Vec::new())
        };
        self.begin_coll();
        let rounds = self.gather_plan(size_of_val(send), &blocks, root)?;
        self.run_plan(bytes(send), bytes_mut(recv), rounds)
    }

    /// [`Comm::scatterv`] with displacements: rank `i` gets `counts[i]` elements from element
    /// `displs[i]` of the root's `send` (blocks may overlap: they are only read).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// // Overlapping windows of 3 over one array: rank i gets elements i..i + 3.
    /// let data: Vec<u32> = (0..size as u32 + 2).collect();
    /// let (counts, displs) = (vec![3; size], (0..size).collect::<Vec<_>>());
    /// let mut window = [0u32; 3];
    /// world.scatterv_displs(&data, &counts, &displs, &mut window, 0)?;
    /// assert_eq!(window, [rank as u32, rank as u32 + 1, rank as u32 + 2]);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn scatterv_displs<T: Pod>(
        &self,
        send: &[T],
        counts: &[usize],
        displs: &[usize],
        recv: &mut [T],
        root: usize,
    ) -> Result<()> {
        let _seen = self.seen("scatterv", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("scatterv_displs")
                .root(root)
                .elem_type::<T>(),
        )?;
        self.check_root(root)?;
        let (n, me) = (self.size(), self.rank());
        let blocks = if me == root {
            let b = Blocks::displaced("scatterv_displs", counts, displs, size_of::<T>())?;
            b.check("scatterv_displs", n, size_of_val(send), false)?;
            expect_len("scatterv_displs recv", recv.len(), counts[me])?;
            b
        } else {
            Blocks(Vec::new())
        };
        self.begin_coll();
        let rounds = self.scatter_plan(size_of_val(recv), &blocks, root)?;
        self.run_plan(bytes(send), bytes_mut(recv), rounds)
    }

    /// [`Comm::allgatherv`] with displacements (every rank passes the same `counts` and
    /// `displs`).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// // One value per rank, with a gap after each: a strided layout.
    /// let (counts, displs) = (vec![1; size], (0..size).map(|i| 2 * i).collect::<Vec<_>>());
    /// let mut spaced = vec![0u8; 2 * size];
    /// world.allgatherv_displs(&[rank as u8 + 1], &mut spaced, &counts, &displs)?;
    /// assert_eq!(spaced[..2], [1, 0]);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn allgatherv_displs<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        counts: &[usize],
        displs: &[usize],
    ) -> Result<()> {
        let _seen = self.seen("allgatherv", std::mem::size_of_val(send));
        self.agree(super::check::Signature::of("allgatherv_displs").elem_type::<T>())?;
        let (n, me) = (self.size(), self.rank());
        let blocks = Blocks::displaced("allgatherv_displs", counts, displs, size_of::<T>())?;
        blocks.check("allgatherv_displs", n, size_of_val(recv), true)?;
        expect_len("allgatherv_displs send", send.len(), counts[me])?;
        self.begin_coll();
        let rounds = self.allgather_plan(&blocks)?;
        self.run_plan(bytes(send), bytes_mut(recv), rounds)
    }

    /// [`Comm::alltoallv`] with displacements on both sides.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// // Every rank sends the same one element to all (displacement 0 each time) and
    /// // receives rank j's element at position size - 1 - j.
    /// let (ones, zeros) = (vec![1; size], vec![0; size]);
    /// let rev: Vec<usize> = (0..size).map(|j| size - 1 - j).collect();
    /// let mut got = vec![0u64; size];
    /// world.alltoallv_displs(&[rank as u64], &ones, &zeros, &mut got, &ones, &rev)?;
    /// assert_eq!(got[size - 1], 0);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn alltoallv_displs<T: Pod>(
        &self,
        send: &[T],
        send_counts: &[usize],
        send_displs: &[usize],
        recv: &mut [T],
        recv_counts: &[usize],
        recv_displs: &[usize],
    ) -> Result<()> {
        let _seen = self.seen("alltoallv", std::mem::size_of_val(send));
        self.agree(super::check::Signature::of("alltoallv_displs").elem_type::<T>())?;
        let (n, me, size) = (self.size(), self.rank(), size_of::<T>());
        let sb = Blocks::displaced("alltoallv_displs send", send_counts, send_displs, size)?;
        let rb = Blocks::displaced("alltoallv_displs recv", recv_counts, recv_displs, size)?;
        sb.check("alltoallv_displs send", n, size_of_val(send), false)?;
        rb.check("alltoallv_displs recv", n, size_of_val(recv), true)?;
        expect_len(
            "alltoallv_displs own block",
            recv_counts[me],
            send_counts[me],
        )?;
        self.begin_coll();
        let rounds = self.alltoall_plan(&sb, &rb)?;
        self.run_plan(bytes(send), bytes_mut(recv), rounds)
    }
}
