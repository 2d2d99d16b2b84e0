//! `mpr-bench --plot` and `mpr-bench plot`: SVG files with one curve per series, and bad input
//! refused in one line. The runs are singletons (a collective on one rank needs no launcher);
//! every run has a hard time limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

fn bench(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mpr-bench"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpr-bench starts");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("mpr-bench {args:?} ran past {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("mpr-plot-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The curves of an SVG drawn by `plot.rs`: its 2-pixel lines (axes and grid are 1 pixel),
/// each with its number of points.
fn curves(svg: &Path) -> Vec<usize> {
    let text = std::fs::read_to_string(svg).unwrap();
    assert!(
        text.starts_with("<svg"),
        "not an SVG: {}",
        &text[..80.min(text.len())]
    );
    text.lines()
        .filter(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"2\""))
        .map(|l| {
            let points = l.split("points=\"").nth(1).unwrap();
            points.split('"').next().unwrap().split_whitespace().count()
        })
        .collect()
}

#[test]
fn a_run_draws_its_own_curve() {
    let svg = dir().join("run.svg");
    let out = bench(&[
        "allreduce",
        "-m",
        "8:1K",
        "-i",
        "20",
        "-x",
        "2",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 8 B to 1 KiB: eight sizes, one curve.
    assert_eq!(curves(&svg), [8]);
    // The table is still printed, and no progress goes to a pipe.
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        table.lines().filter(|l| !l.starts_with('#')).count(),
        8,
        "{table}"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn earlier_runs_overlay_as_one_curve_each() {
    let d = dir();
    let line = |size: usize, p50: f64| {
        format!(
            "{{\"bench\":\"latency\",\"size\":{size},\"iterations\":100,\"latency_us\":{p50},\
             \"min_us\":{p50},\"p50_us\":{p50},\"p99_us\":{},\"max_us\":{}}}\n",
            p50 * 2.0,
            p50 * 3.0
        )
    };
    let a = d.join("mpr.json");
    let b = d.join("peer.json");
    std::fs::write(
        &a,
        (0..6)
            .map(|k| line(8 << k, 0.2 + k as f64))
            .collect::<String>(),
    )
    .unwrap();
    std::fs::write(
        &b,
        (0..4)
            .map(|k| line(8 << k, 0.5 + k as f64))
            .collect::<String>(),
    )
    .unwrap();
    // A real run's JSON too, in the same picture.
    let c = d.join("real.json");
    let out = bench(&["reduce", "-m", "4:64", "-i", "10", "-x", "1", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&c, &out.stdout).unwrap();
    let svg = d.join("both.svg");
    let paths = [&a, &b, &c].map(|p| p.to_str().unwrap().to_string());
    let out = bench(&[
        "plot",
        &paths[0],
        &paths[1],
        &paths[2],
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(curves(&svg), [6, 4, 5]);
    let text = std::fs::read_to_string(&svg).unwrap();
    for label in ["mpr", "peer", "real"] {
        assert!(text.lines().any(|l| l == label), "no legend entry {label}");
    }
}

#[test]
fn bad_plots_are_one_line() {
    let d = dir();
    let table = d.join("table.json");
    std::fs::write(&table, "# mpr-bench latency\n8 0.2 0.2 0.3\n").unwrap();
    let bw = d.join("bw.json");
    std::fs::write(
        &bw,
        "{\"bench\":\"bw\",\"size\":8,\"iterations\":5,\"window\":64,\"mb_per_s\":33.3,\
         \"p50_mb_per_s\":33.69,\"p99_mb_per_s\":32.13}\n",
    )
    .unwrap();
    let lat = d.join("lat.json");
    std::fs::write(
        &lat,
        "{\"bench\":\"latency\",\"size\":8,\"iterations\":5,\"latency_us\":0.2,\"min_us\":0.2,\
         \"p50_us\":0.2,\"p99_us\":0.3,\"max_us\":0.3}\n",
    )
    .unwrap();
    let svg = d.join("bad.svg");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    for (args, needle) in [
        (
            vec!["plot".to_string(), s(&table), "-o".into(), s(&svg)],
            "line 1",
        ),
        (
            vec!["plot".into(), s(&bw), s(&lat), "-o".into(), s(&svg)],
            "cannot share",
        ),
        (
            vec!["plot".into(), s(&d.join("none.json")), "-o".into(), s(&svg)],
            "cannot read",
        ),
        (vec!["plot".into(), s(&lat)], "-o FILE.svg"),
        (
            vec![
                "plot".into(),
                s(&lat),
                "-o".into(),
                "/no/such/dir/x.svg".into(),
            ],
            "cannot draw",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = bench(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn completion_scripts_name_the_benchmarks_and_plot() {
    let out = bench(&["--completions", "bash"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for m in ["complete -F", "--message-size", "allreduce", "plot"] {
        assert!(text.contains(m), "no {m:?} in:\n{text}");
    }
    let out = bench(&["--completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("\"tcsh\" is not one of bash"), "{err}");
}
