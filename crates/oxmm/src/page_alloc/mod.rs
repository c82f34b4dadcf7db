//! The buddy page allocator (Linux's `mm/page_alloc.c`): nodes, zones, free
//! areas per order and migratetype, per-cpu page lists, watermarks, and the
//! allocation and free paths.
//!
//! Structure, as in Linux:
//! - a [`Node`] (`pglist_data`) per NUMA node, with its [`Zone`]s and two
//!   zonelists (all nodes by distance; this node only, for `__GFP_THISNODE`);
//! - a [`Zone`] keeps its free blocks in [`FreeArea`]s, one per order, each
//!   with a list per [`MigrateType`], under `zone->lock` ([`Zone::free`]);
//! - each CPU has a [`Pcp`] per zone caching orders 0..=3 and the
//!   pageblock order, under its own lock, refilled and drained in batches.
//!
//! Submodules: [`buddy`] (splitting, merging, fallback and stealing),
//! [`pcp`] (per-cpu lists), [`watermark`] (watermarks, lowmem reserves,
//! pcp sizing). The slow path reaches for reclaim and compaction through
//! hooks that later components fill; until then an allocation the
//! watermarks forbid returns `None`.
//!
//! Lock order: pcp lock -> zone lock. Neither is held across a call out of
//! this module.

pub mod buddy;
pub mod list;
pub mod pcp;
pub mod watermark;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::mmzone::{MigrateType, ZoneType, MAX_NR_ZONES, MIGRATE_TYPES};
use crate::page::pg;
use crate::types::{Pfn, MAX_PAGE_ORDER, NR_PAGE_ORDERS};
use crate::vmstat::{NodeStats, NumaStat, VmEvent, ZoneStat, ZoneStats};
pub use list::PageList;
pub use pcp::{Pcp, PerCpuPages};

/// Orders above this are "costly": no pcp caching, fewer retries
/// (`PAGE_ALLOC_COSTLY_ORDER`).
pub const PAGE_ALLOC_COSTLY_ORDER: u32 = 3;

/// Watermark indices (`enum zone_watermarks`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
pub enum Wmark {
    /// Below this only reserve users allocate.
    Min = 0,
    /// Below this kswapd wakes.
    Low = 1,
    /// kswapd sleeps when free memory is above this.
    High = 2,
    /// Memory-tiering promotion target.
    Promo = 3,
}

/// Allocation flags internal to the allocator (Linux's `ALLOC_*` in `mm/internal.h`).
#[allow(missing_docs)]
pub mod alloc_flags {
    pub const WMARK_MIN: u32 = 0;
    pub const WMARK_LOW: u32 = 1;
    pub const WMARK_HIGH: u32 = 2;
    pub const NO_WATERMARKS: u32 = 4;
    pub const WMARK_MASK: u32 = NO_WATERMARKS - 1;
    pub const OOM: u32 = 0x08;
    pub const NON_BLOCK: u32 = 0x10;
    /// Same bit as `__GFP_HIGH`.
    pub const MIN_RESERVE: u32 = 0x20;
    pub const CPUSET: u32 = 0x40;
    pub const CMA: u32 = 0x80;
    pub const NOFRAGMENT: u32 = 0x100;
    pub const HIGHATOMIC: u32 = 0x200;
    /// Same bit as `__GFP_KSWAPD_RECLAIM`.
    pub const KSWAPD: u32 = 0x800;
    pub const RESERVES: u32 = NON_BLOCK | MIN_RESERVE | HIGHATOMIC | OOM;
}

/// Zone flag bits (`enum zone_flags`).
#[allow(missing_docs)]
pub mod zone_flags {
    pub const BOOSTED_WATERMARK: u64 = 1 << 0;
    pub const RECLAIM_ACTIVE: u64 = 1 << 1;
    pub const BELOW_HIGH: u64 = 1 << 2;
}

/// One order's free blocks: a list per migratetype and their total count.
#[derive(Debug, Default)]
pub struct FreeArea {
    /// Free blocks of this order, by migratetype.
    pub lists: [PageList; MIGRATE_TYPES],
    /// Blocks (not pages) on all lists of this order.
    pub nr_free: u64,
}

