//! Boot of the memory subsystem (Linux's `mm/mm_init.c`, `mm/sparse.c`
//! and the x86 parts of `arch/x86/kernel/e820.c` and `setup.c`).
//!
//! Steps, in Linux's order:
//! 1. memblock from the e820 map: RAM entries become `memory`, then the
//!    NUMA node ranges (the SRAT) assign nodes; page 0 is dropped and the
//!    first MiB and the kernel image are reserved.
//! 2. Node and zone spans: DMA below 16 MiB, DMA32 below 4 GiB, Normal
//!    above, Movable carved from the top of each node by `kernelcore=` or
//!    `movablecore=`; spanned, present and (later) managed pages as Linux
//!    computes them.
//! 3. The memmap: for each node, one memblock allocation of 2 MiB of
//!    `struct page` per present 128 MiB section, node-local and above
//!    16 MiB (`sparse_init`); every descriptor initialized with its zone
//!    and node; every pageblock starts Movable.
//! 4. `memblock_free_all`: every range that is memory and not reserved goes
//!    to the buddy allocator in max-order aligned blocks; that count is the
//!    zone's managed pages, so the memmap and the kernel are not in MemTotal.
//! 5. Zonelists, pcp sizes and watermarks (`build_all_zonelists`,
//!    `init_per_zone_wmark_min`).

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::Ordering::Relaxed;

use crate::hal::{Hal, PhysMem};
use crate::kernel::{BootInfo, BootParams, CoreSize, E820Type, Kernel};
use crate::memblock::{Memblock, MemblockFlags};
use crate::mmzone::{MigrateType, ZoneType, MAX_NR_ZONES};
use crate::page::{pg, Memmap, Page, PAGEBLOCKS_PER_SECTION};
use crate::page_alloc::{Node, Zone, ZoneRef};
use crate::printk::Log;
use crate::sysctl::Sysctls;
use crate::types::*;
use crate::vmstat::{CpuEvents, NodeStats};

/// Frames below 16 MiB (`MAX_DMA_PFN`).
pub const MAX_DMA_PFN: u64 = (16 << 20) >> PAGE_SHIFT;
/// Frames below 4 GiB (`MAX_DMA32_PFN`).
pub const MAX_DMA32_PFN: u64 = (4u64 << 30) >> PAGE_SHIFT;
/// Where x86-64 loads the kernel (`CONFIG_PHYSICAL_START`).
pub const KERNEL_LOAD_ADDR: u64 = 16 << 20;
/// Frames per max-order block (`MAX_ORDER_NR_PAGES`).
pub const MAX_ORDER_NR_PAGES: u64 = 1 << MAX_PAGE_ORDER;
/// Bytes of memmap per section.
const SECTION_MAP_BYTES: u64 = PAGES_PER_SECTION * core::mem::size_of::<Page>() as u64;

/// Why boot failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The e820 map has no RAM.
    NoMemory,
    /// A node range, CPU or distance entry is inconsistent.
    BadTopology(alloc::string::String),
    /// memblock could not find room for the memmap of a node.
    NoRoomForMemmap {
        /// The node.
        nid: usize,
    },
    /// The kernel image does not fit in RAM at 16 MiB.
    KernelImage,
    /// RAM lies beyond the physical memory the machine provides.
    RamBeyondMapping,
    /// The boot slab caches could not be created.
    SlabInit,
    /// memblock could not find room for the first per-cpu chunk.
    Percpu,
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::NoMemory => write!(f, "the firmware memory map has no usable RAM"),
            BootError::BadTopology(s) => write!(f, "bad NUMA topology: {s}"),
            BootError::NoRoomForMemmap { nid } => write!(f, "no room for the memmap of node {nid}"),
            BootError::KernelImage => write!(f, "the kernel image does not fit in RAM at 16 MiB"),
            BootError::RamBeyondMapping => write!(f, "the memory map names RAM beyond the machine's physical memory"),
            BootError::SlabInit => write!(f, "the boot slab caches could not be created"),
            BootError::Percpu => write!(f, "no room for the first per-cpu chunk"),
        }
    }
}

/// Zone spans of one node: `[start, end)` per zone type.
type ZoneSpans = [(u64, u64); MAX_NR_ZONES];

