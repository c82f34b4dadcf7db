//! The per-cpu allocator (Linux's `mm/percpu.c` with its vmalloc back-end
//! `mm/percpu-vm.c`): memory that exists once per possible CPU, handed out
//! as one "percpu pointer" that every CPU turns into its own copy.
//!
//! # Design (as Linux)
//!
//! - **Chunks and units.** A chunk is one unit per possible CPU (plus the
//!   padding units that group rounding adds); an allocation takes the same
//!   offset range in every unit of its chunk. The unit size comes from the
//!   first chunk: static + reserved + dynamic reserve rounded to pages
//!   (`size_sum`), at least [`PCPU_MIN_UNIT_SIZE`], then fitted into
//!   2 MiB allocation atoms the way `pcpu_build_alloc_info` does (a 4-CPU
//!   machine gets 512 KiB units, of which the first chunk uses 63 pages).
//! - **The first chunk** is built at boot by [`PercpuState::embed_first_chunk`]
//!   (`pcpu_embed_first_chunk`): CPUs are grouped by node, each group's
//!   units are one memblock allocation on that node, aligned to the atom,
//!   and everything past `size_sum` in each unit goes back to memblock.
//!   The units are therefore reserved memory, not managed pages, and are
//!   reached through the direct map. The chunk is split as Linux splits it:
//!   `<static | reserved | dynamic>`; the static part stands for the
//!   kernel image's `.data..percpu` section ([`PERCPU_STATIC_SIZE`]), the
//!   reserved part (module statics) is its own chunk served only by
//!   [`Kernel::alloc_reserved_percpu`], the dynamic part circulates in the
//!   chunk slots like any other chunk. meminfo counts all of `size_sum`.
//! - **Later chunks** (`pcpu_create_chunk`) are one area of the vmalloc
//!   range of `nr_units * unit_size` bytes, populated page by page on
//!   demand (`pcpu_populate_chunk`): each populated page index gets one
//!   fresh page per possible CPU, allocated on that CPU's node and mapped
//!   through the kernel page tables. Their metadata (the chunk, allocation
//!   and boundary maps, block array) takes kernel memory of Linux's sizes
//!   through `pcpu_mem_zalloc` (kmalloc, or vmalloc above a page).
//! - **Allocation map** at [`PCPU_MIN_ALLOC_SIZE`] (4-byte) granularity: an
//!   allocation bitmap plus a boundary bitmap that marks where each area
//!   starts and ends, so `free_percpu` needs only the pointer.
//! - **Chunk slots**: chunks are kept on lists by the size of their largest
//!   free area (`pcpu_chunk_slot`), allocation walks from the slot of the
//!   request upward, so the fullest chunk that fits is used first; then
//!   come the `sidelined`, `free` and `to_depopulate` slots.
//! - **Balance work** (`pcpu_balance_workfn`): destroys every entirely free
//!   chunk but one, depopulates the empty pages of chunks isolated on the
//!   free path, and keeps 2..4 empty populated pages ready for atomic
//!   allocations (creating a chunk when it has to).
//! - `Percpu:` in /proc/meminfo is [`Kernel::pcpu_nr_pages`]: populated
//!   pages per unit times the number of units, as Linux reports it.
//!
//! # Where we differ
//!
//! - **Fit search**: Linux keeps per-page block hints (`pcpu_block_md`
//!   with scan, contig, left and right hints) to avoid scanning the bitmap.
//!   We keep the chunk's exact largest free run (with Linux's preference
//!   for the better aligned of equal runs), a per-page count of allocated
//!   fragments (what Linux's "block is empty" tests need), and search the
//!   bitmap first-fit from the first free bit. Offsets match Linux's first
//!   fit; a chunk whose largest run is badly aligned for a request is
//!   scanned instead of skipped.
//! - **Balance work runs synchronously** at the end of the call that
//!   schedules it (no workqueue), so runs stay deterministic.
//! - **Vmalloc areas**: `pcpu_get_vm_areas` places one area per group,
//!   congruent with the first chunk's group layout and aligned to the atom,
//!   searching from the top of the vmalloc range. Our chunks take one area
//!   (lowest fit, page aligned) holding all units back to back, so their
//!   unit offsets are `unit * unit_size`; the first chunk keeps the offsets
//!   its node-local placement gave it, and [`Kernel::per_cpu_ptr`] picks the
//!   table by the pointer's range (on one node both tables are equal). The
//!   vmalloc API has no "reserve an unmapped range" call, so a chunk takes
//!   its range with `vmap` over a placeholder frame and clears the entries
//!   at once; the page tables of the range are therefore built at chunk
//!   creation rather than at first population.
//! - **Metadata of the first chunk** (a few hundred bytes of memblock in
//!   Linux) is not charged, so the first chunk costs exactly its units.
//!   Memcg accounting (`obj_exts`) and allocation tags do not exist yet.
//! - No page first chunk (`percpu_alloc=page`) and no 32-bit paths. The
//!   TLB flush after depopulation has nothing to flush: kernel accesses go
//!   through the page tables directly.
//! - A pointer that no live area starts at is reported in the kernel log
//!   and ignored by `free_percpu` (Linux would corrupt its maps).
//!
//! # Locking
//!
//! As Linux: `pcpu_alloc_mutex` ([`PercpuState`]'s `alloc_mutex`) serializes
//! chunk creation and destruction and [de]population, and is held across a
//! whole sleeping allocation and the balance work; `pcpu_lock` (the
//! `lock` around the chunks, slots and counters) guards every map and list
//! and is dropped around anything that allocates memory or edits page
//! tables. `free_percpu` takes only `pcpu_lock`, as Linux's does from
//! atomic context. Order: `pcpu_alloc_mutex` -> `pcpu_lock`; page, slab and
//! `vmap_area_lock` are taken with `pcpu_lock` released.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::arch::x86_64::pgtable::{bits as pte, mk_entry};
use crate::arch::x86_64::{phys_to_virt, virt_to_phys, VMALLOC_END, VMALLOC_START};
use crate::gfp::Gfp;
use crate::hal::PhysMem;
use crate::kernel::Kernel;
use crate::memblock::{Memblock, MemblockAllocError};
use crate::types::{align_up, Pfn, PhysAddr, VirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::vmalloc::vm_flags;

mod chunk;
use chunk::*;

/// log2 of the allocation granule (`PCPU_MIN_ALLOC_SHIFT`).
pub const PCPU_MIN_ALLOC_SHIFT: u32 = 2;
/// The allocation granule: every area is a multiple of 4 bytes (`PCPU_MIN_ALLOC_SIZE`).
pub const PCPU_MIN_ALLOC_SIZE: u64 = 1 << PCPU_MIN_ALLOC_SHIFT;
/// Smallest unit, and the largest allocation accepted (`PCPU_MIN_UNIT_SIZE`).
pub const PCPU_MIN_UNIT_SIZE: u64 = 32 << 10;
/// Room kept in the first chunk for module static per-cpu variables
/// (`PERCPU_MODULE_RESERVE`, which x86-64 uses as `PERCPU_FIRST_CHUNK_RESERVE`).
pub const PERCPU_MODULE_RESERVE: u64 = 8 << 10;
/// Least dynamic room in the first chunk (`PERCPU_DYNAMIC_EARLY_SIZE`).
pub const PERCPU_DYNAMIC_EARLY_SIZE: u64 = 20 << 10;
/// Dynamic room x86-64 asks for in the first chunk (`PERCPU_DYNAMIC_RESERVE`,
/// 64-bit, without `CONFIG_RANDOM_KMALLOC_CACHES`).
pub const PERCPU_DYNAMIC_RESERVE: u64 = 28 << 10;
/// Size of the kernel image's static per-cpu section (`__per_cpu_end -
/// __per_cpu_start`): our stand-in for what an x86-64 distribution kernel
/// links (216 KiB), so the first chunk has Linux's familiar shape
/// `s221184 r8192 d28672`.
pub const PERCPU_STATIC_SIZE: u64 = 221_184;
/// Allocation atom of the first chunk on x86-64 (`PMD_SIZE`).
pub const PCPU_ATOM_SIZE: u64 = 2 << 20;

/// Allocation-map bits per page (`PCPU_BITMAP_BLOCK_BITS` with page-sized blocks).
const BLOCK_BITS: usize = (PAGE_SIZE >> PCPU_MIN_ALLOC_SHIFT) as usize;
/// Slot of a size: its highest bit minus this, plus 2 (`PCPU_SLOT_BASE_SHIFT`).
const PCPU_SLOT_BASE_SHIFT: u32 = 5;
/// Chunks in slots below this that fail a request are moved to slot 0.
const PCPU_SLOT_FAIL_THRESHOLD: usize = 3;
/// Balance work starts when fewer empty populated pages remain.
const PCPU_EMPTY_POP_PAGES_LOW: i64 = 2;
/// Balance work populates up to this many empty pages.
const PCPU_EMPTY_POP_PAGES_HIGH: i64 = 4;
/// Lowest address the first chunk is placed at (`__pa(MAX_DMA_ADDRESS)`).
const PCPU_FC_GOAL: u64 = 16 << 20;
/// `sizeof(struct pcpu_chunk)` on x86-64 without memcg: a cache-line
/// aligned member rounds it to two lines.
const PCPU_CHUNK_STRUCT_SIZE: u64 = 128;
/// `sizeof(struct pcpu_block_md)`: eight ints.
const PCPU_BLOCK_MD_SIZE: u64 = 32;
/// How many failed-allocation warnings are printed (`warn_limit`).
const PCPU_WARN_LIMIT: u32 = 10;

/// A per-cpu pointer (Linux's `void __percpu *`).
///
/// As on x86-64, where the static per-cpu section is linked at address 0,
/// the value is an offset from the first chunk's base (`pcpu_base_addr`):
/// static variables and the first chunk's areas have small values, areas
/// of vmalloc-backed chunks large ones. [`Kernel::per_cpu_ptr`] adds a
/// CPU's offset to get that CPU's copy. Zero is the null pointer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PercpuPtr(pub u64);

impl PercpuPtr {
    /// The null per-cpu pointer, which `free_percpu` ignores.
    pub const NULL: PercpuPtr = PercpuPtr(0);
}

/// One group of units (`struct pcpu_group_info`): the CPUs of one node.
#[derive(Clone, Debug)]
pub struct PcpuGroup {
    /// Offset of the group's first unit from the first chunk's base.
    pub base_offset: u64,
    /// Units in the group, padding included.
    pub nr_units: usize,
    /// The CPU of each unit, `None` for a padding unit.
    pub cpu_map: Vec<Option<usize>>,
    /// Physical address of the group's memblock allocation.
    pub phys: PhysAddr,
}

/// Allocation counters (`/sys/kernel/debug/percpu_stats`'s global part).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcpuCounters {
    /// Allocations made.
    pub nr_alloc: u64,
    /// Areas freed.
    pub nr_dealloc: u64,
    /// Areas live now.
    pub nr_cur_alloc: u64,
    /// Most areas live at once.
    pub nr_max_alloc: u64,
    /// Chunks now, the first chunk included.
    pub nr_chunks: u64,
    /// Most chunks at once.
    pub nr_max_chunks: u64,
    /// Smallest allocation (bytes, after rounding), 0 before any.
    pub min_alloc_size: u64,
    /// Largest allocation.
    pub max_alloc_size: u64,
}

