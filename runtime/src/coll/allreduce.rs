//! Allreduce, as rounds for the schedule executor (blocking `allreduce`/`allreduce_with` run
//! them to the end at once; `iallreduce` hands them to the progress engine).
//!
//! **Recursive doubling** (Thakur, Rabenseifner, Gropp 2005), for any n: with `p` the largest
//! power of two not above n and `rem = n - p`, the first `2 rem` ranks pair up and the even one
//! hands its data to the odd one, leaving `p` participants; they exchange with the partner `2^k`
//! apart in round `k` and combine (lower rank first, so every rank computes the same expression,
//! bit for bit); finally the odd ranks hand the result back. log2 p + 2 rounds.
//!
//! **Rabenseifner, large vectors** (reduce-scatter by recursive halving, then allgather by
//! recursive doubling, among the same `p` participants after the same fold): each rank sends and
//! reduces 2 (p-1)/p of the vector instead of log2 p whole vectors. From
//! [`Tuning::allreduce_large`](crate::Tuning) bytes (`MPR_ALLREDUCE_LARGE`) when the vector has at
//! least `p` elements. Each block's result is computed on exactly one rank and then copied to
//! all, so results stay bit-identical.
//!
//! **Flat, small vectors when ranks outnumber cores** (`flat.rs`): rank 0 gathers, folds in rank
//! order, and sends the result back.
//!
//! Partial results live in the output; incoming blocks land in the scratch.

use bytemuck::Pod;

use super::op::{builtin, user, Op, Reduce};
use super::{bytes, bytes_mut, expect_len, tag};
use crate::comm::Comm;
use crate::engine::schedule::{ByteCombine, Loc, Local, Round};
use crate::error::{Error, Result};
use crate::scope::{Request, Scope};

/// A typed in-place fold seen through bytes (the schedule works on bytes).
pub(crate) fn byte_combine<'a, T: Pod>(
    f: impl Fn(&mut [T], &[T], bool) -> Result<()> + 'a,
) -> ByteCombine<'a> {
    Box::new(move |acc: &mut [u8], x: &[u8], x_lower: bool| {
        if acc.is_empty() {
            return Ok(()); // an empty view's address need not be aligned for T
        }
        let cast = |e: bytemuck::PodCastError| Error::InvalidArgument {
            what: "allreduce",
            detail: format!("buffer layout: {e}"),
        };
        let acc: &mut [T] = bytemuck::try_cast_slice_mut(acc).map_err(cast)?;
        let x: &[T] = bytemuck::try_cast_slice(x).map_err(cast)?;
        f(acc, x, x_lower)
    })
}