/// Boots the memory subsystem on `mem` as described by `params`.
pub fn boot(params: &BootParams, mem: Arc<PhysMem>, hal: Arc<dyn Hal>) -> Result<Kernel, BootError> {
    let nr_nodes = params.node_ranges.len();
    if nr_nodes == 0 || nr_nodes > crate::page::MAX_NUMNODES {
        return Err(BootError::BadTopology(alloc::format!("{nr_nodes} nodes")));
    }
    let nr_cpus = params.cpu_to_node.len();
    if nr_cpus == 0 || params.cpu_to_node.iter().any(|&n| n >= nr_nodes) {
        return Err(BootError::BadTopology("every CPU needs a node that exists".into()));
    }
    if params.distance.len() != nr_nodes || params.distance.iter().any(|r| r.len() != nr_nodes) {
        return Err(BootError::BadTopology("the distance table must be nodes x nodes".into()));
    }

    // 1. memblock.
    let mut mb = Memblock::new();
    for e in params.e820.iter().filter(|e| e.kind == E820Type::Ram) {
        // RAM entries are trimmed to whole pages, as e820__memblock_setup does.
        let start = align_up(e.addr, PAGE_SIZE);
        let end = align_down(e.addr + e.size, PAGE_SIZE);
        if end > start {
            mb.add_node(PhysAddr(start), end - start, crate::memblock::NO_NODE, MemblockFlags::NONE);
        }
    }
    if mb.phys_mem_size() == 0 {
        return Err(BootError::NoMemory);
    }
    let ram_end = mb.memory.regions().last().map_or(0, |r| r.end());
    if ram_end > mem.size() {
        return Err(BootError::RamBeyondMapping);
    }
    for (nid, &(s, e)) in params.node_ranges.iter().enumerate() {
        mb.set_node(PhysAddr(s), e.saturating_sub(s), nid as u32);
    }
    if mb.memory.regions().iter().any(|r| r.nid == crate::memblock::NO_NODE) {
        return Err(BootError::BadTopology("some RAM lies in no node's range".into()));
    }
    // Page 0 holds the BIOS data area: Linux turns it into a reserved e820 entry.
    mb.remove(PhysAddr(0), PAGE_SIZE);
    // The first MiB is reserved unconditionally on x86 (real-mode trampoline, BIOS).
    mb.reserve(PhysAddr(0), 1 << 20);
    let kimg = align_up(params.kernel_image_bytes, PAGE_SIZE);
    if kimg > 0 {
        let have = mb.memory_in(KERNEL_LOAD_ADDR, KERNEL_LOAD_ADDR + kimg, None);
        if have != kimg {
            return Err(BootError::KernelImage);
        }
        mb.reserve(PhysAddr(KERNEL_LOAD_ADDR), kimg);
    }

    // 2. Node and zone spans.
    let max_pfn = ram_end >> PAGE_SHIFT;
    let node_pfns: Vec<(u64, u64)> = (0..nr_nodes)
        .map(|nid| {
            let regs: Vec<_> = mb.memory.regions().iter().filter(|r| r.nid == nid as u32).collect();
            match (regs.first(), regs.last()) {
                (Some(f), Some(l)) => (PhysAddr(f.base).pfn_up().0, PhysAddr(l.end()).pfn().0),
                _ => (0, 0),
            }
        })
        .collect();
    let zone_movable_pfn = find_zone_movable_pfns(&mb, params, &node_pfns, max_pfn);
    let lowest = mb.memory.regions()[0].base >> PAGE_SHIFT;
    let arch_ranges: [(u64, u64); 3] = [
        (lowest.min(MAX_DMA_PFN), MAX_DMA_PFN.min(max_pfn)),
        (MAX_DMA_PFN.min(max_pfn), MAX_DMA32_PFN.min(max_pfn)),
        (MAX_DMA32_PFN.min(max_pfn), max_pfn),
    ];
    let spans: Vec<ZoneSpans> =
        (0..nr_nodes).map(|nid| zone_spans(node_pfns[nid], &arch_ranges, zone_movable_pfn[nid], max_pfn)).collect();

    // 3. The memmap, one buffer per node (sparse_init).
    let mut memmap = Memmap::new(mem.clone(), max_pfn);
    let nr_sections = max_pfn.div_ceil(PAGES_PER_SECTION) as usize;
    let mut section_nid = vec![usize::MAX; nr_sections];
    for r in mb.memory.regions() {
        let first = (r.base >> PAGE_SHIFT) / PAGES_PER_SECTION;
        let last = ((r.end() >> PAGE_SHIFT) - 1) / PAGES_PER_SECTION;
        for s in first..=last {
            if section_nid[s as usize] == usize::MAX {
                section_nid[s as usize] = r.nid as usize;
            }
        }
    }
    let mut memmap_boot_pages = 0;
    for nid in 0..nr_nodes {
        let secs: Vec<usize> = (0..nr_sections).filter(|&s| section_nid[s] == nid).collect();
        if secs.is_empty() {
            continue;
        }
        let n = secs.len() as u64;
        let map = mb
            .alloc_range_nid(n * SECTION_MAP_BYTES, SECTION_MAP_BYTES, KERNEL_LOAD_ADDR, u64::MAX, nid as u32)
            .map_err(|_| BootError::NoRoomForMemmap { nid })?;
        let usemap = mb
            .alloc_range_nid(n * PAGEBLOCKS_PER_SECTION, 64, 0, u64::MAX, nid as u32)
            .map_err(|_| BootError::NoRoomForMemmap { nid })?;
        memmap_boot_pages += n * SECTION_MAP_BYTES / PAGE_SIZE;
        for (i, &s) in secs.iter().enumerate() {
            let i = i as u64;
            memmap.add_section(
                s,
                PhysAddr(map.0 + i * SECTION_MAP_BYTES),
                PhysAddr(usemap.0 + i * PAGEBLOCKS_PER_SECTION),
            );
        }
    }
    // Initialize every descriptor of every present section: reserved, in
    // the zone its frame falls in (holes too, as init_unavailable_range does).
    for (s, &nid) in section_nid.iter().enumerate() {
        if nid == usize::MAX {
            continue;
        }
        let start = s as u64 * PAGES_PER_SECTION;
        let end = (start + PAGES_PER_SECTION).min(max_pfn);
        let sp = &spans[nid];
        let mut pfn = start;
        while pfn < end {
            // Runs of frames with one zone, so the inner loop is plain stores.
            let zi = (0..MAX_NR_ZONES).find(|&z| pfn >= sp[z].0 && pfn < sp[z].1);
            let run_end = match zi {
                Some(z) => sp[z].1.min(end),
                None => (0..MAX_NR_ZONES).map(|z| sp[z].0).filter(|&b| b > pfn).min().unwrap_or(end).min(end),
            };
            let zone = zi.map_or(ZoneType::Normal, ZoneType::from_index);
            for p in pfn..run_end {
                memmap.page(Pfn(p)).init(zone, nid, pg::RESERVED);
            }
            pfn = run_end;
        }
        let mut b = start;
        while b < end {
            memmap.pageblock(Pfn(b)).store(MigrateType::Movable as u8, Relaxed);
            b += PAGEBLOCK_NR_PAGES;
        }
    }

    // The first per-cpu chunk (setup_per_cpu_areas): each node's units are
    // a memblock allocation on that node, so they stay reserved (not in
    // MemTotal) when memblock_free_all hands the rest to the buddy.
    let percpu = crate::percpu::PercpuState::embed_first_chunk(&mut mb, &mem, &params.cpu_to_node)
        .map_err(|_| BootError::Percpu)?;

    // Nodes and zones, with present pages from memblock.
    let nodes: Vec<Node> = (0..nr_nodes)
        .map(|nid| {
            let zones: [Zone; MAX_NR_ZONES] = core::array::from_fn(|z| {
                let (s, e) = spans[nid][z];
                let present = if e > s {
                    mb.memory_in(s << PAGE_SHIFT, e << PAGE_SHIFT, Some(nid as u32)) >> PAGE_SHIFT
                } else {
                    0
                };
                Zone::new(
                    nid,
                    ZoneType::from_index(z),
                    if e > s { s } else { 0 },
                    e.saturating_sub(s),
                    present,
                    nr_cpus,
                )
            });
            let (ns, ne) = node_pfns[nid];
            Node {
                nid,
                node_start_pfn: ns,
                node_spanned_pages: ne.saturating_sub(ns),
                node_present_pages: zones.iter().map(|z| z.present_pages).sum(),
                zones,
                zonelists: [Vec::new(), Vec::new()],
                zonelist_start: [[None; MAX_NR_ZONES]; 2],
                stat: NodeStats::default(),
                cpus: (0..nr_cpus).filter(|&c| params.cpu_to_node[c] == nid).collect(),
                totalreserve_pages: Default::default(),
                lruvec: Default::default(),
            }
        })
        .collect();

    let mut k = Kernel {
        mem,
        hal: hal.clone(),
        memmap,
        nodes,
        cpu_to_node: params.cpu_to_node.clone(),
        distance: params.distance.clone(),
        nr_cpus,
        cpu_events: (0..nr_cpus).map(|_| CpuEvents::default()).collect(),
        sysctl: Sysctls::default(),
        log: Log::default(),
        boot: BootInfo::default(),
        totalreserve_pages: Default::default(),
        bad_pages: Default::default(),
        pgtable_levels: if params.la57 { 5 } else { 4 },
        slab: crate::slab::SlabState::new(params.slab),
        vmalloc: Default::default(),
        percpu,
        cpu_cell: hal.cpu_cell(),
        threaded: Default::default(),
        vm: Default::default(),
        mmu: crate::arch::x86_64::tlb::Mmu {
            tlbs: (0..nr_cpus).map(|_| Default::default()).collect(),
            ..Default::default()
        },
        vm_rmap_lock: spin::Mutex::new(()),
    };
    for line in k.percpu.first_chunk_report() {
        k.log.info(format_args!("{line}"));
    }
    build_all_zonelists(&mut k);
    for z in k.zones() {
        k.zone_pcp_update(z);
    }

    // 4. memblock_free_all.
    for (start, end, _nid) in mb.free_ranges() {
        let s = PhysAddr(start).pfn_up().0;
        let e = PhysAddr(end).pfn().0;
        free_pages_memory(&k, s, e);
    }
    k.boot = BootInfo {
        direct_map: direct_map_sizes(&mb),
        present_pages: k.zones().map(|z| z.present_pages).sum(),
        memblock: mb,
        e820: params.e820.clone(),
        memmap_boot_pages,
        max_pfn,
    };

    // 5. Watermarks, reserves, pcp sizes.
    k.init_per_zone_wmark_min();
    // 6. The slab layer (kmem_cache_init).
    k.kmem_cache_init().map_err(|_| BootError::SlabInit)?;
    if !k.vmalloc_init() {
        return Err(BootError::SlabInit);
    }
    k.log.info(format_args!(
        "Memory: {}K/{}K available ({}K kernel image, {}K memmap)",
        k.totalram_pages() << (PAGE_SHIFT - 10),
        k.boot.present_pages << (PAGE_SHIFT - 10),
        kimg >> 10,
        memmap_boot_pages << (PAGE_SHIFT - 10)
    ));
    // The shared zero page (Linux's empty_zero_page lives in the image).
    k.zero_pfn();
    Ok(k)
}

