//! Plans of rounds for the collectives that run as engine schedules: the nonblocking forms
//! (`nonblocking.rs`) and the blocking v-collectives with displacements (`vector.rs`).
//!
//! Each plan is the algorithm of the blocking collective of the same family, written as
//! [`Round`]s over byte ranges ([`Loc`]) of the caller's input, output and the schedule's
//! scratch, so the progress engine can run it while the program computes:
//!
//! - **gather / scatter (and v):** direct, one round at the root.
//! - **allgather (and v):** all at once (one round, n - 1 messages each way) up to
//!   [`DIRECT_BYTES`] in all, else the ring (n - 1 rounds, one block each).
//! - **all-to-all (and v):** all at once up to [`DIRECT_BYTES`] per rank, else pairwise
//!   exchange (n - 1 rounds).
//! - **reduce:** the binomial tree of `reduce.rs`, combining in the same order, so a
//!   nonblocking reduce gives the bits of its blocking twin.
//! - **scan / exscan:** the recursive doubling of `scan.rs`, same order.
//! - **reduce-scatter (block):** the pairwise exchange of `scan.rs`, same order.
//!
//! Blocks are byte ranges `(offset, len)` per rank, checked by the caller ([`Blocks`]): inside
//! their buffer, and for receiving buffers not overlapping, so that two receives of one round
//! never write the same bytes.

use super::tag;
use crate::comm::Comm;
use crate::engine::schedule::{Loc, Local, Round};
use crate::error::{Error, Result};

/// Gathers and all-to-alls move everything in one round up to this many bytes (in all for an
/// allgather, per rank for an all-to-all); above, one block per round, which bounds what is in
/// flight at once.
const DIRECT_BYTES: usize = 64 << 10;

const SCAN: u32 = tag::ALLREDUCE + 0x100;
const REDUCE_SCATTER: u32 = tag::ALLREDUCE + 0x200;

/// Where each rank's block lies in a buffer, in bytes: `(offset, len)` per rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blocks(pub Vec<(usize, usize)>);

impl Blocks {
    /// Blocks of `counts[i]` elements of `size` bytes, packed in rank order.
    pub(crate) fn packed(what: &'static str, counts: &[usize], size: usize) -> Result<Blocks> {
        let mut at = 0usize;
        let mut v = Vec::with_capacity(counts.len());
        for &c in counts {
            let len = c.checked_mul(size).ok_or_else(|| too_big(what))?;
            v.push((at, len));
            at = at.checked_add(len).ok_or_else(|| too_big(what))?;
        }
        Ok(Blocks(v))
    }

    /// Blocks of `counts[i]` elements starting at element `displs[i]` (MPI's displacements).
    pub(crate) fn displaced(
        what: &'static str,
        counts: &[usize],
        displs: &[usize],
        size: usize,
    ) -> Result<Blocks> {
        if displs.len() != counts.len() {
            return Err(Error::InvalidArgument {
                what,
                detail: format!(
                    "{} displacements given for {} counts",
                    displs.len(),
                    counts.len()
                ),
            });
        }
        let v = counts
            .iter()
            .zip(displs)
            .map(|(&c, &d)| {
                let len = c.checked_mul(size).ok_or_else(|| too_big(what))?;
                let at = d.checked_mul(size).ok_or_else(|| too_big(what))?;
                Ok((at, len))
            })
            .collect::<Result<_>>()?;
        Ok(Blocks(v))
    }

