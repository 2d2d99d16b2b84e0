//! Borrowed user buffers held by pending operations: the one place raw pointers to user memory live.
//!
//! A pending send keeps a pointer into the caller's slice so that its bytes go from that slice
//! straight to the socket, possibly over several `writev` calls; a pending receive keeps one so
//! that bytes go from the socket straight into it. Rust lifetimes cannot follow a pointer into
//! the progress engine, so the engine stores [`RawSlice`] / [`RawMut`] instead.
//!
//! A view is either contiguous (every byte of the slice, in order) or *laid out*: the blocks of
//! a [`Layout`](crate::Layout) over the slice, in travel order ([`Laid`]). A laid-out view is
//! how a strided message goes without a packing copy: the transport gathers its blocks into a
//! `writev` or a ring record and scatters arriving bytes into them (`pieces`, `copy_in`). Byte
//! `n` of the message is found at once: each block records how many elements come before it.
//!
//! # Invariant
//!
//! Creating one is `unsafe`: the creator promises that the memory (and, for a laid-out view,
//! the layout's block lists) stays valid, and (for [`RawMut`]) not otherwise accessed, until the
//! operation that holds it has completed or has been removed from the engine. Blocking calls
//! keep that promise by waiting for completion before they return; nonblocking requests keep it
//! through `mpr::scope`, which does not return while any of its requests is pending. Given that,
//! the safe accessors below are sound: the constructors check that every block lies within the
//! slice, and (for a receive) that no two blocks overlap, so the pieces handed out are in bounds
//! and, for [`RawMut`], disjoint.

/// The blocks of a layout as a view needs them (made by `Layout::laid`, which keeps these
/// true): (offset, length) in elements of `unit` bytes, in travel order, no block empty, none
/// reaching past `extent`; `before[i]`: the elements of the blocks before block `i`; `count`:
/// the elements of all of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Laid<'a> {
    pub blocks: &'a [(usize, usize)],
    pub before: &'a [usize],
    pub unit: usize,
    pub count: usize,
    /// One past the last element any block names.
    pub extent: usize,
    /// No element is named twice.
    pub disjoint: bool,
}

/// [`Laid`] as raw parts, held by a view.
#[derive(Debug, Clone, Copy)]
struct RawLaid {
    blocks: *const (usize, usize),
    before: *const usize,
    n: usize,
    unit: usize,
}

impl RawLaid {
    fn of(l: &Laid<'_>) -> RawLaid {
        RawLaid {
            blocks: l.blocks.as_ptr(),
            before: l.before.as_ptr(),
            n: l.blocks.len().min(l.before.len()),
            unit: l.unit,
        }
    }

    fn block(&self, i: usize) -> (usize, usize) {
        debug_assert!(i < self.n);
        // SAFETY: `i < n`, and the creator of the view keeps the block list valid (module docs).
        let (off, len) = unsafe { *self.blocks.add(i) };
        (off * self.unit, len * self.unit)
    }

    fn before(&self, i: usize) -> usize {
        debug_assert!(i < self.n);
        // SAFETY: as in `block`.
        unsafe { *self.before.add(i) * self.unit }
    }

    /// The block holding byte `at` of the message, and where in it: `None` past the end.
    fn locate(&self, at: usize) -> Option<(usize, usize)> {
        // The last block starting at or before `at` (binary search over `before`).
        let (mut lo, mut hi) = (0, self.n);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if self.before(mid) <= at {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        if self.n == 0 {
            return None;
        }
        let within = at - self.before(lo);
        (within < self.block(lo).1).then_some((lo, within))
    }
}

/// Byte ranges (start within the slice, length) of message bytes `start..end` of a view, in
/// order: the one run of a contiguous view, or the blocks of a laid-out one. A plain struct
/// (no iterator adapters): the transport walks it once per block of a strided message.
struct Ranges {
    laid: Option<RawLaid>,
    /// Block `i` next, from byte `within` of it.
    i: usize,
    within: usize,
    /// Message bytes still to yield.
    left: usize,
    /// Where they start, for a contiguous view.
    at: usize,
}

impl Ranges {
    fn new(laid: Option<RawLaid>, start: usize, end: usize) -> Ranges {
        let left = end.saturating_sub(start);
        let (i, within) = match laid {
            Some(l) if left > 0 => l.locate(start).unwrap_or((l.n, 0)),
            _ => (0, 0),
        };
        Ranges {
            laid,
            i,
            within,
            left,
            at: start,
        }
    }
}

impl Iterator for Ranges {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.left == 0 {
            return None;
        }
        let Some(l) = &self.laid else {
            let n = std::mem::take(&mut self.left);
            return Some((self.at, n));
        };
        if self.i >= l.n {
            return None;
        }
        let (off, len) = l.block(self.i);
        let n = (len - self.within).min(self.left);
        let at = off + self.within;
        self.left -= n;
        self.i += 1;
        self.within = 0;
        Some((at, n))
    }
}

