//! The buddy lists themselves: splitting (`expand`), merging
//! (`__free_one_page`), the migratetype fallback and stealing rules, and
//! pageblock ownership (Linux's `mm/page_alloc.c`, the zone-lock half).
//!
//! Invariant kept by every function here (checked by `debug_vm`): a free
//! block of order below the pageblock order sits on the list of its
//! pageblock's migratetype; a larger block sits on the list of its first
//! pageblock's type and all its pageblocks share that type.
//!
//! Every function that takes `&mut ZoneFree` runs under that zone's lock.

use core::sync::atomic::Ordering::Relaxed;

use super::{alloc_flags, FreeArea, Wmark, Zone, ZoneFree};
use crate::kernel::Kernel;
use crate::mmzone::{MigrateType, MIGRATE_PCPTYPES};
use crate::page::pg;
use crate::types::{Pfn, MAX_PAGE_ORDER, NR_PAGE_ORDERS, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER};
use crate::vmstat::ZoneStat;

/// Where `__rmqueue` found pages last time, so a bulk refill under one lock
/// hold does not repeat a failed search (Linux's `enum rmqueue_mode`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RmqueueMode {
    /// The requested type's own lists.
    Normal,
    /// CMA areas (movable allocations only).
    Cma,
    /// Claiming a whole pageblock of another type.
    Claim,
    /// Taking single blocks from another type without claiming.
    Steal,
}

/// Migratetypes whose blocks may merge with each other (`migratetype_is_mergeable`).
#[inline]
fn mergeable(mt: MigrateType) -> bool {
    (mt as usize) < MIGRATE_PCPTYPES
}

impl Kernel {
    /// The migratetype of the pageblock holding `pfn` (`get_pfnblock_migratetype`).
    #[inline]
    pub fn get_pageblock_migratetype(&self, pfn: Pfn) -> MigrateType {
        MigrateType::from_index((self.memmap.pageblock(pfn).load(Relaxed) & 7) as usize)
    }

    /// Sets the migratetype of the pageblock holding `pfn` (`set_pageblock_migratetype`).
    #[inline]
    pub fn set_pageblock_migratetype(&self, pfn: Pfn, mt: MigrateType) {
        let b = self.memmap.pageblock(pfn);
        b.store((b.load(Relaxed) & !7) | mt as u8, Relaxed);
    }

    /// Sets every pageblock of a block of `order >= pageblock_order` (`change_pageblock_range`).
    fn change_pageblock_range(&self, pfn: Pfn, order: u32, mt: MigrateType) {
        let mut p = pfn.0;
        let end = pfn.0 + (1 << order);
        while p < end {
            self.set_pageblock_migratetype(Pfn(p), mt);
            p += PAGEBLOCK_NR_PAGES;
        }
    }

    /// Puts a free block on a list (`__add_to_free_list` + `set_buddy_order`).
    /// Blocks of pageblock order and up count in `nr_free_pages_blocks`.
    #[inline]
    pub(crate) fn add_to_free_list(
        &self,
        zone: &Zone,
        fa: &mut ZoneFree,
        pfn: Pfn,
        order: u32,
        mt: MigrateType,
        tail: bool,
    ) {
        let page = self.memmap.page(pfn);
        page.private.store(order as u64, Relaxed);
        page.set_nonatomic(pg::BUDDY);
        let area = &mut fa.area[order as usize];
        if tail {
            area.lists[mt as usize].push_back(&self.memmap, pfn);
        } else {
            area.lists[mt as usize].push_front(&self.memmap, pfn);
        }
        area.nr_free += 1;
        fa.nonempty[mt as usize] |= 1 << order;
        if order >= PAGEBLOCK_ORDER && mt != MigrateType::Isolate {
            zone.stat.add(ZoneStat::NrFreePagesBlocks as usize, 1 << order);
        }
    }

    /// Takes a free block off its list (`__del_page_from_free_list`).
    #[inline]
    pub(crate) fn del_from_free_list(&self, zone: &Zone, fa: &mut ZoneFree, pfn: Pfn, order: u32, mt: MigrateType) {
        let area = &mut fa.area[order as usize];
        area.lists[mt as usize].remove(&self.memmap, pfn);
        area.nr_free -= 1;
        if area.lists[mt as usize].is_empty() {
            fa.nonempty[mt as usize] &= !(1 << order);
        }
        let page = self.memmap.page(pfn);
        page.clear_nonatomic(pg::BUDDY);
        page.private.store(0, Relaxed);
        if order >= PAGEBLOCK_ORDER && mt != MigrateType::Isolate {
            zone.stat.add(ZoneStat::NrFreePagesBlocks as usize, -(1 << order));
        }
    }

