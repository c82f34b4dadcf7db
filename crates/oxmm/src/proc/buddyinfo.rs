//! The fragmentation views of the buddy allocator: `/proc/buddyinfo` and
//! `/proc/pagetypeinfo` (Linux's `frag_show` and `pagetypeinfo_show` in
//! `mm/vmstat.c`).
//!
//! Both walk the populated zones of each node. `buddyinfo` prints each
//! order's free-block count (`nr_free`); `pagetypeinfo` splits those counts
//! by migratetype and then counts the zone's pageblocks by the migratetype
//! their pageblock bits record. Our kernel has CMA and memory isolation, so
//! the type columns are Unmovable, Movable, Reclaimable, HighAtomic, CMA and
//! Isolate (a host kernel without CONFIG_CMA prints no CMA row or column).

use alloc::string::String;
use core::fmt::Write;

use crate::kernel::Kernel;
use crate::mmzone::{MigrateType, MIGRATE_TYPES};
use crate::page_alloc::{Node, Zone};
use crate::types::{Pfn, NR_PAGE_ORDERS, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER};

/// Longest free list `pagetypeinfo` walks before printing `>100000`:
/// the walk runs under the zone lock, so Linux bounds it.
const FREE_LIST_WALK_CAP: u64 = 100_000;

/// The populated zones of a node, lowest first (`walk_zones_in_node` with
/// `assert_populated`).
fn populated_zones(node: &Node) -> impl Iterator<Item = &Zone> {
    node.zones.iter().filter(|z| z.populated())
}

/// Renders `/proc/buddyinfo`: per populated zone, the number of free
/// blocks of each order, read under the zone lock.
pub fn buddyinfo(k: &Kernel) -> String {
    let mut s = String::new();
    for node in &k.nodes {
        for zone in populated_zones(node) {
            let nr_free: [u64; NR_PAGE_ORDERS] = {
                let fa = zone.free.lock();
                core::array::from_fn(|o| fa.area[o].nr_free)
            };
            let _ = write!(s, "Node {}, zone {:>8} ", node.nid, zone.kind.name());
            for n in nr_free {
                let _ = write!(s, "{n:6} ");
            }
            s.push('\n');
        }
    }
    s
}

/// Renders `/proc/pagetypeinfo`: for each node with memory, the pageblock
/// geometry, the free-block counts by migratetype and order, and the
/// number of pageblocks of each migratetype.
pub fn pagetypeinfo(k: &Kernel) -> String {
    let mut s = String::new();
    for node in k.nodes.iter().filter(|n| n.node_present_pages > 0) {
        let _ = writeln!(s, "Page block order: {PAGEBLOCK_ORDER}");
        let _ = writeln!(s, "Pages per block:  {PAGEBLOCK_NR_PAGES}");
        s.push('\n');
        show_free(k, node, &mut s);
        show_block_count(k, node, &mut s);
    }
    s
}

/// The "Free pages count per migrate type at order" table of one node.
fn show_free(k: &Kernel, node: &Node, s: &mut String) {
    let _ = write!(s, "{:<43} ", "Free pages count per migrate type at order");
    for order in 0..NR_PAGE_ORDERS {
        let _ = write!(s, "{order:6} ");
    }
    s.push('\n');
    for zone in populated_zones(node) {
        for mt in MigrateType::ALL {
            let _ = write!(s, "Node {:4}, zone {:>8}, type {:>12} ", node.nid, zone.kind.name(), mt.name());
            for order in 0..NR_PAGE_ORDERS {
                // One lock hold per list, as Linux drops the lock between
                // orders so a long walk does not stall the allocator.
                let count = {
                    let fa = zone.free.lock();
                    let list = &fa.area[order].lists[mt.index()];
                    list.iter(&k.memmap).take(FREE_LIST_WALK_CAP as usize).count() as u64
                };
                let over = if count >= FREE_LIST_WALK_CAP { ">" } else { "" };
                let _ = write!(s, "{over}{count:6} ");
            }
            s.push('\n');
        }
    }
}

/// Pageblocks of each migratetype in a zone: one sample per
/// `PAGEBLOCK_NR_PAGES` frames from the zone's first frame, skipping frames
/// without a memmap and frames that belong to another zone
/// (`pagetypeinfo_showblockcount_print`).
fn zone_block_counts(k: &Kernel, zone: &Zone) -> [u64; MIGRATE_TYPES] {
    let mut count = [0u64; MIGRATE_TYPES];
    let mut pfn = zone.zone_start_pfn;
    while pfn < zone.end_pfn() {
        let p = Pfn(pfn);
        pfn += PAGEBLOCK_NR_PAGES;
        if !k.memmap.pfn_valid(p) {
            continue;
        }
        let page = k.memmap.page(p);
        if page.nid() != zone.nid || page.zonenum() != zone.kind {
            continue;
        }
        count[k.get_pageblock_migratetype(p).index()] += 1;
    }
    count
}

/// The "Number of blocks type" table of one node.
fn show_block_count(k: &Kernel, node: &Node, s: &mut String) {
    let _ = write!(s, "\n{:<23}", "Number of blocks type ");
    for mt in MigrateType::ALL {
        let _ = write!(s, "{:>12} ", mt.name());
    }
    s.push('\n');
    for zone in populated_zones(node) {
        let _ = write!(s, "Node {}, zone {:>8} ", node.nid, zone.kind.name());
        for n in zone_block_counts(k, zone) {
            let _ = write!(s, "{n:12} ");
        }
        s.push('\n');
    }
}