/// Blocks of a laid-out view at least this long on average (bytes) may take the single copy
/// between processes, as this side's iovecs; shorter ones stream through the ring. Measured (C,
/// one process copying 1 MiB out of another with `process_vm_readv`, best of 50; BENCHMARKS.md,
/// "Issue 17"): local iovecs of 4 KiB cost next to nothing (27-29 us against 27-30 for one run),
/// of 1 KiB 33, of 256 B 67-88; but whether one copier with 4 KiB blocks beats the ring, which
/// copies on both cores, is not yet measured, so the copy starts at 16 KiB blocks.
const COPY_BLOCKS_FROM: usize = 16 << 10;

/// Blocks at least this long on average may also be the *other* side's iovecs: the kernel pins
/// each remote iovec's pages on its own, a cost per block and per page the ring does not pay
/// (4 KiB blocks as remote iovecs: 37-39 us for 1 MiB, or 1.5 to 2 x one run where pinning is
/// slow). Below it, a laid-out side only copies its own blocks, and a pair that are both laid
/// out streams through the ring.
const NAMED_BLOCKS_FROM: usize = 64 << 10;

/// The most blocks a laid-out view of `len` bytes may have and be named to a peer as a block
/// list (see [`NAMED_BLOCKS_FROM`]): the size of that list (engine/place.rs).
pub(crate) fn most_named_blocks(len: usize) -> usize {
    len / NAMED_BLOCKS_FROM
}

impl RawLaid {
    /// Its blocks are `from` bytes long on average, or longer.
    fn coarse(&self, len: usize, from: usize) -> bool {
        self.n <= len / from
    }
}

/// Checks a layout against a slice of `len` bytes (its blocks lie within `extent`: [`Laid`]);
/// for a receive (`writes`), also that its blocks are disjoint.
fn fits(l: &Laid<'_>, len: usize, writes: bool) -> bool {
    l.blocks.len() == l.before.len()
        && l.extent.checked_mul(l.unit).is_some_and(|e| e <= len)
        && l.count.checked_mul(l.unit).is_some()
        && (!writes || l.disjoint)
}

/// A read-only view of a caller's bytes, held by a pending send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawSlice {
    ptr: *const u8,
    len: usize,
    laid: Option<RawLaid>,
}

/// A writable view of a caller's bytes, held by a pending receive.
#[derive(Debug)]
pub(crate) struct RawMut {
    ptr: *mut u8,
    len: usize,
    laid: Option<RawLaid>,
}

impl RawSlice {
    /// An empty view (no bytes; never dereferenced).
    pub(crate) const EMPTY: RawSlice = RawSlice {
        ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
        len: 0,
        laid: None,
    };

    /// # Safety
    /// `bytes` must stay valid until the operation holding the result completes or is removed
    /// from the engine (module docs, "Invariant").
    pub(crate) unsafe fn new(bytes: &[u8]) -> RawSlice {
        RawSlice {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
            laid: None,
        }
    }

    /// The blocks `laid` names in `bytes`, in its order; `None` if a block lies outside them.
    ///
    /// # Safety
    /// As [`RawSlice::new`], for `bytes` and for the block lists of `laid`, which must come
    /// from `Layout::laid` (whose blocks lie within its extent).
    pub(crate) unsafe fn laid(bytes: &[u8], laid: Laid<'_>) -> Option<RawSlice> {
        // SAFETY: the caller's promise for `bytes` covers all of its bytes.
        unsafe { RawSlice::laid_raw(bytes.as_ptr(), bytes.len(), laid) }
    }

