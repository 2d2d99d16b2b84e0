//! Hosts from a batch system's allocation, when no `--hostfile` or `--host` is given.
//!
//! - Slurm: `SLURM_JOB_NODELIST` (a compressed host list: `node[01-03,07],gpu1`) and
//!   `SLURM_TASKS_PER_NODE` (slots per host, compressed too: `2(x3),1`). Helpers are then
//!   started with `srun` (one task on one node per host), which is how jobs reach the nodes of
//!   an allocation without ssh.
//! - PBS/Torque: `PBS_NODEFILE`, a file with one line per slot (a host listed N times has N
//!   slots), read as a hostfile; hosts are reached with the launch agent (ssh by default).

use crate::error::LaunchError;
use crate::hostfile::HostSlots;

/// Where the hosts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Slurm,
    Pbs,
}

/// The allocation's hosts, if mprun runs inside one.
pub fn from_env(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<(Source, Vec<HostSlots>)>, LaunchError> {
    if let Some(list) = get("SLURM_JOB_NODELIST").filter(|s| !s.is_empty()) {
        let names = expand_hostlist(&list).map_err(|e| bad("SLURM_JOB_NODELIST", &list, &e))?;
        let slots = match get("SLURM_TASKS_PER_NODE").filter(|s| !s.is_empty()) {
            Some(t) => expand_counts(&t).map_err(|e| bad("SLURM_TASKS_PER_NODE", &t, &e))?,
            None => vec![1; names.len()],
        };
        if slots.len() != names.len() {
            return Err(LaunchError::Usage(format!(
                "environment: SLURM_TASKS_PER_NODE gives {} counts for the {} hosts of SLURM_JOB_NODELIST",
                slots.len(),
                names.len()
            )));
        }
        let hosts = names
            .into_iter()
            .zip(slots)
            .map(|(name, slots)| HostSlots {
                name,
                slots,
                max_slots: None,
            })
            .collect();
        return Ok(Some((Source::Slurm, hosts)));
    }
    if let Some(path) = get("PBS_NODEFILE").filter(|s| !s.is_empty()) {
        let text = crate::hostfile::read_capped(path.as_ref(), "PBS_NODEFILE: ")?;
        let mut hosts: Vec<HostSlots> = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match hosts.iter_mut().find(|h| h.name == line) {
                Some(h) => h.slots += 1,
                None => hosts.push(HostSlots {
                    name: line.to_string(),
                    slots: 1,
                    max_slots: None,
                }),
            }
        }
        if hosts.is_empty() {
            return Err(LaunchError::Hostfile {
                path,
                line: 0,
                what: "PBS_NODEFILE lists no host".into(),
            });
        }
        return Ok(Some((Source::Pbs, hosts)));
    }
    Ok(None)
}

fn bad(var: &str, value: &str, why: &str) -> LaunchError {
    LaunchError::Usage(format!("environment: {var}={value:?}: {why}"))
}

/// Expands a Slurm host list: `a,b[1-3,7],c[08-10]x` -> a, b1, b2, b3, b7, c08x, c09x, c10x.
pub fn expand_hostlist(list: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in split_top(list)? {
        expand_item(&item, &mut out)?;
    }
    if out.is_empty() {
        return Err("no host".into());
    }
    if out.len() > 1 << 20 {
        return Err("more than a million hosts".into());
    }
    Ok(out)
}

/// Splits at commas outside brackets.
fn split_top(list: &str) -> Result<Vec<String>, String> {
    let (mut items, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for c in list.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth == 0 => return Err("']' without '['".into()),
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if depth != 0 {
        return Err("'[' without ']'".into());
    }
    items.push(cur);
    if items.iter().any(|i| i.trim().is_empty()) {
        return Err("an empty host name".into());
    }
    Ok(items.into_iter().map(|s| s.trim().to_string()).collect())
}

/// Expands the first bracket group of `item`, recursively for the rest.
fn expand_item(item: &str, out: &mut Vec<String>) -> Result<(), String> {
    let Some(open) = item.find('[') else {
        out.push(item.to_string());
        return Ok(());
    };
    let close = open + item[open..].find(']').ok_or("'[' without ']'")?;
    let (prefix, ranges, suffix) = (&item[..open], &item[open + 1..close], &item[close + 1..]);
    for r in ranges.split(',') {
        let (lo, hi) = r.split_once('-').unwrap_or((r, r));
        let parse = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{s:?} in [{ranges}] is not a number"))
        };
        let (a, b) = (parse(lo)?, parse(hi)?);
        if a > b || b - a > 1 << 20 {
            return Err(format!("bad range {r:?}"));
        }
        let width = lo.len();
        for n in a..=b {
            expand_item(&format!("{prefix}{n:0width$}{suffix}"), out)?;
            if out.len() > 1 << 20 {
                return Err("more than a million hosts".into());
            }
        }
    }
    Ok(())
}

