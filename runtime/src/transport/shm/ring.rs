//! A single-producer, single-consumer byte ring in memory two processes share: the path of every
//! frame from one rank to another of its host once their link has moved to shared memory.
//!
//! A byte stream to its users: the frame reader and writer of a socket (`net/peer.rs`) run over
//! it unchanged (header, then payload straight into its destination), a frame larger than the
//! ring streams through it in pieces, and no message size needs a cell size chosen in advance.
//! Inside, the stream is cut into *records*, each opened by an 8-byte record header whose first
//! word, stored last, says the record is complete: the consumer polls that word at its own
//! position, in the cache line that holds the record's first bytes, so a small message costs one
//! cache line moving from the producer's core to the consumer's (the 48-byte frame header, an
//! 8-byte payload and the record header fill one 64-byte line exactly). A separate "tail"
//! counter, as a plain byte ring has, would cost a second line per message: that is what Open
//! MPI's fast boxes and MPICH's cells avoid the same way.
//!
//! Layout:
//!
//! | offset | what | written by |
//! | --- | --- | --- |
//! | 128 | `head`: the stream position up to which records are consumed (mod 2^32) | consumer |
//! | 192 | `sleeping`: the consumer sleeps in the kernel | consumer sets, producer clears |
//! | 256 | `want_space`: the producer waits for room | producer sets, consumer clears |
//! | 4096.. | `cap` bytes of records (a power of two) | producer |
//!
//! A record at stream position `p` (a multiple of [`ALIGN`]) is `size: u32, len: u32`, then
//! `len` bytes, then padding up to `p + size`, where the next record goes. `size` is written
//! last, with release; the consumer loads it with acquire, and 0 means "not yet". So that no
//! older bytes (of a lap before, where payload may have lain) ever pass for a header, the
//! consumer zeroes the first word of every line of a record it has consumed, and only then
//! stores `head` (with release); the producer loads `head` with acquire before it reuses the
//! space, so every line start it has not written since is 0, and the consumer finds at its
//! position either 0 or a record. The consumer clears, not the producer: a producer that zeroed
//! the word beyond each record it publishes (the other way to keep the invariant) would take
//! that line from the consumer's cache on every message, and the consumer, looking there next,
//! would take it back: two more crossings of a line per message, which measured 0.42 against
//! 0.30 us one way in a ping-pong of the bare ring. One line of the ring always stays free.
//!
//! Sleeping is Dekker's handshake with sequentially consistent fences: the consumer sets
//! `sleeping`, fences, and looks once more at the word where the next record's `end` goes; the
//! producer publishes a record, fences, and looks at `sleeping`. At least one of them sees the
//! other's store, so either the consumer does not sleep or the producer rings its doorbell (the
//! same for `want_space` the other way, with one difference: the consumer's fence and look at
//! `want_space` need not follow every read, only come before long, so they wait until it
//! finds the ring empty, is about to sleep, or has freed a quarter of the ring, whichever is
//! first ([`Consumer::check_waiter`]). On every read, the fence would wait for the read's own
//! stores (the cleared lines, which the producer last wrote) to leave for the producer's cache,
//! on the path of the message just read: a producer that waits for space is rare, a message
//! read while its reply is due is every message). Checked under `loom` (the `loom` tests below,
//! `RUSTFLAGS="--cfg loom"`); the position arithmetic is pure functions, checked under Miri.
//!
//! The other process is trusted with nothing: a record header that claims a length that does not
//! fit its size, or a `head` that is not within `cap` bytes behind the producer, is a
//! [`Corrupt`] error, which fails the peer; every copy is bounds-checked by [`Mem`], and bytes
//! are only ever copied in and out, never borrowed.

use std::io::IoSlice;

/// Offsets of the control words.
const HEAD: usize = 128;
const SLEEPING: usize = 192;
const WANT_SPACE: usize = 256;
/// Where the data starts: a page of its own for the control words.
pub(crate) const DATA: usize = 4096;
/// Records start at multiples of this: a cache line.
pub(crate) const ALIGN: u32 = 64;
/// Bytes of a record header.
const REC: u32 = 8;
/// The most a record carries, so that a large frame streams through the ring in pieces that the
/// consumer copies out while the producer copies the next ones in: 16 KiB and a line, so that
/// a 16 KiB message and its 48-byte header go whole, in one record (the receive of a whole
/// frame then copies its payload straight out of the ring: 16 KiB one way took 1.47-1.50 us
/// against 1.87-1.96 with 16 KiB records; BENCHMARKS.md).
const MAX_RECORD: usize = (16 << 10) + 64;

/// The smallest and largest ring.
pub(crate) const MIN_CAP: usize = 4096;
pub(crate) const MAX_CAP: usize = 1 << 30;

/// What a ring lives in: a shared segment in mpr, a model of one under `loom`.
pub(crate) trait Mem {
    /// The 4-byte word at `offset` (a control word, or a word of a record header).
    fn load(&self, offset: usize, acquire: bool) -> u32;
    fn store(&self, offset: usize, v: u32, release: bool);
    fn swap(&self, offset: usize, v: u32) -> u32;
    /// A sequentially consistent fence.
    fn fence(&self);
    /// Copies `src` in at `offset` / out into `dst`.
    fn write(&self, offset: usize, src: &[u8]);
    fn read(&self, offset: usize, dst: &mut [u8]);
}

