//! The deterministic scheduler skeleton: timed events on the virtual
//! clock, run in (time, insertion) order, so equal times never depend on
//! host timing. Tasks and kthreads (kswapd, the flusher, khugepaged...)
//! hang their periodic work here as later components land.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What an event is for; the machine's run loop dispatches on it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventKind {
    /// A task (by id) becomes runnable on a CPU.
    RunTask {
        /// The task.
        task: usize,
        /// The CPU.
        cpu: usize,
    },
    /// A kernel thread's periodic wake-up, by name.
    Kthread(&'static str),
    /// Take a statistics sample for the report.
    Sample,
    /// The end of the run.
    Stop,
}

/// A timed event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Event {
    /// Virtual time, ns.
    pub at_ns: u64,
    /// Tie-break: order of insertion.
    pub seq: u64,
    /// What happens.
    pub kind: EventKind,
}

/// The event queue and the CPUs' run state.
#[derive(Debug)]
pub struct Scheduler {
    queue: BinaryHeap<Reverse<Event>>,
    seq: u64,
    /// Number of CPUs.
    pub nr_cpus: usize,
}

impl Scheduler {
    /// An empty scheduler for `nr_cpus` CPUs.
    pub fn new(nr_cpus: usize) -> Scheduler {
        Scheduler { queue: BinaryHeap::new(), seq: 0, nr_cpus }
    }
    /// Queues an event.
    pub fn at(&mut self, at_ns: u64, kind: EventKind) {
        self.seq += 1;
        self.queue.push(Reverse(Event { at_ns, seq: self.seq, kind }));
    }
    /// Takes the earliest event.
    pub fn next_event(&mut self) -> Option<Event> {
        self.queue.pop().map(|Reverse(e)| e)
    }
    /// Events waiting.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn events_run_in_time_then_insertion_order() {
        let mut s = Scheduler::new(2);
        s.at(20, EventKind::Stop);
        s.at(10, EventKind::Kthread("kswapd0"));
        s.at(10, EventKind::Sample);
        let order: Vec<_> = std::iter::from_fn(|| s.next_event()).map(|e| e.kind).collect();
        assert_eq!(order, vec![EventKind::Kthread("kswapd0"), EventKind::Sample, EventKind::Stop]);
    }
}