/// The state of one chunk, as [`Kernel::percpu_stats`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkStats {
    /// Address of offset 0 of the chunk in the unit-0 address space.
    pub base_addr: VirtAddr,
    /// The dynamic part of the first chunk.
    pub first: bool,
    /// The reserved part of the first chunk.
    pub reserved: bool,
    /// Pages per unit the chunk serves.
    pub nr_pages: usize,
    /// Of those, pages populated.
    pub nr_populated: usize,
    /// Populated pages with nothing allocated in them.
    pub nr_empty_pop_pages: usize,
    /// Free bytes per unit.
    pub free_bytes: u64,
    /// Largest free area, bytes.
    pub contig_bytes: u64,
    /// Taken out of the active slots by reclaim.
    pub isolated: bool,
    /// The slot list the chunk is on (`None` for the reserved chunk).
    pub slot: Option<usize>,
}

/// A snapshot of the allocator (Linux's `percpu_stats` debugfs file plus
/// the populated-page count).
#[derive(Clone, Debug)]
pub struct PercpuStats {
    /// The counters.
    pub counters: PcpuCounters,
    /// Empty populated pages outside the reserved and isolated chunks
    /// (`pcpu_nr_empty_pop_pages`).
    pub empty_pop_pages: i64,
    /// Populated pages per unit, over all chunks (`pcpu_nr_populated`).
    pub nr_populated: u64,
    /// Every chunk, the reserved and first chunks first.
    pub chunks: Vec<ChunkStats>,
}

/// What kind of chunk, and what it owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkKind {
    /// The reserved part of the first chunk (`pcpu_reserved_chunk`).
    Reserved,
    /// The dynamic part of the first chunk (`pcpu_first_chunk`).
    First,
    /// A chunk in the vmalloc area: its area and its metadata objects
    /// (chunk struct, allocation map, boundary map, block array).
    Vm { area: VirtAddr, meta: [VirtAddr; 4] },
}

/// The per-cpu allocator's state (Linux's `pcpu_*` globals).
pub struct PercpuState {
    static_size: u64,
    reserved_size: u64,
    dyn_size: u64,
    unit_size: u64,
    unit_pages: usize,
    atom_size: u64,
    alloc_size: u64,
    nr_units: usize,
    groups: Vec<PcpuGroup>,
    /// CPU -> unit number (`pcpu_unit_map`).
    unit_map: Vec<usize>,
    /// CPU -> offset of its unit in the first chunk (`pcpu_unit_offsets`).
    first_unit_off: Vec<u64>,
    /// CPU -> offset of its unit in a vmalloc chunk.
    vm_unit_off: Vec<u64>,
    /// Possible CPU -> node.
    cpu_to_node: Vec<usize>,
    /// `pcpu_base_addr`: the direct-map address of the lowest group.
    base_addr: u64,
    sidelined_slot: usize,
    free_slot: usize,
    to_depopulate_slot: usize,
    /// `pcpu_alloc_mutex`.
    alloc_mutex: spin::Mutex<()>,
    /// `pcpu_lock` with what it guards.
    lock: spin::Mutex<PcpuInner>,
    /// `pcpu_nr_populated`: populated pages per unit, over all chunks.
    nr_populated: AtomicU64,
}

