//! Virtually contiguous kernel memory (Linux's `mm/vmalloc.c`): areas in
//! the vmalloc range backed by scattered pages, mapped through the
//! kernel's page tables.
//!
//! - Address space: busy areas and free ranges of
//!   `[VMALLOC_START, VMALLOC_END]`; an area gets the lowest fitting,
//!   aligned range (Linux's first fit over an augmented tree; here a scan
//!   of the coalesced free ranges). Every area carries a guard page unless
//!   `VM_NO_GUARD`.
//! - Freeing is lazy, as on Linux: `vfree` clears the entries and frees
//!   the pages at once, but the address range waits on a purge list until
//!   `lazy_max_pages()` worth has gathered; then one batched TLB flush
//!   covers them all and the ranges return to the free space.
//! - Metadata lives in kernel memory as on Linux: a `vmap_area` object
//!   from its slab cache, the `vm_struct` and the page array from kmalloc
//!   (the array really holds the PFNs that `vfree` reads back).
//!
//! Locking: `vmap_area_lock` ([`VmallocState::areas`]) guards both trees
//! and the purge list; the kernel page tables below the vmalloc range are
//! changed under it too.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::arch::x86_64::pgtable::{bits, mk_entry};
use crate::arch::x86_64::{VMALLOC_END, VMALLOC_START};
use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::slab::{CacheArgs, CacheId};
use crate::types::{align_up, Pfn, VirtAddr, PAGE_SHIFT, PAGE_SIZE};

/// Area flags (`VM_*` of `include/linux/vmalloc.h`).
#[allow(missing_docs)]
pub mod vm_flags {
    pub const IOREMAP: u32 = 0x1;
    pub const ALLOC: u32 = 0x2;
    pub const MAP: u32 = 0x4;
    pub const USERMAP: u32 = 0x8;
    pub const NO_GUARD: u32 = 0x40;
}

/// One area (`struct vmap_area` with its `vm_struct`).
#[derive(Clone, Debug)]
pub struct VmapArea {
    /// First address.
    pub start: u64,
    /// One past the last address, guard page included.
    pub end: u64,
    /// `VM_*` flags.
    pub flags: u32,
    /// Pages mapped.
    pub nr_pages: u64,
    /// The kmalloc'd array of PFNs (vmalloc areas), or 0.
    pub pages_array: VirtAddr,
    /// The slab objects standing for the descriptors: (`vmap_area`, `vm_struct`).
    pub objs: (VirtAddr, VirtAddr),
    /// Who asked, as `%pS` prints a caller.
    pub caller: &'static str,
    /// Node the pages came from.
    pub nid: usize,
}

/// What `vmap_area_lock` guards.
#[derive(Default)]
pub struct VmapAreas {
    busy: BTreeMap<u64, VmapArea>,
    /// Free ranges `start -> end`, coalesced.
    free: BTreeMap<u64, u64>,
    /// Lazily freed ranges waiting for a purge.
    purge: Vec<(u64, u64)>,
    lazy_pages: u64,
}

/// The vmalloc part of the kernel state.
#[derive(Default)]
pub struct VmallocState {
    /// `vmap_area_lock` with the areas.
    pub areas: spin::Mutex<VmapAreas>,
    /// The kernel page-table root (`init_mm.pgd`).
    pub root: spin::Once<Pfn>,
    /// The `vmap_area` slab cache.
    cache: spin::Once<CacheId>,
    /// Pages mapped by vmalloc (`nr_vmalloc_pages`, meminfo's VmallocUsed).
    pub nr_pages: AtomicU64,
    /// Batched TLB flushes done by purges.
    pub tlb_flushes: AtomicU64,
    /// Purges done.
    pub purges: AtomicU64,
}

/// Size of Linux's `struct vmap_area` object (its cache's object size).
const VMAP_AREA_SIZE: u32 = 64;
/// Size of Linux's `struct vm_struct` (a kmalloc-64 object).
const VM_STRUCT_SIZE: u64 = 64;

impl Kernel {
    /// Sets up the vmalloc range (`vmalloc_init`): the kernel's top-level
    /// table and the `vmap_area` cache.
    pub fn vmalloc_init(&self) -> bool {
        let Some(root) = self.alloc_pages(Gfp::GFP_KERNEL | Gfp::ZERO, 0) else { return false };
        self.vmalloc.root.call_once(|| root);
        let Ok(id) = self.kmem_cache_create(&CacheArgs::new("vmap_area", VMAP_AREA_SIZE)) else { return false };
        self.vmalloc.cache.call_once(|| id);
        self.vmalloc.areas.lock().free.insert(VMALLOC_START, VMALLOC_END + 1);
        true
    }

