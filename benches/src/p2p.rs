//! Point-to-point benchmarks between ranks 0 and 1.
//!
//! `latency`: ping-pong, as `osu_latency`. Rank 0 sends and waits for the echo; rank 1 echoes.
//! Each round trip is timed on its own and halved (one-way latency), so the percentiles are those
//! of single messages, not of batches.
//!
//! `bw`: as `osu_bw`. Rank 0 starts a window of `isend`s, waits for them, and waits for a short
//! acknowledgement from rank 1, which had posted a window of `irecv`s. Bandwidth is the window's
//! bytes over its time; each window is one sample.
//!
//! With `--value`, `latency` and `multi_lat` send a value (a `String` and a `Vec<f64>` of
//! size / 8 elements) with `send_value` and receive it with `recv_value`: the cost of encoding,
//! decoding and allocating on top of the same bytes as a slice.
//!
//! `bibw`: as `osu_bibw`: both ranks post a window of receives and a window of sends to each other
//! at once; bandwidth counts both directions.

use std::time::Instant;

use crate::args::{Bench, Plan};
use crate::stats::{self, Row, Samples};
use crate::{report, Failure};

const TAG: u32 = 1;
const ACK_TAG: u32 = 2;

/// The point-to-point benchmarks need exactly two ranks, as OSU's do.
fn two_ranks(world: &mpr::World, plan: &Plan) -> Result<(), Failure> {
    if world.size() != 2 {
        return Err(Failure::Setup(format!(
            "{} needs exactly 2 ranks, not {} (mprun -n 2)",
            plan.bench.name(),
            world.size()
        )));
    }
    Ok(())
}

/// One-way latency by ping-pong. `latency`: ranks 0 and 1. `multi_lat`: every rank `r` of the
/// first half with `r + n/2` at once (as `osu_multi_lat`), which shows how a runtime holds up
/// when several pairs share the cores; rank 0 reports the mean of the pairs' means, the median of
/// their p50s and the worst of their p99s.
/// Latency: one round trip in this many is timed on its own (for the percentiles).
pub(crate) const SAMPLE_EVERY: usize = 4;

pub fn latency(world: &mpr::World, plan: &Plan) -> Result<(), Failure> {
    let n = world.size();
    if plan.bench == Bench::Latency {
        two_ranks(world, plan)?;
    } else if n < 2 || n & 1 == 1 {
        return Err(Failure::Setup(format!(
            "multi_lat needs an even number of ranks, not {n}"
        )));
    }
    let rank = world.rank();
    let half = n / 2;
    let (peer, pinger) = if rank < half {
        (rank + half, true)
    } else {
        (rank - half, false)
    };
    if rank == 0 {
        report::header(plan, n, plan.sizes().len());
    }
    for size in plan.sizes() {
        // --strided: the message's SIZE bytes lie in blocks every 2 BLOCK bytes of `buf`.
        let layout = plan.strided.map(|b| strided(size, b));
        // Sent from one buffer, received into another, as osu_latency does: a message sent
        // back out of the buffer it was just received into would be read from the other
        // core's cache, lines it wrote, which costs more than reading clean memory (1 MiB
        // one way on this machine: 45 us the one way, 19 to 30 the other).
        let extent = layout.as_ref().map_or(size, |l| l.extent());
        let (sbuf, mut rbuf) = (vec![b'a'; extent], vec![b'b'; extent]);
        // --value: what goes back and forth instead of `buf`, encoded and decoded each time.
        let mut value = ("sample".to_string(), vec![0.5f64; size / 8]);
        let mut ping = |dest_first: bool| -> mpr::Result<()> {
            let (send, recv) = (
                |v: &(String, Vec<f64>), b: &[u8]| {
                    if plan.value {
                        world.send_value(v, peer, TAG)
                    } else if let Some(l) = &layout {
                        world.send_layout(b, l, peer, TAG)
                    } else {
                        world.send(b, peer, TAG)
                    }
                },
                |v: &mut (String, Vec<f64>), b: &mut [u8]| {
                    if plan.value {
                        *v = world.recv_value(peer, TAG)?.0;
                    } else if let Some(l) = &layout {
                        world.recv_layout(b, l, peer, TAG)?;
                    } else {
                        world.recv(b, peer, TAG)?;
                    }
                    Ok::<(), mpr::Error>(())
                },
            );
            if dest_first {
                send(&value, &sbuf)?;
                recv(&mut value, &mut rbuf)
            } else {
                recv(&mut value, &mut rbuf)?;
                send(&value, &sbuf)
            }
        };
        let (iters, warmup) = (plan.iters_for(size), plan.warmup_for(size));
        let mut samples = Samples::new();
        world.barrier()?;
        let mut start = Instant::now();
        for i in 0..warmup + iters {
            if pinger {
                if i == warmup {
                    start = Instant::now();
                }
                // Percentiles from one round trip in SAMPLE_EVERY, so that the clock (some
                // 25 ns a read here) costs the average almost nothing.
                let sampled = i >= warmup && (i - warmup) % SAMPLE_EVERY == 0;
                let t = sampled.then(Instant::now);
                ping(true)?;
                if let Some(t) = t {
                    samples.record(t.elapsed().as_nanos() as u64);
                }
            } else {
                ping(false)?;
            }
        }
        samples.overall(start.elapsed().as_nanos(), iters);
        let row = samples.row(size, 2.0);
        if rank == 0 {
            let mut rows = vec![row];
            for r in 1..half {
                let mut f = [0f64; 3];
                world.recv(&mut f, r, ACK_TAG)?;
                rows.push(Row {
                    avg_us: f[0],
                    p50_us: f[1],
                    p99_us: f[2],
                    ..row
                });
            }
            report::row(plan, &stats::combine(&rows));
        } else if pinger {
            world.send(&[row.avg_us, row.p50_us, row.p99_us], 0, ACK_TAG)?;
        }
    }
    Ok(())
}

