//! Behaviour of the buddy allocator on booted machines: zone and node
//! choice by GFP flags, watermarks and reserves, page preparation
//! (`__GFP_ZERO`, compound pages), bad-page handling, migratetype
//! fallback, per-cpu lists. Every test ends with the `debug_vm` checks.
//!
//! The expected values follow Linux 6.18's `mm/page_alloc.c`; each test
//! says which rule it pins down.

use std::sync::atomic::Ordering::Relaxed;

use oxmm::debug_vm;
use oxmm::kernel::CoreSize;
use oxmm::mmzone::{MigrateType, ZoneType};
use oxmm::page::pg;
use oxmm::page_alloc::pcp::order_to_pindex;
use oxmm::page_alloc::{zone_flags, Wmark, Zone};
use oxmm::printk::Level;
use oxmm::types::{MAX_PAGE_ORDER, PAGEBLOCK_NR_PAGES, PAGE_SIZE};
use oxmm::vmstat::{NumaStat, VmEvent, ZoneStat};
use oxmm::{Gfp, Kernel, Pfn};
use oxmm_sim::config::{NodeConfig, GIB, MIB};
use oxmm_sim::{Machine, MachineConfig};

/// Boots, then empties the per-cpu lists that boot's slab allocations
/// filled, so each test starts with every free page on the buddy lists.
fn boot(c: &MachineConfig) -> Machine {
    let m = Machine::boot(c, 7).expect("boot");
    m.kernel.drain_all_pages();
    m
}

/// A one-node machine: DMA below 16 MiB, DMA32 above.
fn small(cpus: usize) -> Machine {
    boot(&MachineConfig::single(256 * MIB, cpus))
}

/// Two nodes of 128 MiB with one CPU each: node 0 has DMA and DMA32, node 1 DMA32.
fn two_nodes() -> Machine {
    let c = MachineConfig {
        nodes: vec![NodeConfig { mem: 128 * MIB, cpus: 1 }, NodeConfig { mem: 128 * MIB, cpus: 1 }],
        ..Default::default()
    };
    boot(&c)
}

/// Every zone type on one node: 4.5 GiB without the PCI hole, 256 MiB of it movable.
fn all_zones() -> Machine {
    let c = MachineConfig {
        nodes: vec![NodeConfig { mem: 4 * GIB + 512 * MIB, cpus: 2 }],
        pci_hole: false,
        movablecore: Some(CoreSize::Bytes(256 * MIB)),
        ..Default::default()
    };
    boot(&c)
}

fn check(k: &Kernel) {
    if let Err(e) = debug_vm::check_all(k) {
        panic!("debug_vm:\n{e}");
    }
}

fn zone(k: &Kernel, nid: usize, t: ZoneType) -> &Zone {
    &k.nodes[nid].zones[t as usize]
}

fn free(z: &Zone) -> u64 {
    z.page_state(ZoneStat::NrFreePages)
}

fn wmark(z: &Zone, w: Wmark) -> u64 {
    z.watermark[w as usize].load(Relaxed)
}

fn reserve(z: &Zone, highest: ZoneType) -> u64 {
    z.lowmem_reserve[highest as usize].load(Relaxed)
}

fn pcp_count(z: &Zone, cpu: usize) -> u32 {
    z.per_cpu[cpu].pcp.get().count
}

/// The min watermark as `__zone_watermark_ok` lowers it for the reserve flags.
fn reserve_min(min: u64, high: bool, non_block: bool) -> u64 {
    let mut m = min;
    if high {
        m -= m / 2;
        if non_block {
            m -= m / 4;
        }
    }
    m
}

/// Allocates with `gfp` at each order from `orders` until it fails.
fn exhaust(k: &Kernel, gfp: Gfp, orders: &[u32]) -> Vec<(Pfn, u32)> {
    let mut out = Vec::new();
    for &o in orders {
        while let Some(p) = k.alloc_pages(gfp | Gfp::NOWARN, o) {
            out.push((p, o));
        }
    }
    out
}

const ALL_ORDERS: [u32; 11] = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0];

