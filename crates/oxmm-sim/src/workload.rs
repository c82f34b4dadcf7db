//! Workloads: what a scenario runs on the machine. Each is seeded and
//! reproducible. This first one exercises the page allocator the way
//! kernel code does; the program issue adds user-space workloads (access
//! patterns, heap churn, fork servers, file I/O, traces).

use std::collections::VecDeque;

use oxmm::types::PAGE_SIZE;
use oxmm::{Gfp, Pfn};

use crate::machine::Machine;

/// A workload of a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Kernel-style page allocation churn.
    PageChurn(PageChurn),
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
}

/// Virtual time one allocator call takes, for the clock.
const OP_NS: u64 = 250;

impl PageChurn {
    /// Runs on `m`, calling `tick` with the fraction done every 1% of ops.
    pub fn run(&self, m: &mut Machine, mut tick: impl FnMut(f64)) -> WorkloadStats {
        let mut st = WorkloadStats::default();
        let mut live: VecDeque<(Pfn, u32)> = VecDeque::new();
        let mut live_bytes = 0u64;
        let kinds = [Gfp::GFP_KERNEL, Gfp::GFP_KERNEL | Gfp::RECLAIMABLE, Gfp::GFP_HIGHUSER_MOVABLE, Gfp::GFP_ATOMIC];
        let cpus = m.config.nr_cpus() as u64;
        let step = (self.ops / 100).max(1);
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
            m.hal.advance(OP_NS);
            if i % step == 0 {
                tick(i as f64 / self.ops as f64);
            }
        }
        while let Some((pfn, o)) = live.pop_front() {
            m.hal.set_cpu(m.rng.below(cpus) as usize);
            m.kernel.free_pages(pfn, o);
            st.frees += 1;
        }
        tick(1.0);
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
        }
    }
    /// Runs the workload.
    pub fn run(&self, m: &mut Machine, tick: impl FnMut(f64)) -> WorkloadStats {
        match self {
            Workload::PageChurn(p) => p.run(m, tick),
        }
    }
}
