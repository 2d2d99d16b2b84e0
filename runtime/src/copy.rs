//! Copies of short runs of bytes, inline.
//!
//! A strided message is many short copies: 1 MiB in 64-byte blocks is 16,384 of them on each
//! side, into or out of a ring or a packing buffer. `memcpy` called per block costs its call and
//! its size dispatch every time: gathering 1 MiB in 64-byte blocks measured 50-52 us through the
//! library call against 27 us with the copies inline (a C loop, warm caches, this machine).
//! Runs of at most [`INLINE_UPTO`] bytes are therefore copied here as `memcpy`'s own short path
//! does, with a few unaligned loads and stores that overlap in the middle (8 to 16 bytes: the
//! first 8 and the last 8); longer runs go to `memcpy`, whose call then costs little against
//! the copy.

/// The longest run copied inline.
const INLINE_UPTO: usize = 64;

/// Copies `n` bytes from `src` to `dst`.
///
/// # Safety
/// `src` must be valid for reads of `n` bytes and `dst` for writes of `n` bytes, and the two
/// ranges must not overlap (as for `std::ptr::copy_nonoverlapping`). Neither needs alignment.
#[inline(always)]
pub(crate) unsafe fn copy_raw(src: *const u8, dst: *mut u8, n: usize) {
    use std::ptr::{read_unaligned as get, write_unaligned as put};
    // SAFETY (every arm): each load reads within `src[0..n]` and each store writes within
    // `dst[0..n]` (offsets `0` and `n - k` with `k <= n` for a k-byte word), which the caller
    // promises are valid and disjoint; unaligned loads and stores need no alignment. All the
    // loads of an arm come before its stores, so the overlap of the words in the middle of a
    // run writes the same bytes twice.
    unsafe {
        if n > INLINE_UPTO {
            std::ptr::copy_nonoverlapping(src, dst, n);
        } else if n >= 32 {
            let a = get(src.cast::<u128>());
            let b = get(src.add(16).cast::<u128>());
            let c = get(src.add(n - 32).cast::<u128>());
            let d = get(src.add(n - 16).cast::<u128>());
            put(dst.cast::<u128>(), a);
            put(dst.add(16).cast::<u128>(), b);
            put(dst.add(n - 32).cast::<u128>(), c);
            put(dst.add(n - 16).cast::<u128>(), d);
        } else if n >= 16 {
            let a = get(src.cast::<u128>());
            let b = get(src.add(n - 16).cast::<u128>());
            put(dst.cast::<u128>(), a);
            put(dst.add(n - 16).cast::<u128>(), b);
        } else if n >= 8 {
            let a = get(src.cast::<u64>());
            let b = get(src.add(n - 8).cast::<u64>());
            put(dst.cast::<u64>(), a);
            put(dst.add(n - 8).cast::<u64>(), b);
        } else if n >= 4 {
            let a = get(src.cast::<u32>());
            let b = get(src.add(n - 4).cast::<u32>());
            put(dst.cast::<u32>(), a);
            put(dst.add(n - 4).cast::<u32>(), b);
        } else if n >= 2 {
            let a = get(src.cast::<u16>());
            let b = get(src.add(n - 2).cast::<u16>());
            put(dst.cast::<u16>(), a);
            put(dst.add(n - 2).cast::<u16>(), b);
        } else if n == 1 {
            *dst = *src;
        }
    }
}

/// `dst.copy_from_slice(src)`, short runs inline. Panics if the lengths differ.
#[inline(always)]
pub(crate) fn copy(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "copy between slices of other lengths");
    // SAFETY: both slices are valid for their `len()` bytes, which are equal (checked), and a
    // `&mut` slice cannot overlap a shared one.
    unsafe { copy_raw(src.as_ptr(), dst.as_mut_ptr(), src.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_and_offset_copies_exactly_its_bytes() {
        // Under Miri, fewer offsets (each copy is checked for out-of-bounds and unaligned
        // access there); natively, every length up to well past the inline limit.
        let offsets = if cfg!(miri) { 3 } else { 16 };
        let src: Vec<u8> = (0..300u32).map(|i| (i * 7 + 1) as u8).collect();
        for n in 0..=2 * INLINE_UPTO + 3 {
            for from in 0..offsets {
                for to in 0..offsets {
                    let mut dst = vec![0u8; n + 2 * offsets + 8];
                    copy(&mut dst[to..to + n], &src[from..from + n]);
                    assert_eq!(&dst[to..to + n], &src[from..from + n], "n {n} {from}->{to}");
                    assert!(
                        dst[..to].iter().chain(&dst[to + n..]).all(|&b| b == 0),
                        "n {n} {from}->{to}: a byte outside the run was written"
                    );
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "other lengths")]
    fn slices_of_other_lengths_are_refused() {
        copy(&mut [0u8; 3], &[1u8; 4]);
    }
}
