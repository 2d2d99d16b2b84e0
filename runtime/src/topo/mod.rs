//! Process topologies: grids of ranks that name neighbours, as MPI's chapter of that name.
//!
//! - `dims.rs`: [`dims_create`], a balanced grid for a number of ranks.
//! - `cart.rs`: [`CartComm`], a communicator over a Cartesian grid (coordinates, shifts, rows).
//! - `graph.rs`: [`DistGraphComm`], a communicator whose neighbours are a graph.
//! - `neighbor.rs`: the neighbour collectives of both.
//!
//! Built on the communicator layer (`split` and collectives): a topology is a communicator plus
//! the arithmetic of its grid, and adds no traffic of its own.

#![forbid(unsafe_code)]

mod cart;
mod dims;
mod graph;
mod neighbor;

pub use cart::CartComm;
pub use dims::dims_create;
pub use graph::DistGraphComm;