#[test]
fn gfp_zone_modifiers_pick_the_zone() {
    let m = all_zones();
    let k = &m.kernel;
    for t in [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal, ZoneType::Movable] {
        assert!(zone(k, 0, t).populated(), "{} must be populated", t.name());
    }
    let kind = |p: Pfn| k.memmap.page(p).zonenum();
    let cases = [
        (Gfp::GFP_KERNEL | Gfp::DMA, ZoneType::Dma),
        (Gfp::GFP_KERNEL | Gfp::DMA32, ZoneType::Dma32),
        (Gfp::GFP_KERNEL, ZoneType::Normal),
        (Gfp::GFP_HIGHUSER, ZoneType::Normal),
        (Gfp::GFP_HIGHUSER_MOVABLE, ZoneType::Movable),
    ];
    let pgalloc = [VmEvent::PgallocDma, VmEvent::PgallocDma32, VmEvent::PgallocNormal, VmEvent::PgallocMovable];
    for (gfp, want) in cases {
        let before: Vec<u64> = pgalloc.iter().map(|&e| k.vm_event(e)).collect();
        let p = k.alloc_pages(gfp, 0).expect("page");
        assert_eq!(kind(p), want, "{gfp:?}");
        assert!(k.page_zone(p).spans(p));
        for (i, &e) in pgalloc.iter().enumerate() {
            let want_delta = (i == want as usize) as u64;
            assert_eq!(k.vm_event(e) - before[i], want_delta, "{} after {gfp:?}", e.name());
        }
        k.free_pages(p, 0);
    }
    // GFP_KERNEL leaves Normal for DMA32 only once Normal is below its low
    // watermark, and never reaches ZONE_MOVABLE.
    let normal = zone(k, 0, ZoneType::Normal);
    loop {
        let p = k.alloc_pages(Gfp::GFP_KERNEL, 4).expect("DMA32 has plenty");
        let z = kind(p);
        assert!(z <= ZoneType::Normal, "GFP_KERNEL got {}", z.name());
        if z != ZoneType::Normal {
            assert_eq!(z, ZoneType::Dma32, "after Normal comes DMA32");
            let mark = wmark(normal, Wmark::Low) + reserve(normal, ZoneType::Normal);
            assert!(free(normal) <= mark + 15, "Normal still had {} free above {mark}", free(normal));
            break;
        }
    }
    check(k);
}

#[test]
fn thisnode_stays_home_and_numa_fallback_is_counted() {
    let m = two_nodes();
    let k = &m.kernel;
    m.hal.set_cpu(1);
    assert_eq!(k.numa_node_id(), 1);
    let n0_free: u64 = k.nodes[0].zones.iter().map(free).sum();
    let held = exhaust(k, Gfp::GFP_KERNEL | Gfp::THISNODE, &ALL_ORDERS);
    assert!(!held.is_empty());
    for &(p, _) in &held {
        assert_eq!(k.memmap.page(p).nid(), 1, "__GFP_THISNODE left the node");
    }
    assert_eq!(k.nodes[0].zones.iter().map(free).sum::<u64>(), n0_free, "node 0 untouched");
    let home = zone(k, 1, ZoneType::Dma32);
    // wmark_pages: the min watermark plus the boost that claiming Movable
    // pageblocks for unmovable pages adds.
    let floor = home.wmark_pages(Wmark::Min) + reserve(home, ZoneType::Normal);
    assert!(free(home) <= floor, "node 1 stopped at {} free, above {floor}", free(home));

    let away = zone(k, 0, ZoneType::Dma32);
    let stat = |z: &Zone, s| z.numa_event(s);
    let (miss0, foreign0, other0, hit0) = (
        stat(away, NumaStat::NumaMiss),
        stat(home, NumaStat::NumaForeign),
        stat(away, NumaStat::NumaOther),
        stat(away, NumaStat::NumaHit),
    );
    let p = k.alloc_pages_node(1, Gfp::GFP_KERNEL, 0).expect("falls back to node 0");
    assert_eq!(k.memmap.page(p).nid(), 0);
    assert_eq!(k.page_zone(p).kind, ZoneType::Dma32, "nearest zone first");
    assert_eq!(stat(away, NumaStat::NumaMiss), miss0 + 1, "numa_miss on the zone used");
    assert_eq!(stat(home, NumaStat::NumaForeign), foreign0 + 1, "numa_foreign on the preferred zone");
    assert_eq!(stat(away, NumaStat::NumaOther), other0 + 1, "the CPU is on the other node");
    assert_eq!(stat(away, NumaStat::NumaHit), hit0);
    // With __GFP_THISNODE the same request fails instead.
    assert_eq!(k.alloc_pages_node(1, Gfp::GFP_KERNEL | Gfp::THISNODE | Gfp::NOWARN, 0), None);
    check(k);
}

#[test]
fn watermarks_bound_each_kind_of_allocation() {
    let m = small(1);
    let k = &m.kernel;
    // Boosts come and go with fragmentation; keep the marks fixed.
    k.sysctl_set("vm.watermark_boost_factor", "0").unwrap();
    let dma32 = zone(k, 0, ZoneType::Dma32);
    let min = wmark(dma32, Wmark::Min);
    // Order 4 bypasses the pcp lists, so every page taken was checked.
    let floor =
        |z: &Zone, high: bool, nb: bool| reserve_min(wmark(z, Wmark::Min), high, nb) + reserve(z, ZoneType::Normal);
    let mut held = Vec::new();
    for (gfp, high, nb) in
        [(Gfp::GFP_KERNEL, false, false), (Gfp::GFP_KERNEL | Gfp::HIGH, true, false), (Gfp::GFP_ATOMIC, true, true)]
    {
        while let Some(p) = k.alloc_pages(gfp | Gfp::NOWARN, 4) {
            let z = k.page_zone(p);
            assert!(free(z) >= floor(z, high, nb), "{gfp:?} took {} below its floor", z.kind.name());
            held.push(p);
        }
        // Stopped by the watermark, not by a lack of blocks.
        let f = floor(dma32, high, nb);
        assert!(free(dma32) >= f && free(dma32) <= f + 15, "{gfp:?}: {} free, floor {f}", free(dma32));
        check(k);
    }
    assert!(free(dma32) < min, "__GFP_HIGH and atomic allocations go below min");
    assert!(k.log.count_matching(Level::Warn, "page allocation failure") == 0, "NOWARN is quiet");
    assert_eq!(k.alloc_pages(Gfp::GFP_KERNEL, 0), None, "GFP_KERNEL fails instead of panicking");
    assert!(k.log.count_matching(Level::Warn, "page allocation failure: order:0") >= 1);
    for p in held {
        k.free_pages(p, 4);
    }
    check(k);
}

