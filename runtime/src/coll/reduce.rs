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
//!
//! **Allreduce, large vectors: Rabenseifner** (reduce-scatter by recursive halving, then
//! allgather by recursive doubling, among the same `p` participants after the same fold): each
//! rank sends and reduces 2 (p-1)/p of the vector instead of log2 p whole vectors. Used from
//! [`Tuning::allreduce_large`](crate::Tuning) bytes (`MPR_ALLREDUCE_LARGE`) when the vector has
//! at least `p` elements. Each block's result is computed on exactly one rank and then copied to
//! all, so results stay bit-identical.

use bytemuck::Pod;

use super::op::{builtin, user, Combiner, Op, Reduce};
use super::{bytes, bytes_mut, expect_len, tag};
use crate::comm::Comm;
use crate::error::Result;

impl Comm {
    /// Combines every rank's `send` element-wise with `op` into `recv` at `root` (`recv` is only
    /// used at the root, where it must have `send.len()` elements; elsewhere it may be empty).
    pub fn reduce<T: Reduce>(&self, send: &[T], recv: &mut [T], op: Op, root: usize) -> Result<()> {
        let f = builtin::<T>(op, self.par_reduce())?;
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
        let f = builtin::<T>(op, self.par_reduce())?;
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
        self.begin_coll();
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
        self.begin_coll();
        expect_len("allreduce", recv.len(), send.len())?;
        let n = self.size();
        let me = self.rank();
        recv.copy_from_slice(send);
        if n == 1 {
            return Ok(());
        }
        if self.use_flat(std::mem::size_of_val(send)) {
            return self.flat_allreduce(recv, f);
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
        let large = std::mem::size_of_val(send) >= self.engine.borrow().tuning.allreduce_large
            && send.len() >= p;
        if let (Some(nr), true) = (newrank, large) {
            self.rabenseifner(recv, &mut tmp, f, nr, p, rem)?;
        } else if let Some(nr) = newrank {
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

    /// Reduce-scatter by recursive halving, then allgather by recursive doubling, among the `p`
    /// participants (`nr`: this rank's number among them; participant `q` is rank `2q + 1` for
    /// `q < rem`, else `q + rem`). `acc` holds this rank's partial vector and ends with the result.
    fn rabenseifner<T: Pod>(
        &self,
        acc: &mut [T],
        tmp: &mut [T],
        f: Combiner<T>,
        nr: usize,
        p: usize,
        rem: usize,
    ) -> Result<()> {
        let real = |q: usize| if q < rem { 2 * q + 1 } else { q + rem };
        let me = self.rank();
        let len = acc.len();
        // Block i of p: [disp[i], disp[i + 1]).
        let disp: Vec<usize> = (0..=p).map(|i| len * i / p).collect();
        let (mut send_idx, mut recv_idx, mut last_idx) = (0, 0, p);
        let mut mask = 1;
        while mask < p {
            let partner_nr = nr ^ mask;
            let partner = real(partner_nr);
            let half = p / (mask * 2);
            let (s_range, r_range) = if nr < partner_nr {
                send_idx = recv_idx + half;
                ((send_idx, last_idx), (recv_idx, send_idx))
            } else {
                recv_idx = send_idx + half;
                ((send_idx, recv_idx), (recv_idx, last_idx))
            };
            let (s0, s1) = (disp[s_range.0], disp[s_range.1]);
            let (r0, r1) = (disp[r_range.0], disp[r_range.1]);
            self.coll_xchg(
                tag::ALLREDUCE,
                &[(partner, bytes(&acc[s0..s1]))],
                &mut [(partner, bytes_mut(&mut tmp[..r1 - r0]))],
            )?;
            f(&mut acc[r0..r1], &tmp[..r1 - r0], partner < me)?;
            send_idx = recv_idx;
            mask <<= 1;
            if mask < p {
                last_idx = recv_idx + p / mask;
            }
        }
        mask >>= 1;
        while mask > 0 {
            let partner_nr = nr ^ mask;
            let partner = real(partner_nr);
            let half = p / (mask * 2);
            let (s_range, r_range) = if nr < partner_nr {
                if mask != p / 2 {
                    last_idx += half;
                }
                recv_idx = send_idx + half;
                ((send_idx, recv_idx), (recv_idx, last_idx))
            } else {
                recv_idx = send_idx - half;
                ((send_idx, last_idx), (recv_idx, send_idx))
            };
            let (s0, s1) = (disp[s_range.0], disp[s_range.1]);
            let (r0, r1) = (disp[r_range.0], disp[r_range.1]);
            // The two ranges are disjoint parts of `acc`.
            let (out, inb): (&[T], &mut [T]) = if s0 < r0 {
                let (a, b) = acc.split_at_mut(r0);
                (&a[s0..s1], &mut b[..r1 - r0])
            } else {
                let (a, b) = acc.split_at_mut(s0);
                (&b[..s1 - s0], &mut a[r0..r1])
            };
            self.coll_xchg(
                tag::ALLREDUCE,
                &[(partner, bytes(out))],
                &mut [(partner, bytes_mut(inb))],
            )?;
            if nr > partner_nr {
                send_idx = recv_idx;
            }
            mask >>= 1;
        }
        Ok(())
    }
}
