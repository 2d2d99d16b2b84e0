//! # mpr: message passing for parallel Rust programs
//!
//! A message-passing runtime in the spirit of MPI, written in Rust from the ground up: ranked
//! processes started by `mprun`, point-to-point messages matched by source and tag, and
//! collectives, over TCP between hosts and local sockets and shared memory within one.
//!
//! ## Hello
//!
//! ```no_run
//! fn main() -> mpr::Result<()> {
//!     let world = mpr::init()?;
//!     println!("hello from rank {} of {}", world.rank(), world.size());
//!     Ok(())
//! }
//! ```
//!
//! Run it with `mprun -n 4 target/release/hello`. Without `mprun` it runs as a world of one rank.
//! An error returned from `main` prints as its message (`Error: rank 1 failed: ...`).
//!
//! ## Using mpr from your own crate
//!
//! mpr is not on crates.io: depend on it by path (a checkout beside your crate) or by git, and
//! install the launcher from the same checkout, so that the two match:
//!
//! ```toml
//! [dependencies]
//! mpr = { path = "../mpr/runtime" }          # or: mpr = { git = "URL of the mpr repository" }
//! ```
//!
//! ```sh
//! cargo install --path ../mpr/launcher       # puts mprun in ~/.cargo/bin
//! cargo build --release && mprun -n 4 target/release/my_program
//! ```
//!
//! `mprun --help` lists its options and every `MPR_*` variable; the repository's README says
//! the same at length (hosts, exit codes, what each rank sees in its environment).
//!
//! ## Your own element types
//!
//! Buffers are slices of any [`Pod`] type ("plain old data": every bit pattern is a valid
//! value, no pointers, no padding): the primitive numbers, arrays of them, and your own
//! `#[repr(C)]` structs of them, which derive it. The derives come with mpr, so your crate needs
//! no `bytemuck` dependency of its own; tell them where the crate is with
//! `#[bytemuck(crate = "mpr::bytemuck")]`:
//!
//! ```
//! #[derive(Clone, Copy, Debug, PartialEq, mpr::Pod, mpr::Zeroable)]
//! #[bytemuck(crate = "mpr::bytemuck")]
//! #[repr(C)]
//! struct Particle {
//!     pos: [f64; 3],
//!     mass: f64,
//!     id: u32,
//!     _pad: u32, // the padding made explicit: 8 + 24 + 4 + 4 = 40 bytes, a multiple of 8
//! }
//!
//! let world = mpr::init()?;
//! let me = world.rank();
//! let out = [Particle { pos: [1.0, 2.0, 3.0], mass: 0.5, id: 7, _pad: 0 }; 10];
//! world.send(&out, me, 0)?;
//! let (got, _) = world.recv_vec::<Particle>(me, 0)?;
//! assert_eq!(got[9], out[9]);
//! # Ok::<(), mpr::Error>(())
//! ```
//!
//! A struct with padding does not derive `Pod` (its padding bytes are uninitialized, and
//! sending them would read uninitialized memory); the compiler says so:
//!
//! ```compile_fail
//! #[derive(Clone, Copy, mpr::Pod, mpr::Zeroable)]
//! #[bytemuck(crate = "mpr::bytemuck")]
//! #[repr(C)]
//! struct Padded {
//!     id: u32, // 4 bytes of padding follow, before the f64
//!     mass: f64,
//! }
//! ```
//!
//! Make the padding a field of its own (`_pad: u32` above), or order the fields from largest to
//! smallest alignment so there is none. Types that are not plain data (`bool`, enums,
//! `Option`, `String`, `Vec`) go through a plain twin: convert to a `#[repr(C)]` struct of
//! numbers (a `bool` as a `u8`, an enum as its discriminant) before sending, and back after.
//! `bytemuck`'s casts (`mpr::bytemuck::cast_slice`) view a slice of one Pod type as another.
//!
//! ## Point to point
//!
//! Buffers are slices of any [`Pod`] type; bytes go from the sender's slice to the receiver's
//! without intermediate copies for large messages. Messages between a pair with matching tags
//! arrive in the order sent.
//!
//! ```no_run
//! let world = mpr::init()?;
//! let (rank, size) = (world.rank(), world.size());
//! let mut token = [0u64];
//! if rank == 0 {
//!     world.send(&[42u64], 1 % size, 0)?;
//!     world.recv(&mut token, size - 1, 0)?;
//! } else {
//!     world.recv(&mut token, rank - 1, 0)?;
//!     world.send(&token, (rank + 1) % size, 0)?;
//! }
//! // Any source, any tag, size unknown in advance:
//! # if rank == 0 {
//! let (v, st) = world.recv_vec::<f64>(mpr::ANY_SOURCE, mpr::ANY_TAG)?;
//! println!("{} doubles from rank {} (tag {})", v.len(), st.source(), st.tag());
//! # }
//! # Ok::<(), mpr::Error>(())
//! ```
//!
//! `ssend` returns only once the receiver has matched the message; `sendrecv` exchanges without
//! deadlock; `probe`/`iprobe` look at a message without receiving it.
//!
//! ## Nonblocking
//!
//! Start operations, keep computing, then `wait` or `test`. Requests live in an [`mpr::scope`](scope),
//! which does not return before they have all completed, so buffers can be borrowed safely (even
//! a request leaked with `mem::forget` cannot outlive its buffer).
//!
//! ```no_run
//! let world = mpr::init()?;
//! let (rank, size) = (world.rank(), world.size());
//! let (left, right) = ((rank + size - 1) % size, (rank + 1) % size);
//! let edge = vec![rank as f64; 1024];
//! let mut ghost = vec![0.0f64; 1024];
//! mpr::scope(|s| -> mpr::Result<()> {
//!     let mut recv = world.irecv(s, &mut ghost, left, 0)?;
//!     let send = world.isend(s, &edge, right, 0)?;
//!     while recv.test()?.is_none() {
//!         // ... compute on the interior ...
//!     }
//!     send.wait()?;
//!     Ok(())
//! })?;
//! # Ok::<(), mpr::Error>(())
//! ```
//!
//! `issend` is the synchronous-mode variant; [`wait_all`], [`wait_any`], [`test_all`] and
//! [`test_any`] work on many requests.
//!
//! ## Collectives
//!
//! Every rank of a communicator calls its collectives in the same order; their traffic never
//! mixes with point-to-point traffic or with another communicator's.
//!
//! ```no_run
//! use mpr::Op;
//! let world = mpr::init()?;
//! let (rank, size) = (world.rank(), world.size());
//! let mut sum = [0.0f64];
//! world.allreduce(&[rank as f64], &mut sum, Op::Sum)?;
//! let mut all = vec![0u32; size];
//! world.allgather(&[rank as u32], &mut all)?;
//! let mut params = [0.0f32; 16];
//! world.broadcast(&mut params, 0)?;
//! // Communicators: rows of a process grid, with traffic of their own.
//! let row = world.split(Some((rank / 2) as u32), rank as i64)?.expect("every rank has a row");
//! row.barrier()?;
//! // Nonblocking: start, compute, wait.
//! let mut total = [0u64];
//! let mine = [rank as u64];
//! mpr::scope(|s| -> mpr::Result<()> {
//!     let r = world.iallreduce(s, &mine, &mut total, Op::Sum)?;
//!     // ... compute ...
//!     r.wait()?;
//!     Ok(())
//! })?;
//! # Ok::<(), mpr::Error>(())
//! ```
//!
//! Algorithms (each family in `coll/`, documented there): dissemination barrier; binomial
//! broadcast, reduce; recursive-doubling allreduce and, from `MPR_ALLREDUCE_LARGE` bytes,
//! Rabenseifner's reduce-scatter + allgather; ring allgather; pairwise all-to-all and
//! reduce-scatter; recursive-doubling scans; direct gather/scatter. Every collective has a
//! nonblocking form (`ibarrier`, `ibroadcast`, `iallreduce`, `ireduce`, `igather`, ...), run as
//! a schedule the progress engine advances, with the algorithm of its blocking twin.
//!
//! ## Borrow mistakes, and what to write instead
//!
//! The borrow checker turns the buffer mistakes of MPI programs into compile errors. The ones
//! users meet first, each with its fix:
//!
//! **The same buffer as input and output.** `allreduce(&v, &mut v, ..)` borrows `v` twice:
//!
//! ```compile_fail,E0502
//! let world = mpr::init().unwrap();
//! let mut v = vec![1.0f64; 4];
//! world.allreduce(&v, &mut v, mpr::Op::Sum).unwrap();
//! ```
//!
//! Fix: the in-place form.
//!
//! ```
//! let world = mpr::init()?;
//! let mut v = vec![1.0f64; 4];
//! world.allreduce_in_place(&mut v, mpr::Op::Sum)?;
//! # Ok::<(), mpr::Error>(())
//! ```
//!
//! **A temporary passed to a nonblocking call.** It is dropped at the end of the statement,
//! while the request may still read it:
//!
//! ```compile_fail,E0716
//! let world = mpr::init().unwrap();
//! let me = world.rank();
//! mpr::scope(|s| {
//!     let _r = world.isend(s, &vec![me as u8; 4], me, 0).unwrap();
//! });
//! ```
//!
//! Fix: name the buffer before the scope, so it outlives every request.
//!
//! ```
//! let world = mpr::init()?;
//! let me = world.rank();
//! let out = vec![me as u8; 4];
//! let mut inb = [0u8; 4];
//! mpr::scope(|s| -> mpr::Result<()> {
//!     let r = world.irecv(s, &mut inb, me, 0)?;
//!     world.isend(s, &out, me, 0)?.wait()?;
//!     r.wait()?;
//!     Ok(())
//! })?;
//! # Ok::<(), mpr::Error>(())
//! ```
//!
//! **Reading a receive buffer inside the scope**, or posting it again: it stays borrowed by
//! the request until the scope ends.
//!
//! ```compile_fail,E0502
//! let world = mpr::init().unwrap();
//! let me = world.rank();
//! let mut inb = [0u8; 4];
//! mpr::scope(|s| {
//!     let r = world.irecv(s, &mut inb, me, 0).unwrap();
//!     world.send(&[1u8; 4], me, 0).unwrap();
//!     r.wait().unwrap();
//!     println!("{}", inb[0]);
//! });
//! ```
//!
//! Fix: [`Comm::irecv_buf`], whose request hands the buffer back (or read it after the scope).
//!
//! ```
//! let world = mpr::init()?;
//! let me = world.rank();
//! let mut inb = [0u8; 4];
//! mpr::scope(|s| -> mpr::Result<()> {
//!     let r = world.irecv_buf(s, &mut inb, me, 0)?;
//!     world.send(&[1u8; 4], me, 0)?;
//!     let (back, _st) = r.wait()?;
//!     println!("{}", back[0]);
//!     Ok(())
//! })?;
//! # Ok::<(), mpr::Error>(())
//! ```
//!
//! **A closure for a nonblocking reduction that borrows a local**: the engine keeps it until
//! the collective completes, so it must own what it uses.
//!
//! ```compile_fail,E0597
//! let world = mpr::init().unwrap();
//! let x = [1u64];
//! let mut y = [0u64];
//! mpr::scope(|s| {
//!     let modulus = 7u64;
//!     let f = |a: &u64, b: &u64| (a + b) % modulus;
//!     world.iallreduce_with(s, &x, &mut y, f).unwrap().wait().unwrap();
//! });
//! ```
//!
//! Fix: a `move` closure.
//!
//! ```
//! let world = mpr::init()?;
//! let (x, mut y) = ([1u64], [0u64]);
//! mpr::scope(|s| -> mpr::Result<()> {
//!     let modulus = 7u64;
//!     world.iallreduce_with(s, &x, &mut y, move |a: &u64, b: &u64| (a + b) % modulus)?.wait()?;
//!     Ok(())
//! })?;
//! # Ok::<(), mpr::Error>(())
//! ```
//!
//! ## Errors
//!
//! Every call returns [`Result`]. Bad arguments (a rank out of range, a buffer too small) are
//! errors, never panics; a peer that died makes the operations involving it fail with
//! [`Error::PeerFailed`].
//!
//! ## Progress and waiting
//!
//! Communication progresses inside mpr calls. A waiting call spins briefly (adaptively; yielding
//! the CPU when ranks outnumber cores) and then sleeps in `epoll_wait`, so an idle rank costs no
//! CPU. Knobs: [`Tuning`].