#[test]
fn gfp_zero_clears_a_recycled_page() {
    let m = small(1);
    let k = &m.kernel;
    for order in [0u32, 2] {
        let len = (PAGE_SIZE << order) as usize;
        let garbage: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8 | 1).collect();
        let p = k.alloc_pages(Gfp::GFP_KERNEL, order).expect("page");
        k.mem.write(p.phys(), &garbage);
        k.free_pages(p, order);
        // Without __GFP_ZERO the old contents stay (no init_on_alloc).
        let q = k.alloc_pages(Gfp::GFP_KERNEL, order).expect("page");
        assert_eq!(q, p, "the pcp list hands back the page just freed");
        let mut buf = vec![0u8; len];
        k.mem.read(q.phys(), &mut buf);
        assert_eq!(buf, garbage);
        k.free_pages(q, order);
        let mut others = Vec::new();
        let z = loop {
            let z = k.alloc_pages(Gfp::GFP_KERNEL | Gfp::ZERO, order).expect("page");
            if z == p {
                break z;
            }
            others.push(z);
            assert!(others.len() < 10_000, "never got the page back");
        };
        k.mem.read(z.phys(), &mut buf);
        assert!(buf.iter().all(|&b| b == 0), "order {order}: __GFP_ZERO left data");
        k.free_pages(z, order);
        for o in others {
            k.free_pages(o, order);
        }
    }
    check(k);
}

#[test]
fn folio_alloc_builds_compound_pages() {
    let m = small(1);
    let k = &m.kernel;
    k.drain_all_pages();
    let base = k.nr_free_pages();
    let f = k.folio_alloc(Gfp::GFP_KERNEL, 3).expect("folio");
    assert_eq!(f.order(k), 3);
    assert_eq!(f.nr_pages(k), 8);
    assert_eq!(f.pfn.0 % 8, 0);
    let head = k.memmap.page(f.pfn);
    assert!(head.test(pg::HEAD) && !head.is_tail());
    assert_eq!(f.ref_count(k), 1);
    for i in 1..8 {
        let t = k.memmap.page(f.pfn.add(i));
        assert!(t.is_tail() && !t.test(pg::HEAD), "tail {i}");
        assert_eq!(t.compound_head_pfn(), Some(f.pfn));
        assert_eq!(t.ref_count(), 0);
        assert_eq!(k.page_folio(f.pfn.add(i)), f);
    }
    // A second reference keeps it; the last one frees it.
    f.get(k);
    k.folio_put(f);
    assert_eq!(f.ref_count(k), 1);
    assert!(head.test(pg::HEAD));
    k.folio_put(f);
    for i in 0..8 {
        let p = k.memmap.page(f.pfn.add(i));
        assert!(!p.is_tail() && !p.test(pg::HEAD), "page {i} keeps compound flags after free");
    }
    // Order 0 folios are plain pages.
    let f0 = k.folio_alloc(Gfp::GFP_KERNEL, 0).expect("folio");
    assert!(!k.memmap.page(f0.pfn).test(pg::HEAD));
    assert_eq!(f0.order(k), 0);
    k.folio_put(f0);
    k.drain_all_pages();
    assert_eq!(k.nr_free_pages(), base);
    check(k);
}

#[test]
fn bad_page_on_free_is_reported_and_leaked() {
    let m = small(1);
    let k = &m.kernel;
    let p = k.alloc_pages(Gfp::GFP_KERNEL, 0).expect("page");
    k.drain_all_pages();
    let (free0, pcp0) = (k.nr_free_pages(), k.pcp_pages());
    k.memmap.page(p).mapcount.store(0, Relaxed);
    k.free_pages(p, 0);
    assert_eq!(k.log.count_matching(Level::Err, "Bad page state"), 1);
    assert_eq!(k.log.count_matching(Level::Err, "nonzero mapcount"), 1);
    assert!(k.log.count_matching(Level::Err, &format!("pfn:{:#x}", p.0)) == 1, "the report names the page");
    assert_eq!(k.bad_pages.load(Relaxed), 1);
    let page = k.memmap.page(p);
    assert!(!page.is_buddy(), "a bad page must not reach the free lists");
    assert_eq!((k.nr_free_pages(), k.pcp_pages()), (free0, pcp0), "leaked, not freed");
    // A compound page with a broken tail is leaked whole.
    let f = k.folio_alloc(Gfp::GFP_KERNEL, 2).expect("folio");
    k.memmap.page(f.pfn.add(2)).lru_next.store(f.pfn.0 + 1, Relaxed);
    k.drain_all_pages();
    let free1 = k.nr_free_pages();
    k.folio_put(f);
    assert_eq!(k.log.count_matching(Level::Err, "corrupted compound_head"), 1);
    assert_eq!(k.bad_pages.load(Relaxed), 2);
    k.drain_all_pages();
    assert_eq!(k.nr_free_pages(), free1);
    // The machine goes on.
    let q = k.alloc_pages(Gfp::GFP_KERNEL, 0).expect("still allocates");
    assert_ne!(q, p);
    k.free_pages(q, 0);
    check(k);
}

