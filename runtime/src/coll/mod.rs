//! Collective operations, written against the point-to-point engine on the communicator's
//! collective context (`ctx + 1`), which user traffic can never match. One file per family.

#![forbid(unsafe_code)]

mod barrier;
