//! Large allreduces and broadcasts among the ranks of one host, through a second region of
//! shared memory that they pass through in rounds.
//!
//! **Why.** By message, a 1 MiB allreduce on one host moves every byte through the single copy
//! between processes several times (reduce-scatter, then allgather) and pays a message round for
//! each step; Open MPI's `coll/sm` and MPICH's shared-memory collectives instead copy each
//! vector once into shared memory, let every rank reduce its own slice of all of them in place,
//! and copy the result out: every byte is copied in once, read once by the one rank that reduces
//! it, and copied out once by each rank, with no message at all.
//!
//! **Allreduce.** The vector goes in rounds of at most `chunk` bytes (a whole number of
//! elements). In round `j` every rank copies its part of the vector into its slot of set
//! `j % 2`, all of it but slice `r` (its own, which no other rank reads); after a barrier, rank
//! `r` folds slice `r` of every slot in rank order (so every rank gets the same bits, whatever
//! the operation), its own part from its own vector, straight into its output, and writes it
//! into the result area of the set; after the next barrier every rank copies the others'
//! slices of the result out. (Folding into the output and leaving the own slice out of the
//! slots and of the copy-out took a 1 MiB allreduce on 2 ranks from 538 to 361 us here, on 4
//! from 1944 to 1539, medians of alternating runs: a third less memory traffic on 2 ranks.
//! Rounds of 64 KiB or 512 KiB instead of 256 KiB were slower: 476 and 599 us.) The copy-in
//! of round `j + 1` and the fold of round `j` share a barrier, so a call of `R` rounds costs
//! `R + 1` barriers. Sets alternate on a count of rounds kept across calls: a set is written
//! again two barriers after it was last read, by which time every rank has read it.
//!
//! **Broadcast.** The root copies round `j` into its slot of set `j % 2`, a barrier, the others
//! copy it out: `R` barriers.
//!
//! Every slot carries the round's number and the call's length, checked by every reader, as in
//! the small collectives. The region is a memfd of `2 (n + 1)` chunks (n = ranks of the
//! communicator), made at the communicator's first large collective; chunks are 256 KiB up to 15
//! ranks and shrink with more (32 KiB at 64 ranks) so a region stays at about 8 MiB or less up to
//! 255 ranks (16 KiB chunks beyond).

use super::{check_slot, scratch_bytes, slot_header, Comm, Node, Tick, LINE, NODE_BYTES};
use crate::engine::schedule::ByteCombine;
use crate::error::{Error, Result};
use crate::shm::Segment;

/// The largest round (bytes of one rank's slot).
const MAX_CHUNK: usize = 256 << 10;
/// The smallest one.
const MIN_CHUNK: usize = 16 << 10;
/// What the chunks of a region add up to, at most (before rounding down to a power of two).
const REGION_BYTES: usize = 4 << 20;

/// A communicator's use of the large region.
pub(super) enum Large {
    /// Not made yet (made at the first large collective).
    Untried,
    /// Some rank could not map it: large collectives go by message.
    Off,
    On(Region),
}

/// The mapped region and this rank's count of the rounds that went through it.
pub(super) struct Region {
    seg: Segment,
    n: usize,
    chunk: usize,
    /// Rounds passed, by allreduce and broadcast alike (their sets alternate on it).
    rounds: u32,
}

/// The chunk of an `n`-rank region: a power of two between [`MIN_CHUNK`] and [`MAX_CHUNK`].
fn chunk_for(n: usize) -> usize {
    let c = (REGION_BYTES / (n + 1)).clamp(MIN_CHUNK, MAX_CHUNK);
    1 << (usize::BITS - 1 - c.leading_zeros())
}

impl Region {
    fn bytes(n: usize, chunk: usize) -> usize {
        2 * chunk + 2 * n * (LINE + chunk)
    }

    /// The result area of set `set`.
    fn result(&self, set: u32) -> usize {
        (set as usize % 2) * self.chunk
    }

