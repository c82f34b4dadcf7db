//! Workloads: what a scenario runs on the machine. Each is seeded and
//! reproducible. Two exercise the kernel's allocators the way kernel code
//! does (page and slab churn); the rest are processes (access patterns,
//! heap churn, fork servers, file I/O on tmpfs, a memory hog, traces; see
//! [`crate::user_workloads`] and [`crate::processes`]).
//!
//! Every workload takes a progress callback, `tick(&Machine, fraction)`.
//! It is called between operations, after each one (the clock has moved
//! on), and once more with `1.0` when the workload has cleaned up, so a
//! caller can both draw a progress bar and sample the machine on the
//! virtual clock (`oxmm run --report`). It sees the machine read-only and
//! must not consume random numbers, so observing a run never changes it.

use std::collections::VecDeque;

use oxmm::types::PAGE_SIZE;
use oxmm::{Gfp, Pfn};

use crate::machine::Machine;

/// A workload of a scenario.
#[derive(Clone, Debug, PartialEq)]
pub enum Workload {
    /// Kernel-style page allocation churn.
    PageChurn(PageChurn),
    /// Kernel object churn: kmalloc of random sizes and a few object caches.
    SlabChurn(SlabChurn),
    /// A process touching anonymous memory with an access pattern.
    Anon(crate::user_workloads::AnonAccess),
    /// A server forking workers that dirty its memory (copy-on-write).
    ForkServer(crate::user_workloads::ForkServer),
    /// malloc-like heap churn over brk and mmap.
    HeapChurn(crate::user_workloads::HeapChurn),
    /// A process growing until a limit bites.
    MemoryHog(crate::user_workloads::MemoryHog),
    /// A process reading and writing a tmpfs file.
    File(crate::file_io::FileIo),
    /// A recorded program's trace replayed as a process.
    Replay(crate::trace::process::TraceReplay),
}

/// Allocates and frees kernel objects the way subsystems do: kmalloc of
/// sizes from 8 bytes to 8 KiB (small ones most often), and objects of a
/// few named caches, on random CPUs, with a bounded live set; then frees
/// everything and shrinks the caches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlabChurn {
    /// Allocation attempts.
    pub ops: u64,
    /// Objects live at most.
    pub max_live: u64,
}

impl Default for SlabChurn {
    fn default() -> Self {
        SlabChurn { ops: 200_000, max_live: 50_000 }
    }
}

