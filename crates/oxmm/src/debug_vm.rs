//! Invariant checkers (Linux's `CONFIG_DEBUG_VM` checks, `mm/debug.c`):
//! walk the allocator's structures and compare them with the memmap and
//! the counters.
//!
//! The module always compiles; the `debug_vm` feature says whether callers
//! (tests, the simulator's self-checks) should run the checks, see
//! [`ENABLED`]. A check takes every per-cpu list lock of the zone and then
//! the zone lock, in the allocator's lock order, so it sees one consistent
//! state; it is linear in the zone's span.
//!
//! What [`check_zone`] verifies, for one zone:
//! - every block on a free list: `PG_buddy` set, `buddy_order` equal to the
//!   list's order, inside the zone, aligned to its order, refcount 0,
//!   mapcount -1, and the pages inside it are free too (refcount 0, not
//!   `PG_buddy`);
//! - the list's migratetype equals the pageblock's (for blocks of pageblock
//!   order and above: every pageblock of the block). Linux admits no
//!   exception: `__add_to_free_list`, `move_to_free_list` and
//!   `__del_page_from_free_list` warn on any mismatch (there only for the
//!   first pageblock; the others are kept equal by `change_pageblock_range`
//!   and by `split_large_buddy` freeing per pageblock);
//! - blocks (free lists and per-cpu lists together) do not overlap;
//! - coalescing is complete: no free block has a free buddy of the same
//!   order in the zone, except across pageblocks whose types may not merge
//!   (isolate, CMA, highatomic against anything else), as `__free_one_page`
//!   refuses those merges at pageblock order and above;
//! - `nr_free` of each area equals its list lengths; `NR_FREE_PAGES` equals
//!   the pages on all lists but the Isolate ones; `NR_FREE_CMA_PAGES`,
//!   `NR_FREE_PAGES_BLOCKS` and `nr_free_highatomic` agree with theirs;
//! - every `PG_buddy` page of the zone within its span heads a listed block;
//! - list links are consistent both ways and end where the head says;
//! - pages on per-cpu lists: not `PG_buddy`, refcount 0, in this zone,
//!   aligned to the list's order, and each CPU's `count` equals the pages
//!   on its lists.
//!
//! Errors name the zone, the frame and the rule.

pub mod mm;
pub mod slub;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use crate::kernel::Kernel;
use crate::mmzone::{MigrateType, MIGRATE_PCPTYPES, MIGRATE_TYPES};
use crate::page::{Memmap, NIL};
use crate::page_alloc::pcp::{pindex_to_order, NR_PCP_LISTS};
use crate::page_alloc::{PageList, Zone};
use crate::types::{Pfn, MAX_PAGE_ORDER, NR_PAGE_ORDERS, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER, PAGES_PER_SECTION};
use crate::vmstat::ZoneStat;

/// True when the crate was built with the `debug_vm` feature, i.e. when
/// callers are expected to run these checks.
pub const ENABLED: bool = cfg!(feature = "debug_vm");

/// Most violations reported by one call; the rest are counted.
const MAX_REPORTED: usize = 16;

/// Where a block was found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Source {
    /// A buddy free list of this migratetype.
    Free(MigrateType),
    /// A per-cpu list of this CPU.
    Pcp(usize),
}

impl core::fmt::Display for Source {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Source::Free(mt) => write!(f, "the {} free list", mt.name()),
            Source::Pcp(cpu) => write!(f, "cpu {cpu}'s pcp list"),
        }
    }
}

/// A block seen on some list.
#[derive(Clone, Copy, Debug)]
struct Block {
    pfn: u64,
    order: u32,
    src: Source,
}

impl Block {
    fn end(&self) -> u64 {
        self.pfn + (1 << self.order)
    }
}

/// Collects violations for one zone.
struct Report {
    zone: String,
    msgs: Vec<String>,
    dropped: usize,
}

impl Report {
    fn new(zone: &Zone) -> Report {
        Report { zone: format!("node {} zone {}", zone.nid, zone.kind.name()), msgs: Vec::new(), dropped: 0 }
    }
    /// Records a violation at a frame.
    fn at(&mut self, pfn: u64, rule: core::fmt::Arguments<'_>) {
        if self.msgs.len() < MAX_REPORTED {
            self.msgs.push(format!("{}: pfn {:#x}: {}", self.zone, pfn, rule));
        } else {
            self.dropped += 1;
        }
    }
    /// Records a violation of a zone-wide rule.
    fn zone(&mut self, rule: core::fmt::Arguments<'_>) {
        if self.msgs.len() < MAX_REPORTED {
            self.msgs.push(format!("{}: {}", self.zone, rule));
        } else {
            self.dropped += 1;
        }
    }
    fn finish(self) -> Result<(), String> {
        if self.msgs.is_empty() {
            return Ok(());
        }
        let mut out = self.msgs.join("\n");
        if self.dropped > 0 {
            out.push_str(&format!("\n... and {} more", self.dropped));
        }
        Err(out)
    }
}