/// A failure to lay out the first chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PercpuInitError {
    /// memblock had no room for a group's units.
    NoMemory(MemblockAllocError),
}

impl PercpuState {
    /// Lays out and reserves the first chunk (x86-64's `setup_per_cpu_areas`
    /// calling `pcpu_embed_first_chunk`, then `pcpu_setup_first_chunk`).
    ///
    /// Must run before `memblock_free_all`: each node's group of units is
    /// one memblock allocation on that node (2 MiB aligned, above 16 MiB
    /// when possible); padding units and the tail of every unit past
    /// static + reserved + dynamic go back to memblock. The static part of
    /// each unit gets the image's initial values (zeros here).
    pub fn embed_first_chunk(
        mb: &mut Memblock,
        mem: &PhysMem,
        cpu_to_node: &[usize],
    ) -> Result<PercpuState, PercpuInitError> {
        let nr_cpus = cpu_to_node.len();
        let static_size = PERCPU_STATIC_SIZE;
        let reserved_size = PERCPU_MODULE_RESERVE;
        let atom_size = PCPU_ATOM_SIZE;

        // pcpu_build_alloc_info: size_sum, the units per atom, the groups.
        let size_sum =
            align_up(static_size + reserved_size + PERCPU_DYNAMIC_RESERVE.max(PERCPU_DYNAMIC_EARLY_SIZE), PAGE_SIZE);
        let dyn_size = size_sum - static_size - reserved_size;
        let min_unit_size = size_sum.max(PCPU_MIN_UNIT_SIZE);
        let alloc_size = align_up(min_unit_size, atom_size);
        let fits = |upa: u64| alloc_size.is_multiple_of(upa) && (alloc_size / upa).is_multiple_of(PAGE_SIZE);
        let mut max_upa = alloc_size / min_unit_size;
        while !fits(max_upa) {
            max_upa -= 1;
        }
        // CPUs at LOCAL_DISTANCE both ways share a group; x86 measures
        // distance by node, so a group is a node's CPUs.
        let mut group_of = vec![usize::MAX; nr_cpus];
        let mut group_cnt: Vec<u64> = Vec::new();
        for cpu in 0..nr_cpus {
            if group_of[cpu] != usize::MAX {
                continue;
            }
            let g = group_cnt.len();
            group_cnt.push(0);
            for t in cpu..nr_cpus {
                if group_of[t] == usize::MAX && cpu_to_node[t] == cpu_to_node[cpu] {
                    group_of[t] = g;
                    group_cnt[g] += 1;
                }
            }
        }
        // Fewest allocations, as long as no more than a third of the
        // units are padding.
        let mut best_upa = 0;
        let mut last_allocs = u64::MAX;
        for upa in (1..=max_upa).rev() {
            if !fits(upa) {
                continue;
            }
            let allocs: u64 = group_cnt.iter().map(|&c| c.div_ceil(upa)).sum();
            let wasted: u64 = group_cnt.iter().map(|&c| c.div_ceil(upa) * upa - c).sum();
            if wasted > nr_cpus as u64 / 3 {
                continue;
            }
            if allocs > last_allocs {
                break;
            }
            last_allocs = allocs;
            best_upa = upa;
        }
        let upa = best_upa.max(1);
        let unit_size = alloc_size / upa;
        let mut groups: Vec<PcpuGroup> = Vec::with_capacity(group_cnt.len());
        let mut unit = 0;
        for (g, &cnt) in group_cnt.iter().enumerate() {
            let nr_units = (cnt.div_ceil(upa) * upa) as usize;
            let mut cpu_map: Vec<Option<usize>> = (0..nr_cpus).filter(|&c| group_of[c] == g).map(Some).collect();
            cpu_map.resize(nr_units, None);
            groups.push(PcpuGroup { base_offset: unit as u64 * unit_size, nr_units, cpu_map, phys: PhysAddr(0) });
            unit += nr_units;
        }
        let nr_units = unit;

        // pcpu_embed_first_chunk: one node-local allocation per group.
        for gi in 0..groups.len() {
            let cpu = groups[gi].cpu_map.iter().flatten().next().copied().unwrap_or(0);
            let nid = cpu_to_node.get(cpu).map_or(crate::memblock::NO_NODE, |&n| n as u32);
            let size = groups[gi].nr_units as u64 * unit_size;
            let got = mb
                .alloc_range_nid(size, atom_size, PCPU_FC_GOAL, u64::MAX, nid)
                .or_else(|_| mb.alloc_range_nid(size, atom_size, 0, u64::MAX, nid));
            match got {
                Ok(pa) => groups[gi].phys = pa,
                Err(e) => {
                    for g in &groups[..gi] {
                        mb.free(g.phys, g.nr_units as u64 * unit_size);
                    }
                    return Err(PercpuInitError::NoMemory(e));
                }
            }
        }
        let base_phys = groups.iter().map(|g| g.phys.0).min().unwrap_or(0);
        // Copy the static image into used units, give back the rest.
        for g in &mut groups {
            for (i, cpu) in g.cpu_map.iter().enumerate() {
                let unit_pa = g.phys.0 + i as u64 * unit_size;
                if cpu.is_none() {
                    mb.free(PhysAddr(unit_pa), unit_size);
                    continue;
                }
                mem.fill(PhysAddr(unit_pa), static_size, 0);
                if unit_size > size_sum {
                    mb.free(PhysAddr(unit_pa + size_sum), unit_size - size_sum);
                }
            }
            g.base_offset = g.phys.0 - base_phys;
        }

        // pcpu_setup_first_chunk: unit maps, slots, the two first chunks.
        let mut unit_map = vec![0; nr_cpus];
        let mut first_unit_off = vec![0; nr_cpus];
        let mut unit = 0;
        for g in &groups {
            for (i, cpu) in g.cpu_map.iter().enumerate() {
                if let Some(c) = *cpu {
                    unit_map[c] = unit + i;
                    first_unit_off[c] = g.base_offset + i as u64 * unit_size;
                }
            }
            unit += g.nr_units;
        }
        let vm_unit_off = unit_map.iter().map(|&u| u as u64 * unit_size).collect();
        let sidelined_slot = size_to_slot_raw(unit_size) + 1;
        let free_slot = sidelined_slot + 1;
        let to_depopulate_slot = free_slot + 1;
        let base_addr = phys_to_virt(PhysAddr(base_phys)).0;
        let st_static = align_up(static_size, PCPU_MIN_ALLOC_SIZE);
        let st_dyn = dyn_size - (st_static - static_size);
        let mut inner = PcpuInner {
            chunks: Vec::new(),
            slots: vec![Vec::new(); to_depopulate_slot + 1],
            reserved: None,
            first: 0,
            nr_empty_pop_pages: 0,
            balance_pending: false,
            atomic_alloc_failed: false,
            warn_limit: PCPU_WARN_LIMIT,
            counters: PcpuCounters { nr_chunks: 1, nr_max_chunks: 1, ..Default::default() },
        };
        if reserved_size > 0 {
            let c = first_chunk(ChunkKind::Reserved, base_addr + st_static, reserved_size);
            inner.reserved = Some(inner.insert(c));
        }
        let first = inner.insert(first_chunk(ChunkKind::First, base_addr + st_static + reserved_size, st_dyn));
        inner.first = first;
        inner.nr_empty_pop_pages = inner.chunk(first).nr_empty_pop_pages as i64;
        let st = PercpuState {
            static_size,
            reserved_size,
            dyn_size,
            unit_size,
            unit_pages: (unit_size >> PAGE_SHIFT) as usize,
            atom_size,
            alloc_size,
            nr_units,
            groups,
            unit_map,
            first_unit_off,
            vm_unit_off,
            cpu_to_node: cpu_to_node.to_vec(),
            base_addr,
            sidelined_slot,
            free_slot,
            to_depopulate_slot,
            alloc_mutex: spin::Mutex::new(()),
            lock: spin::Mutex::new(inner),
            nr_populated: AtomicU64::new(size_sum >> PAGE_SHIFT),
        };
        {
            let mut g = st.lock.lock();
            g.relocate(&st, first, None);
        }
        Ok(st)
    }