/// What `zone->lock` guards: the free areas.
#[derive(Debug, Default)]
pub struct ZoneFree {
    /// Free areas, by order.
    pub area: [FreeArea; NR_PAGE_ORDERS],
    /// Per migratetype, bit `o` set when that type's order-`o` list is not
    /// empty: the smallest usable order is one `trailing_zeros` away
    /// instead of a walk over empty lists.
    pub nonempty: [u16; MIGRATE_TYPES],
}

/// One CPU's view of a zone: its page cache and its NUMA event counts.
#[repr(align(64))]
pub struct ZonePerCpu {
    /// The per-cpu pageset (`zone->per_cpu_pageset`), owned by the CPU.
    pub pcp: Pcp,
    /// NUMA events counted by this CPU (`zone->per_cpu_zonestats`).
    pub numa: [AtomicU64; NumaStat::COUNT],
}

/// A zone: a range of a node's memory with its own free lists and watermarks.
pub struct Zone {
    /// Node this zone belongs to.
    pub nid: usize,
    /// Which zone of the node.
    pub kind: ZoneType,
    /// First frame spanned.
    pub zone_start_pfn: u64,
    /// Frames from first to last, holes included.
    pub spanned_pages: u64,
    /// Frames of RAM in the span.
    pub present_pages: u64,
    /// Frames the buddy allocator manages (present minus boot reservations).
    pub managed_pages: AtomicU64,
    /// Frames given to CMA areas.
    pub cma_pages: AtomicU64,
    /// Watermarks, indexed by [`Wmark`] (without the boost).
    pub watermark: [AtomicU64; 4],
    /// Temporary raise of all watermarks after a fragmenting fallback.
    pub watermark_boost: AtomicU64,
    /// Pages kept back from allocations whose highest zone is above this one.
    pub lowmem_reserve: [AtomicU64; MAX_NR_ZONES],
    /// Pages in pageblocks reserved for high-order atomic allocations.
    pub nr_reserved_highatomic: AtomicU64,
    /// Free pages in those pageblocks (`nr_free_highatomic`).
    pub nr_free_highatomic: AtomicU64,
    /// `zone->lock` and the free areas it guards.
    pub free: spin::Mutex<ZoneFree>,
    /// State counters.
    pub stat: ZoneStats,
    /// Per-cpu pagesets, indexed by CPU.
    pub per_cpu: Box<[ZonePerCpu]>,
    /// `pageset_high_min`, `pageset_high_max`, `pageset_batch`.
    pub pageset: [AtomicU32; 3],
    /// Zone flags ([`zone_flags`]).
    pub flags: AtomicU64,
    /// Per-cpu counter drift threshold (`stat_threshold`, for zoneinfo).
    pub stat_threshold: AtomicU32,
}

