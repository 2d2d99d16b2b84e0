//! Cartesian process grids: `cart_create`, coordinates, shifts and sub-grids
//! (`MPI_Cart_create`, `MPI_Cart_coords`, `MPI_Cart_rank`, `MPI_Cart_shift`, `MPI_Cart_sub`).
//!
//! A [`CartComm`] is a communicator (it derefs to [`Comm`]) that knows its grid: the extent of
//! each dimension and whether it wraps around. Ranks are laid out in C order (the last
//! dimension varies fastest), as in MPI, so rank `r` of a `4 x 3` grid sits at `(r / 3, r % 3)`.
//!
//! **Reorder.** MPI lets `reorder` renumber the ranks to fit the machine; mpr keeps them in
//! order. With mprun's default mapping (`--map-by slot`) consecutive ranks share a host, so
//! neighbours along the last dimension are on one host, which is what a reordering would aim
//! for on a cluster of multi-core hosts.
//!
//! **Open edges.** A shift off a non-periodic edge gives `None`, the "no rank" of MPI
//! (`MPI_PROC_NULL`): point-to-point calls take it as a destination or source and complete at
//! once (see [`crate::PROC_NULL`]), so a halo exchange is the same code at an edge and inside.
//!
//! **Agreement.** Creating a grid is collective; every rank checks its own arguments and then all
//! compare them (one allreduce of a fingerprint) before any communicator is made, so bad or
//! mismatched arguments are an error on every rank, never a hang of the ranks that passed
//! good ones.

use std::ops::Deref;

use crate::coll::Neighbors;
use crate::comm::{fingerprint, Comm};
use crate::error::{Error, Result};

/// A communicator with a Cartesian grid on its ranks (see the module docs). Derefs to
/// [`Comm`]: everything a communicator does, it does.
pub struct CartComm {
    comm: Comm,
    dims: Vec<usize>,
    periods: Vec<bool>,
    /// Neighbours for the neighbour collectives: per dimension the `-` side, then the `+`.
    pub(super) nbrs: Neighbors,
}

impl Deref for CartComm {
    type Target = Comm;
    fn deref(&self) -> &Comm {
        &self.comm
    }
}

impl std::fmt::Debug for CartComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CartComm")
            .field("rank", &self.comm.rank())
            .field("dims", &self.dims)
            .field("periods", &self.periods)
            .finish()
    }
}

fn bad(what: &'static str, detail: impl Into<String>) -> Error {
    Error::InvalidArgument {
        what,
        detail: detail.into(),
    }
}

impl Comm {
    /// Makes a Cartesian grid of `dims` (extents, largest dimension first if from
    /// [`dims_create`](crate::dims_create)) over the first `dims.iter().product()` ranks of this
    /// communicator, `periods[d]` saying whether dimension `d` wraps around. Ranks beyond the
    /// grid get `None`. Collective: every rank calls it with the same arguments; bad or
    /// mismatched arguments are an error on every rank. `reorder` is accepted and the ranks
    /// keep their order (see the module docs).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let mut dims = vec![0; 2];
    /// mpr::dims_create(world.size(), &mut dims)?;
    /// let grid = world.cart_create(&dims, &[true, false], false)?.expect("all ranks fit");
    /// let (up, down) = grid.shift(0, 1)?; // neighbours along dimension 0 (it wraps)
    /// let (left, right) = grid.shift(1, 1)?; // along dimension 1: None at its ends
    /// assert_eq!(grid.rank_of(&grid.coords())?, grid.rank());
    /// # let _ = (up, down, left, right);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn cart_create(
        &self,
        dims: &[usize],
        periods: &[bool],
        reorder: bool,
    ) -> Result<Option<CartComm>> {
        let _ = reorder;
        let problem = if dims.len() != periods.len() {
            Some(format!(
                "{} dimensions but {} periods",
                dims.len(),
                periods.len()
            ))
        } else if dims.contains(&0) {
            Some(format!("a dimension of extent 0 in {dims:?}"))
        } else {
            match dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d)) {
                Some(p) if p <= self.size() => None,
                _ => Some(format!(
                    "a grid of {dims:?} needs more than the communicator's {} ranks",
                    self.size()
                )),
            }
        };
        let h = fingerprint(
            dims.iter()
                .map(|&d| d as u64)
                .chain(periods.iter().map(|&p| u64::from(p) + (1 << 32))),
        );
        self.agree_args("cart_create", problem, Some(h))?;
        let cells: usize = dims.iter().product();
        let member = self.rank() < cells;
        self.split(member.then_some(0), self.rank() as i64)?
            .map(|comm| CartComm::new(comm, dims.to_vec(), periods.to_vec()))
            .transpose()
    }
}

