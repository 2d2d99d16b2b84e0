//! Computes pi by integrating 4 / (1 + x^2) over [0, 1] with the midpoint rule: each rank takes
//! an equal share of the intervals, sums it with rayon across its cores, and an allreduce adds
//! the shares.
//!
//! `mprun -n 4 target/release/pi [INTERVALS]` (default 100,000,000)

use rayon::prelude::*;

fn main() {
    if let Err(e) = run() {
        eprintln!("pi: {e}");
        std::process::exit(1);
    }
}

fn run() -> mpr::Result<()> {
    let world = mpr::init()?;
    let (rank, size) = (world.rank(), world.size());
    let n: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 100_000_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            if rank == 0 {
                eprintln!("pi: INTERVALS must be a positive whole number");
            }
            std::process::exit(2);
        }
    };
    let t0 = mpr::wtime();
    let h = 1.0 / n as f64;
    // Rank r takes intervals [lo, hi): contiguous blocks, sizes differing by at most one.
    let (lo, hi) = (
        n * rank as u64 / size as u64,
        n * (rank as u64 + 1) / size as u64,
    );
    let local: f64 = (lo..hi)
        .into_par_iter()
        .map(|i| {
            let x = h * (i as f64 + 0.5);
            4.0 / (1.0 + x * x)
        })
        .sum::<f64>()
        * h;
    let mut pi = [0.0f64];
    world.allreduce(&[local], &mut pi, mpr::Op::Sum)?;
    if rank == 0 {
        let err = (pi[0] - std::f64::consts::PI).abs();
        println!(
            "pi = {:.10} (error {err:.3e}) with {n} intervals on {size} ranks in {:.3} s",
            pi[0],
            mpr::wtime() - t0
        );
    }
    Ok(())
}
