//! Per-cpu page lists (Linux's `struct per_cpu_pages` and the pcp half of
//! `mm/page_alloc.c`).
//!
//! Each CPU keeps, per zone, small free lists for orders 0..=3 (one per
//! pcp migratetype) and for the pageblock order (THP; movable and not).
//! Allocation pops from the front; a miss refills `batch` blocks from the
//! buddy lists under one zone-lock hold. Freeing pushes to the front; when
//! the count passes `high`, blocks from the list tails go back in a batch.
//! `high` adapts between `high_min` and `high_max` as Linux 6.7+ does: it
//! grows while a CPU frees more than it allocates and shrinks when the zone
//! is short of memory.
//!
//! Ownership instead of `pcp->lock`: a CPU's pageset is touched only by
//! that CPU (as Linux did before 5.14 with interrupts off), so its fields
//! are atomics used with plain loads and stores, and the fast paths take no
//! lock at all. Linux 6.x added a spinlock so another CPU can drain the
//! lists; here a remote drain (`drain_all_pages`, `zone_pcp_update`) runs
//! while the machine is quiescent, as the simulator runs its CPUs on one
//! host thread (threaded mode leaves remote drains to the owning CPU).
//! The zone lock is taken inside, for refills and drains.

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::buddy::RmqueueMode;
use super::{zone_flags, PageList, Wmark, Zone, PAGE_ALLOC_COSTLY_ORDER};
use crate::kernel::Kernel;
use crate::mmzone::{MigrateType, MIGRATE_PCPTYPES};
use crate::types::{Pfn, PAGEBLOCK_ORDER};
use crate::vmstat::VmEvent;

/// Lists for orders 0..=COSTLY (`NR_LOWORDER_PCP_LISTS`).
pub const NR_LOWORDER_PCP_LISTS: usize = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER as usize + 1);
/// All pcp lists: the low orders plus two for THP (`NR_PCP_LISTS`).
pub const NR_PCP_LISTS: usize = NR_LOWORDER_PCP_LISTS + 2;
/// Largest shift applied to `batch` when a CPU keeps allocating or freeing
/// (`CONFIG_PCP_BATCH_SCALE_MAX`).
pub const PCP_BATCH_SCALE_MAX: u32 = 5;

/// C's `clamp(v, lo, hi)`, `min(max(v, lo), hi)`: the upper bound wins
/// when the bounds cross (a low watermark above an eighth of the zone puts
/// `high_min` above `high_max`), where `u32::clamp` would panic.
#[inline]
fn clamp_c(v: u32, lo: u32, hi: u32) -> u32 {
    v.max(lo).min(hi)
}

/// Does the pcp cache this order (`pcp_allowed_order`)?
#[inline]
pub fn pcp_allowed_order(order: u32) -> bool {
    order <= PAGE_ALLOC_COSTLY_ORDER || order == PAGEBLOCK_ORDER
}

/// The list index of an order and type (`order_to_pindex`).
#[inline]
pub fn order_to_pindex(mt: MigrateType, order: u32) -> usize {
    if order > PAGE_ALLOC_COSTLY_ORDER {
        NR_LOWORDER_PCP_LISTS + (mt == MigrateType::Movable) as usize
    } else {
        order as usize * MIGRATE_PCPTYPES + mt as usize
    }
}

/// The order of a list index (`pindex_to_order`).
#[inline]
pub fn pindex_to_order(pindex: usize) -> u32 {
    if pindex >= NR_LOWORDER_PCP_LISTS {
        PAGEBLOCK_ORDER
    } else {
        (pindex / MIGRATE_PCPTYPES) as u32
    }
}

/// One CPU's pcp counters as plain values; [`Pcp`] stores them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerCpuPages {
    /// Pages on all lists.
    pub count: u32,
    /// Current high mark: above it, frees go back to the buddy lists.
    pub high: u32,
    /// Lower bound of `high`.
    pub high_min: u32,
    /// Upper bound of `high`.
    pub high_max: u32,
    /// Blocks moved per refill or drain.
    pub batch: u32,
    /// Doubles the refill batch while the CPU only allocates.
    pub alloc_factor: u32,
    /// Pages freed recently (halved on each allocation).
    pub free_count: u32,
}