    /// [`RawSlice::laid`] over the `len` bytes at `ptr`, of which only the blocks are read:
    /// for a buffer other parts of which other operations may be writing meanwhile (no `&`
    /// to the whole of it may exist then).
    ///
    /// # Safety
    /// As [`RawSlice::laid`], for the bytes of the blocks within `ptr..ptr + len`.
    pub(crate) unsafe fn laid_raw(ptr: *const u8, len: usize, laid: Laid<'_>) -> Option<RawSlice> {
        fits(&laid, len, false).then(|| RawSlice {
            ptr,
            len: laid.count * laid.unit,
            laid: Some(RawLaid::of(&laid)),
        })
    }

    /// Bytes of the message.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Where the bytes start, as a number, for a contiguous view: what a peer on this host
    /// needs to copy them out of this process itself (`sys::pull`). Never dereferenced here.
    /// `None` for a laid-out view.
    pub(crate) fn addr(&self) -> Option<u64> {
        self.laid.is_none().then_some(self.ptr as usize as u64)
    }

    /// The runs of this process's memory holding the message, as (address, bytes): what a
    /// peer on this host needs to copy out of a laid-out view itself (engine/place.rs). Never
    /// dereferenced here.
    pub(crate) fn runs(&self) -> impl Iterator<Item = crate::sys::Span> + '_ {
        let base = self.ptr as usize as u64;
        Ranges::new(self.laid, 0, self.len).map(move |(at, n)| (base + at as u64, n))
    }

    /// Whether the single copy between processes suits this view: one run, or blocks long
    /// enough on average (`COPY_BLOCKS_FROM`) for an iovec each.
    pub(crate) fn copies_once(&self) -> bool {
        self.laid
            .is_none_or(|l| l.coarse(self.len, COPY_BLOCKS_FROM))
    }

    /// Whether a laid-out view's blocks are long enough to be a peer's iovecs
    /// (`NAMED_BLOCKS_FROM`), named to it in a block list.
    pub(crate) fn named(&self) -> bool {
        self.laid
            .is_some_and(|l| l.coarse(self.len, NAMED_BLOCKS_FROM))
    }

    /// The bytes of the message from `offset` on, up to the end of the block holding it: all
    /// of the rest for a contiguous view (empty past the end).
    pub(crate) fn tail(&self, offset: usize) -> &[u8] {
        self.pieces(offset).next().unwrap_or(&[])
    }

    /// The bytes of the message from `offset` on, as the pieces of the caller's slice they lie
    /// in, in order.
    pub(crate) fn pieces(&self, offset: usize) -> impl Iterator<Item = &[u8]> + '_ {
        Ranges::new(self.laid, offset, self.len).map(|(at, n)| {
            // SAFETY: the creator of this RawSlice promised the memory is valid while the
            // operation holding it is pending, and only pending operations' views are
            // accessed; `at + n` is within the slice (`ranges` yields blocks, which `laid`
            // checked, or the contiguous rest).
            unsafe { std::slice::from_raw_parts(self.ptr.add(at), n) }
        })
    }
}

impl RawMut {
    /// # Safety
    /// `bytes` must stay valid and otherwise untouched until the operation holding the result
    /// completes or is removed from the engine (module docs, "Invariant").
    pub(crate) unsafe fn new(bytes: &mut [u8]) -> RawMut {
        RawMut {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            laid: None,
        }
    }

    /// The blocks `laid` names in `bytes`, in its order; `None` if a block lies outside them
    /// or two of them overlap.
    ///
    /// # Safety
    /// As [`RawMut::new`], for `bytes` and for the block lists of `laid`, which must come from
    /// `Layout::laid`.
    pub(crate) unsafe fn laid(bytes: &mut [u8], laid: Laid<'_>) -> Option<RawMut> {
        // SAFETY: as in `RawSlice::laid`.
        unsafe { RawMut::laid_raw(bytes.as_mut_ptr(), bytes.len(), laid) }
    }

