//! 3-D heat diffusion (Jacobi iteration, 7-point stencil) in an NX x NY x NZ box whose face
//! x = 0 is held at 1 and other faces at 0.
//!
//! The box is cut into a grid of blocks from `mpr::dims_create`, one per rank of a Cartesian
//! communicator (`cart_create`, no wrap-around). Each block is stored with one ghost layer all
//! round; at the box's faces the ghost layer is the held boundary (the shifts there give no
//! rank, and the exchange skips them). Every step:
//! 1. the six faces go to the neighbours and their ghost layers come in, as subarray layouts of
//!    a persistent exchange (`exchange_init`, set up once per grid; one for each of the two
//!    grids Jacobi alternates between),
//! 2. meanwhile the cells that do not touch a ghost cell are updated, with rayon across the
//!    rank's cores, reading the block through `Exchange::read` (which refuses anything a receive
//!    writes),
//! 3. once the halos are in, the shell of cells next to them is updated,
//! 4. the residual (root of the summed squared change) comes from an allreduce.
//!
//! `mprun -n 8 target/release/heat3d [NX NY NZ STEPS] [--per-rank] [--check]` (default 96^3, 100
//! steps). `--per-rank`: NX NY NZ are each rank's block (the box grows with the ranks: weak
//! scaling). `--check`: rank 0 also runs the same computation serially on the whole box and
//! compares the residual and the total heat; the program fails if they differ.
//! `benches/peers/heat3d.c` is the same program against MPI; `benches/compare-heat3d` times both.

use rayon::prelude::*;

/// Below this many cells per rank, threads cost more than they save.
const PAR_CELLS: usize = 1 << 15;

fn main() {
    if let Err(e) = run() {
        eprintln!("heat3d: {e}");
        std::process::exit(1);
    }
}

/// A block of `n[0] x n[1] x n[2]` cells stored with a ghost layer: index of cell (x, y, z),
/// each from 0 (ghost) to n + 1 (ghost).
#[derive(Clone, Copy)]
struct Shape {
    n: [usize; 3],
}

impl Shape {
    fn stored(self) -> [usize; 3] {
        self.n.map(|k| k + 2)
    }
    fn len(self) -> usize {
        self.stored().iter().product()
    }
    fn at(self, x: usize, y: usize, z: usize) -> usize {
        let s = self.stored();
        (x * s[1] + y) * s[2] + z
    }
}

/// The z-run of stored (x, y) of the old grid, and the stored z of its first element.
trait Rows: Sync {
    fn row(&self, x: usize, y: usize) -> (&[f64], usize);
}

/// Rows of a whole stored grid (ghosts included).
struct Whole<'a>(Shape, &'a [f64]);

impl Rows for Whole<'_> {
    fn row(&self, x: usize, y: usize) -> (&[f64], usize) {
        let i = self.0.at(x, y, 0);
        (&self.1[i..i + self.0.stored()[2]], 0)
    }
}

/// Rows of the block's cells only, as `Exchange::read` gives them (z from 1).
struct Inner<'a>(Shape, Vec<&'a [f64]>);

impl Rows for Inner<'_> {
    fn row(&self, x: usize, y: usize) -> (&[f64], usize) {
        (self.1[(x - 1) * self.0.n[1] + (y - 1)], 1)
    }
}

/// Which z of a row to update: a run `a..b`, or the two ends `1` and `nz`.
#[derive(Clone, Copy)]
enum Zs {
    Run(usize, usize),
    Ends(usize),
}

/// Updates cells (x, y, z) for z in `zs` of plane `p` (plane x of the new grid): the summed
/// squared change.
fn cells(shape: Shape, old: &impl Rows, p: &mut [f64], x: usize, y: usize, zs: Zs) -> f64 {
    let (c, o) = old.row(x, y);
    let (xm, xp) = (old.row(x - 1, y).0, old.row(x + 1, y).0);
    let (ym, yp) = (old.row(x, y - 1).0, old.row(x, y + 1).0);
    let base = shape.at(0, y, 0);
    let mut d2 = 0.0;
    let mut one = |z: usize| {
        let k = z - o;
        let v = (xm[k] + xp[k] + ym[k] + yp[k] + c[k - 1] + c[k + 1]) / 6.0;
        let d = v - c[k];
        p[base + z] = v;
        d2 += d * d;
    };
    match zs {
        // The common case, as zipped slices of one length (no bounds check inside the loop).
        Zs::Run(a, b) if b > a => {
            let (k0, k1, len) = (a - o, b - o, b - a);
            let out = &mut p[base + a..base + b][..len];
            let (xm, xp) = (&xm[k0..k1][..len], &xp[k0..k1][..len]);
            let (ym, yp) = (&ym[k0..k1][..len], &yp[k0..k1][..len]);
            let (mid, below, above) = (
                &c[k0..k1][..len],
                &c[k0 - 1..k1 - 1][..len],
                &c[k0 + 1..k1 + 1][..len],
            );
            let mut d2 = 0.0;
            for i in 0..len {
                let v = (xm[i] + xp[i] + ym[i] + yp[i] + below[i] + above[i]) / 6.0;
                let d = v - mid[i];
                out[i] = v;
                d2 += d * d;
            }
            return d2;
        }
        Zs::Run(..) => {}
        Zs::Ends(nz) => {
            one(1);
            if nz > 1 {
                one(nz);
            }
        }
    }
    d2
}

