//! kmalloc (Linux's `kmalloc` family in `mm/slab_common.c` and
//! `include/linux/slab.h`): general-purpose allocations from a ladder of
//! size-class caches, and straight from the page allocator above 8 KiB.
//!
//! Classes: 8, 16, 32, 64, 96, 128, 192, 256 ... 8192 bytes, in three
//! kinds: normal (`kmalloc-N`), reclaimable (`kmalloc-rcl-N`, for
//! `__GFP_RECLAIMABLE`) and DMA (`dma-kmalloc-N`, for `__GFP_DMA`).
//! `kmalloc(0)` returns `ZERO_SIZE_PTR` (16), which `kfree` ignores, as on
//! Linux.

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::{CacheArgs, CacheId, SlabError, SlabFlags};
use crate::arch::x86_64::{phys_to_virt, virt_to_phys};
use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::page::pg;
use crate::types::{VirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::vmstat::NodeStat;

/// `ZERO_SIZE_PTR`: what `kmalloc(0)` returns.
pub const ZERO_SIZE_PTR: VirtAddr = VirtAddr(16);
/// Smallest class (`KMALLOC_SHIFT_LOW`).
pub const KMALLOC_SHIFT_LOW: u32 = 3;
/// Largest class served by a cache: 8 KiB (`KMALLOC_SHIFT_HIGH`).
pub const KMALLOC_SHIFT_HIGH: u32 = PAGE_SHIFT + 1;
/// Largest kmalloc (`KMALLOC_MAX_SIZE`): one max-order block.
pub const KMALLOC_MAX_SIZE: u64 = PAGE_SIZE << crate::types::MAX_PAGE_ORDER;
/// Largest size served by a cache (`KMALLOC_MAX_CACHE_SIZE`).
pub const KMALLOC_MAX_CACHE_SIZE: u64 = 1 << KMALLOC_SHIFT_HIGH;

/// The kinds of kmalloc caches (`enum kmalloc_cache_type`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KmallocType {
    /// `kmalloc-N`.
    Normal = 0,
    /// `kmalloc-rcl-N`.
    Reclaim = 1,
    /// `dma-kmalloc-N`.
    Dma = 2,
}

/// Number of kinds.
pub const NR_KMALLOC_TYPES: usize = 3;
const NR_INDEX: usize = KMALLOC_SHIFT_HIGH as usize + 1;

/// Class index of sizes up to 192 by `(size - 1) / 8` (`kmalloc_size_index`):
/// 1 is the 96-byte class, 2 the 192-byte class, n >= 3 is 2^n bytes.
const SIZE_INDEX: [u8; 24] = [3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2];

/// Bytes of class `i`.
pub const fn kmalloc_size(i: usize) -> u32 {
    match i {
        1 => 96,
        2 => 192,
        _ => 1 << i,
    }
}

/// The class of a request of `size` bytes, 1..=8192 (`kmalloc_index`).
#[inline]
pub fn kmalloc_index(size: u64) -> usize {
    if size <= 192 {
        SIZE_INDEX[((size - 1) / 8) as usize] as usize
    } else {
        (64 - (size - 1).leading_zeros()) as usize
    }
}

/// Ids of the kmalloc caches (0: not created).
pub struct KmallocCaches([[AtomicU32; NR_INDEX]; NR_KMALLOC_TYPES]);

impl Default for KmallocCaches {
    fn default() -> Self {
        KmallocCaches(core::array::from_fn(|_| core::array::from_fn(|_| AtomicU32::new(0))))
    }
}

impl KmallocCaches {
    /// The cache of a kind and class.
    #[inline]
    pub fn get(&self, t: KmallocType, index: usize) -> Option<CacheId> {
        let id = self.0[t as usize][index].load(Relaxed);
        (id != 0).then_some(CacheId(id))
    }
}

/// The kind a GFP mask asks for (`kmalloc_type`).
#[inline]
fn kmalloc_type(gfp: Gfp) -> KmallocType {
    if gfp.intersects(Gfp::DMA) {
        KmallocType::Dma
    } else if gfp.intersects(Gfp::RECLAIMABLE) {
        KmallocType::Reclaim
    } else {
        KmallocType::Normal
    }
}

