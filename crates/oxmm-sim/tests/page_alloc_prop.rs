//! Random sequences of allocations and frees against a reference model.
//!
//! A two-node machine (2 x 256 MiB, two CPUs per node, zones large enough
//! for highatomic reserves) runs allocations of
//! orders 0..=10 with GFP flags of every migratetype and several zones,
//! from random CPUs and preferred nodes, with frees in random order and
//! occasional pcp drains. The model is the set of live blocks. After every
//! step:
//! - a returned block is aligned to its order, lies in RAM, in one zone
//!   that its GFP flags allow (on the preferred node for `__GFP_THISNODE`),
//!   and overlaps no live block;
//! - every zone's pages add up: free + per-cpu + live = managed;
//! - `debug_vm::check_all` holds.
//!
//! At the end everything is freed and drained: `NR_FREE_PAGES` of every
//! zone returns to its boot value, and the per-order free counts (what
//! /proc/buddyinfo shows) return to the boot ones, since coalescing is
//! complete; only pageblocks that became highatomic may keep two
//! pageblock-sized halves apart, so then the orders below the pageblock
//! order are compared.

use std::collections::BTreeMap;

use oxmm::debug_vm;
use oxmm::folio::Folio;
use oxmm::kernel::E820Type;
use oxmm::page::pg;
use oxmm::types::{MAX_PAGE_ORDER, NR_PAGE_ORDERS, PAGEBLOCK_ORDER, PAGE_SHIFT};
use oxmm::vmstat::ZoneStat;
use oxmm::{Gfp, Kernel, Pfn};
use oxmm_sim::config::{NodeConfig, MIB};
use oxmm_sim::{Machine, MachineConfig};
use proptest::prelude::*;

const NODES: usize = 2;
const CPUS: usize = 4;

/// The GFP flag sets the sequences draw from: each migratetype, a
/// reserve-using one, a non-blocking one, and one limited to ZONE_DMA.
const KINDS: [Gfp; 6] = [
    Gfp::GFP_KERNEL,
    Gfp(Gfp::GFP_KERNEL.0 | Gfp::RECLAIMABLE.0),
    Gfp::GFP_HIGHUSER_MOVABLE,
    Gfp::GFP_ATOMIC,
    Gfp::GFP_NOWAIT,
    Gfp(Gfp::GFP_KERNEL.0 | Gfp::DMA.0),
];

#[derive(Clone, Debug)]
enum Op {
    /// `count` allocations of one kind and order on one CPU.
    Alloc { kind: usize, comp: bool, thisnode: bool, order: u32, nid: usize, cpu: usize, count: usize },
    /// Frees the live block at `pick` (modulo the live count) on a CPU.
    Free { pick: usize, cpu: usize },
    /// `drain_all_pages`.
    Drain,
}

/// Orders 0..=10, weighted so that memory fills up in most sequences.
fn order() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0..=3u32, 2 => 4..=8u32, 2 => 9..=MAX_PAGE_ORDER]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..KINDS.len(), any::<bool>(), prop::bool::weighted(0.2), order(), 0..NODES, 0..CPUS, 1usize..=8)
            .prop_map(|(kind, comp, thisnode, order, nid, cpu, count)| Op::Alloc { kind, comp, thisnode, order, nid, cpu, count }),
        4 => (any::<usize>(), 0..CPUS).prop_map(|(pick, cpu)| Op::Free { pick, cpu }),
        1 => Just(Op::Drain),
    ]
}

/// A live allocation.
#[derive(Clone, Copy, Debug)]
struct Live {
    pfn: Pfn,
    order: u32,
    comp: bool,
}

/// Free blocks by zone and order, as /proc/buddyinfo counts them.
fn buddyinfo(k: &Kernel) -> Vec<[u64; NR_PAGE_ORDERS]> {
    k.zones()
        .map(|z| {
            let fa = z.free.lock();
            core::array::from_fn(|o| fa.area[o].nr_free)
        })
        .collect()
}

fn zone_free(k: &Kernel) -> Vec<u64> {
    k.zones().map(|z| z.page_state(ZoneStat::NrFreePages)).collect()
}

