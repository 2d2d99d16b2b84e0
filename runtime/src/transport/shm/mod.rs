//! Shared memory between two ranks of one host: where their frames travel once their link is up.
//!
//! Same shape as `net/`: frames in and frames out, through the reader and writer of
//! `net/peer.rs`, which run over a [`ring`] here as they run over a socket there. What a socket
//! costs a small message is two system calls and a wake-up of the receiver; a ring costs a copy
//! in and a copy out, and while the receiver spins, nothing else (BENCHMARKS.md, "Shared
//! memory").
//!
//! The ring does not replace the pair's local socket, which stays for what a socket does well:
//! it is authenticated (the handshake of `net/`), it tells who is at the other end
//! (`SO_PEERCRED`), it wakes a receiver sleeping in `epoll_wait` (a one-frame *doorbell*, sent
//! only when the ring says its consumer sleeps), and its end is the peer's end, however the
//! peer ended (SIGKILL included). So the setup runs over it, per direction:
//!
//! 1. The writer creates its ring (an anonymous `memfd`: nothing on any file system, freed when
//!    the last mapping goes) and queues `ShmOffer` (its descriptor number and size) on the link.
//! 2. The reader maps it through `/proc/PID/fd/N`, PID being the socket's `SO_PEERCRED`, which
//!    only processes of the same user may open, and answers `ShmAccept` (or `ShmRefuse`: the
//!    link stays on the socket).
//! 3. The writer queues `ShmSwitch` on the socket, after every frame queued before; every frame
//!    after it goes into the ring. The reader reads the socket up to `ShmSwitch`, then the ring:
//!    the pair's order holds across the switch.
//!
//! Rings are made per pair on first use (links are), so pairs that never talk cost nothing;
//! their size shrinks with the number of ranks on the host ([`ring_capacity`]).

pub(crate) mod ring;

use std::io::{self, IoSlice, Read, Write};

use self::ring::{Consumer, Corrupt, Mem, Producer};
use crate::shm::Segment;
use std::sync::atomic::Ordering;

impl Mem for Segment {
    fn load(&self, offset: usize, acquire: bool) -> u32 {
        self.word(offset).load(ring::load_order(acquire))
    }
    fn store(&self, offset: usize, v: u32, release: bool) {
        self.word(offset).store(v, ring::store_order(release))
    }
    fn swap(&self, offset: usize, v: u32) -> u32 {
        self.word(offset).swap(v, Ordering::AcqRel)
    }
    fn fence(&self) {
        std::sync::atomic::fence(Ordering::SeqCst)
    }
    #[inline]
    fn write(&self, offset: usize, src: &[u8]) {
        Segment::write(self, offset, src)
    }
    #[inline]
    fn read(&self, offset: usize, dst: &mut [u8]) {
        Segment::read(self, offset, dst)
    }
}

/// Bytes of all the rings a rank writes into, together, that [`ring_capacity`] aims for.
const WRITE_BUDGET: usize = 4 << 20;
/// The largest ring: beyond it a larger ring buys no speed (it only has to hold what the
/// receiver has not yet read while both run).
const LARGEST: usize = 256 << 10;
/// The smallest ring, however many ranks share the host.
const SMALLEST: usize = 16 << 10;

/// The size of each ring a rank writes into, for `local_size` ranks on its host: at most
/// [`WRITE_BUDGET`] for all its peers together, between [`SMALLEST`] and [`LARGEST`] each (a
/// power of two). Memory is only taken for pairs that talk, all of a ring's at once (its pages
/// are faulted in when it is made: see `shm.rs`): on 2 ranks, 2 rings of 256 KiB; on 64 ranks
/// that all talk to each other, 64 x 63 rings of 64 KiB, 252 MiB in all.
pub(crate) fn ring_capacity(local_size: usize) -> usize {
    let peers = local_size.saturating_sub(1).max(1);
    let share = (WRITE_BUDGET / peers).clamp(SMALLEST, LARGEST);
    // The largest power of two within the share.
    1 << (usize::BITS - 1 - share.leading_zeros())
}

