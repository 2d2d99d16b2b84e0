//! Distributed graph topologies: `dist_graph_create_adjacent` (`MPI_Dist_graph_create_adjacent`),
//! where every rank names the ranks it receives from and sends to.
//!
//! **Agreement.** The graph must be the same seen from both ends: if rank `a` lists `b` among
//! its destinations `k` times, `b` lists `a` among its sources `k` times. Making the graph checks
//! that with one all-to-all of edge counts (and an allreduce so that every rank learns whether
//! any rank found a mismatch), so a graph that does not agree is an error on every rank, never a
//! neighbour collective that waits for a message nobody sends.

use std::ops::Deref;

use crate::coll::Neighbors;
use crate::comm::Comm;
use crate::error::Result;

/// A communicator with a graph of neighbours (see the module docs). Derefs to [`Comm`].
pub struct DistGraphComm {
    comm: Comm,
    sources: Vec<usize>,
    destinations: Vec<usize>,
    pub(super) nbrs: Neighbors,
}

impl Deref for DistGraphComm {
    type Target = Comm;
    fn deref(&self) -> &Comm {
        &self.comm
    }
}

impl std::fmt::Debug for DistGraphComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistGraphComm")
            .field("rank", &self.comm.rank())
            .field("sources", &self.sources)
            .field("destinations", &self.destinations)
            .finish()
    }
}

impl Comm {
    /// A communicator over the same ranks whose neighbours are a graph: this rank receives
    /// from `sources` and sends to `destinations` (ranks of this communicator; repeats allowed,
    /// paired in order). Collective; every edge must be listed at both ends (see the module
    /// docs). `reorder` is accepted and the ranks keep their order.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (r, n) = (world.rank(), world.size());
    /// // A ring that only turns one way.
    /// let g = world.dist_graph_create_adjacent(&[(r + n - 1) % n], &[(r + 1) % n], false)?;
    /// let mut got = [0u32];
    /// g.neighbor_allgather(&[r as u32], &mut got)?;
    /// assert_eq!(got[0] as usize, (r + n - 1) % n);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn dist_graph_create_adjacent(
        &self,
        sources: &[usize],
        destinations: &[usize],
        reorder: bool,
    ) -> Result<DistGraphComm> {
        let _ = reorder;
        let n = self.size();
        let out_of_range = sources.iter().chain(destinations).find(|&&r| r >= n);
        let mut sends = vec![0u64; n];
        let mut recvs = vec![0u64; n];
        if out_of_range.is_none() {
            for &d in destinations {
                sends[d] += 1;
            }
            for &s in sources {
                recvs[s] += 1;
            }
        }
        // What each rank says it sends to me, against what I say I receive from it.
        let mut told = vec![0u64; n];
        self.alltoall(&sends, &mut told)?;
        let mismatch = (0..n).find(|&r| told[r] != recvs[r]);
        let problem = match (out_of_range, mismatch) {
            (Some(&r), _) => Some(format!("rank {r} of a communicator of {n}")),
            (None, Some(r)) => Some(format!(
                "rank {r} lists this rank as a destination {} times, this rank lists it as a source {} times",
                told[r], recvs[r]
            )),
            (None, None) => None,
        };
        self.agree_args("dist_graph_create_adjacent", problem, None)?;
        let comm = self.dup()?;
        Ok(DistGraphComm {
            comm,
            sources: sources.to_vec(),
            destinations: destinations.to_vec(),
            nbrs: Neighbors {
                sources: sources.iter().map(|&s| (Some(s), 0)).collect(),
                dests: destinations.iter().map(|&d| (Some(d), 0)).collect(),
            },
        })
    }
}

impl DistGraphComm {
    /// The ranks this rank receives from, in order (`MPI_Dist_graph_neighbors`).
    pub fn sources(&self) -> &[usize] {
        &self.sources
    }

    /// The ranks this rank sends to, in order.
    pub fn destinations(&self) -> &[usize] {
        &self.destinations
    }

    /// The communicator underneath.
    pub fn comm(&self) -> &Comm {
        &self.comm
    }
}
