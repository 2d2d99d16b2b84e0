//! New communicators: `split` and `dup`.
//!
//! Both are collective over the parent. Every rank contributes (color, key) with an allgather;
//! the members of a color are ordered by (key, parent rank). The new communicator's context ids
//! are agreed with an allreduce (bitwise and) of every rank's free context pairs over the parent,
//! taking the lowest pair free on all of them, so its traffic (point-to-point and collective)
//! can never match any other communicator's on any member. One pair serves every color of one
//! split: the groups are disjoint, and no rank holds two communicators on one pair.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::{Comm, Members};
use crate::coll::op::Op;
use crate::engine::contexts::ContextIds;
use crate::error::{Error, Result};

/// The color of a rank that takes part in a split without joining any new communicator.
const NO_COLOR: u64 = u64::MAX;

impl Comm {
    /// Splits the communicator: ranks passing the same `Some(color)` form a new communicator,
    /// ordered by `key` (ties by their rank here); `None` takes part but joins none (and gets
    /// `None`). Every rank of this communicator must call it.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let rank = world.rank();
    /// // Rows of a grid with 4 columns: ranks 0-3 form row 0, ranks 4-7 row 1, ...
    /// let row = world.split(Some((rank / 4) as u32), rank as i64)?.expect("every rank gave a color");
    /// assert_eq!(row.rank(), rank % 4);
    /// // Only even ranks join; the others pass None (they must still call) and get None.
    /// let evens = world.split((rank % 2 == 0).then_some(0), 0)?;
    /// assert_eq!(evens.is_some(), rank % 2 == 0);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn split(&self, color: Option<u32>, key: i64) -> Result<Option<Comm>> {
        let _seen = self.seen("split", 0);
        let n = self.size();
        let mine = [color.map_or(NO_COLOR, u64::from), key as u64];
        let mut all = vec![0u64; 2 * n];
        self.allgather(&mine, &mut all)?;
        let pair = self.agree_context()?;
        let Some(color) = color else {
            return Ok(None);
        };
        let mut members: Vec<(i64, usize)> = (0..n)
            .filter(|&r| all[2 * r] == u64::from(color))
            .map(|r| (all[2 * r + 1] as i64, r))
            .collect();
        members.sort_unstable();
        let world_of: Vec<usize> = members
            .iter()
            .map(|&(_, r)| self.world_rank(r))
            .collect::<Result<_>>()?;
        let my_world = self.world_rank(self.rank())?;
        let me = world_of
            .iter()
            .position(|&w| w == my_world)
            .ok_or_else(|| Error::InvalidArgument {
                what: "split",
                detail: "this rank is not among its color's members".into(),
            })?;
        let comm_of: HashMap<usize, usize> =
            world_of.iter().enumerate().map(|(c, &w)| (w, c)).collect();
        self.engine.borrow_mut().contexts.take(pair);
        let size = world_of.len();
        let group = Members {
            world_of,
            comm_of,
            engine: self.engine.clone(),
            pair,
        };
        Ok(Some(Comm {
            engine: self.engine.clone(),
            ctx: 2 * pair as u32,
            rank: me,
            size,
            group: Some(Rc::new(group)),
            coll_seq: Rc::default(),
            node: Rc::new(RefCell::new(crate::coll::NodeState::Untried)),
        }))
    }

    /// A new communicator with the same ranks in the same order and traffic of its own.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// // A library's own communicator: its messages never match the application's receives.
    /// let lib = world.dup()?;
    /// assert_eq!((lib.rank(), lib.size()), (world.rank(), world.size()));
    /// lib.barrier()?;
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn dup(&self) -> Result<Comm> {
        let _seen = self.seen("dup", 0);
        self.split(Some(0), self.rank() as i64)?
            .ok_or_else(|| Error::InvalidArgument {
                what: "dup",
                detail: "the duplicate did not include this rank".into(),
            })
    }

    /// The lowest context pair free on every rank of this communicator.
    fn agree_context(&self) -> Result<usize> {
        let free = self.engine.borrow().contexts.free_mask();
        let mut agreed = vec![0u64; free.len()];
        self.allreduce(&free, &mut agreed, Op::BitAnd)?;
        ContextIds::lowest(&agreed).ok_or_else(|| Error::InvalidArgument {
            what: "split",
            detail: "no context id is free on every rank (too many communicators alive at once)"
                .into(),
        })
    }
}
