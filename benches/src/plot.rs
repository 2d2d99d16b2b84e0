//! Pictures of what was measured: latency or bandwidth against message size, both axes
//! logarithmic, one curve per series at its median (p50) with a band out to the 99th
//! percentile, so that a comparison (mpr against mpr, or against a peer's figures in the same
//! JSON shape) reads at a glance. Drawn as SVG with `plotters`: `--plot FILE.svg` after a run,
//! or `mpr-bench plot A.json B.json ... -o FILE.svg` over earlier `--json` runs.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Point;

/// One curve: its label, and per size (bytes) the median and the 99th percentile.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// What the curves show (every series of a picture the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    LatencyUs,
    MegabytesPerS,
}

impl Measure {
    fn axis(self) -> &'static str {
        match self {
            Measure::LatencyUs => "latency (us), p50 with a band to p99",
            Measure::MegabytesPerS => "bandwidth (MB/s), p50 with a band to p99",
        }
    }
}

/// The series of `points` (of one benchmark or several), labelled `label` (followed by the
/// benchmark's name when they hold more than one), and what they measure. Sizes of 0 bytes
/// have no place on a log axis and are left out.
pub fn series(label: &str, points: &[Point]) -> Result<(Measure, Vec<Series>), String> {
    let mut benches: Vec<&str> = Vec::new();
    for p in points {
        if !benches.contains(&p.bench.as_str()) {
            benches.push(&p.bench);
        }
    }
    let mut measure = None;
    let mut out = Vec::new();
    for b in &benches {
        let mut s = Series {
            label: if benches.len() > 1 {
                format!("{label} {b}")
            } else {
                label.to_string()
            },
            points: Vec::new(),
        };
        for p in points.iter().filter(|p| p.bench == *b && p.size > 0) {
            let (m, mid, tail) = match (p.p50_us, p.p99_us, p.p50_mb_per_s, p.p99_mb_per_s) {
                (Some(a), Some(z), _, _) => (Measure::LatencyUs, a, z),
                (_, _, Some(a), Some(z)) => (Measure::MegabytesPerS, a, z),
                _ => return Err(format!("{label}: a point of {b} has no p50 and p99")),
            };
            if *measure.get_or_insert(m) != m {
                return Err(format!(
                    "{label}: latency and bandwidth cannot share one picture"
                ));
            }
            s.points.push((p.size as f64, mid, tail));
        }
        if !s.points.is_empty() {
            out.push(s);
        }
    }
    match measure {
        Some(m) => Ok((m, out)),
        None => Err(format!("{label}: no point to draw")),
    }
}