/// Zone spans of a node (`zone_spanned_pages_in_node` with
/// `adjust_zone_range_for_zone_movable`).
fn zone_spans(node: (u64, u64), arch: &[(u64, u64); 3], movable_pfn: u64, max_pfn: u64) -> ZoneSpans {
    let mut spans = [(0u64, 0u64); MAX_NR_ZONES];
    if node.1 <= node.0 {
        return spans;
    }
    for z in 0..3 {
        let (lo, hi) = arch[z];
        let mut s = node.0.clamp(lo, hi);
        let mut e = node.1.clamp(lo, hi);
        if movable_pfn != 0 {
            if s < movable_pfn && e > movable_pfn {
                e = movable_pfn;
            } else if s >= movable_pfn {
                s = e;
            }
        }
        spans[z] = if e > s { (s, e) } else { (0, 0) };
    }
    if movable_pfn != 0 {
        let e = node.1.min(max_pfn);
        if e > movable_pfn {
            spans[ZoneType::Movable as usize] = (movable_pfn, e);
        }
    }
    spans
}

/// Where ZONE_MOVABLE starts on each node, 0 for none
/// (`find_zone_movable_pfns_for_nodes`): the kernel part is spread evenly
/// over the nodes from their low end, and ZONE_MOVABLE takes the rest,
/// aligned to a max-order block.
fn find_zone_movable_pfns(mb: &Memblock, p: &BootParams, node_pfns: &[(u64, u64)], max_pfn: u64) -> Vec<u64> {
    let nr_nodes = node_pfns.len();
    let mut zmp = vec![0u64; nr_nodes];
    let total: u64 = mb.phys_mem_size() >> PAGE_SHIFT;
    let pages = |c: CoreSize| match c {
        CoreSize::Bytes(b) => b >> PAGE_SHIFT,
        CoreSize::Percent(pc) => total * pc.min(100) / 100,
    };
    let mut required_kernelcore = p.kernelcore.map_or(0, pages);
    if let Some(mc) = p.movablecore {
        let movable = align_up(pages(mc), MAX_ORDER_NR_PAGES).min(total);
        required_kernelcore = required_kernelcore.max(total - movable);
    }
    if required_kernelcore == 0 || required_kernelcore >= total {
        return zmp;
    }
    // ZONE_MOVABLE is carved from the highest populated zone type.
    let usable_startpfn = if max_pfn > MAX_DMA32_PFN { MAX_DMA32_PFN } else { MAX_DMA_PFN };
    let ranges: Vec<Vec<(u64, u64)>> = (0..nr_nodes)
        .map(|nid| {
            mb.memory
                .regions()
                .iter()
                .filter(|r| r.nid == nid as u32)
                .map(|r| (PhysAddr(r.base).pfn_up().0, PhysAddr(r.end()).pfn().0))
                .collect()
        })
        .collect();
    let mut usable_nodes = ranges.iter().filter(|r| !r.is_empty()).count() as u64;
    loop {
        let mut kernelcore_node = required_kernelcore / usable_nodes.max(1);
        for nid in 0..nr_nodes {
            if required_kernelcore < kernelcore_node {
                kernelcore_node = required_kernelcore / usable_nodes.max(1);
            }
            let mut remaining = kernelcore_node;
            for &(rs, re) in &ranges[nid] {
                let mut start = rs.max(zmp[nid]);
                if start >= re {
                    continue;
                }
                if start < usable_startpfn {
                    let kernel_pages = re.min(usable_startpfn) - start;
                    remaining -= kernel_pages.min(remaining);
                    required_kernelcore -= kernel_pages.min(required_kernelcore);
                    if re <= usable_startpfn {
                        zmp[nid] = re;
                        continue;
                    }
                    start = usable_startpfn;
                }
                let size = (re - start).min(remaining);
                zmp[nid] = start + size;
                required_kernelcore -= required_kernelcore.min(size);
                remaining -= size;
                if remaining == 0 {
                    break;
                }
            }
        }
        usable_nodes = usable_nodes.saturating_sub(1);
        if !(usable_nodes > 0 && required_kernelcore > usable_nodes) {
            break;
        }
    }
    for nid in 0..nr_nodes {
        zmp[nid] = align_up(zmp[nid], MAX_ORDER_NR_PAGES);
        if zmp[nid] >= node_pfns[nid].1 {
            zmp[nid] = 0;
        }
    }
    zmp
}

