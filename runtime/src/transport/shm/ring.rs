//! A single-producer, single-consumer byte ring in memory two processes share: the path of every
//! frame from one rank to another of its host once their link has moved to shared memory.
//!
//! A byte stream, not a queue of cells: the frame reader and writer of a socket
//! (`net/peer.rs`) run over it unchanged (header, then payload straight into its destination),
//! a frame larger than the ring streams through it in pieces, and no message size needs a
//! cell size chosen in advance. Open MPI's fast boxes and MPICH's per-pair cells are rings of
//! the same kind; what makes them fast is that an idle ring costs nothing but a load of a cache
//! line its producer last wrote, and a message costs one copy in and one copy out, with no
//! system call on either side while both spin.
//!
//! Layout (every control word alone in its cache line, so the two sides never write one line):
//!
//! | offset | word | written by |
//! | --- | --- | --- |
//! | 64 | `tail`: bytes ever written (mod 2^32) | producer |
//! | 128 | `head`: bytes ever read (mod 2^32) | consumer |
//! | 192 | `sleeping`: the consumer sleeps in the kernel | consumer sets, producer clears |
//! | 256 | `want_space`: the producer waits for room | producer sets, consumer clears |
//! | 4096.. | `cap` bytes of data (a power of two) | producer |
//!
//! Order: the producer copies bytes in, then stores `tail` with release; the consumer loads
//! `tail` with acquire, copies the bytes out, then stores `head` with release, which the
//! producer loads with acquire before it reuses the space. Sleeping is Dekker's handshake with
//! sequentially consistent fences: the consumer sets `sleeping`, fences, and looks at `tail` once
//! more before it sleeps; the producer stores `tail`, fences, and looks at `sleeping`. At least
//! one of them sees the other's store, so either the consumer does not sleep or the producer
//! rings its doorbell (the same for `want_space` the other way). Checked under `loom` (the
//! `loom` tests below, `RUSTFLAGS="--cfg loom"`), with the index logic under Miri.
//!
//! The other process is trusted with nothing: positions it writes are checked (a consumer never
//! reads more than `cap` bytes past its own head, a producer never sees `head` ahead of its
//! `tail`), and a position out of range is a [`Corrupt`] error, which fails the peer. Bytes are
//! only ever copied in and out ([`Mem`]), never borrowed.

use std::io::IoSlice;

/// Offsets of the control words.
const TAIL: usize = 64;
const HEAD: usize = 128;
const SLEEPING: usize = 192;
const WANT_SPACE: usize = 256;
/// Where the data starts: a page of its own for the control words.
pub(crate) const DATA: usize = 4096;

/// The smallest and largest ring.
pub(crate) const MIN_CAP: usize = 4096;
pub(crate) const MAX_CAP: usize = 1 << 30;

/// What a ring lives in: a shared segment in mpr, a model of one under `loom`.
pub(crate) trait Mem {
    /// The control word at `offset`.
    fn load(&self, offset: usize, acquire: bool) -> u32;
    fn store(&self, offset: usize, v: u32, release: bool);
    fn swap(&self, offset: usize, v: u32) -> u32;
    /// A sequentially consistent fence.
    fn fence(&self);
    /// Copies `src` in at `offset` / out into `dst`.
    fn write(&self, offset: usize, src: &[u8]);
    fn read(&self, offset: usize, dst: &mut [u8]);
}

/// The peer wrote a position no correct peer writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupt(pub String);

/// The bytes in the ring between `head` and `tail`, if that is a possible count.
pub(crate) fn used(head: u32, tail: u32, cap: u32) -> Option<u32> {
    let n = tail.wrapping_sub(head);
    (n <= cap).then_some(n)
}

/// Where `len` bytes at stream position `pos` lie in a ring of `cap` bytes: one span, or two
/// when they wrap around the end, as (offset in the data, length) pairs.
pub(crate) fn spans(pos: u32, len: usize, cap: usize) -> [(usize, usize); 2] {
    let at = pos as usize & (cap - 1);
    let first = len.min(cap - at);
    [(at, first), (0, len - first)]
}

/// The size of a ring's segment for `cap` data bytes.
pub(crate) fn segment_len(cap: usize) -> usize {
    DATA + cap
}