/// The ordering of a [`Mem::load`]: acquire, or relaxed.
pub(crate) fn load_order(acquire: bool) -> std::sync::atomic::Ordering {
    use std::sync::atomic::Ordering::{Acquire, Relaxed};
    if acquire {
        Acquire
    } else {
        Relaxed
    }
}

/// The ordering of a [`Mem::store`]: release, or relaxed.
pub(crate) fn store_order(release: bool) -> std::sync::atomic::Ordering {
    use std::sync::atomic::Ordering::{Relaxed, Release};
    if release {
        Release
    } else {
        Relaxed
    }
}

/// The peer wrote what no correct peer writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupt(pub String);

/// Bytes between `head` and `next` (the producer's next record), if that is a possible count.
pub(crate) fn used(head: u32, next: u32, cap: u32) -> Option<u32> {
    let n = next.wrapping_sub(head);
    (n <= cap).then_some(n)
}

/// Where `len` bytes at stream position `pos` lie in a ring of `cap` bytes: one span, or two
/// when they wrap around the end, as (offset in the data, length) pairs.
#[inline]
pub(crate) fn spans(pos: u32, len: usize, cap: usize) -> [(usize, usize); 2] {
    let at = pos as usize & (cap - 1);
    let first = len.min(cap - at);
    [(at, first), (0, len - first)]
}

/// The size of a record of `len` bytes, header and padding included.
pub(crate) fn record_size(len: u32) -> u32 {
    (REC + len).div_ceil(ALIGN) * ALIGN
}

/// Checks the header `size, len` of a record: `None` while it is not written yet (`size` 0),
/// its length once it is, an error if it cannot be a record of a ring of `cap` bytes.
pub(crate) fn record(size: u32, len: u32, cap: u32) -> Result<Option<u32>, Corrupt> {
    if size == 0 {
        return Ok(None);
    }
    if size > cap - ALIGN || len > size - REC.min(size) || record_size(len) != size {
        return Err(Corrupt(format!(
            "a record of {size} bytes says it holds {len}"
        )));
    }
    Ok(Some(len))
}

/// The size of a ring's segment for `cap` data bytes.
pub(crate) fn segment_len(cap: usize) -> usize {
    DATA + cap
}

/// The writing end.
pub(crate) struct Producer<M: Mem> {
    mem: M,
    cap: usize,
    /// Where the next record goes.
    next: u32,
    /// The consumer's `head` as last loaded: space is known free up to it without a load.
    head_seen: u32,
}

/// The reading end.
pub(crate) struct Consumer<M: Mem> {
    mem: M,
    cap: usize,
    /// The next byte to read, inside the current record (or at its end).
    pos: u32,
    /// The end of the current record's bytes.
    data_end: u32,
    /// Where the current record starts (every record before it is consumed).
    start: u32,
    /// Up to where consumed records are cleared and `head` says so (see [`Consumer::release`]).
    freed: u32,
    /// Bytes freed since the last look at `want_space` (see [`Consumer::check_waiter`]).
    unchecked: u32,
    /// Where the next record starts.
    next: u32,
}

/// Rings of mpr's own are [`MIN_CAP`] or more (the models under `loom` use tiny ones).
fn check_cap(cap: usize) {
    assert!(
        cap.is_power_of_two() && cap >= ALIGN as usize && cap <= MAX_CAP,
        "ring of {cap} bytes"
    );
}

impl<M: Mem> Producer<M> {
    /// The producer of a new ring (its memory zero-filled) of `cap` bytes.
    pub(crate) fn new(mem: M, cap: usize) -> Producer<M> {
        check_cap(cap);
        Producer {
            mem,
            cap,
            next: 0,
            head_seen: 0,
        }
    }

    /// The memory, for its owner (to close a segment's descriptor, say).
    pub(crate) fn mem_mut(&mut self) -> &mut M {
        &mut self.mem
    }

    /// Bytes free for records now; `fresh` loads the consumer's `head` first.
    fn space(&mut self, fresh: bool) -> Result<u32, Corrupt> {
        let cap = self.cap as u32;
        if fresh {
            self.head_seen = self.mem.load(HEAD, true);
        }
        match used(self.head_seen, self.next, cap) {
            Some(n) => Ok(cap - n),
            None => Err(Corrupt(format!(
                "the reader's position {} is not within {cap} bytes behind {}",
                self.head_seen, self.next
            ))),
        }
    }

    /// Copies as much of `bufs` as fits into one record, in order, and publishes it: `Ok(0)`
    /// when the ring is full (or `bufs` empty).
    pub(crate) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize, Corrupt> {
        let want = bufs.iter().map(|b| b.len()).sum::<usize>();
        self.write_pieces(bufs.iter().map(|b| &**b), want)
    }