    /// Pages lazily freed before a purge (`lazy_max_pages`): 32 MiB per
    /// step of log2 of the CPU count.
    pub fn lazy_max_pages(&self) -> u64 {
        let log = 64 - (self.nr_cpus as u64).leading_zeros() as u64;
        log * ((32 << 20) / PAGE_SIZE)
    }

    /// Finds and takes the lowest free range of `size` bytes aligned to
    /// `align` (`alloc_vmap_area`); purges lazily freed ranges once before
    /// giving up.
    fn alloc_vmap_range(&self, a: &mut VmapAreas, size: u64, align: u64) -> Option<u64> {
        for attempt in 0..2 {
            let found = a.free.iter().find_map(|(&s, &e)| {
                let start = align_up(s, align);
                (start.checked_add(size)? <= e).then_some((s, e, start))
            });
            if let Some((s, e, start)) = found {
                a.free.remove(&s);
                if s < start {
                    a.free.insert(s, start);
                }
                if start + size < e {
                    a.free.insert(start + size, e);
                }
                return Some(start);
            }
            if attempt == 0 {
                self.purge_vmap_areas(a);
            }
        }
        None
    }

    /// Returns a range to the free space, merging with its neighbours.
    fn free_vmap_range(a: &mut VmapAreas, mut s: u64, mut e: u64) {
        if let Some((&ps, &pe)) = a.free.range(..s).next_back() {
            if pe == s {
                a.free.remove(&ps);
                s = ps;
            }
        }
        if let Some(&ne) = a.free.get(&e) {
            a.free.remove(&e);
            e = ne;
        }
        a.free.insert(s, e);
    }

    /// Flushes the TLB once for every lazily freed range and returns them
    /// to the free space (`__purge_vmap_area_lazy`).
    fn purge_vmap_areas(&self, a: &mut VmapAreas) {
        if a.purge.is_empty() {
            return;
        }
        // One flush over [lowest start, highest end): the batching that
        // makes lazy freeing pay (flush_tlb_kernel_range).
        self.vmalloc.tlb_flushes.fetch_add(1, Relaxed);
        self.vmalloc.purges.fetch_add(1, Relaxed);
        for (s, e) in core::mem::take(&mut a.purge) {
            Self::free_vmap_range(a, s, e);
        }
        a.lazy_pages = 0;
    }

    /// Allocates `size` bytes of virtually contiguous memory on `nid`
    /// (`__vmalloc_node`); `None` for size 0, a size above RAM, or when
    /// pages or address space run out (every page taken is given back).
    pub fn vmalloc_node(&self, size: u64, gfp: Gfp, nid: usize, caller: &'static str) -> Option<VirtAddr> {
        let size = align_up(size, PAGE_SIZE);
        if size == 0 || size >> PAGE_SHIFT > self.totalram_pages() {
            return None;
        }
        let nr = size >> PAGE_SHIFT;
        let root = *self.vmalloc.root.get()?;
        let cache = *self.vmalloc.cache.get()?;
        // Descriptors first, as Linux allocates them before the pages.
        let area_obj = self.kmem_cache_alloc(cache, Gfp::GFP_KERNEL)?;
        let Some(vm_obj) = self.kmalloc(VM_STRUCT_SIZE, Gfp::GFP_KERNEL) else {
            self.kmem_cache_free(cache, area_obj);
            return None;
        };
        let Some(array) = self.kmalloc(nr * 8, Gfp::GFP_KERNEL | Gfp::NOWARN) else {
            self.kmem_cache_free(cache, area_obj);
            self.kfree(vm_obj);
            return None;
        };
        let release = |pages: &[Pfn]| {
            for &p in pages {
                self.free_pages(p, 0);
            }
            self.kmem_cache_free(cache, area_obj);
            self.kfree(vm_obj);
            self.kfree(array);
        };
        let mut pages = Vec::with_capacity(nr as usize);
        let node = if nid < self.nodes.len() { nid } else { self.numa_node_id() };
        for _ in 0..nr {
            match self.alloc_pages_node(node, gfp | Gfp::NOWARN, 0) {
                Some(p) => pages.push(p),
                None => {
                    release(&pages);
                    if !gfp.contains(Gfp::NOWARN) {
                        self.log.warn(format_args!("vmalloc error: size {size}, failed to allocate pages"));
                    }
                    return None;
                }
            }
        }
        let mut a = self.vmalloc.areas.lock();
        let Some(start) = self.alloc_vmap_range(&mut a, size + PAGE_SIZE, PAGE_SIZE) else {
            drop(a);
            release(&pages);
            self.log.warn(format_args!("vmalloc_node_range for size {size} failed: Unable to allocate vmap_area"));
            return None;
        };
        for (i, &p) in pages.iter().enumerate() {
            let va = VirtAddr(start + ((i as u64) << PAGE_SHIFT));
            let mapped =
                self.pte_alloc(root, va, bits::KERNPG_TABLE).map(|e| e.store(mk_entry(p, bits::PAGE_KERNEL), Relaxed));
            if mapped.is_err() {
                let mut out = Vec::new();
                self.pgtable_clear_range(root, VirtAddr(start), va, &mut out);
                Self::free_vmap_range(&mut a, start, start + size + PAGE_SIZE);
                drop(a);
                release(&pages);
                return None;
            }
            self.kwrite_u64(VirtAddr(array.0 + 8 * i as u64), p.0);
        }
        a.busy.insert(
            start,
            VmapArea {
                start,
                end: start + size + PAGE_SIZE,
                flags: vm_flags::ALLOC,
                nr_pages: nr,
                pages_array: array,
                objs: (area_obj, vm_obj),
                caller,
                nid: node,
            },
        );
        self.vmalloc.nr_pages.fetch_add(nr, Relaxed);
        Some(VirtAddr(start))
    }

