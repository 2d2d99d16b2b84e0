//! All-to-all.
//!
//! **Bruck** for small messages (up to 8 KiB per rank): ceil(log2 n) rounds, each block
//! forwarded along the binary digits of its distance. **Pairwise exchange** above: in step `s` (1..n) each rank sends its block for `rank + s` and
//! receives the block from `rank - s`. n - 1 steps, one send and one receive each, so no rank is
//! flooded by all the others at once (MPICH's choice for medium and large blocks).

use bytemuck::Pod;

use super::{bytes, bytes_mut, expect_len, tag};

/// All-to-alls of at most this many bytes per rank use Bruck's algorithm (log2 n rounds)
/// instead of pairwise exchange (n - 1 rounds).
const BRUCK_BYTES: usize = 8 << 10;
use crate::comm::Comm;
use crate::error::{Error, Result};

impl Comm {
    /// Block `i` of `send` goes to rank `i`; block `j` of `recv` comes from rank `j`. Both hold
    /// `size()` blocks of equal length.
    ///
    /// ```
    /// let world = mpr::init()?;
    /// let (rank, size) = (world.rank(), world.size());
    /// // A transpose: block i (2 elements) goes to rank i; block j of recv came from rank j.
    /// let send: Vec<u32> = (0..size).flat_map(|i| [rank as u32, i as u32]).collect();
    /// let mut recv = vec![0u32; 2 * size];
    /// world.alltoall(&send, &mut recv)?;
    /// assert_eq!(recv[..2], [0, rank as u32]); // rank 0's block for this rank
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn alltoall<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        let _seen = self.seen("alltoall", std::mem::size_of_val(send));
        self.agree(super::check::Signature::of("alltoall").elems::<T>(send.len()))?;
        self.begin_coll();
        let (n, me) = (self.size(), self.rank());
        if send.len() % n != 0 {
            return Err(Error::InvalidArgument {
                what: "alltoall",
                detail: format!("{} elements do not split into {n} equal blocks", send.len()),
            });
        }
        expect_len("alltoall", recv.len(), send.len())?;
        let bs = send.len() / n;
        if n > 2 && std::mem::size_of_val(send) <= BRUCK_BYTES {
            self.algorithm("bruck");
            return self.bruck_alltoall(send, recv, bs);
        }
        self.algorithm("pairwise");
        recv[me * bs..(me + 1) * bs].copy_from_slice(&send[me * bs..(me + 1) * bs]);
        for step in 1..n {
            let to = (me + step) % n;
            let from = (me + n - step) % n;
            self.coll_xchg(
                tag::ALLTOALL,
                &[(to, bytes(&send[to * bs..(to + 1) * bs]))],
                &mut [(from, bytes_mut(&mut recv[from * bs..(from + 1) * bs]))],
            )?;
        }
        Ok(())
    }

    /// Bruck's all-to-all: rotate the blocks so index `i` holds the block for `rank + i`; in
    /// round k (distance 2^k) send every block whose index has bit k set to `rank + 2^k` (and
    /// take as many from `rank - 2^k` into the same indices); each block travels its distance
    /// in binary. At the end index `i` holds the block from `rank - i`.
    fn bruck_alltoall<T: Pod>(&self, send: &[T], recv: &mut [T], bs: usize) -> Result<()> {
        let (n, me) = (self.size(), self.rank());
        let mut held = vec![T::zeroed(); n * bs];
        for i in 0..n {
            let from = (me + i) % n;
            held[i * bs..(i + 1) * bs].copy_from_slice(&send[from * bs..(from + 1) * bs]);
        }
        let mut out = Vec::with_capacity(n * bs);
        let mut inb = vec![T::zeroed(); n * bs];
        let mut bit = 1;
        while bit < n {
            let moving: Vec<usize> = (0..n).filter(|i| i & bit != 0).collect();
            out.clear();
            for &i in &moving {
                out.extend_from_slice(&held[i * bs..(i + 1) * bs]);
            }
            let (to, from) = ((me + bit) % n, (me + n - bit) % n);
            let got = &mut inb[..moving.len() * bs];
            self.coll_xchg(
                tag::ALLTOALL + 1,
                &[(to, bytes(&out))],
                &mut [(from, bytes_mut(got))],
            )?;
            for (k, &i) in moving.iter().enumerate() {
                held[i * bs..(i + 1) * bs].copy_from_slice(&got[k * bs..(k + 1) * bs]);
            }
            bit <<= 1;
        }
        for i in 0..n {
            let src = (me + n - i) % n;
            recv[src * bs..(src + 1) * bs].copy_from_slice(&held[i * bs..(i + 1) * bs]);
        }
        Ok(())
    }
}
