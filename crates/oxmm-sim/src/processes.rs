//! Processes on the virtual clock: the `[[process]]` tables of a scenario
//! run concurrently, each a step machine ([`Program`]) that makes one
//! access (or a small batch) per step and says how much virtual time it
//! took.
//!
//! Scheduling is deterministic: process `i` runs on CPU `i % nr_cpus`
//! (round-robin, set with `SimHal::set_cpu` before each of its steps); a
//! CPU runs one step at a time. The next step to run is the one that can
//! start first, `max(the process is ready, its CPU is free)`; ties go to
//! the process that has waited longest (ready first), then to the one
//! earlier in the file, so processes sharing a CPU take turns. A turn is
//! one step that takes time; bookkeeping steps that take none (a single
//! `mmap`, a `fork`) run on within the same turn. The clock moves to the
//! start of each turn; a step runs whole.
//!
//! A process starts at its `start` (counted from the moment the runner
//! starts: boot, or the end of the scenario's `[[workload]]`s) with its own
//! address space, `comm` and resource limits, and its own random stream
//! derived from the seed and its place in the file, so what one process
//! draws does not depend on the others. At `duration` every process still
//! running is stopped as a kill would stop it: it exits, its memory is
//! freed. Each process's page faults are counted around its own steps
//! (those of workers it forks included, as `time` counts waited-for
//! children), and its peak RSS is the `VmHWM` of `/proc/PID/status`.

use std::sync::Arc;

use oxmm::mm_types::{default_rlimits, personality, rlimit, Rlimit, Task, RLIM_INFINITY};
use oxmm::vmstat::VmEvent;

use crate::file_io::Tmpfs;
use crate::machine::Machine;
use crate::rng::SimRng;
use crate::workload::{Workload, WorkloadStats};

/// What one step of a [`Program`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// It ran and took this much virtual time (ns; 0 for bookkeeping
    /// steps such as a single `mmap`).
    Ran(u64),
    /// The program is done and exits.
    Exit,
}

/// What a step sees: the machine, its process, its random stream, the
/// tmpfs namespace, and the counters it keeps.
pub struct StepCx<'a> {
    /// The machine.
    pub m: &'a Machine,
    /// The process (its main task).
    pub task: &'a Arc<Task>,
    /// The process's random stream.
    pub rng: &'a mut SimRng,
    /// Named tmpfs files (`/dev/shm`).
    pub fs: &'a mut Tmpfs,
    /// The process's counters.
    pub st: &'a mut WorkloadStats,
}

/// A user workload as a step machine.
pub trait Program {
    /// Runs one step.
    fn step(&mut self, cx: &mut StepCx<'_>) -> Step;
    /// Releases what the program holds besides its main task (workers,
    /// open files), at its exit or when it is killed.
    fn stop(&mut self, cx: &mut StepCx<'_>);
}

/// Resource limits of a process (`RLIMIT_*`), soft and hard alike, as
/// `prlimit --as=...` would set them; `None` keeps Linux's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_AS, bytes ([`RLIM_INFINITY`]: unlimited).
    pub address_space: Option<u64>,
    /// RLIMIT_DATA.
    pub data: Option<u64>,
    /// RLIMIT_STACK.
    pub stack: Option<u64>,
    /// RLIMIT_MEMLOCK.
    pub memlock: Option<u64>,
}

impl Limits {
    /// The limits array a new process gets: Linux's defaults with these set.
    pub fn rlimits(&self) -> [Rlimit; rlimit::NLIMITS] {
        let mut r = default_rlimits();
        for (res, v) in [
            (rlimit::AS, self.address_space),
            (rlimit::DATA, self.data),
            (rlimit::STACK, self.stack),
            (rlimit::MEMLOCK, self.memlock),
        ] {
            if let Some(v) = v {
                r[res] = Rlimit { cur: v, max: v };
            }
        }
        r
    }

