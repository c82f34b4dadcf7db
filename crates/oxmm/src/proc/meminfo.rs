//! `/proc/meminfo` (Linux's `fs/proc/meminfo.c`, with `si_meminfo` and
//! `si_mem_available` from `mm/show_mem.c`, `vm_commit_limit` from
//! `mm/util.c`, `hugetlb_report_meminfo` and x86's `arch_report_meminfo`).
//!
//! The lines are those of a Linux 6.18 x86-64 kernel configured like a
//! distribution kernel without CMA reporting: `MemTotal` through
//! `DirectMap1G`, 54 lines. Each line is the name with its colon padded to
//! 16 columns and the value right-aligned in 8 more (wider values push the
//! unit right, as `seq_put_decimal_ull_width` does), followed by ` kB`
//! except for the `HugePages_*` counts.
//!
//! Units, as in Linux: node and zone counters are in pages and printed in
//! KiB, except `nr_kernel_stack`, which Linux keeps in KiB already. The
//! THP counters (`nr_anon_transparent_hugepages` and friends) count base
//! pages here and in Linux alike; /proc/vmstat divides them by 512.

use alloc::string::String;
use core::fmt::Write;

use super::{kb, HPAGE_PMD_ORDER};
use crate::kernel::Kernel;
use crate::page_alloc::Wmark;
use crate::vmstat::{NodeStat, ZoneStat};

/// Bytes of the x86-64 vmalloc area with 4-level paging, minus one
/// (`VMALLOC_END - VMALLOC_START`: 32 TiB).
const VMALLOC_TOTAL: u64 = (32 << 40) - 1;

/// How a value is printed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// A page count, printed in KiB.
    Pages,
    /// Already KiB.
    Kb,
    /// A bare count, no unit.
    Count,
}

/// Estimate of the pages userspace could get without swapping
/// (`si_mem_available`): free pages above the reserves, plus the part of
/// the page cache and of reclaimable kernel memory that reclaim could give
/// back (each minus what the low watermarks want kept).
pub fn si_mem_available(k: &Kernel) -> u64 {
    let wmark_low: i64 = k.zones().map(|z| z.wmark_pages(Wmark::Low) as i64).sum();
    let mut available = k.nr_free_pages() as i64 - k.totalreserve() as i64;
    let pagecache =
        (k.global_node_page_state(NodeStat::NrActiveFile) + k.global_node_page_state(NodeStat::NrInactiveFile)) as i64;
    available += pagecache - (pagecache / 2).min(wmark_low);
    let reclaimable = (k.global_node_page_state(NodeStat::NrSlabReclaimable)
        + k.global_node_page_state(NodeStat::NrKernelMiscReclaimable)) as i64;
    available += reclaimable - (reclaimable / 2).min(wmark_low);
    available.max(0) as u64
}

/// Pages that may be committed under `vm.overcommit_memory = 2`
/// (`vm_commit_limit`): `vm.overcommit_kbytes` when set, else
/// `vm.overcommit_ratio` percent of RAM outside hugetlb pools, plus swap.
pub fn vm_commit_limit(k: &Kernel) -> u64 {
    use core::sync::atomic::Ordering::Relaxed;
    let kbytes = k.sysctl.overcommit_kbytes.load(Relaxed);
    let allowed = if kbytes != 0 {
        kbytes >> (crate::types::PAGE_SHIFT - 10)
    } else {
        let ratio = k.sysctl.overcommit_ratio.load(Relaxed);
        let ram = k.totalram_pages().saturating_sub(k.global_node_page_state(NodeStat::NrHugetlb));
        ram.saturating_mul(ratio) / 100
    };
    // Swap devices add their pages here once swap exists.
    let total_swap_pages = 0;
    allowed + total_swap_pages
}