    /// Splits a block of order `high` down to `low`, returning the upper
    /// halves to the lists; returns the pages put back (`expand`).
    #[inline]
    fn expand(&self, zone: &Zone, fa: &mut ZoneFree, pfn: Pfn, low: u32, mut high: u32, mt: MigrateType) -> u64 {
        let mut added = 0;
        while high > low {
            high -= 1;
            let size = 1u64 << high;
            self.add_to_free_list(zone, fa, pfn.add(size), high, mt, false);
            added += size;
        }
        added
    }

    /// Removes a block and splits it, accounting the pages that leave the
    /// free lists (`page_del_and_expand`).
    #[inline]
    fn page_del_and_expand(&self, zone: &Zone, fa: &mut ZoneFree, pfn: Pfn, low: u32, high: u32, mt: MigrateType) {
        self.del_from_free_list(zone, fa, pfn, high, mt);
        let added = self.expand(zone, fa, pfn, low, high, mt);
        self.account_freepages(zone, added as i64 - (1i64 << high), mt);
    }

    /// The smallest block of exactly this type (`__rmqueue_smallest`).
    #[inline]
    pub(crate) fn rmqueue_smallest(&self, zone: &Zone, fa: &mut ZoneFree, order: u32, mt: MigrateType) -> Option<Pfn> {
        let above = u32::from(fa.nonempty[mt as usize]) >> order;
        if above == 0 {
            return None;
        }
        let cur = order + above.trailing_zeros();
        let pfn = fa.area[cur as usize].lists[mt as usize].first()?;
        self.page_del_and_expand(zone, fa, pfn, order, cur, mt);
        Some(pfn)
    }

    /// A block from CMA areas (`__rmqueue_cma_fallback`).
    fn rmqueue_cma_fallback(&self, zone: &Zone, fa: &mut ZoneFree, order: u32) -> Option<Pfn> {
        self.rmqueue_smallest(zone, fa, order, MigrateType::Cma)
    }

    /// Takes a block of `order` for `mt`, falling back as Linux does
    /// (`__rmqueue`): own lists, CMA for movable, claiming a whole block of
    /// another type, then stealing without claiming unless ALLOC_NOFRAGMENT.
    pub(crate) fn rmqueue_fallback_chain(
        &self,
        zone: &Zone,
        fa: &mut ZoneFree,
        order: u32,
        mt: MigrateType,
        af: u32,
        mode: &mut RmqueueMode,
    ) -> Option<Pfn> {
        if af & alloc_flags::CMA != 0
            && zone.page_state(crate::vmstat::ZoneStat::NrFreeCma)
                > zone.page_state(crate::vmstat::ZoneStat::NrFreePages) / 2
        {
            if let Some(p) = self.rmqueue_cma_fallback(zone, fa, order) {
                return Some(p);
            }
        }
        if *mode == RmqueueMode::Normal {
            if let Some(p) = self.rmqueue_smallest(zone, fa, order, mt) {
                return Some(p);
            }
        }
        if matches!(*mode, RmqueueMode::Normal | RmqueueMode::Cma) && af & alloc_flags::CMA != 0 {
            if let Some(p) = self.rmqueue_cma_fallback(zone, fa, order) {
                *mode = RmqueueMode::Cma;
                return Some(p);
            }
        }
        if matches!(*mode, RmqueueMode::Normal | RmqueueMode::Cma | RmqueueMode::Claim) {
            if let Some(p) = self.rmqueue_claim(zone, fa, order, mt, af) {
                *mode = RmqueueMode::Normal;
                return Some(p);
            }
        }
        if af & alloc_flags::NOFRAGMENT == 0 {
            if let Some(p) = self.rmqueue_steal(zone, fa, order, mt) {
                *mode = RmqueueMode::Steal;
                return Some(p);
            }
        }
        None
    }

