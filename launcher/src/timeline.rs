//! `mprun --trace FILE`: the job's calls as one timeline, in the trace-event JSON format that
//! Chrome's `about:tracing`, Perfetto's trace viewer and speedscope read: a track per rank,
//! named by rank and host; a slice per mpr call with its bytes and communicator (and the peer
//! and tag of a point-to-point call, the algorithm of a collective); inside a call, an
//! `asleep` slice for each time the rank slept in the kernel (the rest of the call it was
//! awake: spinning, copying, reducing); and an arrow from each send to the receive that took
//! it.
//!
//! Each rank keeps its calls (the `mpr` runtime, with `MPR_TRACE` set, which mprun sets) and
//! tells the rendezvous service at its finalize (`STARTED`, then `EVENT` lines); a rank that
//! fails but unwinds (an error returned from `main`, a panic) still finalizes on the way out
//! and so still tells. This file lays them out, on mprun's clock: each rank measures its own
//! clock against mprun's at start-up and again at the end (`ALIGNED` lines: the shortest of a
//! few round trips to the service, good to half that trip), so ranks on hosts whose clocks
//! disagree still line up. The trace's `otherData.clocks` says, per rank, the offset, its
//! uncertainty and how far it moved by the end. A rank that could not measure (no answer from
//! the service) is placed by its host's clock, as good as the hosts' synchronisation.

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
    /// The communicator's number (`None`: a sleep, not a call).
    pub comm: Option<u32>,
    /// The algorithm of a collective.
    pub algo: Option<String>,
}

/// The name of the events that say a rank slept (as the runtime's `observe.rs` tells them).
const ASLEEP: &str = "asleep";

/// Calls that send one message to their peer, and calls that receive one from it: a flow
/// arrow joins the k-th of one rank's sends to another with a tag to the k-th of the other's
/// receives from it with that tag (messages of a pair and tag are received in the order sent).
/// (on a communicator). A blocking receive names the source and tag it took; an `irecv` with
/// a wildcard names none, so a rank that mixes those with named receives of the same pair,
/// tag and communicator can get arrows to the wrong receive of the pair.
const SENDS: &[&str] = &["send", "ssend", "isend", "issend"];
const RECEIVES: &[&str] = &["recv", "irecv"];

/// What one rank told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RankTimeline {
    /// Its start by its host's clock (`None`: it told nothing).
    pub started_unix_ns: Option<u64>,
    /// Its clock against mprun's, at start-up and at the end: mprun's clock less the rank's,
    /// and the round trip it was measured by (nanoseconds).
    pub aligned: Vec<(i64, u64)>,
    /// Names it gave communicators, by number.
    pub names: Vec<(u32, String)>,
    pub calls: Vec<Call>,
}

impl RankTimeline {
    /// Communicator `ctx` as this rank named it (as `Comm::name` says).
    fn comm_name(&self, ctx: u32) -> String {
        match self.names.iter().rev().find(|(c, _)| *c == ctx) {
            Some((_, n)) => n.clone(),
            None if ctx == 0 => "world".into(),
            None => format!("communicator {ctx}"),
        }
    }

    /// When the rank started, in nanoseconds on mprun's clock (which started at
    /// `epoch_unix_ns` by this host's): by its measured offset, or else by its host's clock.
    fn origin(&self, epoch_unix_ns: u64) -> Option<i64> {
        match (self.aligned.first(), self.started_unix_ns) {
            (Some(&(offset, _)), _) => Some(offset),
            (None, Some(unix)) => Some((i128::from(unix) - i128::from(epoch_unix_ns)) as i64),
            (None, None) => None,
        }
    }
}

/// How rank `rank`'s clock was aligned, for the trace's `otherData`.
fn clock(rank: usize, t: &RankTimeline) -> Option<Value> {
    let &(offset, rtt) = t.aligned.first()?;
    let us = |ns: i64| ns as f64 / 1e3;
    let mut c = json!({"rank": rank, "offset_us": us(offset), "within_us": rtt as f64 / 2e3});
    if let Some(&(end, end_rtt)) = t.aligned.get(1) {
        c["moved_by_end_us"] = json!(us(end - offset));
        c["end_within_us"] = json!(end_rtt as f64 / 2e3);
    }
    Some(c)
}

