//! How a rank waits: spin briefly, then sleep in the poller.
//!
//! On our VMs a process that sleeps in `epoll_wait` pays about 20 µs to wake up (measured: 5.9 µs
//! spinning vs 28.9 µs blocking for an 8-byte TCP ping-pong), so a wait first
//! polls without sleeping for up to a *spin budget*, then sleeps. The budget adapts: a wait that
//! ended within the maximum spin (spinning did or would have paid off) doubles it; a longer wait
//! (the peer was computing, or is starved of CPU) halves it, so a rank that mostly waits for
//! slow peers stops burning CPU. When this host runs more ranks than it has cores, a spinning rank
//! yields the CPU between polls, so the peer it waits for can run: this is what keeps mpr usable
//! when oversubscribed, where spinning runtimes collapse.

use std::time::Duration;

/// Smallest budget a successful wait raises it to.
const MIN_STEP: Duration = Duration::from_micros(5);

/// The longest spin when this host runs more ranks than cores. Measured with 4 and 8 ranks on
/// 2 cores (`mpr-bench barrier`, `allreduce -m 8:8`): a spin budget of 0, 10, 20 or 50 µs gave
/// 60-80 µs per 4-rank barrier and 160-220 µs per 8-rank allreduce, 200 µs gave 163 and 395: a
/// spinning rank, even one that yields, holds a core its peers need to answer.
const OVERSUBSCRIBED_MAX: Duration = Duration::from_micros(20);

pub(crate) struct Waiter {
    budget: Duration,
    max: Duration,
    /// More ranks than cores on this host: yield between polls.
    pub yield_between: bool,
}

impl Waiter {
    pub(crate) fn new(max_spin_us: u32, local_ranks: usize, cores: usize) -> Waiter {
        let oversubscribed = local_ranks > cores;
        let mut max = Duration::from_micros(max_spin_us as u64);
        if oversubscribed {
            max = max.min(OVERSUBSCRIBED_MAX);
        }
        Waiter {
            budget: max,
            max,
            yield_between: oversubscribed,
        }
    }

    /// How long the next wait may spin.
    pub(crate) fn budget(&self) -> Duration {
        self.budget
    }

    /// Feeds back how long a wait took in all.
    pub(crate) fn record(&mut self, waited: Duration) {
        if self.max.is_zero() {
            return;
        }
        self.budget = if waited <= self.max {
            (self.budget * 2).max(MIN_STEP).min(self.max)
        } else {
            self.budget / 2
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_adapts_within_bounds() {
        let mut w = Waiter::new(100, 2, 2);
        assert!(!w.yield_between);
        assert_eq!(w.budget(), Duration::from_micros(100));
        for _ in 0..20 {
            w.record(Duration::from_millis(5));
        }
        assert!(w.budget() < MIN_STEP);
        w.record(Duration::from_micros(30));
        assert_eq!(w.budget(), MIN_STEP);
        for _ in 0..20 {
            w.record(Duration::from_micros(1));
        }
        assert_eq!(w.budget(), Duration::from_micros(100));
        let crowded = Waiter::new(100, 4, 2);
        assert!(crowded.yield_between);
        assert_eq!(crowded.budget(), OVERSUBSCRIBED_MAX);
        let mut never = Waiter::new(0, 1, 2);
        assert!(!never.yield_between);
        never.record(Duration::from_micros(1));
        assert!(never.budget().is_zero());
    }
}
