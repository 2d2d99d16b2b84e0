//! The command line, parsed by clap into [`Options`]: options first, then the program and its
//! arguments (which are the program's, whatever they look like). mpirun's spellings work too:
//! `-np 4`, `-n4`, `--np=4`. Whatever clap refuses becomes one line naming the cause (with
//! clap's guess at a misspelt option), exit status 2, as every refusal of mprun is.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, Command};

use crate::error::LaunchError;

/// How ranks are dealt to hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapBy {
    /// Fill each host's slots in order.
    Slot,
    /// One rank per host, round-robin.
    Node,
}

/// Everything the command line says.
#[derive(Debug, Clone)]
pub struct Options {
    pub np: Option<usize>,
    pub hostfile: Option<PathBuf>,
    pub hosts: Option<String>,
    pub tag_output: bool,
    pub env: Vec<(String, Option<String>)>,
    pub timeout: Option<Duration>,
    pub oversubscribe: bool,
    pub map_by: MapBy,
    pub launch_agent: Option<String>,
    pub iface: Option<String>,
    pub verbose: bool,
    /// `--profile`: print where the ranks' time in mpr went when the job ends.
    pub profile: bool,
    /// `--trace FILE` (or `MPR_TRACE=FILE`): write the job's timeline there.
    pub trace: Option<PathBuf>,
    pub program: String,
    pub args: Vec<String>,
}

/// What to do.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Options>),
    Help,
    Version,
    /// `--completions SHELL`: print a completion script for that shell.
    Completions(clap_complete::Shell),
}

/// The end of `--help`, after the list of `MPR_*` knobs: what each rank is told, and the exit
/// statuses.
pub const AFTER_KNOBS: &str = "
Each rank sees MPR_RANK, MPR_SIZE, MPR_LOCAL_RANK and MPR_LOCAL_SIZE (its rank and the job's
size, in the world and on its host), and the job's private variables that mpr::init reads.

Exit status: 0 when every rank exits 0; else the code of the rank that failed first (128 + N
when killed by signal N; the code given to abort), named on one line of stderr; 124 after
--timeout; 130 after Ctrl-C or SIGTERM; 2 for bad input, before any rank starts.
";

/// What `--help` shows after its usage line: the options as clap lays them out.
const TEMPLATE: &str = "usage: {usage}\n\n{all-args}\n";

/// The command line as clap knows it. Options come first; the first word that is not an
/// option (or the word after `--`) is the program, and everything after it is the program's.
fn command() -> Command {
    let value = |id: &'static str, name: &'static str| Arg::new(id).value_name(name);
    Command::new("mprun")
        .override_usage("mprun [OPTIONS] PROGRAM [ARGS...]")
        .help_template(TEMPLATE)
        .max_term_width(100)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args_override_self(true)
        .arg(
            value("np", "N")
                .short('n')
                .long("np")
                .visible_alias("n")
                .allow_negative_numbers(true)
                .value_parser(ranks)
                .help("number of ranks (default: the hostfile's slots, else 1); also -np N"),
        )
        .arg(
            value("hostfile", "FILE")
                .long("hostfile")
                .short('f')
                .visible_alias("machinefile")
                .value_parser(clap::value_parser!(PathBuf))
                .help("`host slots=N` or `host:N` lines; `#` comments"),
        )
        .arg(
            value("host", "H[:N],H[:N]")
                .long("host")
                .short('H')
                .help("hosts inline"),
        )
        .arg(
            Arg::new("tag-output")
                .long("tag-output")
                .action(ArgAction::SetTrue)
                .help("prefix every output line with `[rank] `"),
        )
        .arg(
            value("env", "VAR[=VALUE]")
                .short('x')
                .action(ArgAction::Append)
                .value_parser(env_var)
                .help("pass an environment variable to every rank"),
        )
        .arg(
            value("timeout", "SECS")
                .long("timeout")
                .allow_negative_numbers(true)
                .value_parser(seconds)
                .help("end the job after SECS (exit status 124), saying who waits on whom"),
        )
        .arg(
            Arg::new("oversubscribe")
                .long("oversubscribe")
                .action(ArgAction::SetTrue)
                .help("allow more ranks than a hostfile's slots"),
        )
        .arg(
            value("map-by", "slot|node")
                .long("map-by")
                .value_parser(map_by)
                .help("fill each host's slots in order (default) or deal ranks round-robin"),
        )
        .arg(
            value("launch-agent", "CMD")
                .long("launch-agent")
                .help("how to reach a host (`CMD HOST COMMAND...`); also MPR_LAUNCH_AGENT"),
        )
        .arg(
            value("iface", "NAME|CIDR")
                .long("iface")
                .help("the network ranks use between hosts; also MPR_IFACE"),
        )
        .arg(
            Arg::new("profile")
                .long("profile")
                .action(ArgAction::SetTrue)
                .help(
                    "when the job ends, print on stderr each operation's calls, bytes and time \
                     (min, median, max over ranks) and the ranks longest in mpr calls",
                ),
        )
        .arg(
            value("trace", "FILE")
                .long("trace")
                .value_parser(clap::value_parser!(PathBuf))
                .help(
                    "write the job's timeline to FILE (trace-event JSON, for Perfetto's UI, \
                     chrome://tracing or speedscope); also MPR_TRACE=FILE",
                ),
        )
        .arg(
            value("completions", "SHELL")
                .long("completions")
                .value_parser(clap::value_parser!(clap_complete::Shell))
                .help("print a completion script for SHELL (bash, zsh, fish, elvish, powershell)"),
        )
        .arg(
            Arg::new("verbose")
                .short('v')
                .long("verbose")
                .action(ArgAction::SetTrue)
                .help("log what mprun does on stderr"),
        )
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::SetTrue)
                .help("this text"),
        )
        .arg(
            Arg::new("version")
                .short('V')
                .long("version")
                .action(ArgAction::SetTrue)
                .help("mprun's version"),
        )
        .arg(
            Arg::new("command")
                .value_name("PROGRAM [ARGS...]")
                .num_args(1..)
                .trailing_var_arg(true)
                .hide(true),
        )
}