/// The trace of ranks `timelines` (by rank) on hosts `hosts` (by rank), as trace-event JSON,
/// its clock starting where the first rank started. mprun's clock started at `epoch_unix_ns`.
pub fn trace(timelines: &[RankTimeline], hosts: &[String], epoch_unix_ns: u64) -> Value {
    let t0 = timelines
        .iter()
        .filter_map(|t| t.origin(epoch_unix_ns))
        .min()
        .unwrap_or(0);
    let ts = |t: &RankTimeline, c: &Call| {
        let origin = t.origin(epoch_unix_ns).unwrap_or(t0);
        (i128::from(origin - t0) + i128::from(c.start_ns)) as f64 / 1e3
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
            if let Some(ctx) = c.comm {
                args["comm"] = json!(t.comm_name(ctx));
            }
            if let (Some(p), Some(tag)) = (c.peer, c.tag) {
                args["peer"] = json!(p);
                args["tag"] = json!(tag);
            }
            if let Some(a) = &c.algo {
                args["algorithm"] = json!(a);
            }
            let asleep = c.comm.is_none() && c.op == ASLEEP;
            if asleep {
                args = json!({});
            }
            events.push(json!({
                "ph": "X",
                "cat": if asleep { "sleep" } else { "mpr" },
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
    type Key = (usize, usize, u32, Option<u32>);
    let mut sent: HashMap<Key, Vec<f64>> = HashMap::new();
    let mut received: HashMap<Key, Vec<f64>> = HashMap::new();
    for (rank, t) in timelines.iter().enumerate() {
        for c in &t.calls {
            let (Some(p), Some(tag)) = (c.peer, c.tag) else {
                continue;
            };
            if SENDS.contains(&c.op.as_str()) {
                sent.entry((rank, p, tag, c.comm))
                    .or_default()
                    .push(ts(t, c));
            } else if RECEIVES.contains(&c.op.as_str()) {
                received
                    .entry((p, rank, tag, c.comm))
                    .or_default()
                    .push(ts(t, c));
            }
        }
    }
    let mut pairs: Vec<_> = sent.into_iter().collect();
    pairs.sort_by_key(|(k, _)| *k);
    let mut id = 0u64;
    for (key, sends) in pairs {
        let (from, to, tag, _) = key;
        let recvs = received.remove(&key).unwrap_or_default();
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
            "clocks": timelines.iter().enumerate().filter_map(|(r, t)| clock(r, t)).collect::<Vec<_>>(),
        },
    })
}

/// Writes the trace to `path`; an error in one line.
pub fn write(
    path: &Path,
    timelines: &[RankTimeline],
    hosts: &[String],
    epoch_unix_ns: u64,
) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("--trace {}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
    let mut out = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut out, &trace(timelines, hosts, epoch_unix_ns))
        .map_err(|e| fail(&e))?;
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
            comm: Some(0),
            algo: None,
        };
        let t = [
            RankTimeline {
                started_unix_ns: Some(5_000),
                aligned: Vec::new(),
                names: Vec::new(),
                calls: vec![call("send", 1_000, 500)],
            },
            RankTimeline {
                started_unix_ns: Some(3_000),
                aligned: Vec::new(),
                names: Vec::new(),
                calls: vec![call("recv", 2_000, 1_500)],
            },
            RankTimeline::default(),
        ];
        let v = trace(&t, &["a".into(), "b".into(), "c".into()], 1_000);
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
        assert_eq!(slices[0]["args"]["comm"], "world");
        assert_eq!(slices[0]["args"]["peer"], 1);
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

    #[test]
    fn measured_offsets_place_ranks_whatever_their_hosts_clocks_say() {
        let call = |start_ns| Call {
            op: "barrier".into(),
            start_ns,
            dur_ns: 10,
            bytes: 0,
            peer: None,
            tag: None,
            comm: Some(2),
            algo: Some("dissemination".into()),
        };
        // Rank 0's host clock is an hour ahead, rank 1's is right; by the measures rank 0
        // started 2 µs after mprun and rank 1 at 3 µs. Rank 2 measured nothing.
        let hour = 3_600_000_000_000u64;
        let t = [
            RankTimeline {
                started_unix_ns: Some(hour + 10_000),
                aligned: vec![(2_000, 400), (2_600, 300)],
                names: vec![(2, "rows".into())],
                calls: vec![call(1_000)],
            },
            RankTimeline {
                started_unix_ns: Some(10_000),
                aligned: vec![(3_000, 200)],
                names: Vec::new(),
                calls: vec![call(0)],
            },
            RankTimeline {
                started_unix_ns: Some(6_000),
                aligned: Vec::new(),
                names: Vec::new(),
                calls: vec![call(0)],
            },
        ];
        let v = trace(&t, &[], 1_000);
        let ts: Vec<f64> = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "X")
            .map(|e| e["ts"].as_f64().unwrap())
            .collect();
        // Origins 2 µs, 3 µs and (by the host's clock) 5 µs after mprun's start.
        assert_eq!(ts, [1.0, 1.0, 3.0]);
        let args: Vec<&Value> = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "X")
            .map(|e| &e["args"])
            .collect();
        assert_eq!(args[0]["comm"], "rows");
        assert_eq!(args[1]["comm"], "communicator 2");
        assert_eq!(args[1]["algorithm"], "dissemination");
        let clocks = v["otherData"]["clocks"].as_array().unwrap();
        assert_eq!(clocks.len(), 2);
        assert_eq!(clocks[0]["offset_us"].as_f64(), Some(2.0));
        assert_eq!(clocks[0]["within_us"].as_f64(), Some(0.2));
        assert_eq!(clocks[0]["moved_by_end_us"].as_f64(), Some(0.6));
        assert!(clocks[1].get("moved_by_end_us").is_none());
    }
}
