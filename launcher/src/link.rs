//! The link between mprun and a helper on another host: frames over the launch agent's stdin and
//! stdout (ssh's, or any agent's), so a job needs one agent connection per host and nothing
//! listening on the hosts but the ranks themselves.
//!
//! A frame is a 9-byte head (kind, a 32-bit word: a rank, or all ranks, or a count; the payload
//! length) and the payload. Lengths are capped at [`MAX_PAYLOAD`]: a corrupt or hostile stream
//! ends the link with an error instead of a huge allocation.

use std::io::{self, Read, Write};

/// Largest payload of one frame. Output lines longer than this go in several frames.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// The `word` of a frame meant for every rank of the host.
pub const ALL_RANKS: u32 = u32::MAX;

/// What a frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// helper -> mprun: the helper runs; payload: its host name.
    Hello = 1,
    /// mprun -> helper: the job (payload: [`JobSpec`] encoded).
    Job = 2,
    /// helper -> mprun: every rank of the host has started.
    Started = 3,
    /// helper -> mprun: the ranks could not be started; payload: why (one line).
    Failed = 4,
    /// helper -> mprun: a line rank `word` wrote to stdout.
    Stdout = 5,
    /// helper -> mprun: a line rank `word` wrote to stderr.
    Stderr = 6,
    /// helper -> mprun: rank `word` ended; payload: its wait status (i32, little-endian).
    Exit = 7,
    /// mprun -> helper: bytes for rank `word`'s stdin; an empty payload closes it.
    Stdin = 8,
    /// mprun -> helper: send signal (payload: i32) to rank `word`, or to all.
    Signal = 9,
    /// mprun -> helper, first: which host it is and which hosts it starts helpers on
    /// (payload: [`Tree`] encoded).
    Tree = 10,
    /// helper -> mprun: the link to host `word` (below this helper) ended.
    Lost = 11,
    /// helper -> mprun: rank `word`'s stdin took this many more bytes (payload: i32), written to
    /// its pipe or dropped once the rank closed it; mprun may send that many more. See
    /// [`STDIN_WINDOW`].
    StdinTaken = 12,
}

