//! Nonblocking collectives: `ibarrier`, `ibroadcast`, `iallreduce`.
//!
//! Each builds the rounds of its algorithm (the same as the blocking version: dissemination,
//! binomial tree, recursive doubling with the fold for non-powers of two) as a schedule that the
//! progress engine runs while the program computes or waits on other requests; the request
//! completes with the schedule. They live in a scope like `isend`/`irecv`, so their buffers are
//! borrowed until it ends. A nonblocking collective takes its place in the communicator's order
//! of collectives when it is started, like MPI's.

use bytemuck::Pod;

use super::op::{builtin, Op, Reduce};
use super::{bytes, bytes_mut, tag};
use crate::comm::Comm;
use crate::engine::schedule::{ByteCombine, Loc, Local, Round, Schedule};
use crate::error::{Error, Result};
use crate::scope::{Request, Scope};

impl Comm {
    /// Starts a barrier; the request completes once every rank has started it.
    pub fn ibarrier<'scope>(&self, s: &'scope Scope<'scope, '_>) -> Result<Request<'scope>> {
        self.begin_coll();
        let (n, me) = (self.size(), self.rank());
        let mut rounds = Vec::new();
        let (mut dist, mut round) = (1, 0u32);
        while dist < n {
            let tag = self.coll_tag(tag::BARRIER + round);
            rounds.push(Round {
                sends: vec![(self.world_rank((me + dist) % n)?, tag, Loc::Input(0, 0))],
                recvs: vec![(
                    self.world_rank((me + n - dist) % n)?,
                    tag,
                    Loc::Scratch(0, 0),
                )],
                then: Vec::new(),
            });
            dist *= 2;
            round += 1;
        }
        let ctx = self.coll_ctx();
        s.start_coll(self, &[], &mut [], |i, o| {
            Schedule::new(ctx, i, o, 0, rounds, None)
        })
    }

    /// Starts a broadcast of `buf` from `root` (binomial tree).
    pub fn ibroadcast<'scope, T: Pod>(
        &self,
        s: &'scope Scope<'scope, '_>,
        buf: &'scope mut [T],
        root: usize,
    ) -> Result<Request<'scope>> {
        self.check_root(root)?;
        self.begin_coll();
        let n = self.size();
        let r = (self.rank() + n - root) % n;
        let abs = |rel: usize| self.world_rank((rel + root) % n);
        let tag = self.coll_tag(tag::BCAST);
        let all = Loc::Output(0, std::mem::size_of_val(buf));
        let mut rounds = Vec::new();
        let mut mask = 1;
        while mask < n {
            if r & mask != 0 {
                rounds.push(Round {
                    recvs: vec![(abs(r - mask)?, tag, all)],
                    ..Round::default()
                });
                break;
            }
            mask <<= 1;
        }
        mask >>= 1;
        let mut sends = Vec::new();
        while mask > 0 {
            if r + mask < n {
                sends.push((abs(r + mask)?, tag, all));
            }
            mask >>= 1;
        }
        rounds.push(Round {
            sends,
            ..Round::default()
        });
        let ctx = self.coll_ctx();
        s.start_coll(self, &[], bytes_mut(buf), |i, o| {
            Schedule::new(ctx, i, o, 0, rounds, None)
        })
    }

    /// Starts an allreduce of `send` into `recv` with `op` (recursive doubling; every rank gets
    /// the same bits).
    pub fn iallreduce<'scope, T: Reduce>(
        &self,
        s: &'scope Scope<'scope, '_>,
        send: &'scope [T],
        recv: &'scope mut [T],
        op: Op,
    ) -> Result<Request<'scope>> {
        let f = builtin::<T>(op, self.par_reduce())?;
        if recv.len() != send.len() {
            return Err(Error::InvalidArgument {
                what: "iallreduce",
                detail: format!("recv has {} elements, send {}", recv.len(), send.len()),
            });
        }
        self.begin_coll();
        let (n, me) = (self.size(), self.rank());
        let len = std::mem::size_of_val(send);
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
        let p = if n == 0 {
            0
        } else {
            1usize << (usize::BITS - 1 - n.leading_zeros())
        };
        let rem = n - p;
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
        if let Some(nr) = newrank {
            let real = |q: usize| if q < rem { 2 * q + 1 } else { q + rem };
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
        let combine: ByteCombine = Box::new(move |acc: &mut [u8], x: &[u8], x_lower: bool| {
            if acc.is_empty() {
                return Ok(()); // an empty view's address need not be aligned for T
            }
            let cast = |e: bytemuck::PodCastError| Error::InvalidArgument {
                what: "iallreduce",
                detail: format!("buffer layout: {e}"),
            };
            let acc: &mut [T] = bytemuck::try_cast_slice_mut(acc).map_err(cast)?;
            let x: &[T] = bytemuck::try_cast_slice(x).map_err(cast)?;
            f(acc, x, x_lower)
        });
        let ctx = self.coll_ctx();
        s.start_coll(self, bytes(send), bytes_mut(recv), |i, o| {
            Schedule::new(ctx, i, o, len, rounds, Some(combine))
        })
    }
}