impl Kernel {
    /// Creates every kmalloc cache (`create_kmalloc_caches`).
    pub(crate) fn create_kmalloc_caches(&self) -> Result<(), SlabError> {
        let kinds = [
            (KmallocType::Normal, "kmalloc-", SlabFlags::default()),
            (KmallocType::Reclaim, "kmalloc-rcl-", SlabFlags::RECLAIM_ACCOUNT),
            (KmallocType::Dma, "dma-kmalloc-", SlabFlags::CACHE_DMA),
        ];
        for (t, prefix, flags) in kinds {
            for i in (1..NR_INDEX).filter(|&i| i >= KMALLOC_SHIFT_LOW as usize || i <= 2) {
                let size = kmalloc_size(i);
                let name = if size >= 1024 {
                    alloc::format!("{prefix}{}k", size / 1024)
                } else {
                    alloc::format!("{prefix}{size}")
                };
                let id = self.kmem_cache_create(&CacheArgs {
                    name: &name,
                    size,
                    align: 0,
                    flags: flags | SlabFlags::KMALLOC,
                    ctor: None,
                })?;
                self.slab.kmalloc.0[t as usize][i].store(id.0, Relaxed);
            }
        }
        self.bootstrap_kmalloc_sheaves();
        Ok(())
    }

    /// Gives the normal kmalloc caches their sheaves now that every kmalloc
    /// cache exists (`bootstrap_kmalloc_sheaves`).
    fn bootstrap_kmalloc_sheaves(&self) {
        if self.slab.kind != super::SlabKind::Slub {
            return;
        }
        for i in 1..NR_INDEX {
            let Some(c) = self.slab.kmalloc.get(KmallocType::Normal, i).and_then(|id| self.slab.cache(id)) else {
                continue;
            };
            if self.slab_sheaf_capacity(c) == 0 {
                self.init_sheaves(c, super::sheaf::calculate_sheaf_capacity(c.size, c.flags));
            }
        }
    }

    /// Allocates `size` bytes (`kmalloc`). `None` when memory is short or
    /// the size is above `KMALLOC_MAX_SIZE`.
    #[inline]
    pub fn kmalloc(&self, size: u64, gfp: Gfp) -> Option<VirtAddr> {
        // The common case first: a normal-kind SLUB cache with an object
        // on this CPU's main sheaf.
        if size.wrapping_sub(1) < KMALLOC_MAX_CACHE_SIZE
            && !gfp.intersects(Gfp(Gfp::DMA.0 | Gfp::RECLAIMABLE.0 | Gfp::ZERO.0))
        {
            if let Some(o) =
                self.slab.kmalloc.get(KmallocType::Normal, kmalloc_index(size)).and_then(|id| self.slub_alloc_fast(id))
            {
                return Some(o);
            }
        }
        self.kmalloc_slow(size, gfp)
    }

    #[inline(never)]
    fn kmalloc_slow(&self, size: u64, gfp: Gfp) -> Option<VirtAddr> {
        if self.slab.kind == super::SlabKind::Slob {
            return self.slob_kmalloc(size, gfp);
        }
        if size == 0 {
            return Some(ZERO_SIZE_PTR);
        }
        if size > KMALLOC_MAX_CACHE_SIZE {
            return self.kmalloc_large(size, gfp);
        }
        let id = self.slab.kmalloc.get(kmalloc_type(gfp), kmalloc_index(size))?;
        self.kmem_cache_alloc(id, gfp)
    }

    /// Allocates zeroed memory (`kzalloc`).
    pub fn kzalloc(&self, size: u64, gfp: Gfp) -> Option<VirtAddr> {
        self.kmalloc(size, gfp | Gfp::ZERO)
    }

    /// Allocates a zeroed array; `None` when `n * size` overflows (`kcalloc`).
    pub fn kcalloc(&self, n: u64, size: u64, gfp: Gfp) -> Option<VirtAddr> {
        self.kzalloc(n.checked_mul(size)?, gfp)
    }

    /// Pages straight from the page allocator (`__kmalloc_large_node`),
    /// counted as unreclaimable slab as Linux counts them.
    fn kmalloc_large(&self, size: u64, gfp: Gfp) -> Option<VirtAddr> {
        if size > KMALLOC_MAX_SIZE {
            if !gfp.contains(Gfp::NOWARN) {
                self.log.warn(format_args!("kmalloc: size {size} above KMALLOC_MAX_SIZE"));
            }
            return None;
        }
        let order = super::slub::get_order(size);
        let pfn = self.alloc_pages(gfp | Gfp::COMP, order)?;
        let nid = self.memmap.page(pfn).nid();
        self.nodes[nid].stat.add(NodeStat::NrSlabUnreclaimable as usize, 1 << order);
        Some(phys_to_virt(pfn.phys()))
    }

