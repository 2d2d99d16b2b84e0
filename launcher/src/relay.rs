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

/// The longest piece of a line a relay holds: a longer line is passed on in pieces of this
/// size, so a rank that prints without newlines cannot make mprun (or a helper) buffer without
/// bound. (Pieces of such a line may interleave with other ranks' lines.) The largest link
/// frame, so that a helper sends each piece as one frame.
pub const MAX_PIECE: usize = crate::link::MAX_PAYLOAD;

/// Reads `from` line by line until its end (or an error, or `f` returning false), handing `f`
/// each line in one buffer, `prefix` first; a line longer than `max` bytes comes in pieces, only
/// the first with the prefix. A last line without a newline gets one. (Also the helper's relay
/// on other hosts, which sends the pieces on as frames.)
pub fn for_each_line(
    from: impl Read,
    prefix: &[u8],
    max: u64,
    mut f: impl FnMut(&mut Vec<u8>) -> bool,
) {
    let mut r = BufReader::with_capacity(64 << 10, from);
    let mut line = Vec::new();
    let mut at_start = true;
    loop {
        line.clear();
        if at_start {
            line.extend_from_slice(prefix);
        }
        match (&mut r).take(max).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                at_start = line.last() == Some(&b'\n');
                if !at_start && (n as u64) < max {
                    // Short of `max` and no newline: the stream ended inside this line.
                    line.push(b'\n');
                    at_start = true;
                }
                if !f(&mut line) {
                    return;
                }
            }
        }
    }
}

/// Writes one line (or piece of a long one) to `to` in one write, under the stream's lock, so
/// that it never mixes with another rank's. False if mprun's stream is gone. (Also used for the
/// lines ranks on other hosts send through their helper.)
pub fn write_line(to: Stream, line: &[u8]) -> bool {
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
            for_each_line(from, prefix.as_bytes(), MAX_PIECE as u64, |line| {
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

#[cfg(test)]
mod tests {
    use super::for_each_line;

    fn pieces(input: &[u8], prefix: &[u8], max: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for_each_line(input, prefix, max, |l| {
            out.push(l.clone());
            true
        });
        out
    }

    #[test]
    fn lines_come_whole_with_their_prefix() {
        assert_eq!(
            pieces(b"a\nbc\n", b"[0] ", 100),
            vec![b"[0] a\n".to_vec(), b"[0] bc\n".to_vec()]
        );
    }

    #[test]
    fn a_last_line_without_newline_gets_one() {
        assert_eq!(
            pieces(b"a\nbc", b"", 100),
            vec![b"a\n".to_vec(), b"bc\n".to_vec()]
        );
        assert!(pieces(b"", b"[0] ", 100).is_empty());
    }

    #[test]
    fn a_long_line_comes_in_pieces_without_added_newlines() {
        let line = [vec![b'x'; 10], b"\nend\n".to_vec()].concat();
        let got = pieces(&line, b"[1] ", 4);
        // Pieces of at most 4 bytes read; the prefix only where a line starts.
        assert_eq!(got[0], b"[1] xxxx".to_vec());
        assert_eq!(got[1], b"xxxx".to_vec());
        assert_eq!(got[2], b"xx\n".to_vec());
        assert_eq!(got[3], b"[1] end\n".to_vec());
        let joined: Vec<u8> = got.concat();
        assert_eq!(joined, b"[1] xxxxxxxxxx\n[1] end\n".to_vec());
    }
}