impl SlabChurn {
    /// Runs on `m`, calling `tick` with the machine and the fraction done
    /// after every operation (see the module doc).
    pub fn run(&self, m: &mut Machine, mut tick: impl FnMut(&Machine, f64)) -> WorkloadStats {
        use oxmm::slab::{CacheArgs, SlabFlags};
        let mut st = WorkloadStats::default();
        // Stand-ins for subsystem caches, with Linux's object sizes and flags
        // (reclaimable and memcg-accounted, so they do not merge with kmalloc).
        let rcl = SlabFlags::RECLAIM_ACCOUNT | SlabFlags::ACCOUNT;
        let caches: Vec<(oxmm::slab::CacheId, u64)> =
            [("dentry", 192u32, rcl), ("inode_cache", 600, rcl), ("buffer_head", 104, SlabFlags::RECLAIM_ACCOUNT)]
                .iter()
                .filter_map(|&(name, size, flags)| {
                    let args = CacheArgs { name, size, align: 0, flags: flags | SlabFlags::HWCACHE_ALIGN, ctor: None };
                    m.kernel.kmem_cache_create(&args).ok().map(|id| (id, u64::from(size)))
                })
                .collect();
        let mut live: Vec<(Option<oxmm::slab::CacheId>, oxmm::VirtAddr, u64)> = Vec::new();
        let mut live_bytes = 0u64;
        let cpus = m.config.nr_cpus() as u64;
        for i in 0..self.ops {
            m.hal.set_cpu(m.rng.below(cpus) as usize);
            while live.len() as u64 >= self.max_live || (!live.is_empty() && m.rng.below(2) == 0) {
                let idx = m.rng.below(live.len() as u64) as usize;
                let (c, va, sz) = live.swap_remove(idx);
                match c {
                    Some(id) => m.kernel.kmem_cache_free(id, va),
                    None => m.kernel.kfree(va),
                }
                live_bytes -= sz;
                st.frees += 1;
            }
            let pick = m.rng.below(4);
            let got = if pick == 0 && !caches.is_empty() {
                let (id, sz) = caches[m.rng.below(caches.len() as u64) as usize];
                m.kernel.kmem_cache_alloc(id, Gfp::GFP_KERNEL | Gfp::NOWARN).map(|va| (Some(id), va, sz))
            } else {
                // Sizes spread over the classes, small ones most often.
                let sz = 8u64 << (m.rng.below(11) * m.rng.below(2));
                let sz = sz + m.rng.below(sz);
                m.kernel.kmalloc(sz, Gfp::GFP_KERNEL | Gfp::NOWARN).map(|va| (None, va, sz))
            };
            match got {
                Some(o) => {
                    live_bytes += o.2;
                    live.push(o);
                    st.allocs += 1;
                    st.peak_live_bytes = st.peak_live_bytes.max(live_bytes);
                }
                None => st.failures += 1,
            }
            m.advance(OP_NS);
            tick(m, i as f64 / self.ops as f64);
        }
        for (c, va, _) in live.drain(..) {
            match c {
                Some(id) => m.kernel.kmem_cache_free(id, va),
                None => m.kernel.kfree(va),
            }
            st.frees += 1;
        }
        let ids: Vec<_> = m.kernel.slab.caches().map(|c| c.id).collect();
        for id in ids {
            let _ = m.kernel.kmem_cache_shrink(id);
        }
        tick(m, 1.0);
        st
    }
}

/// Allocates and frees blocks of random order and kind (unmovable,
/// reclaimable, movable, atomic) on random CPUs, keeping a bounded live
/// set, then frees everything: buddy splitting and merging, pcp refills
/// and drains, migratetype fallbacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageChurn {
    /// Allocation attempts.
    pub ops: u64,
    /// Bytes live at most.
    pub max_live_bytes: u64,
    /// Largest order asked for.
    pub max_order: u32,
}

impl Default for PageChurn {
    fn default() -> Self {
        PageChurn { ops: 100_000, max_live_bytes: 256 << 20, max_order: 3 }
    }
}

/// What a workload did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadStats {
    /// Allocations that succeeded.
    pub allocs: u64,
    /// Allocations that failed.
    pub failures: u64,
    /// Frees.
    pub frees: u64,
    /// Most bytes live at once.
    pub peak_live_bytes: u64,
    /// Page faults the workload's processes took (user workloads).
    pub faults: u64,
    /// Peak RSS of the workload's main process, in bytes (user workloads).
    pub peak_rss_bytes: u64,
    /// Bytes read from files (`file`).
    pub bytes_read: u64,
    /// Bytes written to files (`file`).
    pub bytes_written: u64,
    /// Reads that did not return what was written (`file`; must stay 0).
    pub mismatches: u64,
    /// The last error a user workload met (`mmap: ENOMEM`), if any.
    pub last_error: Option<String>,
}

/// A byte count as `12 MiB`, `64 KiB` or `100 B` (the largest unit that
/// divides it, or MiB/KiB rounded down above 10 of them).
pub fn size_text(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && (bytes.is_multiple_of(1 << shift) || bytes >= 10 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} B")
}

/// Virtual time one allocator call takes, for the clock.
const OP_NS: u64 = 250;