/// Bytes of stdin mprun may have sent to a helper that its rank has not yet taken. The rank
/// reads at its own pace: past the window mprun stops reading its own stdin, so `yes | mprun`
/// with a rank 0 that never reads holds this much in the helper, not all that `yes` writes.
pub const STDIN_WINDOW: usize = 1 << 20;

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        use Kind::*;
        [
            Hello, Job, Started, Failed, Stdout, Stderr, Exit, Stdin, Signal, Tree, Lost,
            StdinTaken,
        ]
        .into_iter()
        .find(|k| *k as u8 == b)
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub word: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn new(kind: Kind, word: u32, payload: impl Into<Vec<u8>>) -> Frame {
        Frame {
            kind,
            word,
            payload: payload.into(),
        }
    }

    /// A frame whose payload is one 32-bit number (an exit status, a signal).
    pub fn with_int(kind: Kind, word: u32, n: i32) -> Frame {
        Frame::new(kind, word, n.to_le_bytes())
    }

    /// The number a [`Frame::with_int`] frame carries.
    pub fn int(&self) -> Option<i32> {
        self.payload
            .get(..4)?
            .try_into()
            .ok()
            .map(i32::from_le_bytes)
    }

    /// Writes the frame in one `write_all` (so frames from several threads, each under the
    /// writer's lock, never interleave) and flushes. A payload over [`MAX_PAYLOAD`] is an
    /// error, not cut: the other side would refuse it, and a cut one would lose data.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let len = self.payload.len();
        if len > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame of {len} bytes (at most {MAX_PAYLOAD})"),
            ));
        }
        let mut buf = Vec::with_capacity(9 + len);
        buf.push(self.kind as u8);
        buf.extend_from_slice(&self.word.to_le_bytes());
        buf.extend_from_slice(&(len as u32).to_le_bytes());
        buf.extend_from_slice(&self.payload);
        w.write_all(&buf)?;
        w.flush()
    }

    /// Reads one frame; `Ok(None)` at a clean end of stream (between frames).
    pub fn read_from(r: &mut impl Read) -> io::Result<Option<Frame>> {
        let mut head = [0u8; 9];
        let mut got = 0;
        while got < head.len() {
            match r.read(&mut head[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let kind =
            Kind::from_u8(head[0]).ok_or_else(|| bad(format!("unknown frame {}", head[0])))?;
        let word = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        let len = u32::from_le_bytes([head[5], head[6], head[7], head[8]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(bad(format!("frame of {len} bytes (at most {MAX_PAYLOAD})")));
        }
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload)?;
        Ok(Some(Frame {
            kind,
            word,
            payload,
        }))
    }
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A helper's place in the start-up tree: its own host (plan index), how to reach hosts, and the
/// hosts below it, which it starts helpers on in turn (see [`split_tree`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    pub host: usize,
    /// The launch agent's words, or empty for srun.
    pub agent: Vec<String>,
    pub fanout: usize,
    /// (plan index, name) of every host below.
    pub below: Vec<(usize, String)>,
}

impl Tree {
    /// Lines: host index, agent words (tab-separated; empty: srun), fanout, then `index TAB
    /// name` per host below.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.host,
            self.agent.join("\t"),
            self.fanout
        );
        for (i, name) in &self.below {
            s.push_str(&format!("{i}\t{name}\n"));
        }
        s.into_bytes()
    }

    pub fn decode(b: &[u8]) -> io::Result<Tree> {
        let text = std::str::from_utf8(b).map_err(|_| bad("tree is not UTF-8".into()))?;
        let mut lines = text.split('\n');
        let num = |l: Option<&str>| -> io::Result<usize> {
            l.and_then(|l| l.parse().ok())
                .ok_or_else(|| bad(format!("tree: bad number {l:?}")))
        };
        let host = num(lines.next())?;
        let agent = lines
            .next()
            .ok_or_else(|| bad("tree without an agent line".into()))?
            .split('\t')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect();
        let fanout = num(lines.next())?.max(1);
        let below = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (i, name) = l
                    .split_once('\t')
                    .ok_or_else(|| bad(format!("tree: bad host line {l:?}")))?;
                Ok((num(Some(i))?, name.to_string()))
            })
            .collect::<io::Result<_>>()?;
        Ok(Tree {
            host,
            agent,
            fanout,
            below,
        })
    }
}

/// A subtree of the start-up: a host and the hosts its helper starts in turn.
pub type Subtree = ((usize, String), Vec<(usize, String)>);

/// Splits `hosts` among at most `fanout` children: the first `fanout` hosts are the children;
/// the rest are dealt to them in contiguous runs, as the hosts each child starts in turn. So
/// every helper starts at most `fanout` agents and the depth grows as log_fanout(hosts).
pub fn split_tree(hosts: &[(usize, String)], fanout: usize) -> Vec<Subtree> {
    let k = hosts.len().min(fanout.max(1));
    let (children, rest) = hosts.split_at(k);
    children
        .iter()
        .enumerate()
        .map(|(c, child)| {
            let (from, to) = (rest.len() * c / k, rest.len() * (c + 1) / k);
            (child.clone(), rest[from..to].to_vec())
        })
        .collect()
}

/// The machine a host runs on, as its helper says in its hello: hosts with the same kernel boot
/// id (network namespaces, containers) share one machine's cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub boot_id: String,
    pub cores: usize,
}