/// Renders `/proc/meminfo`.
pub fn meminfo(k: &Kernel) -> String {
    let node = |i: NodeStat| k.global_node_page_state(i);
    let totalram = k.totalram_pages();
    let freeram = k.nr_free_pages();
    // Page cache of block devices (`nr_blockdev_pages`): no block layer yet.
    let bufferram = 0u64;
    let swapcache = node(NodeStat::NrSwapcached);
    let cached = node(NodeStat::NrFilePages).saturating_sub(swapcache).saturating_sub(bufferram);
    let (active_anon, inactive_anon) = (node(NodeStat::NrActiveAnon), node(NodeStat::NrInactiveAnon));
    let (active_file, inactive_file) = (node(NodeStat::NrActiveFile), node(NodeStat::NrInactiveFile));
    let sreclaimable = node(NodeStat::NrSlabReclaimable);
    let sunreclaim = node(NodeStat::NrSlabUnreclaimable);
    let [dm4k, dm2m, dm1g] = k.boot.direct_map;
    // Components not built yet report 0: swap, zswap, NFS, bounce
    // buffers, FUSE writeback, overcommit accounting, vmalloc and the
    // hugetlb pools.
    let fields: [(&str, u64, Unit); 54] = [
        ("MemTotal", totalram, Unit::Pages),
        ("MemFree", freeram, Unit::Pages),
        ("MemAvailable", si_mem_available(k), Unit::Pages),
        ("Buffers", bufferram, Unit::Pages),
        ("Cached", cached, Unit::Pages),
        ("SwapCached", swapcache, Unit::Pages),
        ("Active", active_anon + active_file, Unit::Pages),
        ("Inactive", inactive_anon + inactive_file, Unit::Pages),
        ("Active(anon)", active_anon, Unit::Pages),
        ("Inactive(anon)", inactive_anon, Unit::Pages),
        ("Active(file)", active_file, Unit::Pages),
        ("Inactive(file)", inactive_file, Unit::Pages),
        ("Unevictable", node(NodeStat::NrUnevictable), Unit::Pages),
        ("Mlocked", k.global_zone_page_state(ZoneStat::NrMlock), Unit::Pages),
        ("SwapTotal", 0, Unit::Pages),
        ("SwapFree", 0, Unit::Pages),
        ("Zswap", 0, Unit::Pages),
        ("Zswapped", 0, Unit::Pages),
        ("Dirty", node(NodeStat::NrDirty), Unit::Pages),
        ("Writeback", node(NodeStat::NrWriteback), Unit::Pages),
        ("AnonPages", node(NodeStat::NrAnonPages), Unit::Pages),
        ("Mapped", node(NodeStat::NrMapped), Unit::Pages),
        ("Shmem", node(NodeStat::NrShmem), Unit::Pages),
        ("KReclaimable", sreclaimable + node(NodeStat::NrKernelMiscReclaimable), Unit::Pages),
        ("Slab", sreclaimable + sunreclaim, Unit::Pages),
        ("SReclaimable", sreclaimable, Unit::Pages),
        ("SUnreclaim", sunreclaim, Unit::Pages),
        ("KernelStack", node(NodeStat::NrKernelStack), Unit::Kb),
        ("PageTables", node(NodeStat::NrPageTablePages), Unit::Pages),
        ("SecPageTables", node(NodeStat::NrSecPageTablePages), Unit::Pages),
        ("NFS_Unstable", 0, Unit::Pages),
        ("Bounce", 0, Unit::Pages),
        ("WritebackTmp", 0, Unit::Pages),
        ("CommitLimit", vm_commit_limit(k), Unit::Pages),
        ("Committed_AS", k.vm.committed_as.load(core::sync::atomic::Ordering::Relaxed).max(0) as u64, Unit::Pages),
        ("VmallocTotal", VMALLOC_TOTAL >> 10, Unit::Kb),
        ("VmallocUsed", k.vmalloc.nr_pages.load(core::sync::atomic::Ordering::Relaxed), Unit::Pages),
        ("VmallocChunk", 0, Unit::Pages),
        ("Percpu", k.pcpu_nr_pages(), Unit::Pages),
        ("AnonHugePages", node(NodeStat::NrAnonTransparentHugepages), Unit::Pages),
        ("ShmemHugePages", node(NodeStat::NrShmemHugepages), Unit::Pages),
        ("ShmemPmdMapped", node(NodeStat::NrShmemPmdmapped), Unit::Pages),
        ("FileHugePages", node(NodeStat::NrFileHugepages), Unit::Pages),
        ("FilePmdMapped", node(NodeStat::NrFilePmdmapped), Unit::Pages),
        ("Balloon", node(NodeStat::NrBalloonPages), Unit::Pages),
        ("HugePages_Total", 0, Unit::Count),
        ("HugePages_Free", 0, Unit::Count),
        ("HugePages_Rsvd", 0, Unit::Count),
        ("HugePages_Surp", 0, Unit::Count),
        ("Hugepagesize", kb(1 << HPAGE_PMD_ORDER), Unit::Kb),
        ("Hugetlb", node(NodeStat::NrHugetlb), Unit::Pages),
        ("DirectMap4k", dm4k >> 10, Unit::Kb),
        ("DirectMap2M", dm2m >> 10, Unit::Kb),
        ("DirectMap1G", dm1g >> 10, Unit::Kb),
    ];
    let mut s = String::with_capacity(fields.len() * 32);
    for (name, value, unit) in fields {
        let (value, suffix) = match unit {
            Unit::Pages => (kb(value), " kB"),
            Unit::Kb => (value, " kB"),
            Unit::Count => (value, ""),
        };
        // The name and its colon fill 16 columns, the value 8 more.
        s.push_str(name);
        s.push(':');
        for _ in name.len() + 1..16 {
            s.push(' ');
        }
        let _ = writeln!(s, "{value:>8}{suffix}");
    }
    s
}
