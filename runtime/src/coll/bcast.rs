//! Broadcast.
//!
//! **Binomial tree**: with ranks renumbered relative to the root, rank `r` receives from
//! `r - 2^k` where `2^k` is its lowest set bit, then sends to `r + 2^j` for every `2^j` below
//! that bit (largest first, so the farthest subtrees start earliest). ceil(log2 n) rounds, each
//! message whole.
//!
//! **Scatter + ring allgather** for large messages on more than 2 ranks (when, see
//! [`crate::Tuning::bcast_large`]): the root scatters n blocks, then a ring passes every block
//! around.

use bytemuck::Pod;

use super::{bytes_mut, tag};
use crate::comm::Comm;
use crate::engine::schedule::{Loc, Round, Schedule};
use crate::error::Result;
use crate::scope::{Request, Scope};

impl Comm {
    /// Sends `buf` of rank `root` to every rank, into their `buf` (same length everywhere).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let mut params = [0.0f32; 3];
    /// if world.rank() == 0 {
    ///     params = [0.1, 0.2, 0.3]; // read from a file, say
    /// }
    /// world.broadcast(&mut params, 0)?;
    /// assert_eq!(params, [0.1, 0.2, 0.3]);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn broadcast<T: Pod>(&self, buf: &mut [T], root: usize) -> Result<()> {
        let _seen = self.seen("broadcast", std::mem::size_of_val(buf));
        self.agree(
            super::check::Signature::of("broadcast")
                .root(root)
                .elems::<T>(buf.len()),
        )?;
        self.check_root(root)?;
        let len = std::mem::size_of_val(buf);
        if self.use_node(len)? {
            self.algorithm("node_segment");
            return self.node_broadcast(bytes_mut(buf), root);
        }
        if self.use_node_large(len, 1)? {
            self.algorithm("node_segment_slices");
            return self.node_broadcast_large(bytes_mut(buf), root);
        }
        self.msg_broadcast(buf, root)
    }

    /// [`Comm::broadcast`] by message, whatever the communicator.
    pub(crate) fn msg_broadcast<T: Pod>(&self, buf: &mut [T], root: usize) -> Result<()> {
        self.begin_coll();
        let rounds = self.bcast_plan(std::mem::size_of_val(buf), root)?;
        self.engine
            .borrow_mut()
            .run_rounds(self.coll_ctx(), &[], bytes_mut(buf), 0, rounds, None)
    }

    /// Starts a broadcast of `buf` from `root`; the request completes with it.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let mut table = vec![0u32; 1024];
    /// if world.rank() == 0 {
    ///     table.iter_mut().enumerate().for_each(|(i, x)| *x = i as u32);
    /// }
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let r = world.ibroadcast(s, &mut table, 0)?;
    ///     // ... work that does not need the table ...
    ///     r.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(table[1023], 1023);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn ibroadcast<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope mut [T],
        root: usize,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("ibroadcast", std::mem::size_of_val(buf));
        self.agree(
            super::check::Signature::of("ibroadcast")
                .root(root)
                .elems::<T>(buf.len()),
        )?;
        self.check_root(root)?;
        self.begin_coll();
        let rounds = self.bcast_plan(std::mem::size_of_val(buf), root)?;
        let ctx = self.coll_ctx();
        s.start_coll(self, &[], bytes_mut(buf), |i, o| {
            Schedule::new(ctx, i, o, 0, rounds, None)
        })
    }

    /// The rounds of a broadcast of `len` bytes: scatter + ring allgather for large messages,
    /// else a binomial tree (receive from the parent, then send to every child at once).
    fn bcast_plan(&self, len: usize, root: usize) -> Result<Vec<Round>> {
        let n = self.size();
        let large = {
            let e = self.engine.borrow();
            match e.tuning.bcast_large {
                Some(t) => len >= t,
                None => !e.crowded() && len >= 512 << 10,
            }
        };
        if n > 2 && len >= n && large {
            self.algorithm("scatter_ring_allgather");
            return self.scatter_allgather_plan(len, root);
        }
        self.algorithm("binomial");
        let r = (self.rank() + n - root) % n;
        let abs = |rel: usize| self.world_rank((rel + root) % n);
        let tag = self.coll_tag(tag::BCAST);
        let all = Loc::Output(0, len);
        let mut rounds = Vec::new();
        let mut mask = 1;
        while mask < n {
            if r & mask != 0 {
                rounds.push(Round {
                    recvs: vec![(abs(r - mask)?, tag, all)],
                    ..Round::default()
                });
                break;
            }
            mask <<= 1;
        }
        mask >>= 1;
        let mut sends = Vec::new();
        while mask > 0 {
            if r + mask < n {
                sends.push((abs(r + mask)?, tag, all));
            }
            mask >>= 1;
        }
        rounds.push(Round {
            sends,
            ..Round::default()
        });
        Ok(rounds)
    }

    /// Scatter + ring allgather (van de Geijn): the root sends block `i` of n to relative rank
    /// `i`; then in n - 1 steps each rank passes the block it got last to its right neighbour
    /// and takes the next from its left. Every byte leaves the root once and each rank sends
    /// about the message once, instead of the whole message log2 n times down a tree.
    fn scatter_allgather_plan(&self, len: usize, root: usize) -> Result<Vec<Round>> {
        let (n, me) = (self.size(), self.rank());
        let r = (me + n - root) % n;
        let abs = |rel: usize| self.world_rank((rel + root) % n);
        let block = |i: usize| Loc::Output(len * i / n, len * (i + 1) / n - len * i / n);
        let tag = self.coll_tag(tag::BCAST);
        let mut rounds = Vec::new();
        if r == 0 {
            let sends = (1..n)
                .map(|i| Ok((abs(i)?, tag, block(i))))
                .collect::<Result<Vec<_>>>()?;
            rounds.push(Round {
                sends,
                ..Round::default()
            });
        } else {
            rounds.push(Round {
                recvs: vec![(abs(0)?, tag, block(r))],
                ..Round::default()
            });
        }
        let ring = self.coll_tag(tag::BCAST + 1);
        let (right, left) = (abs((r + 1) % n)?, abs((r + n - 1) % n)?);
        for step in 0..n - 1 {
            let out = (r + n - step) % n;
            let inb = (r + n - step - 1) % n;
            rounds.push(Round {
                sends: vec![(right, ring, block(out))],
                recvs: vec![(left, ring, block(inb))],
                then: Vec::new(),
            });
        }
        Ok(rounds)
    }
}
