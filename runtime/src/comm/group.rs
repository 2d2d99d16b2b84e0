//! Groups of ranks and communicators made from them: `comm.group()`, the set algebra of MPI's
//! groups, `comm.create(&group)`, `split_type_shared`, and comparing communicators.
//!
//! A [`Group`] is an ordered set of the job's processes, named by their world ranks: a value,
//! with no traffic and nothing to free, so its algebra is local and exact (the tests check it
//! against a model). A group's rank `i` is its `i`-th process. Making a communicator of a group
//! (`create`) is collective over the parent: every rank passes the same group (checked, as
//! `cart_create` checks its grid: an error on every rank, never a hang of some), and the
//! group's members get a communicator whose ranks follow the group's order.

use std::collections::HashMap;

use super::Comm;
use crate::coll::op::Op;
use crate::error::{Error, Result};

/// An ordered set of processes of the job (see the module docs).
///
/// ```
/// let world = mpr::init()?;
/// let all = world.group();
/// let evens = all.incl(&(0..world.size()).step_by(2).collect::<Vec<_>>())?;
/// let odds = all.difference(&evens);
/// assert_eq!(evens.size() + odds.size(), world.size());
/// assert_eq!(evens.rank().is_some(), world.rank() % 2 == 0);
/// assert_ne!(evens.union(&odds).compare(&all), mpr::Comparison::Unequal); // evens first
/// let sub = world.create(&evens)?; // Some on the even ranks, None on the others
/// assert_eq!(sub.is_some(), world.rank() % 2 == 0);
/// # Ok::<(), mpr::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Group {
    /// The world rank of each member, in the group's order.
    world: Vec<usize>,
    /// This process's world rank (`None` only in [`Group::empty`] and what is made of it alone).
    me: Option<usize>,
}

/// Groups are equal when they have the same members in the same order ([`Comparison::Ident`]).
impl PartialEq for Group {
    fn eq(&self, other: &Group) -> bool {
        self.world == other.world
    }
}

impl Eq for Group {}

/// How two groups or communicators relate (MPI's `MPI_IDENT`, `MPI_CONGRUENT`, `MPI_SIMILAR`,
/// `MPI_UNEQUAL`), from the closest to the farthest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Comparison {
    /// The same members in the same order (for communicators: the same communicator).
    Ident,
    /// Communicators only: the same members in the same order, but traffic of their own.
    Congruent,
    /// The same members in another order.
    Similar,
    /// Other members.
    Unequal,
}

fn bad(what: &'static str, detail: impl Into<String>) -> Error {
    Error::InvalidArgument {
        what,
        detail: detail.into(),
    }
}

impl Group {
    /// The group with no member (`MPI_GROUP_EMPTY`).
    pub fn empty() -> Group {
        Group {
            world: Vec::new(),
            me: None,
        }
    }

    /// Number of members.
    pub fn size(&self) -> usize {
        self.world.len()
    }

    /// This process's rank in the group, if it is a member.
    pub fn rank(&self) -> Option<usize> {
        let me = self.me?;
        self.world.iter().position(|&w| w == me)
    }

    /// The members' world ranks, in the group's order.
    pub fn world_ranks(&self) -> &[usize] {
        &self.world
    }

    /// Ranks (of this group) checked: each in range, none twice.
    fn checked(&self, what: &'static str, ranks: &[usize]) -> Result<()> {
        let mut seen = vec![false; self.size()];
        for &r in ranks {
            match seen.get_mut(r) {
                None => {
                    return Err(Error::InvalidRank {
                        rank: r,
                        size: self.size(),
                    })
                }
                Some(true) => return Err(bad(what, format!("rank {r} is listed twice"))),
                Some(s) => *s = true,
            }
        }
        Ok(())
    }

    /// The group of the members at `ranks`, in that order (`MPI_Group_incl`).
    pub fn incl(&self, ranks: &[usize]) -> Result<Group> {
        self.checked("incl", ranks)?;
        Ok(Group {
            world: ranks.iter().map(|&r| self.world[r]).collect(),
            me: self.me,
        })
    }

    /// The group without the members at `ranks`, the others in their order (`MPI_Group_excl`).
    pub fn excl(&self, ranks: &[usize]) -> Result<Group> {
        self.checked("excl", ranks)?;
        let mut out = vec![true; self.size()];
        for &r in ranks {
            out[r] = false;
        }
        Ok(Group {
            world: self
                .world
                .iter()
                .zip(out)
                .filter(|(_, keep)| *keep)
                .map(|(&w, _)| w)
                .collect(),
            me: self.me,
        })
    }