impl Zone {
    /// A zone with its span; managed pages and free lists start empty.
    pub fn new(nid: usize, kind: ZoneType, start: u64, spanned: u64, present: u64, nr_cpus: usize) -> Zone {
        Zone {
            nid,
            kind,
            zone_start_pfn: start,
            spanned_pages: spanned,
            present_pages: present,
            managed_pages: AtomicU64::new(0),
            cma_pages: AtomicU64::new(0),
            watermark: Default::default(),
            watermark_boost: AtomicU64::new(0),
            lowmem_reserve: Default::default(),
            nr_reserved_highatomic: AtomicU64::new(0),
            nr_free_highatomic: AtomicU64::new(0),
            free: spin::Mutex::new(ZoneFree::default()),
            stat: ZoneStats::default(),
            per_cpu: (0..nr_cpus).map(|_| ZonePerCpu { pcp: Pcp::default(), numa: Default::default() }).collect(),
            pageset: Default::default(),
            flags: AtomicU64::new(0),
            stat_threshold: AtomicU32::new(0),
        }
    }
    /// One past the last frame spanned.
    #[inline]
    pub fn end_pfn(&self) -> u64 {
        self.zone_start_pfn + self.spanned_pages
    }
    /// True when the zone spans the frame (`zone_spans_pfn`).
    #[inline]
    pub fn spans(&self, pfn: Pfn) -> bool {
        pfn.0 >= self.zone_start_pfn && pfn.0 < self.end_pfn()
    }
    /// Has RAM (`populated_zone`).
    #[inline]
    pub fn populated(&self) -> bool {
        self.present_pages != 0
    }
    /// Managed frames (`zone_managed_pages`).
    #[inline]
    pub fn managed(&self) -> u64 {
        self.managed_pages.load(Relaxed)
    }
    /// A watermark plus the current boost (`wmark_pages`).
    #[inline]
    pub fn wmark_pages(&self, w: Wmark) -> u64 {
        self.watermark[w as usize].load(Relaxed) + self.watermark_boost.load(Relaxed)
    }
    /// A state counter, clamped at zero as `zone_page_state` does.
    #[inline]
    pub fn page_state(&self, item: ZoneStat) -> u64 {
        self.stat.get(item as usize).max(0) as u64
    }
    /// A NUMA event summed over CPUs (`zone_numa_event_state`).
    pub fn numa_event(&self, item: NumaStat) -> u64 {
        self.per_cpu.iter().map(|c| c.numa[item as usize].load(Relaxed)).sum()
    }
    /// Tests zone flags.
    #[inline]
    pub fn test_flag(&self, f: u64) -> bool {
        self.flags.load(Relaxed) & f != 0
    }
}

/// Zonelist kinds (`ZONELIST_FALLBACK`, `ZONELIST_NOFALLBACK`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ZonelistKind {
    /// Every node's zones, nearest node first.
    Fallback = 0,
    /// This node's zones only (`__GFP_THISNODE`).
    NoFallback = 1,
}

/// A zone reference in a zonelist: node and zone index.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ZoneRef {
    /// Node id.
    pub nid: u16,
    /// Zone index.
    pub zone: u8,
}

/// A NUMA node (`pglist_data`).
pub struct Node {
    /// Node id.
    pub nid: usize,
    /// First frame of the node.
    pub node_start_pfn: u64,
    /// Frames from first to last.
    pub node_spanned_pages: u64,
    /// Frames of RAM.
    pub node_present_pages: u64,
    /// The node's zones, every type present (maybe empty).
    pub zones: [Zone; MAX_NR_ZONES],
    /// Zonelists, indexed by [`ZonelistKind`]: populated zones, highest first per node.
    pub zonelists: [Vec<ZoneRef>; 2],
    /// Per zonelist and highest usable zone: where the walk starts (the
    /// preferred zone, `first_zones_zonelist`) and whether that zone asks
    /// for ALLOC_NOFRAGMENT; `None` when no zone qualifies.
    pub zonelist_start: [[Option<(u16, bool)>; MAX_NR_ZONES]; 2],
    /// Node state counters.
    pub stat: NodeStats,
    /// CPUs on this node.
    pub cpus: Vec<usize>,
    /// Pages of high watermark plus lowmem reserve (`totalreserve_pages` share).
    pub totalreserve_pages: AtomicU64,
    /// The node's LRU lists.
    pub lruvec: crate::swap::Lruvec,
}

/// An allocation request after `prepare_alloc_pages` (`struct alloc_context`).
#[derive(Clone, Copy, Debug)]
pub struct AllocContext {
    /// Node whose zonelist is walked.
    pub preferred_nid: usize,
    /// Which zonelist.
    pub zonelist: ZonelistKind,
    /// Highest zone index usable.
    pub highest_zoneidx: usize,
    /// Free lists preferred.
    pub migratetype: MigrateType,
    /// Optional node mask (bit per node); `None` allows all.
    pub nodemask: Option<u64>,
    /// The running CPU.
    pub cpu: usize,
}

impl Kernel {
    /// The node of the running CPU (`numa_node_id`).
    #[inline]
    pub fn numa_node_id(&self) -> usize {
        self.cpu_to_node[self.this_cpu()]
    }