    /// `vmalloc` on the running CPU's node.
    pub fn vmalloc(&self, size: u64) -> Option<VirtAddr> {
        self.vmalloc_node(size, Gfp::GFP_KERNEL, usize::MAX, "vmalloc")
    }

    /// Zeroed `vmalloc` (`vzalloc`).
    pub fn vzalloc(&self, size: u64) -> Option<VirtAddr> {
        self.vmalloc_node(size, Gfp::GFP_KERNEL | Gfp::ZERO, usize::MAX, "vzalloc")
    }

    /// Maps existing pages contiguously (`vmap`); the pages stay the caller's.
    pub fn vmap(&self, pages: &[Pfn], flags: u32) -> Option<VirtAddr> {
        if pages.is_empty() {
            return None;
        }
        let root = *self.vmalloc.root.get()?;
        let cache = *self.vmalloc.cache.get()?;
        let area_obj = self.kmem_cache_alloc(cache, Gfp::GFP_KERNEL)?;
        let size = (pages.len() as u64) << PAGE_SHIFT;
        let guard = if flags & vm_flags::NO_GUARD != 0 { 0 } else { PAGE_SIZE };
        let mut a = self.vmalloc.areas.lock();
        let Some(start) = self.alloc_vmap_range(&mut a, size + guard, PAGE_SIZE) else {
            drop(a);
            self.kmem_cache_free(cache, area_obj);
            return None;
        };
        for (i, &p) in pages.iter().enumerate() {
            let va = VirtAddr(start + ((i as u64) << PAGE_SHIFT));
            if let Ok(e) = self.pte_alloc(root, va, bits::KERNPG_TABLE) {
                e.store(mk_entry(p, bits::PAGE_KERNEL), Relaxed);
            } else {
                let mut out = Vec::new();
                self.pgtable_clear_range(root, VirtAddr(start), va, &mut out);
                Self::free_vmap_range(&mut a, start, start + size + guard);
                drop(a);
                self.kmem_cache_free(cache, area_obj);
                return None;
            }
        }
        let objs = (area_obj, VirtAddr(0));
        let area = VmapArea {
            start,
            end: start + size + guard,
            flags: vm_flags::MAP | flags,
            nr_pages: 0,
            pages_array: VirtAddr(0),
            objs,
            caller: "vmap",
            nid: 0,
        };
        a.busy.insert(start, area);
        Some(VirtAddr(start))
    }

