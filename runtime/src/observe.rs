//! What a rank's calls did, for `mprun --profile`: per operation, how many calls, the bytes of
//! the callers' buffers and the time spent in them.
//!
//! Every public call that communicates opens a [`Seen`] guard first thing (`Comm::seen`), which
//! costs one branch when profiling is off (`MPR_PROFILE`, which `mprun --profile` sets). Only
//! the outermost call of a nest counts: an `allreduce` made of sends and receives is one
//! `allreduce`, and `wait` on a request is its own operation (the time a nonblocking exchange
//! really waited). The counts live beside the engine, not in it, so that a guard can close
//! whatever the engine's borrow state; at finalize they go to mprun as `PROFILE` lines.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// One operation's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpCount {
    pub name: &'static str,
    pub calls: u64,
    pub bytes: u64,
    pub ns: u64,
}

/// A rank's counts.
#[derive(Debug)]
pub(crate) struct Observer {
    /// When the rank joined the job.
    pub started: Instant,
    /// Calls open now (nested ones included).
    depth: u32,
    /// The outermost open call: its name, bytes and start.
    open: Option<(&'static str, u64, Instant)>,
    /// By first call (few operations: a list beats a map).
    pub ops: Vec<OpCount>,
}

impl Observer {
    pub(crate) fn new() -> Observer {
        Observer {
            started: Instant::now(),
            depth: 0,
            open: None,
            ops: Vec::new(),
        }
    }

    fn begin(&mut self, name: &'static str, bytes: u64) {
        self.depth += 1;
        if self.depth == 1 {
            self.open = Some((name, bytes, Instant::now()));
        }
    }

    fn end(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        if self.depth > 0 {
            return;
        }
        let Some((name, bytes, at)) = self.open.take() else {
            return;
        };
        let ns = u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match self.ops.iter_mut().find(|o| o.name == name) {
            Some(o) => {
                o.calls += 1;
                o.bytes = o.bytes.saturating_add(bytes);
                o.ns = o.ns.saturating_add(ns);
            }
            None => self.ops.push(OpCount {
                name,
                calls: 1,
                bytes,
                ns,
            }),
        }
    }
}

/// A call being counted: counted when dropped (at the end of the call, whichever way it
/// returns). Inert when profiling is off.
#[must_use = "a call is counted until the guard is dropped"]
pub(crate) struct Seen(Option<Rc<RefCell<Observer>>>);

impl Seen {
    /// Opens call `name` of `bytes` on `observer` (if profiling).
    #[inline]
    pub(crate) fn open(
        observer: Option<&Rc<RefCell<Observer>>>,
        name: &'static str,
        bytes: usize,
    ) -> Seen {
        match observer {
            None => Seen(None),
            Some(o) => {
                o.borrow_mut().begin(name, bytes as u64);
                Seen(Some(o.clone()))
            }
        }
    }
}

impl Drop for Seen {
    fn drop(&mut self) {
        if let Some(o) = &self.0 {
            o.borrow_mut().end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_outermost_call_counts() {
        let o = Rc::new(RefCell::new(Observer::new()));
        for _ in 0..3 {
            let _outer = Seen::open(Some(&o), "allreduce", 80);
            let _inner = Seen::open(Some(&o), "send", 40);
        }
        {
            let _s = Seen::open(Some(&o), "send", 8);
        }
        let _off = Seen::open(None, "send", 1);
        let ops = &o.borrow().ops;
        assert_eq!(ops.len(), 2, "{ops:?}");
        assert_eq!(
            (ops[0].name, ops[0].calls, ops[0].bytes),
            ("allreduce", 3, 240)
        );
        assert_eq!((ops[1].name, ops[1].calls, ops[1].bytes), ("send", 1, 8));
    }
}
