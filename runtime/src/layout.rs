//! Layouts: which elements of a buffer a message carries, in which order (MPI's derived
//! datatypes for one element type: `MPI_Type_vector`, `MPI_Type_create_subarray`,
//! `MPI_Type_indexed`).
//!
//! A [`Layout`] is a list of blocks (offset and length, in elements of the buffer it is used
//! with), in the order their elements travel. A message sent with a layout is just those
//! elements one after another, so it can be received with another layout, or into a contiguous
//! buffer, as in MPI: a column of a matrix (a vector layout) may arrive as a row.
//!
//! **Checks.** Every layout is checked against the buffer it is used with (every block inside
//! it) before a byte moves; a layout used to receive must not name an element twice
//! (overlapping blocks), since the order of the writes would decide the result. Bad layouts are
//! errors ([`Error::InvalidArgument`]), never out-of-bounds access: the copies below index the
//! slices, which the checks have made sure are in range.
//!
//! Adjacent blocks are merged when the layout is made, so a vector whose stride equals its
//! block length is one block, and a subarray that spans whole rows has one block per plane.

use crate::error::{Error, Result};

/// Layouts whose blocks average fewer bytes than this are packed ([`Layout::packs`]) for a
/// socket, which takes blocks as iovecs. Between ranks of one host over local sockets
/// (`MPR_LOCAL=unix`), 1 MiB one-way (BENCHMARKS.md, "Issue 17"): 64-byte blocks packed 170-175 us,
/// as iovecs 681; 128-byte blocks 172-246 against 433; 256-byte 152 against 259.
pub(crate) const PACK_BELOW: usize = 256;
/// The same for rings in shared memory, which copy blocks in and out of their records with
/// inline copies (`copy.rs`): 1 MiB one-way in 64-byte blocks 122 us as they lie against 157
/// packed, in 128-byte blocks 86 against 159; in 32-byte blocks 202 against 197, in 16-byte
/// 366 against 349, and in 8-byte 2153 against 710.
pub(crate) const PACK_BELOW_RING: usize = 64;

/// Which elements of a buffer a message carries (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// (offset, length) in elements, in the order they travel; adjacent ones merged.
    blocks: Vec<(usize, usize)>,
    /// Elements of the blocks before each block: where each begins in the message.
    before: Vec<usize>,
    /// No element is named twice (a receive needs it).
    disjoint: bool,
    /// Elements carried.
    count: usize,
    /// One past the last element named: the least buffer length it fits.
    extent: usize,
    /// Why the layout cannot be used (an overflow when it was made), reported at its first use.
    invalid: Option<String>,
}

fn bad(what: &'static str, detail: String) -> Error {
    Error::InvalidArgument { what, detail }
}

