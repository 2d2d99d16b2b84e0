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
            let mut r = BufReader::with_capacity(64 << 10, from);
            let prefix = if tag {
                format!("[{rank}] ")
            } else {
                String::new()
            };
            let mut line = prefix.clone().into_bytes();
            loop {
                line.truncate(prefix.len());
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if !write_line(to, &mut line) {
                            break;
                        }
                    }
                }
            }
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