/// Migratetypes whose free blocks may merge across pageblocks
/// (`migratetype_is_mergeable`).
fn mergeable(mt: MigrateType) -> bool {
    (mt as usize) < MIGRATE_PCPTYPES
}

/// True when the frame's descriptor says it belongs to `zone`.
fn in_zone(mm: &Memmap, zone: &Zone, pfn: u64) -> bool {
    let p = mm.page(Pfn(pfn));
    p.nid() == zone.nid && p.zonenum() == zone.kind
}

/// Walks a list, checking its links both ways; returns its frames in order.
/// A broken link or a cycle ends the walk with a report.
fn walk_list(mm: &Memmap, list: &PageList, limit: u64, what: &str, r: &mut Report) -> Vec<u64> {
    let mut out = Vec::new();
    let mut prev = NIL;
    let mut cur = list.first().map_or(NIL, |p| p.0);
    while cur != NIL {
        if !mm.pfn_valid(Pfn(cur)) {
            r.at(cur, format_args!("{what}: link to a frame without a descriptor (from {prev:#x})"));
            return out;
        }
        if out.len() as u64 > limit {
            r.at(cur, format_args!("{what}: list longer than the zone (a cycle?)"));
            return out;
        }
        let page = mm.page(Pfn(cur));
        let back = page.lru_prev.load(Relaxed);
        if back != prev {
            r.at(cur, format_args!("{what}: lru_prev is {back:#x}, the previous entry is {prev:#x}"));
        }
        out.push(cur);
        prev = cur;
        cur = page.lru_next.load(Relaxed);
    }
    let last = list.last().map_or(NIL, |p| p.0);
    if last != prev {
        r.zone(format_args!("{what}: list tail is {last:#x}, the walk ended at {prev:#x}"));
    }
    out
}