    /// Largest-first search for a block of a fallback type whose pageblock
    /// can be claimed for `start_mt` (`__rmqueue_claim`).
    fn rmqueue_claim(&self, zone: &Zone, fa: &mut ZoneFree, order: u32, start_mt: MigrateType, af: u32) -> Option<Pfn> {
        let min_order =
            if order < PAGEBLOCK_ORDER && af & alloc_flags::NOFRAGMENT != 0 { PAGEBLOCK_ORDER } else { order };
        let mut cur = MAX_PAGE_ORDER;
        loop {
            if cur < min_order {
                return None;
            }
            match find_suitable_fallback(&fa.area[cur as usize], cur, start_mt, true) {
                Fallback::None => {}
                Fallback::TooLow => return None,
                Fallback::Found(fmt) => {
                    let pfn = fa.area[cur as usize].lists[fmt as usize].first()?;
                    if let Some(p) = self.try_to_claim_block(zone, fa, pfn, cur, order, start_mt, fmt, af) {
                        return Some(p);
                    }
                }
            }
            if cur == 0 {
                return None;
            }
            cur -= 1;
        }
    }

    /// Smallest-first: take a block of another type without changing its
    /// pageblock (`__rmqueue_steal`).
    fn rmqueue_steal(&self, zone: &Zone, fa: &mut ZoneFree, order: u32, start_mt: MigrateType) -> Option<Pfn> {
        for cur in order..NR_PAGE_ORDERS as u32 {
            if let Fallback::Found(fmt) = find_suitable_fallback(&fa.area[cur as usize], cur, start_mt, false) {
                let pfn = fa.area[cur as usize].lists[fmt as usize].first()?;
                self.page_del_and_expand(zone, fa, pfn, order, cur, fmt);
                return Some(pfn);
            }
        }
        None
    }

    /// Claims the pageblock of `pfn` for `start_mt` when enough of it is
    /// free or compatible, then allocates from it (`try_to_claim_block`).
    #[allow(clippy::too_many_arguments)]
    fn try_to_claim_block(
        &self,
        zone: &Zone,
        fa: &mut ZoneFree,
        pfn: Pfn,
        cur_order: u32,
        order: u32,
        start_mt: MigrateType,
        block_mt: MigrateType,
        af: u32,
    ) -> Option<Pfn> {
        if cur_order >= PAGEBLOCK_ORDER {
            self.del_from_free_list(zone, fa, pfn, cur_order, block_mt);
            self.account_freepages(zone, -(1i64 << cur_order), block_mt);
            self.change_pageblock_range(pfn, cur_order, start_mt);
            let added = self.expand(zone, fa, pfn, order, cur_order, start_mt);
            self.account_freepages(zone, added as i64, start_mt);
            return Some(pfn);
        }
        if self.boost_watermark(zone) && af & alloc_flags::KSWAPD != 0 {
            zone.flags.fetch_or(super::zone_flags::BOOSTED_WATERMARK, Relaxed);
        }
        let start = Pfn(pfn.0 & !(PAGEBLOCK_NR_PAGES - 1));
        let (free, movable) = self.prep_move_freepages_block(zone, start)?;
        let alike = if start_mt == MigrateType::Movable {
            movable
        } else if block_mt == MigrateType::Movable {
            PAGEBLOCK_NR_PAGES - (free + movable)
        } else {
            0
        };
        if free + alike >= (1 << (PAGEBLOCK_ORDER - 1)) {
            self.move_freepages_block(zone, fa, start, block_mt, start_mt);
            self.set_pageblock_migratetype(start, start_mt);
            return self.rmqueue_smallest(zone, fa, order, start_mt);
        }
        None
    }

    /// Counts free and movable pages of a pageblock; `None` when the block
    /// leaves the zone (`prep_move_freepages_block`).
    fn prep_move_freepages_block(&self, zone: &Zone, start: Pfn) -> Option<(u64, u64)> {
        let end = start.0 + PAGEBLOCK_NR_PAGES;
        if !zone.spans(start) || !zone.spans(Pfn(end - 1)) {
            return None;
        }
        let (mut free, mut movable) = (0, 0);
        let mut p = start.0;
        while p < end {
            let page = self.memmap.page(Pfn(p));
            if page.is_buddy() {
                let n = 1u64 << page.buddy_order();
                free += n;
                p += n;
                continue;
            }
            if page.test(pg::LRU) {
                movable += 1;
            }
            p += 1;
        }
        Some((free, movable))
    }