#![deny(unsafe_op_in_unsafe_fn)]

mod bootstrap;
mod buf;
mod coll;
mod comm;
mod copy;
mod engine;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod init;
mod layout;
mod observe;
mod persistent;
mod scope;
mod shm;
mod sys;
mod topo;
mod transport;
pub mod tuning;
mod wire;

/// The `bytemuck` crate mpr is built with: its casts, and the path its derives need in a crate
/// that does not depend on `bytemuck` itself (`#[bytemuck(crate = "mpr::bytemuck")]`).
pub use bytemuck;
pub use bytemuck::{Pod, Zeroable};
pub use coll::op::{Op, Reduce};
#[cfg(feature = "serde")]
pub use comm::ValueRequest;
pub use comm::{
    Comm, Comparison, Dest, Group, Message, Source, Status, TagMatch, ANY_SOURCE, ANY_TAG,
    PROC_NULL,
};
pub use error::{Error, PeerCause, Result};
pub use init::{init, wtime, World};
pub use layout::Layout;
pub use persistent::{start_all, wait_all_persistent, Exchange, Persistent};
pub use scope::{
    scope, test_all, test_any, test_some, wait_all, wait_any, wait_some, BufRequest, Request,
    Scope, VecRequest,
};
/// The serde the value calls use, for `#[serde(crate = "mpr::serde")]` in a crate that has no
/// `serde` dependency of its own.
#[cfg(feature = "serde")]
pub use serde;
pub use topo::{dims_create, CartComm, DistGraphComm};
pub use tuning::Tuning;
