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
//! **Broadcast**, by flags, with no barrier: the `2 n` slots of both sets are buffers taken in
//! turn, one a round, on a count of broadcast rounds kept across calls. The root waits until
//! the `n - 1` readers of a buffer's last round are done with it, writes round `j` into it and
//! publishes the round's number; each reader waits for that number alone, copies the round out
//! and counts itself done. So a root runs up to `2 n` rounds ahead, and on a crowded host a
//! rank that has the CPU copies all the rounds that are ready instead of waiting at a barrier
//! for every other rank to be scheduled: a 1 MiB broadcast on 8 ranks (2 cores) took 358 us
//! against 407 with a barrier a round, and on 4 ranks 225 against 289 (medians of 5
//! alternating runs; Open MPI 502 and 277 in the same runs). An allreduce, which writes a
//! rank's own slots, first waits until the readers of those buffers are done.
//!
//! Every slot carries the round's number and the call's length, checked by every reader, as in
//! the small collectives (a broadcast round's words sit after the allreduce's header: see
//! [`BUF_CALL`]). The region is a memfd of `2 (n + 1)` chunks (n = ranks of the
//! communicator), made at the communicator's first large collective; chunks are 256 KiB up to 15
//! ranks and shrink with more (32 KiB at 64 ranks) so a region stays at about 8 MiB or less up to
//! 255 ranks (16 KiB chunks beyond).

use super::{
    check_header, check_slot, scratch_bytes, slot_header, Comm, Node, Tick, LINE, NODE_BYTES,
};
use crate::engine::schedule::ByteCombine;
use crate::error::{Error, Result};
use crate::shm::Segment;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

/// Offsets in a slot's header line of the words a broadcast round uses (an allreduce writes
/// only the first [`super::HEADER`] bytes): the round's number (with its sleeper count after
/// it), the root's byte count (8 bytes), and the readers done with it (sleepers after it).
const BUF_CALL: usize = 16;
const BUF_LEN: usize = 24;
const BUF_DONE: usize = 32;

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
    /// Allreduce rounds passed (their sets alternate on it).
    rounds: u32,
    /// Broadcast rounds passed (the buffer of each is the next in turn).
    bcasts: u32,
}

/// The two counts of rounds a region keeps.
enum Rounds {
    Allreduce,
    Broadcast,
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

    /// Sets up a new region: every broadcast buffer starts out read by all, free for a root.
    fn init(seg: &Segment, n: usize, chunk: usize) {
        for k in 0..2 * n {
            seg.word(Region::nth_slot(n, chunk, k) + BUF_DONE)
                .store(n as u32 - 1, Relaxed);
        }
    }

    /// The result area of set `set`.
    fn result(&self, set: u32) -> usize {
        (set as usize % 2) * self.chunk
    }

    /// Rank `r`'s slot in set `set`: a line of header, then the data.
    fn slot(&self, set: u32, r: usize) -> usize {
        Region::nth_slot(self.n, self.chunk, (set as usize % 2) * self.n + r)
    }

    /// Slot `k` of the `2 n` of an `n`-rank region.
    fn nth_slot(n: usize, chunk: usize, k: usize) -> usize {
        2 * chunk + (k % (2 * n)) * (LINE + chunk)
    }

    /// The buffer of broadcast round `call`: the slots of both sets in turn.
    fn buffer(&self, call: u32) -> usize {
        Region::nth_slot(self.n, self.chunk, call as usize)
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
        let seg = self.share_segment(c"mpr-node-large", Region::bytes(n, chunk), |seg| {
            Region::init(seg, n, chunk)
        })?;
        let on = seg.is_some();
        self.with_node(|node| {
            node.large = match seg {
                Some(seg) => Large::On(Region {
                    seg,
                    n,
                    chunk,
                    rounds: 0,
                    bcasts: 0,
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

    /// Adds `rounds` to the region's count of `kind` rounds.
    fn count_rounds(&mut self, kind: Rounds, rounds: usize) {
        if let Large::On(r) = &mut self.large {
            let count = match kind {
                Rounds::Allreduce => &mut r.rounds,
                Rounds::Broadcast => &mut r.bcasts,
            };
            *count = count.wrapping_add(rounds as u32);
        }
    }

    /// Waits until the `n - 1` readers of the broadcast buffer at `b` are done with its last
    /// round, so that it may be written again.
    fn wait_buffer_read(&self, b: usize, tick: Tick<'_>) -> Result<()> {
        let r = self.region()?;
        let readers = r.n as u32 - 1;
        self.wait_for_in(&r.seg, b + BUF_DONE, |d| d == readers, tick)
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
        // This rank's slots may be a broadcast's buffers still being read.
        for set in 0..2 {
            self.wait_buffer_read(self.region()?.slot(set, me), tick)?;
        }
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
        self.count_rounds(Rounds::Allreduce, rounds);
        Ok(())
    }

    /// Broadcast in rounds through the buffers of the region (module docs): the root fills one
    /// once all its readers are done with it and publishes it; each reader waits for it alone.
    fn broadcast_large(&mut self, buf: &mut [u8], root: usize, tick: Tick<'_>) -> Result<()> {
        let (len, n) = (buf.len(), self.at.n);
        let (first, step) = {
            let r = self.region()?;
            (r.bcasts, r.chunk)
        };
        let mut rounds = len.div_ceil(step);
        let (mut failed, mut root_len) = (None, len as u64);
        let mut j = 0;
        while j < rounds {
            let call = first.wrapping_add(j as u32).wrapping_add(1);
            let (lo, hi) = span(j, step, len);
            let r = self.region()?;
            let b = r.buffer(call);
            if self.me == root {
                self.wait_buffer_read(b, tick)?;
                r.seg.word(b + BUF_DONE).store(0, Relaxed);
                r.seg.write(b + BUF_LEN, &(len as u64).to_le_bytes());
                r.seg.write(b + LINE, &buf[lo..hi]);
                self.publish_in(&r.seg, b + BUF_CALL, call);
            } else {
                // Nobody else writes this buffer before this rank counts itself done.
                self.wait_for_in(&r.seg, b + BUF_CALL, |c| c == call, tick)?;
                let mut l = [0u8; 8];
                r.seg.read(b + BUF_LEN, &mut l);
                let got_len = u64::from_le_bytes(l);
                if got_len != root_len {
                    let err = check_header((call, got_len), call, len, "broadcast", root, true);
                    if j > 0 {
                        // The root's length changed between its rounds: nonsense in the region.
                        return err;
                    }
                    // A root of another length cannot tell: count this rank done on each of
                    // the root's rounds, or it would wait for ever.
                    root_len = got_len;
                    rounds = usize::try_from(got_len).map_or(usize::MAX, |l| l.div_ceil(step));
                    failed = err.err();
                }
                if failed.is_none() {
                    r.seg.read(b + LINE, &mut buf[lo..hi]);
                }
                if r.seg.word(b + BUF_DONE).fetch_add(1, SeqCst) + 1 == n as u32 - 1 {
                    self.wake_in(&r.seg, b + BUF_DONE);
                }
            }
            j += 1;
        }
        self.count_rounds(Rounds::Broadcast, rounds);
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
            Region::init(&large, n, CHUNK);
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
                            bcasts: 0,
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
