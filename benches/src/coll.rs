//! Collective benchmarks, as `osu_barrier`, `osu_bcast`, `osu_allreduce`, ...: every rank times
//! its whole loop of calls (the mean) and one call in four (p50 and p99: reading the clock around
//! every call would add its own cost to the mean of the smallest collectives); each rank's
//! figures are combined with a max over the ranks (the slowest rank is what a program waits for). Reductions work on `f32` elements, so
//! their sizes start at 4 bytes; gathers and all-to-all move `size` bytes per rank pair; the
//! barrier has one row (size 0).

use std::time::Instant;

use mpr::Op;

use crate::args::{Coll, Plan};
use crate::p2p::SAMPLE_EVERY;
use crate::stats::Samples;
use crate::{report, Failure};

/// Runs one collective benchmark over the plan's sizes.
pub fn run(world: &mpr::World, plan: &Plan, which: Coll) -> Result<(), Failure> {
    let (n, me) = (world.size(), world.rank());
    let sizes: Vec<usize> = match which {
        Coll::Barrier => vec![0],
        Coll::Reduce | Coll::Allreduce => plan.sizes().into_iter().filter(|&s| s >= 4).collect(),
        _ => plan.sizes(),
    };
    if me == 0 {
        report::header(plan, n, sizes.len());
    }
    for size in sizes {
        let (iters, warmup) = (plan.iters_for(size), plan.warmup_for(size));
        let floats = size / 4;
        let (mut a, mut b) = match which {
            Coll::Gather | Coll::Scatter | Coll::Allgather | Coll::Alltoall => {
                (vec![1u8; n * size], vec![0u8; n * size])
            }
            _ => (vec![1u8; size], vec![0u8; size]),
        };
        let (fa, mut fb) = (vec![1f32; floats], vec![0f32; floats]);
        let mut samples = Samples::new();
        world.barrier()?;
        let mut start = Instant::now();
        for i in 0..warmup + iters {
            if i == warmup {
                start = Instant::now();
            }
            let sampled = i >= warmup && (i - warmup) % SAMPLE_EVERY == 0;
            let t = sampled.then(Instant::now);
            match which {
                Coll::Barrier => world.barrier()?,
                Coll::Bcast => world.broadcast(&mut a, 0)?,
                Coll::Reduce => world.reduce(&fa, &mut fb, Op::Sum, 0)?,
                Coll::Allreduce => world.allreduce(&fa, &mut fb, Op::Sum)?,
                Coll::Gather => world.gather(&a[..size], &mut b, 0)?,
                Coll::Scatter => world.scatter(&a, &mut b[..size], 0)?,
                Coll::Allgather => world.allgather(&a[..size], &mut b)?,
                Coll::Alltoall => world.alltoall(&a, &mut b)?,
            }
            if let Some(t) = t {
                samples.record(t.elapsed().as_nanos() as u64);
            }
        }
        samples.overall(start.elapsed().as_nanos(), iters);
        report::worst_row(world, plan, samples.row(size, 1.0))?;
    }
    Ok(())
}
