//! User-space workloads: processes with address spaces of their own, whose
//! memory accesses go through oxmm's MMU and fault path.
//!
//! - [`AnonAccess`]: one process maps anonymous memory and touches it with
//!   an access pattern (sequential, random, zipfian, strided, hot/cold),
//!   or a sequence of phases with patterns of their own.
//! - [`ForkServer`]: a server touches its memory, then forks workers that
//!   each write part of it (copy-on-write) and exit.
//! - [`HeapChurn`]: malloc-like churn over `brk` and `mmap`.
//! - [`MemoryHog`]: grows until a limit bites.
//! - [`crate::file_io::FileIo`] (files on tmpfs) and
//!   [`crate::trace::process::TraceReplay`] (a recorded program) live in
//!   their own modules.
//!
//! Each is a step machine ([`crate::processes::Program`]): a step is one
//! access (or one allocator call, one `mmap`, one chunk of a fill), so
//! processes interleave on the virtual clock. As a `[[workload]]` a kind
//! runs alone from start to end ([`crate::processes::run_single`]).

use oxmm::mmap::{map, prot};
use oxmm::vmstat::VmEvent;
use std::sync::Arc;

use oxmm::mm_types::Task;

use crate::machine::Machine;
use crate::processes::{Program, Step, StepCx};
use crate::workload::{Workload, WorkloadStats};

/// Virtual time one user access takes on the clock.
pub const ACCESS_NS: u64 = 100;

/// How an [`AnonAccess`] walks its memory.
#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    /// Page after page, wrapping around.
    Sequential,
    /// Uniformly random pages.
    Random,
    /// Zipf-distributed page popularity with exponent `skew`.
    Zipf(f64),
    /// Every `stride`-th page, wrapping around with an offset.
    Strided(u64),
    /// A hot set of `hot_fraction` of the pages receives `hot_share` of
    /// the accesses.
    HotCold {
        /// Fraction of the pages that are hot.
        hot_fraction: f64,
        /// Fraction of the accesses that go to them.
        hot_share: f64,
    },
}

/// One phase of an [`AnonAccess`]: so many accesses with one pattern.
#[derive(Clone, Debug, PartialEq)]
pub struct AnonPhase {
    /// Accesses in this phase.
    pub accesses: u64,
    /// Fraction of them that write.
    pub write_ratio: f64,
    /// The pattern.
    pub pattern: Pattern,
}

/// A process touching anonymous memory with a pattern.
#[derive(Clone, Debug, PartialEq)]
pub struct AnonAccess {
    /// Bytes mapped.
    pub size: u64,
    /// Accesses made (without phases).
    pub accesses: u64,
    /// Fraction of accesses that write (without phases).
    pub write_ratio: f64,
    /// The pattern (without phases).
    pub pattern: Pattern,
    /// Phases run one after the other over the same memory; when there
    /// are any, they replace `accesses`, `write_ratio` and `pattern`.
    pub phases: Vec<AnonPhase>,
}

impl Default for AnonAccess {
    fn default() -> Self {
        AnonAccess { size: 64 << 20, accesses: 200_000, write_ratio: 0.5, pattern: Pattern::Random, phases: Vec::new() }
    }
}

impl AnonAccess {
    /// The phases run: the given ones, or one made of the top-level keys.
    pub fn effective_phases(&self) -> Vec<AnonPhase> {
        if self.phases.is_empty() {
            vec![AnonPhase { accesses: self.accesses, write_ratio: self.write_ratio, pattern: self.pattern.clone() }]
        } else {
            self.phases.clone()
        }
    }
    /// Accesses over all phases.
    pub fn total_accesses(&self) -> u64 {
        self.effective_phases().iter().map(|p| p.accesses).fold(0, u64::saturating_add)
    }
}

/// A server that forks workers which dirty part of its memory.
#[derive(Clone, Debug, PartialEq)]
pub struct ForkServer {
    /// Bytes the server maps and touches.
    pub size: u64,
    /// Workers forked, one after the other.
    pub children: u64,
    /// Fraction of the pages each worker writes.
    pub touch_fraction: f64,
}

// The stats of a fork server: `allocs` counts workers forked,
// `peak_live_bytes` the most memory one worker copied, `peak_rss_bytes`
// the server's RSS at its peak, `faults` every fault.

