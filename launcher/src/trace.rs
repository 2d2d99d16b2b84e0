//! `-v`: the steps of a launch on stderr, each with the time since mprun started, so a slow
//! start-up shows where it waits (an agent that takes long to connect, a host that answers
//! late, ranks that start late).
//!
//! A process-wide switch rather than a value threaded through every layer: the steps happen in
//! reader threads and helpers' links as much as in `main`, and a disabled note costs one atomic
//! load.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

static ON: AtomicBool = AtomicBool::new(false);
static START: OnceLock<Instant> = OnceLock::new();

/// Starts the clock (call first thing); notes are printed only after [`enable`].
pub fn start() {
    START.get_or_init(Instant::now);
}

/// Turns notes on.
pub fn enable() {
    start();
    ON.store(true, Ordering::Relaxed);
}

/// Prints `mprun: +T ms: WHAT` on stderr if `-v` was given; `what` is only built then.
pub fn note(what: impl FnOnce() -> String) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let what = what();
    // The time is read under the stream's lock, so notes from several threads come out in
    // the order of their times.
    let mut err = std::io::stderr().lock();
    let ms = START.get().map_or(0.0, |t| t.elapsed().as_secs_f64() * 1e3);
    let _ = writeln!(err, "mprun: +{ms:.1} ms: {what}");
}