    /// Frees what `kmalloc` returned; NULL and `ZERO_SIZE_PTR` are ignored
    /// (`kfree`). A pointer kmalloc never returned is reported and ignored.
    #[inline]
    pub fn kfree(&self, obj: VirtAddr) {
        // The common case first: a SLUB object whose CPU has room in its
        // main sheaf.
        if let Some(pa) = virt_to_phys(obj) {
            // No pfn_valid test: a frame without a descriptor reads as a
            // zeroed stand-in page, which is no slab.
            if self.slub_free_fast(pa.pfn(), obj) {
                return;
            }
        }
        self.kfree_slow(obj)
    }

    #[inline(never)]
    fn kfree_slow(&self, obj: VirtAddr) {
        if self.slab.kind == super::SlabKind::Slob {
            return self.slob_kfree(obj);
        }
        if obj.0 <= ZERO_SIZE_PTR.0 {
            return;
        }
        let Some(pa) = virt_to_phys(obj) else {
            self.log.err(format_args!("kfree: {:#x} is not a kernel direct-map address", obj.0));
            return;
        };
        if !self.memmap.pfn_valid(pa.pfn()) {
            self.log.err(format_args!("kfree: {:#x} is not in RAM", obj.0));
            return;
        }
        let folio = self.page_folio(pa.pfn());
        let page = self.memmap.page(folio.pfn);
        if page.test(pg::SLAB) {
            let id = CacheId(page.mapping.load(Relaxed) as u32);
            match self.slab.cache(id) {
                // SLUB: straight to its free path, the cache already found.
                Some(c) if matches!(c.imp, super::CacheImpl::Slub(_)) => self.slub_free_at(c, folio.pfn, page, obj),
                _ => self.kmem_cache_free(id, obj),
            }
            return;
        }
        // A large kmalloc: a compound page of order >= 1 starting at obj.
        let order = folio.order(self);
        if folio.pfn != pa.pfn() || pa.0 % PAGE_SIZE != 0 || order == 0 {
            self.log.err(format_args!("kfree: {:#x} was not returned by kmalloc", obj.0));
            return;
        }
        self.nodes[page.nid()].stat.add(NodeStat::NrSlabUnreclaimable as usize, -(1i64 << order));
        self.folio_put(folio);
    }

    /// Usable bytes of an allocation (`ksize`).
    pub fn ksize(&self, obj: VirtAddr) -> u64 {
        if self.slab.kind == super::SlabKind::Slob {
            return self.slob_ksize(obj);
        }
        if obj.0 <= ZERO_SIZE_PTR.0 {
            return 0;
        }
        if let Some(c) = self.virt_to_cache(obj) {
            let f = c.flags;
            return u64::from(if f.intersects(SlabFlags(SlabFlags::RED_ZONE.0 | SlabFlags::POISON.0)) {
                c.object_size
            } else if f.intersects(SlabFlags(SlabFlags::TYPESAFE_BY_RCU.0 | SlabFlags::STORE_USER.0)) {
                c.inuse
            } else {
                c.size
            });
        }
        match virt_to_phys(obj) {
            Some(pa) if self.memmap.pfn_valid(pa.pfn()) => PAGE_SIZE << self.page_folio(pa.pfn()).order(self),
            _ => 0,
        }
    }

    /// Resizes an allocation, keeping its contents (`krealloc`): in place
    /// when it fits, else a new allocation, a copy and a free. Size 0 frees
    /// and returns `ZERO_SIZE_PTR`. On failure the old object is kept.
    pub fn krealloc(&self, obj: VirtAddr, new_size: u64, gfp: Gfp) -> Option<VirtAddr> {
        if new_size == 0 {
            self.kfree(obj);
            return Some(ZERO_SIZE_PTR);
        }
        let ks = self.ksize(obj);
        if obj.0 > ZERO_SIZE_PTR.0 && new_size <= ks {
            if gfp.contains(Gfp::ZERO) {
                self.kfill(VirtAddr(obj.0 + new_size), ks - new_size, 0);
            }
            return Some(obj);
        }
        let new = self.kmalloc(new_size, gfp)?;
        if obj.0 > ZERO_SIZE_PTR.0 {
            let mut buf = alloc::vec![0u8; ks.min(new_size) as usize];
            self.kread(obj, &mut buf);
            self.kwrite(new, &buf);
            self.kfree(obj);
        }
        Some(new)
    }
}