/// Takes every free page of the machine with movable allocations, so all
/// free lists stay Movable and end empty.
fn take_everything(k: &Kernel) -> Vec<(Pfn, u32)> {
    let held = exhaust(k, Gfp::GFP_HIGHUSER_MOVABLE | Gfp::MEMALLOC, &ALL_ORDERS);
    assert_eq!(k.nr_free_pages(), 0);
    assert_eq!(k.pcp_pages(), 0);
    held
}

/// Frees all but the first page of a non-compound pageblock-sized block
/// held by the test (what `__free_pages` does while another reference
/// pins the first page), then drains, so the block's pageblock has 511
/// free pages in blocks of orders 8..0.
fn free_tail_of_block(k: &Kernel, b: Pfn) {
    k.memmap.page(b).get();
    k.free_pages(b, 9);
    k.drain_all_pages();
    assert_eq!(k.page_zone(b).page_state(ZoneStat::NrFreePages), 511);
}

#[test]
fn first_unmovable_allocation_claims_a_whole_max_order_block() {
    let m = small(1);
    let k = &m.kernel;
    let p = k.alloc_pages(Gfp::GFP_KERNEL, 0).expect("page");
    // Every list was Movable; the largest Movable block is taken over whole
    // (try_to_claim_block at order >= pageblock_order).
    let start = Pfn(p.0 & !((1 << MAX_PAGE_ORDER) - 1));
    for b in [start, start.add(PAGEBLOCK_NR_PAGES)] {
        assert_eq!(k.get_pageblock_migratetype(b), MigrateType::Unmovable);
    }
    assert_eq!(k.page_zone(p).watermark_boost.load(Relaxed), 0, "no boost for a whole-block claim");
    check(k);
}

#[test]
fn unmovable_fallback_claims_a_mostly_free_movable_pageblock() {
    let m = small(1);
    let k = &m.kernel;
    let held = take_everything(k);
    let &(b, _) = held.iter().find(|&&(p, o)| o == 9 && k.page_zone(p).kind == ZoneType::Dma32).expect("a pageblock");
    assert_eq!(k.get_pageblock_migratetype(b), MigrateType::Movable);
    free_tail_of_block(k, b);
    let z = k.page_zone(b);
    // 511 free of 512: more than half, so the block is claimed and its free
    // pages move to the Unmovable lists.
    let boost0 = z.watermark_boost.load(Relaxed);
    let p = k.alloc_pages(Gfp::GFP_KERNEL | Gfp::MEMALLOC, 0).expect("page");
    assert_eq!(p.0 & !(PAGEBLOCK_NR_PAGES - 1), b.0, "came from the only free pageblock");
    assert_eq!(k.get_pageblock_migratetype(b), MigrateType::Unmovable);
    let fa = z.free.lock();
    for o in 0..=MAX_PAGE_ORDER as usize {
        assert!(fa.area[o].lists[MigrateType::Movable as usize].is_empty(), "order {o} left on Movable");
    }
    drop(fa);
    // A partial claim boosts the watermarks by a pageblock, up to
    // high * watermark_boost_factor / 10000 (boot's own claims already
    // boosted this zone).
    let cap =
        (z.watermark[oxmm::page_alloc::Wmark::High as usize].load(Relaxed) * 15000 / 10000).max(PAGEBLOCK_NR_PAGES);
    assert_eq!(
        z.watermark_boost.load(Relaxed),
        (boost0 + PAGEBLOCK_NR_PAGES).min(cap),
        "a partial claim boosts the watermarks"
    );
    check(k);
}