    /// Bytes of the static area (`ai->static_size`).
    pub fn static_size(&self) -> u64 {
        self.static_size
    }
    /// Bytes of the reserved area (`ai->reserved_size`).
    pub fn reserved_size(&self) -> u64 {
        self.reserved_size
    }
    /// Bytes of the first chunk's dynamic area (`ai->dyn_size`).
    pub fn dyn_size(&self) -> u64 {
        self.dyn_size
    }
    /// static + reserved + dynamic: what each unit of the first chunk uses.
    pub fn size_sum(&self) -> u64 {
        self.static_size + self.reserved_size + self.dyn_size
    }
    /// Bytes per unit (`pcpu_unit_size`).
    pub fn unit_size(&self) -> u64 {
        self.unit_size
    }
    /// Units per chunk, padding units included (`pcpu_nr_units`).
    pub fn nr_units(&self) -> usize {
        self.nr_units
    }
    /// The unit of `cpu` (`pcpu_unit_map`): its index in every chunk.
    pub fn cpu_unit(&self, cpu: usize) -> usize {
        self.unit_map[cpu]
    }
    /// The unit groups of the first chunk.
    pub fn groups(&self) -> &[PcpuGroup] {
        &self.groups
    }
    /// `pcpu_base_addr`: where the first chunk starts, in the direct map.
    pub fn base_addr(&self) -> VirtAddr {
        VirtAddr(self.base_addr)
    }
    /// Physical address of `cpu`'s unit of the first chunk.
    pub fn first_unit_phys(&self, cpu: usize) -> PhysAddr {
        virt_to_phys(VirtAddr(self.base_addr + self.first_unit_off[cpu])).unwrap_or(PhysAddr(0))
    }
    /// `__per_cpu_offset[cpu]`: added to a first-chunk [`PercpuPtr`] it
    /// gives `cpu`'s copy.
    pub fn per_cpu_offset(&self, cpu: usize) -> u64 {
        self.base_addr + self.first_unit_off[cpu]
    }

    /// The kernel log lines boot prints for the first chunk: the
    /// `Embedded` summary and `pcpu_dump_alloc_info`'s table.
    pub fn first_chunk_report(&self) -> Vec<String> {
        let mut out = vec![format!(
            "percpu: Embedded {} pages/cpu s{} r{} d{} u{}",
            self.size_sum() >> PAGE_SHIFT,
            self.static_size,
            self.reserved_size,
            self.dyn_size,
            self.unit_size
        )];
        let digits = |mut v: usize| {
            let mut w = 1;
            while v >= 10 {
                v /= 10;
                w += 1;
            }
            w
        };
        let group_width = digits(self.groups.len());
        let cpu_width = digits(self.cpu_to_node.len());
        let empty: String = "--------".chars().take(cpu_width).collect();
        let upa = (self.alloc_size / self.unit_size) as usize;
        let width = upa * (cpu_width + 1) + group_width + 3;
        let apl = 1usize << (usize::BITS - 1 - (60 / width).max(1).leading_zeros());
        let mut line = format!(
            "pcpu-alloc: s{} r{} d{} u{} alloc={}*{}",
            self.static_size,
            self.reserved_size,
            self.dyn_size,
            self.unit_size,
            self.alloc_size / self.atom_size,
            self.atom_size
        );
        let mut alloc = 0;
        for (gi, g) in self.groups.iter().enumerate() {
            for chunk in g.cpu_map.chunks(upa) {
                if alloc % apl == 0 {
                    out.push(core::mem::replace(&mut line, String::from("pcpu-alloc: ")));
                }
                line.push_str(&format!("[{gi:0group_width$}] "));
                for cpu in chunk {
                    match cpu {
                        Some(c) => line.push_str(&format!("{c:0cpu_width$} ")),
                        None => line.push_str(&format!("{empty} ")),
                    }
                }
                alloc += 1;
            }
        }
        out.push(line);
        out
    }

    /// `pcpu_size_to_slot`.
    fn size_to_slot(&self, size: u64) -> usize {
        if size == self.unit_size {
            self.free_slot
        } else {
            size_to_slot_raw(size)
        }
    }

    /// `pcpu_chunk_slot`: by the chunk's largest free run.
    fn chunk_slot(&self, c: &Chunk) -> usize {
        if c.free_bytes < PCPU_MIN_ALLOC_SIZE || c.contig_hint == 0 {
            0
        } else {
            self.size_to_slot((c.contig_hint as u64) << PCPU_MIN_ALLOC_SHIFT)
        }
    }

    /// Offset of `cpu`'s unit in a chunk of this kind.
    fn unit_off(&self, kind: ChunkKind, cpu: usize) -> u64 {
        match kind {
            ChunkKind::Vm { .. } => self.vm_unit_off[cpu],
            _ => self.first_unit_off[cpu],
        }
    }
}

/// `__pcpu_size_to_slot`.
fn size_to_slot_raw(size: u64) -> usize {
    (fls(size) as i64 - PCPU_SLOT_BASE_SHIFT as i64 + 2).max(1) as usize
}

/// `pcpu_alloc_first_chunk`: a chunk serving `[tmp_addr, tmp_addr + map_size)`
/// of the first chunk, its page-aligned surroundings hidden as allocated.
fn first_chunk(kind: ChunkKind, tmp_addr: u64, map_size: u64) -> Chunk {
    let aligned = tmp_addr & !(PAGE_SIZE - 1);
    let start_offset = tmp_addr - aligned;
    let region_size = align_up(start_offset + map_size, PAGE_SIZE);
    let nr_pages = (region_size >> PAGE_SHIFT) as usize;
    let mut c = Chunk::new(kind, aligned, nr_pages);
    c.start_offset = start_offset;
    c.end_offset = region_size - start_offset - map_size;
    set_bits(&mut c.populated, 0, nr_pages);
    c.nr_populated = nr_pages;
    let mut empty = nr_pages;
    c.free_bytes = map_size;
    if start_offset > 0 {
        let bits = (start_offset >> PCPU_MIN_ALLOC_SHIFT) as usize;
        set_bits(&mut c.bound_map, 0, 1);
        set_bits(&mut c.bound_map, bits, 1);
        c.first_free = bits;
        empty -= c.mark_allocated(0, bits);
    }
    if c.end_offset > 0 {
        let bits = (c.end_offset >> PCPU_MIN_ALLOC_SHIFT) as usize;
        let region_bits = c.region_bits();
        set_bits(&mut c.bound_map, ((start_offset + map_size) >> PCPU_MIN_ALLOC_SHIFT) as usize, 1);
        set_bits(&mut c.bound_map, region_bits, 1);
        empty -= c.mark_allocated(region_bits - bits, bits);
    }
    c.nr_empty_pop_pages = empty;
    c
}