    /// The zone a page belongs to (`page_zone`).
    #[inline]
    pub fn page_zone(&self, pfn: Pfn) -> &Zone {
        let p = self.memmap.page(pfn);
        &self.nodes[p.nid()].zones[p.zonenum() as usize]
    }

    /// Allocates `2^order` contiguous frames on the running CPU's node
    /// (`alloc_pages`). `None` when no zone can satisfy it within the
    /// watermarks `gfp` allows.
    #[inline]
    pub fn alloc_pages(&self, gfp: Gfp, order: u32) -> Option<Pfn> {
        let cpu = self.this_cpu();
        let nid = self.cpu_to_node[cpu];
        if let Some(p) = self.alloc_pages_pcp_fast(cpu, nid, gfp, order) {
            return Some(p);
        }
        self.alloc_pages_general(cpu, gfp, order, nid)
    }

    #[inline(never)]
    fn alloc_pages_general(&self, cpu: usize, gfp: Gfp, order: u32, nid: usize) -> Option<Pfn> {
        self.alloc_pages_cpu(cpu, gfp, order, nid, None)
    }

    /// The path nearly every small allocation takes, with the general
    /// walk's steps for that case only: the preferred zone is above its
    /// high watermark (so neither ALLOC_NOFRAGMENT nor the BELOW_HIGH
    /// tuning applies) and this CPU's list holds a block. Any other case
    /// returns `None` before changing anything, and the full path runs.
    #[inline]
    fn alloc_pages_pcp_fast(&self, cpu: usize, nid: usize, gfp: Gfp, order: u32) -> Option<Pfn> {
        const SPECIAL: u32 = Gfp::THISNODE.0 | Gfp::ZERO.0 | Gfp::COMP.0 | Gfp::MEMALLOC.0;
        if order > PAGE_ALLOC_COSTLY_ORDER || gfp.0 & SPECIAL != 0 {
            return None;
        }
        let highest = gfp.zone() as usize;
        let node = &self.nodes[nid];
        let (start, _) = node.zonelist_start[ZonelistKind::Fallback as usize][highest]?;
        let zr = node.zonelists[ZonelistKind::Fallback as usize][start as usize];
        let zone = &self.nodes[zr.nid as usize].zones[zr.zone as usize];
        if zone.test_flag(zone_flags::BELOW_HIGH) {
            return None;
        }
        let mt = gfp.migratetype();
        let af = alloc_flags::WMARK_LOW | if mt == MigrateType::Movable { alloc_flags::CMA } else { 0 };
        if !self.zone_watermark_fast(zone, order, zone.wmark_pages(Wmark::High), highest, af, gfp) {
            return None;
        }
        let pcp = &zone.per_cpu[cpu].pcp;
        let (pfn, page) = pcp.lists[pcp::order_to_pindex(mt, order)].pop_front_page(&self.memmap)?;
        pcp.after_fast_alloc(order);
        self.cpu_events[cpu].count_zone(VmEvent::PgallocDma, zone.kind as usize, 1 << order);
        self.zone_statistics(cpu, zone, zone, 1);
        page.private.store(0, Relaxed);
        page.refcount.store(1, Relaxed);
        if page.test(pg::PFMEMALLOC) {
            page.clear(pg::PFMEMALLOC);
        }
        Some(pfn)
    }

    /// Allocates on a preferred node (`alloc_pages_node`).
    pub fn alloc_pages_node(&self, nid: usize, gfp: Gfp, order: u32) -> Option<Pfn> {
        let nid = if nid < self.nodes.len() { nid } else { self.numa_node_id() };
        self.alloc_pages_noprof(gfp, order, nid, None)
    }

    /// The allocator's entry point (`__alloc_pages`): fast path at the low
    /// watermark, then the slow path.
    pub fn alloc_pages_noprof(&self, gfp: Gfp, order: u32, preferred_nid: usize, nodemask: Option<u64>) -> Option<Pfn> {
        self.alloc_pages_cpu(self.this_cpu(), gfp, order, preferred_nid, nodemask)
    }