    /// [`RawMut::laid`] over the `len` bytes at `ptr`, of which only the blocks are touched
    /// (as [`RawSlice::laid_raw`]).
    ///
    /// # Safety
    /// As [`RawMut::laid`], for the bytes of the blocks within `ptr..ptr + len`.
    pub(crate) unsafe fn laid_raw(ptr: *mut u8, len: usize, laid: Laid<'_>) -> Option<RawMut> {
        fits(&laid, len, true).then(|| RawMut {
            ptr,
            len: laid.count * laid.unit,
            laid: Some(RawLaid::of(&laid)),
        })
    }

    /// Bytes of the message it takes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Where the bytes start, as a number, for a contiguous view: what a peer on this host
    /// needs to write into them itself (`sys::push`), while the operation holding this view is
    /// pending. `None` for a laid-out view.
    pub(crate) fn addr(&self) -> Option<u64> {
        self.laid.is_none().then_some(self.ptr as usize as u64)
    }

    /// A view of the bytes `start..end` (clamped) of a contiguous view, for an operation of its
    /// own (empty for a laid-out view, which no caller splits).
    ///
    /// # Safety
    /// While the returned view's operation is pending, the same bytes must not be accessed
    /// through `self` (the parent keeps the memory valid; the child must be the only one using
    /// those bytes).
    pub(crate) unsafe fn sub(&mut self, start: usize, end: usize) -> RawMut {
        let part: &mut [u8] = if self.laid.is_none() {
            self.range_mut(start, end)
        } else {
            &mut []
        };
        RawMut {
            ptr: part.as_mut_ptr(),
            len: part.len(),
            laid: None,
        }
    }

    /// The runs of this process's memory that take message bytes `0..len` (clamped), as
    /// [`RawSlice::runs`]: where a peer on this host writes them itself.
    pub(crate) fn runs(&self, len: usize) -> impl Iterator<Item = crate::sys::Span> + '_ {
        let base = self.ptr as usize as u64;
        self.ranges(0, len)
            .map(move |(at, n)| (base + at as u64, n))
    }

    /// As [`RawSlice::copies_once`].
    pub(crate) fn copies_once(&self) -> bool {
        self.laid
            .is_none_or(|l| l.coarse(self.len, COPY_BLOCKS_FROM))
    }

    /// As [`RawSlice::named`].
    pub(crate) fn named(&self) -> bool {
        self.laid
            .is_some_and(|l| l.coarse(self.len, NAMED_BLOCKS_FROM))
    }

    /// The message's bytes `start..end` (clamped to it), up to the end of the block holding
    /// `start`: all of them for a contiguous view.
    pub(crate) fn range_mut(&mut self, start: usize, end: usize) -> &mut [u8] {
        let (at, n) = self.ranges(start, end).next().unwrap_or((0, 0));
        // SAFETY: as in `RawSlice::pieces`, plus the creator promised exclusive access;
        // `&mut self` makes this the only live view derived from it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(at), n) }
    }

    /// Byte ranges of the slice that hold message bytes `start..end` (clamped), in order.
    fn ranges(&self, start: usize, end: usize) -> Ranges {
        Ranges::new(self.laid, start, end.min(self.len))
    }

    /// The pieces of the slice that hold message bytes `start..end` (clamped), in order, each
    /// `&mut` to bytes no other piece covers, for a `readv`; at most `max` of them.
    pub(crate) fn pieces_mut(
        &mut self,
        start: usize,
        end: usize,
        max: usize,
    ) -> Vec<std::io::IoSliceMut<'_>> {
        let ptr = self.ptr;
        let mut out = Vec::with_capacity(max.min(end.saturating_sub(start) / 8 + 1));
        out.extend(self.ranges(start, end).take(max).map(|(at, n)| {
            // SAFETY: as in `range_mut`; the pieces are disjoint (a laid-out receive view's
            // blocks were checked not to overlap, and `ranges` yields each block once), so
            // handing out several at once aliases nothing, and they borrow `self` mutably.
            std::io::IoSliceMut::new(unsafe { std::slice::from_raw_parts_mut(ptr.add(at), n) })
        }));
        out
    }

    /// Hands `f` the pieces of the slice that hold message bytes `start..end` (clamped), in
    /// order, one at a time, while it returns true.
    #[inline]
    pub(crate) fn each_piece_mut(
        &mut self,
        start: usize,
        end: usize,
        mut f: impl FnMut(&mut [u8]) -> bool,
    ) {
        for (at, n) in self.ranges(start, end) {
            // SAFETY: as in `range_mut`; one piece lives at a time.
            if !f(unsafe { std::slice::from_raw_parts_mut(self.ptr.add(at), n) }) {
                break;
            }
        }
    }

    /// Writes `src` as message bytes `at..` (what falls past the end is dropped).
    pub(crate) fn copy_in(&mut self, at: usize, src: &[u8]) {
        let mut done = 0;
        for (off, n) in self.ranges(at, at.saturating_add(src.len())) {
            // SAFETY: as in `range_mut`.
            let dst = unsafe { std::slice::from_raw_parts_mut(self.ptr.add(off), n) };
            crate::copy::copy(dst, &src[done..done + n]);
            done += n;
        }
    }
}

