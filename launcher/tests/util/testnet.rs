//! Test hosts made by `testnet` (network namespaces on this machine): finding the tool (beside
//! the checkout, at `../shared/tools/testnet`, or where `MPR_TESTNET` says), whether this machine can run it (root, iproute2), and bringing a network down when a
//! test ends, however it ends. testnet allows one network per machine, so the tests that use it
//! each run in one test function of their own binary (cargo runs test binaries one at a time).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::run_cmd;

/// The testnet tool: where `MPR_TESTNET` says, else `../shared/tools/testnet` beside the
/// checkout; `None` when it is in neither place.
pub fn testnet() -> Option<PathBuf> {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = [
        std::env::var_os("MPR_TESTNET").map(PathBuf::from),
        Some(checkout.join("../shared/tools/testnet")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// The tool, when this machine can run it (root and iproute2).
pub fn usable() -> Option<PathBuf> {
    let t = testnet()?;
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    });
    let ip = std::process::Command::new("ip").arg("-V").output().is_ok();
    (root && ip).then_some(t)
}

/// `testnet ARGS...`, which must succeed.
pub fn tn(t: &Path, args: &[&str]) -> String {
    let out = run_cmd(t.to_path_buf(), args, &[], None, Duration::from_secs(300));
    assert_eq!(out.code, Some(0), "testnet {args:?}: {}", out.stderr);
    out.stdout
}

/// A network that is brought down when dropped.
pub struct Net(pub PathBuf);

impl Drop for Net {
    fn drop(&mut self) {
        let _ = run_cmd(
            self.0.clone(),
            &["down"],
            &[],
            None,
            Duration::from_secs(300),
        );
    }
}

/// A fresh network for a test: none left from before, and this one brought down when the
/// returned guard drops. `None` (the test says it is skipped) where testnet cannot run.
pub fn fresh() -> Option<(PathBuf, Net)> {
    let Some(t) = usable() else {
        eprintln!(
            "skipped: needs root, iproute2 and testnet (../shared/tools/testnet or MPR_TESTNET)"
        );
        return None;
    };
    tn(&t, &["down"]);
    Some((t.clone(), Net(t)))
}
