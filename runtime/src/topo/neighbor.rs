//! The neighbour collectives of the topologies, the same methods on [`CartComm`] and
//! [`DistGraphComm`] (the blocks move in `coll/neighbor.rs`). On a Cartesian grid the
//! neighbours are, for each dimension in turn, the rank on the `-` side and the one on the `+`
//! side (`2 ndims` of them, "no rank" at open edges, whose blocks are skipped); on a graph, the
//! sources and destinations in the order given.

use bytemuck::Pod;

use super::{CartComm, DistGraphComm};
use crate::error::Result;
use crate::scope::{Request, Scope};

/// The neighbour collectives, for a topology type with a `comm` and its `nbrs`.
macro_rules! neighbor_collectives {
    ($t:ty) => {
        impl $t {
            /// Sends `send` to every destination and receives one block of `send.len()`
            /// elements from each source into `recv`, in order (`MPI_Neighbor_allgather`).
            pub fn neighbor_allgather<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
                self.comm().neighbor_allgather_in(&self.nbrs, send, recv)
            }

            /// Sends `send` to every destination; `counts[i]` elements from source `i`, packed
            /// in order in `recv` (`MPI_Neighbor_allgatherv`).
            pub fn neighbor_allgatherv<T: Pod>(
                &self,
                send: &[T],
                recv: &mut [T],
                counts: &[usize],
            ) -> Result<()> {
                self.comm()
                    .neighbor_allgatherv_in(&self.nbrs, send, recv, counts)
            }

            /// Block `j` of `send` to destination `j`, block `i` of `recv` from source `i`, all
            /// blocks of one size (`MPI_Neighbor_alltoall`).
            pub fn neighbor_alltoall<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
                let (sc, rc) = crate::comm::Comm::neighbor_alltoall_counts(
                    &self.nbrs,
                    send.len(),
                    recv.len(),
                )?;
                self.comm()
                    .neighbor_alltoallv_in(&self.nbrs, send, &sc, recv, &rc)
            }

            /// Block `j` of `send` (`send_counts[j]` elements, packed) to destination `j`;
            /// `recv_counts[i]` elements from source `i`, packed (`MPI_Neighbor_alltoallv`).
            pub fn neighbor_alltoallv<T: Pod>(
                &self,
                send: &[T],
                send_counts: &[usize],
                recv: &mut [T],
                recv_counts: &[usize],
            ) -> Result<()> {
                self.comm()
                    .neighbor_alltoallv_in(&self.nbrs, send, send_counts, recv, recv_counts)
            }

            /// Starts [`Self::neighbor_allgather`].
            pub fn ineighbor_allgather<'scope, T: Pod>(
                &self,
                s: &'scope Scope<'scope, '_>,
                send: &'scope [T],
                recv: &'scope mut [T],
            ) -> Result<Request<'scope>> {
                self.comm()
                    .ineighbor_allgather_in(s, &self.nbrs, send, recv)
            }

            /// Starts [`Self::neighbor_allgatherv`] (`counts` is read now).
            pub fn ineighbor_allgatherv<'scope, T: Pod>(
                &self,
                s: &'scope Scope<'scope, '_>,
                send: &'scope [T],
                recv: &'scope mut [T],
                counts: &[usize],
            ) -> Result<Request<'scope>> {
                self.comm()
                    .ineighbor_allgatherv_in(s, &self.nbrs, send, recv, counts)
            }

            /// Starts [`Self::neighbor_alltoall`].
            pub fn ineighbor_alltoall<'scope, T: Pod>(
                &self,
                s: &'scope Scope<'scope, '_>,
                send: &'scope [T],
                recv: &'scope mut [T],
            ) -> Result<Request<'scope>> {
                let (sc, rc) = crate::comm::Comm::neighbor_alltoall_counts(
                    &self.nbrs,
                    send.len(),
                    recv.len(),
                )?;
                self.comm()
                    .ineighbor_alltoallv_in(s, &self.nbrs, (send, &sc), (recv, &rc))
            }

            /// Starts [`Self::neighbor_alltoallv`] (the counts are read now).
            pub fn ineighbor_alltoallv<'scope, T: Pod>(
                &self,
                s: &'scope Scope<'scope, '_>,
                send: &'scope [T],
                send_counts: &[usize],
                recv: &'scope mut [T],
                recv_counts: &[usize],
            ) -> Result<Request<'scope>> {
                self.comm().ineighbor_alltoallv_in(
                    s,
                    &self.nbrs,
                    (send, send_counts),
                    (recv, recv_counts),
                )
            }
        }
    };
}

neighbor_collectives!(CartComm);
neighbor_collectives!(DistGraphComm);