    #[inline]
    fn alloc_pages_cpu(
        &self,
        cpu: usize,
        gfp: Gfp,
        order: u32,
        preferred_nid: usize,
        nodemask: Option<u64>,
    ) -> Option<Pfn> {
        if order > MAX_PAGE_ORDER {
            if !gfp.contains(Gfp::NOWARN) {
                self.log.warn(format_args!("page allocation order {order} > MAX_PAGE_ORDER, gfp {gfp:?}"));
            }
            return None;
        }
        let gfp = gfp & Gfp::ALL_BITS;
        let ac = AllocContext {
            preferred_nid,
            zonelist: if gfp.contains(Gfp::THISNODE) { ZonelistKind::NoFallback } else { ZonelistKind::Fallback },
            highest_zoneidx: gfp.zone() as usize,
            migratetype: gfp.migratetype(),
            nodemask,
            cpu,
        };
        // The fast path: low watermark, no reserves (prepare_alloc_pages + get_page_from_freelist).
        let mut af = alloc_flags::WMARK_LOW;
        if ac.migratetype == MigrateType::Movable {
            af |= alloc_flags::CMA;
        }
        af |= self.alloc_flags_nofragment(&ac, gfp);
        if let Some(p) = self.get_page_from_freelist(gfp, order, af, &ac) {
            return Some(p);
        }
        self.alloc_pages_slowpath(gfp, order, &ac)
    }

    /// ALLOC_NOFRAGMENT when the preferred zone is Normal and a lower zone
    /// exists, and ALLOC_KSWAPD from the gfp (`alloc_flags_nofragment`).
    #[inline]
    fn alloc_flags_nofragment(&self, ac: &AllocContext, gfp: Gfp) -> u32 {
        let mut af = if gfp.contains(Gfp::KSWAPD_RECLAIM) { alloc_flags::KSWAPD } else { 0 };
        if let Some((_, true)) = self.nodes[ac.preferred_nid].zonelist_start[ac.zonelist as usize][ac.highest_zoneidx] {
            af |= alloc_flags::NOFRAGMENT;
        }
        af
    }

    /// The slow path (`__alloc_pages_slowpath`): retry at the min watermark
    /// with the reserves the gfp allows. Reclaim, compaction and the OOM
    /// killer plug in here when their components land.
    fn alloc_pages_slowpath(&self, gfp: Gfp, order: u32, ac: &AllocContext) -> Option<Pfn> {
        let mut af = alloc_flags::WMARK_MIN | alloc_flags::CPUSET;
        af |= gfp.0 & (Gfp::HIGH.0 | Gfp::KSWAPD_RECLAIM.0);
        if !gfp.allows_blocking() && !gfp.contains(Gfp::NOMEMALLOC) {
            af |= alloc_flags::NON_BLOCK;
            // Only __GFP_HIGH requests (GFP_ATOMIC) reserve and use highatomic blocks.
            if order > 0 && af & alloc_flags::MIN_RESERVE != 0 {
                af |= alloc_flags::HIGHATOMIC;
            }
        }
        if ac.migratetype == MigrateType::Movable {
            af |= alloc_flags::CMA;
        }
        if let Some(p) = self.get_page_from_freelist(gfp, order, af, ac) {
            return Some(p);
        }
        if gfp.contains(Gfp::MEMALLOC) && !gfp.contains(Gfp::NOMEMALLOC) {
            // The reserve flags replace the others; only CMA and kswapd carry
            // over, so these requests neither use nor make highatomic blocks.
            let af = alloc_flags::NO_WATERMARKS | (af & (alloc_flags::CMA | alloc_flags::KSWAPD));
            if let Some(p) = self.get_page_from_freelist(gfp, order, af, ac) {
                return Some(p);
            }
        }
        if !gfp.contains(Gfp::NOWARN) {
            self.log.warn(format_args!(
                "page allocation failure: order:{order}, mode:{:#x}({gfp:?}), nodemask=(null)",
                gfp.0
            ));
        }
        None
    }