/// One CPU's cache of free pages for one zone (`struct per_cpu_pages`):
/// the counters and the lists, owned by that CPU.
#[derive(Debug)]
pub struct Pcp {
    vals: [AtomicU32; 7],
    /// The lists, by [`order_to_pindex`].
    pub lists: [PageList; NR_PCP_LISTS],
}

impl Default for Pcp {
    /// The boot pageset: caching off until sizes are set (`pageset_init`).
    fn default() -> Pcp {
        let p = Pcp { vals: Default::default(), lists: core::array::from_fn(|_| PageList::default()) };
        p.set(&PerCpuPages { batch: 1, ..Default::default() });
        p
    }
}

impl Pcp {
    /// The counters.
    #[inline]
    pub fn get(&self) -> PerCpuPages {
        let v = |i: usize| self.vals[i].load(Relaxed);
        PerCpuPages {
            count: v(0),
            high: v(1),
            high_min: v(2),
            high_max: v(3),
            batch: v(4),
            alloc_factor: v(5),
            free_count: v(6),
        }
    }
    /// Stores what a free without a drain changes: count, high,
    /// alloc_factor and free_count (the limits and batch stay).
    #[inline]
    fn set_after_free(&self, p: &PerCpuPages) {
        self.vals[0].store(p.count, Relaxed);
        self.vals[1].store(p.high, Relaxed);
        self.vals[5].store(p.alloc_factor, Relaxed);
        self.vals[6].store(p.free_count, Relaxed);
    }

    /// Stores the counters.
    #[inline]
    pub fn set(&self, p: &PerCpuPages) {
        let vals = [p.count, p.high, p.high_min, p.high_max, p.batch, p.alloc_factor, p.free_count];
        for (a, v) in self.vals.iter().zip(vals) {
            a.store(v, Relaxed);
        }
    }
}

impl Pcp {
    /// The counter updates of an allocation served from a list without a
    /// refill: `free_count` halves, `count` drops (`rmqueue_pcplist`).
    #[inline]
    pub(crate) fn after_fast_alloc(&self, order: u32) {
        let fc = &self.vals[6];
        fc.store(fc.load(Relaxed) >> 1, Relaxed);
        let c = &self.vals[0];
        c.store(c.load(Relaxed) - (1 << order), Relaxed);
    }
}

impl PerCpuPages {
    /// The high mark for a free, adapting `self.high` (`nr_pcp_high`).
    /// Under reclaim the list is cut to a few batches; in a zone below its
    /// high watermark it may still grow to `high_min` while `high` decays.
    fn nr_pcp_high(&mut self, zone: &Zone, batch: u32, free_high: bool) -> u32 {
        let high = clamp_c(self.high, self.high_min, self.high_max);
        self.high = high;
        if high == 0 {
            return 0;
        }
        if free_high {
            self.high = high.saturating_sub(batch << PCP_BATCH_SCALE_MAX).max(self.high_min);
            return 0;
        }
        if zone.test_flag(zone_flags::RECLAIM_ACTIVE) {
            let free_count = self.free_count.max(batch);
            self.high = high.saturating_sub(free_count).max(self.high_min);
            return (batch << 2).min(self.high);
        }
        if self.high_min == self.high_max {
            return high;
        }
        if zone.test_flag(zone_flags::BELOW_HIGH) {
            let free_count = self.free_count.max(batch);
            self.high = high.saturating_sub(free_count).max(self.high_min);
            return self.count.max(self.high_min);
        }
        if self.count >= high {
            let need = self.free_count + batch;
            if self.high < need {
                self.high = clamp_c(need, self.high_min, self.high_max);
            }
        }
        high
    }

    /// How many pages a free over `high` sends back (`nr_pcp_free`).
    fn nr_pcp_free(&self, batch: u32, high: u32, free_high: bool) -> u32 {
        if free_high {
            return self.count.min(batch << PCP_BATCH_SCALE_MAX);
        }
        if high < batch {
            return 1;
        }
        clamp_c(self.free_count, batch, high - batch)
    }

