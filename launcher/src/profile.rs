//! `mprun --profile`: where each rank's time in mpr went, printed when the job ends, in the
//! spirit of mpiP. Each rank counts its own calls (the `mpr` runtime, with `MPR_PROFILE=1`,
//! which mprun sets) and tells the rendezvous service at its finalize (`PROFILE` and `RAN`
//! lines); this file only adds them up. A rank that ended without finalizing has no profile,
//! and the table says how many did.

use std::fmt::Write;

/// One operation of one rank: calls, bytes of the callers' buffers, nanoseconds in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpLine {
    pub op: String,
    pub calls: u64,
    pub bytes: u64,
    pub ns: u64,
}

/// What one rank said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RankProfile {
    pub ops: Vec<OpLine>,
    /// Its time from `mpr::init` to its finalize (`None`: it did not finalize).
    pub ran_ns: Option<u64>,
}

/// The table, for ranks `profiles` (by rank) on hosts `hosts` (by rank).
pub fn table(profiles: &[RankProfile], hosts: &[String]) -> String {
    let told: Vec<usize> = (0..profiles.len())
        .filter(|&r| profiles[r].ran_ns.is_some())
        .collect();
    let mut out = String::new();
    if told.is_empty() {
        let _ = writeln!(out, "mprun --profile: no rank finalized, so no profile");
        return out;
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    let ran: u64 = told.iter().filter_map(|&r| profiles[r].ran_ns).sum();
    let in_mpr = |r: usize| profiles[r].ops.iter().map(|o| o.ns).sum::<u64>();
    let all_mpr: u64 = told.iter().map(|&r| in_mpr(r)).sum();
    let _ = writeln!(
        out,
        "mprun --profile: {} of {} ranks finalized; {:.1} ms in mpr calls of {:.1} ms of their time ({:.1} %)",
        told.len(),
        profiles.len(),
        ms(all_mpr),
        ms(ran),
        percent(all_mpr, ran)
    );
    // Operations by their total time, largest first.
    let mut names: Vec<&str> = Vec::new();
    for &r in &told {
        for o in &profiles[r].ops {
            if !names.contains(&o.op.as_str()) {
                names.push(&o.op);
            }
        }
    }
    fn of<'a>(p: &'a [RankProfile], r: usize, name: &'a str) -> impl Iterator<Item = &'a OpLine> {
        p[r].ops.iter().filter(move |o| o.op == name)
    }
    let total = |name: &str| {
        told.iter()
            .flat_map(|&r| of(profiles, r, name))
            .map(|o| o.ns)
            .sum::<u64>()
    };
    names.sort_by_key(|n| std::cmp::Reverse(total(n)));
    let _ = writeln!(
        out,
        "{:<24} {:>10} {:>14} {:>12} {:>12} {:>12} {:>8}",
        "operation", "calls", "bytes", "min ms", "median ms", "max ms", "share"
    );
    for name in names {
        let calls: u64 = told
            .iter()
            .flat_map(|&r| of(profiles, r, name))
            .map(|o| o.calls)
            .sum();
        let bytes: u64 = told
            .iter()
            .flat_map(|&r| of(profiles, r, name))
            .map(|o| o.bytes)
            .sum();
        let mut per: Vec<u64> = told
            .iter()
            .map(|&r| of(profiles, r, name).map(|o| o.ns).sum())
            .collect();
        per.sort_unstable();
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>14} {:>12.3} {:>12.3} {:>12.3} {:>7.1}%",
            name,
            calls,
            bytes,
            ms(per[0]),
            ms(per[per.len() / 2]),
            ms(per[per.len() - 1]),
            percent(total(name), ran)
        );
    }
    // The ranks that spent the most time in mpr calls (waiting, mostly).
    let mut longest: Vec<usize> = told.clone();
    longest.sort_by_key(|&r| std::cmp::Reverse(in_mpr(r)));
    let named: Vec<String> = longest
        .iter()
        .take(3)
        .map(|&r| {
            let host = hosts.get(r).map(|h| format!(" on {h}")).unwrap_or_default();
            format!(
                "rank {r}{host} {:.1} ms ({:.1} % of its time)",
                ms(in_mpr(r)),
                percent(in_mpr(r), profiles[r].ran_ns.unwrap_or(0))
            )
        })
        .collect();
    let _ = writeln!(out, "longest in mpr calls: {}", named.join(", "));
    out
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op: &str, calls: u64, bytes: u64, ns: u64) -> OpLine {
        OpLine {
            op: op.into(),
            calls,
            bytes,
            ns,
        }
    }

    #[test]
    fn ranks_add_up_by_operation() {
        let p = [
            RankProfile {
                ops: vec![
                    op("send", 3, 300, 1_000_000),
                    op("barrier", 2, 0, 4_000_000),
                ],
                ran_ns: Some(10_000_000),
            },
            RankProfile {
                ops: vec![
                    op("recv", 3, 300, 6_000_000),
                    op("barrier", 2, 0, 2_000_000),
                ],
                ran_ns: Some(10_000_000),
            },
            RankProfile::default(),
        ];
        let t = table(&p, &["a".into(), "b".into(), "c".into()]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("2 of 3 ranks finalized"), "{t}");
        // Largest total first: barrier (6 ms), recv (6 ms, after: stable order), send.
        let row = |name: &str| {
            lines
                .iter()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("no {name} in {t}"))
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(row("barrier")[1..4], ["4", "0", "2.000"]);
        assert_eq!(row("barrier")[5], "4.000");
        assert_eq!(row("send")[1..3], ["3", "300"]);
        assert_eq!(row("recv")[6], "30.0%");
        assert!(
            t.contains("longest in mpr calls: rank 1 on b 8.0 ms (80.0 % of its time)"),
            "{t}"
        );
        assert!(table(&p[2..], &[]).contains("no rank finalized"));
    }
}