impl Default for ForkServer {
    fn default() -> Self {
        ForkServer { size: 32 << 20, children: 8, touch_fraction: 0.25 }
    }
}

fn faults(m: &Machine) -> u64 {
    m.kernel.vm_event(VmEvent::Pgfault)
}

/// Samples a zipf-distributed rank in `0..n` by inverting the
/// (precomputed) cumulative weights.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u64, skew: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / (k as f64).powf(skew);
                acc
            })
            .collect();
        let total = acc;
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { cdf }
    }
    fn sample(&self, u: f64) -> u64 {
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1) as u64
    }
}

/// An errno as a short note for the summary (`mmap: ENOMEM`).
pub(crate) fn errno_note(call: &str, e: oxmm::Errno) -> String {
    format!("{call}: {}", e.name())
}

/// A signal as a short note (`SIGSEGV at 0x...`).
pub(crate) fn signal_note(s: &oxmm::memory::SigInfo) -> String {
    let name = match s.signo {
        oxmm::memory::SIGBUS => "SIGBUS",
        oxmm::memory::SIGSEGV => "SIGSEGV",
        _ => "signal",
    };
    format!("{name} at {:#x}", s.addr)
}

/// [`AnonAccess`] as a step machine.
struct AnonRun {
    phases: Vec<AnonPhase>,
    base: Option<u64>,
    pages: u64,
    phase: usize,
    i: u64,
    zipf: Option<(usize, Zipf)>,
}

