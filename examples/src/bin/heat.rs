//! 2-D heat diffusion (Jacobi iteration) on an NX x NY plate whose top edge is held at 1 and
//! other edges at 0. Rows are split in blocks among the ranks; each step exchanges the edge rows
//! with the neighbours (halo exchange with isend/irecv, the interior computed meanwhile), updates
//! the block with rayon across the rank's cores when it is big enough to pay, and the residual
//! (root of the summed squared change) comes from an allreduce.
//!
//! `mprun -n 4 target/release/heat [NX NY STEPS] [--check]`  (default 512 512 500)
//!
//! `--check`: rank 0 also runs the same computation serially on the whole plate and compares
//! the residual and the plate's total heat; the program fails if they differ.

use rayon::prelude::*;

/// Below this many cells per rank, threads cost more than they save.
const PAR_CELLS: usize = 1 << 16;

fn main() {
    if let Err(e) = run() {
        eprintln!("heat: {e}");
        std::process::exit(1);
    }
}

/// One Jacobi step from `old` to `new` over rows 1..=rows of a block stored with one ghost row
/// above and below (`(rows + 2) * nx` cells). Returns the sum of squared changes. Columns 0 and
/// nx-1 are boundary (held).
fn step(old: &[f64], new: &mut [f64], nx: usize, rows: usize) -> f64 {
    let update = |(i, row): (usize, &mut [f64])| -> f64 {
        let r = i + 1;
        let (up, mid, down) = (
            &old[(r - 1) * nx..r * nx],
            &old[r * nx..(r + 1) * nx],
            &old[(r + 1) * nx..(r + 2) * nx],
        );
        let mut d2 = 0.0;
        row[0] = mid[0];
        row[nx - 1] = mid[nx - 1];
        for j in 1..nx - 1 {
            let v = 0.25 * (up[j] + down[j] + mid[j - 1] + mid[j + 1]);
            d2 += (v - mid[j]) * (v - mid[j]);
            row[j] = v;
        }
        d2
    };
    let body = &mut new[nx..(rows + 1) * nx];
    if rows * nx >= PAR_CELLS {
        body.par_chunks_mut(nx).enumerate().map(update).sum()
    } else {
        body.chunks_mut(nx).enumerate().map(update).sum()
    }
}

/// The serial reference: the whole plate in one block.
fn serial(nx: usize, ny: usize, steps: usize) -> (f64, f64) {
    let mut a = vec![0.0; (ny + 2) * nx];
    a[nx..2 * nx].fill(1.0); // global row 0, the hot edge, is held
    let mut b = a.clone();
    let mut res = 0.0;
    for _ in 0..steps {
        // Rows 1..ny-2 (global) are interior; rows 0 and ny-1 are held.
        let d2 = step(&a[nx..], &mut b[nx..], nx, ny - 2);
        std::mem::swap(&mut a, &mut b);
        res = d2.sqrt();
    }
    (res, a[nx..(ny + 1) * nx].iter().sum())
}

fn run() -> mpr::Result<()> {
    let world = mpr::init()?;
    let (rank, size) = (world.rank(), world.size());
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--check")
        .collect();
    let check = std::env::args().any(|a| a == "--check");
    let num = |i: usize, d: usize| {
        args.get(i)
            .map_or(Ok(d), |s| s.parse::<usize>().map_err(|_| s.clone()))
    };
    let (nx, ny, steps) = match (num(0, 512), num(1, 512), num(2, 500)) {
        (Ok(x), Ok(y), Ok(s)) if x >= 3 && y >= 3 && y >= size && s > 0 => (x, y, s),
        _ => {
            if rank == 0 {
                eprintln!("heat: usage: heat [NX NY STEPS] [--check], NX, NY >= 3, NY >= ranks, STEPS >= 1");
            }
            std::process::exit(2);
        }
    };
    // Global rows [r0, r1) are this rank's; stored at local rows 1..=rows, ghosts at 0, rows+1.
    let (r0, r1) = (ny * rank / size, ny * (rank + 1) / size);
    let rows = r1 - r0;
    let mut a = vec![0.0; (rows + 2) * nx];
    if r0 == 0 {
        a[nx..2 * nx].fill(1.0);
    }
    let mut b = a.clone();
    let (up, down) = (rank.checked_sub(1), (rank + 1 < size).then_some(rank + 1));
    let t0 = mpr::wtime();
    let mut residual = 0.0;
    for _ in 0..steps {
        // Halo exchange: first and last own rows out, ghost rows in.
        {
            let (ghost_top, rest) = a.split_at_mut(nx);
            let (own, ghost_bottom) = rest.split_at_mut(rows * nx);
            let (first, last) = (&own[..nx], &own[(rows - 1) * nx..]);
            mpr::scope(|s| -> mpr::Result<()> {
                let mut reqs = Vec::with_capacity(4);
                if let Some(p) = up {
                    reqs.push(world.irecv(s, ghost_top, p, 0)?);
                    reqs.push(world.isend(s, first, p, 1)?);
                }
                if let Some(p) = down {
                    reqs.push(world.irecv(s, ghost_bottom, p, 1)?);
                    reqs.push(world.isend(s, last, p, 0)?);
                }
                mpr::wait_all(reqs).map(|_| ())
            })?;
        }
        // Held rows: the global first and last rows keep their values.
        let lo = if r0 == 0 { 1 } else { 0 };
        let hi = if r1 == ny { rows - 1 } else { rows };
        let d2 = if hi > lo {
            step(&a[lo * nx..], &mut b[lo * nx..], nx, hi - lo)
        } else {
            0.0
        };
        if r0 == 0 {
            b[nx..2 * nx].copy_from_slice(&a[nx..2 * nx]);
        }
        if r1 == ny {
            b[rows * nx..(rows + 1) * nx].copy_from_slice(&a[rows * nx..(rows + 1) * nx]);
        }
        std::mem::swap(&mut a, &mut b);
        let mut total = [0.0];
        world.allreduce(&[d2], &mut total, mpr::Op::Sum)?;
        residual = total[0].sqrt();
    }
    let mut heat = [0.0];
    world.allreduce(
        &[a[nx..(rows + 1) * nx].iter().sum::<f64>()],
        &mut heat,
        mpr::Op::Sum,
    )?;
    if rank == 0 {
        println!(
            "heat {nx}x{ny}, {steps} steps on {size} ranks: residual {residual:.6e}, total heat {:.9}, {:.3} s",
            heat[0],
            mpr::wtime() - t0
        );
        if check {
            let (res, total) = serial(nx, ny, steps);
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.abs().max(1e-300);
            if close(residual, res) && close(heat[0], total) {
                println!("serial run agrees: residual {res:.6e}, total heat {total:.9}");
            } else {
                eprintln!("heat: serial run differs: residual {res:.6e}, total heat {total:.9}");
                world.abort(1);
            }
        }
    }
    Ok(())
}