    /// [`Producer::write_vectored`] of the slices `pieces` yields, `want` bytes of them in all
    /// (a laid-out payload's blocks, gathered as they come: no slice array to build).
    pub(crate) fn write_pieces<'a>(
        &mut self,
        pieces: impl Iterator<Item = &'a [u8]>,
        want: usize,
    ) -> Result<usize, Corrupt> {
        let want = want.min(MAX_RECORD);
        if want == 0 {
            return Ok(0);
        }
        // A record needs its size and a line beyond it, for the next record's header.
        let mut room = self.space(false)?;
        if room < record_size(want as u32) + ALIGN {
            room = self.space(true)?;
        }
        if room < 2 * ALIGN {
            return Ok(0);
        }
        // What is wanted, or what the room allows (room is whole lines: a multiple of ALIGN).
        let len = if record_size(want as u32) + ALIGN <= room {
            want as u32
        } else {
            room - ALIGN - REC
        };
        let mut done = 0usize;
        for b in pieces {
            let n = b.len().min(len as usize - done);
            if n == 0 {
                continue;
            }
            self.copy_in(REC as usize + done, &b[..n]);
            done += n;
            if done == len as usize {
                break;
            }
        }
        let at = DATA + (self.next as usize & (self.cap - 1));
        let size = record_size(len);
        let end = self.next.wrapping_add(size);
        self.mem.store(at + 4, len, false);
        self.mem.store(at, size, true);
        self.next = end;
        Ok(done)
    }

    /// Copies all of `bufs` into one record and publishes it, if the ring has room for it now:
    /// true if it did, false (nothing written) if `bufs` are empty, more than a record holds,
    /// or more than fits.
    pub(crate) fn write_whole(&mut self, bufs: &[IoSlice<'_>]) -> Result<bool, Corrupt> {
        let want = bufs.iter().map(|b| b.len()).sum::<usize>();
        if want == 0 || want > MAX_RECORD {
            return Ok(false);
        }
        let need = record_size(want as u32) + ALIGN;
        if self.space(false)? < need && self.space(true)? < need {
            return Ok(false);
        }
        Ok(self.write_vectored(bufs)? == want)
    }

    /// Copies `src` to stream position `next + offset` (not yet published).
    #[inline(always)]
    fn copy_in(&self, offset: usize, src: &[u8]) {
        let [(a, n), (b, m)] = spans(self.next.wrapping_add(offset as u32), src.len(), self.cap);
        self.mem.write(DATA + a, &src[..n]);
        if m > 0 {
            self.mem.write(DATA + b, &src[n..n + m]);
        }
    }

    /// After a write: whether the consumer sleeps and must be woken (it then no longer counts
    /// as sleeping: one doorbell per sleep).
    pub(crate) fn take_sleeper(&self) -> bool {
        self.mem.fence();
        self.mem.load(SLEEPING, false) != 0 && self.mem.swap(SLEEPING, 0) != 0
    }

    /// Before sleeping with bytes still to write: ask the consumer to ring when it frees space.
    /// False if there is room already (do not sleep: write).
    pub(crate) fn wait_for_space(&mut self) -> Result<bool, Corrupt> {
        self.mem.store(WANT_SPACE, 1, false);
        self.mem.fence();
        if self.space(true)? >= 2 * ALIGN {
            self.mem.store(WANT_SPACE, 0, false);
            return Ok(false);
        }
        Ok(true)
    }
}

impl<M: Mem> Consumer<M> {
    /// The consumer of the ring of `cap` bytes in `mem`, from its start.
    pub(crate) fn new(mem: M, cap: usize) -> Consumer<M> {
        check_cap(cap);
        Consumer {
            mem,
            cap,
            pos: 0,
            data_end: 0,
            start: 0,
            freed: 0,
            unchecked: 0,
            next: 0,
        }
    }

    /// Moves to the next record if the current one is read and the next is complete. True if
    /// bytes are ready.
    #[inline]
    fn ready(&mut self) -> Result<bool, Corrupt> {
        if self.pos != self.data_end {
            return Ok(true);
        }
        self.next_record()
    }

    /// [`Consumer::ready`] once the current record is read: the next one, if it is complete.
    fn next_record(&mut self) -> Result<bool, Corrupt> {
        // The first look after a read frees what it consumed.
        self.release();
        let at = DATA + (self.next as usize & (self.cap - 1));
        let size = self.mem.load(at, true);
        if size == 0 {
            return Ok(false); // the common case of an idle ring: one load
        }
        let len = self.mem.load(at + 4, false);
        match record(size, len, self.cap as u32)? {
            None => Ok(false),
            Some(len) => {
                self.start = self.next;
                self.pos = self.next.wrapping_add(REC);
                self.data_end = self.pos.wrapping_add(len);
                self.next = self.next.wrapping_add(size);
                Ok(true)
            }
        }
    }

    /// Bytes left to read in the current record (moving to the next one if the current one is
    /// read and the next is complete): 0 when none are ready.
    pub(crate) fn record_left(&mut self) -> Result<usize, Corrupt> {
        Ok(if self.ready()? {
            self.data_end.wrapping_sub(self.pos) as usize
        } else {
            0
        })
    }

    /// Copies up to `dst.len()` bytes of the current record, from `offset` bytes on, out
    /// without consuming them: the count (0 when none are ready).
    pub(crate) fn peek(&mut self, offset: usize, dst: &mut [u8]) -> Result<usize, Corrupt> {
        if !self.ready()? {
            return Ok(0);
        }
        let left = (self.data_end.wrapping_sub(self.pos) as usize).saturating_sub(offset);
        let n = left.min(dst.len());
        let at = self.pos.wrapping_add(offset as u32);
        let [(a, k), (b, m)] = spans(at, n, self.cap);
        self.mem.read(DATA + a, &mut dst[..k]);
        if m > 0 {
            self.mem.read(DATA + b, &mut dst[k..k + m]);
        }
        Ok(n)
    }