impl Kernel {
    /// Allocates `size` bytes aligned to `align` for every possible CPU
    /// (`__alloc_percpu`), zeroed. `None` for size 0, size above
    /// [`PCPU_MIN_UNIT_SIZE`], an alignment above a page or not a power
    /// of two (warned, as Linux does), or when memory runs out.
    pub fn alloc_percpu(&self, size: u64, align: u64) -> Option<PercpuPtr> {
        self.pcpu_alloc(size, align, false, Gfp::GFP_KERNEL)
    }

    /// `__alloc_percpu_gfp`: as [`Kernel::alloc_percpu`]; without
    /// `__GFP_DIRECT_RECLAIM` the allocation is atomic and only uses pages
    /// already populated, `__GFP_NOWARN` silences the warnings.
    pub fn alloc_percpu_gfp(&self, size: u64, align: u64, gfp: Gfp) -> Option<PercpuPtr> {
        self.pcpu_alloc(size, align, false, gfp)
    }

    /// `__alloc_reserved_percpu`: from the first chunk's reserved area
    /// (module static per-cpu data).
    pub fn alloc_reserved_percpu(&self, size: u64, align: u64) -> Option<PercpuPtr> {
        self.pcpu_alloc(size, align, true, Gfp::GFP_KERNEL)
    }

    /// Populated per-cpu pages over all units (`pcpu_nr_pages`), meminfo's `Percpu`.
    pub fn pcpu_nr_pages(&self) -> u64 {
        self.percpu.nr_populated.load(Relaxed) * self.percpu.nr_units as u64
    }

    /// `cpu`'s copy of the area `ptr` points at (`per_cpu_ptr`): a
    /// direct-map address for the first chunk (and static variables), a
    /// vmalloc address for later chunks.
    pub fn per_cpu_ptr(&self, ptr: PercpuPtr, cpu: usize) -> VirtAddr {
        let st = &self.percpu;
        let off = if ptr.0 < st.unit_size { st.first_unit_off[cpu] } else { st.vm_unit_off[cpu] };
        VirtAddr(st.base_addr.wrapping_add(ptr.0).wrapping_add(off))
    }

    /// The running CPU's copy (`this_cpu_ptr`).
    pub fn this_cpu_ptr(&self, ptr: PercpuPtr) -> VirtAddr {
        self.per_cpu_ptr(ptr, self.this_cpu())
    }

    /// The physical address behind a per-cpu copy's address (`per_cpu_ptr_to_phys`).
    pub fn per_cpu_ptr_to_phys(&self, addr: VirtAddr) -> Option<PhysAddr> {
        match virt_to_phys(addr) {
            Some(pa) => Some(pa),
            None => self.pgtable_translate(*self.vmalloc.root.get()?, addr),
        }
    }

    /// Reads `cpu`'s copy of `ptr` at its start into `buf`; false when the
    /// memory is not there (an unpopulated or bogus pointer).
    pub fn percpu_read(&self, ptr: PercpuPtr, cpu: usize, buf: &mut [u8]) -> bool {
        let va = self.per_cpu_ptr(ptr, cpu);
        self.pcpu_access(va, buf.len(), |pa, off, n| self.mem.read(pa, &mut buf[off..off + n]))
    }

    /// Writes `buf` to `cpu`'s copy of `ptr`; false when the memory is not there.
    pub fn percpu_write(&self, ptr: PercpuPtr, cpu: usize, buf: &[u8]) -> bool {
        let va = self.per_cpu_ptr(ptr, cpu);
        self.pcpu_access(va, buf.len(), |pa, off, n| self.mem.write(pa, &buf[off..off + n]))
    }

    /// A snapshot of the allocator's counters and chunks.
    pub fn percpu_stats(&self) -> PercpuStats {
        let g = self.percpu.lock.lock();
        let mut chunks: Vec<ChunkStats> = Vec::new();
        if let Some(r) = g.reserved {
            chunks.push(g.chunk(r).stats());
        }
        chunks.push(g.chunk(g.first).stats());
        for (id, c) in g.chunks.iter().enumerate() {
            if let Some(c) = c {
                if id != g.first && Some(id) != g.reserved {
                    chunks.push(c.stats());
                }
            }
        }
        PercpuStats {
            counters: g.counters,
            empty_pop_pages: g.nr_empty_pop_pages,
            nr_populated: self.percpu.nr_populated.load(Relaxed),
            chunks,
        }
    }

    /// Frees a per-cpu area (`free_percpu`). The null pointer is ignored; a
    /// pointer at which no area starts is reported and ignored. A chunk
    /// left entirely free next to another free one, or with many empty
    /// pages, wakes the balance work.
    pub fn free_percpu(&self, ptr: PercpuPtr) {
        if ptr == PercpuPtr::NULL {
            return;
        }
        let st = &self.percpu;
        let addr = st.base_addr.wrapping_add(ptr.0);
        let need_balance = {
            let mut g = st.lock.lock();
            let found = self.pcpu_chunk_addr_search(&g, addr).and_then(|id| {
                let c = g.chunk(id);
                let off = addr - c.base_addr;
                (off.is_multiple_of(PCPU_MIN_ALLOC_SIZE) && c.area_at((off >> PCPU_MIN_ALLOC_SHIFT) as usize).is_some())
                    .then_some((id, off))
            });
            let Some((id, off)) = found else {
                drop(g);
                self.log.warn(format_args!("percpu: free_percpu: no percpu area at {:#x}, ignored", ptr.0));
                return;
            };
            g.free_area(st, id, off);
            let c = g.chunk(id);
            if !c.isolated && c.free_bytes == st.unit_size {
                g.slots[st.free_slot].iter().any(|&x| x != id)
            } else if g.should_reclaim(id) {
                g.isolate(st, id);
                true
            } else {
                false
            }
        };
        if need_balance {
            self.pcpu_balance_workfn();
        }
    }

    /// `pcpu_chunk_addr_search`: the chunk serving unit-0 address `addr`.
    /// The first chunks by range; others through the page that backs the
    /// running CPU's copy, whose `private` names the chunk.
    fn pcpu_chunk_addr_search(&self, g: &PcpuInner, addr: u64) -> Option<usize> {
        let in_chunk = |id: usize| {
            let c = g.chunk(id);
            addr >= c.base_addr + c.start_offset
                && addr < c.base_addr + ((c.nr_pages as u64) << PAGE_SHIFT) - c.end_offset
        };
        if in_chunk(g.first) {
            return Some(g.first);
        }
        if let Some(r) = g.reserved.filter(|&r| in_chunk(r)) {
            return Some(r);
        }
        let va = addr.checked_add(self.percpu.vm_unit_off[self.this_cpu()])?;
        if !(VMALLOC_START..=VMALLOC_END).contains(&va) {
            return None;
        }
        let pfn = self.vmalloc_to_pfn(VirtAddr(va))?;
        if !self.memmap.pfn_valid(pfn) {
            return None;
        }
        let id = (self.memmap.page(pfn).private.load(Relaxed) as usize).checked_sub(1)?;
        let c = g.chunks.get(id)?.as_ref()?;
        let ChunkKind::Vm { .. } = c.kind else { return None };
        let span = (c.nr_pages as u64) << PAGE_SHIFT;
        (addr >= c.base_addr && addr < c.base_addr + span).then_some(id)
    }

