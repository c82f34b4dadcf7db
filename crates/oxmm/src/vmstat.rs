//! Event and state counters with Linux's names (Linux's `mm/vmstat.c` and
//! `include/linux/mmzone.h`, `vm_event_item.h`).
//!
//! Four kinds, as in Linux: per-zone state ([`ZoneStat`]), per-zone NUMA
//! events ([`NumaStat`]), per-node state ([`NodeStat`]) and global event
//! counts ([`VmEvent`]). `/proc/vmstat` prints them in that order, then the
//! dirty thresholds and memmap counts, with the names listed here; the list
//! follows Linux 6.18 so the file has the same lines as the host's.
//!
//! State counters are atomics updated under the lock that guards the state
//! they count. Events are per CPU ([`CpuEvents`]): only the owning CPU
//! writes its slot, with a plain load and store, as `__count_vm_events` does.

use core::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($(#[$m:meta])* $name:ident { $($v:ident = $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        #[repr(usize)]
        #[allow(missing_docs)]
        pub enum $name { $($v,)* }
        impl $name {
            /// Every item, in /proc/vmstat order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            /// Number of items.
            pub const COUNT: usize = Self::ALL.len();
            /// Linux's name for the counter.
            pub const fn name(self) -> &'static str {
                match self { $($name::$v => $s,)* }
            }
        }
    };
}

counters! {
    /// Per-zone state (`enum zone_stat_item`), in pages.
    ZoneStat {
        NrFreePages = "nr_free_pages",
        NrFreePagesBlocks = "nr_free_pages_blocks",
        NrZoneInactiveAnon = "nr_zone_inactive_anon",
        NrZoneActiveAnon = "nr_zone_active_anon",
        NrZoneInactiveFile = "nr_zone_inactive_file",
        NrZoneActiveFile = "nr_zone_active_file",
        NrZoneUnevictable = "nr_zone_unevictable",
        NrZoneWritePending = "nr_zone_write_pending",
        NrMlock = "nr_mlock",
        NrZspages = "nr_zspages",
        NrFreeCma = "nr_free_cma",
    }
}

counters! {
    /// Per-zone NUMA allocation events (`enum numa_stat_item`).
    NumaStat {
        NumaHit = "numa_hit",
        NumaMiss = "numa_miss",
        NumaForeign = "numa_foreign",
        NumaInterleave = "numa_interleave",
        NumaLocal = "numa_local",
        NumaOther = "numa_other",
    }
}

counters! {
    /// Per-node state (`enum node_stat_item`), in pages unless the name says otherwise.
    NodeStat {
        NrInactiveAnon = "nr_inactive_anon",
        NrActiveAnon = "nr_active_anon",
        NrInactiveFile = "nr_inactive_file",
        NrActiveFile = "nr_active_file",
        NrUnevictable = "nr_unevictable",
        NrSlabReclaimable = "nr_slab_reclaimable",
        NrSlabUnreclaimable = "nr_slab_unreclaimable",
        NrIsolatedAnon = "nr_isolated_anon",
        NrIsolatedFile = "nr_isolated_file",
        WorkingsetNodes = "workingset_nodes",
        WorkingsetRefaultAnon = "workingset_refault_anon",
        WorkingsetRefaultFile = "workingset_refault_file",
        WorkingsetActivateAnon = "workingset_activate_anon",
        WorkingsetActivateFile = "workingset_activate_file",
        WorkingsetRestoreAnon = "workingset_restore_anon",
        WorkingsetRestoreFile = "workingset_restore_file",
        WorkingsetNodereclaim = "workingset_nodereclaim",
        NrAnonPages = "nr_anon_pages",
        NrMapped = "nr_mapped",
        NrFilePages = "nr_file_pages",
        NrDirty = "nr_dirty",
        NrWriteback = "nr_writeback",
        NrShmem = "nr_shmem",
        NrShmemHugepages = "nr_shmem_hugepages",
        NrShmemPmdmapped = "nr_shmem_pmdmapped",
        NrFileHugepages = "nr_file_hugepages",
        NrFilePmdmapped = "nr_file_pmdmapped",
        NrAnonTransparentHugepages = "nr_anon_transparent_hugepages",
        NrVmscanWrite = "nr_vmscan_write",
        NrVmscanImmediateReclaim = "nr_vmscan_immediate_reclaim",
        NrDirtied = "nr_dirtied",
        NrWritten = "nr_written",
        NrThrottledWritten = "nr_throttled_written",
        NrKernelMiscReclaimable = "nr_kernel_misc_reclaimable",
        NrFollPinAcquired = "nr_foll_pin_acquired",
        NrFollPinReleased = "nr_foll_pin_released",
        NrKernelStack = "nr_kernel_stack",
        NrPageTablePages = "nr_page_table_pages",
        NrSecPageTablePages = "nr_sec_page_table_pages",
        NrIommuPages = "nr_iommu_pages",
        NrSwapcached = "nr_swapcached",
        PgpromoteSuccess = "pgpromote_success",
        PgpromoteCandidate = "pgpromote_candidate",
        PgpromoteCandidateNrl = "pgpromote_candidate_nrl",
        PgdemoteKswapd = "pgdemote_kswapd",
        PgdemoteDirect = "pgdemote_direct",
        PgdemoteKhugepaged = "pgdemote_khugepaged",
        PgdemoteProactive = "pgdemote_proactive",
        NrHugetlb = "nr_hugetlb",
        NrBalloonPages = "nr_balloon_pages",
        NrKernelFilePages = "nr_kernel_file_pages",
    }
}