impl Program for AnonRun {
    fn step(&mut self, cx: &mut StepCx<'_>) -> Step {
        let k = &cx.m.kernel;
        let Some(base) = self.base else {
            let len = self.pages * 4096;
            return match k.sys_mmap(cx.task, 0, len, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, -1, 0) {
                Ok(a) => {
                    self.base = Some(a);
                    Step::Ran(0)
                }
                Err(e) => {
                    cx.st.failures += 1;
                    cx.st.last_error = Some(errno_note("mmap", e));
                    Step::Exit
                }
            };
        };
        while self.phases.get(self.phase).is_some_and(|p| self.i >= p.accesses) {
            self.phase += 1;
            self.i = 0;
        }
        let Some(ph) = self.phases.get(self.phase) else { return Step::Exit };
        let (pages, i) = (self.pages, self.i);
        if let Pattern::Zipf(s) = ph.pattern {
            if self.zipf.as_ref().is_none_or(|(p, _)| *p != self.phase) {
                self.zipf = Some((self.phase, Zipf::new(pages, s)));
            }
        }
        let rng = &mut *cx.rng;
        let page = match &ph.pattern {
            Pattern::Sequential => i % pages,
            Pattern::Random => rng.below(pages),
            Pattern::Zipf(_) => self.zipf.as_ref().map_or(0, |(_, z)| z.sample(rng.unit())),
            Pattern::Strided(s) => (i * s.max(&1) + i * s.max(&1) / pages) % pages,
            Pattern::HotCold { hot_fraction, hot_share } => {
                let hot = ((pages as f64 * hot_fraction) as u64).clamp(1, pages);
                if rng.unit() < *hot_share {
                    rng.below(hot)
                } else {
                    hot + rng.below((pages - hot).max(1)) % (pages - hot).max(1)
                }
            }
        };
        let addr = base + page.min(pages - 1) * 4096 + rng.below(4096);
        let write = rng.unit() < ph.write_ratio;
        let mut byte = [0u8; 1];
        let r = if write { k.write_user(cx.task, addr, &[i as u8]) } else { k.read_user(cx.task, addr, &mut byte) };
        match r {
            Ok(()) => cx.st.allocs += 1,
            Err(s) => {
                cx.st.failures += 1;
                cx.st.last_error = Some(signal_note(&s));
            }
        }
        let rss = cx.task.mm.rss_pages() * 4096;
        cx.st.peak_live_bytes = cx.st.peak_live_bytes.max(rss);
        self.i += 1;
        Step::Ran(ACCESS_NS)
    }
    fn stop(&mut self, _cx: &mut StepCx<'_>) {}
}

/// Where a [`ForkServer`] is.
enum ServerState {
    Map,
    Touch(u64),
    Fork(u64),
    Worker { c: u64, child: Arc<Task>, left: u64, copies: u64 },
}

/// [`ForkServer`] as a step machine.
struct ServerRun {
    spec: ForkServer,
    pages: u64,
    base: u64,
    state: ServerState,
}

impl Program for ServerRun {
    fn step(&mut self, cx: &mut StepCx<'_>) -> Step {
        let k = &cx.m.kernel;
        let pages = self.pages;
        match &mut self.state {
            ServerState::Map => {
                match k.sys_mmap(
                    cx.task,
                    0,
                    pages * 4096,
                    prot::READ | prot::WRITE,
                    map::PRIVATE | map::ANONYMOUS,
                    -1,
                    0,
                ) {
                    Ok(a) => {
                        self.base = a;
                        self.state = ServerState::Touch(0);
                        Step::Ran(0)
                    }
                    Err(e) => {
                        cx.st.failures += 1;
                        cx.st.last_error = Some(errno_note("mmap", e));
                        Step::Exit
                    }
                }
            }
            ServerState::Touch(p) => {
                if let Err(s) = k.write_user(cx.task, self.base + *p * 4096, &[1]) {
                    cx.st.failures += 1;
                    cx.st.last_error = Some(signal_note(&s));
                }
                *p += 1;
                if *p >= pages {
                    self.state = ServerState::Fork(0);
                }
                Step::Ran(ACCESS_NS)
            }
            ServerState::Fork(c) => {
                let c = *c;
                if c >= self.spec.children {
                    return Step::Exit;
                }
                match k.fork_task(cx.task) {
                    Ok(child) => {
                        cx.st.allocs += 1;
                        let left = ((pages as f64) * self.spec.touch_fraction) as u64;
                        self.state = ServerState::Worker { c, child, left, copies: 0 };
                    }
                    Err(e) => {
                        cx.st.failures += 1;
                        cx.st.last_error = Some(errno_note("fork", e));
                        self.state = ServerState::Fork(c + 1);
                    }
                }
                Step::Ran(0)
            }
            ServerState::Worker { c, child, left, copies } => {
                if *left == 0 {
                    // A worker's RSS counts the pages it shares with the
                    // server, as Linux's does; what it copied is the memory
                    // its writes faulted in.
                    cx.st.peak_live_bytes = cx.st.peak_live_bytes.max(*copies * 4096);
                    k.exit_task(child);
                    cx.st.frees += 1;
                    self.state = ServerState::Fork(*c + 1);
                    return Step::Ran(0);
                }
                let p = cx.rng.below(pages);
                let f0 = faults(cx.m);
                let _ = k.write_user(child, self.base + p * 4096, &[*c as u8]);
                *copies += faults(cx.m) - f0;
                *left -= 1;
                Step::Ran(ACCESS_NS)
            }
        }
    }
    fn stop(&mut self, cx: &mut StepCx<'_>) {
        if let ServerState::Worker { child, .. } = &self.state {
            cx.m.kernel.exit_task(child);
            cx.st.frees += 1;
        }
        self.state = ServerState::Fork(u64::MAX);
    }
}

/// malloc-like heap churn: small blocks from the heap (`brk`, trimmed when
/// the top of the heap is free, as glibc trims), large ones (128 KiB and
/// up, glibc's `M_MMAP_THRESHOLD`) from their own `mmap`.
#[derive(Clone, Debug, PartialEq)]
pub struct HeapChurn {
    /// Allocations made.
    pub ops: u64,
    /// Blocks live at most.
    pub max_live: u64,
    /// Largest block, bytes.
    pub max_size: u64,
}

impl Default for HeapChurn {
    fn default() -> Self {
        HeapChurn { ops: 20_000, max_live: 500, max_size: 1 << 20 }
    }
}

/// glibc's mmap threshold.
const MMAP_THRESHOLD: u64 = 128 << 10;

/// [`HeapChurn`] as a step machine.
struct HeapRun {
    spec: HeapChurn,
    i: u64,
    top: Option<u64>,
    /// Live blocks: (address, size, from mmap).
    live: Vec<(u64, u64, bool)>,
    /// Their bytes.
    live_bytes: u64,
    /// Heap blocks in address order: (address, size, free).
    heap_blocks: Vec<(u64, u64, bool)>,
}

impl Program for HeapRun {
    fn step(&mut self, cx: &mut StepCx<'_>) -> Step {
        let (k, t) = (&cx.m.kernel, cx.task);
        let Some(mut top) = self.top else {
            self.top = Some(k.sys_brk(t, 0));
            return Step::Ran(0);
        };
        if self.i >= self.spec.ops {
            return Step::Exit;
        }
        let rng = &mut *cx.rng;
        while self.live.len() as u64 >= self.spec.max_live || (!self.live.is_empty() && rng.below(2) == 0) {
            let (a, size, mapped) = self.live.swap_remove(rng.below(self.live.len() as u64) as usize);
            self.live_bytes -= size;
            if mapped {
                let _ = k.sys_munmap(t, a, size);
            } else if let Ok(i) = self.heap_blocks.binary_search_by_key(&a, |b| b.0) {
                // Heap blocks are pushed at the top, so they stay in address order.
                self.heap_blocks[i].2 = true;
            }
            cx.st.frees += 1;
            // Trim: give free blocks at the top of the heap back with brk.
            while self.heap_blocks.last().is_some_and(|b| b.2) {
                let (a, _, _) = self.heap_blocks.pop().unwrap_or_default();
                top = a;
            }
            let cur = k.sys_brk(t, 0);
            if cur.saturating_sub(top) >= MMAP_THRESHOLD {
                k.sys_brk(t, top);
            }
        }
        // Log-uniform sizes: small ones most often.
        let size = (16u64 << rng.below(17)).min(self.spec.max_size.max(16)) + rng.below(16);
        let got = if size >= MMAP_THRESHOLD {
            let len = (size + 4095) & !4095;
            match k.sys_mmap(t, 0, len, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, -1, 0) {
                Ok(a) => Some((a, len, true)),
                Err(e) => {
                    cx.st.last_error = Some(errno_note("mmap", e));
                    None
                }
            }
        } else {
            let cur = k.sys_brk(t, 0);
            let want = top + size;
            if want > cur && k.sys_brk(t, want + (128 << 10)) < want {
                cx.st.last_error = Some("brk: ENOMEM".to_string());
                None
            } else {
                let a = top;
                top = want;
                self.heap_blocks.push((a, size, false));
                Some((a, size, false))
            }
        };
        self.top = Some(top);
        match got {
            Some((a, size, mapped)) => {
                // Touch the block's ends, as an allocator writing headers does.
                let r = k.write_user(t, a, &[1]).and_then(|_| k.write_user(t, a + size - 1, &[1]));
                if let Err(s) = r {
                    cx.st.failures += 1;
                    cx.st.last_error = Some(signal_note(&s));
                }
                self.live.push((a, size, mapped));
                self.live_bytes += size;
                cx.st.allocs += 1;
                cx.st.peak_live_bytes = cx.st.peak_live_bytes.max(self.live_bytes);
            }
            None => cx.st.failures += 1,
        }
        self.i += 1;
        Step::Ran(ACCESS_NS)
    }
    fn stop(&mut self, _cx: &mut StepCx<'_>) {}
}

/// A process that grows by `step` (mapping and touching it) until a limit
/// bites: its RLIMIT_AS when `limit` is set (or its process's limits),
/// otherwise the machine's memory (the overcommit heuristic, then failing
/// faults).
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryHog {
    /// Bytes mapped and touched per step.
    pub step: u64,
    /// RLIMIT_AS in bytes (0: none).
    pub limit: u64,
    /// Steps at most.
    pub max_steps: u64,
}

impl Default for MemoryHog {
    fn default() -> Self {
        MemoryHog { step: 8 << 20, limit: 256 << 20, max_steps: 1 << 16 }
    }
}

/// Pages a memory hog fills per scheduling step.
const FILL_CHUNK_PAGES: u64 = 64;

/// [`MemoryHog`] as a step machine.
struct HogRun {
    spec: MemoryHog,
    started: bool,
    steps: u64,
    /// The mapping being filled: (address, bytes filled).
    cur: Option<(u64, u64)>,
}

impl Program for HogRun {
    fn step(&mut self, cx: &mut StepCx<'_>) -> Step {
        let (k, t) = (&cx.m.kernel, cx.task);
        if !self.started {
            self.started = true;
            if self.spec.limit != 0 {
                let lim = oxmm::mm_types::Rlimit { cur: self.spec.limit, max: self.spec.limit };
                let _ = k.sys_prlimit(t, oxmm::mm_types::rlimit::AS as u64, Some(lim));
            }
        }
        let step = (self.spec.step.max(4096) + 4095) & !4095;
        let Some((a, done)) = self.cur else {
            if self.steps >= self.spec.max_steps {
                return Step::Exit;
            }
            return match k.sys_mmap(t, 0, step, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, -1, 0) {
                Ok(a) => {
                    self.cur = Some((a, 0));
                    Step::Ran(0)
                }
                Err(e) => {
                    cx.st.failures += 1;
                    cx.st.last_error = Some(errno_note("mmap", e));
                    Step::Exit
                }
            };
        };
        let n = (step - done).min(FILL_CHUNK_PAGES * 4096);
        if let Err(s) = k.fill_user(t, a + done, n, 0x5a) {
            cx.st.failures += 1;
            cx.st.last_error = Some(signal_note(&s));
            return Step::Exit;
        }
        if done + n >= step {
            self.cur = None;
            self.steps += 1;
            cx.st.allocs += 1;
            cx.st.peak_live_bytes += step;
        } else {
            self.cur = Some((a, done + n));
        }
        Step::Ran(ACCESS_NS * (n / 4096))
    }
    fn stop(&mut self, _cx: &mut StepCx<'_>) {}
}

impl Workload {
    /// The workload as a step machine, for the user workloads (`None` for
    /// the kernel ones, which are no process).
    pub fn program(&self) -> Option<Box<dyn Program>> {
        Some(match self {
            Workload::PageChurn(_) | Workload::SlabChurn(_) => return None,
            Workload::Anon(a) => Box::new(AnonRun {
                phases: a.effective_phases(),
                base: None,
                pages: (a.size / 4096).max(1),
                phase: 0,
                i: 0,
                zipf: None,
            }),
            Workload::ForkServer(f) => {
                Box::new(ServerRun { spec: f.clone(), pages: (f.size / 4096).max(1), base: 0, state: ServerState::Map })
            }
            Workload::HeapChurn(h) => Box::new(HeapRun {
                spec: h.clone(),
                i: 0,
                top: None,
                live: Vec::new(),
                live_bytes: 0,
                heap_blocks: Vec::new(),
            }),
            Workload::MemoryHog(h) => Box::new(HogRun { spec: h.clone(), started: false, steps: 0, cur: None }),
            Workload::File(f) => crate::file_io::program(f),
            Workload::Replay(r) => crate::trace::process::program(r),
        })
    }
}

impl AnonAccess {
    /// Runs on `m` as one process; `tick` as in [`crate::workload`].
    pub fn run(&self, m: &mut Machine, tick: impl FnMut(&Machine, f64)) -> WorkloadStats {
        crate::processes::run_single(m, &Workload::Anon(self.clone()), "anon", tick)
    }
}

impl ForkServer {
    /// Runs on `m` as one process; `tick` as in [`crate::workload`].
    pub fn run(&self, m: &mut Machine, tick: impl FnMut(&Machine, f64)) -> WorkloadStats {
        crate::processes::run_single(m, &Workload::ForkServer(self.clone()), "server", tick)
    }
}

impl HeapChurn {
    /// Runs on `m` as one process; `tick` as in [`crate::workload`].
    pub fn run(&self, m: &mut Machine, tick: impl FnMut(&Machine, f64)) -> WorkloadStats {
        crate::processes::run_single(m, &Workload::HeapChurn(self.clone()), "heap", tick)
    }
}

impl MemoryHog {
    /// Runs on `m` as one process; `tick` as in [`crate::workload`].
    pub fn run(&self, m: &mut Machine, tick: impl FnMut(&Machine, f64)) -> WorkloadStats {
        crate::processes::run_single(m, &Workload::MemoryHog(self.clone()), "hog", tick)
    }
}
