//! Watermarks, lowmem reserves, pcp sizing and the checks that use them
//! (Linux's `__zone_watermark_ok`, `__setup_per_zone_wmarks`,
//! `setup_per_zone_lowmem_reserve`, `calculate_min_free_kbytes`,
//! `zone_batchsize`, `zone_highsize`, `calculate_normal_threshold`).
//!
//! The formulas are Linux's, so a machine of a given size gets the numbers
//! a Linux machine of that size shows in /proc/zoneinfo.

use core::sync::atomic::Ordering::Relaxed;

use super::buddy::mult_frac;
use super::{alloc_flags, Wmark, Zone};
use crate::kernel::Kernel;
use crate::mmzone::{MigrateType, ZoneType, MAX_NR_ZONES, MIGRATE_PCPTYPES};
use crate::types::{NR_PAGE_ORDERS, PAGE_SHIFT};
use crate::vmstat::ZoneStat;

/// `SWAP_CLUSTER_MAX`: the smallest min watermark of a movable zone.
pub const SWAP_CLUSTER_MAX: u64 = 32;
/// Smallest allowed `vm.percpu_pagelist_high_fraction` other than 0.
pub const MIN_PERCPU_PAGELIST_HIGH_FRACTION: u64 = 8;

/// Integer square root (`int_sqrt`).
pub fn int_sqrt(x: u64) -> u64 {
    if x < 2 {
        return x;
    }
    // Newton's iteration from above converges to the floor of the root.
    let mut r = x;
    let mut y = r.div_ceil(2);
    while y < r {
        r = y;
        y = (r + x / r) / 2;
    }
    r
}