counters! {
    /// Global events (`enum vm_event_item`).
    VmEvent {
        Pgpgin = "pgpgin",
        Pgpgout = "pgpgout",
        Pswpin = "pswpin",
        Pswpout = "pswpout",
        PgallocDma = "pgalloc_dma",
        PgallocDma32 = "pgalloc_dma32",
        PgallocNormal = "pgalloc_normal",
        PgallocMovable = "pgalloc_movable",
        PgallocDevice = "pgalloc_device",
        AllocstallDma = "allocstall_dma",
        AllocstallDma32 = "allocstall_dma32",
        AllocstallNormal = "allocstall_normal",
        AllocstallMovable = "allocstall_movable",
        AllocstallDevice = "allocstall_device",
        PgskipDma = "pgskip_dma",
        PgskipDma32 = "pgskip_dma32",
        PgskipNormal = "pgskip_normal",
        PgskipMovable = "pgskip_movable",
        PgskipDevice = "pgskip_device",
        Pgfree = "pgfree",
        Pgactivate = "pgactivate",
        Pgdeactivate = "pgdeactivate",
        Pglazyfree = "pglazyfree",
        Pgfault = "pgfault",
        Pgmajfault = "pgmajfault",
        Pglazyfreed = "pglazyfreed",
        Pgrefill = "pgrefill",
        Pgreuse = "pgreuse",
        PgstealKswapd = "pgsteal_kswapd",
        PgstealDirect = "pgsteal_direct",
        PgstealKhugepaged = "pgsteal_khugepaged",
        PgstealProactive = "pgsteal_proactive",
        PgscanKswapd = "pgscan_kswapd",
        PgscanDirect = "pgscan_direct",
        PgscanKhugepaged = "pgscan_khugepaged",
        PgscanProactive = "pgscan_proactive",
        PgscanDirectThrottle = "pgscan_direct_throttle",
        PgscanAnon = "pgscan_anon",
        PgscanFile = "pgscan_file",
        PgstealAnon = "pgsteal_anon",
        PgstealFile = "pgsteal_file",
        ZoneReclaimSuccess = "zone_reclaim_success",
        ZoneReclaimFailed = "zone_reclaim_failed",
        Pginodesteal = "pginodesteal",
        SlabsScanned = "slabs_scanned",
        KswapdInodesteal = "kswapd_inodesteal",
        KswapdLowWmarkHitQuickly = "kswapd_low_wmark_hit_quickly",
        KswapdHighWmarkHitQuickly = "kswapd_high_wmark_hit_quickly",
        Pageoutrun = "pageoutrun",
        Pgrotated = "pgrotated",
        DropPagecache = "drop_pagecache",
        DropSlab = "drop_slab",
        OomKill = "oom_kill",
        NumaPteUpdates = "numa_pte_updates",
        NumaHugePteUpdates = "numa_huge_pte_updates",
        NumaHintFaults = "numa_hint_faults",
        NumaHintFaultsLocal = "numa_hint_faults_local",
        NumaPagesMigrated = "numa_pages_migrated",
        PgmigrateSuccess = "pgmigrate_success",
        PgmigrateFail = "pgmigrate_fail",
        ThpMigrationSuccess = "thp_migration_success",
        ThpMigrationFail = "thp_migration_fail",
        ThpMigrationSplit = "thp_migration_split",
        CompactMigrateScanned = "compact_migrate_scanned",
        CompactFreeScanned = "compact_free_scanned",
        CompactIsolated = "compact_isolated",
        CompactStall = "compact_stall",
        CompactFail = "compact_fail",
        CompactSuccess = "compact_success",
        CompactDaemonWake = "compact_daemon_wake",
        CompactDaemonMigrateScanned = "compact_daemon_migrate_scanned",
        CompactDaemonFreeScanned = "compact_daemon_free_scanned",
        HtlbBuddyAllocSuccess = "htlb_buddy_alloc_success",
        HtlbBuddyAllocFail = "htlb_buddy_alloc_fail",
        UnevictablePgsCulled = "unevictable_pgs_culled",
        UnevictablePgsScanned = "unevictable_pgs_scanned",
        UnevictablePgsRescued = "unevictable_pgs_rescued",
        UnevictablePgsMlocked = "unevictable_pgs_mlocked",
        UnevictablePgsMunlocked = "unevictable_pgs_munlocked",
        UnevictablePgsCleared = "unevictable_pgs_cleared",
        UnevictablePgsStranded = "unevictable_pgs_stranded",
        ThpFaultAlloc = "thp_fault_alloc",
        ThpFaultFallback = "thp_fault_fallback",
        ThpFaultFallbackCharge = "thp_fault_fallback_charge",
        ThpCollapseAlloc = "thp_collapse_alloc",
        ThpCollapseAllocFailed = "thp_collapse_alloc_failed",
        ThpFileAlloc = "thp_file_alloc",
        ThpFileFallback = "thp_file_fallback",
        ThpFileFallbackCharge = "thp_file_fallback_charge",
        ThpFileMapped = "thp_file_mapped",
        ThpSplitPage = "thp_split_page",
        ThpSplitPageFailed = "thp_split_page_failed",
        ThpDeferredSplitPage = "thp_deferred_split_page",
        ThpUnderusedSplitPage = "thp_underused_split_page",
        ThpSplitPmd = "thp_split_pmd",
        ThpScanExceedNonePte = "thp_scan_exceed_none_pte",
        ThpScanExceedSwapPte = "thp_scan_exceed_swap_pte",
        ThpScanExceedSharePte = "thp_scan_exceed_share_pte",
        ThpSplitPud = "thp_split_pud",
        ThpZeroPageAlloc = "thp_zero_page_alloc",
        ThpZeroPageAllocFailed = "thp_zero_page_alloc_failed",
        ThpSwpout = "thp_swpout",
        ThpSwpoutFallback = "thp_swpout_fallback",
        BalloonInflate = "balloon_inflate",
        BalloonDeflate = "balloon_deflate",
        BalloonMigrate = "balloon_migrate",
        SwapRa = "swap_ra",
        SwapRaHit = "swap_ra_hit",
        SwpinZero = "swpin_zero",
        SwpoutZero = "swpout_zero",
        KsmSwpinCopy = "ksm_swpin_copy",
        CowKsm = "cow_ksm",
        Zswpin = "zswpin",
        Zswpout = "zswpout",
        Zswpwb = "zswpwb",
        DirectMapLevel2Splits = "direct_map_level2_splits",
        DirectMapLevel3Splits = "direct_map_level3_splits",
        DirectMapLevel2Collapses = "direct_map_level2_collapses",
        DirectMapLevel3Collapses = "direct_map_level3_collapses",
    }
}