impl CartComm {
    /// A grid on `comm`, with its neighbours worked out. A block sent towards `+` in dimension
    /// `d` carries round `2 d + 1` and lands in the receiver's `-` slot, and the other way
    /// round (see `coll/neighbor.rs`).
    fn new(comm: Comm, dims: Vec<usize>, periods: Vec<bool>) -> Result<CartComm> {
        let mut grid = CartComm {
            comm,
            dims,
            periods,
            nbrs: Neighbors::default(),
        };
        let mut nbrs = Neighbors::default();
        for d in 0..grid.ndims() {
            let (minus, plus) = grid.shift(d, 1)?;
            let r = 2 * d as u32;
            nbrs.sources.extend([(minus, r + 1), (plus, r)]);
            nbrs.dests.extend([(minus, r), (plus, r + 1)]);
        }
        grid.nbrs = nbrs;
        Ok(grid)
    }

    /// The extent of each dimension.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Whether each dimension wraps around.
    pub fn periods(&self) -> &[bool] {
        &self.periods
    }

    /// Number of dimensions.
    pub fn ndims(&self) -> usize {
        self.dims.len()
    }

    /// The communicator underneath, for calls that want a `&Comm` by name.
    pub fn comm(&self) -> &Comm {
        &self.comm
    }

    /// This rank's coordinates in the grid.
    pub fn coords(&self) -> Vec<usize> {
        coords_of(&self.dims, self.comm.rank())
    }

    /// The coordinates of rank `rank` of the grid (`MPI_Cart_coords`).
    ///
    /// ```
    /// # let world = mpr::init()?;
    /// # let grid = world.cart_create(&[1, 1], &[false, false], false)?.unwrap();
    /// assert_eq!(grid.coords_of(0)?, [0, 0]);
    /// assert!(grid.coords_of(1).is_err()); // the grid has one rank
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn coords_of(&self, rank: usize) -> Result<Vec<usize>> {
        if rank >= self.comm.size() {
            return Err(Error::InvalidRank {
                rank,
                size: self.comm.size(),
            });
        }
        Ok(coords_of(&self.dims, rank))
    }

    /// The rank at `coords` (`MPI_Cart_rank`). A coordinate beyond the extent of a periodic
    /// dimension wraps around; beyond a non-periodic one it is an error.
    pub fn rank_of(&self, coords: &[usize]) -> Result<usize> {
        if coords.len() != self.dims.len() {
            return Err(bad(
                "rank_of",
                format!(
                    "{} coordinates for a grid of {} dimensions",
                    coords.len(),
                    self.dims.len()
                ),
            ));
        }
        let mut rank = 0usize;
        for (d, (&c, (&extent, &periodic))) in coords
            .iter()
            .zip(self.dims.iter().zip(&self.periods))
            .enumerate()
        {
            let c = if c < extent {
                c
            } else if periodic {
                c % extent
            } else {
                return Err(bad(
                    "rank_of",
                    format!("coordinate {c} of dimension {d} is beyond its extent {extent}"),
                ));
            };
            rank = rank * extent + c;
        }
        Ok(rank)
    }