/// Position of the highest set bit, 1-based; 0 for 0 (`fls`).
pub fn fls(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// Largest power of two not above `x` (`rounddown_pow_of_two`); `x > 0`.
fn rounddown_pow_of_two(x: u64) -> u64 {
    1 << (fls(x) - 1)
}

/// Batch size for a zone's pcp lists (`zone_batchsize`): about a quarter of
/// a thousandth of the zone, at most 1 MiB worth, rounded to 2^n - 1 so
/// batches do not always fill the same cache colours.
pub fn zone_batchsize(managed: u64) -> u64 {
    let mut batch = (managed >> 10).min((1 << 20) >> PAGE_SHIFT);
    batch /= 4;
    if batch < 1 {
        batch = 1;
    }
    rounddown_pow_of_two(batch + batch / 2) - 1
}

impl Kernel {
    /// Free pages this allocation may not use (`__zone_watermark_unusable_free`).
    #[inline]
    fn watermark_unusable_free(&self, z: &Zone, order: u32, af: u32) -> i64 {
        let mut unusable = (1i64 << order) - 1;
        if af & alloc_flags::RESERVES == 0 {
            unusable += z.nr_free_highatomic.load(Relaxed) as i64;
        }
        if af & alloc_flags::CMA == 0 {
            unusable += z.page_state(ZoneStat::NrFreeCma) as i64;
        }
        unusable
    }

    /// Would `order` pages leave the zone above `mark` plus the lowmem
    /// reserve, with a free block of that order usable by this request?
    /// (`__zone_watermark_ok`).
    pub fn zone_watermark_ok_free(
        &self,
        z: &Zone,
        order: u32,
        mark: u64,
        highest_zoneidx: usize,
        af: u32,
        free: i64,
    ) -> bool {
        let mut min = mark as i64;
        let free = free - self.watermark_unusable_free(z, order, af);
        if af & alloc_flags::RESERVES != 0 {
            if af & alloc_flags::MIN_RESERVE != 0 {
                min -= min / 2;
                if af & alloc_flags::NON_BLOCK != 0 {
                    min -= min / 4;
                }
            }
            if af & alloc_flags::OOM != 0 {
                min -= min / 2;
            }
        }
        if free <= min + z.lowmem_reserve[highest_zoneidx].load(Relaxed) as i64 {
            return false;
        }
        if order == 0 {
            return true;
        }
        let fa = z.free.lock();
        for o in order as usize..NR_PAGE_ORDERS {
            let area = &fa.area[o];
            if area.nr_free == 0 {
                continue;
            }
            if area.lists[..MIGRATE_PCPTYPES].iter().any(|l| !l.is_empty()) {
                return true;
            }
            if af & alloc_flags::CMA != 0 && !area.lists[MigrateType::Cma as usize].is_empty() {
                return true;
            }
            if af & (alloc_flags::HIGHATOMIC | alloc_flags::OOM) != 0
                && !area.lists[MigrateType::HighAtomic as usize].is_empty()
            {
                return true;
            }
        }
        false
    }

    /// [`Kernel::zone_watermark_ok_free`] with the zone's free page count (`zone_watermark_ok`).
    pub fn zone_watermark_ok(&self, z: &Zone, order: u32, mark: u64, highest_zoneidx: usize, af: u32) -> bool {
        self.zone_watermark_ok_free(z, order, mark, highest_zoneidx, af, z.page_state(ZoneStat::NrFreePages) as i64)
    }

    /// The allocation-path check, with a quick answer for order 0 (`zone_watermark_fast`).
    #[inline]
    pub(crate) fn zone_watermark_fast(
        &self,
        z: &Zone,
        order: u32,
        mark: u64,
        highest_zoneidx: usize,
        af: u32,
        _gfp: crate::gfp::Gfp,
    ) -> bool {
        let free = z.page_state(ZoneStat::NrFreePages) as i64;
        if order == 0 {
            let reserved = self.watermark_unusable_free(z, 0, af);
            let usable = free - free.min(reserved);
            if usable > (mark + z.lowmem_reserve[highest_zoneidx].load(Relaxed)) as i64 {
                return true;
            }
        }
        if self.zone_watermark_ok_free(z, order, mark, highest_zoneidx, af, free) {
            return true;
        }
        let boost = z.watermark_boost.load(Relaxed);
        if order == 0
            && af & alloc_flags::MIN_RESERVE != 0
            && boost != 0
            && af & alloc_flags::WMARK_MASK == alloc_flags::WMARK_MIN
        {
            let mark = z.watermark[Wmark::Min as usize].load(Relaxed);
            return self.zone_watermark_ok_free(z, order, mark, highest_zoneidx, af, free);
        }
        false
    }

    /// Managed pages in zones up to Normal, minus their high watermarks
    /// (`nr_free_buffer_pages`).
    pub fn nr_free_buffer_pages(&self) -> u64 {
        let node = &self.nodes[0];
        node.zonelists[0]
            .iter()
            .filter(|z| z.zone as usize <= ZoneType::Normal as usize)
            .map(|zr| {
                let z = &self.nodes[zr.nid as usize].zones[zr.zone as usize];
                z.managed().saturating_sub(z.wmark_pages(Wmark::High))
            })
            .sum()
    }

    /// Linux's default `vm.min_free_kbytes`: sqrt(16 * lowmem in KiB),
    /// clamped to [128, 262144] (`calculate_min_free_kbytes`). A value the
    /// administrator set wins when it is larger.
    pub fn calculate_min_free_kbytes(&self) {
        let lowmem_kbytes = self.nr_free_buffer_pages() * (crate::types::PAGE_SIZE >> 10);
        let new = int_sqrt(lowmem_kbytes * 16).clamp(128, 262144);
        let user = self.sysctl.user_min_free_kbytes.load(Relaxed);
        if user < 0 || new as i64 > user {
            self.sysctl.min_free_kbytes.store(new, Relaxed);
        }
    }

    /// Sets min/low/high/promo for every zone from `vm.min_free_kbytes` and
    /// `vm.watermark_scale_factor` (`__setup_per_zone_wmarks`), then resizes
    /// the pcp lists and the reserve total (`setup_per_zone_wmarks`).
    pub fn setup_per_zone_wmarks(&self) {
        let pages_min = self.sysctl.min_free_kbytes.load(Relaxed) >> (PAGE_SHIFT - 10);
        let scale = self.sysctl.watermark_scale_factor.load(Relaxed);
        let lowmem: u64 = self.zones().filter(|z| z.kind != ZoneType::Movable).map(|z| z.managed()).sum();
        for z in self.zones() {
            let managed = z.managed();
            let tmp = (pages_min * managed).checked_div(lowmem).unwrap_or(0);
            let min = if z.kind == ZoneType::Movable { (managed / 1024).clamp(SWAP_CLUSTER_MAX, 128) } else { tmp };
            let step = (tmp >> 2).max(mult_frac(managed, scale, 10000));
            z.watermark[Wmark::Min as usize].store(min, Relaxed);
            z.watermark[Wmark::Low as usize].store(min + step, Relaxed);
            z.watermark[Wmark::High as usize].store(min + 2 * step, Relaxed);
            z.watermark[Wmark::Promo as usize].store(min + 3 * step, Relaxed);
            z.watermark_boost.store(0, Relaxed);
        }
        self.calculate_totalreserve_pages();
        for z in self.zones() {
            self.zone_pcp_update(z);
        }
    }

    /// Pages each zone keeps from allocations that could have used a higher
    /// zone (`setup_per_zone_lowmem_reserve`).
    pub fn setup_per_zone_lowmem_reserve(&self) {
        for node in &self.nodes {
            for i in 0..MAX_NR_ZONES - 1 {
                let zone = &node.zones[i];
                let ratio = self.sysctl.lowmem_reserve_ratio[i].load(Relaxed);
                let clear = ratio == 0 || zone.managed() == 0;
                let mut upper = 0;
                for j in i + 1..MAX_NR_ZONES {
                    upper += node.zones[j].managed();
                    zone.lowmem_reserve[j].store(if clear { 0 } else { upper / ratio }, Relaxed);
                }
            }
        }
        self.calculate_totalreserve_pages();
    }

    /// Sum over zones of the largest lowmem reserve plus the high
    /// watermark, capped at the zone's size (`calculate_totalreserve_pages`).
    pub fn calculate_totalreserve_pages(&self) {
        let mut total = 0;
        for node in &self.nodes {
            let mut node_total = 0;
            for (i, z) in node.zones.iter().enumerate() {
                let max = (i..MAX_NR_ZONES).map(|j| z.lowmem_reserve[j].load(Relaxed)).max().unwrap_or(0);
                node_total += (max + z.watermark[Wmark::High as usize].load(Relaxed)).min(z.managed());
            }
            node.totalreserve_pages.store(node_total, Relaxed);
            total += node_total;
        }
        self.totalreserve_pages.store(total, Relaxed);
    }

    /// The pcp high mark of a zone for a fraction (0: from the low
    /// watermark), split between the node's CPUs (`zone_highsize`).
    fn zone_highsize(&self, zone: &Zone, batch: u64, high_fraction: u64) -> u64 {
        let total = zone
            .managed()
            .checked_div(high_fraction)
            .unwrap_or_else(|| zone.watermark[Wmark::Low as usize].load(Relaxed));
        let mut split = self.nodes[zone.nid].cpus.len() as u64;
        if split == 0 {
            split = self.nr_cpus as u64;
        }
        (total / split).max(batch << 2)
    }

    /// Recomputes a zone's pcp batch, high_min and high_max and applies them
    /// to every CPU (`zone_set_pageset_high_and_batch`).
    pub fn zone_pcp_update(&self, zone: &Zone) {
        let batch = zone_batchsize(zone.managed()).max(1);
        let fraction = self.sysctl.percpu_pagelist_high_fraction.load(Relaxed);
        let (high_min, high_max) = if fraction != 0 {
            let h = self.zone_highsize(zone, batch, fraction);
            (h, h)
        } else {
            (self.zone_highsize(zone, batch, 0), self.zone_highsize(zone, batch, MIN_PERCPU_PAGELIST_HIGH_FRACTION))
        };
        zone.pageset[0].store(high_min as u32, Relaxed);
        zone.pageset[1].store(high_max as u32, Relaxed);
        zone.pageset[2].store(batch as u32, Relaxed);
        for c in zone.per_cpu.iter() {
            let mut pcp = c.pcp.lock();
            pcp.high_min = high_min as u32;
            pcp.high_max = high_max as u32;
            pcp.batch = batch as u32;
        }
    }

    /// Per-cpu counter thresholds (`refresh_zone_stat_thresholds` with
    /// `calculate_normal_threshold`), shown in zoneinfo.
    pub fn refresh_zone_stat_thresholds(&self) {
        for z in self.zones() {
            let mem = z.managed() >> (27 - PAGE_SHIFT);
            let t = (2 * fls(self.nr_cpus as u64) as u64 * (1 + fls(mem) as u64)).min(125);
            z.stat_threshold.store(t as u32, Relaxed);
        }
    }

    /// Boot-time setup after the memmap is freed (`init_per_zone_wmark_min`).
    pub fn init_per_zone_wmark_min(&self) {
        self.calculate_min_free_kbytes();
        self.setup_per_zone_wmarks();
        self.refresh_zone_stat_thresholds();
        self.setup_per_zone_lowmem_reserve();
    }

    /// Every zone of every node, lowest node and zone first (`for_each_zone`).
    pub fn zones(&self) -> impl Iterator<Item = &Zone> {
        self.nodes.iter().flat_map(|n| n.zones.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batchsize_matches_linux_examples() {
        // Host zoneinfo on a 24 GiB Linux 6.18 machine: DMA32 with 772919
        // managed pages has batch 63; DMA with 3840 has batch 1 after max(1, _).
        assert_eq!(zone_batchsize(772919), 63);
        assert_eq!(zone_batchsize(3840).max(1), 1);
        assert_eq!(zone_batchsize(196608), 63);
        assert_eq!(int_sqrt(62295488), 7892);
        assert_eq!(fls(0), 0);
        assert_eq!(fls(23), 5);
    }
}