    /// Checks one block per rank of `n`, each inside a buffer of `buf` bytes, and (for a buffer
    /// that receives, `disjoint`) no two overlapping.
    pub(crate) fn check(
        &self,
        what: &'static str,
        n: usize,
        buf: usize,
        disjoint: bool,
    ) -> Result<()> {
        if self.0.len() != n {
            return Err(Error::InvalidArgument {
                what,
                detail: format!("{} counts given for {n} ranks", self.0.len()),
            });
        }
        for (r, &(at, len)) in self.0.iter().enumerate() {
            if at.checked_add(len).is_none_or(|end| end > buf) {
                return Err(Error::InvalidArgument {
                    what,
                    detail: format!(
                        "the block of rank {r} (bytes {at}..{}) does not fit in a buffer of {buf} bytes",
                        at.saturating_add(len)
                    ),
                });
            }
        }
        if disjoint {
            let mut sorted: Vec<(usize, usize, usize)> = self
                .0
                .iter()
                .enumerate()
                .filter(|(_, b)| b.1 > 0)
                .map(|(r, &(at, len))| (at, len, r))
                .collect();
            sorted.sort_unstable();
            for w in sorted.windows(2) {
                if w[0].0 + w[0].1 > w[1].0 {
                    return Err(Error::InvalidArgument {
                        what,
                        detail: format!(
                            "the blocks of ranks {} and {} overlap in the receive buffer",
                            w[0].2, w[1].2
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    fn out(&self, r: usize) -> Loc {
        Loc::Output(self.0[r].0, self.0[r].1)
    }

    fn input(&self, r: usize) -> Loc {
        Loc::Input(self.0[r].0, self.0[r].1)
    }

    fn len(&self, r: usize) -> usize {
        self.0[r].1
    }
}

fn too_big(what: &'static str) -> Error {
    Error::InvalidArgument {
        what,
        detail: "the counts add up to more than memory can hold".into(),
    }
}

impl Comm {
    /// Gather: every rank's input (`send` bytes) into block `r` of the root's output.
    pub(crate) fn gather_plan(
        &self,
        send: usize,
        blocks: &Blocks,
        root: usize,
    ) -> Result<Vec<Round>> {
        let me = self.rank();
        let tag = self.coll_tag(tag::GATHER);
        if me != root {
            return Ok(vec![Round {
                sends: vec![(self.world_rank(root)?, tag, Loc::Input(0, send))],
                ..Round::default()
            }]);
        }
        let mut round = Round {
            then: vec![Local::Copy {
                from: Loc::Input(0, send),
                to: blocks.out(me),
            }],
            ..Round::default()
        };
        for r in (0..self.size()).filter(|&r| r != me) {
            round.recvs.push((self.world_rank(r)?, tag, blocks.out(r)));
        }
        Ok(vec![round])
    }

    /// Scatter: block `r` of the root's input to rank `r`'s output (`recv` bytes).
    pub(crate) fn scatter_plan(
        &self,
        recv: usize,
        blocks: &Blocks,
        root: usize,
    ) -> Result<Vec<Round>> {
        let me = self.rank();
        let tag = self.coll_tag(tag::SCATTER);
        if me != root {
            return Ok(vec![Round {
                recvs: vec![(self.world_rank(root)?, tag, Loc::Output(0, recv))],
                ..Round::default()
            }]);
        }
        let mut round = Round {
            then: vec![Local::Copy {
                from: blocks.input(me),
                to: Loc::Output(0, recv),
            }],
            ..Round::default()
        };
        for r in (0..self.size()).filter(|&r| r != me) {
            round
                .sends
                .push((self.world_rank(r)?, tag, blocks.input(r)));
        }
        Ok(vec![round])
    }

    /// Allgather: this rank's input into its block of every rank's output.
    pub(crate) fn allgather_plan(&self, blocks: &Blocks) -> Result<Vec<Round>> {
        let (n, me) = (self.size(), self.rank());
        let tag = self.coll_tag(tag::ALLGATHER);
        let own = Local::Copy {
            from: Loc::Input(0, blocks.len(me)),
            to: blocks.out(me),
        };
        let total: usize = blocks.0.iter().map(|b| b.1).sum();
        if total <= DIRECT_BYTES {
            let mut round = Round {
                then: vec![own],
                ..Round::default()
            };
            for r in (0..n).filter(|&r| r != me) {
                let w = self.world_rank(r)?;
                round.sends.push((w, tag, Loc::Input(0, blocks.len(me))));
                round.recvs.push((w, tag, blocks.out(r)));
            }
            return Ok(vec![round]);
        }
        // The ring: step s forwards the block received in step s - 1 (the own block first).
        let mut rounds = vec![Round {
            then: vec![own],
            ..Round::default()
        }];
        let (right, left) = (
            self.world_rank((me + 1) % n)?,
            self.world_rank((me + n - 1) % n)?,
        );
        for step in 0..n - 1 {
            let s = (me + n - step) % n;
            let r = (me + n - step - 1) % n;
            rounds.push(Round {
                sends: vec![(right, tag, blocks.out(s))],
                recvs: vec![(left, tag, blocks.out(r))],
                then: Vec::new(),
            });
        }
        Ok(rounds)
    }

    /// All-to-all: input block `i` to rank `i`, output block `j` from rank `j`.
    pub(crate) fn alltoall_plan(&self, send: &Blocks, recv: &Blocks) -> Result<Vec<Round>> {
        let (n, me) = (self.size(), self.rank());
        let tag = self.coll_tag(tag::ALLTOALL);
        let own = Local::Copy {
            from: send.input(me),
            to: recv.out(me),
        };
        let mine: usize = send.0.iter().map(|b| b.1).sum();
        if mine <= DIRECT_BYTES {
            let mut round = Round {
                then: vec![own],
                ..Round::default()
            };
            for r in (0..n).filter(|&r| r != me) {
                let w = self.world_rank(r)?;
                round.sends.push((w, tag, send.input(r)));
                round.recvs.push((w, tag, recv.out(r)));
            }
            return Ok(vec![round]);
        }
        let mut rounds = vec![Round {
            then: vec![own],
            ..Round::default()
        }];
        for step in 1..n {
            let to = (me + step) % n;
            let from = (me + n - step) % n;
            rounds.push(Round {
                sends: vec![(self.world_rank(to)?, tag, send.input(to))],
                recvs: vec![(self.world_rank(from)?, tag, recv.out(from))],
                then: Vec::new(),
            });
        }
        Ok(rounds)
    }

    /// Reduce of `len` bytes to `root` by the binomial tree of `reduce.rs` (same partners and
    /// order). The root folds into its output; the others into scratch `[0, len)`; incoming
    /// blocks land in the scratch after that. Returns the rounds and the scratch size.
    pub(crate) fn reduce_plan(&self, len: usize, root: usize) -> Result<(Vec<Round>, usize)> {
        let (n, me) = (self.size(), self.rank());
        let tag = self.coll_tag(tag::REDUCE);
        let (acc, tmp, scratch) = if me == root {
            (Loc::Output(0, len), Loc::Scratch(0, len), len)
        } else {
            (Loc::Scratch(0, len), Loc::Scratch(len, len), 2 * len)
        };
        let mut rounds = vec![Round {
            then: vec![Local::Copy {
                from: Loc::Input(0, len),
                to: acc,
            }],
            ..Round::default()
        }];
        let r = (me + n - root) % n;
        let abs = |rel: usize| self.world_rank((rel + root) % n);
        let mut mask = 1;
        while mask < n {
            if r & mask != 0 {
                rounds.push(Round {
                    sends: vec![(abs(r - mask)?, tag, acc)],
                    ..Round::default()
                });
                break;
            }
            if r + mask < n {
                rounds.push(Round {
                    recvs: vec![(abs(r + mask)?, tag, tmp)],
                    then: vec![Local::Combine {
                        acc,
                        x: tmp,
                        x_lower: false,
                    }],
                    ..Round::default()
                });
            }
            mask <<= 1;
        }
        Ok((rounds, scratch))
    }

    /// Inclusive (or exclusive) prefix reduction of `len` bytes by the recursive doubling of
    /// `scan.rs`: the partial result of this rank's block in scratch `[0, len)`, incoming
    /// partials in `[len, 2 len)`. Returns the rounds and the scratch size.
    pub(crate) fn scan_plan(&self, len: usize, inclusive: bool) -> Result<(Vec<Round>, usize)> {
        let (n, me) = (self.size(), self.rank());
        let tag = self.coll_tag(SCAN);
        let (partial, tmp, out) = (
            Loc::Scratch(0, len),
            Loc::Scratch(len, len),
            Loc::Output(0, len),
        );
        let input = Loc::Input(0, len);
        let mut first = vec![Local::Copy {
            from: input,
            to: partial,
        }];
        if inclusive {
            first.push(Local::Copy {
                from: input,
                to: out,
            });
        }
        let mut rounds = vec![Round {
            then: first,
            ..Round::default()
        }];
        let mut have = inclusive;
        let mut mask = 1;
        while mask < n {
            let partner = me ^ mask;
            if partner < n {
                let w = self.world_rank(partner)?;
                let then = if partner < me {
                    let into_out = if have {
                        Local::Combine {
                            acc: out,
                            x: tmp,
                            x_lower: true,
                        }
                    } else {
                        Local::Copy { from: tmp, to: out }
                    };
                    have = true;
                    vec![
                        Local::Combine {
                            acc: partial,
                            x: tmp,
                            x_lower: true,
                        },
                        into_out,
                    ]
                } else {
                    vec![Local::Combine {
                        acc: partial,
                        x: tmp,
                        x_lower: false,
                    }]
                };
                rounds.push(Round {
                    sends: vec![(w, tag, partial)],
                    recvs: vec![(w, tag, tmp)],
                    then,
                });
            }
            mask <<= 1;
        }
        Ok((rounds, 2 * len))
    }

    /// Reduce-scatter of blocks of `block` bytes by pairwise exchange (`scan.rs`, same order):
    /// this rank's block folded in its output, incoming contributions in the scratch.
    pub(crate) fn reduce_scatter_plan(&self, block: usize) -> Result<(Vec<Round>, usize)> {
        let (n, me) = (self.size(), self.rank());
        let tag = self.coll_tag(REDUCE_SCATTER);
        let (out, tmp) = (Loc::Output(0, block), Loc::Scratch(0, block));
        let mut rounds = vec![Round {
            then: vec![Local::Copy {
                from: Loc::Input(me * block, block),
                to: out,
            }],
            ..Round::default()
        }];
        for step in 1..n {
            let to = (me + step) % n;
            let from = (me + n - step) % n;
            rounds.push(Round {
                sends: vec![(self.world_rank(to)?, tag, Loc::Input(to * block, block))],
                recvs: vec![(self.world_rank(from)?, tag, tmp)],
                then: vec![Local::Combine {
                    acc: out,
                    x: tmp,
                    x_lower: false,
                }],
            });
        }
        Ok((rounds, block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_checked() {
        let b = Blocks::packed("t", &[1, 2, 3], 4).unwrap();
        assert_eq!(b.0, vec![(0, 4), (4, 8), (12, 12)]);
        assert!(b.check("t", 3, 24, true).is_ok());
        assert!(
            b.check("t", 3, 23, true).is_err(),
            "the last block leaves the buffer"
        );
        assert!(b.check("t", 2, 24, true).is_err(), "one block per rank");
        let d = Blocks::displaced("t", &[2, 2], &[4, 0], 8).unwrap();
        assert_eq!(d.0, vec![(32, 16), (0, 16)]);
        assert!(d.check("t", 2, 48, true).is_ok(), "any order, with gaps");
        let overlap = Blocks::displaced("t", &[2, 2], &[0, 1], 1).unwrap();
        assert!(overlap.check("t", 2, 4, true).is_err());
        assert!(
            overlap.check("t", 2, 4, false).is_ok(),
            "a send buffer may repeat bytes"
        );
        let empty = Blocks::displaced("t", &[0, 2], &[1, 0], 1).unwrap();
        assert!(
            empty.check("t", 2, 2, true).is_ok(),
            "an empty block overlaps nothing"
        );
        assert!(Blocks::displaced("t", &[1], &[], 1).is_err());
        assert!(Blocks::packed("t", &[usize::MAX], 2).is_err());
        assert!(Blocks::displaced("t", &[1], &[usize::MAX], 4).is_err());
    }
}