    /// This group's members, then the other's that are not in this one (`MPI_Group_union`).
    pub fn union(&self, other: &Group) -> Group {
        let mine = self.members();
        let mut world = self.world.clone();
        world.extend(other.world.iter().filter(|w| !mine.contains_key(w)));
        Group {
            world,
            me: self.me.or(other.me),
        }
    }

    /// This group's members that are also in the other, in this group's order
    /// (`MPI_Group_intersection`).
    pub fn intersection(&self, other: &Group) -> Group {
        let theirs = other.members();
        self.filtered(|w| theirs.contains_key(w))
    }

    /// This group's members that are not in the other, in this group's order
    /// (`MPI_Group_difference`).
    pub fn difference(&self, other: &Group) -> Group {
        let theirs = other.members();
        self.filtered(|w| !theirs.contains_key(w))
    }

    /// The ranks in `other` of the members at `ranks` of this group, `None` for those not in it
    /// (`MPI_Group_translate_ranks`, with `None` for `MPI_UNDEFINED`).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let all = world.group();
    /// let reversed = all.incl(&(0..world.size()).rev().collect::<Vec<_>>())?;
    /// assert_eq!(all.translate_ranks(&[0], &reversed)?, [Some(world.size() - 1)]);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn translate_ranks(&self, ranks: &[usize], other: &Group) -> Result<Vec<Option<usize>>> {
        let theirs = other.members();
        ranks
            .iter()
            .map(|&r| match self.world.get(r) {
                Some(w) => Ok(theirs.get(w).copied()),
                None => Err(Error::InvalidRank {
                    rank: r,
                    size: self.size(),
                }),
            })
            .collect()
    }

    /// How this group relates to `other`: [`Comparison::Ident`], [`Comparison::Similar`] or
    /// [`Comparison::Unequal`] (`MPI_Group_compare`).
    pub fn compare(&self, other: &Group) -> Comparison {
        if self.world == other.world {
            Comparison::Ident
        } else if self.size() == other.size() && self.difference(other).size() == 0 {
            Comparison::Similar
        } else {
            Comparison::Unequal
        }
    }

    /// Each member's world rank to its rank here.
    fn members(&self) -> HashMap<usize, usize> {
        self.world
            .iter()
            .enumerate()
            .map(|(r, &w)| (w, r))
            .collect()
    }

    fn filtered(&self, keep: impl Fn(&usize) -> bool) -> Group {
        Group {
            world: self.world.iter().copied().filter(|w| keep(w)).collect(),
            me: self.me,
        }
    }
}

/// A fingerprint of a collective's arguments as words, the same on every rank that passes the
/// same ones (FNV-1a over their bytes), for [`Comm::agree_args`].
pub(crate) fn fingerprint(words: impl IntoIterator<Item = u64>) -> u64 {
    words.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, w| {
        w.to_le_bytes()
            .iter()
            .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    })
}

impl Comm {
    /// The agreement of a collective that makes something from its arguments (`create`,
    /// `cart_create`, `dist_graph_create_adjacent`): every rank says whether its own arguments
    /// are bad (`problem`) and, if they must be the same everywhere, their `fingerprint`; one
    /// allreduce of the flag, the fingerprint and its complement (equal maxima of both mean
    /// equal values) lets every rank refuse together, so none waits for the others.
    pub(crate) fn agree_args(
        &self,
        what: &'static str,
        problem: Option<String>,
        fingerprint: Option<u64>,
    ) -> Result<()> {
        let h = fingerprint.unwrap_or(0);
        let mine = [u64::from(problem.is_some()), h, !h];
        let mut all = [0u64; 3];
        self.allreduce(&mine, &mut all, Op::Max)?;
        if let Some(p) = problem {
            return Err(bad(what, p));
        }
        if all[0] != 0 {
            return Err(bad(what, "another rank's arguments are not valid"));
        }
        if all[1] != h || all[2] != !h {
            return Err(bad(what, "the ranks passed different arguments"));
        }
        Ok(())
    }

    /// The group of this communicator's ranks, in their order (`MPI_Comm_group`).
    pub fn group(&self) -> Group {
        Group {
            world: (0..self.size())
                .map(|r| self.world_rank(r).unwrap_or(usize::MAX))
                .collect(),
            me: self.world_rank(self.rank()).ok(),
        }
    }