    /// Whether bytes may be ready: the check of an idle ring on every poll (an error shows on
    /// the read that follows).
    pub(crate) fn maybe_ready(&mut self) -> bool {
        self.ready().unwrap_or(true)
    }

    /// If space was freed since the last look: whether the producer waits for space and must
    /// be woken (it then no longer counts as waiting). The consumer's half of the handshake on
    /// `want_space`, due before it sleeps and soon after it frees space (see the module docs).
    pub(crate) fn check_waiter(&mut self) -> bool {
        self.release();
        if self.unchecked == 0 {
            return false;
        }
        self.unchecked = 0;
        self.mem.fence();
        self.mem.load(WANT_SPACE, false) != 0 && self.mem.swap(WANT_SPACE, 0) != 0
    }

    /// Copies up to `dst.len()` bytes out, freeing the records read to their end: `Ok(0)` when
    /// the ring is empty. Returns, with the count, whether the producer waits for space and
    /// must be woken (looked at once a quarter of the ring is freed: see
    /// [`Consumer::check_waiter`] for the other times).
    pub(crate) fn read(&mut self, dst: &mut [u8]) -> Result<(usize, bool), Corrupt> {
        let done = self.fill(dst)?;
        let waker = self.quarter_freed() && self.check_waiter();
        Ok((done, waker))
    }

