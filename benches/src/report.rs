//! Output in the shape of the OSU Micro-Benchmarks: `#` header lines, then one row per size;
//! or, with `--json`, one JSON object per size.

use crate::args::Plan;
use crate::stats::Row;

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
    println!(
        "# {:<10} {:>14} {:>12} {:>12}",
        "Size", "Latency (us)", "p50 (us)", "p99 (us)"
    );
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