/// The writing end of a ring: the path of this rank's frames to one peer.
pub(crate) struct Tx {
    prod: Producer<Segment>,
    /// The last write found the peer asleep: ring its doorbell.
    pub ring_doorbell: bool,
}

/// The reading end of a ring: the path of one peer's frames to this rank.
pub(crate) struct Rx {
    cons: Consumer<Segment>,
    /// A read freed space the peer waits for: ring its doorbell.
    pub ring_doorbell: bool,
}

impl Tx {
    /// A new ring of `cap` bytes and the descriptor number a peer opens it through.
    pub(crate) fn create(cap: usize) -> io::Result<(Tx, i32)> {
        let seg = Segment::create_prefaulted(c"mpr-ring", ring::segment_len(cap))?;
        let fd = seg
            .fd()
            .ok_or_else(|| io::Error::other("a new segment without descriptor"))?;
        Ok((
            Tx {
                prod: Producer::new(seg, cap),
                ring_doorbell: false,
            },
            fd,
        ))
    }

    /// The peer has mapped the ring: the descriptor is no longer needed.
    pub(crate) fn mapped(&mut self) {
        self.prod.mem_mut().close_fd();
    }

    /// Writes `bufs` as one record if they fit now (see [`Producer::write_whole`]); true if
    /// they did. A ring that is corrupt writes nothing here: the next queued write finds out.
    pub(crate) fn write_whole(&mut self, bufs: &[IoSlice<'_>]) -> bool {
        let done = self.prod.write_whole(bufs).unwrap_or(false);
        self.ring_doorbell |= done && self.prod.take_sleeper();
        done
    }

    /// Before this rank sleeps with frames still to write: true if it may (the peer will ring
    /// when it frees space), false if there is room now.
    pub(crate) fn may_sleep(&mut self) -> io::Result<bool> {
        self.prod.wait_for_space().map_err(corrupt)
    }
}

impl Rx {
    /// Maps the ring of `cap` bytes that process `pid` offered as its descriptor `fd`.
    pub(crate) fn open(pid: u32, fd: i32, cap: usize) -> io::Result<Rx> {
        if !cap.is_power_of_two() || !(ring::MIN_CAP..=ring::MAX_CAP).contains(&cap) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a ring of {cap} bytes"),
            ));
        }
        let seg = Segment::open_prefaulted(pid, fd, ring::segment_len(cap))?;
        Ok(Rx {
            cons: Consumer::new(seg, cap),
            ring_doorbell: false,
        })
    }

    /// Before this rank sleeps: true if it may (the peer will ring when it writes), false if
    /// bytes have come.
    pub(crate) fn may_sleep(&mut self) -> io::Result<bool> {
        self.ring_doorbell |= self.cons.check_waiter();
        self.cons.sleep().map_err(corrupt)
    }

    /// Bytes ready in the ring's current record (0: none ready); a read of at most that many
    /// takes them from this record alone.
    pub(crate) fn record_left(&mut self) -> io::Result<usize> {
        self.cons.record_left().map_err(corrupt)
    }

    /// Copies bytes of the current record, from `offset` on, out without taking them: the
    /// count (0: none ready).
    pub(crate) fn peek(&mut self, offset: usize, dst: &mut [u8]) -> io::Result<usize> {
        self.cons.peek(offset, dst).map_err(corrupt)
    }

    /// Takes the rest of the current record, uncopied (after a [`Rx::peek`] at it).
    pub(crate) fn skip_record(&mut self) {
        self.ring_doorbell |= self.cons.skip_record();
    }

    /// Whether bytes may have come (cheap: for every poll of an idle ring).
    /// An empty ring also looks whether its writer waits for the space reads freed (then
    /// `ring_doorbell` is set).
    pub(crate) fn maybe_ready(&mut self) -> bool {
        let ready = self.cons.maybe_ready();
        if !ready {
            self.ring_doorbell |= self.cons.check_waiter();
        }
        ready
    }

    /// Awake again.
    pub(crate) fn awake(&self) {
        self.cons.wake()
    }
}

