//! Output in the shape of the OSU Micro-Benchmarks: `#` header lines, then one row per size;
//! or, with `--json`, one JSON object per size.

use crate::args::Plan;
use crate::stats::Row;

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

/// Prints the header (table mode only).
pub fn header(plan: &Plan, ranks: usize) {
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
    if plan.json {
        println!(
            "{{\"bench\":\"{}\",\"size\":{},\"iterations\":{},\"window\":{},\"mb_per_s\":{:.2},\"p50_mb_per_s\":{:.2},\"p99_mb_per_s\":{:.2}}}",
            plan.bench.name(),
            r.size,
            r.iters,
            plan.window_for(r.size),
            mbps(r.avg_us),
            mbps(r.p50_us),
            mbps(r.p99_us)
        );
    } else {
        println!(
            "{:<12} {:>18.2} {:>12.2} {:>12.2}",
            r.size,
            mbps(r.avg_us),
            mbps(r.p50_us),
            mbps(r.p99_us)
        );
    }
}

/// Prints one row.
pub fn row(plan: &Plan, r: &Row) {
    if plan.json {
        println!(
            "{{\"bench\":\"{}\",\"size\":{},\"iterations\":{},\"latency_us\":{:.3},\"min_us\":{:.3},\"p50_us\":{:.3},\"p99_us\":{:.3},\"max_us\":{:.3}}}",
            plan.bench.name(),
            r.size,
            r.iters,
            r.avg_us,
            r.min_us,
            r.p50_us,
            r.p99_us,
            r.max_us
        );
    } else {
        println!(
            "{:<12} {:>14.2} {:>12.2} {:>12.2}",
            r.size, r.avg_us, r.p50_us, r.p99_us
        );
    }
}