    /// Rank `r`'s slot in set `set`: a line of header, then the data.
    fn slot(&self, set: u32, r: usize) -> usize {
        2 * self.chunk + ((set as usize % 2) * self.n + r) * (LINE + self.chunk)
    }
}

/// `[lo, hi)`, the bytes of round `j` of a `len`-byte vector in rounds of `step` bytes.
fn span(j: usize, step: usize, len: usize) -> (usize, usize) {
    (j * step, ((j + 1) * step).min(len))
}

/// The bytes of `[lo, hi)` that rank `r` of `n` reduces (whole elements of `elem` bytes).
fn part(lo: usize, hi: usize, r: usize, n: usize, elem: usize) -> (usize, usize) {
    let e = (hi - lo) / elem;
    (lo + r * e / n * elem, lo + (r + 1) * e / n * elem)
}

impl Comm {
    /// Whether an allreduce or broadcast of `bytes` bytes in elements of `elem` bytes goes
    /// through the large region; makes it on the first call that could (a collective step:
    /// every rank calls this at the same point with the same arguments).
    pub(crate) fn use_node_large(&self, bytes: usize, elem: usize) -> Result<bool> {
        if bytes <= NODE_BYTES || !self.use_node(0)? {
            return Ok(false);
        }
        let known = self.with_node(|node| {
            Ok(match &node.large {
                Large::Untried => None,
                Large::Off => Some(false),
                Large::On(r) => Some(elem <= r.chunk),
            })
        })?;
        if let Some(on) = known {
            return Ok(on);
        }
        let (n, chunk) = (self.size(), chunk_for(self.size()));
        let seg = self.share_segment(c"mpr-node-large", Region::bytes(n, chunk), |_| {})?;
        let on = seg.is_some();
        self.with_node(|node| {
            node.large = match seg {
                Some(seg) => Large::On(Region {
                    seg,
                    n,
                    chunk,
                    rounds: 0,
                }),
                None => Large::Off,
            };
            Ok(())
        })?;
        Ok(on && elem <= chunk)
    }

    /// Allreduce of `send` into `recv` (same length, elements of `elem` bytes) through the
    /// large region, folding with `combine` in rank order.
    pub(crate) fn node_allreduce_large(
        &self,
        send: &[u8],
        recv: &mut [u8],
        elem: usize,
        combine: &ByteCombine<'_>,
    ) -> Result<()> {
        self.node_op("allreduce", |node, tick| {
            node.with_scratch(|node, scratch| {
                node.allreduce_large(scratch, send, recv, elem, combine, tick)
            })
        })
    }

    /// Broadcast of `buf` from `root` through the large region.
    pub(crate) fn node_broadcast_large(&self, buf: &mut [u8], root: usize) -> Result<()> {
        self.node_op("broadcast", |node, tick| {
            node.broadcast_large(buf, root, tick)
        })
    }
}

impl Node {
    fn region(&self) -> Result<&Region> {
        match &self.large {
            Large::On(r) => Ok(r),
            _ => Err(Error::InvalidArgument {
                what: "collective",
                detail: "no large shared region on this communicator".into(),
            }),
        }
    }

    fn count_rounds(&mut self, rounds: usize) {
        if let Large::On(r) = &mut self.large {
            r.rounds = r.rounds.wrapping_add(rounds as u32);
        }
    }

