//! What every rank program of the tests shares: `R`, `e`, `check!`, and `run_case`, which joins
//! the job, runs one named case, and turns its result into output and an exit status (rank 0
//! prints `ok CASE`; a failing rank prints why on stderr and exits 1; init failing exits 10).

#![allow(dead_code)]

use std::process::ExitCode;

/// A case's result: an error message on a mismatch.
pub type R<T> = Result<T, String>;

/// An mpr error as a case's message.
pub fn e(err: mpr::Error) -> String {
    err.to_string()
}

/// Fails the case with a message unless the condition holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// `PROGRAM CASE ARGS...`: runs `dispatch(world, case, args)`.
pub fn run_case(dispatch: impl FnOnce(&mpr::World, &str, &[String]) -> R<()>) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let case = args.first().cloned().unwrap_or_default();
    let world = match mpr::init() {
        Ok(w) => w,
        Err(err) => {
            eprintln!("init: {err}");
            return ExitCode::from(10);
        }
    };
    let rest = args.get(1..).unwrap_or(&[]);
    match dispatch(&world, &case, rest) {
        Ok(()) => {
            if world.rank() == 0 {
                println!("ok {case}");
            }
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("rank {}: {case}: {msg}", world.rank());
            ExitCode::from(1)
        }
    }
}