    /// A communicator of the members of `group`, ranked in the group's order
    /// (`MPI_Comm_create`): `Some` on them, `None` on the other ranks. Collective: every rank
    /// of this communicator calls it with the same group, which must be a subset of this
    /// communicator's; anything else is an error on every rank.
    pub fn create(&self, group: &Group) -> Result<Option<Comm>> {
        let _seen = self.seen("create", 0);
        let here = self.group().members();
        let problem = group
            .world
            .iter()
            .find(|w| !here.contains_key(w))
            .map(|w| format!("world rank {w} of the group is not in this communicator"))
            .or_else(|| {
                let mut seen = std::collections::HashSet::new();
                group
                    .world
                    .iter()
                    .find(|w| !seen.insert(**w))
                    .map(|w| format!("world rank {w} is twice in the group"))
            });
        let h = fingerprint(group.world.iter().map(|&w| w as u64));
        self.agree_args("create", problem, Some(h))?;
        let me = self.world_rank(self.rank())?;
        let key = group.world.iter().position(|&w| w == me);
        self.split(key.map(|_| 0), key.map_or(0, |k| k as i64))
    }

    /// A communicator of the ranks of this one that run on this rank's host
    /// (`MPI_Comm_split_type` with `MPI_COMM_TYPE_SHARED`), in their order here. Collective.
    /// Ranks share a host when mprun started them on the same host of its hostfile (or
    /// `--host` list); a job without either runs on one host.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let host = world.split_type_shared()?;
    /// assert!(host.size() >= 1 && host.size() <= world.size());
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn split_type_shared(&self) -> Result<Comm> {
        let _seen = self.seen("split_type_shared", 0);
        let name = self.engine.borrow().host.clone();
        let mut lens = vec![0u64; self.size()];
        self.allgather(&[name.len() as u64], &mut lens)?;
        let counts: Vec<usize> = lens.iter().map(|&l| l as usize).collect();
        let mut names = vec![0u8; counts.iter().sum()];
        self.allgatherv(name.as_bytes(), &mut names, &counts)?;
        // The color: the lowest rank here on the same host.
        let mut at = 0;
        let mut color = self.rank();
        for (r, &n) in counts.iter().enumerate() {
            if names[at..at + n] == *name.as_bytes() {
                color = r;
                break;
            }
            at += n;
        }
        self.split(Some(color as u32), self.rank() as i64)?
            .ok_or_else(|| bad("split_type_shared", "the split left this rank out"))
    }

    /// How this communicator relates to `other` (`MPI_Comm_compare`): [`Comparison::Ident`]
    /// for handles on the same communicator, [`Comparison::Congruent`] for the same ranks in
    /// the same order with traffic of their own (a `dup`), else as their groups compare.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let twin = world.dup()?;
    /// assert_eq!(world.compare(&world), mpr::Comparison::Ident);
    /// assert_eq!(world.compare(&twin), mpr::Comparison::Congruent);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn compare(&self, other: &Comm) -> Comparison {
        match self.group().compare(&other.group()) {
            Comparison::Ident if self.ctx == other.ctx => Comparison::Ident,
            Comparison::Ident => Comparison::Congruent,
            c => c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Comparison, Group};

    fn g(w: &[usize]) -> Group {
        Group {
            world: w.to_vec(),
            me: Some(3),
        }
    }

    #[test]
    fn fingerprints_tell_arguments_apart() {
        use super::fingerprint;
        assert_eq!(fingerprint([4, 3]), fingerprint([4, 3]));
        assert_ne!(fingerprint([4, 3]), fingerprint([3, 4]));
        assert_ne!(fingerprint([12]), fingerprint([12, 1]));
        assert_ne!(fingerprint([]), fingerprint([0]));
    }

    #[test]
    fn algebra_keeps_mpi_order() {
        let a = g(&[5, 1, 3, 7]);
        let b = g(&[3, 9, 5]);
        assert_eq!(a.union(&b), g(&[5, 1, 3, 7, 9]));
        assert_eq!(a.intersection(&b), g(&[5, 3]));
        assert_eq!(a.difference(&b), g(&[1, 7]));
        assert_eq!(a.incl(&[3, 0]).unwrap(), g(&[7, 5]));
        assert_eq!(a.excl(&[1, 2]).unwrap(), g(&[5, 7]));
        assert_eq!(
            a.translate_ranks(&[0, 1, 2], &b).unwrap(),
            [Some(2), None, Some(0)]
        );
        assert!(a.incl(&[4]).is_err());
        assert!(a.incl(&[1, 1]).is_err());
        assert!(a.excl(&[0, 0]).is_err());
        assert!(a.translate_ranks(&[4], &b).is_err());
        assert_eq!(a.compare(&a.clone()), Comparison::Ident);
        assert_eq!(a.compare(&g(&[1, 3, 5, 7])), Comparison::Similar);
        assert_eq!(a.compare(&b), Comparison::Unequal);
        assert_eq!(Group::empty().union(&Group::empty()).size(), 0);
        assert_eq!(a.excl(&[]).unwrap(), a);
        assert_eq!(a.rank(), Some(2));
        assert_eq!(b.difference(&a).rank(), None);
    }
}