    /// The allocator (`pcpu_alloc`).
    fn pcpu_alloc(&self, size: u64, align: u64, reserved: bool, gfp: Gfp) -> Option<PercpuPtr> {
        let st = &self.percpu;
        let is_atomic = !gfp.contains(Gfp::DIRECT_RECLAIM);
        let do_warn = !gfp.contains(Gfp::NOWARN);
        let pcpu_gfp = gfp & Gfp(Gfp::GFP_KERNEL.0 | Gfp::NORETRY.0 | Gfp::NOWARN.0);
        let align = align.max(PCPU_MIN_ALLOC_SIZE);
        let size = if size <= PCPU_MIN_UNIT_SIZE { align_up(size, PCPU_MIN_ALLOC_SIZE) } else { size };
        if size == 0 || size > PCPU_MIN_UNIT_SIZE || align > PAGE_SIZE || !align.is_power_of_two() {
            if do_warn {
                self.log.warn(format_args!("percpu: illegal size ({size}) or align ({align}) for percpu allocation"));
            }
            return None;
        }
        let bits = (size >> PCPU_MIN_ALLOC_SHIFT) as usize;
        let bit_align = (align >> PCPU_MIN_ALLOC_SHIFT) as usize;

        let mutex = if is_atomic { None } else { Some(st.alloc_mutex.lock()) };
        let mut g = st.lock.lock();
        let found: Result<(usize, u64), &'static str> = 'search: {
            if let Some(rid) = g.reserved.filter(|_| reserved) {
                break 'search match g.chunk(rid).find_fit(bits, bit_align, is_atomic) {
                    Some(bit_off) => Ok((rid, g.alloc_area(st, rid, bits, bit_off))),
                    None => Err("alloc from reserved chunk failed"),
                };
            }
            // A fresh chunk fits any request, so two rounds always settle it.
            for _round in 0..3 {
                for slot in st.size_to_slot(size)..=st.free_slot {
                    let ids = g.slots[slot].clone();
                    for id in ids {
                        match g.chunk(id).find_fit(bits, bit_align, is_atomic) {
                            Some(bit_off) => {
                                let off = g.alloc_area(st, id, bits, bit_off);
                                g.reintegrate(st, id);
                                break 'search Ok((id, off));
                            }
                            None if slot < PCPU_SLOT_FAIL_THRESHOLD => g.move_chunk(id, 0, true),
                            None => {}
                        }
                    }
                }
                if is_atomic {
                    break 'search Err("atomic alloc failed, no space left");
                }
                // No space left: create a chunk unless a free one exists.
                if g.slots[st.free_slot].is_empty() {
                    drop(g);
                    let chunk = self.pcpu_create_chunk(pcpu_gfp);
                    g = st.lock.lock();
                    let Some(chunk) = chunk else { break 'search Err("failed to allocate new chunk") };
                    let id = g.insert(chunk);
                    g.relocate(st, id, None);
                    g.counters.nr_chunks += 1;
                    g.counters.nr_max_chunks = g.counters.nr_max_chunks.max(g.counters.nr_chunks);
                }
            }
            Err("failed to allocate new chunk")
        };
        let (id, off) = match found {
            Ok(v) => v,
            Err(err) => {
                drop(g);
                drop(mutex);
                self.pcpu_alloc_failed(size, align, is_atomic, do_warn, err);
                return None;
            }
        };

        // area_found: counters, and balance when empty pages run low
        // (counting the pages this area takes before they are populated).
        let c = g.chunk(id);
        let (kind, base) = (c.kind, c.base_addr);
        debug_assert!(c.nr_populated == c.nr_pages || !c.immutable(), "the first chunks are always populated");
        let (ps, pe) = ((off >> PAGE_SHIFT) as usize, ((off + size).div_ceil(PAGE_SIZE)) as usize);
        let unpopulated = bit_ranges(&c.populated, ps, pe, false);
        let pending: usize = unpopulated.iter().map(|(s, e)| e - s).sum();
        let k = &mut g.counters;
        k.nr_alloc += 1;
        k.nr_cur_alloc += 1;
        k.nr_max_alloc = k.nr_max_alloc.max(k.nr_cur_alloc);
        k.min_alloc_size = if k.min_alloc_size == 0 { size } else { k.min_alloc_size.min(size) };
        k.max_alloc_size = k.max_alloc_size.max(size);
        if g.nr_empty_pop_pages - (pending as i64) < PCPU_EMPTY_POP_PAGES_LOW {
            g.balance_pending = true;
        }
        drop(g);

        // Populate what is not there yet.
        if !is_atomic {
            for (rs, re) in unpopulated {
                let ok = self.pcpu_populate_chunk(id, base, rs, re, pcpu_gfp);
                let mut g = st.lock.lock();
                if !ok {
                    g.free_area(st, id, off);
                    drop(g);
                    drop(mutex);
                    self.pcpu_alloc_failed(size, align, is_atomic, do_warn, "failed to populate");
                    return None;
                }
                g.chunk_populated(st, id, rs, re);
            }
            drop(mutex);
        }
        // Clear every CPU's copy.
        for cpu in 0..self.nr_cpus {
            let va = VirtAddr(base + st.unit_off(kind, cpu) + off);
            self.pcpu_access(va, size as usize, |pa, _, n| self.mem.fill(pa, n as u64, 0));
        }
        self.pcpu_run_pending_balance();
        Some(PercpuPtr((base + off).wrapping_sub(st.base_addr)))
    }

    /// The failure tail of `pcpu_alloc`: a limited warning, and for atomic
    /// requests a balance run that populates the maximum.
    fn pcpu_alloc_failed(&self, size: u64, align: u64, is_atomic: bool, do_warn: bool, err: &str) {
        let mut g = self.percpu.lock.lock();
        if do_warn && g.warn_limit > 0 {
            self.log.warn(format_args!(
                "percpu: allocation failed, size={size} align={align} atomic={}, {err}",
                is_atomic as u8
            ));
            g.warn_limit -= 1;
            if g.warn_limit == 0 {
                self.log.info(format_args!("percpu: limit reached, disable warning"));
            }
        }
        if is_atomic {
            g.atomic_alloc_failed = true;
            g.balance_pending = true;
        }
        drop(g);
        self.pcpu_run_pending_balance();
    }

    /// Runs the balance work if someone scheduled it.
    fn pcpu_run_pending_balance(&self) {
        if self.percpu.lock.lock().balance_pending {
            self.pcpu_balance_workfn();
        }
    }

    /// Reads or writes `len` bytes of per-cpu memory at `va` through `f(pa,
    /// offset, n)`: one piece in the direct map, page by page in vmalloc.
    fn pcpu_access(&self, va: VirtAddr, len: usize, mut f: impl FnMut(PhysAddr, usize, usize)) -> bool {
        if let Some(pa) = virt_to_phys(va) {
            if pa.0.checked_add(len as u64).is_none_or(|e| e > self.mem.size()) {
                return false;
            }
            f(pa, 0, len);
            return true;
        }
        let Some(&root) = self.vmalloc.root.get() else { return false };
        let mut pieces = Vec::new();
        let mut off = 0;
        while off < len {
            let a = VirtAddr(va.0.wrapping_add(off as u64));
            let Some(pa) = self.pgtable_translate(root, a) else { return false };
            let n = ((PAGE_SIZE - (a.0 & (PAGE_SIZE - 1))) as usize).min(len - off);
            pieces.push((pa, off, n));
            off += n;
        }
        for (pa, o, n) in pieces {
            f(pa, o, n);
        }
        true
    }