    /// Moves every free block of a pageblock from `old` lists to `new`
    /// lists; returns the pages moved (`__move_freepages_block`).
    pub(crate) fn move_freepages_block(
        &self,
        zone: &Zone,
        fa: &mut ZoneFree,
        start: Pfn,
        old: MigrateType,
        new: MigrateType,
    ) -> u64 {
        let end = start.0 + PAGEBLOCK_NR_PAGES;
        let mut moved = 0;
        let mut p = start.0;
        while p < end {
            let page = self.memmap.page(Pfn(p));
            if !page.is_buddy() {
                p += 1;
                continue;
            }
            let order = page.buddy_order();
            self.del_from_free_list(zone, fa, Pfn(p), order, old);
            self.add_to_free_list(zone, fa, Pfn(p), order, new, true);
            self.account_freepages(zone, -(1i64 << order), old);
            self.account_freepages(zone, 1i64 << order, new);
            moved += 1 << order;
            p += 1 << order;
        }
        moved
    }

    /// Raises the zone's watermarks after a fragmenting fallback so kswapd
    /// reclaims harder (`boost_watermark`).
    fn boost_watermark(&self, zone: &Zone) -> bool {
        let factor = self.sysctl.watermark_boost_factor.load(Relaxed);
        if factor == 0 || PAGEBLOCK_NR_PAGES * 4 > zone.managed() {
            return false;
        }
        let high = zone.watermark[Wmark::High as usize].load(Relaxed);
        let max_boost = mult_frac(high, factor, 10000);
        if max_boost == 0 {
            return false;
        }
        let max_boost = max_boost.max(PAGEBLOCK_NR_PAGES);
        let cur = zone.watermark_boost.load(Relaxed);
        zone.watermark_boost.store((cur + PAGEBLOCK_NR_PAGES).min(max_boost), Relaxed);
        true
    }

    /// Returns a block to the lists, merging with free buddies up to the
    /// largest order (`__free_one_page`). The caller holds the zone lock.
    pub(crate) fn free_one_page_locked(
        &self,
        zone: &Zone,
        fa: &mut ZoneFree,
        mut pfn: Pfn,
        mut order: u32,
        mt: MigrateType,
        to_tail: bool,
    ) {
        self.account_freepages(zone, 1i64 << order, mt);
        let zone_id = self.memmap.page(pfn).zone_id();
        while order < MAX_PAGE_ORDER {
            let buddy_pfn = Pfn(pfn.0 ^ (1 << order));
            let buddy = self.memmap.page(buddy_pfn);
            if !(buddy.is_buddy() && buddy.buddy_order() == order && buddy.zone_id() == zone_id) {
                break;
            }
            let mut buddy_mt = mt;
            if order >= PAGEBLOCK_ORDER {
                buddy_mt = self.get_pageblock_migratetype(buddy_pfn);
                if mt != buddy_mt && (!mergeable(mt) || !mergeable(buddy_mt)) {
                    break;
                }
            }
            self.del_from_free_list(zone, fa, buddy_pfn, order, buddy_mt);
            if buddy_mt != mt {
                self.change_pageblock_range(buddy_pfn, order, mt);
            }
            pfn = Pfn(pfn.0 & buddy_pfn.0);
            order += 1;
        }
        let tail = to_tail || self.buddy_merge_likely(pfn, order, zone_id);
        self.add_to_free_list(zone, fa, pfn, order, mt, tail);
    }

    /// Is the next-larger buddy free, so this block will probably merge
    /// soon? Then it goes to the list tail to stay free longer
    /// (`buddy_merge_likely`).
    fn buddy_merge_likely(&self, pfn: Pfn, order: u32, zone_id: u64) -> bool {
        if order >= MAX_PAGE_ORDER - 1 {
            return false;
        }
        let higher = pfn.0 & !((2u64 << order) - 1);
        let higher_buddy = Pfn(higher ^ (2 << order));
        if !self.memmap.pfn_valid(higher_buddy) {
            return false;
        }
        let b = self.memmap.page(higher_buddy);
        b.is_buddy() && b.buddy_order() == order + 1 && b.zone_id() == zone_id
    }

    /// Frees a block straight to the buddy lists, pageblock by pageblock so
    /// each piece goes to its own block's lists (`free_one_page` +
    /// `split_large_buddy`).
    pub(crate) fn free_one_page(&self, pfn: Pfn, order: u32) {
        self.free_one_page_fpi(pfn, order, false);
    }

