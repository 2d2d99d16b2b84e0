//! The command line of `mpr-bench`, parsed by clap. Every rank parses the same words, so all
//! ranks agree on the sizes and iteration counts without exchanging them.

use std::path::PathBuf;

use clap::{Arg, ArgAction, Command};

/// Which benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bench {
    /// Ping-pong between ranks 0 and 1: one-way latency.
    Latency,
    /// Rank 0 streams windows of messages to rank 1: bandwidth.
    Bw,
    /// Ranks 0 and 1 stream windows to each other at once: bidirectional bandwidth.
    Bibw,
    /// Ping-pong in n/2 pairs at once: latency under load.
    MultiLat,
    /// Every rank exchanges a message with both ring neighbours: time per exchange (max over
    /// ranks), with isend/irecv or persistent requests.
    Halo,
    /// A collective, timed per call (max over ranks).
    Coll(Coll),
}

/// The collectives `mpr-bench` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coll {
    Barrier,
    Bcast,
    Reduce,
    Allreduce,
    Gather,
    Scatter,
    Allgather,
    Alltoall,
}

/// Every benchmark, by command-line name.
const BENCHES: &[(&str, Bench)] = &[
    ("latency", Bench::Latency),
    ("bw", Bench::Bw),
    ("bibw", Bench::Bibw),
    ("multi_lat", Bench::MultiLat),
    ("halo", Bench::Halo),
    ("barrier", Bench::Coll(Coll::Barrier)),
    ("bcast", Bench::Coll(Coll::Bcast)),
    ("reduce", Bench::Coll(Coll::Reduce)),
    ("allreduce", Bench::Coll(Coll::Allreduce)),
    ("gather", Bench::Coll(Coll::Gather)),
    ("scatter", Bench::Coll(Coll::Scatter)),
    ("allgather", Bench::Coll(Coll::Allgather)),
    ("alltoall", Bench::Coll(Coll::Alltoall)),
];

impl Bench {
    fn from_name(s: &str) -> Option<Bench> {
        BENCHES.iter().find(|(n, _)| *n == s).map(|&(_, b)| b)
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        BENCHES
            .iter()
            .find(|&&(_, b)| b == self)
            .map_or("?", |(n, _)| n)
    }

    /// Whether it reports bandwidth (else latency).
    pub fn is_bandwidth(self) -> bool {
        matches!(self, Bench::Bw | Bench::Bibw)
    }

    fn names() -> String {
        BENCHES
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    pub bench: Bench,
    /// Smallest and largest message size in bytes; sizes are 0 (if `min` is 0) and then the
    /// powers of two from max(min, 1) up to `max`.
    pub min: usize,
    pub max: usize,
    /// Timed iterations per size; `None`: the OSU defaults (more for small messages).
    pub iters: Option<usize>,
    /// Untimed warm-up iterations per size; `None`: the OSU defaults.
    pub warmup: Option<usize>,
    /// Messages in flight per window (bandwidth benchmarks); `None`: 64, fewer for messages
    /// so large that 64 receive buffers would exceed [`WINDOW_BYTES`].
    pub window: Option<usize>,
    pub json: bool,
    /// `--value`: latency of values (a `String` and a `Vec<f64>` of size / 8 elements) sent
    /// with `send_value` and received with `recv_value`, instead of byte slices.
    pub value: bool,
    /// `--persistent`: halo with persistent requests started every iteration.
    pub persistent: bool,
    /// `--strided BLOCK`: latency of messages sent and received as blocks of BLOCK bytes every
    /// 2 BLOCK bytes (`Layout::vector`), instead of contiguous bytes.
    pub strided: Option<usize>,
    /// `--plot FILE.svg`: rank 0 draws what it measured there at the end (`plot.rs`).
    pub plot: Option<PathBuf>,
}

/// `mpr-bench plot`: earlier `--json` runs drawn as one picture.
#[derive(Debug, Clone)]
pub struct PlotPlan {
    /// The runs, each one series (per benchmark it holds), labelled by its file's name.
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub title: Option<String>,
    /// What the axes say, instead of message size and the benchmarks' own measure.
    pub x_desc: Option<String>,
    pub y_desc: Option<String>,
}

/// The most receive-buffer memory the default window uses.
pub const WINDOW_BYTES: usize = 256 << 20;

/// Messages above this many bytes get the "large" iteration defaults, as in OSU.
const LARGE: usize = 8192;

impl Plan {
    /// The message sizes to run.
    pub fn sizes(&self) -> Vec<usize> {
        let mut v = Vec::new();
        if self.min == 0 {
            v.push(0);
        }
        let mut s = self.min.max(1).next_power_of_two();
        while s <= self.max {
            v.push(s);
            match s.checked_mul(2) {
                Some(n) => s = n,
                None => break,
            }
        }
        v
    }

