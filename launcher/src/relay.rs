//! Ranks' stdio: each rank's stdout and stderr are read line by line by a thread of their own and
//! written to mprun's stdout and stderr one whole line per `write`, under the stream's lock, so a
//! line is never mixed with another rank's. mprun's stdin goes to rank 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc::Sender;

use crate::report::Event;

/// Which of mprun's streams a relay writes to.
#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Reads `from` line by line until its end (or an error, or `f` returning false), handing `f`
/// each line after `prefix` in one buffer; a line longer than `max` bytes comes in pieces.
/// (Also the helper's relay on other hosts, which sends the lines on as frames.)
pub fn for_each_line(
    from: impl Read,
    prefix: &[u8],
    max: u64,
    mut f: impl FnMut(&mut Vec<u8>) -> bool,
) {
    let mut r = BufReader::with_capacity(64 << 10, from);
    let mut line = prefix.to_vec();
    loop {
        line.truncate(prefix.len());
        match (&mut r).take(max).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if !f(&mut line) {
                    return;
                }
            }
        }
    }
}

/// Writes one whole line (ending it with a newline if it has none) to `to` in one write, under
/// the stream's lock, so that it never mixes with another rank's. False if mprun's stream is
/// gone. (Also used for the lines ranks on other hosts send through their helper.)
pub fn write_line(to: Stream, line: &mut Vec<u8>) -> bool {
    if line.last() != Some(&b'\n') {
        line.push(b'\n');
    }
    match to {
        Stream::Stdout => std::io::stdout().lock().write_all(line).is_ok(),
        Stream::Stderr => std::io::stderr().lock().write_all(line).is_ok(),
    }
}

/// Relays `from` line by line; sends `Event::OutputClosed` at end of stream.
pub fn output(
    rank: usize,
    from: impl Read + Send + 'static,
    to: Stream,
    tag: bool,
    events: Sender<Event>,
) {
    let spawned = std::thread::Builder::new()
        .name(format!("relay-{rank}"))
        .spawn(move || {
            let prefix = if tag {
                format!("[{rank}] ")
            } else {
                String::new()
            };
            for_each_line(from, prefix.as_bytes(), u64::MAX, |line| {
                write_line(to, line)
            });
            if let Stream::Stdout = to {
                let _ = std::io::stdout().flush();
            }
            let _ = events.send(Event::OutputClosed);
        });
    if spawned.is_err() {
        eprintln!("mprun: cannot start an output relay for rank {rank}");
    }
}

/// Copies mprun's stdin to rank 0 until either side closes.
pub fn stdin(mut to: impl Write + Send + 'static) {
    let _ = std::thread::Builder::new()
        .name("relay-stdin".into())
        .spawn(move || {
            let mut buf = [0u8; 16 << 10];
            let mut input = std::io::stdin();
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).and_then(|_| to.flush()).is_err() {
                            break;
                        }
                    }
                }
            }
            // Dropping `to` closes rank 0's stdin.
        });
}