    /// Allreduce in rounds (module docs), folding this rank's slice of each round straight into
    /// `recv`, with `scratch` for the copies of the others' slots.
    fn allreduce_large(
        &mut self,
        scratch: &mut Vec<u128>,
        send: &[u8],
        recv: &mut [u8],
        elem: usize,
        combine: &ByteCombine<'_>,
        tick: Tick<'_>,
    ) -> Result<()> {
        let (len, n, me) = (send.len(), self.at.n, self.me);
        let (first, step) = {
            let r = self.region()?;
            (r.rounds, r.chunk / elem * elem)
        };
        let rounds = len.div_ceil(step);
        // Scratch for a copy of another rank's slot (16-byte aligned: any element type is).
        let most = (step / elem).div_ceil(n) * elem;
        let x = scratch_bytes(scratch, most);
        // Round j's slot holds all of the round but this rank's own slice: only the others
        // read a slot, each its own slice of it.
        let copy_in = |node: &Node, j: usize| -> Result<()> {
            let r = node.region()?;
            let (lo, hi) = span(j, step, len);
            let call = first.wrapping_add(j as u32);
            let slot = r.slot(call, me);
            let (a, b) = part(lo, hi, me, n, elem);
            r.seg.write(slot, &slot_header(call, len));
            r.seg.write(slot + LINE, &send[lo..a]);
            r.seg.write(slot + LINE + (b - lo), &send[b..hi]);
            Ok(())
        };
        copy_in(self, 0)?;
        self.barrier(tick)?;
        for j in 0..rounds {
            let call = first.wrapping_add(j as u32);
            let (lo, hi) = span(j, step, len);
            let (a, b) = part(lo, hi, me, n, elem);
            {
                // This rank's slice, folded in rank order in place in `recv` (its own part read
                // from `send`), then published in the result area for the others.
                let r = self.region()?;
                let acc = &mut recv[a..b];
                for from in 0..n {
                    let slot = r.slot(call, from);
                    check_slot(&r.seg, slot, call, len, "allreduce", from)?;
                    let theirs = |to: &mut [u8]| r.seg.read(slot + LINE + (a - lo), to);
                    match (from == 0, from == me) {
                        (true, true) => acc.copy_from_slice(&send[a..b]),
                        (true, false) => theirs(acc),
                        (false, true) => combine(acc, &send[a..b], false)?,
                        (false, false) => {
                            let x = &mut x[..b - a];
                            theirs(x);
                            combine(acc, x, false)?;
                        }
                    }
                }
                r.seg.write(r.result(call) + (a - lo), acc);
            }
            if j + 1 < rounds {
                copy_in(self, j + 1)?;
            }
            self.barrier(tick)?;
            // The others' slices of the result.
            let r = self.region()?;
            r.seg.read(r.result(call), &mut recv[lo..a]);
            r.seg.read(r.result(call) + (b - lo), &mut recv[b..hi]);
        }
        self.count_rounds(rounds);
        Ok(())
    }

