//! `mprun --trace FILE`: the job's calls as one timeline, in the trace-event JSON format that
//! Chrome's `about:tracing` and Perfetto's trace viewer read: a track per rank, named by rank
//! and host, a slice per mpr call with its bytes (and the peer and tag of a point-to-point
//! call), and an arrow from each send to the receive that took it.
//!
//! Each rank keeps its calls (the `mpr` runtime, with `MPR_TRACE` set, which mprun sets) and
//! tells the rendezvous service at its finalize (`STARTED`, then `EVENT` lines); a rank that
//! fails but unwinds (an error returned from `main`, a panic) still finalizes on the way out
//! and so still tells. This file lays them out. Ranks' times are placed by the clock of each
//! rank's host at the rank's start: on one host that is one clock; across hosts it is as good
//! as the hosts' clock synchronisation.

use std::io::Write;
use std::path::Path;

use std::collections::HashMap;

use serde_json::{json, Value};

/// One call of one rank, as the rank told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub op: String,
    /// Nanoseconds from the rank's start.
    pub start_ns: u64,
    pub dur_ns: u64,
    pub bytes: u64,
    /// The world rank and tag of a point-to-point call.
    pub peer: Option<usize>,
    pub tag: Option<u32>,
}

/// Calls that send one message to their peer, and calls that receive one from it: a flow
/// arrow joins the k-th of one rank's sends to another with a tag to the k-th of the other's
/// receives from it with that tag (messages of a pair and tag are received in the order sent).
/// A blocking receive names the source and tag it took; an `irecv` with a wildcard names
/// none, so a rank that mixes those with named receives of the same pair and tag, or uses one
/// tag on two communicators of one pair, can get arrows to the wrong receive of the pair.
const SENDS: &[&str] = &["send", "ssend", "isend", "issend"];
const RECEIVES: &[&str] = &["recv", "irecv"];

/// What one rank told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RankTimeline {
    /// Its start by its host's clock (`None`: it told nothing).
    pub started_unix_ns: Option<u64>,
    pub calls: Vec<Call>,
}

/// The trace of ranks `timelines` (by rank) on hosts `hosts` (by rank), as trace-event JSON.
pub fn trace(timelines: &[RankTimeline], hosts: &[String]) -> Value {
    let t0 = timelines
        .iter()
        .filter_map(|t| t.started_unix_ns)
        .min()
        .unwrap_or(0);
    let ts = |t: &RankTimeline, c: &Call| {
        (t.started_unix_ns.unwrap_or(0).saturating_sub(t0) + c.start_ns) as f64 / 1e3
    };
    let mut events = Vec::new();
    for (rank, t) in timelines.iter().enumerate() {
        let host = hosts.get(rank).map_or("", String::as_str);
        let name = if host.is_empty() {
            format!("rank {rank}")
        } else {
            format!("rank {rank} ({host})")
        };
        events.push(
            json!({"ph": "M", "name": "process_name", "pid": rank, "tid": 0,
                           "args": {"name": name}}),
        );
        events.push(
            json!({"ph": "M", "name": "process_sort_index", "pid": rank, "tid": 0,
                           "args": {"sort_index": rank}}),
        );
        events.push(
            json!({"ph": "M", "name": "thread_name", "pid": rank, "tid": 0,
                           "args": {"name": "mpr calls"}}),
        );
        if t.started_unix_ns.is_none() {
            continue;
        }
        for c in &t.calls {
            let mut args = json!({"bytes": c.bytes});
            if let (Some(p), Some(tag)) = (c.peer, c.tag) {
                args["peer"] = json!(p);
                args["tag"] = json!(tag);
            }
            events.push(json!({
                "ph": "X",
                "cat": "mpr",
                "name": c.op,
                "pid": rank,
                "tid": 0,
                "ts": ts(t, c),
                "dur": c.dur_ns as f64 / 1e3,
                "args": args,
            }));
        }
    }
    // Arrows from each send to its receive.
    let mut sent: HashMap<(usize, usize, u32), Vec<f64>> = HashMap::new();
    let mut received: HashMap<(usize, usize, u32), Vec<f64>> = HashMap::new();
    for (rank, t) in timelines.iter().enumerate() {
        for c in &t.calls {
            let (Some(p), Some(tag)) = (c.peer, c.tag) else {
                continue;
            };
            if SENDS.contains(&c.op.as_str()) {
                sent.entry((rank, p, tag)).or_default().push(ts(t, c));
            } else if RECEIVES.contains(&c.op.as_str()) {
                received.entry((p, rank, tag)).or_default().push(ts(t, c));
            }
        }
    }
    let mut pairs: Vec<_> = sent.into_iter().collect();
    pairs.sort_by_key(|(k, _)| *k);
    let mut id = 0u64;
    for ((from, to, tag), sends) in pairs {
        let recvs = received.remove(&(from, to, tag)).unwrap_or_default();
        for (s, r) in sends.into_iter().zip(recvs) {
            id += 1;
            let flow = |ph: &str, pid: usize, at: f64| {
                json!({"ph": ph, "cat": "message", "name": "message", "id": id, "pid": pid,
                       "tid": 0, "ts": at, "bp": "e", "args": {"tag": tag}})
            };
            events.push(flow("s", from, s));
            events.push(flow("f", to, r));
        }
    }
    let told = timelines
        .iter()
        .filter(|t| t.started_unix_ns.is_some())
        .count();
    json!({
        "displayTimeUnit": "ns",
        "traceEvents": events,
        "otherData": {
            "ranks": timelines.len(),
            "ranks_that_told": told,
        },
    })
}