    /// OSU's defaults for this benchmark and `size`: (timed iterations, warm-up iterations);
    /// iterations are windows for the bandwidth benchmarks.
    fn defaults(&self, size: usize) -> (usize, usize) {
        let ((iters, warmup), (large_iters, large_warmup)) = match self.bench {
            Bench::Bw | Bench::Bibw => ((100, 10), (20, 2)),
            Bench::Coll(_) => ((1000, 200), (100, 10)),
            _ => ((10_000, 100), (1000, 10)),
        };
        if size > LARGE {
            (large_iters, large_warmup)
        } else {
            (iters, warmup)
        }
    }

    /// Timed iterations for `size`.
    pub fn iters_for(&self, size: usize) -> usize {
        self.iters.unwrap_or(self.defaults(size).0)
    }

    /// Warm-up iterations for `size`.
    pub fn warmup_for(&self, size: usize) -> usize {
        self.warmup.unwrap_or(self.defaults(size).1)
    }

    /// Messages per window for `size`.
    pub fn window_for(&self, size: usize) -> usize {
        self.window
            .unwrap_or_else(|| (WINDOW_BYTES / size.max(1)).clamp(1, 64))
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Run(Plan),
    Plot(PlotPlan),
    Help(String),
    /// `--completions SHELL`: a completion script for that shell.
    Completions(Vec<u8>),
}

/// How mpr-bench is called, before its options (`--help` shows it above them).
const USAGE: &str = "\
mprun -n 2 mpr-bench latency|bw|bibw [OPTIONS]
       mprun -n 2K mpr-bench multi_lat [OPTIONS]      (K pairs: rank r with r + K)
       mprun -n N mpr-bench halo [--persistent] [OPTIONS]
                                     (every rank exchanges SIZE bytes with both ring neighbours:
                                     time per exchange, max over ranks)
       mprun -n N mpr-bench barrier|bcast|reduce|allreduce|gather|scatter|allgather|alltoall
                                     (time per call, max over ranks; reductions on f32 elements)";

/// The largest message a benchmark will allocate (1 GiB).
const MAX_SIZE: usize = 1 << 30;

fn size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (digits, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1usize << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a message size in bytes"))?;
    n.checked_mul(mult)
        .filter(|&b| b <= MAX_SIZE)
        .ok_or_else(|| format!("message size {s} is above the limit of 1 GiB"))
}

/// `-m MIN:MAX` (or `MAX` alone: `0:MAX`).
fn sizes(v: &str) -> Result<(usize, usize), String> {
    let (lo, hi) = match v.split_once(':') {
        Some((lo, hi)) => (size(lo)?, size(hi)?),
        None => (0, size(v)?),
    };
    if lo > hi {
        return Err(format!("-m {v}: the smallest size is above the largest"));
    }
    Ok((lo, hi))
}

/// A count from `lo` to `hi` for option `opt`.
fn count(
    opt: &'static str,
    lo: usize,
    hi: usize,
) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |s: &str| match s.parse::<usize>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("{opt} takes a count from {lo} to {hi}, not {s:?}")),
    }
}

fn block(s: &str) -> Result<usize, String> {
    match size(s)? {
        0 => Err("--strided takes a block of at least 1 byte".into()),
        b => Ok(b),
    }
}

/// A benchmark by name; a misspelt one gets the nearest name.
fn bench(s: &str) -> Result<Bench, String> {
    Bench::from_name(s).ok_or_else(|| match closest(s) {
        Some(b) => format!("unknown benchmark {s:?} (did you mean {b}?)"),
        None => format!("unknown benchmark {s:?} (one of: {})", Bench::names()),
    })
}

/// `-h`, `--help` (clap's own is off: help is printed by rank 0 only).
fn help_flag() -> Arg {
    Arg::new("help")
        .short('h')
        .long("help")
        .action(ArgAction::SetTrue)
        .help("this text")
}

