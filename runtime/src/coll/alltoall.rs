//! All-to-all.
//!
//! **Pairwise exchange**: in step `s` (1..n) each rank sends its block for `rank + s` and
//! receives the block from `rank - s`. n - 1 steps, one send and one receive each, so no rank is
//! flooded by all the others at once (MPICH's choice for medium and large blocks).

use bytemuck::Pod;

use super::{bytes, bytes_mut, expect_len, tag};
use crate::comm::Comm;
use crate::error::{Error, Result};

impl Comm {
    /// Block `i` of `send` goes to rank `i`; block `j` of `recv` comes from rank `j`. Both hold
    /// `size()` blocks of equal length.
    pub fn alltoall<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
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
}
