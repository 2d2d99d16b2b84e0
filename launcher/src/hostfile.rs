//! Hostfiles and `--host` lists, in both common formats:
//!
//! ```text
//! # Open MPI style           # MPICH style
//! node1 slots=4              node1:4
//! node2 slots=2 max_slots=4  node2
//! ```
//!
//! A host without a count gets one slot per core of this machine. A host listed twice adds up.

use crate::error::LaunchError;

/// One host and how many ranks it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSlots {
    pub name: String,
    pub slots: usize,
    /// Hard limit, even with --oversubscribe.
    pub max_slots: Option<usize>,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Parses one entry (`host`, `host:N`, `host slots=N max_slots=M`); `Err` is the reason.
fn parse_entry(text: &str) -> Result<HostSlots, String> {
    let mut words = text.split_whitespace();
    let first = words.next().ok_or("empty host entry")?;
    let (name, mut slots) = match first.rsplit_once(':') {
        // `host:N`, but not a bare IPv6 address.
        Some((h, n)) if !h.contains(':') || h.starts_with('[') => {
            let n: usize = n
                .parse()
                .map_err(|_| format!("{first:?}: the count after ':' must be a whole number"))?;
            (
                h.trim_matches(|c| c == '[' || c == ']').to_string(),
                Some(n),
            )
        }
        _ => (first.to_string(), None),
    };
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\'' || c == '"')
    {
        return Err(format!("{name:?} is not a host name"));
    }
    let mut max_slots = None;
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("unexpected {w:?} (expected slots=N or max_slots=N)"))?;
        let field = match k {
            "slots" | "cpu" => &mut slots,
            "max_slots" | "max-slots" => &mut max_slots,
            _ => {
                return Err(format!(
                    "unknown attribute {k:?} (expected slots or max_slots)"
                ))
            }
        };
        *field = Some(
            v.parse()
                .map_err(|_| format!("{k}={v:?}: not a whole number"))?,
        );
    }
    let slots = slots.unwrap_or_else(cores);
    if slots == 0 {
        return Err(format!("host {name} has 0 slots"));
    }
    if let Some(m) = max_slots {
        if m < slots {
            return Err(format!(
                "host {name}: max_slots={m} is less than slots={slots}"
            ));
        }
    }
    Ok(HostSlots {
        name,
        slots,
        max_slots,
    })
}

fn add(hosts: &mut Vec<HostSlots>, h: HostSlots) {
    match hosts.iter_mut().find(|x| x.name == h.name) {
        Some(x) => {
            x.slots += h.slots;
            x.max_slots = match (x.max_slots, h.max_slots) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
        None => hosts.push(h),
    }
}

/// Parses a hostfile's text.
pub fn parse(path: &str, text: &str) -> Result<Vec<HostSlots>, LaunchError> {
    let mut hosts = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let h = parse_entry(line).map_err(|what| LaunchError::Hostfile {
            path: path.into(),
            line: i + 1,
            what,
        })?;
        add(&mut hosts, h);
    }
    if hosts.is_empty() {
        return Err(LaunchError::Hostfile {
            path: path.into(),
            line: 0,
            what: "no hosts in the file".into(),
        });
    }
    Ok(hosts)
}

/// The largest hostfile read: far more than any machine list (a million hosts of 16 bytes), and
/// a bound for a path that is not a file of hosts at all (`/dev/zero`, a log).
pub const MAX_BYTES: u64 = 16 << 20;
/// The longest line of a hostfile.
pub const MAX_LINE: usize = 4096;

/// Reads a file of hosts (a hostfile, a batch system's node file) whole, refusing one larger
/// than [`MAX_BYTES`], a line longer than [`MAX_LINE`] or text that is not UTF-8, so that a wrong
/// path is a one-line error instead of mprun reading without end. `label` (such as
/// `PBS_NODEFILE`) starts every message.
pub fn read_capped(path: &std::path::Path, label: &str) -> Result<String, LaunchError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let fail = |line: usize, why: String| LaunchError::Hostfile {
        path: shown.clone(),
        line,
        what: format!("{label}{why}"),
    };
    let file = std::fs::File::open(path).map_err(|e| fail(0, e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(0, e.to_string()))?;
    if bytes.len() as u64 > MAX_BYTES {
        let mib = MAX_BYTES >> 20;
        return Err(fail(
            0,
            format!("larger than {mib} MiB (not a list of hosts?)"),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        fail(line, "not UTF-8 text".into())
    })?;
    if let Some(i) = text.lines().position(|l| l.len() > MAX_LINE) {
        return Err(fail(i + 1, format!("line longer than {MAX_LINE} bytes")));
    }
    Ok(text)
}

/// Reads and parses a hostfile.
pub fn load(path: &std::path::Path) -> Result<Vec<HostSlots>, LaunchError> {
    let text = read_capped(path, "")?;
    parse(&path.display().to_string(), &text)
}

/// Parses `--host a:2,b,c:4`.
pub fn parse_list(list: &str) -> Result<Vec<HostSlots>, LaunchError> {
    let mut hosts = Vec::new();
    for item in list.split(',') {
        let h = parse_entry(item.trim())
            .map_err(|e| LaunchError::Usage(format!("--host {list:?}: {e}")))?;
        add(&mut hosts, h);
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_comments_and_defaults() {
        let text = "# cluster\nnode1 slots=4\nnode2:2   # two\n\nnode3 slots=1 max_slots=2\nnode4\nnode1:1\n";
        let h = parse("f", text).unwrap();
        assert_eq!(h.len(), 4);
        assert_eq!((h[0].name.as_str(), h[0].slots), ("node1", 5));
        assert_eq!(h[1].slots, 2);
        assert_eq!(h[2].max_slots, Some(2));
        assert_eq!(h[3].slots, cores());
        let l = parse_list("a:2,b").unwrap();
        assert_eq!(l[0].slots, 2);
        assert_eq!(l[1].name, "b");
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, needle) in [
            ("ok:1\nbad:x\n", 2, "whole number"),
            ("a slots=2 color=red", 1, "unknown attribute"),
            ("a slots=0", 1, "0 slots"),
            ("\n\na slots=3 max_slots=2", 3, "max_slots"),
            ("a slotz", 1, "expected slots"),
        ] {
            match parse("hf", text) {
                Err(LaunchError::Hostfile { line: l, what, .. }) => {
                    assert_eq!(l, line, "{text:?}");
                    assert!(what.contains(needle), "{what}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(parse("hf", "# nothing\n").is_err());
    }
}
