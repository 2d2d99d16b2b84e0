//! A memory segment shared by the ranks of one host: the one place where mpr maps memory that
//! other processes write.
//!
//! One rank creates it (an anonymous `memfd`, so nothing is left on any file system when the
//! job ends, however it ends) and tells the others its pid and descriptor number; they map it
//! through `/proc/PID/fd/N`, which the kernel allows to processes of the same user. The
//! creator's descriptor is closed once every member has mapped it; the memory lives until the
//! last mapping goes.
//!
//! What lives inside and who may touch it when is the business of the user (`coll/node.rs`);
//! this file only offers bounds-checked access: 4-byte words, always through atomics, and byte
//! ranges copied in and out (never borrowed, so no Rust reference ever points at bytes another
//! process may change).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

/// A shared mapping, unmapped on drop.
pub(crate) struct Segment {
    base: NonNull<u8>,
    len: usize,
    /// The creator's descriptor, kept until every member has mapped the segment.
    fd: Option<OwnedFd>,
}

impl Segment {
    /// A new zero-filled segment of `len` bytes, and the descriptor others map it through.
    /// `name` shows in `/proc/PID/maps` (as `/memfd:NAME`), to tell what a mapping is for.
    pub(crate) fn create(name: &std::ffi::CStr, len: usize) -> io::Result<Segment> {
        Segment::create_as(name, len, Faults::OnTouch)
    }

    /// [`Segment::create`], with every page in place before it returns (see [`Faults`]).
    pub(crate) fn create_prefaulted(name: &std::ffi::CStr, len: usize) -> io::Result<Segment> {
        Segment::create_as(name, len, Faults::Now)
    }

    fn create_as(name: &std::ffi::CStr, len: usize, faults: Faults) -> io::Result<Segment> {
        // SAFETY: the name is a NUL-terminated string that lives for the call; the flags are
        // plain integers.
        let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: memfd_create returned a new descriptor that nothing else owns.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        file.set_len(len as u64)?;
        let base = map(&file, len, faults)?;
        Ok(Segment {
            base,
            len,
            fd: Some(file.into()),
        })
    }

    /// Maps the segment that process `pid` created as its descriptor `fd`, which must be
    /// `len` bytes long.
    pub(crate) fn open(pid: u32, fd: i32, len: usize) -> io::Result<Segment> {
        Segment::open_as(pid, fd, len, Faults::OnTouch)
    }

    /// [`Segment::open`], with every page mapped before it returns (see [`Faults`]).
    pub(crate) fn open_prefaulted(pid: u32, fd: i32, len: usize) -> io::Result<Segment> {
        Segment::open_as(pid, fd, len, Faults::Now)
    }