/// `--help`: the usage line and the options.
pub fn help() -> String {
    command().render_help().to_string()
}

/// A completion script of mprun's options for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command(), "mprun", &mut out);
    out
}

/// How many ranks `-n` asks for.
fn ranks(v: &str) -> Result<usize, String> {
    let n: usize = v
        .parse()
        .map_err(|_| format!("-n takes a whole number, not {v:?}"))?;
    if n == 0 {
        return Err("-n must be at least 1".into());
    }
    if n > MAX_RANKS {
        return Err(format!(
            "-n {n} is more ranks than mprun supports (at most {MAX_RANKS})"
        ));
    }
    Ok(n)
}

/// The most ranks one job may have.
const MAX_RANKS: usize = 1 << 20;

/// `-x VAR` or `-x VAR=VALUE`.
fn env_var(v: &str) -> Result<(String, Option<String>), String> {
    let (k, val) = match v.split_once('=') {
        Some((k, val)) => (k.to_string(), Some(val.to_string())),
        None => (v.to_string(), None),
    };
    if k.is_empty()
        || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || k.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(format!("-x {v:?}: not a valid environment variable name"));
    }
    Ok((k, val))
}

fn seconds(v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s > 0.0 && s < 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "--timeout takes a positive number of seconds, not {v:?}"
        )),
    }
}

fn map_by(v: &str) -> Result<MapBy, String> {
    match v {
        "slot" | "core" => Ok(MapBy::Slot),
        "node" => Ok(MapBy::Node),
        other => Err(format!("--map-by takes slot or node, not {other:?}")),
    }
}

/// The arguments with mpirun's `-np` (a long option with one dash, which clap has no form for)
/// spelt `--np`, up to the program: its own arguments are left alone.
fn with_np_spelt_long(cmd: &Command, args: Vec<String>) -> Vec<String> {
    let takes_value = |word: &str| {
        cmd.get_arguments().any(|a| {
            a.get_action().takes_values()
                && (word.strip_prefix("--").is_some_and(|l| {
                    a.get_long() == Some(l) || a.get_all_aliases().is_some_and(|v| v.contains(&l))
                }) || (word.len() == 2
                    && word.strip_prefix('-').and_then(|s| s.chars().next()) == a.get_short()))
        })
    };
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "--" || !arg.starts_with('-') || arg == "-" {
            out.push(arg);
            break;
        }
        let arg = match arg.strip_prefix("-np") {
            Some("") => "--np".to_string(),
            Some(rest) if rest.starts_with('=') => format!("--np{rest}"),
            _ => arg,
        };
        let value_follows = !arg.contains('=') && takes_value(&arg);
        out.push(arg);
        if value_follows {
            out.extend(it.next());
        }
    }
    out.extend(it);
    out
}

