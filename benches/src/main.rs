//! `mpr-bench`: OSU-style micro-benchmarks for mpr.
//!
//! ```text
//! mprun -n 2 mpr-bench latency|bw|bibw [-m MIN:MAX] [-i ITERS] [-x WARMUP] [-W WINDOW] [--json]
//! ```
//!
//! The output reads like the OSU Micro-Benchmarks (`#` header lines, then one row per message
//! size) so figures can be set side by side with those of Open MPI and MPICH, plus p50/p99
//! columns from an `hdrhistogram` of every individual iteration: a mean hides the stalls
//! (scheduler ticks on an oversubscribed machine, retransmits across hosts) that a percentile
//! shows.
//!
//! Layout: `args` parses the command line (the same on every rank, so every rank agrees on the
//! plan without talking), `stats` turns samples into the reported figures, `report` prints them,
//! and one file per benchmark family measures.

#![forbid(unsafe_code)]

mod args;
mod coll;
mod p2p;
mod plot;
mod report;
mod stats;

use std::process::ExitCode;

use args::{Bench, Plan};

fn main() -> ExitCode {
    let parsed = args::parse(std::env::args().skip(1));
    // Drawing earlier runs, or completions, needs no job.
    if let Ok(args::Parsed::Completions(script)) = &parsed {
        use std::io::Write;
        let _ = std::io::stdout().write_all(script);
        return ExitCode::SUCCESS;
    }
    if let Ok(args::Parsed::Plot(p)) = &parsed {
        return match plot_runs(p) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("mpr-bench: {msg}");
                ExitCode::from(2)
            }
        };
    }
    let world = match mpr::init() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("mpr-bench: cannot join the job: {e}");
            return ExitCode::from(2);
        }
    };
    let plan = match parsed {
        Ok(args::Parsed::Run(plan)) => plan,
        Ok(args::Parsed::Help(text)) => {
            if world.rank() == 0 {
                print!("{text}");
            }
            return ExitCode::SUCCESS;
        }
        Ok(args::Parsed::Plot(_) | args::Parsed::Completions(_)) => {
            unreachable!("done above, before joining a job")
        }
        Err(msg) => {
            // Every rank parsed the same words; one line is enough.
            if world.rank() == 0 {
                eprintln!("mpr-bench: {msg}");
            }
            return ExitCode::from(2);
        }
    };
    let ran = run(&world, &plan);
    if world.rank() == 0 {
        report::finish(&plan);
    }
    let ran = ran.and_then(|()| match (&plan.plot, world.rank()) {
        (Some(out), 0) => plot_this_run(&plan, out).map_err(Failure::Plot),
        _ => Ok(()),
    });
    match ran {
        Ok(()) => match world.finalize() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mpr-bench: rank ending: {e}");
                ExitCode::from(1)
            }
        },
        Err(Failure::Setup(msg)) => {
            // A plan every rank can check alike: one line, usage exit status.
            if world.rank() == 0 {
                eprintln!("mpr-bench: {msg}");
            }
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("mpr-bench: rank {}: {e}", world.rank());
            ExitCode::from(1)
        }
    }
}

/// Runs the chosen benchmark; rank 0 prints.
fn run(world: &mpr::World, plan: &Plan) -> Result<(), Failure> {
    match plan.bench {
        Bench::Latency => p2p::latency(world, plan),
        Bench::Bw => p2p::bandwidth(world, plan, false),
        Bench::Bibw => p2p::bandwidth(world, plan, true),
        Bench::MultiLat => p2p::latency(world, plan),
        Bench::Halo => p2p::halo(world, plan),
        Bench::Coll(which) => coll::run(world, plan, which),
    }
}

/// `--plot`: rank 0 draws the points it printed.
fn plot_this_run(plan: &Plan, out: &std::path::Path) -> Result<(), String> {
    let label = format!("mpr {}", plan.bench.name());
    let (measure, series) = plot::series(&label, &report::points())?;
    let words = plot::Words {
        title: format!("mpr-bench {}", plan.bench.name()),
        ..plot::Words::default()
    };
    plot::draw(out, &words, measure, &series)
}

/// `mpr-bench plot`: earlier runs overlaid, a series per file (and benchmark).
fn plot_runs(p: &args::PlotPlan) -> Result<(), String> {
    let mut measure = None;
    let mut all = Vec::new();
    let mut names = Vec::new();
    for input in &p.inputs {
        let name = input.file_stem().map_or_else(
            || input.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        let (m, series) = plot::series(&name, &plot::read(input)?)?;
        if *measure.get_or_insert(m) != m {
            return Err(format!(
                "{}: latency and bandwidth cannot share one picture",
                input.display()
            ));
        }
        all.extend(series);
        names.push(name);
    }
    let words = plot::Words {
        title: p.title.clone().unwrap_or_else(|| names.join(" / ")),
        x: p.x_desc.clone(),
        y: p.y_desc.clone(),
    };
    match measure {
        Some(m) => plot::draw(&p.out, &words, m, &all),
        None => Err("no run to draw".into()),
    }
}

/// Why a benchmark could not run.
#[derive(Debug)]
enum Failure {
    /// The runtime reported an error.
    Mpr(mpr::Error),
    /// The job does not fit the benchmark (for example the wrong number of ranks).
    Setup(String),
    /// `--plot` could not draw (an unwritable file).
    Plot(String),
}

impl From<mpr::Error> for Failure {
    fn from(e: mpr::Error) -> Self {
        Failure::Mpr(e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Mpr(e) => write!(f, "{e}"),
            Failure::Setup(s) | Failure::Plot(s) => f.write_str(s),
        }
    }
}