/// Index of a zone in `k.zones()` order.
fn zone_index(nid: usize, kind: usize) -> usize {
    nid * oxmm::mmzone::MAX_NR_ZONES + kind
}

struct World {
    /// Pages each zone gave to boot's own allocations (slab caches, the
    /// kernel page-table root): held for the whole run.
    boot_held: Vec<u64>,
    m: Machine,
    live: Vec<Live>,
    by_start: BTreeMap<u64, u64>,
}

impl World {
    fn k(&self) -> &Kernel {
        &self.m.kernel
    }

    /// Checks a block just returned for `gfp` and records it.
    fn admit(&mut self, gfp: Gfp, nid: usize, order: u32, comp: bool, pfn: Pfn) -> Result<(), TestCaseError> {
        let k = &self.m.kernel;
        let n = 1u64 << order;
        prop_assert_eq!(pfn.0 % n, 0, "block {:?} of order {} is misaligned", pfn, order);
        let head = k.memmap.page(pfn);
        let z = k.page_zone(pfn);
        prop_assert!(z.kind <= gfp.zone(), "{:?} got zone {}", gfp, z.kind.name());
        prop_assert!(z.spans(pfn) && z.spans(pfn.add(n - 1)), "block {:?} leaves its zone", pfn);
        let last = k.memmap.page(pfn.add(n - 1));
        prop_assert_eq!(last.zone_id(), head.zone_id(), "block {:?} straddles zones", pfn);
        if gfp.contains(Gfp::THISNODE) {
            prop_assert_eq!(head.nid(), nid, "__GFP_THISNODE block {:?} on another node", pfn);
        }
        let (start, end) = (pfn.0 << PAGE_SHIFT, (pfn.0 + n) << PAGE_SHIFT);
        let in_ram = k.boot.e820.iter().any(|e| e.kind == E820Type::Ram && e.addr <= start && e.addr + e.size >= end);
        prop_assert!(in_ram, "block {:?} of order {} is not all RAM", pfn, order);
        prop_assert_eq!(head.ref_count(), 1);
        for i in 0..n {
            let p = k.memmap.page(pfn.add(i));
            prop_assert!(!p.is_buddy(), "allocated page {:#x} still PG_buddy", pfn.0 + i);
            if comp && order > 0 && i > 0 {
                prop_assert_eq!(p.compound_head_pfn(), Some(pfn));
            }
        }
        if comp && order > 0 {
            prop_assert!(head.test(pg::HEAD));
            prop_assert_eq!(Folio { pfn }.order(k), order);
        }
        // No overlap with a live block: the nearest block starting before
        // our end must end at or before our start.
        if let Some((&s, &e)) = self.by_start.range(..pfn.0 + n).next_back() {
            prop_assert!(e <= pfn.0, "block {:?}+{} overlaps live {:#x}..{:#x}", pfn, n, s, e);
        }
        self.by_start.insert(pfn.0, pfn.0 + n);
        self.live.push(Live { pfn, order, comp });
        Ok(())
    }

    fn release(&mut self, idx: usize) {
        let b = self.live.swap_remove(idx);
        self.by_start.remove(&b.pfn.0);
        let k = &self.m.kernel;
        if b.comp && b.order > 0 {
            k.folio_put(Folio { pfn: b.pfn });
        } else {
            k.free_pages(b.pfn, b.order);
        }
    }

    /// Invariants after every step.
    fn check(&self) -> Result<(), TestCaseError> {
        let k = self.k();
        if let Err(e) = debug_vm::check_all(k) {
            return Err(TestCaseError::fail(format!("debug_vm:\n{e}")));
        }
        prop_assert_eq!(k.bad_pages.load(std::sync::atomic::Ordering::Relaxed), 0);
        // Pages are conserved: free + pcp + live = managed, per zone.
        let mut live = vec![0u64; k.zones().count()];
        for b in &self.live {
            let p = k.memmap.page(b.pfn);
            live[zone_index(p.nid(), p.zonenum() as usize)] += 1 << b.order;
        }
        for (i, z) in k.zones().enumerate() {
            let pcp: u64 = z.per_cpu.iter().map(|c| c.pcp.get().count as u64).sum();
            let free = z.page_state(ZoneStat::NrFreePages);
            prop_assert_eq!(
                free + pcp + live[i] + self.boot_held[i],
                z.managed(),
                "node {} {}: free {} + pcp {} + live {} + boot {} != managed",
                z.nid,
                z.kind.name(),
                free,
                pcp,
                live[i],
                self.boot_held[i]
            );
        }
        Ok(())
    }
}

