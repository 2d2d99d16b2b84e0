//! # mpr-launch: the launch contract between `mprun` and the ranks it starts
//!
//! Rank programs never use this crate: they link `mpr`, which reads the contract in
//! `mpr::init`. It is a crate of its own so that what the launcher and the runtime must agree
//! on lives in one place that both depend on, and none of it shows in `mpr`'s documentation or
//! API. Three parts:
//!
//! - [`env`]: the environment variables mprun sets for every rank ([`Bootstrap`]), parsed and
//!   checked in one place.
//! - [`rendezvous`]: the line protocol between a rank and mprun's rendezvous service (where
//!   ranks find each other, learn of ranks that ended, and answer `--timeout` reports).
//! - [`auth`]: the job's secret and the proofs every connection opens with.
//!
//! The contract is versioned with the workspace: an mprun and ranks built from different
//! checkouts are not supported (the same holds for every MPI implementation's launcher).

pub mod auth;
pub mod env;
pub mod rendezvous;

pub use auth::Secret;
pub use env::{BadEnv, Bootstrap};