/// Checks every invariant listed in the module doc for one zone, under its
/// zone lock (so the caller must not hold it), with the machine quiescent
/// (the pcp lists belong to their CPUs and are read as they stand). `Err`
/// holds one line per violation, at most 16 and a count of the rest.
pub fn check_zone(k: &Kernel, zone: &Zone) -> Result<(), String> {
    let mm = &k.memmap;
    let mut r = Report::new(zone);
    let pcps: Vec<_> = zone.per_cpu.iter().map(|c| &c.pcp).collect();
    let fa = zone.free.lock();
    let limit = zone.spanned_pages;
    let mut blocks: Vec<Block> = Vec::new();

    // The buddy free lists.
    let mut pages_by_mt = [0u64; MIGRATE_TYPES];
    let mut pages_blocks = 0u64;
    for order in 0..NR_PAGE_ORDERS as u32 {
        let area = &fa.area[order as usize];
        let mut listed = 0u64;
        for mt in MigrateType::ALL {
            let what = format!("free list order {order} {}", mt.name());
            let pfns = walk_list(mm, &area.lists[mt as usize], limit, &what, &mut r);
            listed += pfns.len() as u64;
            let n = 1u64 << order;
            pages_by_mt[mt as usize] += pfns.len() as u64 * n;
            if order >= PAGEBLOCK_ORDER && mt != MigrateType::Isolate {
                pages_blocks += pfns.len() as u64 * n;
            }
            for pfn in pfns {
                check_free_block(k, zone, pfn, order, mt, &what, &mut r);
                blocks.push(Block { pfn, order, src: Source::Free(mt) });
            }
        }
        for mt in MigrateType::ALL {
            let bit = fa.nonempty[mt as usize] & (1 << order) != 0;
            if bit == area.lists[mt as usize].is_empty() {
                r.zone(format_args!(
                    "order {order} {}: the non-empty mask says {bit} but the list is {}",
                    mt.name(),
                    if area.lists[mt as usize].is_empty() { "empty" } else { "not empty" }
                ));
            }
        }
        if listed != area.nr_free {
            r.zone(format_args!("order {order}: nr_free is {} but the lists hold {listed} blocks", area.nr_free));
        }
    }

    // Counters.
    let free_all: u64 =
        MigrateType::ALL.iter().filter(|&&m| m != MigrateType::Isolate).map(|&m| pages_by_mt[m as usize]).sum();
    let stat = |s: ZoneStat| zone.stat.get(s as usize);
    if stat(ZoneStat::NrFreePages) != free_all as i64 {
        r.zone(format_args!(
            "NR_FREE_PAGES is {} but the free lists (Isolate excluded) hold {free_all} pages",
            stat(ZoneStat::NrFreePages)
        ));
    }
    let cma = pages_by_mt[MigrateType::Cma as usize];
    if stat(ZoneStat::NrFreeCma) != cma as i64 {
        r.zone(format_args!("NR_FREE_CMA_PAGES is {} but the CMA lists hold {cma} pages", stat(ZoneStat::NrFreeCma)));
    }
    if stat(ZoneStat::NrFreePagesBlocks) != pages_blocks as i64 {
        r.zone(format_args!(
            "NR_FREE_PAGES_BLOCKS is {} but blocks of pageblock order and up (Isolate excluded) hold {pages_blocks} pages",
            stat(ZoneStat::NrFreePagesBlocks)
        ));
    }
    let ha = pages_by_mt[MigrateType::HighAtomic as usize];
    let nr_ha = zone.nr_free_highatomic.load(Relaxed);
    if nr_ha != ha {
        r.zone(format_args!("nr_free_highatomic is {nr_ha} but the HighAtomic lists hold {ha} pages"));
    }

    // Coalescing: only the buddy blocks, before the pcp ones join the vector.
    for b in &blocks {
        let Source::Free(mt) = b.src else { continue };
        check_coalesced(k, zone, b.pfn, b.order, mt, &mut r);
    }

    // The per-cpu lists.
    for (cpu, pcp) in pcps.iter().enumerate() {
        let mut pages = 0u64;
        for pindex in 0..NR_PCP_LISTS {
            let order = pindex_to_order(pindex);
            let what = format!("cpu {cpu} pcp list {pindex} (order {order})");
            let pfns = walk_list(mm, &pcp.lists[pindex], limit, &what, &mut r);
            pages += pfns.len() as u64 * (1 << order);
            for pfn in pfns {
                check_pcp_page(k, zone, pfn, order, &what, &mut r);
                blocks.push(Block { pfn, order, src: Source::Pcp(cpu) });
            }
        }
        let count = pcp.get().count;
        if count as u64 != pages {
            r.zone(format_args!("cpu {cpu}: pcp count is {count} but its lists hold {pages} pages"));
        }
    }

    // No two blocks overlap (a frame on two lists, a pcp page inside a free block...).
    blocks.sort_unstable_by_key(|b| (b.pfn, b.order));
    for w in blocks.windows(2) {
        if w[1].pfn < w[0].end() {
            r.at(
                w[1].pfn,
                format_args!(
                    "block of order {} on {} overlaps the block of order {} at {:#x} on {}",
                    w[1].order, w[1].src, w[0].order, w[0].pfn, w[0].src
                ),
            );
        }
    }

    // Every PG_buddy frame of the zone heads a listed free block; the frames
    // inside a free block are free too.
    scan_span(k, zone, &blocks, &mut r);

    drop(fa);
    drop(pcps);
    r.finish()
}

/// The per-block rules of a buddy free list entry.
fn check_free_block(k: &Kernel, zone: &Zone, pfn: u64, order: u32, mt: MigrateType, what: &str, r: &mut Report) {
    let mm = &k.memmap;
    let n = 1u64 << order;
    if pfn & (n - 1) != 0 {
        r.at(pfn, format_args!("{what}: block not aligned to its order"));
    }
    if !zone.spans(Pfn(pfn)) || !zone.spans(Pfn(pfn + n - 1)) {
        r.at(pfn, format_args!("{what}: block leaves the zone span"));
        return;
    }
    if !in_zone(mm, zone, pfn) {
        let p = mm.page(Pfn(pfn));
        r.at(pfn, format_args!("{what}: page belongs to node {} zone {}", p.nid(), p.zonenum().name()));
    }
    let page = mm.page(Pfn(pfn));
    if !page.is_buddy() {
        r.at(pfn, format_args!("{what}: page on a free list without PG_buddy"));
    }
    if page.buddy_order() != order {
        r.at(pfn, format_args!("{what}: buddy_order is {}", page.buddy_order()));
    }
    if page.ref_count() != 0 {
        r.at(pfn, format_args!("{what}: free page with refcount {}", page.ref_count()));
    }
    let mc = page.mapcount.load(Relaxed);
    if mc != -1 {
        r.at(pfn, format_args!("{what}: free page with mapcount {mc}"));
    }
    // The list's type is the pageblock's, for every pageblock the block covers.
    let mut b = pfn;
    loop {
        let bmt = k.get_pageblock_migratetype(Pfn(b));
        if bmt != mt {
            r.at(pfn, format_args!("{what}: pageblock at {b:#x} is {}", bmt.name()));
        }
        b += PAGEBLOCK_NR_PAGES;
        if b >= pfn + n {
            break;
        }
    }
}

