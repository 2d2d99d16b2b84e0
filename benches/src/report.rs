//! Output in the shape of the OSU Micro-Benchmarks: `#` header lines, then one row per size;
//! or, with `--json`, one JSON object per size ([`Point`], through serde_json). Rank 0 also
//! keeps every point for `--plot` (`plot.rs`), and on a terminal shows on stderr how far a
//! sweep has come (never in a pipe, never with `--json`).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::args::Plan;
use crate::stats::Row;

/// One measured size, as `--json` prints it and `mpr-bench plot` reads it back: latency rows
/// have the `*_us` fields, bandwidth rows the `*mb_per_s` ones and `window`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub bench: String,
    pub size: usize,
    pub iterations: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mb_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_mb_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_mb_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_us: Option<f64>,
}

/// The points rank 0 printed, for `--plot`, and how many sizes the sweep has: a process-wide
/// list because rows are printed from every benchmark's loop, and only rank 0 prints.
static KEPT: Mutex<(Vec<Point>, usize)> = Mutex::new((Vec::new(), 0));

/// The points printed so far.
pub fn points() -> Vec<Point> {
    KEPT.lock().map(|k| k.0.clone()).unwrap_or_default()
}

/// `x` to `digits` decimals (what the table shows, and JSON keeps).
fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Prints a point (a table row, or its JSON) and keeps it.
fn emit(plan: &Plan, p: Point, table: String) {
    let progress = show_progress(plan);
    if progress {
        eprint!("\r\x1b[K");
    }
    if plan.json {
        match serde_json::to_string(&p) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("mpr-bench: cannot write JSON: {e}"),
        }
    } else {
        println!("{table}");
    }
    let mut k = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    k.0.push(p);
    if progress {
        let _ = std::io::stdout().flush();
        eprint!(
            "mpr-bench {}: {} of {} sizes ({} bytes done)",
            plan.bench.name(),
            k.0.len(),
            k.1.max(k.0.len()),
            k.0.last().map_or(0, |p| p.size)
        );
        let _ = std::io::stderr().flush();
    }
}

/// Whether to show progress: on a terminal, for a table.
fn show_progress(plan: &Plan) -> bool {
    !plan.json && std::io::stderr().is_terminal()
}

/// Ends the progress line, if one is shown.
pub fn finish(plan: &Plan) {
    if show_progress(plan) && !points().is_empty() {
        eprint!("\r\x1b[K");
        let _ = std::io::stderr().flush();
    }
}

/// Prints, at rank 0, the row of the slowest rank: mean, p50 and p99 each the largest over the
/// ranks of `world` (every rank calls it with its own row).
pub fn worst_row(world: &mpr::World, plan: &Plan, row: Row) -> mpr::Result<()> {
    let mine = [row.avg_us, row.p50_us, row.p99_us];
    let mut worst = [0f64; 3];
    world.reduce(&mine, &mut worst, mpr::Op::Max, 0)?;
    if world.rank() == 0 {
        let r = Row {
            avg_us: worst[0],
            p50_us: worst[1],
            p99_us: worst[2],
            ..row
        };
        self::row(plan, &r);
    }
    Ok(())
}

/// Prints the header (table mode only) of a sweep of `sizes` sizes.
pub fn header(plan: &Plan, ranks: usize, sizes: usize) {
    if let Ok(mut k) = KEPT.lock() {
        k.1 = sizes;
    }
    if plan.json {
        return;
    }
    println!(
        "# mpr-bench {} (mpr {}), {ranks} ranks",
        plan.bench.name(),
        env!("CARGO_PKG_VERSION")
    );
    if plan.value {
        println!(
            "# values: a String and a Vec<f64> of Size / 8 elements, send_value and recv_value"
        );
    }
    if plan.bench.is_bandwidth() {
        println!(
            "# {:<10} {:>18} {:>12} {:>12}",
            "Size", "Bandwidth (MB/s)", "p50 (MB/s)", "p99 (MB/s)"
        );
    } else {
        println!(
            "# {:<10} {:>14} {:>12} {:>12}",
            "Size", "Latency (us)", "p50 (us)", "p99 (us)"
        );
    }
}

/// Prints a bandwidth row: `bytes` moved per timed unit (window) of `r`. The p50 and p99
/// columns are the bandwidth of the median and of the 99th-percentile (slow) window.
pub fn bandwidth_row(plan: &Plan, r: &Row, bytes: usize) {
    let mbps = |us: f64| if us > 0.0 { bytes as f64 / us } else { 0.0 }; // bytes/us = MB/s
    let (avg, p50, p99) = (mbps(r.avg_us), mbps(r.p50_us), mbps(r.p99_us));
    let p = Point {
        bench: plan.bench.name().into(),
        size: r.size,
        iterations: r.iters,
        window: Some(plan.window_for(r.size)),
        mb_per_s: Some(round(avg, 2)),
        p50_mb_per_s: Some(round(p50, 2)),
        p99_mb_per_s: Some(round(p99, 2)),
        latency_us: None,
        min_us: None,
        p50_us: None,
        p99_us: None,
        max_us: None,
    };
    let table = format!("{:<12} {avg:>18.2} {p50:>12.2} {p99:>12.2}", r.size);
    emit(plan, p, table);
}

/// Prints one row.
pub fn row(plan: &Plan, r: &Row) {
    let p = Point {
        bench: plan.bench.name().into(),
        size: r.size,
        iterations: r.iters,
        window: None,
        mb_per_s: None,
        p50_mb_per_s: None,
        p99_mb_per_s: None,
        latency_us: Some(round(r.avg_us, 3)),
        min_us: Some(round(r.min_us, 3)),
        p50_us: Some(round(r.p50_us, 3)),
        p99_us: Some(round(r.p99_us, 3)),
        max_us: Some(round(r.max_us, 3)),
    };
    let table = format!(
        "{:<12} {:>14.2} {:>12.2} {:>12.2}",
        r.size, r.avg_us, r.p50_us, r.p99_us
    );
    emit(plan, p, table);
}