    fn open_as(pid: u32, fd: i32, len: usize, faults: Faults) -> io::Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/fd/{fd}"))?;
        if file.metadata()?.len() != len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared segment has another size than announced",
            ));
        }
        let base = map(&file, len, faults)?;
        Ok(Segment {
            base,
            len,
            fd: None,
        })
    }

    /// The descriptor number others open the segment through (the creator's, until closed).
    pub(crate) fn fd(&self) -> Option<i32> {
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Closes the creator's descriptor (the mapping stays).
    pub(crate) fn close_fd(&mut self) {
        self.fd = None;
    }

    /// The 4-byte word at `offset` (a multiple of 4, inside the segment).
    pub(crate) fn word(&self, offset: usize) -> &AtomicU32 {
        assert!(
            offset % 4 == 0 && offset + 4 <= self.len,
            "word {offset} outside the segment"
        );
        // SAFETY: the word is inside the mapping (checked) and 4-aligned (the mapping is
        // page-aligned), and lives as long as `self`. Every process accesses these words only
        // through atomics, so sharing them across processes is sound.
        unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    /// Copies `src` into the segment at `offset`.
    #[inline]
    pub(crate) fn write(&self, offset: usize, src: &[u8]) {
        self.check(offset, src.len());
        // SAFETY: the destination range is inside the mapping (checked) and cannot overlap
        // `src`, which is this process's own memory. The bytes are plain data: any value is
        // valid. Other processes write a range only when the protocol of `coll/node.rs` gives it
        // to them; should a misbehaving process break that, the copy moves garbage bytes within
        // the mapping, never outside it.
        unsafe { crate::copy::copy_raw(src.as_ptr(), self.base.as_ptr().add(offset), src.len()) }
    }

    /// Copies bytes of the segment at `offset` into `dst`.
    #[inline]
    pub(crate) fn read(&self, offset: usize, dst: &mut [u8]) {
        self.check(offset, dst.len());
        // SAFETY: as in `write`, the other way round: the source range is inside the mapping,
        // `dst` is this process's own memory, and any byte value is valid in it.
        unsafe {
            crate::copy::copy_raw(self.base.as_ptr().add(offset), dst.as_mut_ptr(), dst.len())
        }
    }

    #[inline]
    fn check(&self, offset: usize, len: usize) {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "range {offset}+{len} outside the segment of {} bytes",
            self.len
        );
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` are exactly what mmap returned and took; no reference into the
        // mapping outlives `self` (words borrow it).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// When a mapping's pages are faulted in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Faults {
    /// On first touch: memory is taken only for the pages a segment's user writes.
    OnTouch,
    /// At once (`MAP_POPULATE`), for a segment that will be written all over anyway, on the path
    /// of messages: a ring cycles through all its pages, and in a VM each first touch cost some
    /// 6 us (an 8-byte ping-pong through a fresh 256 KiB ring had a 99th percentile of 6 us
    /// over its first 10,000 round trips, against 0.33 us once every page had been touched).
    Now,
}

/// Maps `len` bytes of `file`, shared, read and write.
fn map(file: &File, len: usize, faults: Faults) -> io::Result<NonNull<u8>> {
    if len == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty segment"));
    }
    // SAFETY: a new mapping chosen by the kernel (no address hint, so nothing existing is
    // replaced), of a descriptor that is open for the call.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED
                | match faults {
                    Faults::OnTouch => 0,
                    Faults::Now => libc::MAP_POPULATE,
                },
            file.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

#[cfg(test)]
mod tests {
    use super::Segment;
    use std::sync::atomic::Ordering;

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create or mmap")]
    fn two_mappings_of_one_segment_see_each_others_writes() {
        let a = Segment::create(c"mpr-test", 1 << 16).unwrap();
        let b = Segment::open(std::process::id(), a.fd().unwrap(), 1 << 16).unwrap();
        see_each_other(a, b);
        let a = Segment::create_prefaulted(c"mpr-test", 1 << 16).unwrap();
        let b = Segment::open_prefaulted(std::process::id(), a.fd().unwrap(), 1 << 16).unwrap();
        see_each_other(a, b);
    }

    fn see_each_other(a: Segment, b: Segment) {
        assert!(Segment::open(std::process::id(), a.fd().unwrap(), 1 << 12).is_err());
        a.word(64).store(7, Ordering::SeqCst);
        assert_eq!(b.word(64).fetch_add(1, Ordering::SeqCst), 7);
        assert_eq!(a.word(64).load(Ordering::SeqCst), 8);
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
        b.write(1000, &data);
        let mut back = vec![0u8; data.len()];
        a.read(1000, &mut back);
        assert_eq!(back, data);
        let mut zero = [1u8; 8];
        a.read((1 << 16) - 8, &mut zero);
        assert_eq!(zero, [0; 8], "a new segment is zero-filled");
        let mut a = a;
        a.close_fd();
        assert!(a.fd().is_none());
        assert_eq!(
            b.word(64).load(Ordering::SeqCst),
            8,
            "the mapping outlives the descriptor"
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call memfd_create or mmap")]
    fn ranges_outside_the_segment_are_refused() {
        let a = Segment::create(c"mpr-test", 4096).unwrap();
        let past_end = std::panic::catch_unwind(|| a.read(4090, &mut [0u8; 8]));
        assert!(past_end.is_err());
        let wrapping = std::panic::catch_unwind(|| a.write(usize::MAX, &[0u8; 2]));
        assert!(wrapping.is_err());
        assert!(std::panic::catch_unwind(|| a.word(4094)).is_err());
        assert!(Segment::open(u32::MAX >> 2, 3, 4096).is_err());
    }
}
