//! Replaying a trace as a process of a simulated machine: every reference
//! becomes a one-byte access (instruction fetch, read or write) of a
//! process whose memory holds the trace's pages, through oxmm's MMU and
//! fault path, so the machine's counters (faults, RSS, AnonPages, the LRU
//! lists) see the program.

use oxmm::mm_types::{default_rlimits, personality};
use oxmm::mmap::{map, prot};
use oxmm::vmstat::VmEvent;

use std::sync::Arc;

use super::replay::RefString;
use super::Kind;
use crate::machine::Machine;
use crate::processes::{Program, Step, StepCx};

/// What the replayed process did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessReplay {
    /// Accesses made.
    pub accesses: u64,
    /// Accesses that ended in a signal (none for a well-formed trace).
    pub failed: u64,
    /// Page faults.
    pub faults: u64,
    /// Peak RSS in pages.
    pub peak_rss_pages: u64,
    /// Anonymous pages the process held at its peak.
    pub anon_pages: u64,
}

/// Replays `refs` as one process on `m`: the distinct pages are laid out
/// side by side in an anonymous mapping (readable, writable and
/// executable, like a program's text and data together), in order of
/// first reference.
pub fn replay_as_process(m: &Machine, refs: &RefString) -> Result<ProcessReplay, String> {
    let k = &m.kernel;
    let t = k
        .create_process("replay", default_rlimits(), personality::ADDR_NO_RANDOMIZE)
        .map_err(|e| format!("cannot create the process: {e:?}"))?;
    let pages = refs.distinct().max(1) as u64;
    let len = pages * 4096;
    let base = k
        .sys_mmap(
            &t,
            0,
            len,
            prot::READ | prot::WRITE | prot::EXEC,
            map::PRIVATE | map::ANONYMOUS | map::NORESERVE,
            -1,
            0,
        )
        .map_err(|e| format!("cannot map {} pages: {e:?}", pages))?;
    let f0 = k.vm_event(VmEvent::Pgfault);
    let mut st = ProcessReplay::default();
    let mut b = [0u8; 1];
    for (i, &id) in refs.refs().iter().enumerate() {
        let a = base + u64::from(id) * 4096;
        let ok = match refs.kind(i) {
            Kind::Instr => k.exec_user(&t, a).is_ok(),
            Kind::Read => k.read_user(&t, a, &mut b).is_ok(),
            Kind::Write => k.write_user(&t, a, &[1]).is_ok(),
        };
        st.accesses += 1;
        if !ok {
            st.failed += 1;
        }
    }
    st.faults = k.vm_event(VmEvent::Pgfault) - f0;
    st.peak_rss_pages = t.mm.hiwater_rss.load(std::sync::atomic::Ordering::Relaxed);
    st.anon_pages = t.mm.counter(oxmm::mm_types::mm_counter::ANONPAGES);
    k.exit_task(&t);
    Ok(st)
}

/// A trace replayed as a process of a scenario (`kind = "replay"`): the
/// trace is read when the scenario is loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceReplay {
    /// The trace's path as the scenario gives it.
    pub path: String,
    /// Its references.
    pub refs: Arc<RefString>,
}

impl TraceReplay {
    /// Reads the trace at `path` (`format` `None`: detected), naming the
    /// file in errors.
    pub fn load(path: &std::path::Path, shown: &str, format: Option<super::Format>) -> Result<TraceReplay, String> {
        let reader = super::TraceReader::open(path, format).map_err(|e| e.to_string())?;
        let refs = RefString::from_trace(reader, &path.display().to_string()).map_err(|e| e.to_string())?;
        Ok(TraceReplay { path: shown.to_string(), refs: Arc::new(refs) })
    }
}

/// [`TraceReplay`] as a step machine: one reference per step.
struct ReplayRun {
    refs: Arc<RefString>,
    base: Option<u64>,
    i: usize,
}

/// Creates the step machine of a `replay` workload.
pub(crate) fn program(r: &TraceReplay) -> Box<dyn Program> {
    Box::new(ReplayRun { refs: r.refs.clone(), base: None, i: 0 })
}

impl Program for ReplayRun {
    fn step(&mut self, cx: &mut StepCx<'_>) -> Step {
        let k = &cx.m.kernel;
        let Some(base) = self.base else {
            let len = (self.refs.distinct().max(1) as u64) * 4096;
            let flags = map::PRIVATE | map::ANONYMOUS | map::NORESERVE;
            return match k.sys_mmap(cx.task, 0, len, prot::READ | prot::WRITE | prot::EXEC, flags, -1, 0) {
                Ok(a) => {
                    self.base = Some(a);
                    Step::Ran(0)
                }
                Err(e) => {
                    cx.st.failures += 1;
                    cx.st.last_error = Some(crate::user_workloads::errno_note("mmap", e));
                    Step::Exit
                }
            };
        };
        let Some(&id) = self.refs.refs().get(self.i) else { return Step::Exit };
        let a = base + u64::from(id) * 4096;
        let mut b = [0u8; 1];
        let r = match self.refs.kind(self.i) {
            Kind::Instr => k.exec_user(cx.task, a).map(|_| ()),
            Kind::Read => k.read_user(cx.task, a, &mut b),
            Kind::Write => k.write_user(cx.task, a, &[1]),
        };
        match r {
            Ok(()) => cx.st.allocs += 1,
            Err(s) => {
                cx.st.failures += 1;
                cx.st.last_error = Some(crate::user_workloads::signal_note(&s));
            }
        }
        self.i += 1;
        Step::Ran(crate::user_workloads::ACCESS_NS)
    }
    fn stop(&mut self, _cx: &mut StepCx<'_>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Record;
    use crate::MachineConfig;

    #[test]
    fn every_first_touch_faults_and_writes_make_anonymous_pages() {
        let m = Machine::boot(&MachineConfig::single(256 << 20, 1), 1).unwrap();
        let recs = [(5, Kind::Read), (5, Kind::Write), (9, Kind::Instr), (5, Kind::Read), (11, Kind::Write)];
        let refs = RefString::from_records(recs.iter().map(|&(p, k)| Ok::<_, String>(Record::new(p, k)))).unwrap();
        let st = replay_as_process(&m, &refs).unwrap();
        assert_eq!(st.accesses, 5);
        assert_eq!(st.failed, 0);
        // Page 5: read (zero page), then write (a copy); page 9: fetch
        // (zero page); page 11: write.
        assert_eq!(st.faults, 4);
        assert_eq!(st.anon_pages, 2);
        assert_eq!(st.peak_rss_pages, 2);
    }
}