impl Comm {
    /// Combines every rank's `send` element-wise with `op`; every rank gets the result in `recv`
    /// (`send.len()` elements).
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// let local = [world.rank() as f64, 1.0];
    /// let mut global = [0.0f64; 2];
    /// world.allreduce(&local, &mut global, Op::Sum)?; // element-wise, every rank gets it
    /// assert_eq!(global[1], world.size() as f64);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn allreduce<T: Reduce>(&self, send: &[T], recv: &mut [T], op: Op) -> Result<()> {
        let _seen = self.seen("allreduce", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("allreduce")
                .op(Some(op))
                .elems::<T>(send.len()),
        )?;
        let f = builtin::<T>(op, self.par_reduce())?;
        self.allreduce_run(send, recv, byte_combine(f))
    }

    /// [`Comm::allreduce`] with a user operation, which must be associative and commutative
    /// (every rank gets the same bits: the combining order is fixed).
    ///
    /// ```
    /// let world = mpr::init()?;
    /// // Combine (count, mean) pairs: associative and commutative, as a reduction must be.
    /// let mine = [[10.0f64, world.rank() as f64]];
    /// let mut all = [[0.0f64; 2]];
    /// world.allreduce_with(&mine, &mut all, |a, b| {
    ///     let n = a[0] + b[0];
    ///     [n, (a[0] * a[1] + b[0] * b[1]) / n]
    /// })?;
    /// assert_eq!(all[0][0], 10.0 * world.size() as f64);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn allreduce_with<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        f: impl Fn(&T, &T) -> T,
    ) -> Result<()> {
        let _seen = self.seen("allreduce", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("allreduce_with")
                .op(None)
                .elems::<T>(send.len()),
        )?;
        self.allreduce_run(send, recv, byte_combine(user(f)))
    }

    /// Starts an allreduce of `send` into `recv` with `op`; the request completes with it.
    ///
    /// ```
    /// use mpr::Op;
    /// let world = mpr::init()?;
    /// let residual = [0.25f64];
    /// let mut norm = [0.0f64];
    /// mpr::scope(|s| -> mpr::Result<()> {
    ///     let r = world.iallreduce(s, &residual, &mut norm, Op::Max)?;
    ///     // ... the next step's independent work overlaps the reduction ...
    ///     r.wait()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(norm[0], 0.25);
    /// # Ok::<(), mpr::Error>(())
    /// ```
    pub fn iallreduce<'scope, T: Reduce>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        op: Op,
    ) -> Result<Request<'scope>> {
        let _seen = self.seen("iallreduce", std::mem::size_of_val(send));
        self.agree(
            super::check::Signature::of("iallreduce")
                .op(Some(op))
                .elems::<T>(send.len()),
        )?;
        let f = builtin::<T>(op, self.par_reduce())?;
        expect_len("iallreduce", recv.len(), send.len())?;
        self.begin_coll();
        let (rounds, scratch) = self.allreduce_plan(send.len(), std::mem::size_of::<T>())?;
        let ctx = self.coll_ctx();
        let combine = byte_combine(f);
        s.start_coll(self, bytes(send), bytes_mut(recv), move |i, o| {
            crate::engine::schedule::Schedule::new(ctx, i, o, scratch, rounds, Some(combine))
        })
    }

    /// The maximum of every rank's `send`, by the fastest path (the signature check's).
    pub(super) fn allreduce_max_u64(&self, send: &[u64], recv: &mut [u64]) -> Result<()> {
        let f = builtin::<u64>(Op::Max, None)?;
        self.allreduce_run(send, recv, byte_combine(f))
    }

    /// The minimum of every rank's `send`, by message (the node segment's own set-up).
    pub(crate) fn msg_allreduce_min(&self, send: &[u32], recv: &mut [u32]) -> Result<()> {
        expect_len("allreduce", recv.len(), send.len())?;
        let f = builtin::<u32>(Op::Min, None)?;
        self.msg_allreduce(send, recv, byte_combine(f))
    }

    fn allreduce_run<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        combine: ByteCombine<'_>,
    ) -> Result<()> {
        expect_len("allreduce", recv.len(), send.len())?;
        let (len, elem) = (std::mem::size_of_val(send), std::mem::size_of::<T>());
        if self.use_node(len)? {
            self.algorithm("node_segment");
            return self.node_allreduce(bytes(send), bytes_mut(recv), &combine);
        }
        if self.use_node_large(len, elem)? {
            self.algorithm("node_segment_slices");
            return self.node_allreduce_large(bytes(send), bytes_mut(recv), elem, &combine);
        }
        self.msg_allreduce(send, recv, combine)
    }

    /// Allreduce by message, whatever the communicator.
    fn msg_allreduce<T: Pod>(
        &self,
        send: &[T],
        recv: &mut [T],
        combine: ByteCombine<'_>,
    ) -> Result<()> {
        self.begin_coll();
        let (rounds, scratch) = self.allreduce_plan(send.len(), std::mem::size_of::<T>())?;
        self.engine.borrow_mut().run_rounds(
            self.coll_ctx(),
            bytes(send),
            bytes_mut(recv),
            scratch,
            rounds,
            Some(combine),
        )
    }

    /// The rounds of an allreduce of `count` elements of `size` bytes, and the scratch they use.
    pub(crate) fn allreduce_plan(&self, count: usize, size: usize) -> Result<(Vec<Round>, usize)> {
        let (n, me) = (self.size(), self.rank());
        let len = count * size;
        let (out, tmp) = (Loc::Output(0, len), Loc::Scratch(0, len));
        let tag = self.coll_tag(tag::ALLREDUCE);
        let w = |r: usize| self.world_rank(r);
        let mut rounds = vec![Round {
            then: vec![Local::Copy {
                from: Loc::Input(0, len),
                to: out,
            }],
            ..Round::default()
        }];
        if n == 1 {
            return Ok((rounds, 0));
        }
        if self.use_flat(len) {
            self.algorithm("flat");
            return self.flat_allreduce_plan(rounds, len);
        }
        let p = 1usize << (usize::BITS - 1 - n.leading_zeros());
        let rem = n - p;
        let large = len >= self.engine.borrow().tuning.allreduce_large && count >= p;
        self.algorithm(if large {
            "rabenseifner"
        } else {
            "recursive_doubling"
        });
        let newrank = if me < 2 * rem {
            if me % 2 == 0 {
                rounds.push(Round {
                    sends: vec![(w(me + 1)?, tag, out)],
                    ..Round::default()
                });
                None
            } else {
                rounds.push(Round {
                    recvs: vec![(w(me - 1)?, tag, tmp)],
                    then: vec![Local::Combine {
                        acc: out,
                        x: tmp,
                        x_lower: true,
                    }],
                    ..Round::default()
                });
                Some(me / 2)
            }
        } else {
            Some(me - rem)
        };
        let real = |q: usize| if q < rem { 2 * q + 1 } else { q + rem };
        if let Some(nr) = newrank {
            if large {
                // With no fold before it, the first halving round reads the input itself and
                // copies only the half this rank keeps: half of the initial copy is saved.
                let from_input = rem == 0;
                if from_input {
                    rounds.clear();
                }
                self.rabenseifner_rounds(&mut rounds, nr, p, &real, count, size, tag, from_input)?;
            } else {
                let mut mask = 1;
                while mask < p {
                    let partner = real(nr ^ mask);
                    rounds.push(Round {
                        sends: vec![(w(partner)?, tag, out)],
                        recvs: vec![(w(partner)?, tag, tmp)],
                        then: vec![Local::Combine {
                            acc: out,
                            x: tmp,
                            x_lower: partner < me,
                        }],
                    });
                    mask <<= 1;
                }
            }
        }
        if me < 2 * rem {
            rounds.push(if me % 2 == 1 {
                Round {
                    sends: vec![(w(me - 1)?, tag, out)],
                    ..Round::default()
                }
            } else {
                Round {
                    recvs: vec![(w(me + 1)?, tag, out)],
                    ..Round::default()
                }
            });
        }
        Ok((rounds, len))
    }

    /// Reduce-scatter by recursive halving, then allgather by recursive doubling, among the `p`
    /// participants (`nr`: this rank's number among them; `real` maps it to a rank).
    /// `from_input`: the output does not hold the input yet; the first round sends from the
    /// input and copies only the kept half into the output before folding into it.
    #[allow(clippy::too_many_arguments)]
    fn rabenseifner_rounds(
        &self,
        rounds: &mut Vec<Round>,
        nr: usize,
        p: usize,
        real: &dyn Fn(usize) -> usize,
        count: usize,
        size: usize,
        tag: u32,
        from_input: bool,
    ) -> Result<()> {
        let me = self.rank();
        // Block i of p: elements [disp[i], disp[i + 1]), as byte ranges of the output.
        let disp: Vec<usize> = (0..=p).map(|i| count * i / p * size).collect();
        let range = |a: usize, b: usize| Loc::Output(disp[a], disp[b] - disp[a]);
        let (mut send_idx, mut recv_idx, mut last_idx) = (0, 0, p);
        let mut mask = 1;
        while mask < p {
            let partner_nr = nr ^ mask;
            let partner = real(partner_nr);
            let half = p / (mask * 2);
            let (s, r) = if nr < partner_nr {
                send_idx = recv_idx + half;
                ((send_idx, last_idx), (recv_idx, send_idx))
            } else {
                recv_idx = send_idx + half;
                ((send_idx, recv_idx), (recv_idx, last_idx))
            };
            let incoming = Loc::Scratch(0, disp[r.1] - disp[r.0]);
            let combine = Local::Combine {
                acc: range(r.0, r.1),
                x: incoming,
                x_lower: partner < me,
            };
            let first = from_input && mask == 1;
            let input = |a: usize, b: usize| Loc::Input(disp[a], disp[b] - disp[a]);
            rounds.push(Round {
                sends: vec![(
                    self.world_rank(partner)?,
                    tag,
                    if first {
                        input(s.0, s.1)
                    } else {
                        range(s.0, s.1)
                    },
                )],
                recvs: vec![(self.world_rank(partner)?, tag, incoming)],
                then: if first {
                    let keep = Local::Copy {
                        from: input(r.0, r.1),
                        to: range(r.0, r.1),
                    };
                    vec![keep, combine]
                } else {
                    vec![combine]
                },
            });
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
            let (s, r) = if nr < partner_nr {
                if mask != p / 2 {
                    last_idx += half;
                }
                recv_idx = send_idx + half;
                ((send_idx, recv_idx), (recv_idx, last_idx))
            } else {
                recv_idx = send_idx - half;
                ((send_idx, last_idx), (recv_idx, send_idx))
            };
            // Disjoint ranges of the output: one goes out while the other comes in.
            rounds.push(Round {
                sends: vec![(self.world_rank(partner)?, tag, range(s.0, s.1))],
                recvs: vec![(self.world_rank(partner)?, tag, range(r.0, r.1))],
                then: Vec::new(),
            });
            if nr > partner_nr {
                send_idx = recv_idx;
            }
            mask >>= 1;
        }
        Ok(())
    }
}