    fn broadcast_large(&mut self, buf: &mut [u8], root: usize, tick: Tick<'_>) -> Result<()> {
        let len = buf.len();
        let (first, step) = {
            let r = self.region()?;
            (r.rounds, r.chunk)
        };
        let mut rounds = len.div_ceil(step);
        let mut failed = None;
        let mut j = 0;
        while j < rounds {
            let call = first.wrapping_add(j as u32);
            let (lo, hi) = span(j, step, len);
            if self.me == root {
                let r = self.region()?;
                let slot = r.slot(call, root);
                r.seg.write(slot, &slot_header(call, len));
                r.seg.write(slot + LINE, &buf[lo..hi]);
            }
            self.barrier(tick)?;
            if self.me != root && failed.is_none() {
                let r = self.region()?;
                let slot = r.slot(call, root);
                match check_slot(&r.seg, slot, call, len, "broadcast", root) {
                    Ok(()) => r.seg.read(slot + LINE, &mut buf[lo..hi]),
                    Err(err) => {
                        // A root of another length cannot tell: go through its rounds (the
                        // header says how many) so that it, and the barriers, go on.
                        let mut h = [0u8; super::HEADER];
                        r.seg.read(slot, &mut h);
                        let (got_call, got_len) = super::parse_header(h);
                        if got_call != call {
                            return Err(err);
                        }
                        rounds = usize::try_from(got_len).map_or(rounds, |l| l.div_ceil(step));
                        failed = Some(err);
                    }
                }
            }
            j += 1;
        }
        self.count_rounds(rounds);
        failed.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{make, member, sum_u64};
    use super::*;

    /// Threads stand in for ranks, each with mappings of its own: allreduces and broadcasts of
    /// many rounds (small chunks), of lengths that end inside a round, from rotating roots,
    /// all checked; the two share the sets of the region.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create, mmap or futex")]
    fn members_agree_through_the_large_region() {
        const CHUNK: usize = 4096;
        for (n, crowded, by_flags) in [(2, false, true), (3, true, false), (5, false, true)] {
            let small = make(n, by_flags);
            let large = Segment::create(c"mpr-test", Region::bytes(n, CHUNK)).unwrap();
            let (fd, large_fd) = (small.fd().unwrap(), large.fd().unwrap());
            let threads: Vec<_> = (0..n)
                .map(|me| {
                    std::thread::spawn(move || -> Result<()> {
                        let mut node = member(fd, n, me, crowded);
                        let seg =
                            Segment::open(std::process::id(), large_fd, Region::bytes(n, CHUNK))
                                .unwrap();
                        node.large = Large::On(Region {
                            seg,
                            n,
                            chunk: CHUNK,
                            rounds: 0,
                        });
                        let combine = sum_u64();
                        for i in 0..40usize {
                            let len = [1, 511, 512, 513, 2000][i % 5] + i;
                            let mine: Vec<u64> = (0..len as u64)
                                .map(|k| k * (me as u64 + 1) + i as u64)
                                .collect();
                            let mut out = vec![0u64; len];
                            let mut scratch = Vec::new();
                            node.allreduce_large(
                                &mut scratch,
                                bytemuck::cast_slice(&mine),
                                bytemuck::cast_slice_mut(&mut out),
                                8,
                                &combine,
                                &|| Ok(false),
                            )?;
                            let ranks = (1..=n as u64).sum::<u64>();
                            let want: Vec<u64> = (0..len as u64)
                                .map(|k| k * ranks + (n * i) as u64)
                                .collect();
                            assert_eq!(out, want, "allreduce {i}");
                            let root = i % n;
                            let mut b: Vec<u8> = if me == root {
                                (0..len * 3).map(|k| (k * 7 + i) as u8).collect()
                            } else {
                                vec![0; len * 3]
                            };
                            node.broadcast_large(&mut b, root, &|| Ok(false))?;
                            assert!(
                                b.iter().enumerate().all(|(k, &v)| v == (k * 7 + i) as u8),
                                "broadcast {i}"
                            );
                        }
                        Ok(())
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap().unwrap();
            }
        }
    }

    #[test]
    fn chunks_and_parts_cover_the_vector() {
        assert_eq!(chunk_for(2), MAX_CHUNK);
        assert_eq!(chunk_for(8), MAX_CHUNK);
        assert_eq!(chunk_for(15), MAX_CHUNK);
        assert_eq!(chunk_for(64), 32 << 10);
        for n in [2, 15, 16, 64, 255] {
            assert!(Region::bytes(n, chunk_for(n)) <= (8 << 20) + 2 * n * LINE);
        }
        for (len, step, n, elem) in [
            (1 << 20, 256 << 10, 8, 4),
            (1000 * 24, 4800, 7, 24),
            (9000, 8192, 3, 1),
        ] {
            let mut next = 0;
            for j in 0..len / step + 1 {
                let (lo, hi) = span(j, step, len);
                if lo >= len {
                    break;
                }
                for r in 0..n {
                    let (a, b) = part(lo, hi, r, n, elem);
                    assert_eq!(a, next, "parts of a round follow each other");
                    assert_eq!((a - lo) % elem, 0, "whole elements");
                    next = b;
                }
                assert_eq!(next, hi);
            }
            assert_eq!(next, len);
        }
    }
}