/// The command line as clap knows it.
fn command() -> Command {
    let value = |id: &'static str, name: &'static str| {
        Arg::new(id).value_name(name).allow_negative_numbers(true)
    };
    let flag = |id: &'static str| Arg::new(id).long(id).action(ArgAction::SetTrue);
    Command::new("mpr-bench")
        .override_usage(USAGE)
        .help_template("usage: {usage}\n\n{all-args}\n")
        .max_term_width(100)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args_override_self(true)
        .arg(
            Arg::new("bench")
                .value_name("BENCHMARK")
                .value_parser(bench)
                .hide(true),
        )
        .arg(
            value("completions", "SHELL")
                .long("completions")
                .value_parser(clap::value_parser!(clap_complete::Shell))
                .help("print a completion script for SHELL (bash, zsh, fish, elvish, powershell)"),
        )
        .arg(
            value("sizes", "MIN:MAX")
                .short('m')
                .long("message-size")
                .value_parser(sizes)
                .help(
                    "message sizes in bytes, powers of two between (default 0:4194304); MAX \
                     alone means 0:MAX; K, M, G suffixes allowed",
                ),
        )
        .arg(
            value("iterations", "N")
                .short('i')
                .long("iterations")
                .value_parser(count("-i", 1, 100_000_000))
                .help(
                    "timed iterations per size (latency: 10000, 1000 above 8 KiB; bw, bibw: \
                     100 windows, 20 above 8 KiB; collectives: 1000, 100)",
                ),
        )
        .arg(
            value("warmup", "N")
                .short('x')
                .long("warmup")
                .value_parser(count("-x", 0, 100_000_000))
                .help(
                    "untimed iterations per size (latency: 100, 10 above 8 KiB; bw, bibw: 10, \
                     2 above 8 KiB; collectives: 200, 10)",
                ),
        )
        .arg(
            value("window", "N")
                .short('W')
                .long("window")
                .value_parser(count("-W", 1, 4096))
                .help(
                    "messages in flight per window, bw and bibw (default 64, fewer when 64 \
                     messages would exceed 256 MiB)",
                ),
        )
        .arg(flag("value").help(
            "latency, multi_lat: each message is a value, a String and a Vec<f64> of SIZE / 8 \
             elements, by send_value and recv_value (encoded and decoded every time)",
        ))
        .arg(value("strided", "BLOCK").long("strided").value_parser(block).help(
            "latency: each message is SIZE bytes in blocks of BLOCK bytes every 2 BLOCK bytes \
             (send_layout, recv_layout with a vector layout)",
        ))
        .arg(flag("persistent").help(
            "halo: persistent requests (send_init, recv_init) started every iteration, instead \
             of isend and irecv",
        ))
        .arg(flag("json").help("one JSON object per size instead of the table"))
        .arg(
            value("plot", "FILE.svg")
                .long("plot")
                .value_parser(clap::value_parser!(PathBuf))
                .help(
                    "also draw what was measured into FILE.svg (against size, log axes, p50 \
                     with a band to p99); `mpr-bench plot --help` overlays earlier runs",
                ),
        )
        .arg(help_flag())
}

/// `mpr-bench plot` as clap knows it.
fn plot_command() -> Command {
    Command::new("mpr-bench plot")
        .override_usage("mpr-bench plot A.json [B.json ...] -o FILE.svg [--title TEXT]")
        .help_template(
            "usage: {usage}\n\nDraws earlier `mpr-bench ... --json` runs (or a peer's figures \
             in the same shape) as one picture: a curve per file and benchmark, labelled by \
             the file's name.\n\n{all-args}\n",
        )
        .max_term_width(100)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            Arg::new("inputs")
                .value_name("RUN.json")
                .num_args(1..)
                .required(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help("runs written by --json: one JSON object per line"),
        )
        .arg(
            Arg::new("out")
                .short('o')
                .long("output")
                .value_name("FILE.svg")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help("the picture to write"),
        )
        .arg(
            Arg::new("title")
                .long("title")
                .value_name("TEXT")
                .help("the picture's caption (default: the files' names)"),
        )
        .arg(
            Arg::new("x-desc")
                .long("x-desc")
                .value_name("TEXT")
                .help("what the x axis says (default: message size (bytes))"),
        )
        .arg(
            Arg::new("y-desc").long("y-desc").value_name("TEXT").help(
                "what the y axis says (default: latency or bandwidth, p50 with a band to p99)",
            ),
        )
        .arg(help_flag())
}