impl PageChurn {
    /// Runs on `m`, calling `tick` with the machine and the fraction done
    /// after every operation (see the module doc).
    pub fn run(&self, m: &mut Machine, mut tick: impl FnMut(&Machine, f64)) -> WorkloadStats {
        let mut st = WorkloadStats::default();
        let mut live: VecDeque<(Pfn, u32)> = VecDeque::new();
        let mut live_bytes = 0u64;
        let kinds = [Gfp::GFP_KERNEL, Gfp::GFP_KERNEL | Gfp::RECLAIMABLE, Gfp::GFP_HIGHUSER_MOVABLE, Gfp::GFP_ATOMIC];
        let cpus = m.config.nr_cpus() as u64;
        for i in 0..self.ops {
            m.hal.set_cpu(m.rng.below(cpus) as usize);
            // Small orders dominate, as in a real kernel.
            let order = (m.rng.below(u64::from(self.max_order) + 1) * m.rng.below(2)) as u32;
            let bytes = PAGE_SIZE << order;
            while live_bytes + bytes > self.max_live_bytes || (!live.is_empty() && m.rng.below(3) == 0) {
                let idx = m.rng.below(live.len() as u64) as usize;
                let Some((pfn, o)) = live.swap_remove_back(idx) else { break };
                m.kernel.free_pages(pfn, o);
                live_bytes -= PAGE_SIZE << o;
                st.frees += 1;
            }
            let gfp = kinds[m.rng.below(kinds.len() as u64) as usize] | Gfp::NOWARN;
            match m.kernel.alloc_pages(gfp, order) {
                Some(p) => {
                    live.push_back((p, order));
                    live_bytes += bytes;
                    st.allocs += 1;
                    st.peak_live_bytes = st.peak_live_bytes.max(live_bytes);
                }
                None => st.failures += 1,
            }
            m.advance(OP_NS);
            tick(m, i as f64 / self.ops as f64);
        }
        while let Some((pfn, o)) = live.pop_front() {
            m.hal.set_cpu(m.rng.below(cpus) as usize);
            m.kernel.free_pages(pfn, o);
            st.frees += 1;
        }
        tick(m, 1.0);
        st
    }
}