impl Machine {
    /// This machine.
    pub fn here() -> Machine {
        Machine {
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// `host name`, `boot id`, `cores` on lines (the hello's payload).
    pub fn encode(&self, host: &str) -> Vec<u8> {
        format!("{host}\n{}\n{}\n", self.boot_id, self.cores).into_bytes()
    }

    /// The machine in a hello's payload (an unknown one if it says nothing usable).
    pub fn decode(b: &[u8]) -> Machine {
        let text = String::from_utf8_lossy(b);
        let mut lines = text.lines().skip(1);
        let boot_id = lines.next().unwrap_or("").trim().to_string();
        let cores = lines
            .next()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(1)
            .max(1);
        Machine { boot_id, cores }
    }
}

/// What a helper needs to start its host's ranks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobSpec {
    pub program: String,
    pub args: Vec<String>,
    /// Directory to start the ranks in (mprun's), when it exists on the host.
    pub cwd: String,
    /// `--iface`, to choose the address ranks listen on; empty: the one that reaches mprun.
    pub iface: String,
    /// Environment of every rank (the `-x` values, mprun's `MPR_*` settings, the bootstrap).
    pub env: Vec<(String, String)>,
    /// The host's ranks: (rank, local rank).
    pub ranks: Vec<(usize, usize)>,
}

impl JobSpec {
    /// `key NUL value NUL` pairs.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |k: &str, v: &str| {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        };
        put("program", &self.program);
        put("cwd", &self.cwd);
        put("iface", &self.iface);
        for a in &self.args {
            put("arg", a);
        }
        for (k, v) in &self.env {
            put("env", &format!("{k}={v}"));
        }
        for (r, l) in &self.ranks {
            put("rank", &format!("{r} {l}"));
        }
        out
    }