    /// How many blocks a refill takes (`nr_pcp_alloc`).
    fn nr_pcp_alloc(&mut self, zone: &Zone, order: u32) -> u32 {
        let base = self.batch;
        let mut high = clamp_c(self.high, self.high_min, self.high_max);
        self.high = high;
        if high < base {
            return 1;
        }
        let mut batch = if order > 0 { base } else { base << self.alloc_factor };
        if self.high_min != self.high_max && !zone.test_flag(zone_flags::BELOW_HIGH) {
            high = (high + batch).min(self.high_max);
            self.high = high;
        }
        if order == 0 {
            let max_nr_alloc = (high as i64 - self.count as i64 - base as i64).max(base as i64) as u32;
            if batch <= max_nr_alloc && self.alloc_factor < PCP_BATCH_SCALE_MAX {
                self.alloc_factor += 1;
            }
            batch = batch.min(max_nr_alloc);
        }
        if batch > 1 {
            batch = (batch >> order).max(2);
        }
        batch
    }
}

impl Kernel {
    /// Allocates from this CPU's list, refilling it from the buddy lists
    /// when empty (`rmqueue_pcplist`).
    #[inline]
    pub(crate) fn rmqueue_pcplist(&self, zone: &Zone, cpu: usize, order: u32, mt: MigrateType, af: u32) -> Option<Pfn> {
        let pcp = &zone.per_cpu[cpu].pcp;
        let mut v = pcp.get();
        v.free_count >>= 1;
        let list = &pcp.lists[order_to_pindex(mt, order)];
        if list.is_empty() {
            let batch = v.nr_pcp_alloc(zone, order);
            let got = self.rmqueue_bulk(zone, order, batch, list, mt, af);
            v.count += got << order;
            if got == 0 {
                pcp.set(&v);
                return None;
            }
        }
        let pfn = list.pop_front(&self.memmap);
        if pfn.is_some() {
            v.count -= 1 << order;
        }
        pcp.set(&v);
        pfn
    }

    /// Moves up to `count` blocks from the buddy lists to a pcp list under
    /// one zone-lock hold (`rmqueue_bulk`).
    fn rmqueue_bulk(&self, zone: &Zone, order: u32, count: u32, list: &PageList, mt: MigrateType, af: u32) -> u32 {
        let mut fa = zone.free.lock();
        let mut mode = RmqueueMode::Normal;
        let mut got = 0;
        while got < count {
            let Some(pfn) = self.rmqueue_fallback_chain(zone, &mut fa, order, mt, af, &mut mode) else {
                break;
            };
            list.push_back(&self.memmap, pfn);
            got += 1;
        }
        got
    }

    /// Frees a small block to this CPU's list (`free_unref_page`).
    #[inline]
    pub(crate) fn free_unref_page(&self, pfn: Pfn, page: &crate::page::Page, order: u32) {
        let mut mt = self.get_pageblock_migratetype(pfn);
        if mt as usize >= MIGRATE_PCPTYPES {
            if mt == MigrateType::Isolate {
                self.free_one_page(pfn, order);
                return;
            }
            mt = MigrateType::Movable;
        }
        let zone = &self.nodes[page.nid()].zones[page.zonenum() as usize];
        let cpu = self.this_cpu();
        self.free_unref_page_commit(zone, cpu, pfn, page, mt, order);
    }

    /// Adds to the list and drains a batch when over `high`
    /// (`free_frozen_page_commit`).
    #[inline]
    fn free_unref_page_commit(
        &self,
        zone: &Zone,
        cpu: usize,
        pfn: Pfn,
        page: &crate::page::Page,
        mt: MigrateType,
        order: u32,
    ) {
        let pcp = &zone.per_cpu[cpu].pcp;
        let mut v = pcp.get();
        v.alloc_factor >>= 1;
        self.cpu_events[cpu].count(VmEvent::Pgfree, 1 << order);
        let pindex = order_to_pindex(mt, order);
        pcp.lists[pindex].push_front_page(&self.memmap, pfn, page);
        v.count += 1 << order;
        let batch = v.batch;
        let free_high = false;
        if v.free_count < (batch << PCP_BATCH_SCALE_MAX) {
            // Below the cap it grows by the whole block, as Linux does (it may overshoot).
            v.free_count += 1 << order;
        }
        let high = v.nr_pcp_high(zone, batch, free_high);
        if v.count >= high {
            self.pcp_over_high(zone, pcp, v, batch, high, free_high, pindex);
            return;
        }
        pcp.set_after_free(&v);
    }