    /// `pcpu_mem_zalloc`: kzalloc up to a page, vzalloc above.
    fn pcpu_mem_zalloc(&self, size: u64, gfp: Gfp) -> Option<VirtAddr> {
        if size <= PAGE_SIZE {
            self.kzalloc(size, gfp)
        } else {
            self.vmalloc_node(size, gfp | Gfp::ZERO, usize::MAX, "pcpu_mem_zalloc")
        }
    }

    /// `pcpu_mem_free` (`kvfree`).
    fn pcpu_mem_free(&self, va: VirtAddr) {
        if (VMALLOC_START..=VMALLOC_END).contains(&va.0) {
            self.vfree(va);
        } else {
            self.kfree(va);
        }
    }

    /// `pcpu_create_chunk`: the metadata (`pcpu_alloc_chunk`), then an
    /// unmapped vmalloc range of `nr_units * unit_size`.
    fn pcpu_create_chunk(&self, gfp: Gfp) -> Option<Chunk> {
        let st = &self.percpu;
        let root = *self.vmalloc.root.get()?;
        let region_bits = (st.unit_pages * BLOCK_BITS) as u64;
        let sizes = [
            PCPU_CHUNK_STRUCT_SIZE + (st.unit_pages as u64).div_ceil(64) * 8,
            region_bits.div_ceil(64) * 8,
            (region_bits + 1).div_ceil(64) * 8,
            st.unit_pages as u64 * PCPU_BLOCK_MD_SIZE,
        ];
        let mut meta = [VirtAddr(0); 4];
        let free_meta = |meta: &[VirtAddr]| meta.iter().rev().filter(|v| v.0 != 0).for_each(|&v| self.pcpu_mem_free(v));
        for (i, &s) in sizes.iter().enumerate() {
            match self.pcpu_mem_zalloc(s, gfp) {
                Some(v) => meta[i] = v,
                None => {
                    free_meta(&meta);
                    return None;
                }
            }
        }
        let nr = st.nr_units * st.unit_pages;
        // Take the range with a placeholder mapping, then unmap it: the
        // pages come one by one as the chunk is populated.
        let Some(area) = self.vmap(&vec![Pfn(0); nr], vm_flags::NO_GUARD) else {
            free_meta(&meta);
            return None;
        };
        {
            let _vmap_area_lock = self.vmalloc.areas.lock();
            let mut placeholders = Vec::new();
            self.pgtable_clear_range(root, area, VirtAddr(area.0 + ((nr as u64) << PAGE_SHIFT)), &mut placeholders);
        }
        Some(Chunk::new(ChunkKind::Vm { area, meta }, area.0, st.unit_pages))
    }

    /// `pcpu_destroy_chunk`: releases the area and the metadata of a chunk
    /// that is already depopulated.
    fn pcpu_destroy_chunk(&self, c: Chunk) {
        if let ChunkKind::Vm { area, meta } = c.kind {
            self.vunmap(area);
            for &m in meta.iter().rev() {
                self.pcpu_mem_free(m);
            }
        }
    }

    /// `pcpu_populate_chunk`: pages `[rs, re)` of every possible CPU's unit,
    /// each from that CPU's node, mapped and tagged with the chunk. All or
    /// nothing.
    fn pcpu_populate_chunk(&self, id: usize, base: u64, rs: usize, re: usize, gfp: Gfp) -> bool {
        let st = &self.percpu;
        let Some(&root) = self.vmalloc.root.get() else { return false };
        let mut pages: Vec<(u64, Pfn)> = Vec::with_capacity(self.nr_cpus * (re - rs));
        for cpu in 0..self.nr_cpus {
            for i in rs..re {
                let va = base + st.vm_unit_off[cpu] + ((i as u64) << PAGE_SHIFT);
                match self.alloc_pages_node(st.cpu_to_node[cpu], gfp | Gfp::HIGHMEM, 0) {
                    Some(p) => pages.push((va, p)),
                    None => {
                        pages.iter().for_each(|&(_, p)| self.free_pages(p, 0));
                        return false;
                    }
                }
            }
        }
        let a = self.vmalloc.areas.lock();
        for (n, &(va, p)) in pages.iter().enumerate() {
            match self.pte_alloc(root, VirtAddr(va), pte::KERNPG_TABLE) {
                Ok(e) => e.store(mk_entry(p, pte::PAGE_KERNEL), Relaxed),
                Err(_) => {
                    let mut out = Vec::new();
                    for &(v, _) in &pages[..n] {
                        self.pgtable_clear_range(root, VirtAddr(v), VirtAddr(v + PAGE_SIZE), &mut out);
                    }
                    drop(a);
                    pages.iter().for_each(|&(_, p)| self.free_pages(p, 0));
                    return false;
                }
            }
        }
        drop(a);
        for &(_, p) in &pages {
            self.memmap.page(p).private.store(id as u64 + 1, Relaxed);
        }
        true
    }

    /// `pcpu_depopulate_chunk`: unmaps pages `[rs, re)` of every unit and
    /// frees them.
    fn pcpu_depopulate_chunk(&self, base: u64, rs: usize, re: usize) {
        let st = &self.percpu;
        let Some(&root) = self.vmalloc.root.get() else { return };
        let mut out = Vec::new();
        {
            let _vmap_area_lock = self.vmalloc.areas.lock();
            for cpu in 0..self.nr_cpus {
                let s = base + st.vm_unit_off[cpu] + ((rs as u64) << PAGE_SHIFT);
                let e = base + st.vm_unit_off[cpu] + ((re as u64) << PAGE_SHIFT);
                self.pgtable_clear_range(root, VirtAddr(s), VirtAddr(e), &mut out);
            }
        }
        for p in out {
            self.memmap.page(p).private.store(0, Relaxed);
            self.free_pages(p, 0);
        }
    }

    /// Runs the balance work now, as a pass of the workqueue would
    /// (`pcpu_balance_workfn`). Allocation and free run it themselves when
    /// Linux would schedule it; one run can leave a second entirely free
    /// chunk that still has populated pages (Linux spares it until the next
    /// run), which a further run destroys.
    pub fn pcpu_balance_work(&self) {
        self.pcpu_balance_workfn();
    }

    /// `pcpu_balance_workfn`: free chunks, then depopulation of isolated
    /// chunks, then the empty-page reserve, then free chunks again.
    fn pcpu_balance_workfn(&self) {
        let _mutex = self.percpu.alloc_mutex.lock();
        self.percpu.lock.lock().balance_pending = false;
        self.pcpu_balance_free(false);
        self.pcpu_reclaim_populated();
        self.pcpu_balance_populated();
        self.pcpu_balance_free(true);
    }

