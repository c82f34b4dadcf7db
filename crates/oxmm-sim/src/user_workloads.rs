//! User-space workloads: processes with address spaces of their own, whose
//! memory accesses go through oxmm's MMU and fault path.
//!
//! - [`AnonAccess`]: one process maps anonymous memory and touches it with
//!   an access pattern (sequential, random, zipfian, strided, hot/cold).
//! - [`ForkServer`]: a server touches its memory, then forks workers that
//!   each write part of it (copy-on-write) and exit.
//! - [`HeapChurn`]: malloc-like churn over `brk` and `mmap`.
//! - [`MemoryHog`]: grows until a limit bites.

use oxmm::mm_types::{default_rlimits, personality, Task};
use oxmm::mmap::{map, prot};
use oxmm::vmstat::VmEvent;
use std::sync::Arc;

use crate::machine::Machine;
use crate::workload::WorkloadStats;

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

/// A process touching anonymous memory with a pattern.
#[derive(Clone, Debug, PartialEq)]
pub struct AnonAccess {
    /// Bytes mapped.
    pub size: u64,
    /// Accesses made.
    pub accesses: u64,
    /// Fraction of accesses that write.
    pub write_ratio: f64,
    /// The pattern.
    pub pattern: Pattern,
}

impl Default for AnonAccess {
    fn default() -> Self {
        AnonAccess { size: 64 << 20, accesses: 200_000, write_ratio: 0.5, pattern: Pattern::Random }
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
// the server's RSS after touching its memory, `faults` every fault.

impl Default for ForkServer {
    fn default() -> Self {
        ForkServer { size: 32 << 20, children: 8, touch_fraction: 0.25 }
    }
}

fn spawn(m: &Machine, comm: &str) -> Result<Arc<Task>, String> {
    m.kernel.create_process(comm, default_rlimits(), personality::ADDR_NO_RANDOMIZE).map_err(|e| format!("{e:?}"))
}

fn anon(m: &Machine) -> u64 {
    m.kernel.global_node_page_state(oxmm::vmstat::NodeStat::NrAnonPages)
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

impl AnonAccess {
    /// Runs on `m`; `tick` as in [`crate::workload`].
    pub fn run(&self, m: &mut Machine, mut tick: impl FnMut(&Machine, f64)) -> WorkloadStats {
        let mut st = WorkloadStats::default();
        let Ok(t) = spawn(m, "anon") else {
            st.failures += 1;
            return st;
        };
        let k = &m.kernel;
        let pages = (self.size / 4096).max(1);
        let f0 = faults(m);
        let base = match k.sys_mmap(&t, 0, pages * 4096, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, -1, 0)
        {
            Ok(a) => a,
            Err(_) => {
                st.failures += 1;
                k.exit_task(&t);
                return st;
            }
        };
        let zipf = match self.pattern {
            Pattern::Zipf(s) => Some(Zipf::new(pages, s)),
            _ => None,
        };
        let mut byte = [0u8; 1];
        for i in 0..self.accesses {
            let page = match &self.pattern {
                Pattern::Sequential => i % pages,
                Pattern::Random => m.rng.below(pages),
                Pattern::Zipf(_) => zipf.as_ref().map_or(0, |z| z.sample(m.rng.unit())),
                Pattern::Strided(s) => (i * s.max(&1) + i * s.max(&1) / pages) % pages,
                Pattern::HotCold { hot_fraction, hot_share } => {
                    let hot = ((pages as f64 * hot_fraction) as u64).clamp(1, pages);
                    if m.rng.unit() < *hot_share {
                        m.rng.below(hot)
                    } else {
                        hot + m.rng.below((pages - hot).max(1)) % (pages - hot).max(1)
                    }
                }
            };
            let addr = base + page.min(pages - 1) * 4096 + m.rng.below(4096);
            let write = m.rng.unit() < self.write_ratio;
            let k = &m.kernel;
            let ok = if write {
                k.write_user(&t, addr, &[i as u8]).is_ok()
            } else {
                k.read_user(&t, addr, &mut byte).is_ok()
            };
            if ok {
                st.allocs += 1;
            } else {
                st.failures += 1;
            }
            let rss = t.mm.rss_pages() * 4096;
            st.peak_live_bytes = st.peak_live_bytes.max(rss);
            m.advance(ACCESS_NS);
            tick(m, i as f64 / self.accesses as f64);
        }
        st.faults = faults(m) - f0;
        st.peak_rss_bytes = t.mm.hiwater_rss.load(std::sync::atomic::Ordering::Relaxed) * 4096;
        let k = &m.kernel;
        let _ = k.sys_munmap(&t, base, pages * 4096);
        k.exit_task(&t);
        st.frees += 1;
        tick(m, 1.0);
        st
    }
}

impl ForkServer {
    /// Runs on `m`; `tick` as in [`crate::workload`].
    pub fn run(&self, m: &mut Machine, mut tick: impl FnMut(&Machine, f64)) -> WorkloadStats {
        let mut st = WorkloadStats::default();
        let Ok(server) = spawn(m, "server") else {
            st.failures += 1;
            return st;
        };
        let pages = (self.size / 4096).max(1);
        let f0 = faults(m);
        let k = &m.kernel;
        let Ok(base) =
            k.sys_mmap(&server, 0, pages * 4096, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, -1, 0)
        else {
            st.failures += 1;
            k.exit_task(&server);
            return st;
        };
        for p in 0..pages {
            let _ = m.kernel.write_user(&server, base + p * 4096, &[1]);
            m.advance(ACCESS_NS);
        }
        st.peak_rss_bytes = server.mm.rss_pages() * 4096;
        let shared = anon(m);
        for c in 0..self.children {
            let child = match m.kernel.fork_task(&server) {
                Ok(ch) => ch,
                Err(_) => {
                    st.failures += 1;
                    continue;
                }
            };
            st.allocs += 1;
            let writes = ((pages as f64) * self.touch_fraction) as u64;
            for _ in 0..writes {
                let p = m.rng.below(pages);
                let _ = m.kernel.write_user(&child, base + p * 4096, &[c as u8]);
                m.advance(ACCESS_NS);
            }
            // The worker's RSS counts the pages it shares with the server,
            // as Linux's does; the copies it made are the new anonymous pages.
            let copies = anon(m).saturating_sub(shared);
            st.peak_live_bytes = st.peak_live_bytes.max(copies * 4096);
            m.kernel.exit_task(&child);
            st.frees += 1;
            tick(m, (c + 1) as f64 / self.children.max(1) as f64);
        }
        st.faults = faults(m) - f0;
        m.kernel.exit_task(&server);
        tick(m, 1.0);
        st
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

impl HeapChurn {
    /// Runs on `m`; `tick` as in [`crate::workload`].
    pub fn run(&self, m: &mut Machine, mut tick: impl FnMut(&Machine, f64)) -> WorkloadStats {
        let mut st = WorkloadStats::default();
        let Ok(t) = spawn(m, "heap") else {
            st.failures += 1;
            return st;
        };
        let f0 = faults(m);
        let mut top = m.kernel.sys_brk(&t, 0);
        // Live blocks: (address, size, from mmap).
        let mut live: Vec<(u64, u64, bool)> = Vec::new();
        let mut heap_blocks: Vec<(u64, u64, bool)> = Vec::new(); // (addr, size, free) in address order
        for i in 0..self.ops {
            while live.len() as u64 >= self.max_live || (!live.is_empty() && m.rng.below(2) == 0) {
                let (a, size, mapped) = live.swap_remove(m.rng.below(live.len() as u64) as usize);
                if mapped {
                    let _ = m.kernel.sys_munmap(&t, a, size);
                } else if let Some(b) = heap_blocks.iter_mut().find(|b| b.0 == a) {
                    b.2 = true;
                }
                st.frees += 1;
                // Trim: give free blocks at the top of the heap back with brk.
                while heap_blocks.last().is_some_and(|b| b.2) {
                    let (a, _, _) = heap_blocks.pop().unwrap_or_default();
                    top = a;
                }
                let cur = m.kernel.sys_brk(&t, 0);
                if cur.saturating_sub(top) >= MMAP_THRESHOLD {
                    m.kernel.sys_brk(&t, top);
                }
            }
            // Log-uniform sizes: small ones most often.
            let size = (16u64 << m.rng.below(17)).min(self.max_size.max(16)) + m.rng.below(16);
            let got = if size >= MMAP_THRESHOLD {
                let len = (size + 4095) & !4095;
                m.kernel
                    .sys_mmap(&t, 0, len, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, -1, 0)
                    .ok()
                    .map(|a| (a, len, true))
            } else {
                let cur = m.kernel.sys_brk(&t, 0);
                let want = top + size;
                if want > cur && m.kernel.sys_brk(&t, want + (128 << 10)) < want {
                    None
                } else {
                    let a = top;
                    top = want;
                    heap_blocks.push((a, size, false));
                    Some((a, size, false))
                }
            };
            match got {
                Some((a, size, mapped)) => {
                    // Touch the block's ends, as an allocator writing headers does.
                    let ok =
                        m.kernel.write_user(&t, a, &[1]).is_ok() && m.kernel.write_user(&t, a + size - 1, &[1]).is_ok();
                    if !ok {
                        st.failures += 1;
                    }
                    live.push((a, size, mapped));
                    st.allocs += 1;
                    st.peak_live_bytes = st.peak_live_bytes.max(live.iter().map(|b| b.1).sum());
                }
                None => st.failures += 1,
            }
            m.advance(ACCESS_NS);
            tick(m, i as f64 / self.ops as f64);
        }
        st.faults = faults(m) - f0;
        st.peak_rss_bytes = t.mm.hiwater_rss.load(std::sync::atomic::Ordering::Relaxed) * 4096;
        m.kernel.exit_task(&t);
        tick(m, 1.0);
        st
    }
}

/// A process that grows by `step` (mapping and touching it) until a limit
/// bites: its RLIMIT_AS when `limit` is set, otherwise the machine's
/// memory (the overcommit heuristic, then failing faults).
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

impl MemoryHog {
    /// Runs on `m`; `tick` as in [`crate::workload`].
    pub fn run(&self, m: &mut Machine, mut tick: impl FnMut(&Machine, f64)) -> WorkloadStats {
        let mut st = WorkloadStats::default();
        let Ok(t) = spawn(m, "hog") else {
            st.failures += 1;
            return st;
        };
        if self.limit != 0 {
            let lim = oxmm::mm_types::Rlimit { cur: self.limit, max: self.limit };
            let _ = m.kernel.sys_prlimit(&t, oxmm::mm_types::rlimit::AS as u64, Some(lim));
        }
        let f0 = faults(m);
        let step = (self.step + 4095) & !4095;
        for i in 0..self.max_steps {
            let Ok(a) = m.kernel.sys_mmap(&t, 0, step, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, -1, 0)
            else {
                st.failures += 1;
                break;
            };
            if m.kernel.fill_user(&t, a, step, 0x5a).is_err() {
                st.failures += 1;
                break;
            }
            st.allocs += 1;
            st.peak_live_bytes += step;
            m.advance(ACCESS_NS * (step / 4096));
            tick(m, i as f64 / self.max_steps as f64);
        }
        st.faults = faults(m) - f0;
        st.peak_rss_bytes = t.mm.hiwater_rss.load(std::sync::atomic::Ordering::Relaxed) * 4096;
        m.kernel.exit_task(&t);
        tick(m, 1.0);
        st
    }
}