/// Parses `mpr-bench plot ...` (the words after `plot`).
fn parse_plot(args: Vec<String>) -> Result<Parsed, String> {
    let wants_help = args.iter().any(|a| a == "-h" || a == "--help");
    if wants_help {
        return Ok(Parsed::Help(plot_command().render_help().to_string()));
    }
    let m = plot_command()
        .try_get_matches_from(std::iter::once("plot".to_string()).chain(args))
        .map_err(|e| match e.kind() {
            clap::error::ErrorKind::MissingRequiredArgument => {
                "plot needs one or more RUN.json files and -o FILE.svg".to_string()
            }
            _ => one_line(&e),
        })?;
    Ok(Parsed::Plot(PlotPlan {
        inputs: m
            .get_many::<PathBuf>("inputs")
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        out: m.get_one::<PathBuf>("out").cloned().unwrap_or_default(),
        title: m.get_one::<String>("title").cloned(),
        x_desc: m.get_one::<String>("x-desc").cloned(),
        y_desc: m.get_one::<String>("y-desc").cloned(),
    }))
}

/// One line for what clap refused.
fn one_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    let arg = context(ContextKind::InvalidArg)
        .map(|a| a.split(' ').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    match e.kind() {
        ErrorKind::UnknownArgument if !arg.starts_with('-') => {
            format!("unexpected argument {arg:?}")
        }
        ErrorKind::UnknownArgument => match context(ContextKind::SuggestedArg) {
            Some(s) => format!("unknown option {arg} (did you mean {s}?)"),
            None => format!("unknown option {arg} (see --help)"),
        },
        ErrorKind::ValueValidation => {
            use std::error::Error as _;
            e.source()
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("{arg}: bad value"))
        }
        ErrorKind::InvalidValue => match (
            context(ContextKind::InvalidValue),
            e.get(ContextKind::ValidValue),
        ) {
            (Some(v), Some(ContextValue::Strings(valid))) if !v.is_empty() => {
                format!("{arg}: {v:?} is not one of {}", valid.join(", "))
            }
            _ => format!("{arg} needs a value"),
        },
        ErrorKind::NoEquals => format!("{arg} needs a value"),
        _ => e
            .to_string()
            .lines()
            .next()
            .unwrap_or("bad command line")
            .trim_start_matches("error: ")
            .to_string(),
    }
}

/// The benchmark whose name is nearest `word`, if one is near (at most a third of its letters
/// off, by edit distance).
fn closest(word: &str) -> Option<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, &cb) in b.iter().enumerate() {
                let here = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(here + 1);
                prev = here;
            }
        }
        row[b.len()]
    }
    BENCHES
        .iter()
        .map(|(n, _)| (distance(word, n), *n))
        .filter(|&(d, n)| d * 3 <= n.len())
        .min()
        .map(|(_, n)| n)
}

