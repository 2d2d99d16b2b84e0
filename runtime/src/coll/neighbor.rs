//! Neighbour collectives: every rank exchanges blocks with the ranks a topology names as its
//! neighbours, not with the whole communicator (`MPI_Neighbor_allgather`,
//! `MPI_Neighbor_alltoall`, their v-forms and nonblocking forms). The topologies (`topo/`)
//! say who the neighbours are; this file moves the blocks.
//!
//! **One round.** A neighbour collective is one round of the engine's schedule
//! (`engine/schedule.rs`): a send of a block to every destination and a receive of a block from
//! every source, all started at once, so no order of ranks can deadlock. Blocking forms run the
//! round to its end; nonblocking ones hand it to the engine as a request of the scope.
//!
//! **Which block goes where.** Receive block `i` holds what source `i` sent to this rank. A rank
//! may be a neighbour twice (a periodic dimension of extent 1 or 2, a graph with a repeated
//! edge), so each neighbour carries a round number in its tag: on a Cartesian grid the
//! direction (a block sent towards `+` in dimension `d` is the one the receiver takes from its
//! `-` side), on a graph 0 for every edge, where repeated edges pair up in the order listed
//! (messages of a pair with one tag arrive in the order sent). Neighbours that are "no rank"
//! (the open edges of a grid) are skipped: their receive blocks stay as they were.

use bytemuck::Pod;

use super::tag::NEIGHBOR;
use super::{bytes, bytes_mut};
use crate::comm::Comm;
use crate::engine::schedule::{Loc, Round};
use crate::error::{Error, Result};
use crate::scope::{Request, Scope};

/// The neighbours of this rank in a topology, in order: communicator ranks (`None`: no rank)
/// with the round each one's messages carry (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Neighbors {
    pub sources: Vec<(Option<usize>, u32)>,
    pub dests: Vec<(Option<usize>, u32)>,
}

/// Packed blocks of `counts[i]` elements of `size` bytes: (offset, length) in bytes.
fn packed(counts: &[usize], size: usize) -> Vec<(usize, usize)> {
    let mut at = 0;
    counts
        .iter()
        .map(|&c| {
            let b = (at * size, c * size);
            at += c;
            b
        })
        .collect()
}

fn bad(what: &'static str, detail: String) -> Error {
    Error::InvalidArgument { what, detail }
}

impl Comm {
    /// The round of a neighbour exchange: block `send[j]` (bytes of the input) to destination
    /// `j`, block `recv[i]` (bytes of the output) from source `i`.
    fn neighbor_round(
        &self,
        nbrs: &Neighbors,
        send: &[(usize, usize)],
        recv: &[(usize, usize)],
    ) -> Result<Round> {
        let tag = self.coll_tag(NEIGHBOR);
        let mut round = Round::default();
        for (&(peer, r), &(off, len)) in nbrs.dests.iter().zip(send) {
            if let Some(p) = peer {
                round
                    .sends
                    .push((self.world_rank(p)?, tag + r, Loc::Input(off, len)));
            }
        }
        for (&(peer, r), &(off, len)) in nbrs.sources.iter().zip(recv) {
            if let Some(p) = peer {
                round
                    .recvs
                    .push((self.world_rank(p)?, tag + r, Loc::Output(off, len)));
            }
        }
        Ok(round)
    }

    /// Checks one side of an exchange, `counts` for its `n` neighbours against a buffer of `len`
    /// elements, and plans its blocks (bytes, packed in order).
    fn neighbor_blocks<T: Pod>(
        what: &'static str,
        name: &str,
        counts: &[usize],
        n: usize,
        len: usize,
    ) -> Result<Vec<(usize, usize)>> {
        if counts.len() != n {
            return Err(bad(
                what,
                format!("{} {name} for {n} neighbours", counts.len()),
            ));
        }
        let total = counts
            .iter()
            .try_fold(0usize, |a, &c| a.checked_add(c))
            .ok_or_else(|| bad(what, format!("the {name} overflow")))?;
        if total != len {
            return Err(bad(
                what,
                format!("the {name} add up to {total} elements, the buffer has {len}"),
            ));
        }
        Ok(packed(counts, std::mem::size_of::<T>()))
    }

    /// Runs a neighbour exchange to its end.
    fn neighbor_run(&self, input: &[u8], output: &mut [u8], round: Round) -> Result<()> {
        self.engine
            .borrow_mut()
            .run_rounds(self.coll_ctx(), input, output, 0, vec![round], None)
    }

    /// `send` to every destination; block `i` of `recv` (as long as `send`) from source `i`.
    pub(crate) fn neighbor_allgather_in<T: Pod>(
        &self,
        nbrs: &Neighbors,
        send: &[T],
        recv: &mut [T],
    ) -> Result<()> {
        let counts = vec![send.len(); nbrs.sources.len()];
        let round =
            self.neighbor_allgatherv_round("neighbor_allgather", nbrs, send, recv, &counts)?;
        self.neighbor_run(bytes(send), bytes_mut(recv), round)
    }