/// The writing end.
pub(crate) struct Producer<M: Mem> {
    mem: M,
    cap: usize,
    /// Bytes written so far (what `tail` says).
    tail: u32,
    /// The consumer's `head` as last loaded: space is known free up to it without a load.
    head_seen: u32,
}

/// The reading end.
pub(crate) struct Consumer<M: Mem> {
    mem: M,
    cap: usize,
    /// Bytes read so far (what `head` says).
    head: u32,
    /// The producer's `tail` as last loaded.
    tail_seen: u32,
}

/// Rings of mpr's own are [`MIN_CAP`] or more (the models under `loom` use tiny ones).
fn check_cap(cap: usize) {
    assert!(
        cap.is_power_of_two() && cap <= MAX_CAP,
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
            tail: 0,
            head_seen: 0,
        }
    }

    /// The memory, for its owner (to close a segment's descriptor, say).
    pub(crate) fn mem_mut(&mut self) -> &mut M {
        &mut self.mem
    }

    /// Bytes that can be written now.
    fn space(&mut self) -> Result<usize, Corrupt> {
        let cap = self.cap as u32;
        let mut used_now = used(self.head_seen, self.tail, cap);
        if used_now != Some(0) {
            self.head_seen = self.mem.load(HEAD, true);
            used_now = used(self.head_seen, self.tail, cap);
        }
        match used_now {
            Some(n) => Ok((cap - n) as usize),
            None => Err(Corrupt(format!(
                "the reader's position {} is not within {cap} bytes behind {}",
                self.head_seen, self.tail
            ))),
        }
    }

    /// Copies as much of `bufs` as fits, in order, and publishes it: `Ok(0)` when the ring is
    /// full (or `bufs` empty).
    pub(crate) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize, Corrupt> {
        let mut room = self.space()?;
        let mut done = 0;
        for b in bufs {
            if room == 0 {
                break;
            }
            let n = b.len().min(room);
            self.copy_in(done, &b[..n]);
            done += n;
            room -= n;
        }
        if done > 0 {
            self.tail = self.tail.wrapping_add(done as u32);
            self.mem.store(TAIL, self.tail, true);
        }
        Ok(done)
    }

    /// Copies `src` to stream position `tail + offset` (not yet published).
    fn copy_in(&self, offset: usize, src: &[u8]) {
        let [(a, n), (b, m)] = spans(self.tail.wrapping_add(offset as u32), src.len(), self.cap);
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
        if self.space()? > 0 {
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
            head: 0,
            tail_seen: 0,
        }
    }

    /// Whether bytes may be ready (one load of the producer's word when none were known): the
    /// check of an idle ring on every poll.
    pub(crate) fn maybe_ready(&mut self) -> bool {
        self.tail_seen != self.head || {
            self.tail_seen = self.mem.load(TAIL, true);
            self.tail_seen != self.head
        }
    }

    /// Bytes ready to be read.
    pub(crate) fn available(&mut self) -> Result<usize, Corrupt> {
        let cap = self.cap as u32;
        if self.tail_seen == self.head {
            self.tail_seen = self.mem.load(TAIL, true);
        }
        used(self.head, self.tail_seen, cap)
            .map(|n| n as usize)
            .ok_or_else(|| {
                Corrupt(format!(
                    "the writer's position {} is more than {cap} bytes ahead of {}",
                    self.tail_seen, self.head
                ))
            })
    }

    /// Copies up to `dst.len()` bytes out and frees their space: `Ok(0)` when the ring is
    /// empty. Returns, with the count, whether the producer waits for space and must be woken.
    pub(crate) fn read(&mut self, dst: &mut [u8]) -> Result<(usize, bool), Corrupt> {
        let n = self.available()?.min(dst.len());
        if n == 0 {
            return Ok((0, false));
        }
        let [(a, k), (b, m)] = spans(self.head, n, self.cap);
        self.mem.read(DATA + a, &mut dst[..k]);
        if m > 0 {
            self.mem.read(DATA + b, &mut dst[k..k + m]);
        }
        self.head = self.head.wrapping_add(n as u32);
        self.mem.store(HEAD, self.head, true);
        self.mem.fence();
        let waker = self.mem.load(WANT_SPACE, false) != 0 && self.mem.swap(WANT_SPACE, 0) != 0;
        Ok((n, waker))
    }

    /// Before sleeping: tell the producer to ring. False if bytes have come already (do not
    /// sleep: read).
    pub(crate) fn sleep(&mut self) -> Result<bool, Corrupt> {
        self.mem.store(SLEEPING, 1, false);
        self.mem.fence();
        if self.available()? > 0 {
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

/// A ring in this process's own memory, for the tests: control words and data bytes as
/// atomics, so that two threads may share it without `unsafe`.
#[cfg(all(test, not(loom)))]
pub(crate) mod heap {
    use std::sync::atomic::{fence, AtomicU32, AtomicU8, Ordering};
    use std::sync::Arc;

    #[derive(Clone)]
    pub(crate) struct HeapMem(Arc<(Vec<AtomicU32>, Vec<AtomicU8>)>);

    impl HeapMem {
        pub(crate) fn new(cap: usize) -> HeapMem {
            let words = (0..super::DATA / 4).map(|_| AtomicU32::new(0)).collect();
            let data = (0..cap).map(|_| AtomicU8::new(0)).collect();
            HeapMem(Arc::new((words, data)))
        }
        /// Overwrites a control word, as a misbehaving peer would.
        pub(crate) fn poke(&self, offset: usize, v: u32) {
            self.0 .0[offset / 4].store(v, Ordering::SeqCst);
        }
    }

    fn order(strong: bool, then: Ordering) -> Ordering {
        if strong {
            then
        } else {
            Ordering::Relaxed
        }
    }

    impl super::Mem for HeapMem {
        fn load(&self, offset: usize, acquire: bool) -> u32 {
            self.0 .0[offset / 4].load(order(acquire, Ordering::Acquire))
        }
        fn store(&self, offset: usize, v: u32, release: bool) {
            self.0 .0[offset / 4].store(v, order(release, Ordering::Release))
        }
        fn swap(&self, offset: usize, v: u32) -> u32 {
            self.0 .0[offset / 4].swap(v, Ordering::AcqRel)
        }
        fn fence(&self) {
            fence(Ordering::SeqCst)
        }
        fn write(&self, offset: usize, src: &[u8]) {
            for (i, &b) in src.iter().enumerate() {
                self.0 .1[offset - super::DATA + i].store(b, Ordering::Relaxed);
            }
        }
        fn read(&self, offset: usize, dst: &mut [u8]) {
            for (i, b) in dst.iter_mut().enumerate() {
                *b = self.0 .1[offset - super::DATA + i].load(Ordering::Relaxed);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::heap::HeapMem;
    use super::*;

    fn pair(cap: usize) -> (Producer<HeapMem>, Consumer<HeapMem>, HeapMem) {
        let m = HeapMem::new(cap);
        (
            Producer::new(m.clone(), cap),
            Consumer::new(m.clone(), cap),
            m,
        )
    }

    #[test]
    fn index_logic() {
        assert_eq!(used(0, 0, 8), Some(0));
        assert_eq!(
            used(u32::MAX - 1, 2, 8),
            Some(4),
            "positions wrap around 2^32"
        );
        assert_eq!(used(5, 4, 8), None, "a head ahead of the tail");
        assert_eq!(used(0, 9, 8), None, "more than the ring holds");
        assert_eq!(spans(6, 4, 8), [(6, 2), (0, 2)]);
        assert_eq!(spans(8, 4, 8), [(0, 4), (0, 0)]);
        assert_eq!(spans(u32::MAX, 2, 8), [(7, 1), (0, 1)]);
    }

    #[test]
    fn bytes_come_out_in_order_across_wrap_around_and_partial_writes() {
        let cap = MIN_CAP;
        let (mut p, mut c, _) = pair(cap);
        let mut next_in = 0u8;
        let mut next_out = 0u8;
        let mut buf = vec![0u8; 3000];
        for round in 0..200usize {
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
    fn a_full_ring_takes_nothing_until_read() {
        let (mut p, mut c, _) = pair(MIN_CAP);
        let big = vec![7u8; 2 * MIN_CAP];
        assert_eq!(p.write_vectored(&[IoSlice::new(&big)]).unwrap(), MIN_CAP);
        assert_eq!(p.write_vectored(&[IoSlice::new(&big)]).unwrap(), 0);
        assert!(p.wait_for_space().unwrap(), "full: the producer may sleep");
        let (n, wake) = c.read(&mut [0u8; 100]).unwrap();
        assert_eq!(n, 100);
        assert!(wake, "the producer asked to be woken");
        assert!(!c.read(&mut [0u8; 1]).unwrap().1, "once");
        assert_eq!(p.write_vectored(&[IoSlice::new(&big)]).unwrap(), 101);
    }

    #[test]
    fn sleeping_consumers_are_woken_once() {
        let (mut p, mut c, _) = pair(MIN_CAP);
        assert!(c.sleep().unwrap(), "empty: the consumer may sleep");
        assert_eq!(p.write_vectored(&[IoSlice::new(b"hi")]).unwrap(), 2);
        assert!(p.take_sleeper());
        assert!(!p.take_sleeper(), "one doorbell per sleep");
        assert!(!c.sleep().unwrap(), "bytes wait: do not sleep");
        c.wake();
        assert!(!p.take_sleeper());
    }

    #[test]
    fn positions_out_of_range_are_errors() {
        let (mut p, mut c, m) = pair(MIN_CAP);
        p.write_vectored(&[IoSlice::new(&[1u8; 10])]).unwrap();
        m.poke(TAIL, 10 + MIN_CAP as u32);
        assert!(c.read(&mut [0u8; 4]).is_err(), "a tail too far ahead");
        let (mut p, _c, m) = pair(MIN_CAP);
        p.write_vectored(&[IoSlice::new(&[1u8; 10])]).unwrap();
        m.poke(HEAD, 11);
        assert!(
            p.write_vectored(&[IoSlice::new(&[1u8; MIN_CAP])]).is_err(),
            "a head ahead of the tail"
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "many steps: the single-thread tests cover Miri")]
    fn two_threads_stream_every_byte_in_order() {
        let cap = MIN_CAP;
        let (mut p, mut c, _) = pair(cap);
        const TOTAL: usize = 4 << 20;
        let producer = std::thread::spawn(move || {
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

    struct Model {
        words: Vec<AtomicU32>,
        data: Vec<UnsafeCell<u8>>,
    }

    #[derive(Clone)]
    struct LoomMem(Arc<Model>);

    impl LoomMem {
        fn new(cap: usize) -> LoomMem {
            LoomMem(Arc::new(Model {
                words: (0..5).map(|_| AtomicU32::new(0)).collect(),
                data: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
            }))
        }
    }

    impl Mem for LoomMem {
        fn load(&self, offset: usize, acquire: bool) -> u32 {
            let o = if acquire {
                Ordering::Acquire
            } else {
                Ordering::Relaxed
            };
            self.0.words[offset / 64 - 1].load(o)
        }
        fn store(&self, offset: usize, v: u32, release: bool) {
            let o = if release {
                Ordering::Release
            } else {
                Ordering::Relaxed
            };
            self.0.words[offset / 64 - 1].store(v, o)
        }
        fn swap(&self, offset: usize, v: u32) -> u32 {
            self.0.words[offset / 64 - 1].swap(v, Ordering::AcqRel)
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
            let m = LoomMem::new(2);
            let mut p = Producer::new(m.clone(), 2);
            let mut c = Consumer::new(m, 2);
            let t = loom::thread::spawn(move || {
                let msg = [1u8, 2, 3];
                let mut sent = 0;
                while sent < msg.len() {
                    let n = p.write_vectored(&[IoSlice::new(&msg[sent..])]).unwrap();
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
            let m = LoomMem::new(4);
            let mut p = Producer::new(m.clone(), 4);
            let mut c = Consumer::new(m, 4);
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
            let m = LoomMem::new(4);
            let mut p = Producer::new(m.clone(), 4);
            let mut c = Consumer::new(m, 4);
            assert_eq!(p.write_vectored(&[IoSlice::new(&[1, 2, 3, 4])]).unwrap(), 4);
            let rang = Arc::new(AtomicBool::new(false));
            let r = rang.clone();
            let t = loom::thread::spawn(move || {
                let (n, wake) = c.read(&mut [0u8; 1]).unwrap();
                assert_eq!(n, 1);
                r.store(wake, Ordering::SeqCst);
            });
            let slept = p.wait_for_space().unwrap();
            t.join().unwrap();
            assert!(!slept || rang.load(Ordering::SeqCst), "a lost wake-up");
        });
    }
}