#[test]
fn unmovable_fallback_steals_from_a_block_full_of_movable_pages() {
    let m = small(1);
    let k = &m.kernel;
    let held = take_everything(k);
    let &(b, _) = held.iter().find(|&&(p, o)| o == 9 && k.page_zone(p).kind == ZoneType::Dma32).expect("a pageblock");
    free_tail_of_block(k, b);
    // Take back orders 8..4 and mark them as LRU pages: the pageblock is
    // then mostly movable, with only 15 pages free.
    let mut lru = Vec::new();
    for o in (4..=8).rev() {
        let p = k.alloc_pages(Gfp::GFP_HIGHUSER_MOVABLE | Gfp::MEMALLOC, o).expect("block");
        assert_eq!(p, b.add(1 << o));
        for i in 0..(1u64 << o) {
            k.memmap.page(p.add(i)).set(pg::LRU);
        }
        lru.push((p, o));
    }
    let p = k.alloc_pages(Gfp::GFP_KERNEL | Gfp::MEMALLOC, 0).expect("page");
    assert_eq!(p, b.add(1), "stealing takes the smallest block");
    assert_eq!(k.get_pageblock_migratetype(b), MigrateType::Movable, "15 free + 1 unmovable < 256: no claim");
    check(k);
    for (q, o) in lru {
        for i in 0..(1u64 << o) {
            k.memmap.page(q.add(i)).clear(pg::LRU);
        }
        k.free_pages(q, o);
    }
    check(k);
}

#[test]
fn order_above_max_fails_with_a_warning() {
    let m = small(1);
    let k = &m.kernel;
    assert_eq!(k.alloc_pages(Gfp::GFP_KERNEL, MAX_PAGE_ORDER + 1), None);
    assert_eq!(k.log.count_matching(Level::Warn, "MAX_PAGE_ORDER"), 1);
    assert_eq!(k.alloc_pages(Gfp::GFP_KERNEL | Gfp::NOWARN, 20), None);
    assert_eq!(k.log.count_matching(Level::Warn, "MAX_PAGE_ORDER"), 1);
    let p = k.alloc_pages(Gfp::GFP_KERNEL, MAX_PAGE_ORDER).expect("max order works");
    assert_eq!(p.0 % (1 << MAX_PAGE_ORDER), 0);
    k.free_pages(p, MAX_PAGE_ORDER);
    check(k);
}

#[test]
fn pcp_lists_are_lifo_per_cpu_and_drain_empties_them() {
    let m = small(2);
    let k = &m.kernel;
    let base = k.nr_free_pages();
    let p = k.alloc_pages(Gfp::GFP_KERNEL, 0).expect("page");
    k.free_pages(p, 0);
    assert!(!k.memmap.page(p).is_buddy(), "an order-0 free goes to the pcp list");
    let z = k.page_zone(p);
    assert!(pcp_count(z, 0) > 0);
    m.hal.set_cpu(1);
    let q = k.alloc_pages(Gfp::GFP_KERNEL, 0).expect("page");
    assert_ne!(q, p, "CPU 1 cannot see CPU 0's list");
    m.hal.set_cpu(0);
    assert_eq!(k.alloc_pages(Gfp::GFP_KERNEL, 0), Some(p), "last in, first out");
    k.free_pages(p, 0);
    k.free_pages(q, 0);
    check(k);
    k.drain_all_pages();
    assert_eq!(k.pcp_pages(), 0);
    for z in k.zones() {
        for cpu in 0..2 {
            assert_eq!(pcp_count(z, cpu), 0);
        }
    }
    assert_eq!(k.nr_free_pages(), base, "every page is back in the buddy lists");
    check(k);
}