    /// Unmaps an area and frees its pages if vmalloc made them (`vfree`,
    /// `vunmap`). The address range is released lazily. A pointer that
    /// starts no area is reported and ignored, as Linux warns.
    pub fn vfree(&self, addr: VirtAddr) {
        if addr.0 == 0 {
            return;
        }
        let (Some(&root), Some(&cache)) = (self.vmalloc.root.get(), self.vmalloc.cache.get()) else { return };
        let mut a = self.vmalloc.areas.lock();
        let Some(area) = a.busy.remove(&addr.0) else {
            drop(a);
            self.log.warn(format_args!("Trying to vfree() nonexistent vm area ({:#x})", addr.0));
            return;
        };
        let mut unmapped = Vec::new();
        self.pgtable_clear_range(root, VirtAddr(area.start), VirtAddr(area.end), &mut unmapped);
        a.purge.push((area.start, area.end));
        a.lazy_pages += (area.end - area.start) >> PAGE_SHIFT;
        if a.lazy_pages > self.lazy_max_pages() {
            self.purge_vmap_areas(&mut a);
        }
        drop(a);
        if area.flags & vm_flags::ALLOC != 0 {
            for i in 0..area.nr_pages {
                let pfn = Pfn(self.kread_u64(VirtAddr(area.pages_array.0 + 8 * i)));
                self.free_pages(pfn, 0);
            }
            self.vmalloc.nr_pages.fetch_sub(area.nr_pages, Relaxed);
            self.kfree(area.pages_array);
        }
        if area.objs.1 .0 != 0 {
            self.kfree(area.objs.1);
        }
        self.kmem_cache_free(cache, area.objs.0);
    }

    /// Removes a `vmap` mapping (`vunmap`).
    pub fn vunmap(&self, addr: VirtAddr) {
        self.vfree(addr)
    }

    /// Purges every lazily freed range now (`vm_unmap_aliases`).
    pub fn vm_unmap_aliases(&self) {
        let mut a = self.vmalloc.areas.lock();
        self.purge_vmap_areas(&mut a);
    }

    /// The frame behind a vmalloc address (`vmalloc_to_page`).
    pub fn vmalloc_to_pfn(&self, addr: VirtAddr) -> Option<Pfn> {
        let root = *self.vmalloc.root.get()?;
        self.pgtable_translate(root, addr).map(|pa| pa.pfn())
    }

    /// Reads bytes at a vmalloc address, page by page through the tables.
    pub fn vread(&self, addr: VirtAddr, buf: &mut [u8]) -> bool {
        self.vcopy(addr, buf.len(), |pa, off, n| self.mem.read(pa, &mut buf[off..off + n]))
    }

    /// Writes bytes at a vmalloc address.
    pub fn vwrite(&self, addr: VirtAddr, buf: &[u8]) -> bool {
        self.vcopy(addr, buf.len(), |pa, off, n| self.mem.write(pa, &buf[off..off + n]))
    }

    fn vcopy(&self, addr: VirtAddr, len: usize, mut f: impl FnMut(crate::types::PhysAddr, usize, usize)) -> bool {
        let Some(&root) = self.vmalloc.root.get() else { return false };
        let mut off = 0;
        while off < len {
            let va = VirtAddr(addr.0 + off as u64);
            let Some(pa) = self.pgtable_translate(root, va) else { return false };
            let n = ((PAGE_SIZE - (va.0 & (PAGE_SIZE - 1))) as usize).min(len - off);
            f(pa, off, n);
            off += n;
        }
        true
    }

    /// `/proc/vmallocinfo`: busy areas by address, then the lazily freed
    /// ones as `unpurged vm_area` (`vmalloc_info_show`).
    pub fn vmallocinfo(&self) -> String {
        let a = self.vmalloc.areas.lock();
        let mut s = String::new();
        for v in a.busy.values() {
            let _ = write!(s, "{:#018x}-{:#018x} {:7} {}", v.start, v.end, v.end - v.start, v.caller);
            if v.nr_pages > 0 {
                let _ = write!(s, " pages={}", v.nr_pages);
            }
            if v.flags & vm_flags::IOREMAP != 0 {
                s.push_str(" ioremap");
            }
            if v.flags & vm_flags::ALLOC != 0 {
                s.push_str(" vmalloc");
            }
            if v.flags & vm_flags::MAP != 0 {
                s.push_str(" vmap");
            }
            if v.flags & vm_flags::USERMAP != 0 {
                s.push_str(" user");
            }
            if v.nr_pages > 0 {
                let _ = write!(s, " N{}={}", v.nid, v.nr_pages);
            }
            s.push('\n');
        }
        let mut purge = a.purge.clone();
        purge.sort_unstable();
        for (st, e) in purge {
            let _ = writeln!(s, "{st:#018x}-{e:#018x} {:7} unpurged vm_area", e - st);
        }
        s
    }
}