fn machine() -> Machine {
    let c = MachineConfig {
        nodes: vec![NodeConfig { mem: 256 * MIB, cpus: 2 }, NodeConfig { mem: 256 * MIB, cpus: 2 }],
        ..Default::default()
    };
    Machine::boot(&c, 1).expect("boot")
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let m = machine();
    m.kernel.drain_all_pages();
    let boot_held = m.kernel.zones().map(|z| z.managed() - z.page_state(ZoneStat::NrFreePages)).collect();
    let mut w = World { m, live: Vec::new(), by_start: BTreeMap::new(), boot_held };
    let boot_free = zone_free(w.k());
    let boot_info = buddyinfo(w.k());
    w.check()?;
    for op in ops {
        match op {
            Op::Alloc { kind, comp, thisnode, order, nid, cpu, count } => {
                w.m.hal.set_cpu(cpu);
                let mut gfp = KINDS[kind] | Gfp::NOWARN;
                if comp {
                    gfp |= Gfp::COMP;
                }
                if thisnode {
                    gfp |= Gfp::THISNODE;
                }
                for _ in 0..count {
                    match w.k().alloc_pages_node(nid, gfp, order) {
                        Some(pfn) => w.admit(gfp, nid, order, comp, pfn)?,
                        None => break,
                    }
                }
            }
            Op::Free { pick, cpu } => {
                if !w.live.is_empty() {
                    w.m.hal.set_cpu(cpu);
                    let i = pick % w.live.len();
                    w.release(i);
                }
            }
            Op::Drain => w.k().drain_all_pages(),
        }
        w.check()?;
    }
    while !w.live.is_empty() {
        let i = w.live.len() - 1;
        w.release(i);
    }
    w.k().drain_all_pages();
    w.check()?;
    let k = w.k();
    prop_assert_eq!(k.pcp_pages(), 0);
    prop_assert_eq!(zone_free(k), boot_free, "NR_FREE_PAGES per zone after freeing everything");
    let info = buddyinfo(k);
    for (i, z) in k.zones().enumerate() {
        let upto = if z.nr_reserved_highatomic.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            NR_PAGE_ORDERS
        } else {
            PAGEBLOCK_ORDER as usize
        };
        prop_assert_eq!(
            &info[i][..upto],
            &boot_info[i][..upto],
            "node {} {}: free blocks per order differ from boot",
            z.nid,
            z.kind.name()
        );
    }
    Ok(())
}

/// 128 cases (a few seconds); `PROPTEST_CASES` overrides for longer hunts.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(128);
    ProptestConfig { cases, max_shrink_iters: 2000, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_alloc_free_matches_the_model(ops in prop::collection::vec(op(), 1..250)) {
        run(ops)?;
    }
}

/// One long deterministic run that fills both nodes, so the fallback,
/// watermark and exhaustion paths run every time, not only when the random
/// sequences happen to reach them.
#[test]
fn fill_both_nodes_then_free_everything() {
    let mut ops = Vec::new();
    for round in 0..4usize {
        for order in (0..=MAX_PAGE_ORDER).rev() {
            for kind in 0..KINDS.len() {
                ops.push(Op::Alloc {
                    kind,
                    comp: order % 2 == 1,
                    thisnode: kind == 0,
                    order,
                    nid: (order as usize + round) % NODES,
                    cpu: (kind + round) % CPUS,
                    count: if order >= 8 { 6 } else { 2 },
                });
            }
            ops.push(Op::Free { pick: order as usize * 7 + round, cpu: round % CPUS });
        }
        ops.push(Op::Drain);
    }
    run(ops).unwrap();
}