#[test]
fn debug_vm_reports_corruption() {
    let m = small(1);
    let k = &m.kernel;
    check(k);
    let p = k.alloc_pages(Gfp::GFP_KERNEL, 0).expect("page");
    // An allocated page claiming to be free.
    k.memmap.page(p).set(pg::BUDDY);
    let e = debug_vm::check_all(k).unwrap_err();
    assert!(e.contains("on no free list") && e.contains(&format!("pfn {:#x}", p.0)), "{e}");
    assert!(e.contains("node 0 zone DMA32"), "{e}");
    k.memmap.page(p).clear(pg::BUDDY);
    // A counter off by one.
    let z = k.page_zone(p);
    z.stat.add(ZoneStat::NrFreePages as usize, 1);
    let e = debug_vm::check_all(k).unwrap_err();
    assert!(e.contains("NR_FREE_PAGES"), "{e}");
    z.stat.add(ZoneStat::NrFreePages as usize, -1);
    // A free block on the wrong type's list.
    let (pfn, mt) = {
        let fa = z.free.lock();
        let mt = MigrateType::Movable;
        (fa.area[MAX_PAGE_ORDER as usize].lists[mt as usize].first().expect("a free max-order block"), mt)
    };
    k.set_pageblock_migratetype(pfn, MigrateType::Reclaimable);
    let e = debug_vm::check_all(k).unwrap_err();
    assert!(e.contains(&format!("pfn {:#x}", pfn.0)) && e.contains("is Reclaimable"), "{e}");
    k.set_pageblock_migratetype(pfn, mt);
    // Two free halves of a max-order block left unmerged.
    {
        let mut fa = z.free.lock();
        let (top, half) = (MAX_PAGE_ORDER as usize, MAX_PAGE_ORDER as usize - 1);
        fa.area[top].lists[mt as usize].remove(&k.memmap, pfn);
        fa.area[top].nr_free -= 1;
        for h in [pfn, pfn.add(1 << half)] {
            let page = k.memmap.page(h);
            page.private.store(half as u64, Relaxed);
            page.set(pg::BUDDY);
            fa.area[half].lists[mt as usize].push_back(&k.memmap, h);
            fa.area[half].nr_free += 1;
        }
    }
    let e = debug_vm::check_all(k).unwrap_err();
    assert!(
        e.contains(&format!("pfn {:#x}: free block of order 9 (Movable)", pfn.0)) && e.contains("not merged"),
        "{e}"
    );
    {
        let mut fa = z.free.lock();
        let (top, half) = (MAX_PAGE_ORDER as usize, MAX_PAGE_ORDER as usize - 1);
        for h in [pfn, pfn.add(1 << half)] {
            fa.area[half].lists[mt as usize].remove(&k.memmap, h);
            fa.area[half].nr_free -= 1;
        }
        k.memmap.page(pfn.add(1 << half)).clear(pg::BUDDY);
        k.memmap.page(pfn.add(1 << half)).private.store(0, Relaxed);
        k.memmap.page(pfn).private.store(top as u64, Relaxed);
        fa.area[top].lists[mt as usize].push_back(&k.memmap, pfn);
        fa.area[top].nr_free += 1;
    }
    check(k);
    // A page on a pcp list with a reference.
    k.free_pages(p, 0);
    k.memmap.page(p).refcount.store(1, Relaxed);
    let e = debug_vm::check_all(k).unwrap_err();
    assert!(e.contains("pcp list with refcount 1"), "{e}");
    k.memmap.page(p).refcount.store(0, Relaxed);
    // A broken back link.
    let prev = k.memmap.page(p).lru_prev.load(Relaxed);
    k.memmap.page(p).lru_prev.store(p.0 + 1, Relaxed);
    let e = debug_vm::check_all(k).unwrap_err();
    assert!(e.contains(&format!("lru_prev is {:#x}", p.0 + 1)), "{e}");
    k.memmap.page(p).lru_prev.store(prev, Relaxed);
    check(k);
    // A page inside a free block also on a pcp list (a double free).
    let inside = pfn.add(1);
    {
        let pcp = &z.per_cpu[0].pcp;
        pcp.lists[0].push_front(&k.memmap, inside);
        let mut v = pcp.get();
        v.count += 1;
        pcp.set(&v);
    }
    let e = debug_vm::check_all(k).unwrap_err();
    assert!(e.contains(&format!("pfn {:#x}: block of order 0 on cpu 0's pcp list overlaps", inside.0)), "{e}");
    {
        let pcp = &z.per_cpu[0].pcp;
        pcp.lists[0].remove(&k.memmap, inside);
        let mut v = pcp.get();
        v.count -= 1;
        pcp.set(&v);
    }
    check(k);
}

// Regression tests for fixes to the allocator, each named after the
// Linux rule it restores.

/// `clamp()` in C takes the upper bound when the bounds cross; `u32::clamp`
/// panics. A large `vm.watermark_scale_factor` puts the low watermark (the
/// pcp `high_min`) above an eighth of the zone (`high_max`).
#[test]
fn pcp_survives_high_min_above_high_max() {
    let m = small(1);
    let k = &m.kernel;
    k.sysctl_set("vm.watermark_scale_factor", "3000").unwrap();
    let dma32 = zone(k, 0, ZoneType::Dma32);
    assert!(dma32.pageset[0].load(Relaxed) > dma32.pageset[1].load(Relaxed), "precondition: high_min > high_max");
    let pages: Vec<Pfn> = (0..2000).map(|_| k.alloc_pages(Gfp::GFP_KERNEL, 0).expect("page")).collect();
    for p in pages {
        k.free_pages(p, 0);
    }
    let high_max = dma32.pageset[1].load(Relaxed);
    assert!(pcp_count(dma32, 0) <= high_max, "the pcp list stays under high_max");
    check(k);
}

/// `nr_pcp_high`: while the zone is below its high watermark, the list may
/// grow to `high_min` (the low watermark per CPU) before a batch goes back;
/// the `4 * batch` cap is for zones under reclaim.
#[test]
fn pcp_keeps_up_to_high_min_in_a_zone_below_high() {
    let m = small(1);
    let k = &m.kernel;
    let dma32 = zone(k, 0, ZoneType::Dma32);
    let pages: Vec<Pfn> = (0..300).map(|_| k.alloc_pages(Gfp::GFP_KERNEL, 0).expect("page")).collect();
    assert!(pages.iter().all(|&p| k.page_zone(p).kind == ZoneType::Dma32));
    k.drain_all_pages();
    let mut held = Vec::new();
    while !dma32.test_flag(zone_flags::BELOW_HIGH) {
        held.push(k.alloc_pages(Gfp::GFP_KERNEL, 4).expect("above low"));
        assert!(held.len() < 10_000);
    }
    let high_min = dma32.pageset[0].load(Relaxed);
    let batch = dma32.pageset[2].load(Relaxed);
    assert!(high_min > 300 && 4 * batch < 300, "precondition: {high_min} / {batch}");
    for p in pages {
        k.free_pages(p, 0);
    }
    assert!(dma32.test_flag(zone_flags::BELOW_HIGH));
    assert_eq!(pcp_count(dma32, 0), 300, "no batch went back below high_min");
    check(k);
}