/// Orders each node's zonelists by distance with Linux's tie-breaks
/// (`build_zonelists`, `find_next_best_node`).
fn build_all_zonelists(k: &mut Kernel) {
    let n = k.nodes.len();
    let has_mem: Vec<bool> = k.nodes.iter().map(|nd| nd.node_present_pages > 0).collect();
    let has_cpus: Vec<bool> = k.nodes.iter().map(|nd| !nd.cpus.is_empty()).collect();
    let mut node_load = vec![0u64; n];
    for local in 0..n {
        let mut used = vec![false; n];
        let mut order = Vec::new();
        let mut prev = local;
        loop {
            let next = if !used[local] {
                Some(local)
            } else {
                (0..n).filter(|&m| !used[m] && has_mem[m]).min_by_key(|&m| {
                    let mut val = k.distance[local][m] as u64;
                    val += (m < local) as u64;
                    val += has_cpus[m] as u64;
                    val * crate::page::MAX_NUMNODES as u64 + node_load[m]
                })
            };
            let Some(m) = next else { break };
            used[m] = true;
            if k.distance[local][m] != k.distance[local][prev] {
                node_load[m] += 1;
            }
            order.push(m);
            prev = m;
        }
        let refs = |nid: usize| -> Vec<ZoneRef> {
            (0..MAX_NR_ZONES)
                .rev()
                .filter(|&z| k.nodes[nid].zones[z].populated())
                .map(|z| ZoneRef { nid: nid as u16, zone: z as u8 })
                .collect()
        };
        let fallback: Vec<ZoneRef> = order.iter().flat_map(|&m| refs(m)).collect();
        let nofallback: Vec<ZoneRef> = refs(local);
        k.nodes[local].zonelists = [fallback, nofallback];
    }
    // The walk's start for each highest zone (first_zones_zonelist), and
    // ALLOC_NOFRAGMENT when that zone is Normal over a populated DMA32
    // (alloc_flags_nofragment), computed once instead of per allocation.
    for local in 0..n {
        let mut starts = [[None; MAX_NR_ZONES]; 2];
        for (kind, row) in starts.iter_mut().enumerate() {
            let zl = &k.nodes[local].zonelists[kind];
            for (highest, slot) in row.iter_mut().enumerate() {
                *slot = zl.iter().position(|z| z.zone as usize <= highest).map(|i| {
                    let z = zl[i];
                    let nofrag = z.zone as usize == ZoneType::Normal as usize
                        && k.nodes[z.nid as usize].zones[ZoneType::Dma32 as usize].populated();
                    (i as u16, nofrag)
                });
            }
        }
        k.nodes[local].zonelist_start = starts;
    }
}