    /// The ranks `disp` steps back and forward along dimension `dim` (`MPI_Cart_shift`): the
    /// source to receive from and the destination to send to in a shift by `disp`. `None` off
    /// an open edge; pass either straight to a send or receive (it completes at once).
    ///
    /// ```
    /// # let world = mpr::init()?;
    /// # let grid = world.cart_create(&[world.size()], &[false], false)?.unwrap();
    /// let (from, to) = grid.shift(0, 1)?;
    /// let mut ghost = [0.0f64; 8];
    /// grid.sendrecv(&[grid.rank() as f64; 8], to, 0, &mut ghost, from, 0)?; // no special edge case
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn shift(&self, dim: usize, disp: isize) -> Result<(Option<usize>, Option<usize>)> {
        let Some(&extent) = self.dims.get(dim) else {
            return Err(bad(
                "shift",
                format!(
                    "dimension {dim} of a grid of {} dimensions",
                    self.dims.len()
                ),
            ));
        };
        let me = self.coords();
        let moved = |by: isize| -> Option<usize> {
            let c = me[dim] as i128 + by as i128;
            let c = if self.periods[dim] {
                c.rem_euclid(extent as i128)
            } else if (0..extent as i128).contains(&c) {
                c
            } else {
                return None;
            };
            let mut at = me.clone();
            at[dim] = c as usize;
            self.rank_of(&at).ok()
        };
        Ok((moved(-disp), moved(disp)))
    }

    /// The sub-grids that keep the dimensions where `remain` is true (`MPI_Cart_sub`): with
    /// `[false, true]` on a 2-D grid, each row of ranks becomes a 1-D grid of its own.
    /// Collective over the grid.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let grid = world.cart_create(&[1, world.size()], &[false, true], false)?.unwrap();
    /// let row = grid.sub(&[false, true])?;
    /// assert_eq!(row.dims(), [world.size()]);
    /// row.barrier()?; // a communicator of its own
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn sub(&self, remain: &[bool]) -> Result<CartComm> {
        // Checked on every rank alike (the grid is the same everywhere), so all refuse together.
        if remain.len() != self.dims.len() {
            return Err(bad(
                "sub",
                format!(
                    "{} flags for a grid of {} dimensions",
                    remain.len(),
                    self.dims.len()
                ),
            ));
        }
        let me = self.coords();
        let (mut color, mut key) = (0u64, 0u64);
        for ((&c, &extent), &keep) in me.iter().zip(&self.dims).zip(remain) {
            if keep {
                key = key * extent as u64 + c as u64;
            } else {
                color = color * extent as u64 + c as u64;
            }
        }
        let color =
            u32::try_from(color).map_err(|_| bad("sub", "more sub-grids than a split can name"))?;
        let comm = self
            .comm
            .split(Some(color), key as i64)?
            .ok_or_else(|| bad("sub", "the split left this rank out"))?;
        CartComm::new(comm, kept(&self.dims, remain), kept(&self.periods, remain))
    }
}

/// The entries of `v` where `keep` is true.
fn kept<T: Copy>(v: &[T], keep: &[bool]) -> Vec<T> {
    v.iter()
        .zip(keep)
        .filter(|(_, &k)| k)
        .map(|(x, _)| *x)
        .collect()
}

/// The coordinates of `rank` in a grid of `dims`, C order.
fn coords_of(dims: &[usize], mut rank: usize) -> Vec<usize> {
    let mut c = vec![0; dims.len()];
    for (slot, &extent) in c.iter_mut().zip(dims).rev() {
        *slot = rank % extent;
        rank /= extent;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::coords_of;

    #[test]
    fn coordinates_are_in_c_order() {
        assert_eq!(coords_of(&[4, 3], 5), [1, 2]);
        assert_eq!(coords_of(&[2, 2, 2], 6), [1, 1, 0]);
        assert_eq!(coords_of(&[], 0), Vec::<usize>::new());
        for r in 0..24 {
            let c = coords_of(&[2, 3, 4], r);
            assert_eq!(c[0] * 12 + c[1] * 4 + c[2], r);
        }
    }
}