    /// [`Consumer::read`] into several buffers in turn (a receive scattered into the blocks of
    /// a layout), as `readv` does.
    pub(crate) fn read_vectored(
        &mut self,
        dsts: &mut [std::io::IoSliceMut<'_>],
    ) -> Result<(usize, bool), Corrupt> {
        let mut done = 0;
        for dst in dsts.iter_mut() {
            let n = self.fill(dst)?;
            done += n;
            if n < dst.len() {
                break;
            }
        }
        let waker = self.quarter_freed() && self.check_waiter();
        Ok((done, waker))
    }

    /// Copies up to `dst.len()` bytes out, freeing the records read to their end; after a
    /// series of these, [`Consumer::after_reads`] says whether to wake the producer.
    #[inline(always)]
    pub(crate) fn fill(&mut self, dst: &mut [u8]) -> Result<usize, Corrupt> {
        // The common case of a strided receive, block after block: `dst` lies within the
        // current record, short of its end, and does not wrap around the ring.
        let at = self.pos as usize & (self.cap - 1);
        if dst.len() < self.data_end.wrapping_sub(self.pos) as usize && at + dst.len() <= self.cap {
            self.mem.read(DATA + at, dst);
            self.pos = self.pos.wrapping_add(dst.len() as u32);
            return Ok(dst.len());
        }
        self.fill_across(dst)
    }

    /// [`Consumer::fill`] across records and the end of the ring.
    fn fill_across(&mut self, dst: &mut [u8]) -> Result<usize, Corrupt> {
        let mut done = 0;
        while done < dst.len() && self.ready()? {
            let n = (self.data_end.wrapping_sub(self.pos) as usize).min(dst.len() - done);
            let [(a, k), (b, m)] = spans(self.pos, n, self.cap);
            self.mem.read(DATA + a, &mut dst[done..done + k]);
            if m > 0 {
                self.mem.read(DATA + b, &mut dst[done + k..done + k + m]);
            }
            done += n;
            self.advance(n as u32);
        }
        Ok(done)
    }

    /// Whether the producer must be woken after reads made with [`Consumer::fill`] (as
    /// [`Consumer::read`] returns it).
    pub(crate) fn after_reads(&mut self) -> bool {
        self.quarter_freed() && self.check_waiter()
    }

    /// Takes the rest of the current record without copying: the bytes already looked at with
    /// [`Consumer::peek`] and any left after them. Returns whether the producer must be woken,
    /// as [`Consumer::read`] does.
    pub(crate) fn skip_record(&mut self) -> bool {
        self.advance(self.data_end.wrapping_sub(self.pos));
        self.quarter_freed() && self.check_waiter()
    }

    /// Moves `n` bytes on in the current record (at most to its end), freeing it at its end.
    #[inline]
    fn advance(&mut self, n: u32) {
        self.pos = self
            .pos
            .wrapping_add(n.min(self.data_end.wrapping_sub(self.pos)));
        if self.pos == self.data_end && self.start != self.next {
            self.start = self.next;
            if self.start.wrapping_sub(self.freed) >= self.cap as u32 / 4 {
                self.release();
            }
        }
    }

    /// Whether a quarter of the ring has been consumed since the last look at `want_space`
    /// (released or not yet).
    fn quarter_freed(&self) -> bool {
        let pending = self.start.wrapping_sub(self.freed);
        self.unchecked.saturating_add(pending) >= self.cap as u32 / 4
    }

    /// Frees the records consumed since the last release: zeroes the first word of each of
    /// their lines (see the module docs), then stores `head`. Deferred from the read that
    /// consumed them to the next look at the ring (or to a quarter of the ring consumed, or to
    /// before a sleep), so that a reply sent in between goes first: x86 makes stores visible
    /// in program order, and a line just read from the producer becomes this rank's only once
    /// its clearing store has taken it back, so clearing right after a read held up the stores
    /// of the reply that followed, the message the other rank waits for (a 1 KiB record is 17
    /// lines). 1 KiB one way went from 0.63 to 0.57 us (medians of 9 alternating runs; 8 B alike).
    fn release(&mut self) {
        if self.freed == self.start {
            return;
        }
        let mut line = self.freed;
        while line != self.start {
            self.mem
                .store(DATA + (line as usize & (self.cap - 1)), 0, false);
            line = line.wrapping_add(ALIGN);
        }
        self.mem.store(HEAD, self.start, true);
        self.unchecked = self
            .unchecked
            .saturating_add(self.start.wrapping_sub(self.freed));
        self.freed = self.start;
    }

    /// Before sleeping: tell the producer to ring. False if bytes have come already (do not
    /// sleep: read). Its look at the ring frees what was read (see [`Consumer::release`]).
    pub(crate) fn sleep(&mut self) -> Result<bool, Corrupt> {
        self.mem.store(SLEEPING, 1, false);
        self.mem.fence();
        if self.ready()? {
            self.mem.store(SLEEPING, 0, false);
            return Ok(false);
        }
        Ok(true)
    }

    /// Awake again: no doorbell needed until the next [`Consumer::sleep`].
    pub(crate) fn wake(&self) {
        self.mem.store(SLEEPING, 0, false);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::shm::Segment;

    #[test]
    fn position_arithmetic() {
        assert_eq!(used(0, 0, 4096), Some(0));
        assert_eq!(
            used(u32::MAX - 63, 64, 4096),
            Some(128),
            "positions wrap around 2^32"
        );
        assert_eq!(used(64, 0, 4096), None, "a head ahead of the producer");
        assert_eq!(used(0, 4160, 4096), None, "more than the ring holds");
        assert_eq!(spans(4090, 10, 4096), [(4090, 6), (0, 4)]);
        assert_eq!(spans(4096, 4, 4096), [(0, 4), (0, 0)]);
        assert_eq!(record_size(0), 64);
        assert_eq!(
            record_size(56),
            64,
            "a frame header and 8 bytes: one cache line"
        );
        assert_eq!(record_size(57), 128);
        assert_eq!(record(64, 56, 4096), Ok(Some(56)));
        assert_eq!(record(0, 0, 4096), Ok(None), "not written yet");
        assert_eq!(
            record(0, 77, 4096),
            Ok(None),
            "not yet, whatever the length says"
        );
        assert!(record(64, 57, 4096).is_err(), "a length past its end");
        assert!(record(36, 8, 4096).is_err(), "a size off the alignment");
        assert!(record(192, 8, 4096).is_err(), "padding of more than a line");
        assert!(
            record(4096, 4088, 4096).is_err(),
            "no line left for the next header"
        );
        assert!(record(u32::MAX, 0, 4096).is_err());
    }

    /// Laid-out payloads gathered into a small ring and scattered out of it, in writes and
    /// reads of every size that wrap round it many times: every byte lands in its place.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create or mmap")]
    fn laid_out_payloads_cross_the_ring_whole() {
        use crate::buf::{RawMut, RawSlice};
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let (mut p, mut c) = pair(MIN_CAP);
        for case in 0..40 {
            // Disjoint blocks in a shuffled order, of 1 to 300 elements of 1, 4 or 8 bytes.
            let unit = [1, 4, 8][case % 3];
            let mut starts = Vec::new();
            let mut at = 0;
            for _ in 0..1 + rand(60) {
                let (gap, len) = (rand(5), 1 + rand(300));
                starts.push((at + gap, len));
                at += gap + len;
            }
            for i in (1..starts.len()).rev() {
                starts.swap(i, rand(i + 1));
            }
            let (lens, displs): (Vec<usize>, Vec<usize>) =
                starts.iter().map(|&(o, n)| (n, o)).unzip();
            let l = crate::Layout::indexed(&lens, &displs).unwrap();
            let src: Vec<u8> = (0..at * unit).map(|i| (i * 7 + case) as u8).collect();
            let mut dst = vec![0u8; at * unit];
            // SAFETY: `src`, `dst` and `l` outlive the views; `dst` is reached only through `m`
            // until it is dropped below.
            let (v, mut m) = unsafe {
                (
                    RawSlice::laid(&src, l.laid(unit)).unwrap(),
                    RawMut::laid(&mut dst, l.laid(unit)).unwrap(),
                )
            };
            let (mut sent, mut got) = (0, 0);
            while got < v.len() {
                if sent < v.len() {
                    let want = (1 + rand(3000)).min(v.len() - sent);
                    sent += p.write_pieces(v.pieces(sent), want).unwrap();
                }
                let upto = (got + 1 + rand(3000)).min(v.len());
                let mut read = 0;
                m.each_piece_mut(got, upto, |d: &mut [u8]| {
                    let n = c.fill(d).unwrap();
                    read += n;
                    n == d.len()
                });
                got += read;
                c.after_reads();
            }
            assert_eq!(sent, v.len());
            let _ = m;
            let mut want = vec![0u8; at * unit];
            for &(o, n) in l.blocks() {
                want[o * unit..(o + n) * unit].copy_from_slice(&src[o * unit..(o + n) * unit]);
            }
            assert_eq!(dst, want, "case {case}");
        }
    }

    /// Per-block cost of the ring's gather and scatter of a laid-out payload, one thread
    /// (`cargo test --release -p mpr --lib piece_costs -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn piece_costs() {
        use crate::buf::{RawMut, RawSlice};
        let (mut p, mut c) = pair(256 << 10);
        let src = vec![7u8; 2 << 20];
        let mut dst = vec![0u8; 2 << 20];
        for block in [64usize, 256, 4096, 1 << 20] {
            let l = crate::Layout::vector((1 << 20) / block, block, 2 * block);
            // SAFETY: `src`, `dst` and `l` outlive the views, and `dst` is reached only by `m`.
            let (v, mut m) = unsafe {
                (
                    RawSlice::laid(&src, l.laid(1)).unwrap(),
                    RawMut::laid(&mut dst, l.laid(1)).unwrap(),
                )
            };
            let t = std::time::Instant::now();
            let rounds = 20;
            let (mut writing, mut reading) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
            for _ in 0..rounds {
                let (mut sent, mut got) = (0, 0);
                while got < v.len() {
                    let w = std::time::Instant::now();
                    if sent < v.len() {
                        sent += p.write_pieces(v.pieces(sent), v.len() - sent).unwrap();
                    }
                    writing += w.elapsed();
                    let r = std::time::Instant::now();
                    let mut read = 0;
                    m.each_piece_mut(got, v.len(), |d: &mut [u8]| {
                        let n = c.fill(d).unwrap();
                        read += n;
                        n == d.len()
                    });
                    got += read;
                    c.after_reads();
                    reading += r.elapsed();
                }
            }
            let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / rounds as f64;
            let us = per(t.elapsed());
            println!(
                "1 MiB in blocks of {block}: {us:.1} us through the ring, one thread \
                 (writing {:.1}, reading {:.1})",
                per(writing),
                per(reading)
            );
        }
    }

    fn pair(cap: usize) -> (Producer<Segment>, Consumer<Segment>) {
        let seg = Segment::create(c"mpr-test", segment_len(cap)).unwrap();
        let other = Segment::open(std::process::id(), seg.fd().unwrap(), segment_len(cap)).unwrap();
        (Producer::new(seg, cap), Consumer::new(other, cap))
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create or mmap")]
    fn bytes_come_out_in_order_across_wrap_around_and_partial_writes() {
        let cap = MIN_CAP;
        let (mut p, mut c) = pair(cap);
        let mut next_in = 0u8;
        let mut next_out = 0u8;
        let mut buf = vec![0u8; 3000];
        for round in 0..300usize {
            // Writes of every size up to more than the ring holds, in two slices.
            let n = (round * 997) % (cap + 500);
            let data: Vec<u8> = (0..n).map(|i| next_in.wrapping_add(i as u8)).collect();
            let (x, y) = data.split_at(n / 3);
            let wrote = p
                .write_vectored(&[IoSlice::new(x), IoSlice::new(y)])
                .unwrap();
            assert!(wrote <= cap);
            next_in = next_in.wrapping_add(wrote as u8);
            loop {
                let (got, _) = c.read(&mut buf[..(round % 7 + 1) * 400]).unwrap();
                if got == 0 {
                    break;
                }
                for &b in &buf[..got] {
                    assert_eq!(b, next_out);
                    next_out = next_out.wrapping_add(1);
                }
            }
        }
        assert_eq!(next_in, next_out);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create or mmap")]
    fn a_full_ring_takes_nothing_until_read() {
        let (mut p, mut c) = pair(MIN_CAP);
        let big = vec![7u8; 2 * MIN_CAP];
        let first = p.write_vectored(&[IoSlice::new(&big)]).unwrap();
        assert_eq!(
            first,
            MIN_CAP - (ALIGN + REC) as usize,
            "one record fills the ring, but for the line that always stays free"
        );
        assert_eq!(p.write_vectored(&[IoSlice::new(&big)]).unwrap(), 0);
        assert!(p.wait_for_space().unwrap(), "full: the producer may sleep");
        let (n, wake) = c.read(&mut [0u8; 100]).unwrap();
        assert_eq!(n, 100);
        assert!(!wake, "nothing freed before the record is read to its end");
        let (n, wake) = c.read(&mut vec![0u8; MIN_CAP]).unwrap();
        assert_eq!(n, first - 100);
        assert!(wake, "the producer asked to be woken");
        assert!(!c.read(&mut [0u8; 1]).unwrap().1, "once");
        assert!(p.write_vectored(&[IoSlice::new(&big)]).unwrap() > 0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create or mmap")]
    fn payload_of_a_lap_before_never_passes_for_a_record() {
        // A payload whose every line starts with a valid record header (one line, 5 bytes),
        // then records of one line each over the same memory in the next laps: the consumer
        // must see exactly the records written, never one made of the old payload.
        let (mut p, mut c) = pair(MIN_CAP);
        let mut fake = vec![0u8; MIN_CAP - (ALIGN + REC) as usize];
        for line in fake.chunks_mut(ALIGN as usize) {
            if line.len() >= 8 {
                line[..4].copy_from_slice(&ALIGN.to_le_bytes());
                line[4..8].copy_from_slice(&5u32.to_le_bytes());
            }
        }
        // Shifted by the record header, so that the fake headers sit at line starts.
        let mut shifted = vec![0u8; fake.len()];
        shifted[ALIGN as usize - REC as usize..].copy_from_slice(&fake[..fake.len() - 56]);
        assert_eq!(
            p.write_vectored(&[IoSlice::new(&shifted)]).unwrap(),
            shifted.len()
        );
        let mut buf = vec![0u8; MIN_CAP];
        assert_eq!(c.read(&mut buf).unwrap().0, shifted.len());
        for i in 0..3 * MIN_CAP / ALIGN as usize {
            assert_eq!(
                c.read(&mut buf).unwrap().0,
                0,
                "nothing written, nothing read"
            );
            assert_eq!(p.write_vectored(&[IoSlice::new(&[i as u8])]).unwrap(), 1);
            assert_eq!(c.read(&mut buf).unwrap().0, 1, "record {i}");
            assert_eq!(buf[0], i as u8);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create or mmap")]
    fn a_waiting_producer_is_woken_once_the_consumer_looks() {
        let (mut p, mut c) = pair(MIN_CAP);
        while p.write_vectored(&[IoSlice::new(&[5u8; 56])]).unwrap() > 0 {}
        assert!(p.wait_for_space().unwrap(), "full: the producer may sleep");
        let (n, wake) = c.read(&mut [0u8; 56]).unwrap();
        assert_eq!(n, 56);
        assert!(!wake, "one line freed: the look waits");
        assert!(c.check_waiter(), "the look finds the producer waiting");
        assert!(!c.check_waiter(), "once");
        // Full again; then a quarter of the ring freed: the read looks itself.
        while p.write_vectored(&[IoSlice::new(&[5u8; 56])]).unwrap() > 0 {}
        assert!(p.wait_for_space().unwrap());
        let (n, wake) = c.read(&mut vec![0u8; 56 * 16]).unwrap();
        assert_eq!(n, 56 * 16);
        assert!(wake, "16 lines freed: looked at once");
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create or mmap")]
    fn whole_writes_go_whole_or_not_at_all() {
        let (mut p, mut c) = pair(MIN_CAP);
        let msg = vec![3u8; 1000];
        let mut sent = 0;
        while p.write_whole(&[IoSlice::new(&msg)]).unwrap() {
            sent += 1;
        }
        assert_eq!(sent, 3, "three records of 1024 + the free line fill 4096");
        assert!(
            !p.write_whole(&[IoSlice::new(&[])]).unwrap(),
            "nothing to write"
        );
        assert!(!p
            .write_whole(&[IoSlice::new(&vec![0; MAX_RECORD + 1])])
            .unwrap());
        let mut buf = vec![0u8; 4000];
        assert_eq!(c.read(&mut buf).unwrap().0, 3000);
        assert!(p.write_whole(&[IoSlice::new(&msg)]).unwrap(), "room again");
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create or mmap")]
    fn sleeping_consumers_are_woken_once() {
        let (mut p, mut c) = pair(MIN_CAP);
        assert!(c.sleep().unwrap(), "empty: the consumer may sleep");
        assert_eq!(p.write_vectored(&[IoSlice::new(b"hi")]).unwrap(), 2);
        assert!(p.take_sleeper());
        assert!(!p.take_sleeper(), "one doorbell per sleep");
        assert!(!c.sleep().unwrap(), "bytes wait: do not sleep");
        c.wake();
        assert!(!p.take_sleeper());
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create or mmap")]
    fn records_and_positions_out_of_range_are_errors() {
        let (mut p, mut c) = pair(MIN_CAP);
        p.write_vectored(&[IoSlice::new(&[1u8; 10])]).unwrap();
        // The record claims more bytes than its size holds.
        c.mem.store(DATA + 4, 100, false);
        assert!(c.read(&mut [0u8; 4]).is_err());
        let (mut p, c) = pair(MIN_CAP);
        p.write_vectored(&[IoSlice::new(&[1u8; 10])]).unwrap();
        c.mem.store(HEAD, 128, true);
        assert!(
            p.write_vectored(&[IoSlice::new(&[1u8; MIN_CAP])]).is_err(),
            "a head ahead of the producer"
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create or mmap")]
    fn two_threads_stream_every_byte_in_order() {
        let seg = Segment::create(c"mpr-test", segment_len(MIN_CAP)).unwrap();
        let fd = seg.fd().unwrap();
        let mut c = Consumer::new(seg, MIN_CAP);
        const TOTAL: usize = 8 << 20;
        let producer = std::thread::spawn(move || {
            // A mapping of its own (a segment stays in the thread that mapped it).
            let mine = Segment::open(std::process::id(), fd, segment_len(MIN_CAP)).unwrap();
            let mut p = Producer::new(mine, MIN_CAP);
            let mut sent = 0usize;
            let chunk: Vec<u8> = (0..5000).map(|i| (i % 251) as u8).collect();
            while sent < TOTAL {
                let from = sent % 251;
                let n = (TOTAL - sent).min(1 + sent % 4999);
                let w = p
                    .write_vectored(&[IoSlice::new(&chunk[from..from + n.min(5000 - from)])])
                    .unwrap();
                sent += w;
                if w == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut got = 0usize;
        let mut buf = vec![0u8; 3333];
        while got < TOTAL {
            let (n, _) = c.read(&mut buf).unwrap();
            for (i, &b) in buf[..n].iter().enumerate() {
                assert_eq!(b as usize, (got + i) % 251, "byte {}", got + i);
            }
            got += n;
            if n == 0 {
                std::thread::yield_now();
            }
        }
        producer.join().unwrap();
    }
}

/// The ring's protocol under `loom`, which runs every interleaving of producer and consumer
/// (and every reordering the memory model allows): `RUSTFLAGS="--cfg loom" cargo test -p mpr
/// --lib --release loom`. Data bytes are non-atomic cells, so a copy that could race with the
/// other side's (a missing acquire or release) is reported as a data race.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
    use loom::sync::Arc;

    /// Control words, the words of record headers, and data bytes. (In a real segment a
    /// header word and data bytes of another lap share memory; the model keeps them apart, and
    /// checks that no copy races with the other side's.)
    struct Model {
        words: Vec<AtomicU32>,
        headers: Vec<AtomicU32>,
        data: Vec<UnsafeCell<u8>>,
    }

    #[derive(Clone)]
    struct LoomMem(Arc<Model>);

    impl LoomMem {
        fn new(cap: usize) -> LoomMem {
            LoomMem(Arc::new(Model {
                words: (0..5).map(|_| AtomicU32::new(0)).collect(),
                headers: (0..cap / 4).map(|_| AtomicU32::new(0)).collect(),
                data: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
            }))
        }
    }

    impl LoomMem {
        fn word(&self, offset: usize) -> &AtomicU32 {
            if offset >= DATA {
                &self.0.headers[(offset - DATA) / 4]
            } else {
                &self.0.words[offset / 64 - 1]
            }
        }
    }

    impl Mem for LoomMem {
        fn load(&self, offset: usize, acquire: bool) -> u32 {
            self.word(offset).load(load_order(acquire))
        }
        fn store(&self, offset: usize, v: u32, release: bool) {
            self.word(offset).store(v, store_order(release))
        }
        fn swap(&self, offset: usize, v: u32) -> u32 {
            self.word(offset).swap(v, Ordering::AcqRel)
        }
        fn fence(&self) {
            fence(Ordering::SeqCst)
        }
        fn write(&self, offset: usize, src: &[u8]) {
            for (i, &b) in src.iter().enumerate() {
                self.0.data[offset - DATA + i].with_mut(|p| unsafe { *p = b });
            }
        }
        fn read(&self, offset: usize, dst: &mut [u8]) {
            for (i, b) in dst.iter_mut().enumerate() {
                *b = self.0.data[offset - DATA + i].with(|p| unsafe { *p });
            }
        }
    }

    #[test]
    fn loom_bytes_cross_in_order_through_a_wrapping_ring() {
        loom::model(|| {
            // One record's room (and a line for the next header): each byte waits for the one
            // before to be read, and records wrap around the end.
            let m = LoomMem::new(128);
            let mut p = Producer::new(m.clone(), 128);
            let mut c = Consumer::new(m, 128);
            let t = loom::thread::spawn(move || {
                let msg = [1u8, 2, 3];
                let mut sent = 0;
                while sent < msg.len() {
                    let n = p
                        .write_vectored(&[IoSlice::new(&msg[sent..=sent])])
                        .unwrap();
                    sent += n;
                    if n == 0 {
                        loom::thread::yield_now();
                    }
                }
            });
            let mut got = Vec::new();
            while got.len() < 3 {
                let mut b = [0u8; 2];
                let (n, _) = c.read(&mut b).unwrap();
                got.extend_from_slice(&b[..n]);
                if n == 0 {
                    loom::thread::yield_now();
                }
            }
            assert_eq!(got, [1, 2, 3]);
            t.join().unwrap();
        });
    }

    #[test]
    fn loom_a_consumer_never_sleeps_through_a_write() {
        loom::model(|| {
            let m = LoomMem::new(128);
            let mut p = Producer::new(m.clone(), 128);
            let mut c = Consumer::new(m, 128);
            let rang = Arc::new(AtomicBool::new(false));
            let r = rang.clone();
            let t = loom::thread::spawn(move || {
                assert_eq!(p.write_vectored(&[IoSlice::new(&[9])]).unwrap(), 1);
                r.store(p.take_sleeper(), Ordering::SeqCst);
            });
            let slept = c.sleep().unwrap();
            t.join().unwrap();
            // Slept with the byte unseen: then the producer must have rung.
            assert!(!slept || rang.load(Ordering::SeqCst), "a lost wake-up");
        });
    }

    #[test]
    fn loom_a_producer_never_sleeps_through_a_read() {
        loom::model(|| {
            // Full: one record of 56 bytes and a line for the next header fill a ring of 128.
            let m = LoomMem::new(128);
            let mut p = Producer::new(m.clone(), 128);
            let mut c = Consumer::new(m, 128);
            assert_eq!(p.write_vectored(&[IoSlice::new(&[1; 56])]).unwrap(), 56);
            let rang = Arc::new(AtomicBool::new(false));
            let r = rang.clone();
            let t = loom::thread::spawn(move || {
                let (n, wake) = c.read(&mut [0u8; 56]).unwrap();
                assert_eq!(n, 56);
                r.store(wake, Ordering::SeqCst);
            });
            let slept = p.wait_for_space().unwrap();
            t.join().unwrap();
            assert!(!slept || rang.load(Ordering::SeqCst), "a lost wake-up");
        });
    }
}
