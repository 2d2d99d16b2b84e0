//! The command line, parsed into [`Options`]: options first, then the program and its arguments.

use std::path::PathBuf;
use std::time::Duration;

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
    pub program: String,
    pub args: Vec<String>,
}

/// What to do.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Options>),
    Help,
    Version,
}

pub const USAGE: &str = "\
usage: mprun [OPTIONS] PROGRAM [ARGS...]

  -n, --np N            number of ranks (default: the hostfile's total slots, else 1)
  --hostfile FILE       `host slots=N` or `host:N` lines; `#` comments
  --host H[:N],H[:N]    hosts inline
  --tag-output          prefix every output line with `[rank] `
  -x VAR[=VALUE]        pass an environment variable to every rank
  --timeout SECS        end the job after SECS seconds (exit status 124), saying what each
                        rank waits for and naming a deadlock cycle
  --oversubscribe       allow more ranks than a hostfile's slots
  --map-by slot|node    fill each host's slots in order (default) or deal ranks round-robin
  --launch-agent CMD    how to reach a host (`CMD HOST COMMAND...`); also MPR_LAUNCH_AGENT
  --iface NAME|CIDR     the network ranks use between hosts; also MPR_IFACE
  -v, --verbose         log what mprun does on stderr
  -h, --help            this text
  -V, --version         mprun's version
";

/// The end of `--help`, after the list of `MPR_*` knobs: what each rank is told, and the exit
/// statuses.
pub const AFTER_KNOBS: &str = "
Each rank sees MPR_RANK, MPR_SIZE, MPR_LOCAL_RANK and MPR_LOCAL_SIZE (its rank and the job's
size, in the world and on its host), and the job's private variables that mpr::init reads.

Exit status: 0 when every rank exits 0; else the code of the rank that failed first (128 + N
when killed by signal N; the code given to abort), named on one line of stderr; 124 after
--timeout; 130 after Ctrl-C or SIGTERM; 2 for bad input, before any rank starts.
";

fn number<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T, LaunchError> {
    v.parse()
        .map_err(|_| LaunchError::Usage(format!("{opt} takes a whole number, not {v:?}")))
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, LaunchError> {
    let mut it = args.into_iter();
    let mut o = Options {
        np: None,
        hostfile: None,
        hosts: None,
        tag_output: false,
        env: Vec::new(),
        timeout: None,
        oversubscribe: false,
        map_by: MapBy::Slot,
        launch_agent: std::env::var("MPR_LAUNCH_AGENT")
            .ok()
            .filter(|s| !s.is_empty()),
        iface: std::env::var("MPR_IFACE").ok().filter(|s| !s.is_empty()),
        verbose: false,
        program: String::new(),
        args: Vec::new(),
    };
    while let Some(arg) = it.next() {
        if arg == "--" {
            let Some(p) = it.next() else {
                return Err(LaunchError::Usage("no program given after --".into()));
            };
            o.program = p;
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            o.program = arg;
            break;
        }
        // Split `--opt=value`, and `-n4` / `-xVAR`.
        let (name, inline): (String, Option<String>) =
            if let Some((n, v)) = arg.split_once('=').filter(|_| arg.starts_with("--")) {
                (n.to_string(), Some(v.to_string()))
            } else if (arg.starts_with("-n") || arg.starts_with("-x"))
                && arg.len() > 2
                && !arg.starts_with("-np")
            {
                (arg[..2].to_string(), Some(arg[2..].to_string()))
            } else {
                (arg.clone(), None)
            };
        let mut value = |what: &str| -> Result<String, LaunchError> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) => Ok(v),
                None => Err(LaunchError::Usage(format!("{name} needs {what}"))),
            }
        };
        match name.as_str() {
            "-n" | "--np" | "-np" | "--n" => {
                let n: usize = number(&name, &value("a number of ranks")?)?;
                if n == 0 {
                    return Err(LaunchError::Usage(format!("{name} must be at least 1")));
                }
                if n > 1 << 20 {
                    return Err(LaunchError::Usage(format!(
                        "{name} {n} is more ranks than mprun supports (at most {})",
                        1 << 20
                    )));
                }
                o.np = Some(n);
            }
            "--hostfile" | "--machinefile" | "-f" => {
                o.hostfile = Some(PathBuf::from(value("a file")?))
            }
            "--host" | "-H" => o.hosts = Some(value("a host list")?),
            "--tag-output" => o.tag_output = true,
            "-x" => {
                let v = value("VAR or VAR=VALUE")?;
                let (k, val) = match v.split_once('=') {
                    Some((k, val)) => (k.to_string(), Some(val.to_string())),
                    None => (v.clone(), None),
                };
                if k.is_empty()
                    || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    || k.starts_with(|c: char| c.is_ascii_digit())
                {
                    return Err(LaunchError::Usage(format!(
                        "-x {v:?}: not a valid environment variable name"
                    )));
                }
                o.env.push((k, val));
            }
            "--timeout" => {
                let v = value("a number of seconds")?;
                match v.parse::<f64>() {
                    Ok(s) if s > 0.0 && s < 1e9 => o.timeout = Some(Duration::from_secs_f64(s)),
                    _ => {
                        return Err(LaunchError::Usage(format!(
                            "--timeout takes a positive number of seconds, not {v:?}"
                        )))
                    }
                }
            }
            "--oversubscribe" => o.oversubscribe = true,
            "--map-by" => {
                o.map_by = match value("slot or node")?.as_str() {
                    "slot" | "core" => MapBy::Slot,
                    "node" => MapBy::Node,
                    other => {
                        return Err(LaunchError::Usage(format!(
                            "--map-by takes slot or node, not {other:?}"
                        )))
                    }
                }
            }
            "--launch-agent" => o.launch_agent = Some(value("a command")?),
            "--iface" => o.iface = Some(value("an interface name or CIDR")?),
            "-v" | "--verbose" => o.verbose = true,
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            _ => return Err(LaunchError::Usage(format!("unknown option {arg}"))),
        }
    }
    if o.program.is_empty() {
        return Err(LaunchError::Usage("no program given".into()));
    }
    o.args = it.collect();
    Ok(Parsed::Run(Box::new(o)))
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