/// No free buddy of the same order is left unmerged, unless
/// `__free_one_page` would refuse the merge.
fn check_coalesced(k: &Kernel, zone: &Zone, pfn: u64, order: u32, mt: MigrateType, r: &mut Report) {
    if order >= MAX_PAGE_ORDER {
        return;
    }
    let mm = &k.memmap;
    let buddy = pfn ^ (1 << order);
    if !mm.pfn_valid(Pfn(buddy)) || !zone.spans(Pfn(buddy)) {
        return;
    }
    let bp = mm.page(Pfn(buddy));
    if !(bp.is_buddy() && bp.buddy_order() == order && in_zone(mm, zone, buddy)) {
        return;
    }
    if order >= PAGEBLOCK_ORDER {
        let bmt = k.get_pageblock_migratetype(Pfn(buddy));
        if bmt != mt && (!mergeable(mt) || !mergeable(bmt)) {
            return;
        }
    }
    r.at(
        pfn,
        format_args!("free block of order {order} ({}) and its free buddy {buddy:#x} were not merged", mt.name()),
    );
}

/// The rules of a page on a per-cpu list.
fn check_pcp_page(k: &Kernel, zone: &Zone, pfn: u64, order: u32, what: &str, r: &mut Report) {
    let mm = &k.memmap;
    let n = 1u64 << order;
    if pfn & (n - 1) != 0 {
        r.at(pfn, format_args!("{what}: block not aligned to its order"));
    }
    if !zone.spans(Pfn(pfn)) || !zone.spans(Pfn(pfn + n - 1)) || !in_zone(mm, zone, pfn) {
        r.at(pfn, format_args!("{what}: page of another zone"));
        return;
    }
    let page = mm.page(Pfn(pfn));
    if page.is_buddy() {
        r.at(pfn, format_args!("{what}: page on a pcp list with PG_buddy"));
    }
    if page.ref_count() != 0 {
        r.at(pfn, format_args!("{what}: page on a pcp list with refcount {}", page.ref_count()));
    }
}

/// Scans every frame the zone spans, against the sorted blocks.
fn scan_span(k: &Kernel, zone: &Zone, blocks: &[Block], r: &mut Report) {
    let mm = &k.memmap;
    let end = zone.end_pfn();
    let mut pfn = zone.zone_start_pfn;
    let mut next = 0usize;
    // One past the last frame of the free block being crossed.
    let mut free_end = 0u64;
    while pfn < end {
        if !mm.pfn_valid(Pfn(pfn)) {
            // A hole: skip to the next section.
            pfn = (pfn / PAGES_PER_SECTION + 1) * PAGES_PER_SECTION;
            continue;
        }
        while next < blocks.len() && blocks[next].pfn < pfn {
            next += 1;
        }
        let page = mm.page(Pfn(pfn));
        let head = next < blocks.len() && blocks[next].pfn == pfn && matches!(blocks[next].src, Source::Free(_));
        if head {
            free_end = free_end.max(blocks[next].end());
        } else if pfn < free_end {
            if page.is_buddy() {
                r.at(pfn, format_args!("PG_buddy page inside a larger free block"));
            }
            if page.ref_count() != 0 {
                r.at(pfn, format_args!("page inside a free block with refcount {}", page.ref_count()));
            }
        } else if page.is_buddy() && in_zone(mm, zone, pfn) {
            r.at(pfn, format_args!("PG_buddy page (order {}) on no free list", page.buddy_order()));
        }
        pfn += 1;
    }
}

/// Runs [`check_zone`] on every zone of every node; `Err` gathers every
/// zone's violations.
pub fn check_all(k: &Kernel) -> Result<(), String> {
    let errs: Vec<String> = k.zones().filter_map(|z| check_zone(k, z).err()).collect();
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}