/// Parses the words after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let args: Vec<String> = args.into_iter().collect();
    if args.first().map(String::as_str) == Some("plot") {
        return parse_plot(args[1..].to_vec());
    }
    let m = command()
        .try_get_matches_from(std::iter::once("mpr-bench".to_string()).chain(args))
        .map_err(|e| one_line(&e))?;
    if m.get_flag("help") {
        return Ok(Parsed::Help(command().render_help().to_string()));
    }
    if let Some(&shell) = m.get_one::<clap_complete::Shell>("completions") {
        // The benchmarks' names, and `plot` with its own options.
        let names = BENCHES.iter().map(|(n, _)| *n);
        let mut cmd = command()
            .mut_arg("bench", |a| {
                a.value_parser(clap::builder::PossibleValuesParser::new(names))
            })
            .subcommand(plot_command().name("plot"));
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, "mpr-bench", &mut out);
        return Ok(Parsed::Completions(out));
    }
    let bench = *m
        .get_one::<Bench>("bench")
        .ok_or_else(|| format!("name a benchmark: {} (see --help)", Bench::names()))?;
    let (min, max) = m
        .get_one::<(usize, usize)>("sizes")
        .copied()
        .unwrap_or((0, 4 << 20));
    let plan = Plan {
        bench,
        min,
        max,
        iters: m.get_one::<usize>("iterations").copied(),
        warmup: m.get_one::<usize>("warmup").copied(),
        window: m.get_one::<usize>("window").copied(),
        json: m.get_flag("json"),
        value: m.get_flag("value"),
        persistent: m.get_flag("persistent"),
        strided: m.get_one::<usize>("strided").copied(),
        plot: m.get_one::<PathBuf>("plot").cloned(),
    };
    if plan.value && !matches!(plan.bench, Bench::Latency | Bench::MultiLat) {
        return Err(format!(
            "--value is for latency and multi_lat, not {}",
            plan.bench.name()
        ));
    }
    if plan.persistent && plan.bench != Bench::Halo {
        return Err(format!(
            "--persistent is for halo, not {}",
            plan.bench.name()
        ));
    }
    if plan.strided.is_some() && (plan.bench != Bench::Latency || plan.value) {
        return Err("--strided is for latency, without --value".into());
    }
    Ok(Parsed::Run(plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(words: &[&str]) -> Result<Plan, String> {
        match parse(words.iter().map(|s| s.to_string()))? {
            Parsed::Run(p) => Ok(p),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn sizes_are_zero_then_powers_of_two() {
        let p = plan(&["latency", "-m", "0:16"]).unwrap();
        assert_eq!(p.sizes(), [0, 1, 2, 4, 8, 16]);
        let p = plan(&["latency", "-m", "3:1K"]).unwrap();
        assert_eq!(p.sizes(), [4, 8, 16, 32, 64, 128, 256, 512, 1024]);
        let p = plan(&["latency", "-m", "8:8"]).unwrap();
        assert_eq!(p.sizes(), [8]);
        let p = plan(&["latency", "--message-size=1M"]).unwrap();
        assert_eq!((p.min, p.max), (0, 1 << 20));
    }

    #[test]
    fn defaults_follow_osu() {
        let p = plan(&["latency"]).unwrap();
        assert_eq!((p.iters_for(8), p.iters_for(1 << 20)), (10_000, 1000));
        assert_eq!((p.warmup_for(8), p.warmup_for(1 << 20)), (100, 10));
        let p = plan(&["bw"]).unwrap();
        assert_eq!(
            (p.iters_for(8), p.iters_for(1 << 20), p.warmup_for(8)),
            (100, 20, 10)
        );
        assert_eq!(
            (
                p.window_for(8),
                p.window_for(1 << 20),
                p.window_for(16 << 20),
                p.window_for(1 << 30)
            ),
            (64, 64, 16, 1)
        );
        let p = plan(&["bibw", "-W", "8"]).unwrap();
        assert_eq!((p.bench, p.window_for(1 << 20)), (Bench::Bibw, 8));
        let p = plan(&["multi_lat", "--value"]).unwrap();
        assert!(p.value);
        let p = plan(&["halo", "--persistent"]).unwrap();
        assert!(p.bench == Bench::Halo && p.persistent);
        let p = plan(&["latency", "--strided", "1K"]).unwrap();
        assert_eq!(p.strided, Some(1024));
        let p = plan(&["latency", "-i", "5", "-x", "0", "--json"]).unwrap();
        assert_eq!(
            (p.iters_for(1 << 20), p.warmup_for(8), p.json),
            (5, 0, true)
        );
    }

    #[test]
    fn bad_words_are_errors() {
        for bad in [
            &["latency", "-m", "9:3"][..],
            &["latency", "-m", "x"],
            &["latency", "-m", "2G"],
            &["latency", "-i", "0"],
            &["latency", "-i", "-1"],
            &["latency", "-x"],
            &["latency", "--frob"],
            &["nonsense"],
            &["latency", "latency"],
            &["bw", "-W", "0"],
            &["bw", "--value"],
            &["latency", "--persistent"],
            &["bw", "--strided", "64"],
            &["latency", "--strided", "0"],
            &["latency", "--value", "--strided", "64"],
            &[],
        ] {
            let e = plan(bad).unwrap_err();
            assert!(!e.contains('\n'), "{bad:?}: {e}");
        }
        match parse(["plot", "a.json", "b.json", "-o", "x.svg"].map(String::from)).unwrap() {
            Parsed::Plot(p) => assert_eq!((p.inputs.len(), p.out), (2, PathBuf::from("x.svg"))),
            other => panic!("{other:?}"),
        }
        for bad in [&["plot"][..], &["plot", "a.json"], &["plot", "-o", "x.svg"]] {
            let e = parse(bad.iter().map(|s| s.to_string())).unwrap_err();
            assert!(
                e.contains("-o FILE.svg") && !e.contains('\n'),
                "{bad:?}: {e}"
            );
        }
        // Misspellings get the nearest name.
        assert!(plan(&["latncy"])
            .unwrap_err()
            .contains("did you mean latency"));
        assert!(plan(&["latency", "--jsn"]).unwrap_err().contains("--json"));
    }
}