    /// Drains a batch from a list over its high mark, then lets the zone
    /// leave BELOW_HIGH if the drain lifted it (the tail of
    /// `free_frozen_page_commit`).
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn pcp_over_high(
        &self,
        zone: &Zone,
        pcp: &Pcp,
        mut v: PerCpuPages,
        batch: u32,
        high: u32,
        free_high: bool,
        pindex: usize,
    ) {
        let n = v.nr_pcp_free(batch, high, free_high);
        self.free_pcppages_bulk(zone, n, pcp, &mut v, pindex);
        pcp.set(&v);
        if zone.test_flag(zone_flags::BELOW_HIGH)
            && self.zone_watermark_ok(
                zone,
                0,
                zone.wmark_pages(Wmark::High),
                crate::mmzone::ZoneType::Movable as usize,
                0,
            )
        {
            zone.flags.fetch_and(!zone_flags::BELOW_HIGH, Relaxed);
        }
    }

    /// Returns `count` pages from the pcp list tails to the buddy lists,
    /// round-robin over the lists starting with `pindex` (`free_pcppages_bulk`).
    pub(crate) fn free_pcppages_bulk(&self, zone: &Zone, count: u32, pcp: &Pcp, v: &mut PerCpuPages, pindex: usize) {
        let mut count = count.min(v.count) as i64;
        if count <= 0 {
            return;
        }
        // One step back, so the first step of the round lands on `pindex`.
        let mut pindex = if pindex == 0 { NR_PCP_LISTS - 1 } else { pindex - 1 };
        let mut fa = zone.free.lock();
        while count > 0 {
            loop {
                pindex = if pindex + 1 >= NR_PCP_LISTS { 0 } else { pindex + 1 };
                if !pcp.lists[pindex].is_empty() {
                    break;
                }
            }
            let order = pindex_to_order(pindex);
            let nr = 1i64 << order;
            while count > 0 {
                let Some(pfn) = pcp.lists[pindex].pop_back(&self.memmap) else { break };
                let mt = self.get_pageblock_migratetype(pfn);
                count -= nr;
                v.count -= nr as u32;
                self.free_one_page_locked(zone, &mut fa, pfn, order, mt, false);
            }
        }
    }

    /// Empties one CPU's lists for a zone (`drain_pages_zone`). Another
    /// CPU's lists may be drained only while the machine is quiescent.
    pub fn drain_pages_zone(&self, cpu: usize, zone: &Zone) {
        let pcp = &zone.per_cpu[cpu].pcp;
        let mut v = pcp.get();
        let n = v.count;
        self.free_pcppages_bulk(zone, n, pcp, &mut v, 0);
        pcp.set(&v);
    }

    /// Lets an idle CPU's lists shrink (`decay_pcp_high`): `high` drops by
    /// an eighth toward `high_min` (at most what one scaled batch frees),
    /// and pages above the new `high` go back to the buddy lists. Runs on
    /// the CPU that owns the lists; returns whether more decay is due.
    pub fn decay_pcp_high(&self, zone: &Zone, cpu: usize) -> bool {
        let pcp = &zone.per_cpu[cpu].pcp;
        let mut v = pcp.get();
        let mut todo = false;
        if v.high > v.high_min {
            let by_count = v.count.saturating_sub(v.batch << PCP_BATCH_SCALE_MAX);
            v.high = by_count.max(v.high - (v.high >> 3)).max(v.high_min);
            todo |= v.high > v.high_min;
        }
        if v.count > v.high {
            let n = v.count - v.high;
            self.free_pcppages_bulk(zone, n, pcp, &mut v, 0);
            todo = true;
        }
        pcp.set(&v);
        todo
    }

    /// The periodic per-CPU statistics work (`vmstat_update` ->
    /// `refresh_cpu_vm_stats`): today its pageset part, the decay of every
    /// zone's pcp high mark on this CPU. Linux runs it every second
    /// (`vm.stat_interval`).
    pub fn vmstat_update(&self, cpu: usize) {
        for zone in self.zones().filter(|z| z.populated()) {
            self.decay_pcp_high(zone, cpu);
        }
    }

    /// Empties every CPU's lists in every zone (`drain_all_pages(NULL)`).
    pub fn drain_all_pages(&self) {
        for node in &self.nodes {
            for zone in &node.zones {
                for cpu in 0..zone.per_cpu.len() {
                    self.drain_pages_zone(cpu, zone);
                }
            }
        }
    }
}
