//! The job as data, before any process starts: which rank runs on which host, and what each
//! rank's environment says. `mprun -v` prints it.

use std::fmt;

use crate::cli::MapBy;
use crate::error::LaunchError;
use crate::hostfile::HostSlots;

/// Where one rank runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub rank: usize,
    /// Index into [`Plan::hosts`].
    pub host: usize,
    pub local_rank: usize,
    pub local_size: usize,
}

/// Every rank's placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub hosts: Vec<String>,
    pub ranks: Vec<Placement>,
}

/// Places `np` ranks on `hosts`. Without `oversubscribe`, more ranks than slots is an error;
/// `max_slots` is a hard limit either way.
pub fn build(
    np: usize,
    hosts: &[HostSlots],
    map_by: MapBy,
    oversubscribe: bool,
) -> Result<Plan, LaunchError> {
    let total: usize = hosts.iter().map(|h| h.slots).sum();
    if np > total && !oversubscribe {
        return Err(LaunchError::Plan(format!(
            "{np} ranks do not fit the {total} slots of the hosts given (use --oversubscribe to allow it)"
        )));
    }
    let limit = |h: &HostSlots| h.max_slots.unwrap_or(usize::MAX);
    let cap: usize = hosts
        .iter()
        .map(&limit)
        .fold(0usize, |a, b| a.saturating_add(b));
    if np > cap {
        return Err(LaunchError::Plan(format!(
            "{np} ranks exceed the hosts' max_slots ({cap} in all)"
        )));
    }
    let mut count = vec![0usize; hosts.len()];
    let mut host_of = Vec::with_capacity(np);
    // First pass: within slots. Second: beyond slots (oversubscribed), within max_slots.
    for pass in 0..2 {
        let room = |i: usize, count: &[usize]| {
            if pass == 0 {
                count[i] < hosts[i].slots
            } else {
                count[i] < limit(&hosts[i])
            }
        };
        match (map_by, pass) {
            (MapBy::Slot, 0) => {
                for i in 0..hosts.len() {
                    while host_of.len() < np && room(i, &count) {
                        host_of.push(i);
                        count[i] += 1;
                    }
                }
            }
            _ => {
                while host_of.len() < np && (0..hosts.len()).any(|i| room(i, &count)) {
                    for i in 0..hosts.len() {
                        if host_of.len() < np && room(i, &count) {
                            host_of.push(i);
                            count[i] += 1;
                        }
                    }
                }
            }
        }
    }
    let mut next_local = vec![0usize; hosts.len()];
    let ranks = host_of
        .iter()
        .enumerate()
        .map(|(rank, &h)| {
            let local_rank = next_local[h];
            next_local[h] += 1;
            Placement {
                rank,
                host: h,
                local_rank,
                local_size: count[h],
            }
        })
        .collect();
    Ok(Plan {
        hosts: hosts.iter().map(|h| h.name.clone()).collect(),
        ranks,
    })
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, h) in self.hosts.iter().enumerate() {
            let on: Vec<String> = self
                .ranks
                .iter()
                .filter(|p| p.host == i)
                .map(|p| p.rank.to_string())
                .collect();
            writeln!(
                f,
                "  {h}: ranks {}",
                if on.is_empty() {
                    "(none)".into()
                } else {
                    on.join(",")
                }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(spec: &[(&str, usize)]) -> Vec<HostSlots> {
        spec.iter()
            .map(|&(n, s)| HostSlots {
                name: n.into(),
                slots: s,
                max_slots: None,
            })
            .collect()
    }

    fn hosts_of(p: &Plan) -> Vec<usize> {
        p.ranks.iter().map(|r| r.host).collect()
    }

    #[test]
    fn by_slot_and_by_node() {
        let h = hosts(&[("a", 2), ("b", 2)]);
        assert_eq!(
            hosts_of(&build(4, &h, MapBy::Slot, false).unwrap()),
            vec![0, 0, 1, 1]
        );
        assert_eq!(
            hosts_of(&build(4, &h, MapBy::Node, false).unwrap()),
            vec![0, 1, 0, 1]
        );
        let p = build(3, &h, MapBy::Slot, false).unwrap();
        assert_eq!(
            p.ranks[2],
            Placement {
                rank: 2,
                host: 1,
                local_rank: 0,
                local_size: 1
            }
        );
        assert_eq!(p.ranks[1].local_size, 2);
    }

    #[test]
    fn oversubscription() {
        let h = hosts(&[("a", 1), ("b", 1)]);
        assert!(matches!(
            build(3, &h, MapBy::Slot, false),
            Err(LaunchError::Plan(_))
        ));
        let p = build(5, &h, MapBy::Slot, true).unwrap();
        assert_eq!(hosts_of(&p), vec![0, 1, 0, 1, 0]);
        let mut capped = hosts(&[("a", 1), ("b", 1)]);
        capped[0].max_slots = Some(1);
        assert_eq!(
            hosts_of(&build(3, &capped, MapBy::Slot, true).unwrap()),
            vec![0, 1, 1]
        );
        capped[1].max_slots = Some(1);
        assert!(build(3, &capped, MapBy::Slot, true).is_err());
    }
}
