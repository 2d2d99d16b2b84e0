//! Borrowed user buffers held by pending operations: the one place raw pointers to user memory live.
//!
//! A pending send keeps a pointer into the caller's slice so that its bytes go from that slice
//! straight to the socket, possibly over several `writev` calls; a pending receive keeps one so
//! that bytes go from the socket straight into it. Rust lifetimes cannot follow a pointer into
//! the progress engine, so the engine stores [`RawSlice`] / [`RawMut`] instead.
//!
//! # Invariant
//!
//! Creating one is `unsafe`: the creator promises that the memory stays valid, and (for
//! [`RawMut`]) not otherwise accessed, until the operation that holds it has completed or has been
//! removed from the engine. Blocking calls keep that promise by waiting for completion before they
//! return; nonblocking requests keep it through `mpr::scope`, which does not return while any of
//! its requests is pending. Given that, the safe accessors below are sound.

/// A read-only view of a caller's bytes, held by a pending send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawSlice {
    ptr: *const u8,
    len: usize,
}

/// A writable view of a caller's bytes, held by a pending receive.
#[derive(Debug)]
pub(crate) struct RawMut {
    ptr: *mut u8,
    len: usize,
}

impl RawSlice {
    /// An empty view (no bytes; never dereferenced).
    pub(crate) const EMPTY: RawSlice = RawSlice {
        ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
        len: 0,
    };

    /// # Safety
    /// `bytes` must stay valid until the operation holding the result completes or is removed
    /// from the engine (module docs, "Invariant").
    pub(crate) unsafe fn new(bytes: &[u8]) -> RawSlice {
        RawSlice {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Where the bytes start, as a number: what a peer on this host needs to copy them out of
    /// this process itself (`sys::pull`). Never dereferenced here.
    pub(crate) fn addr(&self) -> u64 {
        self.ptr as usize as u64
    }

    /// The bytes from `offset` on (empty past the end).
    pub(crate) fn tail(&self, offset: usize) -> &[u8] {
        if offset >= self.len {
            return &[];
        }
        // SAFETY: the creator of this RawSlice promised the memory is valid for `len` bytes while
        // the operation holding it is pending, and only pending operations' views are accessed.
        unsafe { std::slice::from_raw_parts(self.ptr.add(offset), self.len - offset) }
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
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Where the bytes start, as a number: what a peer on this host needs to write into them
    /// itself (`sys::push`), while the operation holding this view is pending.
    pub(crate) fn addr(&self) -> u64 {
        self.ptr as usize as u64
    }

    /// A view of the bytes `start..end` (clamped), for an operation of its own.
    ///
    /// # Safety
    /// While the returned view's operation is pending, the same bytes must not be accessed
    /// through `self` (the parent keeps the memory valid; the child must be the only one using
    /// those bytes).
    pub(crate) unsafe fn sub(&mut self, start: usize, end: usize) -> RawMut {
        let part = self.range_mut(start, end);
        RawMut {
            ptr: part.as_mut_ptr(),
            len: part.len(),
        }
    }

    /// The bytes `start..end`, clamped to the buffer.
    pub(crate) fn range_mut(&mut self, start: usize, end: usize) -> &mut [u8] {
        let end = end.min(self.len);
        if start >= end {
            return &mut [];
        }
        // SAFETY: as in `RawSlice::tail`, plus the creator promised exclusive access; `&mut self`
        // makes this the only live view derived from it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
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
        assert!(RawSlice::EMPTY.tail(0).is_empty());
        let mut out = [0u8; 4];
        // SAFETY: `out` outlives `m` and is not touched while `m` lives.
        let mut m = unsafe { RawMut::new(&mut out) };
        m.range_mut(1, 3).copy_from_slice(&[7, 8]);
        assert!(m.range_mut(3, 99).len() == 1);
        assert!(m.range_mut(5, 6).is_empty());
        assert_eq!(out, [0, 7, 8, 0]);
        // SAFETY: the parent `m` is not used for bytes 2..4 while `child` lives.
        let mut child = unsafe { m.sub(2, 4) };
        child.range_mut(0, 2).copy_from_slice(&[5, 6]);
        assert_eq!(child.len(), 2);
        assert_eq!(m.range_mut(0, 4), &[0, 7, 5, 6]);
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