impl Layout {
    /// From blocks in travel order, merging adjacent ones; `None` on overflow.
    fn from_blocks(raw: impl IntoIterator<Item = (usize, usize)>) -> Option<Layout> {
        let mut blocks: Vec<(usize, usize)> = Vec::new();
        let (mut count, mut extent) = (0usize, 0usize);
        for (off, len) in raw {
            if len == 0 {
                continue;
            }
            let end = off.checked_add(len)?;
            count = count.checked_add(len)?;
            extent = extent.max(end);
            match blocks.last_mut() {
                Some((o, l)) if *o + *l == off => *l += len,
                _ => blocks.push((off, len)),
            }
        }
        let mut before = Vec::with_capacity(blocks.len());
        let mut sum = 0;
        for &(_, len) in &blocks {
            before.push(sum);
            sum += len;
        }
        // Blocks in ascending order (vectors, subarrays) are checked in one pass; others sorted.
        let apart = |b: &[(usize, usize)]| b.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0);
        let disjoint = apart(&blocks) || {
            let mut sorted = blocks.clone();
            sorted.sort_unstable();
            apart(&sorted)
        };
        Some(Layout {
            blocks,
            before,
            disjoint,
            count,
            extent,
            invalid: None,
        })
    }

    /// Whether a message of this layout is packed into one buffer (and unpacked from one)
    /// rather than moved where its blocks lie: when it has several blocks averaging under
    /// [`PACK_BELOW`] bytes ([`PACK_BELOW_RING`] if it goes through `rings`), for which a
    /// tight copy loop beats handing each block to the transport on its own (BENCHMARKS.md,
    /// "Issue 17"). Each side decides for itself: the bytes travel in the same order either way.
    pub(crate) fn packs(&self, unit: usize, rings: bool) -> bool {
        let below = if rings { PACK_BELOW_RING } else { PACK_BELOW };
        self.blocks.len() > 1 && self.count.saturating_mul(unit) < below * self.blocks.len()
    }

    /// The blocks as a view of a buffer of elements of `unit` bytes needs them (`buf.rs`).
    pub(crate) fn laid(&self, unit: usize) -> crate::buf::Laid<'_> {
        crate::buf::Laid {
            blocks: &self.blocks,
            before: &self.before,
            unit,
            count: self.count,
            extent: self.extent,
            disjoint: self.disjoint,
        }
    }

    /// `n` elements from the start of the buffer.
    pub fn contiguous(n: usize) -> Layout {
        Layout::from_blocks([(0, n)]).unwrap_or_else(|| Layout::broken("contiguous", n))
    }

    fn broken(what: &str, n: usize) -> Layout {
        Layout {
            blocks: Vec::new(),
            before: Vec::new(),
            disjoint: true,
            count: 0,
            extent: 0,
            invalid: Some(format!("{what} layout of {n} overflows")),
        }
    }

    /// `count` blocks of `block_len` elements, `stride` elements apart (`MPI_Type_vector`): a
    /// column of a row-major matrix of `cols` columns is `vector(rows, 1, cols)`.
    ///
    /// ```
    /// let col = mpr::Layout::vector(3, 1, 4); // column 0 of a 3 x 4 matrix
    /// assert_eq!((col.count(), col.extent()), (3, 9));
    /// ```
    pub fn vector(count: usize, block_len: usize, stride: usize) -> Layout {
        let blocks = (0..count).map(|i| (i.saturating_mul(stride), block_len));
        let fits = count == 0
            || (count - 1)
                .checked_mul(stride)
                .and_then(|o| o.checked_add(block_len))
                .is_some();
        match fits.then(|| Layout::from_blocks(blocks)).flatten() {
            Some(l) => l,
            None => Layout {
                invalid: Some(format!(
                    "vector of {count} blocks of {block_len} every {stride} overflows"
                )),
                ..Layout::contiguous(0)
            },
        }
    }

    /// The block `starts[d] .. starts[d] + subsizes[d]` of each dimension `d` of an array of
    /// `sizes`, stored in C order (the last dimension varies fastest; `MPI_Type_create_subarray`
    /// with `MPI_ORDER_C`). The face `x = 0` of an `nx x ny x nz` array is
    /// `subarray(&[nx, ny, nz], &[1, ny, nz], &[0, 0, 0])`.
    ///
    /// ```
    /// // The 2 x 2 block at row 1, column 1 of a 4 x 4 matrix: elements 5, 6, 9, 10.
    /// let b = mpr::Layout::subarray(&[4, 4], &[2, 2], &[1, 1])?;
    /// assert_eq!(b.blocks(), [(5, 2), (9, 2)]);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn subarray(sizes: &[usize], subsizes: &[usize], starts: &[usize]) -> Result<Layout> {
        let what = "subarray";
        if sizes.len() != subsizes.len() || sizes.len() != starts.len() {
            return Err(bad(
                what,
                format!(
                    "{} sizes, {} subsizes and {} starts",
                    sizes.len(),
                    subsizes.len(),
                    starts.len()
                ),
            ));
        }
        for d in 0..sizes.len() {
            if starts[d]
                .checked_add(subsizes[d])
                .is_none_or(|e| e > sizes[d])
            {
                return Err(bad(
                    what,
                    format!(
                        "dimension {d}: {} elements from {} do not fit its {}",
                        subsizes[d], starts[d], sizes[d]
                    ),
                ));
            }
        }
        let overflow = || bad(what, format!("an array of {sizes:?} overflows"));
        sizes
            .iter()
            .try_fold(1usize, |p, &s| p.checked_mul(s))
            .ok_or_else(overflow)?;
        let k = sizes.len();
        if k == 0 {
            return Ok(Layout::contiguous(1));
        }
        // Element strides of each dimension, C order.
        let mut stride = vec![1usize; k];
        for d in (0..k - 1).rev() {
            stride[d] = stride[d + 1] * sizes[d + 1];
        }
        let rows: usize = subsizes[..k - 1].iter().product();
        let run = subsizes[k - 1];
        if rows == 0 || run == 0 {
            return Ok(Layout::contiguous(0));
        }
        // Walk the rows (every index but the last) in C order, like an odometer.
        let mut idx = vec![0usize; k - 1];
        let mut blocks = Vec::with_capacity(rows);
        for _ in 0..rows {
            let off: usize = (0..k - 1)
                .map(|d| (starts[d] + idx[d]) * stride[d])
                .sum::<usize>()
                + starts[k - 1];
            blocks.push((off, run));
            for d in (0..k - 1).rev() {
                idx[d] += 1;
                if idx[d] < subsizes[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Layout::from_blocks(blocks).ok_or_else(overflow)
    }

    /// Blocks of `block_lens[i]` elements at `displs[i]` (`MPI_Type_indexed`), in that order.
    ///
    /// ```
    /// let l = mpr::Layout::indexed(&[2, 1], &[6, 0])?; // elements 6, 7, then 0
    /// assert_eq!((l.count(), l.extent()), (3, 8));
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn indexed(block_lens: &[usize], displs: &[usize]) -> Result<Layout> {
        if block_lens.len() != displs.len() {
            return Err(bad(
                "indexed",
                format!(
                    "{} block lengths but {} displacements",
                    block_lens.len(),
                    displs.len()
                ),
            ));
        }
        Layout::from_blocks(displs.iter().copied().zip(block_lens.iter().copied()))
            .ok_or_else(|| bad("indexed", "the blocks overflow".into()))
    }

    /// Elements the layout carries.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The least buffer length (in elements) the layout fits.
    pub fn extent(&self) -> usize {
        self.extent
    }

    /// The blocks, (offset, length) in elements, in the order they travel (adjacent ones
    /// merged).
    pub fn blocks(&self) -> &[(usize, usize)] {
        &self.blocks
    }

    /// The one run of elements the layout names, as a range, when it names a single block (or
    /// none: an empty range): such a layout moves as a plain slice, with no copy.
    pub(crate) fn run(&self) -> Option<std::ops::Range<usize>> {
        match self.blocks[..] {
            [] => Some(0..0),
            [(off, len)] => Some(off..off + len),
            _ => None,
        }
    }

    /// Checks the layout against a buffer of `len` elements, for a send (`writes` false) or a
    /// receive (`writes` true: no element named twice).
    pub(crate) fn check(&self, what: &'static str, len: usize, writes: bool) -> Result<()> {
        if let Some(why) = &self.invalid {
            return Err(bad(what, why.clone()));
        }
        if self.extent > len {
            return Err(bad(
                what,
                format!(
                    "the layout reaches element {} of a buffer of {len}",
                    self.extent - 1
                ),
            ));
        }
        if writes && !self.disjoint {
            let mut sorted = self.blocks.clone();
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0].0 + w[0].1 > w[1].0) {
                return Err(bad(
                    what,
                    format!(
                        "receive blocks overlap: {} elements at {} and {} at {}",
                        w[0].1, w[0].0, w[1].1, w[1].0
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The elements of `buf` the layout names, in order (checked with [`Layout::check`]): the
    /// typed model the byte forms are tested against.
    #[cfg(test)]
    pub(crate) fn pack<T: Copy>(&self, buf: &[T]) -> Vec<T> {
        let mut out = Vec::with_capacity(self.count);
        for &(off, len) in &self.blocks {
            out.extend_from_slice(&buf[off..off + len]);
        }
        out
    }

    /// The bytes of the elements of `buf` the layout names, in order (checked with
    /// [`Layout::check`]): what a send that owns its buffer carries.
    pub(crate) fn pack_bytes<T: bytemuck::Pod>(&self, buf: &[T]) -> Vec<u8> {
        let mut out = Vec::new();
        self.pack_bytes_into(buf, &mut out);
        out
    }

    /// [`Layout::pack_bytes`] into `out` (cleared first; its capacity is reused).
    pub(crate) fn pack_bytes_into<T: bytemuck::Pod>(&self, buf: &[T], out: &mut Vec<u8>) {
        let size = std::mem::size_of::<T>();
        let bytes: &[u8] = bytemuck::cast_slice(buf);
        out.clear();
        out.resize(self.count * size, 0);
        let mut at = 0;
        for &(off, len) in &self.blocks {
            let n = len * size;
            crate::copy::copy(&mut out[at..at + n], &bytes[off * size..off * size + n]);
            at += n;
        }
    }

    /// Writes the bytes of whole elements `packed` (at most [`Layout::count`] of them, in
    /// travel order) into the places of `buf` the layout names.
    pub(crate) fn unpack_bytes<T: bytemuck::Pod>(&self, packed: &[u8], buf: &mut [T]) {
        let size = std::mem::size_of::<T>();
        let out: &mut [u8] = bytemuck::cast_slice_mut(buf);
        let mut at = 0;
        for &(off, len) in &self.blocks {
            let n = (len * size).min(packed.len() - at);
            if n == 0 {
                break;
            }
            crate::copy::copy(&mut out[off * size..off * size + n], &packed[at..at + n]);
            at += n;
        }
    }

    /// Writes `packed` (at most [`Layout::count`] elements, in travel order) into the places of
    /// `buf` the layout names; elements past the end of `packed` stay as they were.
    #[cfg(test)]
    pub(crate) fn unpack<T: Copy>(&self, packed: &[T], buf: &mut [T]) {
        let mut at = 0;
        for &(off, len) in &self.blocks {
            let n = len.min(packed.len() - at);
            buf[off..off + n].copy_from_slice(&packed[at..at + n]);
            at += n;
            if at == packed.len() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Layout;

    #[test]
    fn vectors_and_their_merges() {
        let v = Layout::vector(3, 2, 5);
        assert_eq!(v.blocks(), [(0, 2), (5, 2), (10, 2)]);
        assert_eq!((v.count(), v.extent()), (6, 12));
        assert_eq!(Layout::vector(4, 3, 3).blocks(), [(0, 12)]);
        assert_eq!(Layout::vector(4, 3, 3).run(), Some(0..12));
        assert_eq!(Layout::vector(0, 3, 3).run(), Some(0..0));
        assert_eq!(v.run(), None);
        // Blocks averaging under PACK_BELOW bytes are packed; one block never is.
        assert!(Layout::vector(100, 1, 100).packs(8, false));
        assert!(Layout::vector(100, 1, 100).packs(8, true));
        assert!(
            !Layout::vector(100, 40, 80).packs(8, false),
            "320-byte blocks go as they lie"
        );
        assert!(
            Layout::vector(100, 40, 80).packs(4, false),
            "160-byte blocks pack"
        );
        assert!(
            !Layout::vector(100, 40, 80).packs(4, true),
            "a ring takes 160-byte blocks as they lie"
        );
        assert!(
            Layout::vector(100, 10, 80).packs(4, true),
            "40-byte blocks pack"
        );
        assert!(!Layout::contiguous(1 << 20).packs(1, false));
        assert_eq!(Layout::vector(0, 3, 3).count(), 0);
        assert!(Layout::vector(usize::MAX, 2, 2)
            .check("t", 10, false)
            .is_err());
        // A stride below the block length overlaps: fine to send, refused to receive.
        let o = Layout::vector(2, 3, 2);
        assert!(o.check("t", 10, false).is_ok());
        assert!(o.check("t", 10, true).is_err());
    }

    #[test]
    fn subarrays_in_c_order() {
        let s = Layout::subarray(&[2, 3, 4], &[2, 2, 2], &[0, 1, 1]).unwrap();
        // Rows (i, j) for i in 0..2, j in 1..3: offsets i*12 + j*4 + 1.
        assert_eq!(s.blocks(), [(5, 2), (9, 2), (17, 2), (21, 2)]);
        // Whole rows merge: the face x = 0 of a 2 x 3 x 4 array is one block.
        let face = Layout::subarray(&[2, 3, 4], &[1, 3, 4], &[0, 0, 0]).unwrap();
        assert_eq!(face.blocks(), [(0, 12)]);
        // The face z = 3: one element per row.
        let z = Layout::subarray(&[2, 3, 4], &[2, 3, 1], &[0, 0, 3]).unwrap();
        assert_eq!(z.count(), 6);
        assert_eq!(z.blocks()[1], (7, 1));
        assert!(Layout::subarray(&[4], &[3], &[2]).is_err());
        assert!(Layout::subarray(&[4, 4], &[1], &[0, 0]).is_err());
        assert!(Layout::subarray(&[usize::MAX, 4], &[1, 1], &[0, 0]).is_err());
        assert_eq!(
            Layout::subarray(&[4, 4], &[0, 2], &[0, 0]).unwrap().count(),
            0
        );
    }

    #[test]
    fn pack_and_unpack_are_inverse() {
        let buf: Vec<u32> = (0..24).collect();
        let s = Layout::subarray(&[2, 3, 4], &[2, 2, 3], &[0, 1, 0]).unwrap();
        s.check("t", buf.len(), true).unwrap();
        let packed = s.pack(&buf);
        assert_eq!(packed, [4, 5, 6, 8, 9, 10, 16, 17, 18, 20, 21, 22]);
        let mut back = vec![0u32; 24];
        s.unpack(&packed, &mut back);
        for (i, &x) in back.iter().enumerate() {
            assert!(x == 0 || x == i as u32);
        }
        assert_eq!(back.iter().filter(|&&x| x != 0).count(), 12);
        // A short message fills the first places only.
        let mut part = vec![0u32; 24];
        s.unpack(&packed[..4], &mut part);
        assert_eq!(&part[4..9], [4, 5, 6, 0, 8]);
        // A laid-out view of the bytes carries the same elements, in the same order.
        let bytes: &[u8] = bytemuck::cast_slice(&buf);
        // SAFETY: `buf` and `s` outlive the view.
        let view = unsafe { crate::buf::RawSlice::laid(bytes, s.laid(4)).unwrap() };
        let carried: Vec<u8> = view.pieces(0).flatten().copied().collect();
        assert_eq!(carried, bytemuck::cast_slice::<u32, u8>(&packed));
        let i = Layout::indexed(&[2, 1], &[6, 0]).unwrap();
        assert_eq!(i.pack(&buf[..8]), [6, 7, 0]);
        assert!(i.check("t", 7, false).is_err());
        assert!(Layout::indexed(&[1], &[]).is_err());
    }
}