/// Expands `2(x3),1` -> 2, 2, 2, 1.
pub fn expand_counts(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (n, times) = match part.split_once("(x") {
            Some((n, rest)) => {
                let t = rest
                    .strip_suffix(')')
                    .ok_or_else(|| format!("{part:?} lacks ')'"))?;
                (
                    n,
                    t.parse::<usize>()
                        .map_err(|_| format!("{part:?}: bad repeat"))?,
                )
            }
            None => (part, 1),
        };
        let n = n
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("{part:?} is not a count"))?;
        if times > 1 << 20 || out.len() + times > 1 << 20 {
            return Err("more than a million hosts".into());
        }
        out.extend(std::iter::repeat_n(n, times));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_host_lists_and_counts_expand() {
        assert_eq!(
            expand_hostlist("node[01-03,07],gpu1,r[1-2]n[1-2]").unwrap(),
            ["node01", "node02", "node03", "node07", "gpu1", "r1n1", "r1n2", "r2n1", "r2n2"]
        );
        assert_eq!(expand_hostlist("mprt-h[1-4]").unwrap().len(), 4);
        assert_eq!(expand_hostlist("c[8-10]x").unwrap(), ["c8x", "c9x", "c10x"]);
        for bad in [
            "",
            "a,,b",
            "n[1-",
            "n]1",
            "n[3-1]",
            "n[a-b]",
            "n[1-99999999]",
        ] {
            assert!(expand_hostlist(bad).is_err(), "{bad:?}");
        }
        assert_eq!(expand_counts("2(x3),1").unwrap(), [2, 2, 2, 1]);
        assert_eq!(expand_counts("4").unwrap(), [4]);
        for bad in ["", "x", "2(x", "2(xz)", "1(x99999999)"] {
            assert!(expand_counts(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn allocations_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let (src, hosts) = from_env(env(&[
            ("SLURM_JOB_NODELIST", "h[1-3]"),
            ("SLURM_TASKS_PER_NODE", "2(x2),1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(src, Source::Slurm);
        let got: Vec<(String, usize)> = hosts.into_iter().map(|h| (h.name, h.slots)).collect();
        assert_eq!(got, [("h1".into(), 2), ("h2".into(), 2), ("h3".into(), 1)]);
        let mismatch = from_env(env(&[
            ("SLURM_JOB_NODELIST", "h[1-3]"),
            ("SLURM_TASKS_PER_NODE", "2"),
        ]));
        assert!(mismatch
            .unwrap_err()
            .to_string()
            .contains("SLURM_TASKS_PER_NODE"));
        assert!(from_env(env(&[])).unwrap().is_none());

        let f = std::env::temp_dir().join(format!("mpr-pbs-{}", std::process::id()));
        std::fs::write(&f, "a\na\nb\n\na\n").unwrap();
        let path: &'static str = Box::leak(f.to_string_lossy().into_owned().into_boxed_str());
        let pairs: &'static [(&'static str, &'static str)] =
            Box::leak(vec![("PBS_NODEFILE", path)].into_boxed_slice());
        let (src, hosts) = from_env(env(pairs)).unwrap().unwrap();
        assert_eq!(src, Source::Pbs);
        let got: Vec<(String, usize)> = hosts.into_iter().map(|h| (h.name, h.slots)).collect();
        assert_eq!(got, [("a".into(), 3), ("b".into(), 1)]);
        std::fs::remove_file(&f).unwrap();
    }
}