    /// Walks the zonelist and takes the first zone whose watermark allows
    /// the allocation (`get_page_from_freelist`).
    fn get_page_from_freelist(&self, gfp: Gfp, order: u32, mut af: u32, ac: &AllocContext) -> Option<Pfn> {
        let node = &self.nodes[ac.preferred_nid];
        let zl = &node.zonelists[ac.zonelist as usize];
        let (start, _) = node.zonelist_start[ac.zonelist as usize][ac.highest_zoneidx]?;
        loop {
            let mut preferred: Option<&Zone> = None;
            for zr in zl[start as usize..].iter() {
                if zr.zone as usize > ac.highest_zoneidx {
                    continue;
                }
                if ac.nodemask.is_some_and(|m| m & (1 << zr.nid) == 0) {
                    continue;
                }
                let zone = &self.nodes[zr.nid as usize].zones[zr.zone as usize];
                let pref = *preferred.get_or_insert(zone);
                // Spread fragmentation-risking fallbacks to remote nodes only
                // when the local node has nothing (ALLOC_NOFRAGMENT).
                if af & alloc_flags::NOFRAGMENT != 0 && zone.nid != pref.nid {
                    break;
                }
                if af & alloc_flags::NO_WATERMARKS == 0 {
                    let mut ok = false;
                    if !zone.test_flag(zone_flags::BELOW_HIGH) {
                        let high = zone.wmark_pages(Wmark::High);
                        if self.zone_watermark_fast(zone, order, high, ac.highest_zoneidx, af, gfp) {
                            ok = true;
                        } else {
                            zone.flags.fetch_or(zone_flags::BELOW_HIGH, Relaxed);
                        }
                    }
                    if !ok {
                        let mark = match af & alloc_flags::WMARK_MASK {
                            alloc_flags::WMARK_MIN => zone.wmark_pages(Wmark::Min),
                            alloc_flags::WMARK_LOW => zone.wmark_pages(Wmark::Low),
                            _ => zone.wmark_pages(Wmark::High),
                        };
                        if !self.zone_watermark_fast(zone, order, mark, ac.highest_zoneidx, af, gfp) {
                            continue;
                        }
                    }
                }
                if let Some(pfn) = self.rmqueue(ac.cpu, pref, zone, order, af, ac.migratetype) {
                    self.prep_new_page(pfn, order, gfp, af);
                    if af & alloc_flags::HIGHATOMIC != 0 && order > 0 {
                        self.reserve_highatomic_pageblock(pfn, order, zone);
                    }
                    return Some(pfn);
                }
            }
            if af & alloc_flags::NOFRAGMENT != 0 {
                af &= !alloc_flags::NOFRAGMENT;
                continue;
            }
            return None;
        }
    }

    /// Takes a block from a zone: from the pcp lists for small orders and
    /// the pageblock order, else (or when the pcp refill finds nothing, so
    /// atomic requests still reach the highatomic reserve) from the buddy
    /// lists (`rmqueue`).
    #[inline]
    fn rmqueue(&self, cpu: usize, preferred: &Zone, zone: &Zone, order: u32, af: u32, mt: MigrateType) -> Option<Pfn> {
        let from_pcp =
            if pcp::pcp_allowed_order(order) { self.rmqueue_pcplist(zone, cpu, order, mt, af) } else { None };
        let pfn = from_pcp.or_else(|| self.rmqueue_buddy(zone, order, af, mt))?;
        self.cpu_events[cpu].count_zone(VmEvent::PgallocDma, zone.kind as usize, 1 << order);
        self.zone_statistics(cpu, preferred, zone, 1);
        Some(pfn)
    }

    /// Counts NUMA hit/miss/foreign/local/other (`zone_statistics`).
    #[inline]
    fn zone_statistics(&self, cpu: usize, preferred: &Zone, z: &Zone, nr: u64) {
        let bump = |zone: &Zone, s: NumaStat| {
            let c = &zone.per_cpu[cpu].numa[s as usize];
            c.store(c.load(Relaxed) + nr, Relaxed);
        };
        let local = if z.nid != self.cpu_to_node[cpu] { NumaStat::NumaOther } else { NumaStat::NumaLocal };
        if z.nid == preferred.nid {
            bump(z, NumaStat::NumaHit);
        } else {
            bump(z, NumaStat::NumaMiss);
            bump(preferred, NumaStat::NumaForeign);
        }
        bump(z, local);
    }