/// One line for what clap refused.
fn one_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    // The option as given, without its value's placeholder (`--np <N>` is `--np`).
    let arg = context(ContextKind::InvalidArg)
        .map(|a| a.split(' ').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    match e.kind() {
        ErrorKind::UnknownArgument => match context(ContextKind::SuggestedArg) {
            Some(s) => format!("unknown option {arg} (did you mean {s}?)"),
            None => format!("unknown option {arg}"),
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
        ErrorKind::MissingRequiredArgument => "no program given".into(),
        ErrorKind::ArgumentConflict => format!("{arg} given twice"),
        _ => e
            .to_string()
            .lines()
            .next()
            .unwrap_or("bad command line")
            .trim_start_matches("error: ")
            .to_string(),
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, LaunchError> {
    let cmd = command();
    let args = with_np_spelt_long(&cmd, args.into_iter().collect());
    let m = cmd
        .try_get_matches_from(std::iter::once("mprun".to_string()).chain(args))
        .map_err(|e| LaunchError::Usage(one_line(&e)))?;
    if m.get_flag("help") {
        return Ok(Parsed::Help);
    }
    if m.get_flag("version") {
        return Ok(Parsed::Version);
    }
    if let Some(&shell) = m.get_one::<clap_complete::Shell>("completions") {
        return Ok(Parsed::Completions(shell));
    }
    let mut command = m
        .get_many::<String>("command")
        .into_iter()
        .flatten()
        .cloned();
    let Some(program) = command.next() else {
        return Err(LaunchError::Usage("no program given".into()));
    };
    let from_env = |var| std::env::var(var).ok().filter(|s| !s.is_empty());
    Ok(Parsed::Run(Box::new(Options {
        np: m.get_one::<usize>("np").copied(),
        hostfile: m.get_one::<PathBuf>("hostfile").cloned(),
        hosts: m.get_one::<String>("host").cloned(),
        tag_output: m.get_flag("tag-output"),
        env: m
            .get_many::<(String, Option<String>)>("env")
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        timeout: m.get_one::<Duration>("timeout").copied(),
        oversubscribe: m.get_flag("oversubscribe"),
        map_by: m.get_one::<MapBy>("map-by").copied().unwrap_or(MapBy::Slot),
        launch_agent: m
            .get_one::<String>("launch-agent")
            .cloned()
            .or_else(|| from_env("MPR_LAUNCH_AGENT")),
        iface: m
            .get_one::<String>("iface")
            .cloned()
            .or_else(|| from_env("MPR_IFACE")),
        verbose: m.get_flag("verbose"),
        profile: m.get_flag("profile"),
        trace: m.get_one::<PathBuf>("trace").cloned().or_else(|| {
            from_env("MPR_TRACE")
                .filter(|v| v != "0" && v != "1")
                .map(PathBuf::from)
        }),
        program,
        args: command.collect(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(|s| s.to_string())) {
            Ok(Parsed::Run(o)) => Ok(*o),
            Ok(other) => Err(format!("{other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn options_then_program() {
        let o = run(&[
            "-n",
            "4",
            "--tag-output",
            "-x",
            "A=1",
            "-xB",
            "--map-by=node",
            "prog",
            "-n",
            "9",
        ])
        .unwrap();
        assert_eq!(o.np, Some(4));
        assert!(o.tag_output);
        assert_eq!(
            o.env,
            vec![("A".into(), Some("1".into())), ("B".into(), None)]
        );
        assert_eq!(o.map_by, MapBy::Node);
        assert_eq!(o.program, "prog");
        assert_eq!(o.args, vec!["-n", "9"]);
        assert_eq!(run(&["-n8", "p"]).unwrap().np, Some(8));
        assert_eq!(run(&["--np=3", "p"]).unwrap().np, Some(3));
        assert_eq!(run(&["-np", "5", "p"]).unwrap().np, Some(5));
        assert_eq!(
            run(&["--timeout", "1.5", "p"]).unwrap().timeout,
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn bad_input_is_one_line() {
        for (args, needle) in [
            (&["-n", "0", "p"][..], "at least 1"),
            (&["-n", "-3", "p"], "whole number"),
            (&["-n", "99999999999999999999", "p"], "whole number"),
            (&["-n", "2000000", "p"], "more ranks"),
            (&["--bogus", "p"], "unknown option --bogus"),
            (&["-n"], "needs"),
            (&["-n", "2"], "no program"),
            (&["--map-by", "socket", "p"], "slot or node"),
            (&["--timeout", "-1", "p"], "positive"),
            (&["-x", "1A=2", "p"], "environment variable"),
        ] {
            let e = run(args).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