/// A receive buffer the engine allocates when a message matches (a receive of unknown size):
/// a `Vec<T>` seen as bytes, handed back whole once the receive has completed.
pub(crate) trait Grown {
    /// Its bytes (every element's).
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Back to the concrete vector.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
}

impl<T: bytemuck::Pod> Grown for Vec<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(self.as_mut_slice())
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

/// Allocates a [`Grown`] buffer for a message of `bytes` bytes, `None` if memory runs out.
pub(crate) type Alloc = fn(usize) -> Option<Box<dyn Grown>>;

/// [`Alloc`] for `Vec<T>`: room for `bytes`, rounded up to whole elements.
pub(crate) fn alloc_vec<T: bytemuck::Pod>(bytes: usize) -> Option<Box<dyn Grown>> {
    let n = bytes.div_ceil(std::mem::size_of::<T>().max(1));
    let mut v: Vec<T> = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, T::zeroed());
    Some(Box::new(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_follow_the_borrowed_memory() {
        let data = [1u8, 2, 3, 4];
        // SAFETY: `data` outlives `s`.
        let s = unsafe { RawSlice::new(&data) };
        assert_eq!(s.tail(0), &data);
        assert_eq!(s.tail(3), &[4]);
        assert!(s.tail(9).is_empty());
        assert_eq!(s.addr(), Some(data.as_ptr() as u64));
        assert!(RawSlice::EMPTY.tail(0).is_empty());
        let mut out = [0u8; 4];
        // SAFETY: `out` outlives `m` and is not touched while `m` lives.
        let mut m = unsafe { RawMut::new(&mut out) };
        m.range_mut(1, 3).copy_from_slice(&[7, 8]);
        assert!(m.range_mut(3, 99).len() == 1);
        assert!(m.range_mut(5, 6).is_empty());
        m.copy_in(3, &[9, 9, 9]);
        // SAFETY: the parent `m` is not used for bytes 2..4 while `child` lives.
        let mut child = unsafe { m.sub(2, 4) };
        child.range_mut(0, 2).copy_from_slice(&[5, 6]);
        assert_eq!(child.len(), 2);
        assert_eq!(m.range_mut(0, 4), &[0, 7, 5, 6]);
    }

    #[test]
    fn laid_out_views_find_every_byte() {
        // Elements of 2 bytes; blocks out of order: elements 6..8, 0..1, 3..6.
        let layout = crate::Layout::indexed(&[2, 1, 3], &[6, 0, 3]).unwrap();
        let l = layout.laid(2);
        let data: Vec<u8> = (0..16).collect();
        let model: Vec<u8> = [12, 13, 14, 15, 0, 1, 6, 7, 8, 9, 10, 11].to_vec();
        // SAFETY: `data` and the layout outlive `s`.
        let s = unsafe { RawSlice::laid(&data, l).unwrap() };
        assert_eq!((s.len(), s.addr()), (12, None));
        for from in 0..=13 {
            let got: Vec<u8> = s.pieces(from).flatten().copied().collect();
            assert_eq!(got, model[from.min(12)..], "from {from}");
        }
        assert_eq!(s.tail(5), &[1], "the rest of the block holding byte 5");
        assert!(!s.copies_once(), "short blocks stream");
        let base = data.as_ptr() as u64;
        let runs: Vec<_> = s.runs().collect();
        assert_eq!(runs, [(base + 12, 4), (base, 2), (base + 6, 6)]);
        // SAFETY: `data` outlives the view.
        assert!(unsafe { RawSlice::new(&data) }.copies_once());
        let big = vec![0u8; 4 << 16];
        for (block, once, named) in [
            (1 << 16, true, true),
            (1 << 15, true, false),
            (1 << 14, true, false),
            (1 << 13, false, false),
            (1 << 12, false, false),
        ] {
            let l = crate::Layout::vector(big.len() / 2 / block, block, 2 * block);
            // SAFETY: `big` and `l` outlive the view.
            let v = unsafe { RawSlice::laid(&big, l.laid(1)).unwrap() };
            assert_eq!(
                (v.copies_once(), v.named()),
                (once, named),
                "blocks of {block}"
            );
        }
        // SAFETY: `big` outlives the view.
        assert!(
            !unsafe { RawSlice::new(&big) }.named(),
            "one run needs no list"
        );
        let mut out = [0u8; 16];
        // SAFETY: `out` and the layout outlive `m`, and `out` is not touched meanwhile.
        let mut m = unsafe { RawMut::laid(&mut out, l).unwrap() };
        // Every split of the message into two writes lands each byte in its place.
        for cut in 0..=12 {
            m.copy_in(0, &[0; 12]);
            m.copy_in(0, &model[..cut]);
            m.copy_in(cut, &model[cut..]);
            m.copy_in(12, &[99]); // past the end: dropped
            let got: Vec<u8> = m
                .pieces_mut(0, 99, 99)
                .iter()
                .flat_map(|b| b.iter().copied())
                .collect();
            assert_eq!(got, model, "cut {cut}");
        }
        assert_eq!(m.pieces_mut(3, 9, 2).len(), 2, "at most `max` pieces");
        let base = out.as_ptr() as u64;
        let runs: Vec<_> = m.runs(5).collect();
        assert_eq!(runs, [(base + 12, 4), (base, 1)], "the first 5 bytes");
        assert_eq!(m.range_mut(5, 12).len(), 1);
        // `m` is done with: `out` is read directly from here on.
        assert_eq!(out, [0, 1, 0, 0, 0, 0, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    }

    #[test]
    fn laid_out_views_refuse_bad_layouts() {
        let twice = crate::Layout::indexed(&[2, 2], &[0, 1]).unwrap(); // element 1 twice
        let l = twice.laid(4);
        let mut buf = [0u8; 12];
        // SAFETY: nothing is kept: every view made here is dropped at once.
        unsafe {
            assert!(
                RawSlice::laid(&buf, l).is_some(),
                "a send may name an element twice"
            );
            assert!(RawMut::laid(&mut buf, l).is_none(), "a receive may not");
            assert!(RawSlice::laid(&buf[..11], l).is_none(), "out of the buffer");
            assert!(
                RawSlice::laid(&buf, twice.laid(usize::MAX)).is_none(),
                "overflow"
            );
        }
    }

    #[test]
    fn grown_buffers_round_up_and_come_back() {
        let mut g = alloc_vec::<u32>(10).unwrap();
        assert_eq!(g.bytes_mut().len(), 12, "whole elements");
        g.bytes_mut()[..4].copy_from_slice(&7u32.to_ne_bytes());
        let v = g.into_any().downcast::<Vec<u32>>().unwrap();
        assert_eq!(v[0], 7);
        assert!(
            alloc_vec::<u64>(usize::MAX).is_none(),
            "too big is None, not an abort"
        );
        assert_eq!(alloc_vec::<u8>(0).unwrap().bytes_mut().len(), 0);
    }
}