fn corrupt(c: Corrupt) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, c.0)
}

/// Reads as a non-blocking socket does: `WouldBlock` when the ring is empty.
impl Read for Rx {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = self.cons.read(buf).map_err(corrupt)?;
        self.got(got, !buf.is_empty())
    }
    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        let got = self.cons.read_vectored(bufs).map_err(corrupt)?;
        self.got(got, bufs.iter().any(|b| !b.is_empty()))
    }
}

impl Tx {
    /// Writes, as `write_vectored` does, the slices `pieces` yields (`want` bytes in all),
    /// copied into the ring as they come.
    pub(crate) fn write_pieces<'a>(
        &mut self,
        pieces: impl Iterator<Item = &'a [u8]>,
        want: usize,
    ) -> io::Result<usize> {
        match self.prod.write_pieces(pieces, want).map_err(corrupt)? {
            0 if want > 0 => Err(io::ErrorKind::WouldBlock.into()),
            n => {
                self.ring_doorbell |= n > 0 && self.prod.take_sleeper();
                Ok(n)
            }
        }
    }
}

impl Rx {
    /// Reads, as `read_vectored` does, payload bytes `start..end` into their places in `dest`
    /// (a laid-out payload's blocks, as they come: no slice array to build).
    pub(crate) fn read_pieces(
        &mut self,
        dest: &mut crate::transport::Dest,
        start: usize,
        end: usize,
    ) -> io::Result<usize> {
        let (mut done, mut wanted, mut bad) = (0, false, None);
        dest.each_piece(start, end, |dst: &mut [u8]| {
            wanted |= !dst.is_empty();
            match self.cons.fill(dst) {
                Ok(n) => {
                    done += n;
                    n == dst.len()
                }
                Err(e) => {
                    bad = Some(e);
                    false
                }
            }
        });
        if let Some(e) = bad {
            return Err(corrupt(e));
        }
        let wake = self.cons.after_reads();
        self.got((done, wake), wanted)
    }

    /// What a read returns for (bytes, wake the writer), `wanted` bytes: `WouldBlock` for none.
    fn got(&mut self, (n, wake): (usize, bool), wanted: bool) -> io::Result<usize> {
        if n == 0 && wanted {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.ring_doorbell |= wake;
        Ok(n)
    }
}

/// Writes as a non-blocking socket does: `WouldBlock` when the ring is full.
impl Write for Tx {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let want = bufs.iter().map(|b| b.len()).sum();
        self.write_pieces(bufs.iter().map(|b| &**b), want)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes_shrink_with_the_host_and_stay_powers_of_two() {
        assert_eq!(ring_capacity(1), LARGEST);
        assert_eq!(ring_capacity(2), LARGEST);
        assert_eq!(ring_capacity(17), LARGEST);
        assert_eq!(ring_capacity(64), 64 << 10);
        assert_eq!(ring_capacity(10_000), SMALLEST);
        for n in 1..300 {
            assert!(ring_capacity(n).is_power_of_two());
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create or mmap")]
    fn a_ring_between_two_mappings_of_one_process() {
        let cap = ring_capacity(2);
        let (mut tx, fd) = Tx::create(cap).unwrap();
        let mut rx = Rx::open(std::process::id(), fd, cap).unwrap();
        tx.mapped();
        assert!(
            Rx::open(std::process::id(), fd, cap).is_err(),
            "descriptor closed"
        );
        assert!(rx.may_sleep().unwrap());
        let msg: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut sent = 0;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 7000];
        while got.len() < msg.len() {
            match tx.write(&msg[sent..]) {
                Ok(n) => sent += n,
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
            match rx.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
        }
        assert_eq!(got, msg);
        assert!(
            tx.ring_doorbell,
            "the reader slept when the first bytes came"
        );
        assert!(matches!(rx.read(&mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
        assert!(
            Rx::open(std::process::id(), 0, 1000).is_err(),
            "not a power of two"
        );
    }
}