/// Updates the cells of `new` with x in `xs` and y in `ys`, and for each the z that `zs`
/// gives, from `old`, with rayon across planes when the block is big enough: the summed
/// squared change.
fn sweep(
    shape: Shape,
    old: &impl Rows,
    new: &mut [f64],
    xs: std::ops::Range<usize>,
    ys: std::ops::Range<usize>,
    zs: &(impl Fn(usize, usize) -> Zs + Sync),
) -> f64 {
    let plane = shape.stored()[1] * shape.stored()[2];
    let one = |(x, p): (usize, &mut [f64])| -> f64 {
        ys.clone()
            .map(|y| cells(shape, old, p, x, y, zs(x, y)))
            .sum()
    };
    if shape.n.iter().product::<usize>() >= PAR_CELLS {
        new.par_chunks_mut(plane)
            .enumerate()
            .filter(|(x, _)| xs.contains(x))
            .map(one)
            .sum()
    } else {
        new.chunks_mut(plane)
            .enumerate()
            .filter(|(x, _)| xs.contains(x))
            .map(one)
            .sum()
    }
}

/// The cells 2 ..= n - 1 of each dimension, which touch no ghost cell.
fn inner_sweep(shape: Shape, old: &impl Rows, new: &mut [f64]) -> f64 {
    let [nx, ny, nz] = shape.n;
    sweep(shape, old, new, 2..nx.max(2), 2..ny.max(2), &|_, _| {
        Zs::Run(2, nz.max(2))
    })
}

/// The shell of cells next to the ghost layer: what [`inner_sweep`] left.
fn shell(shape: Shape, old: &impl Rows, new: &mut [f64]) -> f64 {
    let [nx, ny, nz] = shape.n;
    sweep(shape, old, new, 1..nx + 1, 1..ny + 1, &|x, y| {
        if x == 1 || x == nx || y == 1 || y == ny {
            Zs::Run(1, nz + 1)
        } else {
            Zs::Ends(nz)
        }
    })
}

/// The face of `shape` at stored index `at` of dimension `d`, without the other ghost layers.
fn face(shape: Shape, d: usize, at: usize) -> mpr::Layout {
    let mut sub = shape.n;
    sub[d] = 1;
    let mut start = [1; 3];
    start[d] = at;
    mpr::Layout::subarray(&shape.stored(), &sub, &start).expect("a face lies in its block")
}

/// The serial reference: the whole box as one block.
fn serial(n: [usize; 3], steps: usize) -> (f64, f64) {
    let shape = Shape { n };
    let mut a = vec![0.0; shape.len()];
    hold(shape, &mut a);
    let mut b = a.clone();
    let mut res = 0.0;
    for _ in 0..steps {
        let old = Whole(shape, &a);
        let d2 = inner_sweep(shape, &old, &mut b) + shell(shape, &old, &mut b);
        std::mem::swap(&mut a, &mut b);
        res = d2.sqrt();
    }
    (res, interior_sum(shape, &a))
}

/// The held face x = 0 of the box: the ghost plane at stored x = 0.
fn hold(shape: Shape, g: &mut [f64]) {
    let plane = shape.stored()[1] * shape.stored()[2];
    g[..plane].fill(1.0);
}

fn interior_sum(shape: Shape, g: &[f64]) -> f64 {
    let [nx, ny, nz] = shape.n;
    let mut s = 0.0;
    for x in 1..=nx {
        for y in 1..=ny {
            let i = shape.at(x, y, 1);
            s += g[i..i + nz].iter().sum::<f64>();
        }
    }
    s
}