/// `free_pcppages_bulk` drains the list of the page just freed first.
#[test]
fn pcp_bulk_free_starts_with_the_list_just_freed_to() {
    let m = small(1);
    let k = &m.kernel;
    let u = k.alloc_pages(Gfp::GFP_KERNEL, 0).expect("page");
    let movs: Vec<Pfn> = (0..10_000).map(|_| k.alloc_pages(Gfp::GFP_HIGHUSER_MOVABLE, 0).expect("page")).collect();
    k.drain_all_pages();
    let z = k.page_zone(u);
    k.free_pages(u, 0);
    let ui = order_to_pindex(MigrateType::Unmovable, 0);
    let mut last = pcp_count(z, 0);
    let mut bulk = false;
    for p in movs {
        assert_eq!(k.page_zone(p).kind, z.kind);
        k.free_pages(p, 0);
        let c = pcp_count(z, 0);
        if c <= last {
            bulk = true;
            break;
        }
        last = c;
    }
    assert!(bulk, "no batch was freed");
    assert_eq!(z.per_cpu[0].pcp.lists[ui].first(), Some(u), "the unmovable page was drained first");
    check(k);
}

/// `gfp_to_alloc_flags`: only `__GFP_HIGH` non-blocking high-order
/// allocations reserve highatomic pageblocks; a zone whose 1% is below a
/// pageblock gets none (`reserve_highatomic_pageblock`).
#[test]
fn highatomic_reserves_follow_linux_rules() {
    let m = small(1);
    let k = &m.kernel;
    // No watermark boost (kswapd, which would undo it, does not run here).
    k.sysctl_set("vm.watermark_boost_factor", "0").unwrap();
    let (dma, dma32) = (zone(k, 0, ZoneType::Dma), zone(k, 0, ZoneType::Dma32));
    exhaust(k, Gfp::GFP_KERNEL | Gfp::DMA, &ALL_ORDERS);
    let low = wmark(dma32, Wmark::Low);
    while free(dma32) >= low {
        k.alloc_pages(Gfp::GFP_KERNEL, 4).expect("above min");
    }
    assert!(free(dma32) > wmark(dma32, Wmark::Min) + 64, "precondition: between min and low");
    // GFP_NOWAIT: non-blocking, but no __GFP_HIGH.
    let p = k.alloc_pages(Gfp::GFP_NOWAIT, 2).expect("above min");
    assert_eq!(k.page_zone(p).kind, ZoneType::Dma32);
    assert_eq!(dma32.nr_reserved_highatomic.load(Relaxed), 0, "GFP_NOWAIT reserved a pageblock");
    assert_ne!(k.get_pageblock_migratetype(p), MigrateType::HighAtomic);
    // GFP_ATOMIC does reserve the pageblock it allocated from.
    let q = k.alloc_pages(Gfp::GFP_ATOMIC, 2).expect("atomic");
    assert_eq!(k.page_zone(q).kind, ZoneType::Dma32);
    assert_eq!(dma32.nr_reserved_highatomic.load(Relaxed), PAGEBLOCK_NR_PAGES);
    assert_eq!(k.get_pageblock_migratetype(q), MigrateType::HighAtomic);
    check(k);
    assert_eq!(dma.nr_reserved_highatomic.load(Relaxed), 0);

    // Zones of 22015 and 32255 pages: 1% is below a pageblock, no reserve.
    let m = two_nodes();
    let k = &m.kernel;
    k.sysctl_set("vm.min_free_kbytes", "400000").unwrap();
    assert_eq!(k.alloc_pages(Gfp::GFP_KERNEL | Gfp::NOWARN, 1), None, "precondition: only atomic passes");
    let p = k.alloc_pages(Gfp::GFP_ATOMIC, 1).expect("atomic");
    assert_eq!(k.page_zone(p).kind, ZoneType::Dma32);
    assert!(k.page_zone(p).managed() / 100 < PAGEBLOCK_NR_PAGES);
    assert_ne!(k.get_pageblock_migratetype(p), MigrateType::HighAtomic);
    for z in k.zones() {
        assert_eq!(z.nr_reserved_highatomic.load(Relaxed), 0, "node {} {} reserved", z.nid, z.kind.name());
    }
    check(k);
}

