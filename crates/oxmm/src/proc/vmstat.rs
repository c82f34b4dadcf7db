//! `/proc/vmstat` (Linux's `vmstat_start`/`vmstat_show` in `mm/vmstat.c`),
//! with the global dirty thresholds of `mm/page-writeback.c`
//! (`global_dirty_limits`).
//!
//! One `name value` line per counter, in Linux's order: zone state, NUMA
//! events, node state, the two dirty thresholds, the two memmap counts,
//! every event summed over CPUs, and finally the retired `nr_unstable`,
//! which Linux still prints as 0 so old parsers keep working.
//!
//! Units follow Linux: huge-page node counters are printed in huge pages,
//! and `pgpgin`/`pgpgout`, which the block layer counts in 512-byte
//! sectors, are printed in KiB.

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::Ordering::Relaxed;

use super::zoneinfo::node_stat_for_print;
use crate::kernel::Kernel;
use crate::types::PAGE_SIZE;
use crate::vmstat::{NodeStat, NumaStat, VmEvent, ZoneStat, MEMMAP_STAT_NAMES, WRITEBACK_STAT_NAMES};

/// The system-wide dirty page limits, in pages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DirtyLimits {
    /// Above this, writers are throttled (`nr_dirty_threshold`).
    pub thresh: u64,
    /// Above this, background writeback starts (`nr_dirty_background_threshold`).
    pub bg_thresh: u64,
}

/// Memory that could hold dirty page cache (`global_dirtyable_memory`):
/// free pages above the reserves plus the file LRU, never 0. There is no
/// highmem on x86-64, so nothing is taken off for it.
fn global_dirtyable_memory(k: &Kernel) -> u64 {
    let free = k.nr_free_pages();
    let mut x = free - free.min(k.totalreserve());
    x += k.global_node_page_state(NodeStat::NrInactiveFile);
    x += k.global_node_page_state(NodeStat::NrActiveFile);
    x + 1
}

/// The global dirty limits from `vm.dirty_ratio` and
/// `vm.dirty_background_ratio` over the dirtyable memory
/// (`global_dirty_limits` for a normal task). The ratios are scaled to
/// parts per page size first, as Linux does, so the results match its
/// rounding. A background limit not below the hard one is halved.
pub fn global_dirty_limits(k: &Kernel) -> DirtyLimits {
    let avail = global_dirtyable_memory(k);
    let ratio = k.sysctl.dirty_ratio.load(Relaxed) * PAGE_SIZE / 100;
    let bg_ratio = k.sysctl.dirty_background_ratio.load(Relaxed) * PAGE_SIZE / 100;
    let thresh = ratio.saturating_mul(avail) / PAGE_SIZE;
    let mut bg_thresh = bg_ratio.saturating_mul(avail) / PAGE_SIZE;
    if bg_thresh >= thresh {
        bg_thresh = thresh / 2;
    }
    DirtyLimits { thresh, bg_thresh }
}

/// Renders `/proc/vmstat`.
pub fn vmstat(k: &Kernel) -> String {
    let mut s = String::with_capacity(8192);
    let mut line = |name: &str, v: u64| {
        let _ = writeln!(s, "{name} {v}");
    };
    for &item in ZoneStat::ALL {
        line(item.name(), k.global_zone_page_state(item));
    }
    for &item in NumaStat::ALL {
        line(item.name(), k.zones().map(|z| z.numa_event(item)).sum());
    }
    for &item in NodeStat::ALL {
        line(item.name(), node_stat_for_print(k.global_node_page_state(item), item));
    }
    let dirty = global_dirty_limits(k);
    line(WRITEBACK_STAT_NAMES[0], dirty.thresh);
    line(WRITEBACK_STAT_NAMES[1], dirty.bg_thresh);
    // The memmap is all allocated at boot until memory hotplug exists.
    line(MEMMAP_STAT_NAMES[0], 0);
    line(MEMMAP_STAT_NAMES[1], k.boot.memmap_boot_pages);
    for &e in VmEvent::ALL {
        let mut v = k.vm_event(e);
        if matches!(e, VmEvent::Pgpgin | VmEvent::Pgpgout) {
            v /= 2;
        }
        line(e.name(), v);
    }
    line("nr_unstable", 0);
    s
}