/// Names printed after the node items: the writeback thresholds, then the memmap counts.
pub const WRITEBACK_STAT_NAMES: [&str; 2] = ["nr_dirty_threshold", "nr_dirty_background_threshold"];
/// The memmap page counts (`enum vm_stat_item`'s memmap part).
pub const MEMMAP_STAT_NAMES: [&str; 2] = ["nr_memmap_pages", "nr_memmap_boot_pages"];

/// An array of state counters indexed by an item enum.
pub struct StatArray<const N: usize>([AtomicI64; N]);

impl<const N: usize> Default for StatArray<N> {
    fn default() -> Self {
        StatArray(core::array::from_fn(|_| AtomicI64::new(0)))
    }
}

impl<const N: usize> StatArray<N> {
    /// Current value.
    #[inline]
    pub fn get(&self, i: usize) -> i64 {
        self.0[i].load(Relaxed)
    }
    /// Adds `delta` (negative to subtract) (`mod_zone_page_state`).
    #[inline]
    pub fn add(&self, i: usize, delta: i64) {
        self.0[i].fetch_add(delta, Relaxed);
    }
    /// Adds `delta` with a plain load and store, for callers that know no
    /// other CPU updates the counter meanwhile (all CPUs on one host
    /// thread). Linux gets the same effect from per-CPU deltas
    /// (`__mod_node_page_state`).
    #[inline]
    pub fn add_unshared(&self, i: usize, delta: i64) {
        let c = &self.0[i];
        c.store(c.load(Relaxed).wrapping_add(delta), Relaxed);
    }
}

/// Per-zone state counters.
pub type ZoneStats = StatArray<{ ZoneStat::COUNT }>;
/// Per-node state counters.
pub type NodeStats = StatArray<{ NodeStat::COUNT }>;

/// One CPU's event counters (`struct vm_event_state`), cache-line aligned.
#[repr(align(64))]
pub struct CpuEvents([AtomicU64; VmEvent::COUNT]);

impl Default for CpuEvents {
    fn default() -> Self {
        CpuEvents(core::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl CpuEvents {
    /// Adds `n` to an event. Only the owning CPU calls this, so a plain load
    /// and store suffice (`__count_vm_events`).
    #[inline]
    pub fn count(&self, e: VmEvent, n: u64) {
        let c = &self.0[e as usize];
        c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
    }
    /// Adds `n` to the event `base + zone` (the `pgalloc_dma`.. families).
    #[inline]
    pub fn count_zone(&self, base: VmEvent, zone: usize, n: u64) {
        let c = &self.0[base as usize + zone];
        c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
    }
    /// This CPU's count of an event.
    #[inline]
    pub fn get(&self, e: usize) -> u64 {
        self.0[e].load(Relaxed)
    }
}

/// Sums an event over all CPUs (`all_vm_events`).
pub fn sum_events(cpus: &[CpuEvents], e: VmEvent) -> u64 {
    cpus.iter().map(|c| c.get(e as usize)).sum()
}