/// `size` bytes as blocks of `block` bytes (fewer if `size` is smaller) every `2 block` bytes.
fn strided(size: usize, block: usize) -> mpr::Layout {
    let b = block.min(size).max(1);
    mpr::Layout::vector(size / b, b, 2 * b)
}

/// Every rank sends `size` bytes to each ring neighbour and receives as much from each, per
/// iteration: isend/irecv in a scope per iteration, or (`--persistent`) four persistent requests
/// set up once per size and started every iteration. Time per iteration, max over ranks.
pub fn halo(world: &mpr::World, plan: &Plan) -> Result<(), Failure> {
    let (n, me) = (world.size(), world.rank());
    let (left, right) = ((me + n - 1) % n, (me + 1) % n);
    if me == 0 {
        report::header(plan, n, plan.sizes().len());
    }
    for size in plan.sizes() {
        let (iters, warmup) = (plan.iters_for(size), plan.warmup_for(size));
        let (to_left, to_right) = (vec![1u8; size], vec![2u8; size]);
        let (mut from_left, mut from_right) = (vec![0u8; size], vec![0u8; size]);
        let mut samples = Samples::new();
        world.barrier()?;
        let mut start = Instant::now();
        let mut step = |i: usize, samples: &mut Samples, f: &mut dyn FnMut() -> mpr::Result<()>| {
            if i == warmup {
                start = Instant::now();
            }
            let sampled = i >= warmup && (i - warmup).is_multiple_of(SAMPLE_EVERY);
            let t = sampled.then(Instant::now);
            f()?;
            if let Some(t) = t {
                samples.record(t.elapsed().as_nanos() as u64);
            }
            Ok::<(), mpr::Error>(())
        };
        if plan.persistent {
            mpr::scope(|s| -> mpr::Result<()> {
                let mut reqs = vec![
                    world.recv_init(s, &mut from_left, left, TAG)?,
                    world.recv_init(s, &mut from_right, right, TAG + 1)?,
                    world.send_init(s, &to_right, right, TAG)?,
                    world.send_init(s, &to_left, left, TAG + 1)?,
                ];
                for i in 0..warmup + iters {
                    step(i, &mut samples, &mut || {
                        mpr::start_all(&mut reqs)?;
                        mpr::wait_all_persistent(&mut reqs).map(drop)
                    })?;
                }
                Ok(())
            })?;
        } else {
            for i in 0..warmup + iters {
                step(i, &mut samples, &mut || {
                    mpr::scope(|s| -> mpr::Result<()> {
                        let reqs = vec![
                            world.irecv(s, &mut from_left, left, TAG)?,
                            world.irecv(s, &mut from_right, right, TAG + 1)?,
                            world.isend(s, &to_right, right, TAG)?,
                            world.isend(s, &to_left, left, TAG + 1)?,
                        ];
                        mpr::wait_all(reqs).map(drop)
                    })
                })?;
            }
        }
        samples.overall(start.elapsed().as_nanos(), iters);
        report::worst_row(world, plan, samples.row(size, 1.0))?;
    }
    Ok(())
}

/// Streaming bandwidth, one way (`bidirectional`: both ways at once).
pub fn bandwidth(world: &mpr::World, plan: &Plan, bidirectional: bool) -> Result<(), Failure> {
    two_ranks(world, plan)?;
    let rank = world.rank();
    let peer = 1 - rank;
    if rank == 0 {
        report::header(plan, world.size(), plan.sizes().len());
    }
    for size in plan.sizes() {
        let window = plan.window_for(size);
        let out = vec![b'a'; size];
        // One buffer per message in flight: a receive owns its buffer until it completes.
        let mut ins: Vec<Vec<u8>> = (0..window).map(|_| vec![0u8; size]).collect();
        let (iters, warmup) = (plan.iters_for(size), plan.warmup_for(size));
        let mut samples = Samples::new();
        world.barrier()?;
        for i in 0..warmup + iters {
            let t = Instant::now();
            let sending = bidirectional || rank == 0;
            let receiving = bidirectional || rank == 1;
            mpr::scope(|s| -> mpr::Result<()> {
                let mut reqs = Vec::with_capacity(2 * window);
                if receiving {
                    for b in ins.iter_mut() {
                        reqs.push(world.irecv(s, b, peer, TAG)?);
                    }
                }
                if sending {
                    for _ in 0..window {
                        reqs.push(world.isend(s, &out, peer, TAG)?);
                    }
                }
                mpr::wait_all(reqs).map(|_| ())
            })?;
            if !bidirectional {
                // The window counts as delivered when the receiver says so.
                let mut ack = [0u8; 4];
                if rank == 0 {
                    world.recv(&mut ack, peer, ACK_TAG)?;
                } else {
                    world.send(&ack, peer, ACK_TAG)?;
                }
            }
            if i >= warmup {
                samples.record(t.elapsed().as_nanos() as u64);
            }
        }
        if rank == 0 {
            let directions = if bidirectional { 2 } else { 1 };
            report::bandwidth_row(plan, &samples.row(size, 1.0), size * window * directions);
        }
    }
    Ok(())
}