    /// Prepares a block for its new owner (`prep_new_page`): one reference,
    /// zeroed for `__GFP_ZERO`, compound for `__GFP_COMP`.
    #[inline]
    fn prep_new_page(&self, pfn: Pfn, order: u32, gfp: Gfp, af: u32) {
        let page = self.memmap.page(pfn);
        page.private.store(0, Relaxed);
        page.refcount.store(1, Relaxed);
        if gfp.contains(Gfp::ZERO) {
            self.memmap.mem().fill(pfn.phys(), crate::types::PAGE_SIZE << order, 0);
        }
        if order > 0 && gfp.contains(Gfp::COMP) {
            crate::folio::prep_compound_page(&self.memmap, pfn, order);
        }
        if af & alloc_flags::NO_WATERMARKS != 0 {
            page.set(pg::PFMEMALLOC);
        } else if page.test(pg::PFMEMALLOC) {
            page.clear(pg::PFMEMALLOC);
        }
    }

    /// Frees `2^order` frames allocated with [`Kernel::alloc_pages`]: drops
    /// the caller's reference and frees the block when it was the last
    /// (Linux's `__free_pages`). A non-compound block whose first page is
    /// still referenced elsewhere frees all but the first page.
    #[inline]
    pub fn free_pages(&self, pfn: Pfn, order: u32) {
        if !self.memmap.pfn_valid(pfn) {
            self.free_invalid_pfn(pfn);
            return;
        }
        let page = self.memmap.page(pfn);
        let head = page.test(pg::HEAD);
        if self.put_page_testzero(page) {
            self.free_frozen_page(pfn, page, order);
        } else if !head && order > 0 {
            self.free_pages_but_first(pfn, order);
        }
    }

    /// Someone else still holds the first page of a non-compound block:
    /// free the rest in halves (the tail of `__free_pages`).
    #[cold]
    #[inline(never)]
    fn free_pages_but_first(&self, pfn: Pfn, order: u32) {
        let mut o = order;
        while o > 0 {
            o -= 1;
            self.free_frozen_pages(pfn.add(1 << o), o);
        }
    }

    /// Drops a reference; true when it was the last (`put_page_testzero`).
    /// With the CPUs on one host thread no other CPU can touch the count
    /// between the load and the store, so a plain decrement is exact and
    /// skips the locked instruction; threaded mode uses the atomic one.
    #[inline]
    pub fn put_page_testzero(&self, page: &crate::page::Page) -> bool {
        if self.cpu_cell.is_some() && !self.threaded.load(Relaxed) {
            let r = page.refcount.load(Relaxed) - 1;
            page.refcount.store(r, Relaxed);
            r == 0
        } else {
            page.put_testzero()
        }
    }

    /// Frees a block whose reference count is zero (`free_frozen_pages`).
    pub fn free_frozen_pages(&self, pfn: Pfn, order: u32) {
        if !self.memmap.pfn_valid(pfn) {
            self.free_invalid_pfn(pfn);
            return;
        }
        self.free_frozen_page(pfn, self.memmap.page(pfn), order)
    }

    /// A free of a frame outside RAM: reported and ignored (Linux would
    /// scribble on whatever memmap the PFN hits).
    #[cold]
    #[inline(never)]
    fn free_invalid_pfn(&self, pfn: Pfn) {
        self.log.err(format_args!("BUG: free of pfn {:#x}, which has no memmap", pfn.0));
        self.bad_pages.fetch_add(1, Relaxed);
    }

    #[inline]
    fn free_frozen_page(&self, pfn: Pfn, page: &crate::page::Page, order: u32) {
        if !self.free_pages_prepare(pfn, page, order) {
            return;
        }
        if pcp::pcp_allowed_order(order) {
            self.free_unref_page(pfn, page, order);
        } else {
            self.free_one_page(pfn, order);
        }
    }