    /// `as=1 GiB, stack=8 MiB` style text of the limits that are set.
    pub fn describe(&self) -> String {
        let show = |v: u64| if v == RLIM_INFINITY { "unlimited".to_string() } else { crate::workload::size_text(v) };
        [("as", self.address_space), ("data", self.data), ("stack", self.stack), ("memlock", self.memlock)]
            .iter()
            .filter_map(|(n, v)| v.map(|v| format!("{n}={}", show(v))))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One `[[process]]` of a scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessSpec {
    /// Its name (`comm`, cut to Linux's 15 bytes for the task).
    pub name: String,
    /// When it starts, virtual ns after the runner starts.
    pub start_ns: u64,
    /// Its resource limits.
    pub limits: Limits,
    /// What it runs (a user workload).
    pub workload: Workload,
}

impl ProcessSpec {
    /// Virtual time from the runner's start to the process's expected end
    /// if it ran undisturbed on a machine with `mem` bytes of memory.
    pub fn expected_end_ns(&self, mem: u64) -> u64 {
        let cap = self.limits.address_space.map_or(mem, |l| l.min(mem));
        self.start_ns.saturating_add(self.workload.expected_virtual_ns_within(cap))
    }
}

/// Where a process is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcState {
    /// Not started yet (or never: it was due after `duration`).
    Waiting,
    /// Running.
    Running,
    /// Exited on its own.
    Exited,
    /// Stopped at `duration`.
    Killed,
    /// Could not be created.
    Failed(String),
}

/// A process of a run, as the summary and the report show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessRun {
    /// The name from the scenario.
    pub name: String,
    /// The workload's one-line description.
    pub describe: String,
    /// Its pid, once started.
    pub pid: Option<u64>,
    /// The CPU it runs on.
    pub cpu: usize,
    /// Virtual time it started, ns.
    pub start_ns: Option<u64>,
    /// Virtual time it exited or was killed, ns.
    pub end_ns: Option<u64>,
    /// Where it is.
    pub state: ProcState,
    /// Page faults that were not major (`min_flt`).
    pub minor_faults: u64,
    /// Major faults (`maj_flt`): 0 until swap and the page cache exist.
    pub major_faults: u64,
    /// Peak RSS (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
    /// The workload's own counters.
    pub stats: WorkloadStats,
}

/// A process being run.
struct Slot {
    ready_ns: u64,
    rng: SimRng,
    task: Option<Arc<Task>>,
    prog: Option<Box<dyn Program>>,
}

/// `comm` as Linux keeps it: at most 15 bytes (`TASK_COMM_LEN` - 1).
pub fn comm(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

fn pgfaults(m: &Machine) -> (u64, u64) {
    (m.kernel.vm_event(VmEvent::Pgfault), m.kernel.vm_event(VmEvent::Pgmajfault))
}

/// Peak RSS in pages as `/proc/PID/status` prints `VmHWM`.
fn hwm_pages(t: &Task) -> u64 {
    t.mm.hiwater_rss.load(std::sync::atomic::Ordering::Relaxed).max(t.mm.rss_pages())
}

/// Creates the process of `spec` on `m` and its program.
fn start(m: &Machine, name: &str, limits: &Limits, w: &Workload) -> Result<(Arc<Task>, Box<dyn Program>), String> {
    let t = m
        .kernel
        .create_process(comm(name), limits.rlimits(), personality::ADDR_NO_RANDOMIZE)
        .map_err(|e| format!("cannot create the process: {}", e.name()))?;
    match w.program() {
        Some(p) => Ok((t, p)),
        None => {
            m.kernel.exit_task(&t);
            Err("a kernel workload does not run as a process".to_string())
        }
    }
}

/// Runs one step of `run`'s program and counts its faults.
fn step(m: &Machine, fs: &mut Tmpfs, slot: &mut Slot, run: &mut ProcessRun) -> Step {
    let (Some(task), Some(prog)) = (slot.task.as_ref(), slot.prog.as_mut()) else { return Step::Exit };
    let (f0, j0) = pgfaults(m);
    let mut cx = StepCx { m, task, rng: &mut slot.rng, fs, st: &mut run.stats };
    let r = prog.step(&mut cx);
    let (f1, j1) = pgfaults(m);
    run.major_faults += j1 - j0;
    run.minor_faults += (f1 - f0).saturating_sub(j1 - j0);
    r
}

/// Ends `run`'s process at `now`: the program lets go of what it holds,
/// the peak RSS is read, the task exits.
fn end(m: &Machine, fs: &mut Tmpfs, slot: &mut Slot, run: &mut ProcessRun, now: u64, state: ProcState) {
    let Some(task) = slot.task.take() else { return };
    let (f0, j0) = pgfaults(m);
    if let Some(mut prog) = slot.prog.take() {
        let mut cx = StepCx { m, task: &task, rng: &mut slot.rng, fs, st: &mut run.stats };
        prog.stop(&mut cx);
    }
    let (f1, j1) = pgfaults(m);
    run.major_faults += j1 - j0;
    run.minor_faults += (f1 - f0).saturating_sub(j1 - j0);
    run.peak_rss_bytes = hwm_pages(&task) * 4096;
    run.stats.peak_rss_bytes = run.peak_rss_bytes;
    run.stats.faults = run.minor_faults + run.major_faults;
    m.kernel.exit_task(&task);
    run.end_ns = Some(now);
    run.state = state;
}

/// Runs `specs` concurrently on `m` until every process has exited, or
/// until `duration_ns` after the start, when the ones still running are
/// killed and the clock stands at the end of the duration. `seed` derives
/// each process's random stream.
///
/// `tick(m, runs)` is called after every step and every start and exit,
/// and returns the virtual time it next wants to be called at (a sampler's
/// next sample), or `None`: across an idle stretch the clock stops there
/// and calls it, so samples fall on their times. Like a workload's
/// progress callback it sees the machine read-only.
pub fn run_processes(
    m: &mut Machine,
    specs: &[ProcessSpec],
    duration_ns: Option<u64>,
    seed: u64,
    mut tick: impl FnMut(&Machine, &[ProcessRun]) -> Option<u64>,
) -> Vec<ProcessRun> {
    let origin = m.now_ns();
    let deadline = duration_ns.map(|d| origin.saturating_add(d));
    let nr_cpus = m.config.nr_cpus().max(1);
    let mut master = SimRng::new(seed ^ 0x7072_6f63_6573_7365);
    let mut slots: Vec<Slot> = specs
        .iter()
        .map(|s| {
            let at = origin.saturating_add(s.start_ns);
            Slot { ready_ns: at, rng: master.fork(), task: None, prog: None }
        })
        .collect();
    let mut runs: Vec<ProcessRun> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| ProcessRun {
            name: s.name.clone(),
            describe: s.workload.describe(),
            pid: None,
            cpu: i % nr_cpus,
            start_ns: None,
            end_ns: None,
            state: ProcState::Waiting,
            minor_faults: 0,
            major_faults: 0,
            peak_rss_bytes: 0,
            stats: WorkloadStats::default(),
        })
        .collect();
    let mut cpu_free = vec![origin; nr_cpus];
    let mut fs = std::mem::take(&mut m.tmpfs);
    let mut wake = tick(m, &runs);
    loop {
        // The step that can start first; ties to the longest waiting, then file order.
        let next = (0..slots.len())
            .filter(|&i| matches!(runs[i].state, ProcState::Waiting | ProcState::Running))
            .map(|i| (slots[i].ready_ns.max(cpu_free[runs[i].cpu]), slots[i].ready_ns, i))
            .min();
        let limit = match (next, deadline) {
            (Some((t, _, _)), Some(d)) => t.min(d),
            (Some((t, _, _)), None) => t,
            (None, Some(d)) => d,
            (None, None) => break,
        };
        // Idle until then: stop where the callback asked to be called.
        if let Some(w) = wake.filter(|&w| w > m.now_ns() && w < limit) {
            m.advance(w - m.now_ns());
            wake = tick(m, &runs);
            continue;
        }
        if limit > m.now_ns() {
            m.advance(limit - m.now_ns());
        }
        let Some((_, _, i)) = next.filter(|&(t, _, _)| deadline.is_none_or(|d| t < d)) else { break };
        let (slot, run) = (&mut slots[i], &mut runs[i]);
        m.hal.set_cpu(run.cpu);
        if run.state == ProcState::Waiting {
            match start(m, &specs[i].name, &specs[i].limits, &specs[i].workload) {
                Ok((task, prog)) => {
                    run.pid = Some(task.pid);
                    run.start_ns = Some(m.now_ns());
                    run.state = ProcState::Running;
                    slot.task = Some(task);
                    slot.prog = Some(prog);
                }
                Err(e) => {
                    run.state = ProcState::Failed(e);
                    run.start_ns = Some(m.now_ns());
                    run.end_ns = Some(m.now_ns());
                    wake = tick(m, &runs);
                    continue;
                }
            }
        }
        // A turn is one step that takes time: bookkeeping steps (an mmap,
        // a fork) run on in the same turn.
        loop {
            match step(m, &mut fs, slot, run) {
                Step::Ran(0) => continue,
                Step::Ran(ns) => {
                    slot.ready_ns = m.now_ns().saturating_add(ns);
                    cpu_free[run.cpu] = slot.ready_ns;
                }
                Step::Exit => end(m, &mut fs, slot, run, m.now_ns(), ProcState::Exited),
            }
            break;
        }
        wake = tick(m, &runs);
    }
    // The clock ends at the deadline, or when the last step's time is up.
    let end_at = deadline.unwrap_or_else(|| slots.iter().map(|s| s.ready_ns).chain([m.now_ns()]).max().unwrap_or(0));
    while let Some(w) = wake.filter(|&w| w > m.now_ns() && w < end_at) {
        m.advance(w - m.now_ns());
        wake = tick(m, &runs);
    }
    if end_at > m.now_ns() {
        m.advance(end_at - m.now_ns());
    }
    let now = m.now_ns();
    for (slot, run) in slots.iter_mut().zip(runs.iter_mut()) {
        if run.state == ProcState::Running {
            m.hal.set_cpu(run.cpu);
            // Stopped by the duration, or an exit that fell on the last instant.
            end(m, &mut fs, slot, run, now, ProcState::Killed);
        }
    }
    m.tmpfs = fs;
    tick(m, &runs);
    runs
}

/// Runs a user workload as one process from now until it exits, on the
/// running CPU with the machine's own random stream (a `[[workload]]`
/// entry); `tick(m, fraction)` after every step as in [`crate::workload`].
/// `comm` names the process.
pub fn run_single(
    m: &mut Machine,
    w: &Workload,
    comm_name: &str,
    mut tick: impl FnMut(&Machine, f64),
) -> WorkloadStats {
    let mut st = WorkloadStats::default();
    let (task, prog) = match start(m, comm_name, &Limits::default(), w) {
        Ok(x) => x,
        Err(e) => {
            st.failures += 1;
            st.last_error = Some(e);
            return st;
        }
    };
    let expected = w.expected_virtual_ns().max(1);
    let t0 = m.now_ns();
    let rng = std::mem::replace(&mut m.rng, SimRng::new(0));
    let mut fs = std::mem::take(&mut m.tmpfs);
    let mut slot = Slot { ready_ns: t0, rng, task: Some(task), prog: Some(prog) };
    let mut run = ProcessRun {
        name: comm_name.to_string(),
        describe: String::new(),
        pid: None,
        cpu: m.kernel.this_cpu(),
        start_ns: Some(t0),
        end_ns: None,
        state: ProcState::Running,
        minor_faults: 0,
        major_faults: 0,
        peak_rss_bytes: 0,
        stats: WorkloadStats::default(),
    };
    while let Step::Ran(ns) = step(m, &mut fs, &mut slot, &mut run) {
        m.advance(ns);
        tick(m, ((m.now_ns() - t0) as f64 / expected as f64).min(0.999));
    }
    let now = m.now_ns();
    end(m, &mut fs, &mut slot, &mut run, now, ProcState::Exited);
    m.rng = slot.rng;
    m.tmpfs = fs;
    tick(m, 1.0);
    run.stats
}