    /// [`Kernel::free_one_page`] with `FPI_TO_TAIL` when `to_tail`. Counts
    /// `pgfree`, as the pcp path does for the blocks it takes.
    pub(crate) fn free_one_page_fpi(&self, pfn: Pfn, order: u32, to_tail: bool) {
        let zone = self.page_zone(pfn);
        let mut fa = zone.free.lock();
        let piece = order.min(PAGEBLOCK_ORDER);
        let mut p = pfn.0;
        let end = pfn.0 + (1 << order);
        while p < end {
            let mt = self.get_pageblock_migratetype(Pfn(p));
            self.free_one_page_locked(zone, &mut fa, Pfn(p), piece, mt, to_tail);
            p += 1 << piece;
        }
        drop(fa);
        self.events().count(crate::vmstat::VmEvent::Pgfree, 1 << order);
    }

    /// Takes a block for orders the pcp lists do not cache (`rmqueue_buddy`).
    pub(crate) fn rmqueue_buddy(&self, zone: &Zone, order: u32, af: u32, mt: MigrateType) -> Option<Pfn> {
        let mut fa = zone.free.lock();
        let mut page = None;
        if af & alloc_flags::HIGHATOMIC != 0 {
            page = self.rmqueue_smallest(zone, &mut fa, order, MigrateType::HighAtomic);
        }
        if page.is_none() {
            let mut mode = RmqueueMode::Normal;
            page = self.rmqueue_fallback_chain(zone, &mut fa, order, mt, af, &mut mode);
            if page.is_none() && af & (alloc_flags::OOM | alloc_flags::NON_BLOCK) != 0 {
                page = self.rmqueue_smallest(zone, &mut fa, order, MigrateType::HighAtomic);
            }
        }
        page
    }

    /// After a high-order atomic allocation, reserves its pageblock for
    /// future ones, up to 1% of the zone (`reserve_highatomic_pageblock`).
    pub(crate) fn reserve_highatomic_pageblock(&self, pfn: Pfn, order: u32, zone: &Zone) {
        // A zone whose 1% is less than a pageblock reserves nothing.
        if zone.managed() / 100 < PAGEBLOCK_NR_PAGES {
            return;
        }
        let max_managed = (zone.managed() / 100).next_multiple_of(PAGEBLOCK_NR_PAGES);
        if zone.nr_reserved_highatomic.load(Relaxed) >= max_managed {
            return;
        }
        let mut fa = zone.free.lock();
        if zone.nr_reserved_highatomic.load(Relaxed) >= max_managed {
            return;
        }
        let mt = self.get_pageblock_migratetype(pfn);
        if !mergeable(mt) {
            return;
        }
        let start = Pfn(pfn.0 & !(PAGEBLOCK_NR_PAGES - 1));
        if order < PAGEBLOCK_ORDER {
            if self.prep_move_freepages_block(zone, start).is_none() {
                return;
            }
            self.move_freepages_block(zone, &mut fa, start, mt, MigrateType::HighAtomic);
            self.set_pageblock_migratetype(start, MigrateType::HighAtomic);
            zone.nr_reserved_highatomic.fetch_add(PAGEBLOCK_NR_PAGES, Relaxed);
        } else {
            self.change_pageblock_range(pfn, order, MigrateType::HighAtomic);
            zone.nr_reserved_highatomic.fetch_add(1 << order, Relaxed);
        }
    }
}

/// Result of `find_suitable_fallback`.
enum Fallback {
    /// No fallback list of this order has a block.
    None,
    /// The order is too low to claim a pageblock: stop searching down.
    TooLow,
    /// Take from this type's list.
    Found(MigrateType),
}

/// Should a fallback of this order claim the whole pageblock?
/// (`should_try_claim_block`).
fn should_try_claim_block(order: u32, start_mt: MigrateType) -> bool {
    order >= PAGEBLOCK_ORDER
        || order >= PAGEBLOCK_ORDER / 2
        || start_mt == MigrateType::Reclaimable
        || start_mt == MigrateType::Unmovable
}

/// The first fallback type with a free block in this area (`find_suitable_fallback`).
fn find_suitable_fallback(area: &FreeArea, order: u32, mt: MigrateType, claimable: bool) -> Fallback {
    if claimable && !should_try_claim_block(order, mt) {
        return Fallback::TooLow;
    }
    if area.nr_free == 0 {
        return Fallback::None;
    }
    for &f in mt.fallbacks() {
        if !area.lists[f as usize].is_empty() {
            return Fallback::Found(f);
        }
    }
    Fallback::None
}

/// `x * n / d` without overflowing the intermediate (`mult_frac`).
#[inline]
pub fn mult_frac(x: u64, n: u64, d: u64) -> u64 {
    let q = x / d;
    let r = x % d;
    q * n + r * n / d
}