    pub fn decode(b: &[u8]) -> io::Result<JobSpec> {
        let mut spec = JobSpec::default();
        let text = std::str::from_utf8(b).map_err(|_| bad("job spec is not UTF-8".into()))?;
        let words: Vec<&str> = text.split('\0').collect();
        // A trailing NUL leaves one empty word at the end.
        let words = words.split_last().map_or(&words[..], |(_, rest)| rest);
        if words.len() % 2 != 0 {
            return Err(bad("job spec: a key without a value".into()));
        }
        for kv in words.chunks_exact(2) {
            let (k, v) = (kv[0], kv[1]);
            match k {
                "program" => spec.program = v.into(),
                "cwd" => spec.cwd = v.into(),
                "iface" => spec.iface = v.into(),
                "arg" => spec.args.push(v.into()),
                "env" => {
                    let (name, value) = v
                        .split_once('=')
                        .ok_or_else(|| bad(format!("job spec: env entry {v:?}")))?;
                    spec.env.push((name.into(), value.into()));
                }
                "rank" => {
                    let parse = |s: Option<&str>| s.and_then(|s| s.parse::<usize>().ok());
                    let mut it = v.split(' ');
                    match (parse(it.next()), parse(it.next())) {
                        (Some(r), Some(l)) => spec.ranks.push((r, l)),
                        _ => return Err(bad(format!("job spec: rank entry {v:?}"))),
                    }
                }
                other => return Err(bad(format!("job spec: unknown key {other:?}"))),
            }
        }
        if spec.program.is_empty() || spec.ranks.is_empty() {
            return Err(bad("job spec without a program or ranks".into()));
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_ones_are_errors() {
        let frames = [
            Frame::new(Kind::Hello, 0, "mprt-h2"),
            Frame::new(Kind::Stdout, 7, "a line\n"),
            Frame::with_int(Kind::Exit, 3, 256),
            Frame::new(Kind::Stdin, 0, Vec::new()),
        ];
        let mut buf = Vec::new();
        for f in &frames {
            f.write_to(&mut buf).unwrap();
        }
        let mut r = &buf[..];
        for f in &frames {
            assert_eq!(Frame::read_from(&mut r).unwrap().as_ref(), Some(f));
        }
        assert!(Frame::read_from(&mut r).unwrap().is_none());
        assert_eq!(frames[2].int(), Some(256));
        assert_eq!(frames[3].int(), None, "no number in an empty payload");
        // Cut in the middle, an unknown kind, a huge length: errors, no allocation.
        assert!(Frame::read_from(&mut &buf[..5]).is_err());
        assert!(Frame::read_from(&mut &buf[..12]).is_err());
        assert!(Frame::read_from(&mut &[0u8, 0, 0, 0, 0, 0, 0, 0, 0][..]).is_err());
        let huge = [5u8, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(Frame::read_from(&mut &huge[..]).is_err());
        // Too large to send: an error, and nothing written (not a cut frame).
        let mut out = Vec::new();
        let big = Frame::new(Kind::Job, 0, vec![0u8; MAX_PAYLOAD + 1]);
        assert!(big.write_to(&mut out).is_err());
        assert!(out.is_empty());
        let full = Frame::new(Kind::Stdout, 0, vec![b'x'; MAX_PAYLOAD]);
        full.write_to(&mut out).unwrap();
        assert_eq!(Frame::read_from(&mut &out[..]).unwrap(), Some(full));
    }

    #[test]
    fn trees_round_trip_and_split_every_host_once() {
        let hosts: Vec<(usize, String)> = (1..=20).map(|i| (i, format!("h{i}"))).collect();
        let t = Tree {
            host: 3,
            agent: vec!["ssh".into(), "-F".into(), "x y".into()],
            fanout: 4,
            below: hosts.clone(),
        };
        assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
        let srun = Tree {
            agent: Vec::new(),
            below: Vec::new(),
            ..t
        };
        assert_eq!(Tree::decode(&srun.encode()).unwrap(), srun);
        assert!(Tree::decode(b"x\n").is_err());
        assert!(Tree::decode(b"1\nssh\n2\nnot-a-line\n").is_err());
        // Every host appears once, and each helper starts at most `fanout` agents.
        fn walk(
            hosts: &[(usize, String)],
            fanout: usize,
            seen: &mut Vec<usize>,
            depth: usize,
        ) -> usize {
            let split = split_tree(hosts, fanout);
            assert!(split.len() <= fanout);
            let mut deepest = depth;
            for (child, below) in split {
                seen.push(child.0);
                deepest = deepest.max(walk(&below, fanout, seen, depth + 1));
            }
            deepest
        }
        for fanout in [1, 2, 3, 8, 32] {
            let mut seen = Vec::new();
            // Levels of helpers (the walk counts the empty level below the last).
            let depth = walk(&hosts, fanout, &mut seen, 0);
            seen.sort_unstable();
            assert_eq!(seen, (1..=20).collect::<Vec<_>>(), "fanout {fanout}");
            match fanout {
                1 => assert_eq!(depth, 20),
                3 => assert!(depth <= 3, "depth {depth}"),
                32 => assert_eq!(depth, 1),
                _ => {}
            }
        }
    }

    #[test]
    fn machines_say_their_boot_id_and_cores() {
        let m = Machine::here();
        assert!(m.cores >= 1);
        assert_eq!(Machine::decode(&m.encode("h1")), m);
        let unknown = Machine::decode(b"h1");
        assert_eq!((unknown.boot_id.as_str(), unknown.cores), ("", 1));
    }

    #[test]
    fn job_specs_round_trip_and_bad_ones_are_errors() {
        let spec = JobSpec {
            program: "/bin/prog".into(),
            args: vec!["a b".into(), String::new(), "=x".into()],
            cwd: "/tmp".into(),
            iface: "10.99.0.0/24".into(),
            env: vec![("MPR_SIZE".into(), "8".into()), ("X".into(), "1=2".into())],
            ranks: vec![(2, 0), (6, 1)],
        };
        assert_eq!(JobSpec::decode(&spec.encode()).unwrap(), spec);
        for bad in [
            &b"program\0"[..],
            b"nope\0x\0",
            b"program\0p\0rank\0x y\0",
            b"\xff\0",
        ] {
            assert!(JobSpec::decode(bad).is_err(), "{bad:?}");
        }
        assert!(JobSpec::decode(b"program\0p\0").is_err(), "no ranks");
    }
}
