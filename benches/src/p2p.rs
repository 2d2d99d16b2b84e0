//! Point-to-point benchmarks between ranks 0 and 1.
//!
//! `latency`: ping-pong, as `osu_latency`. Rank 0 sends and waits for the echo; rank 1 echoes.
//! Each round trip is timed on its own and halved (one-way latency), so the percentiles are those
//! of single messages, not of batches.

use std::time::Instant;

use crate::args::Plan;
use crate::stats::Samples;
use crate::{report, Failure};

const TAG: u32 = 1;

/// One-way latency by ping-pong. Needs exactly two ranks, as `osu_latency` does.
pub fn latency(world: &mpr::World, plan: &Plan) -> Result<(), Failure> {
    if world.size() != 2 {
        return Err(Failure::Setup(format!(
            "latency needs exactly 2 ranks, not {} (mprun -n 2)",
            world.size()
        )));
    }
    let rank = world.rank();
    let peer = 1 - rank;
    if rank == 0 {
        report::header(plan, world.size());
    }
    for size in plan.sizes() {
        let mut buf = vec![b'a'; size];
        let (iters, warmup) = (plan.iters_for(size), plan.warmup_for(size));
        let mut samples = Samples::new();
        world.barrier()?;
        for i in 0..warmup + iters {
            if rank == 0 {
                let t = Instant::now();
                world.send(&buf, peer, TAG)?;
                world.recv(&mut buf, peer, TAG)?;
                if i >= warmup {
                    samples.record(t.elapsed().as_nanos() as u64);
                }
            } else {
                world.recv(&mut buf, peer, TAG)?;
                world.send(&buf, peer, TAG)?;
            }
        }
        if rank == 0 {
            report::row(plan, &samples.row(size, 2.0));
        }
    }
    Ok(())
}