impl Workload {
    /// A one-line description.
    pub fn describe(&self) -> String {
        match self {
            Workload::PageChurn(p) => format!(
                "page_churn: {} allocations up to order {}, at most {} MiB live",
                p.ops,
                p.max_order,
                p.max_live_bytes >> 20
            ),
            Workload::SlabChurn(s) => {
                format!("slab_churn: {} kmalloc and cache allocations, at most {} objects live", s.ops, s.max_live)
            }
            Workload::Anon(a) if !a.phases.is_empty() => format!(
                "anon: {} accesses in {} phases ({}) to {} of anonymous memory",
                a.total_accesses(),
                a.phases.len(),
                a.phases
                    .iter()
                    .map(|p| format!("{} {:?}, {:.0}% writes", p.accesses, p.pattern, p.write_ratio * 100.0))
                    .collect::<Vec<_>>()
                    .join("; "),
                size_text(a.size)
            ),
            Workload::Anon(a) => format!(
                "anon: {} accesses ({:.0}% writes, {:?}) to {} MiB of anonymous memory",
                a.accesses,
                a.write_ratio * 100.0,
                a.pattern,
                a.size >> 20
            ),
            Workload::ForkServer(f) => format!(
                "fork_server: {} MiB server, {} workers each writing {:.0}% of it",
                f.size >> 20,
                f.children,
                f.touch_fraction * 100.0
            ),
            Workload::HeapChurn(h) => format!(
                "heap_churn: {} malloc-like allocations up to {} KiB (brk below 128 KiB, mmap above), {} live at most",
                h.ops,
                h.max_size >> 10,
                h.max_live
            ),
            Workload::MemoryHog(h) => {
                let limit = if h.limit != 0 {
                    format!("RLIMIT_AS {}", size_text(h.limit))
                } else {
                    "its process's limits or the machine's memory".to_string()
                };
                format!("memory_hog: grows by {} until a limit bites ({limit})", size_text(h.step))
            }
            Workload::File(f) => {
                use crate::file_io::{FileMode, FilePattern};
                let mode = match f.mode {
                    FileMode::Read => "reads".to_string(),
                    FileMode::Write => "writes".to_string(),
                    FileMode::Append => "appends".to_string(),
                    FileMode::ReadWrite => format!("reads and writes ({:.0}% writes)", f.write_ratio * 100.0),
                };
                let pattern = match f.pattern {
                    FilePattern::Sequential => "sequential",
                    FilePattern::Random => "random",
                };
                format!(
                    "file: {} {pattern} {} {mode} {} {} tmpfs file{}{}",
                    f.ops,
                    size_text(f.io_size),
                    if f.mode == FileMode::Read { "of" } else { "to" },
                    size_text(f.file_size),
                    f.path.as_ref().map_or(String::new(), |p| format!(" {p}")),
                    match (f.mmap, f.keep) {
                        (true, true) => " through a shared mapping, kept",
                        (true, false) => " through a shared mapping",
                        (false, true) => ", kept",
                        (false, false) => "",
                    }
                )
            }
            Workload::Replay(r) => format!(
                "replay: {} references to {} pages of the trace {}",
                r.refs.refs().len(),
                r.refs.distinct(),
                r.path
            ),
        }
    }
    /// Virtual time the workload's operations take on the clock (each
    /// allocation attempt advances it by a fixed step), for choosing a
    /// sampling period before the run.
    pub fn expected_virtual_ns(&self) -> u64 {
        use crate::user_workloads::ACCESS_NS;
        match self {
            Workload::PageChurn(p) => p.ops.saturating_mul(OP_NS),
            Workload::SlabChurn(s) => s.ops.saturating_mul(OP_NS),
            Workload::Anon(a) => a.total_accesses().saturating_mul(ACCESS_NS),
            Workload::ForkServer(f) => {
                let pages = f.size / 4096;
                let writes = (pages as f64 * f.touch_fraction) as u64;
                pages.saturating_add(f.children.saturating_mul(writes)).saturating_mul(ACCESS_NS)
            }
            Workload::HeapChurn(h) => h.ops.saturating_mul(ACCESS_NS),
            Workload::File(f) => f.expected_virtual_ns(),
            Workload::Replay(r) => (r.refs.refs().len() as u64).saturating_mul(ACCESS_NS),
            Workload::MemoryHog(h) => {
                let steps = if h.limit != 0 { h.limit / h.step.max(4096) } else { h.max_steps };
                steps.saturating_mul(h.step / 4096).saturating_mul(ACCESS_NS)
            }
        }
    }
    /// Whether the workload is a process (a user workload) rather than
    /// kernel-style churn.
    pub fn is_user(&self) -> bool {
        !matches!(self, Workload::PageChurn(_) | Workload::SlabChurn(_))
    }
    /// [`Workload::expected_virtual_ns`] for a run that cannot hold more
    /// than `max_bytes` (the machine's memory, a process's RLIMIT_AS): a
    /// memory hog stops there.
    pub fn expected_virtual_ns_within(&self, max_bytes: u64) -> u64 {
        use crate::user_workloads::ACCESS_NS;
        match self {
            Workload::MemoryHog(h) => {
                let step = h.step.max(4096);
                let cap = if h.limit != 0 { h.limit.min(max_bytes) } else { max_bytes };
                (cap / step).min(h.max_steps).saturating_mul(step / 4096).saturating_mul(ACCESS_NS)
            }
            w => w.expected_virtual_ns(),
        }
    }
    /// Runs the workload; `tick` is the progress callback of the module doc.
    pub fn run(&self, m: &mut Machine, tick: impl FnMut(&Machine, f64)) -> WorkloadStats {
        match self {
            Workload::PageChurn(p) => p.run(m, tick),
            Workload::SlabChurn(s) => s.run(m, tick),
            Workload::Anon(a) => a.run(m, tick),
            Workload::ForkServer(f) => f.run(m, tick),
            Workload::HeapChurn(h) => h.run(m, tick),
            Workload::MemoryHog(h) => h.run(m, tick),
            Workload::File(_) => crate::processes::run_single(m, self, "file", tick),
            Workload::Replay(_) => crate::processes::run_single(m, self, "replay", tick),
        }
    }
}
