//! The example programs run as real jobs: `pi` prints pi to 10 digits, `heat` and `heat3d`
//! agree with their serial runs, `ring` passes its token. Each job has a hard time limit.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// target/<profile>, with `mprun` and the examples freshly built (once per test process).
fn bin_dir() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .to_path_buf();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "mprun",
            "-p",
            "mpr-examples",
            "--bins",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().expect("run cargo").success(),
            "building mprun and the examples failed"
        );
    });
    dir
}

/// `mprun -n N EXAMPLE ARGS...`: its stdout, after asserting success within 60 s.
fn job(n: usize, example: &str, args: &[&str]) -> String {
    let dir = bin_dir();
    let mut child = Command::new(dir.join("mprun"))
        .arg("-n")
        .arg(n.to_string())
        .arg(dir.join(example))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mprun");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{example} on {n} ranks did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{example} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn pi_to_ten_digits() {
    for n in [1, 4] {
        let out = job(n, "pi", &["10000000"]);
        assert!(out.contains("pi = 3.1415926536"), "{out}");
    }
}

#[test]
fn heat_matches_its_serial_run() {
    for (n, grid) in [
        (1, ["40", "30", "50"]),
        (3, ["50", "7", "30"]),
        (4, ["64", "48", "100"]),
        (5, ["33", "64", "80"]),
    ] {
        let out = job(n, "heat", &[grid[0], grid[1], grid[2], "--check"]);
        assert!(out.contains("serial run agrees"), "{out}");
    }
}

#[test]
fn heat3d_matches_its_serial_run() {
    for (n, args) in [
        (1, &["20", "18", "17", "30"][..]),
        (2, &["9", "3", "40", "20"]),
        (4, &["30", "31", "29", "20"]),
        (6, &["3", "2", "5", "10", "--per-rank"]),
        (8, &["24", "24", "24", "20"]),
    ] {
        let mut a = args.to_vec();
        a.push("--check");
        let out = job(n, "heat3d", &a);
        assert!(out.contains("serial run agrees"), "{out}");
    }
}

#[test]
fn ring_passes_the_token() {
    let out = job(16, "ring", &["5"]);
    assert!(out.contains("ring of 16 ranks: token 120"), "{out}");
}
