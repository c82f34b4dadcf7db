//! The mm's global state in one value (Linux keeps it in globals:
//! `node_data[]`, `mem_section[]`, `totalram_pages`, the sysctls...).
//! A `Kernel` is built by [`crate::mm_init::boot`]; every component's
//! functions are methods on it, named as in Linux.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::hal::{Hal, PhysMem};
use crate::memblock::Memblock;
use crate::page::Memmap;
use crate::page_alloc::Node;
use crate::printk::Log;
use crate::sysctl::Sysctls;
use crate::vmstat::CpuEvents;

/// Kind of a firmware memory-map entry (e820 types).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum E820Type {
    /// Usable RAM.
    Ram,
    /// Reserved by firmware.
    Reserved,
    /// ACPI tables, reclaimable after boot.
    Acpi,
    /// ACPI non-volatile storage.
    Nvs,
    /// Defective RAM.
    Unusable,
}

impl E820Type {
    /// The name Linux prints in its boot log and `/sys/firmware/memmap`.
    pub fn name(self) -> &'static str {
        match self {
            E820Type::Ram => "usable",
            E820Type::Reserved => "reserved",
            E820Type::Acpi => "ACPI data",
            E820Type::Nvs => "ACPI NVS",
            E820Type::Unusable => "unusable",
        }
    }
}

/// One firmware memory-map entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct E820Entry {
    /// First byte.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// Kind.
    pub kind: E820Type,
}

/// What the firmware and the command line tell boot.
#[derive(Clone, Debug)]
pub struct BootParams {
    /// The e820 map.
    pub e820: Vec<E820Entry>,
    /// Physical range `[start, end)` of each NUMA node (the SRAT), by node id.
    pub node_ranges: Vec<(u64, u64)>,
    /// Node of each CPU.
    pub cpu_to_node: Vec<usize>,
    /// SLIT: `distance[a][b]`.
    pub distance: Vec<Vec<u8>>,
    /// Bytes of kernel image reserved at 16 MiB (text, data, bss).
    pub kernel_image_bytes: u64,
    /// `kernelcore=`: bytes every node keeps for non-movable allocations.
    pub kernelcore: Option<CoreSize>,
    /// `movablecore=`: bytes given to ZONE_MOVABLE.
    pub movablecore: Option<CoreSize>,
    /// The slab allocator to run.
    pub slab: crate::slab::SlabKind,
    /// 5-level paging (`la57`): page tables get a fifth level.
    pub la57: bool,
}

/// A `kernelcore=`/`movablecore=` amount.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CoreSize {
    /// Bytes.
    Bytes(u64),
    /// Percent of all memory.
    Percent(u64),
}

/// Facts recorded during boot for the debug and /proc views.
#[derive(Clone, Debug, Default)]
pub struct BootInfo {
    /// memblock as `memblock_free_all` left it.
    pub memblock: Memblock,
    /// The firmware map.
    pub e820: Vec<E820Entry>,
    /// Pages of memmap allocated at boot (`nr_memmap_boot_pages`).
    pub memmap_boot_pages: u64,
    /// Bytes of the direct map by page size: 4 KiB, 2 MiB, 1 GiB.
    pub direct_map: [u64; 3],
    /// Sum of each zone's present pages.
    pub present_pages: u64,
    /// One past the highest frame of RAM (`max_pfn`).
    pub max_pfn: u64,
}

/// The memory-management state of one simulated machine.
pub struct Kernel {
    /// Simulated RAM.
    pub mem: Arc<PhysMem>,
    /// The machine's per-call services.
    pub hal: Arc<dyn Hal>,
    /// `struct page` for every frame of present sections.
    pub memmap: Memmap,
    /// NUMA nodes.
    pub nodes: Vec<Node>,
    /// Node of each CPU.
    pub cpu_to_node: Vec<usize>,
    /// Node distances (SLIT).
    pub distance: Vec<Vec<u8>>,
    /// Possible CPUs.
    pub nr_cpus: usize,
    /// Per-CPU event counters.
    pub cpu_events: Vec<CpuEvents>,
    /// The vm sysctls.
    pub sysctl: Sysctls,
    /// The kernel log.
    pub log: Log,
    /// Boot facts.
    pub boot: BootInfo,
    /// Sum over zones of high watermark plus lowmem reserve (`totalreserve_pages`).
    pub totalreserve_pages: AtomicU64,
    /// Pages reported by `bad_page` and leaked.
    pub bad_pages: AtomicU64,
    /// Page-table levels: 4, or 5 with `la57`.
    pub pgtable_levels: u8,
    /// The slab layer.
    pub slab: crate::slab::SlabState,
    /// The vmalloc range.
    pub vmalloc: crate::vmalloc::VmallocState,
    /// The per-cpu allocator.
    pub percpu: crate::percpu::PercpuState,
    /// The HAL's running-CPU cell, when it offers one ([`Hal::cpu_cell`]).
    pub cpu_cell: Option<Arc<core::sync::atomic::AtomicUsize>>,
    /// Set while CPUs run on several host threads: the CPU then comes from
    /// [`Hal::current_cpu`] on every call.
    pub threaded: core::sync::atomic::AtomicBool,
    /// The virtual-memory layer: processes, commit, layout knobs.
    pub vm: crate::mm_types::VmState,
    /// The per-CPU TLBs.
    pub mmu: crate::arch::x86_64::tlb::Mmu,
    /// Stands in for the root `anon_vma` rwsems (see `rmap`).
    pub vm_rmap_lock: spin::Mutex<()>,
}

impl Kernel {
    /// The running CPU (`smp_processor_id`).
    #[inline]
    pub fn this_cpu(&self) -> usize {
        match &self.cpu_cell {
            Some(c) if !self.threaded.load(Relaxed) => c.load(Relaxed),
            _ => self.hal.current_cpu(),
        }
    }

    /// Managed pages of all zones (`totalram_pages`).
    pub fn totalram_pages(&self) -> u64 {
        self.zones().map(|z| z.managed()).sum()
    }
    /// Free pages of all zones (`global_zone_page_state(NR_FREE_PAGES)`).
    pub fn nr_free_pages(&self) -> u64 {
        self.zones().map(|z| z.page_state(crate::vmstat::ZoneStat::NrFreePages)).sum()
    }
    /// Sum of a zone counter over all zones.
    pub fn global_zone_page_state(&self, item: crate::vmstat::ZoneStat) -> u64 {
        self.zones().map(|z| z.page_state(item)).sum()
    }
    /// Sum of a node counter over all nodes.
    pub fn global_node_page_state(&self, item: crate::vmstat::NodeStat) -> u64 {
        self.nodes.iter().map(|n| n.stat.get(item as usize).max(0) as u64).sum()
    }
    /// Sum of an event over CPUs.
    pub fn vm_event(&self, e: crate::vmstat::VmEvent) -> u64 {
        crate::vmstat::sum_events(&self.cpu_events, e)
    }
    /// The running CPU's event counters.
    #[inline]
    pub fn events(&self) -> &CpuEvents {
        &self.cpu_events[self.this_cpu()]
    }
    /// Pages sitting on per-cpu lists of all zones.
    pub fn pcp_pages(&self) -> u64 {
        self.zones().flat_map(|z| z.per_cpu.iter()).map(|c| c.pcp.get().count as u64).sum()
    }
    /// Reserve total (`totalreserve_pages`).
    pub fn totalreserve(&self) -> u64 {
        self.totalreserve_pages.load(Relaxed)
    }
}