    /// `pcpu_balance_free`: destroys every entirely free chunk but the
    /// first on the free list; with `empty_only`, only those without
    /// empty populated pages.
    fn pcpu_balance_free(&self, empty_only: bool) {
        let st = &self.percpu;
        let victims: Vec<usize> = {
            let mut g = st.lock.lock();
            let list = g.slots[st.free_slot].clone();
            let picked: Vec<usize> =
                list.iter().skip(1).copied().filter(|&id| !empty_only || g.chunk(id).nr_empty_pop_pages == 0).collect();
            picked.iter().for_each(|&id| g.unlink(id));
            picked
        };
        for id in victims {
            let (base, ranges) = {
                let g = st.lock.lock();
                let c = g.chunk(id);
                (c.base_addr, bit_ranges(&c.populated, 0, c.nr_pages, true))
            };
            for (rs, re) in ranges {
                self.pcpu_depopulate_chunk(base, rs, re);
                st.lock.lock().chunk_depopulated(st, id, rs, re);
            }
            let chunk = {
                let mut g = st.lock.lock();
                g.counters.nr_chunks -= 1;
                g.chunks[id].take()
            };
            if let Some(c) = chunk {
                self.pcpu_destroy_chunk(c);
            }
        }
    }

    /// `pcpu_reclaim_populated`: gives back the empty pages of isolated
    /// chunks, last page first, while enough empty pages remain elsewhere;
    /// then the chunk returns to the slots or waits on the sidelined list.
    fn pcpu_reclaim_populated(&self) {
        let st = &self.percpu;
        loop {
            let (id, nr_pages, base) = {
                let g = st.lock.lock();
                let Some(&id) = g.slots[st.to_depopulate_slot].first() else { return };
                let c = g.chunk(id);
                (id, c.nr_pages, c.base_addr)
            };
            let mut reintegrate = false;
            let mut i = nr_pages as i64 - 1;
            let mut end = -1i64;
            while i >= 0 {
                let empty_pop = {
                    let g = st.lock.lock();
                    let c = g.chunk(id);
                    if c.nr_empty_pop_pages == 0 {
                        break;
                    }
                    if g.nr_empty_pop_pages < PCPU_EMPTY_POP_PAGES_HIGH {
                        reintegrate = true;
                        break;
                    }
                    c.page_used[i as usize] == 0 && c.is_populated(i as usize)
                };
                if empty_pop {
                    if end == -1 {
                        end = i;
                    }
                    if i > 0 {
                        i -= 1;
                        continue;
                    }
                    i -= 1;
                }
                if end == -1 {
                    i -= 1;
                    continue;
                }
                let (rs, re) = ((i + 1) as usize, (end + 1) as usize);
                self.pcpu_depopulate_chunk(base, rs, re);
                st.lock.lock().chunk_depopulated(st, id, rs, re);
                end = -1;
                i -= 1;
            }
            let mut g = st.lock.lock();
            if reintegrate || g.chunk(id).free_bytes == st.unit_size {
                g.reintegrate(st, id);
            } else {
                g.move_chunk(id, st.sidelined_slot, false);
            }
        }
    }

    /// `pcpu_balance_populated`: keeps up to four empty populated pages for
    /// atomic allocations, filling the fullest chunks first and creating a
    /// chunk when none has pages to populate.
    fn pcpu_balance_populated(&self) {
        let st = &self.percpu;
        let gfp = Gfp::GFP_KERNEL | Gfp::NORETRY | Gfp::NOWARN;
        loop {
            let mut nr_to_pop = {
                let mut g = st.lock.lock();
                if g.atomic_alloc_failed {
                    g.atomic_alloc_failed = false;
                    PCPU_EMPTY_POP_PAGES_HIGH
                } else {
                    (PCPU_EMPTY_POP_PAGES_HIGH - g.nr_empty_pop_pages).clamp(0, PCPU_EMPTY_POP_PAGES_HIGH)
                }
            } as usize;
            for slot in st.size_to_slot(PAGE_SIZE)..=st.free_slot {
                if nr_to_pop == 0 {
                    break;
                }
                let target = {
                    let g = st.lock.lock();
                    g.slots[slot].iter().copied().find(|&id| g.chunk(id).nr_populated < g.chunk(id).nr_pages).map(
                        |id| {
                            let c = g.chunk(id);
                            (id, c.base_addr, bit_ranges(&c.populated, 0, c.nr_pages, false))
                        },
                    )
                };
                let Some((id, base, ranges)) = target else { continue };
                for (rs, re) in ranges {
                    let nr = (re - rs).min(nr_to_pop);
                    let ok = self.pcpu_populate_chunk(id, base, rs, rs + nr, gfp);
                    if ok {
                        nr_to_pop -= nr;
                        st.lock.lock().chunk_populated(st, id, rs, rs + nr);
                    } else {
                        nr_to_pop = 0;
                    }
                    if nr_to_pop == 0 {
                        break;
                    }
                }
            }
            if nr_to_pop == 0 {
                return;
            }
            // Ran out of chunks to populate: create one and try again.
            let Some(chunk) = self.pcpu_create_chunk(gfp) else { return };
            let mut g = st.lock.lock();
            let id = g.insert(chunk);
            g.relocate(st, id, None);
            g.counters.nr_chunks += 1;
            g.counters.nr_max_chunks = g.counters.nr_max_chunks.max(g.counters.nr_chunks);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_helpers() {
        let mut m = vec![0u64; 3];
        set_bits(&mut m, 60, 10);
        assert!(test_bit(&m, 60) && test_bit(&m, 69) && !test_bit(&m, 70) && !test_bit(&m, 59));
        assert_eq!(find_next(&m, 192, 0, true), 60);
        assert_eq!(find_next(&m, 192, 60, false), 70);
        assert_eq!(find_next(&m, 65, 65, true), 65);
        assert_eq!(find_prev_set(&m, 60), None);
        assert_eq!(find_prev_set(&m, 100), Some(69));
        assert_eq!(bit_ranges(&m, 0, 192, true), vec![(60, 70)]);
        assert_eq!(bit_ranges(&m, 0, 192, false), vec![(0, 60), (70, 192)]);
        clear_bits(&mut m, 62, 3);
        assert_eq!(bit_ranges(&m, 0, 192, true), vec![(60, 62), (65, 70)]);
        set_bits(&mut m, 0, 192);
        assert!(m.iter().all(|&w| w == u64::MAX));
    }

    #[test]
    fn slots_follow_linux() {
        assert_eq!(size_to_slot_raw(4), 1);
        assert_eq!(size_to_slot_raw(15), 1);
        assert_eq!(size_to_slot_raw(16), 2);
        assert_eq!(size_to_slot_raw(32), 3);
        assert_eq!(size_to_slot_raw(4096), 10);
        assert_eq!(size_to_slot_raw(512 << 10), 17);
    }

    #[test]
    fn first_fit_with_alignment_and_hints() {
        let mut c = Chunk::new(ChunkKind::First, 0, 2);
        assert_eq!(c.find_fit(3, 1, false), Some(0));
        c.mark_allocated(0, 3);
        assert_eq!(c.find_fit(4, 4, false), Some(4), "aligned past the used bits");
        c.mark_allocated(4, 4);
        assert_eq!(c.find_fit(1, 1, false), Some(3), "the hole left by alignment");
        assert_eq!((c.contig_hint, c.contig_hint_start), (2048 - 8, 8));
        assert_eq!(c.page_used[..], [7, 0]);
        c.mark_free(0, 3);
        c.mark_free(4, 4);
        assert_eq!((c.contig_hint, c.contig_hint_start), (2048, 0));
        assert_eq!(c.find_fit(2049, 1, false), None);
    }
}