/// Frees `[start, end)` to the buddy allocator in the largest aligned
/// blocks, never across a zone boundary (`__free_pages_memory` +
/// `__free_pages_core`).
fn free_pages_memory(k: &Kernel, mut start: u64, end: u64) {
    while start < end {
        if !k.memmap.pfn_valid(Pfn(start)) {
            start += 1;
            continue;
        }
        let zone = k.page_zone(Pfn(start));
        let limit = end.min(zone.end_pfn());
        let mut order = MAX_PAGE_ORDER.min(start.trailing_zeros());
        while start + (1 << order) > limit {
            order -= 1;
        }
        for p in start..start + (1 << order) {
            let page = k.memmap.page(Pfn(p));
            page.clear_nonatomic(pg::RESERVED);
            page.refcount.store(0, Relaxed);
        }
        zone.managed_pages.fetch_add(1 << order, Relaxed);
        k.free_one_page_fpi(Pfn(start), order, true);
        start += 1 << order;
    }
}

/// Bytes of the direct map by page size (4K, 2M, 1G), as
/// `init_memory_mapping` splits each RAM range (`split_mem_range`).
fn direct_map_sizes(mb: &Memblock) -> [u64; 3] {
    const PMD: u64 = 2 << 20;
    const PUD: u64 = 1 << 30;
    let mut out = [0u64; 3];
    // Linux maps the ISA range with 4K pages first.
    out[0] += 1 << 20;
    for r in mb.memory.regions() {
        let start = r.base.max(1 << 20);
        let end = r.end();
        if end <= start {
            continue;
        }
        let pmd_s = align_up(start, PMD).min(end);
        let pud_s = align_up(pmd_s, PUD).min(end);
        let pud_e = align_down(end, PUD).max(pud_s);
        let pmd_e = align_down(end, PMD).max(pud_e);
        out[0] += pmd_s - start;
        out[1] += pud_s - pmd_s;
        out[2] += pud_e - pud_s;
        out[1] += pmd_e - pud_e;
        out[0] += end - pmd_e;
    }
    out
}

/// A memoryless test double of [`Hal`]: one fixed CPU, a frozen clock.
pub struct FixedHal {
    /// CPU returned by `current_cpu`.
    pub cpu: core::sync::atomic::AtomicUsize,
    /// CPUs.
    pub nr_cpus: usize,
}

impl Hal for FixedHal {
    fn current_cpu(&self) -> usize {
        self.cpu.load(Relaxed)
    }
    fn nr_cpu_ids(&self) -> usize {
        self.nr_cpus
    }
    fn now_ns(&self) -> u64 {
        0
    }
}
