//! Reduce and allreduce.
//!
//! **Reduce: binomial tree** toward the root (ranks renumbered relative to it): in round `k`, a
//! rank whose bit `k` is set sends its partial result to `r - 2^k` and is done; the others
//! receive from `r + 2^k` (if it exists) and combine. The lower rank's data always goes first.
//!
//! **Allreduce: recursive doubling** (Thakur, Rabenseifner, Gropp 2005), for any n: with `p` the
//! largest power of two not above n and `rem = n - p`, the first `2 rem` ranks pair up and the
//! even one hands its data to the odd one, leaving `p` participants; they exchange with the
//! partner `2^k` apart in round `k` and combine (lower rank first, so every rank computes the
//! same expression, bit for bit); finally the odd ranks hand the result back. log2 p + 2 rounds.
//! Large vectors will get Rabenseifner's reduce-scatter + allgather (issue 4's list).

use bytemuck::Pod;

use super::op::{builtin, user, Combiner, Op, Reduce};
use super::{bytes, bytes_mut, expect_len, tag};
use crate::comm::Comm;
use crate::error::Result;

impl Comm {
    /// Combines every rank's `send` element-wise with `op` into `recv` at `root` (`recv` is only
    /// used at the root, where it must have `send.len()` elements; elsewhere it may be empty).
    pub fn reduce<T: Reduce>(&self, send: &[T], recv: &mut [T], op: Op, root: usize) -> Result<()> {
        let f = builtin::<T>(op)?;
        self.reduce_impl(send, recv, &*f, root)
    }

    /// [`Comm::reduce`] with a user operation, which must be associative and commutative.
    pub fn reduce_with<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        f: impl Fn(&T, &T) -> T,
        root: usize,
    ) -> Result<()> {
        self.reduce_impl(send, recv, &user(f), root)
    }

    /// Combines every rank's `send` element-wise with `op`; every rank gets the result in `recv`
    /// (`send.len()` elements).
    pub fn allreduce<T: Reduce>(&self, send: &[T], recv: &mut [T], op: Op) -> Result<()> {
        let f = builtin::<T>(op)?;
        self.allreduce_impl(send, recv, &*f)
    }

    /// [`Comm::allreduce`] with a user operation, which must be associative and commutative
    /// (every rank gets the same bits: the combining order is fixed).
    pub fn allreduce_with<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        f: impl Fn(&T, &T) -> T,
    ) -> Result<()> {
        self.allreduce_impl(send, recv, &user(f))
    }

    fn reduce_impl<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        f: Combiner<T>,
        root: usize,
    ) -> Result<()> {
        self.check_root(root)?;
        let n = self.size();
        let me = self.rank();
        if me == root {
            expect_len("reduce", recv.len(), send.len())?;
        }
        let r = (me + n - root) % n;
        let abs = |rel: usize| (rel + root) % n;
        let mut acc = send.to_vec();
        let mut tmp = vec![T::zeroed(); send.len()];
        let mut mask = 1;
        while mask < n {
            if r & mask != 0 {
                self.coll_xchg(tag::REDUCE, &[(abs(r - mask), bytes(&acc))], &mut [])?;
                break;
            }
            if r + mask < n {
                self.coll_xchg(
                    tag::REDUCE,
                    &[],
                    &mut [(abs(r + mask), bytes_mut(&mut tmp))],
                )?;
                // The partner's subtree holds higher relative ranks. Relative order is the
                // rank order rotated by the root; every caller sees the same rotation.
                f(&mut acc, &tmp, false)?;
            }
            mask <<= 1;
        }
        if me == root {
            recv.copy_from_slice(&acc);
        }
        Ok(())
    }

    fn allreduce_impl<T: Pod>(&self, send: &[T], recv: &mut [T], f: Combiner<T>) -> Result<()> {
        expect_len("allreduce", recv.len(), send.len())?;
        let n = self.size();
        let me = self.rank();
        recv.copy_from_slice(send);
        if n == 1 {
            return Ok(());
        }
        let p = 1usize << (usize::BITS - 1 - n.leading_zeros());
        let rem = n - p;
        let mut tmp = vec![T::zeroed(); send.len()];
        // Fold the first 2*rem ranks in pairs: even -> odd.
        let newrank = if me < 2 * rem {
            if me % 2 == 0 {
                self.coll_xchg(tag::ALLREDUCE, &[(me + 1, bytes(recv))], &mut [])?;
                None
            } else {
                self.coll_xchg(tag::ALLREDUCE, &[], &mut [(me - 1, bytes_mut(&mut tmp))])?;
                f(recv, &tmp, true)?;
                Some(me / 2)
            }
        } else {
            Some(me - rem)
        };
        if let Some(nr) = newrank {
            let real = |q: usize| if q < rem { 2 * q + 1 } else { q + rem };
            let mut mask = 1;
            while mask < p {
                let partner = real(nr ^ mask);
                self.coll_xchg(
                    tag::ALLREDUCE,
                    &[(partner, bytes(recv))],
                    &mut [(partner, bytes_mut(&mut tmp))],
                )?;
                f(recv, &tmp, partner < me)?;
                mask <<= 1;
            }
        }
        // Hand the result back to the folded ranks.
        if me < 2 * rem {
            if me % 2 == 1 {
                self.coll_xchg(tag::ALLREDUCE, &[(me - 1, bytes(recv))], &mut [])?;
            } else {
                self.coll_xchg(tag::ALLREDUCE, &[], &mut [(me + 1, bytes_mut(recv))])?;
            }
        }
        Ok(())
    }
}