/// Writes the trace to `path`; an error in one line.
pub fn write(path: &Path, timelines: &[RankTimeline], hosts: &[String]) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("--trace {}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
    let mut out = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut out, &trace(timelines, hosts)).map_err(|e| fail(&e))?;
    out.flush().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_become_named_tracks_on_one_clock() {
        let call = |op: &str, start_ns, dur_ns| Call {
            op: op.into(),
            start_ns,
            dur_ns,
            bytes: 8,
            peer: Some(if op == "send" { 1 } else { 0 }),
            tag: Some(4),
        };
        let t = [
            RankTimeline {
                started_unix_ns: Some(5_000),
                calls: vec![call("send", 1_000, 500)],
            },
            RankTimeline {
                started_unix_ns: Some(3_000),
                calls: vec![call("recv", 2_000, 1_500)],
            },
            RankTimeline::default(),
        ];
        let v = trace(&t, &["a".into(), "b".into(), "c".into()]);
        let events = v["traceEvents"].as_array().unwrap();
        let named: Vec<&str> = events
            .iter()
            .filter(|e| e["name"] == "process_name")
            .map(|e| e["args"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(named, ["rank 0 (a)", "rank 1 (b)", "rank 2 (c)"]);
        let slices: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(slices.len(), 2);
        // Rank 1 started first: its clock is the origin.
        assert_eq!(
            (slices[0]["pid"].as_u64(), slices[0]["ts"].as_f64()),
            (Some(0), Some(3.0))
        );
        assert_eq!(
            (slices[1]["pid"].as_u64(), slices[1]["ts"].as_f64()),
            (Some(1), Some(2.0))
        );
        assert_eq!(slices[1]["dur"].as_f64(), Some(1.5));
        assert_eq!(v["otherData"]["ranks_that_told"], 2);
        // One arrow, from rank 0's send to rank 1's receive.
        let flows: Vec<&Value> = events.iter().filter(|e| e["cat"] == "message").collect();
        assert_eq!(flows.len(), 2);
        assert_eq!(
            (flows[0]["ph"].as_str(), flows[0]["pid"].as_u64()),
            (Some("s"), Some(0))
        );
        assert_eq!(
            (flows[1]["ph"].as_str(), flows[1]["pid"].as_u64()),
            (Some("f"), Some(1))
        );
        assert_eq!(flows[0]["id"], flows[1]["id"]);
    }
}