/// `rmqueue`: when the pcp refill finds nothing, an order-0 atomic
/// allocation still reaches the highatomic reserve through `rmqueue_buddy`;
/// `__alloc_pages_slowpath`: a `__GFP_MEMALLOC` retry replaces the atomic
/// flags, so it does not.
#[test]
fn highatomic_reserve_serves_order0_atomic_but_not_memalloc() {
    let m = small(1);
    let k = &m.kernel;
    let dma32 = zone(k, 0, ZoneType::Dma32);
    let default = k.sysctl_get("vm.min_free_kbytes").unwrap();
    // Watermarks so high that only atomic allocations pass: the first
    // high-order atomic allocation reserves a nearly free pageblock.
    k.sysctl_set("vm.min_free_kbytes", "400000").unwrap();
    assert_eq!(k.alloc_pages(Gfp::GFP_KERNEL | Gfp::NOWARN, 0), None);
    let p = k.alloc_pages(Gfp::GFP_ATOMIC, 1).expect("atomic");
    assert_eq!(k.get_pageblock_migratetype(p), MigrateType::HighAtomic);
    let reserved = dma32.nr_free_highatomic.load(Relaxed);
    assert!(reserved > 400, "precondition: {reserved} free in the reserve");
    k.sysctl_set("vm.min_free_kbytes", &default).unwrap();
    // Ordinary allocations leave the reserve alone.
    exhaust(k, Gfp::GFP_KERNEL, &ALL_ORDERS);
    assert_eq!(dma32.nr_free_highatomic.load(Relaxed), reserved);
    let floor = reserve_min(wmark(dma32, Wmark::Min), true, true);
    assert!(reserved > floor, "precondition: the reserve alone is above the atomic floor {floor}");
    let mut n = 0;
    while k.alloc_pages(Gfp::GFP_ATOMIC | Gfp::NOWARN, 0).is_some() {
        n += 1;
        assert!(n < 100_000);
    }
    let left = dma32.nr_free_highatomic.load(Relaxed);
    assert!(left < reserved, "the reserve was not used");
    assert!(free(dma32) <= floor, "atomic allocations stopped at {} free, above {floor}", free(dma32));
    assert!(left > 0 && free(zone(k, 0, ZoneType::Dma)) > 0, "precondition for __GFP_MEMALLOC");
    check(k);
    // __GFP_MEMALLOC ignores the watermarks but, its flags replacing the
    // atomic ones, not the highatomic reserve: the page comes from DMA.
    let p = k.alloc_pages(Gfp::GFP_ATOMIC | Gfp::MEMALLOC, 0).expect("memalloc");
    assert_eq!(k.page_zone(p).kind, ZoneType::Dma, "took {:?} from the highatomic reserve", p);
    assert_eq!(dma32.nr_free_highatomic.load(Relaxed), left);
    assert!(k.memmap.page(p).test(pg::PFMEMALLOC), "a page from below the watermarks is marked pfmemalloc");
    check(k);
}

/// `free_one_page` counts `pgfree` for blocks that bypass the pcp lists.
#[test]
fn pgfree_counts_every_free() {
    let m = small(1);
    let k = &m.kernel;
    let before = k.vm_event(VmEvent::Pgfree);
    let p = k.alloc_pages(Gfp::GFP_KERNEL, 5).expect("block");
    k.free_pages(p, 5);
    assert_eq!(k.vm_event(VmEvent::Pgfree), before + 32);
    let q = k.alloc_pages(Gfp::GFP_KERNEL, 0).expect("page");
    k.free_pages(q, 0);
    assert_eq!(k.vm_event(VmEvent::Pgfree), before + 33);
    check(k);
}

#[test]
fn freeing_a_frame_outside_ram_is_reported_and_ignored() {
    let m = small(1);
    let k = &m.kernel;
    let free0 = k.nr_free_pages() + k.pcp_pages();
    // The PCI-less 256 MiB machine has no memory at 1 GiB, and none past its end.
    for pfn in [Pfn((1 << 30) >> 12), Pfn(k.memmap.max_pfn() + 5), Pfn(u64::MAX >> 12)] {
        k.free_pages(pfn, 0);
        k.free_frozen_pages(pfn, 3);
    }
    assert_eq!(k.log.count_matching(Level::Err, "which has no memmap"), 6);
    assert_eq!(k.nr_free_pages() + k.pcp_pages(), free0, "nothing entered the free lists");
    check(k);
}

#[test]
fn idle_pcp_lists_decay_to_high_min() {
    let mut m = small(1);
    // Grow CPU 0's list: allocate a few thousand pages, then free them all;
    // the free path raises `high` toward high_max while the CPU keeps freeing.
    let pages: Vec<Pfn> = (0..6000).map(|_| m.kernel.alloc_pages(Gfp::GFP_KERNEL, 0).expect("page")).collect();
    for p in pages {
        m.kernel.free_pages(p, 0);
    }
    let pcp = |m: &Machine| m.kernel.nodes[0].zones[ZoneType::Dma32 as usize].per_cpu[0].pcp.get();
    let v0 = pcp(&m);
    assert!(v0.high > v0.high_min && v0.count > v0.high_min, "the list grew: {v0:?}");
    // Each second of idle virtual time (vmstat_update) cuts high by an
    // eighth and frees what is above it, down to high_min.
    m.advance(1_000_000_000);
    let v1 = pcp(&m);
    assert!(v1.high < v0.high && v1.count <= v1.high, "{v0:?} -> {v1:?}");
    for _ in 0..60 {
        m.advance(1_000_000_000);
    }
    let v = pcp(&m);
    assert_eq!(v.high, v.high_min);
    assert!(v.count <= v.high_min);
    check(&m.kernel);
}