/// Reads the points of a `--json` run (one object per line; other lines, such as a table's
/// `#` header, are refused with their line number).
pub fn read(path: &Path) -> Result<Vec<Point>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                format!(
                    "{}, line {}: not a point of mpr-bench --json ({e})",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

/// The words of a picture: its caption, and what the axes say (`None`: message size, and the
/// series' measure).
#[derive(Debug, Clone, Default)]
pub struct Words {
    pub title: String,
    pub x: Option<String>,
    pub y: Option<String>,
}

/// Draws `series` (all of measure `m`) into the SVG file `out`.
pub fn draw(out: &Path, words: &Words, m: Measure, series: &[Series]) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", out.display());
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1) = (f64::INFINITY, 0f64);
    let (mut y0, mut y1) = (f64::INFINITY, 0f64);
    for &(x, a, z) in all() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        for y in [a, z].into_iter().filter(|&y| y > 0.0) {
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if !(x0.is_finite() && y0.is_finite()) {
        return Err(format!("cannot draw {}: no point above 0", out.display()));
    }
    // Room around the curves: a half step of two in size; in value, out to whole decades, so
    // that both ends of the value axis are labelled.
    let (x0, x1) = (x0 / 1.5, x1 * 1.5);
    let (y0, y1) = (
        10f64.powf(y0.log10().floor()),
        10f64.powf((y1 * 1.05).log10().ceil()),
    );
    let root = SVGBackend::new(out, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&words.title, ("sans-serif", 22))
        .margin(18)
        .x_label_area_size(46)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (x0..x1).log_scale().with_key_points(powers_of_four(x0, x1)),
            (y0..y1).log_scale().with_key_points(decades(y0, y1)),
        )
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc(words.x.as_deref().unwrap_or("message size (bytes)"))
        .y_desc(words.y.as_deref().unwrap_or(m.axis()))
        .label_style(("sans-serif", 14))
        .x_label_formatter(&|v| bytes(*v))
        .y_label_formatter(&|v| format!("{}", (v * 1e6).round() / 1e6))
        .draw()
        .map_err(|e| fail(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        // The band: p50 along, then p99 back.
        let band: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|&(x, a, _)| (x, a))
            .chain(s.points.iter().rev().map(|&(x, _, z)| (x, z)))
            .filter(|&(_, y)| y > 0.0)
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(
                band,
                color.mix(0.18).filled(),
            )))
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(LineSeries::new(
                s.points
                    .iter()
                    .filter(|p| p.1 > 0.0)
                    .map(|&(x, a, _)| (x, a)),
                color.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?
            .label(s.label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}

/// The sizes labelled on the axis: the powers of four from `lo` to `hi` (message sizes are
/// powers of two; every other one keeps the labels apart), or of two over a short range.
fn powers_of_four(lo: f64, hi: f64) -> Vec<f64> {
    let powers = |base: f64| -> Vec<f64> {
        (0..64)
            .map(|k| base.powi(k))
            .filter(|&v| v >= lo && v <= hi)
            .collect()
    };
    let fours = powers(4.0);
    if fours.len() >= 5 {
        fours
    } else {
        powers(2.0)
    }
}

/// The values labelled on the axis: 1, 2 and 5 times each power of ten from `lo` to `hi`.
fn decades(lo: f64, hi: f64) -> Vec<f64> {
    (-9..=12)
        .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
        .filter(|&v| v >= lo * 0.999 && v <= hi * 1.001)
        .collect()
}

/// A size in bytes as the axis shows it: 8, 1K, 64K, 1M.
fn bytes(v: f64) -> String {
    let v = v.round() as u64;
    match v {
        v if v >= 1 << 30 && v % (1 << 30) == 0 => format!("{}G", v >> 30),
        v if v >= 1 << 20 && v % (1 << 20) == 0 => format!("{}M", v >> 20),
        v if v >= 1 << 10 && v % (1 << 10) == 0 => format!("{}K", v >> 10),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(bench: &str, size: usize, p50: f64, p99: f64) -> Point {
        Point {
            bench: bench.into(),
            size,
            iterations: 10,
            window: None,
            mb_per_s: None,
            p50_mb_per_s: None,
            p99_mb_per_s: None,
            latency_us: Some(p50),
            min_us: Some(p50),
            p50_us: Some(p50),
            p99_us: Some(p99),
            max_us: Some(p99),
        }
    }

    #[test]
    fn points_become_one_series_per_benchmark() {
        let pts = [
            latency("latency", 0, 0.2, 0.3),
            latency("latency", 8, 0.2, 0.3),
            latency("latency", 16, 0.25, 0.4),
            latency("allreduce", 8, 1.0, 2.0),
        ];
        let (m, s) = series("run", &pts).unwrap();
        assert_eq!(m, Measure::LatencyUs);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].label, "run latency");
        assert_eq!(
            s[0].points,
            [(8.0, 0.2, 0.3), (16.0, 0.25, 0.4)],
            "size 0 left out"
        );
        let mut bw = latency("bw", 8, 1.0, 1.0);
        (bw.p50_us, bw.p99_us, bw.p50_mb_per_s, bw.p99_mb_per_s) =
            (None, None, Some(5.0), Some(4.0));
        assert!(series("mixed", &[pts[1].clone(), bw]).is_err());
        assert!(series("empty", &[]).is_err());
    }

    #[test]
    fn axis_labels_read_as_sizes() {
        assert_eq!(bytes(8.0), "8");
        assert_eq!(bytes(65536.0), "64K");
        assert_eq!(bytes(1048576.0), "1M");
        assert_eq!(bytes(3000.0), "3000");
    }
}