    /// `send` to every destination; `counts[i]` elements from source `i`, packed in order.
    pub(crate) fn neighbor_allgatherv_in<T: Pod>(
        &self,
        nbrs: &Neighbors,
        send: &[T],
        recv: &mut [T],
        counts: &[usize],
    ) -> Result<()> {
        let round =
            self.neighbor_allgatherv_round("neighbor_allgatherv", nbrs, send, recv, counts)?;
        self.neighbor_run(bytes(send), bytes_mut(recv), round)
    }

    fn neighbor_allgatherv_round<T: Pod>(
        &self,
        what: &'static str,
        nbrs: &Neighbors,
        send: &[T],
        recv: &[T],
        counts: &[usize],
    ) -> Result<Round> {
        let r = Comm::neighbor_blocks::<T>(
            what,
            "receive counts",
            counts,
            nbrs.sources.len(),
            recv.len(),
        )?;
        let whole = (0, std::mem::size_of_val(send));
        self.begin_coll();
        self.neighbor_round(nbrs, &vec![whole; nbrs.dests.len()], &r)
    }

    /// Block `j` of `send` (`send_counts[j]` elements, packed) to destination `j`;
    /// `recv_counts[i]` elements from source `i`, packed.
    pub(crate) fn neighbor_alltoallv_in<T: Pod>(
        &self,
        nbrs: &Neighbors,
        send: &[T],
        send_counts: &[usize],
        recv: &mut [T],
        recv_counts: &[usize],
    ) -> Result<()> {
        let round = self.neighbor_alltoallv_round(nbrs, send, send_counts, recv, recv_counts)?;
        self.neighbor_run(bytes(send), bytes_mut(recv), round)
    }

    fn neighbor_alltoallv_round<T: Pod>(
        &self,
        nbrs: &Neighbors,
        send: &[T],
        send_counts: &[usize],
        recv: &[T],
        recv_counts: &[usize],
    ) -> Result<Round> {
        let what = "neighbor_alltoall";
        let s = Comm::neighbor_blocks::<T>(
            what,
            "send counts",
            send_counts,
            nbrs.dests.len(),
            send.len(),
        )?;
        let r = Comm::neighbor_blocks::<T>(
            what,
            "receive counts",
            recv_counts,
            nbrs.sources.len(),
            recv.len(),
        )?;
        self.begin_coll();
        self.neighbor_round(nbrs, &s, &r)
    }

    /// Equal blocks: `send` and `recv` divided evenly among the destinations and sources.
    pub(crate) fn neighbor_alltoall_counts(
        nbrs: &Neighbors,
        send: usize,
        recv: usize,
    ) -> Result<(Vec<usize>, Vec<usize>)> {
        let (d, s) = (nbrs.dests.len(), nbrs.sources.len());
        let per = |len: usize, n: usize, name: &str| -> Result<usize> {
            match n {
                0 if len == 0 => Ok(0),
                0 => Err(bad(
                    "neighbor_alltoall",
                    format!("{len} elements to {name} but no {name}"),
                )),
                _ if len % n != 0 => Err(bad(
                    "neighbor_alltoall",
                    format!("{len} elements do not divide among {n} {name}"),
                )),
                _ => Ok(len / n),
            }
        };
        let (a, b) = (per(send, d, "destinations")?, per(recv, s, "sources")?);
        if d > 0 && s > 0 && a != b {
            return Err(bad(
                "neighbor_alltoall",
                format!("blocks of {a} elements out but {b} in"),
            ));
        }
        Ok((vec![a; d], vec![b; s]))
    }

    /// Starts a neighbour exchange planned by `round` as a request of `s`.
    fn neighbor_start<'scope>(
        &self,
        s: &'scope Scope<'scope, '_>,
        input: &'scope [u8],
        output: &'scope mut [u8],
        round: Round,
    ) -> Result<Request<'scope>> {
        self.start_plan(s, input, output, (vec![round], 0), None)
    }

    pub(crate) fn ineighbor_allgather_in<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        nbrs: &Neighbors,
        send: &'scope [T],
        recv: &'scope mut [T],
    ) -> Result<Request<'scope>> {
        let counts = vec![send.len(); nbrs.sources.len()];
        let round =
            self.neighbor_allgatherv_round("neighbor_allgather", nbrs, send, recv, &counts)?;
        self.neighbor_start(s, bytes(send), bytes_mut(recv), round)
    }

    pub(crate) fn ineighbor_allgatherv_in<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        nbrs: &Neighbors,
        send: &'scope [T],
        recv: &'scope mut [T],
        counts: &[usize],
    ) -> Result<Request<'scope>> {
        let round =
            self.neighbor_allgatherv_round("neighbor_allgatherv", nbrs, send, recv, counts)?;
        self.neighbor_start(s, bytes(send), bytes_mut(recv), round)
    }

    pub(crate) fn ineighbor_alltoallv_in<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        nbrs: &Neighbors,
        (send, send_counts): (&'scope [T], &[usize]),
        (recv, recv_counts): (&'scope mut [T], &[usize]),
    ) -> Result<Request<'scope>> {
        let round = self.neighbor_alltoallv_round(nbrs, send, send_counts, recv, recv_counts)?;
        self.neighbor_start(s, bytes(send), bytes_mut(recv), round)
    }
}
