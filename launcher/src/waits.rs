//! The `--timeout` report: what each rank waits for, who waits on whom, and the cycle if there
//! is one (the usual deadlock: two ranks each in a blocking receive from the other).

use crate::rendezvous::Wait;

/// The report's lines (without the `mprun: ` prefix): one per rank, then the cycle, if any.
/// `reports[r]` is rank r's answer (`None`: it did not answer); `hosts[r]` its host.
pub fn summarize(reports: &[Option<Vec<Wait>>], hosts: &[String]) -> Vec<String> {
    let mut lines = vec!["what each rank waits for:".to_string()];
    for (r, rep) in reports.iter().enumerate() {
        let host = hosts.get(r).map_or("?", String::as_str);
        let what = match rep {
            None => "no answer (computing outside mpr calls, or gone)".to_string(),
            Some(w) if w.is_empty() => "nothing (computing, or outside mpr calls)".to_string(),
            Some(w) => w
                .iter()
                .map(|(_, what)| what.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        };
        lines.push(format!("  rank {r} on {host}: {what}"));
    }
    if let Some(cycle) = find_cycle(reports) {
        let path: Vec<String> = cycle.iter().map(usize::to_string).collect();
        let why: Vec<String> = cycle
            .windows(2)
            .filter_map(|e| {
                let (a, b) = (e[0], e[1]);
                let w = reports
                    .get(a)?
                    .as_ref()?
                    .iter()
                    .find(|(p, _)| *p == Some(b))?;
                Some(format!("rank {a}: {}", w.1))
            })
            .collect();
        lines.push(format!(
            "deadlock: {} ({})",
            path.join(" -> "),
            why.join("; ")
        ));
    }
    lines
}

/// A cycle in the waits-for graph (rank -> the rank it waits on), as a path that ends where it
/// starts, if there is one: the first found from the lowest rank.
pub fn find_cycle(reports: &[Option<Vec<Wait>>]) -> Option<Vec<usize>> {
    let n = reports.len();
    let edges = |r: usize| -> Vec<usize> {
        let mut e: Vec<usize> = reports
            .get(r)
            .and_then(Option::as_ref)
            .map(|w| {
                w.iter()
                    .filter_map(|(p, _)| *p)
                    .filter(|&p| p < n)
                    .collect()
            })
            .unwrap_or_default();
        e.dedup();
        e
    };
    // 0: unvisited, 1: on the current path, 2: done.
    let mut state = vec![0u8; n];
    let mut path = Vec::new();
    fn dfs(
        r: usize,
        edges: &dyn Fn(usize) -> Vec<usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[r] = 1;
        path.push(r);
        for next in edges(r) {
            if state[next] == 1 {
                let from = path.iter().position(|&p| p == next)?;
                let mut cycle = path[from..].to_vec();
                cycle.push(next);
                return Some(cycle);
            }
            if state[next] == 0 {
                if let Some(c) = dfs(next, edges, state, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        state[r] = 2;
        None
    }
    (0..n).find_map(|r| {
        if state[r] == 0 {
            dfs(r, &edges, &mut state, &mut path)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(peer: Option<usize>, what: &str) -> Wait {
        (peer, what.to_string())
    }

    #[test]
    fn cycles_are_found_and_named() {
        let two = vec![
            Some(vec![w(Some(1), "receive from rank 1, tag 5")]),
            Some(vec![w(Some(0), "receive from rank 0, tag 5")]),
        ];
        assert_eq!(find_cycle(&two), Some(vec![0, 1, 0]));
        let hosts = vec!["a".to_string(), "b".to_string()];
        let lines = summarize(&two, &hosts);
        assert_eq!(lines[1], "  rank 0 on a: receive from rank 1, tag 5");
        assert_eq!(
            lines.last().unwrap(),
            "deadlock: 0 -> 1 -> 0 (rank 0: receive from rank 1, tag 5; rank 1: receive from rank 0, tag 5)"
        );
        // A chain into a cycle further on, a rank that did not answer, one waiting for anyone.
        let chain = vec![
            Some(vec![w(Some(1), "x"), w(None, "barrier")]),
            Some(vec![w(Some(2), "y")]),
            Some(vec![w(Some(3), "z")]),
            Some(vec![w(Some(1), "v")]),
            None,
        ];
        assert_eq!(find_cycle(&chain), Some(vec![1, 2, 3, 1]));
        let lines = summarize(&chain, &[]);
        assert!(lines[1].contains("x; barrier"), "{lines:?}");
        assert!(lines[5].contains("no answer"), "{lines:?}");
        // No cycle: waits that end at a rank waiting for nothing.
        let open = vec![
            Some(vec![w(Some(1), "x")]),
            Some(vec![]),
            Some(vec![w(Some(9), "?")]),
        ];
        assert_eq!(find_cycle(&open), None);
        assert!(summarize(&open, &[])
            .iter()
            .all(|l| !l.starts_with("deadlock")));
    }
}