    /// Checks and clears a block before it goes back (`free_pages_prepare`).
    /// A page in an unexpected state is reported and leaked, as Linux's
    /// `bad_page` does, so the machine keeps running.
    #[inline]
    fn free_pages_prepare(&self, pfn: Pfn, page: &crate::page::Page, order: u32) -> bool {
        if page.test(pg::HEAD) && !self.free_compound_prepare(pfn, page, order) {
            return false;
        }
        if page.mapcount.load(Relaxed) != -1
            || page.mapping.load(Relaxed) != 0
            || page.ref_count() != 0
            || page.flag_bits() & pg::CHECK_AT_FREE != 0
        {
            self.report_bad_free(pfn, page);
            return false;
        }
        page.clear_nonatomic(
            pg::REFERENCED | pg::UPTODATE | pg::DIRTY | pg::WORKINGSET | pg::PFMEMALLOC | pg::IDLE | pg::YOUNG,
        );
        page.mapping.store(0, Relaxed);
        page.private.store(0, Relaxed);
        true
    }

    /// Checks and clears a compound page's tails; false when one was bad.
    #[cold]
    #[inline(never)]
    fn free_compound_prepare(&self, pfn: Pfn, page: &crate::page::Page, order: u32) -> bool {
        let ok = crate::folio::free_tail_pages_check(self, pfn, order);
        page.clear_nonatomic(pg::HEAD);
        if !ok {
            // The head is leaked with its tails; report its own state too.
            if let Some(reason) = bad_page_reason(page, pg::CHECK_AT_FREE) {
                self.bad_page(pfn, reason);
            }
        }
        ok
    }

    #[cold]
    #[inline(never)]
    fn report_bad_free(&self, pfn: Pfn, page: &crate::page::Page) {
        if let Some(reason) = bad_page_reason(page, pg::CHECK_AT_FREE) {
            self.bad_page(pfn, reason);
        }
    }

    /// Reports a page in a bad state (`bad_page`).
    pub(crate) fn bad_page(&self, pfn: Pfn, reason: &str) {
        let p = self.memmap.page(pfn);
        self.log.err(format_args!(
            "BUG: Bad page state: pfn:{:#x} refcount:{} mapcount:{} mapping:{:#x} index:{:#x} flags:{:#x} reason: {}",
            pfn.0,
            p.ref_count(),
            p.mapcount.load(Relaxed),
            p.mapping.load(Relaxed),
            p.index.load(Relaxed),
            p.flag_bits(),
            reason
        ));
        self.bad_pages.fetch_add(1, Relaxed);
    }

    /// Counts pages entering (`nr > 0`) or leaving the free lists of a
    /// migratetype (`account_freepages`). Isolated blocks are not free memory.
    #[inline]
    pub(crate) fn account_freepages(&self, zone: &Zone, nr: i64, mt: MigrateType) {
        if mt == MigrateType::Isolate {
            return;
        }
        zone.stat.add(ZoneStat::NrFreePages as usize, nr);
        match mt {
            MigrateType::Cma => zone.stat.add(ZoneStat::NrFreeCma as usize, nr),
            MigrateType::HighAtomic => {
                let v = zone.nr_free_highatomic.load(Relaxed) as i64 + nr;
                zone.nr_free_highatomic.store(v.max(0) as u64, Relaxed);
            }
            _ => {}
        }
    }
}

/// Why a page may not be freed or handed out (`page_bad_reason`), if it is bad.
pub(crate) fn bad_page_reason(page: &crate::page::Page, flags_mask: u64) -> Option<&'static str> {
    if page.mapcount.load(Relaxed) != -1 {
        return Some("nonzero mapcount");
    }
    if page.mapping.load(Relaxed) != 0 {
        return Some("non-NULL mapping");
    }
    if page.ref_count() != 0 {
        return Some("nonzero _refcount");
    }
    if page.flag_bits() & flags_mask != 0 {
        return Some("PAGE_FLAGS_CHECK_AT_FREE flag(s) set");
    }
    None
}
