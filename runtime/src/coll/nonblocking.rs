//! Nonblocking forms of the collectives without a plan of their own elsewhere: reduce, gather,
//! scatter, allgather, all-to-all (and their v-forms), scan, exscan and reduce-scatter, with the
//! closure forms of the reductions.
//!
//! Each starts an engine schedule (`engine/schedule.rs`) from the plan in `plan.rs` and returns
//! a request of the scope, as [`Comm::iallreduce`] does: the progress engine runs its rounds
//! whenever the program is inside mpr, whichever request it waits on, so several collectives (on
//! one communicator or several) and point-to-point traffic move together. Arguments are checked
//! as for the blocking twin before anything starts; the buffers stay borrowed until the scope
//! ends. A closure passed to a nonblocking reduction is kept by the engine until the collective
//! completes, hence `'static` (a `move` closure owning what it uses).

use bytemuck::Pod;

use super::allreduce::byte_combine;
use super::check::Signature;
use super::op::{builtin, user, Op, Reduce};
use super::plan::Blocks;
use super::{bytes, bytes_mut, expect_len};
use crate::comm::Comm;
use crate::engine::schedule::{ByteCombine, Round, Schedule};
use crate::error::{Error, Result};
use crate::scope::{Request, Scope};

impl Comm {
    /// Hands a plan to the engine as a request of `s`.
    pub(super) fn start_plan<'scope>(
        &self,
        s: &'scope Scope<'scope, '_>,
        input: &'scope [u8],
        output: &'scope mut [u8],
        (rounds, scratch): (Vec<Round>, usize),
        combine: Option<ByteCombine<'static>>,
    ) -> Result<Request<'scope>> {
        let ctx = self.coll_ctx();
        s.start_coll(self, input, output, move |i, o| {
            Schedule::new(ctx, i, o, scratch, rounds, combine)
        })
    }

    /// Starts [`Comm::reduce`]: `recv` (at the root, `send.len()` elements; elsewhere unused,
    /// may be `&mut []`) holds the result once the request completes.
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// let part = [world.rank() as u64 + 1; 3];
    /// let mut total = [0u64; 3];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let r = world.ireduce(s, &part, &mut total, Op::Sum, 0)?;
    ///     // ... work that does not need the total ...
    ///     r.wait()?;
    ///     Ok(())
    /// })?;
    /// let n = world.size() as u64;
    /// if world.rank() == 0 {
    ///     assert_eq!(total, [n * (n + 1) / 2; 3]);
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn ireduce<'scope, T: Reduce>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        op: Op,
        root: usize,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("ireduce", std::mem::size_of_val(send));
        self.agree(
            Signature::of("ireduce")
                .root(root)
                .op(Some(op))
                .elems::<T>(send.len()),
        )?;
        let f = builtin::<T>(op, self.par_reduce())?;
        self.ireduce_start(s, send, recv, byte_combine(f), root)
    }

    /// [`Comm::ireduce`] with a user operation (associative and commutative), as
    /// [`Comm::reduce_with`].
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let mine = [world.rank() as u32 * 3 % 5]; // outside the scope: it must outlive the request
    /// let mut widest = [0u32];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let r = world.ireduce_with(s, &mine, &mut widest, |a: &u32, b: &u32| *a.max(b), 0)?;
    ///     r.wait()?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn ireduce_with<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        f: impl Fn(&T, &T) -> T + 'static,
        root: usize,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("ireduce", std::mem::size_of_val(send));
        self.agree(
            Signature::of("ireduce_with")
                .root(root)
                .op(None)
                .elems::<T>(send.len()),
        )?;
        self.ireduce_start(s, send, recv, byte_combine(user(f)), root)
    }

    fn ireduce_start<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        combine: ByteCombine<'static>,
        root: usize,
    ) -> Result<Request<'scope>> {
        self.check_root(root)?;
        if self.rank() == root {
            expect_len("ireduce", recv.len(), send.len())?;
        }
        self.begin_coll();
        let plan = self.reduce_plan(std::mem::size_of_val(send), root)?;
        self.start_plan(s, bytes(send), bytes_mut(recv), plan, Some(combine))
    }

    /// Starts [`Comm::allreduce_with`].
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let mine = [(world.rank() as i64 - 2).abs()];
    /// let mut far = [0i64];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     world.iallreduce_with(s, &mine, &mut far, |a: &i64, b: &i64| *a.max(b))?.wait()?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn iallreduce_with<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        f: impl Fn(&T, &T) -> T + 'static,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("iallreduce", std::mem::size_of_val(send));
        self.agree(
            Signature::of("iallreduce_with")
                .op(None)
                .elems::<T>(send.len()),
        )?;
        expect_len("iallreduce_with", recv.len(), send.len())?;
        self.begin_coll();
        let plan = self.allreduce_plan(send.len(), std::mem::size_of::<T>())?;
        self.start_plan(
            s,
            bytes(send),
            bytes_mut(recv),
            plan,
            Some(byte_combine(user(f))),
        )
    }

    /// Starts [`Comm::gather`]: at the root `recv.len()` must be `size() * send.len()`
    /// (elsewhere `recv` is unused and may be `&mut []`).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let mine = [rank as u16; 2];
    /// let mut all = if rank == 0 { vec![0u16; 2 * size] } else { Vec::new() };
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     world.igather(s, &mine, &mut all, 0)?.wait()?;
    ///     Ok(())
    /// })?;
    /// if rank == 0 {
    ///     assert_eq!(all[2 * size - 1], size as u16 - 1);
    /// }
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn igather<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        root: usize,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("igather", std::mem::size_of_val(send));
        self.agree(Signature::of("igather").root(root).elems::<T>(send.len()))?;
        self.check_root(root)?;
        let counts = vec![send.len(); self.size()];
        self.igatherv_start(s, send, recv, &counts, root)
    }

    /// Starts [`Comm::gatherv`]: `counts[i]` elements from rank `i`, packed in rank order into
    /// the root's `recv`. `counts` is read now (it need not outlive the call) and at the root
    /// only.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let counts: Vec<usize> = (1..=size).collect();
    /// let mine = vec![rank as u8; rank + 1];
    /// let mut all = vec![0u8; counts.iter().sum()];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     world.igatherv(s, &mine, &mut all, &counts, 0)?.wait()?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn igatherv<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        counts: &[usize],
        root: usize,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("igatherv", std::mem::size_of_val(send));
        self.agree(Signature::of("igatherv").root(root).elem_type::<T>())?;
        self.check_root(root)?;
        self.igatherv_start(s, send, recv, counts, root)
    }

    fn igatherv_start<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        counts: &[usize],
        root: usize,
    ) -> Result<Request<'scope>> {
        let (n, me, size) = (self.size(), self.rank(), std::mem::size_of::<T>());
        let blocks = if me == root {
            let b = Blocks::packed("igatherv", counts, size)?;
            b.check("igatherv", n, std::mem::size_of_val(recv), true)?;
            expect_len("igatherv send", send.len(), counts[me])?;
            let total: usize = counts.iter().sum();
            expect_len("igatherv recv", recv.len(), total)?;
            b
        } else {
            Blocks(Vec::new())
        };
        self.begin_coll();
        let rounds = self.gather_plan(std::mem::size_of_val(send), &blocks, root)?;
        self.start_plan(s, bytes(send), bytes_mut(recv), (rounds, 0), None)
    }

    /// Starts [`Comm::scatter`]: at the root `send.len()` must be `size() * recv.len()`
    /// (elsewhere `send` is unused and may be `&[]`).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let work: Vec<u32> = (0..2 * size as u32).collect();
    /// let mut mine = [0u32; 2];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     world.iscatter(s, &work, &mut mine, 0)?.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(mine, [2 * rank as u32, 2 * rank as u32 + 1]);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn iscatter<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        root: usize,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("iscatter", std::mem::size_of_val(send));
        self.agree(Signature::of("iscatter").root(root).elems::<T>(recv.len()))?;
        self.check_root(root)?;
        let counts = vec![recv.len(); self.size()];
        self.iscatterv_start(s, send, &counts, recv, root)
    }

    /// Starts [`Comm::scatterv`]: `counts[i]` elements of the root's `send` (packed in rank
    /// order) to rank `i`. `counts` is read now, at the root only.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let counts: Vec<usize> = (0..size).map(|r| r % 2 + 1).collect();
    /// let items = vec![7i32; counts.iter().sum()];
    /// let mut mine = vec![0i32; counts[rank]];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     world.iscatterv(s, &items, &counts, &mut mine, 0)?.wait()?;
    ///     Ok(())
    /// })?;
    /// assert!(mine.iter().all(|&x| x == 7));
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn iscatterv<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        counts: &[usize],
        recv: &'scope mut [T],
        root: usize,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("iscatterv", std::mem::size_of_val(send));
        self.agree(Signature::of("iscatterv").root(root).elem_type::<T>())?;
        self.check_root(root)?;
        self.iscatterv_start(s, send, counts, recv, root)
    }

    fn iscatterv_start<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        counts: &[usize],
        recv: &'scope mut [T],
        root: usize,
    ) -> Result<Request<'scope>> {
        let (n, me, size) = (self.size(), self.rank(), std::mem::size_of::<T>());
        let blocks = if me == root {
            let b = Blocks::packed("iscatterv", counts, size)?;
            b.check("iscatterv", n, std::mem::size_of_val(send), false)?;
            expect_len("iscatterv recv", recv.len(), counts[me])?;
            expect_len("iscatterv send", send.len(), counts.iter().sum())?;
            b
        } else {
            Blocks(Vec::new())
        };
        self.begin_coll();
        let rounds = self.scatter_plan(std::mem::size_of_val(recv), &blocks, root)?;
        self.start_plan(s, bytes(send), bytes_mut(recv), (rounds, 0), None)
    }

    /// Starts [`Comm::allgather`]: `recv.len()` must be `size() * send.len()`.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let size = world.size();
    /// let mine = [world.rank() as f32];
    /// let mut all = vec![0.0f32; size];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let r = world.iallgather(s, &mine, &mut all)?;
    ///     r.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(all[size - 1], (size - 1) as f32);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn iallgather<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("iallgather", std::mem::size_of_val(send));
        self.agree(Signature::of("iallgather").elems::<T>(send.len()))?;
        let counts = vec![send.len(); self.size()];
        self.iallgatherv_start(s, send, recv, &counts)
    }

    /// Starts [`Comm::allgatherv`] (every rank passes the same `counts`; read now).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let counts: Vec<usize> = (0..size).map(|r| r + 1).collect();
    /// let mine = vec![rank as u64; rank + 1];
    /// let mut all = vec![0u64; counts.iter().sum()];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     world.iallgatherv(s, &mine, &mut all, &counts)?.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(*all.last().unwrap(), size as u64 - 1);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn iallgatherv<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        counts: &[usize],
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("iallgatherv", std::mem::size_of_val(send));
        self.agree(Signature::of("iallgatherv").elem_type::<T>())?;
        self.iallgatherv_start(s, send, recv, counts)
    }

    fn iallgatherv_start<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        counts: &[usize],
    ) -> Result<Request<'scope>> {
        let (n, me) = (self.size(), self.rank());
        let blocks = Blocks::packed("iallgatherv", counts, std::mem::size_of::<T>())?;
        blocks.check("iallgatherv", n, std::mem::size_of_val(recv), true)?;
        expect_len("iallgatherv send", send.len(), counts[me])?;
        expect_len("iallgatherv recv", recv.len(), counts.iter().sum())?;
        self.begin_coll();
        let rounds = self.allgather_plan(&blocks)?;
        self.start_plan(s, bytes(send), bytes_mut(recv), (rounds, 0), None)
    }

    /// Starts [`Comm::alltoall`]: block `i` of `send` to rank `i`, block `j` of `recv` from
    /// rank `j`.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let send: Vec<u32> = (0..size as u32).map(|i| 100 * rank as u32 + i).collect();
    /// let mut recv = vec![0u32; size];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     world.ialltoall(s, &send, &mut recv)?.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(recv[0], rank as u32); // rank 0's block for this rank
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn ialltoall<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("ialltoall", std::mem::size_of_val(send));
        self.agree(Signature::of("ialltoall").elems::<T>(send.len()))?;
        let n = self.size();
        if send.len() % n != 0 {
            return Err(Error::InvalidArgument {
                what: "ialltoall",
                detail: format!("{} elements do not split into {n} equal blocks", send.len()),
            });
        }
        expect_len("ialltoall", recv.len(), send.len())?;
        let counts = vec![send.len() / n; n];
        self.ialltoallv_start(s, send, &counts, recv, &counts)
    }

    /// Starts [`Comm::alltoallv`] (the counts are read now).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// let send_counts = vec![rank + 1; size];
    /// let recv_counts: Vec<usize> = (1..=size).collect();
    /// let send = vec![rank as u16; (rank + 1) * size];
    /// let mut recv = vec![0u16; recv_counts.iter().sum()];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     world.ialltoallv(s, &send, &send_counts, &mut recv, &recv_counts)?.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(recv[recv.len() - 1], size as u16 - 1);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn ialltoallv<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        send_counts: &[usize],
        recv: &'scope mut [T],
        recv_counts: &[usize],
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("ialltoallv", std::mem::size_of_val(send));
        self.agree(Signature::of("ialltoallv").elem_type::<T>())?;
        self.ialltoallv_start(s, send, send_counts, recv, recv_counts)
    }

    fn ialltoallv_start<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        send_counts: &[usize],
        recv: &'scope mut [T],
        recv_counts: &[usize],
    ) -> Result<Request<'scope>> {
        let (n, me, size) = (self.size(), self.rank(), std::mem::size_of::<T>());
        let sb = Blocks::packed("ialltoallv send", send_counts, size)?;
        let rb = Blocks::packed("ialltoallv recv", recv_counts, size)?;
        sb.check("ialltoallv send", n, std::mem::size_of_val(send), false)?;
        rb.check("ialltoallv recv", n, std::mem::size_of_val(recv), true)?;
        expect_len("ialltoallv send", send.len(), send_counts.iter().sum())?;
        expect_len("ialltoallv recv", recv.len(), recv_counts.iter().sum())?;
        expect_len("ialltoallv own block", recv_counts[me], send_counts[me])?;
        self.begin_coll();
        let rounds = self.alltoall_plan(&sb, &rb)?;
        self.start_plan(s, bytes(send), bytes_mut(recv), (rounds, 0), None)
    }

    /// Starts [`Comm::scan`].
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// let rank = world.rank() as u64;
    /// let mine = [rank + 1]; // not `&[rank + 1]` in the call: a temporary dies too soon
    /// let mut upto = [0u64];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     world.iscan(s, &mine, &mut upto, Op::Sum)?.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(upto[0], (rank + 1) * (rank + 2) / 2);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn iscan<'scope, T: Reduce>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        op: Op,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("iscan", std::mem::size_of_val(send));
        self.agree(Signature::of("iscan").op(Some(op)).elems::<T>(send.len()))?;
        let f = builtin::<T>(op, self.par_reduce())?;
        self.iprefix(s, send, recv, byte_combine(f), true)
    }

    /// Starts [`Comm::exscan`] (rank 0's `recv` is left as it was).
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// let mut before = [0u32];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     world.iexscan(s, &[1u32], &mut before, Op::Sum)?.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(before[0], world.rank() as u32);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn iexscan<'scope, T: Reduce>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        op: Op,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("iexscan", std::mem::size_of_val(send));
        self.agree(Signature::of("iexscan").op(Some(op)).elems::<T>(send.len()))?;
        let f = builtin::<T>(op, self.par_reduce())?;
        self.iprefix(s, send, recv, byte_combine(f), false)
    }

    /// [`Comm::iscan`] with a user operation (associative; applied lower ranks first, so it
    /// need not be commutative).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// // The last nonzero value up to this rank: associative, not commutative.
    /// let mine = [if world.rank() % 2 == 0 { world.rank() as u32 + 1 } else { 0 }];
    /// let mut last = [0u32];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let keep = |a: &u32, b: &u32| if *b != 0 { *b } else { *a };
    ///     world.iscan_with(s, &mine, &mut last, keep)?.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(last[0], (world.rank() as u32 & !1) + 1);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn iscan_with<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        f: impl Fn(&T, &T) -> T + 'static,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("iscan", std::mem::size_of_val(send));
        self.agree(Signature::of("iscan_with").op(None).elems::<T>(send.len()))?;
        self.iprefix(s, send, recv, byte_combine(user(f)), true)
    }

    /// [`Comm::iexscan`] with a user operation (associative).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let mut before = [0u64];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     world.iexscan_with(s, &[2u64], &mut before, |a: &u64, b: &u64| a + b)?.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(before[0], 2 * world.rank() as u64);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn iexscan_with<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        f: impl Fn(&T, &T) -> T + 'static,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("iexscan", std::mem::size_of_val(send));
        self.agree(
            Signature::of("iexscan_with")
                .op(None)
                .elems::<T>(send.len()),
        )?;
        self.iprefix(s, send, recv, byte_combine(user(f)), false)
    }

    fn iprefix<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        combine: ByteCombine<'static>,
        inclusive: bool,
    ) -> Result<Request<'scope>> {
        expect_len(
            if inclusive { "iscan" } else { "iexscan" },
            recv.len(),
            send.len(),
        )?;
        self.begin_coll();
        let plan = self.scan_plan(std::mem::size_of_val(send), inclusive)?;
        self.start_plan(s, bytes(send), bytes_mut(recv), plan, Some(combine))
    }

    /// Starts [`Comm::reduce_scatter_block`]: `send` holds `size()` blocks of `recv.len()`.
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// let contrib = vec![1i32; 2 * world.size()];
    /// let mut mine = [0i32; 2];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     world.ireduce_scatter_block(s, &contrib, &mut mine, Op::Sum)?.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(mine, [world.size() as i32; 2]);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn ireduce_scatter_block<'scope, T: Reduce>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        op: Op,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("ireduce_scatter_block", std::mem::size_of_val(send));
        self.agree(
            Signature::of("ireduce_scatter_block")
                .op(Some(op))
                .elems::<T>(recv.len()),
        )?;
        let f = builtin::<T>(op, self.par_reduce())?;
        self.ireduce_scatter_start(s, send, recv, byte_combine(f))
    }

    /// [`Comm::ireduce_scatter_block`] with a user operation (associative and commutative).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let contrib = vec![3u8; world.size()];
    /// let mut mine = [0u8];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let r = world.ireduce_scatter_block_with(s, &contrib, &mut mine, |a: &u8, b: &u8| *a.max(b))?;
    ///     r.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(mine, [3]);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn ireduce_scatter_block_with<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        f: impl Fn(&T, &T) -> T + 'static,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("ireduce_scatter_block", std::mem::size_of_val(send));
        self.agree(
            Signature::of("ireduce_scatter_block_with")
                .op(None)
                .elems::<T>(recv.len()),
        )?;
        self.ireduce_scatter_start(s, send, recv, byte_combine(user(f)))
    }

    fn ireduce_scatter_start<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        combine: ByteCombine<'static>,
    ) -> Result<Request<'scope>> {
        let n = self.size();
        expect_len("ireduce_scatter_block send", send.len(), n * recv.len())?;
        self.begin_coll();
        let plan = self.reduce_scatter_plan(std::mem::size_of_val(recv))?;
        self.start_plan(s, bytes(send), bytes_mut(recv), plan, Some(combine))
    }
}