fn run() -> mpr::Result<()> {
    let world = mpr::init()?;
    let (rank, size) = (world.rank(), world.size());
    let words: Vec<String> = std::env::args().skip(1).collect();
    let check = words.iter().any(|a| a == "--check");
    let per_rank = words.iter().any(|a| a == "--per-rank");
    let nums: Vec<&String> = words.iter().filter(|a| !a.starts_with("--")).collect();
    let num = |i: usize, d: usize| {
        nums.get(i)
            .map_or(Ok(d), |s| s.parse::<usize>().map_err(|_| s.to_string()))
    };
    let mut dims = vec![0usize; 3];
    mpr::dims_create(size, &mut dims)?;
    let (n, steps) = match (num(0, 96), num(1, 96), num(2, 96), num(3, 100)) {
        (Ok(x), Ok(y), Ok(z), Ok(s)) if s > 0 && x > 0 && y > 0 && z > 0 => {
            let n = [x, y, z];
            let n = if per_rank {
                [0, 1, 2].map(|d| n[d] * dims[d])
            } else {
                n
            };
            if (0..3).all(|d| n[d] >= dims[d]) {
                (n, s)
            } else {
                usage(rank, &dims)
            }
        }
        _ => usage(rank, &dims),
    };
    let grid = world
        .cart_create(&dims, &[false; 3], false)?
        .expect("dims_create covers every rank");
    let c = grid.coords();
    // This rank's block: cells [lo, hi) of each dimension.
    let lo: Vec<usize> = (0..3).map(|d| n[d] * c[d] / dims[d]).collect();
    let hi: Vec<usize> = (0..3).map(|d| n[d] * (c[d] + 1) / dims[d]).collect();
    let shape = Shape {
        n: [0, 1, 2].map(|d| hi[d] - lo[d]),
    };
    let mut a = vec![0.0; shape.len()];
    if c[0] == 0 {
        hold(shape, &mut a);
    }
    let mut b = a.clone();
    // Faces out to each neighbour, ghost layers in (none at the box's faces).
    let mut sends = Vec::new();
    let mut recvs = Vec::new();
    for d in 0..3 {
        let (minus, plus) = grid.shift(d, 1)?;
        let t = 2 * d as u32;
        sends.push((face(shape, d, 1), minus, t));
        sends.push((face(shape, d, shape.n[d]), plus, t + 1));
        recvs.push((face(shape, d, 0), minus, t + 1));
        recvs.push((face(shape, d, shape.n[d] + 1), plus, t));
    }
    // The rows (z runs) of the block's cells, what the inner sweep reads while halos travel.
    let rows = mpr::Layout::subarray(&shape.stored(), &shape.n, &[1, 1, 1])?;
    world.barrier()?;
    let t0 = mpr::wtime();
    let mut residual = 0.0;
    let sum = mpr::scope(|s| -> mpr::Result<f64> {
        let mut ex = [
            grid.exchange_init(s, &mut a, &sends, &recvs)?,
            grid.exchange_init(s, &mut b, &sends, &recvs)?,
        ];
        for step in 0..steps {
            let (old, new) = if step % 2 == 0 {
                let [x, y] = &mut ex;
                (x, y)
            } else {
                let [x, y] = &mut ex;
                (y, x)
            };
            old.start()?;
            // Inner cells, from rows of the block that no receive writes.
            let rows_now = Inner(shape, old.read(&rows)?);
            let mut d2 = inner_sweep(shape, &rows_now, new.buf_mut()?);
            drop(rows_now);
            old.wait()?;
            d2 += shell(shape, &Whole(shape, old.buf()?), new.buf_mut()?);
            let mut total = [0.0];
            grid.allreduce(&[d2], &mut total, mpr::Op::Sum)?;
            residual = total[0].sqrt();
        }
        let last = &ex[steps % 2];
        Ok(interior_sum(shape, last.buf()?))
    })?;
    let mut heat = [0.0];
    grid.allreduce(&[sum], &mut heat, mpr::Op::Sum)?;
    let secs = mpr::wtime() - t0;
    if rank == 0 {
        println!(
            "heat3d {}x{}x{}, {steps} steps on {size} ranks ({}x{}x{}): residual {residual:.6e}, total heat {:.9}, {secs:.3} s, {:.1} us/step",
            n[0], n[1], n[2], dims[0], dims[1], dims[2], heat[0], secs / steps as f64 * 1e6
        );
        if check {
            let (res, total) = serial(n, steps);
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.abs().max(1e-300);
            if close(residual, res) && close(heat[0], total) {
                println!("serial run agrees: residual {res:.6e}, total heat {total:.9}");
            } else {
                eprintln!("heat3d: serial run differs: residual {res:.6e}, total heat {total:.9}");
                world.abort(1);
            }
        }
    }
    Ok(())
}

fn usage(rank: usize, dims: &[usize]) -> ! {
    if rank == 0 {
        eprintln!(
            "heat3d: usage: heat3d [NX NY NZ STEPS] [--per-rank] [--check]; each size at least the grid of ranks {dims:?}, STEPS >= 1"
        );
    }
    std::process::exit(2)
}
