//! The reverse map for anonymous memory (Linux's `mm/rmap.c`).
//!
//! Every VMA that may hold anonymous pages has an `anon_vma`; a page's
//! `mapping` names the `anon_vma` of the VMA it was first faulted in
//! (with [`PAGE_MAPPING_ANON`] set) and its `index` is its linear page
//! index. An `anon_vma_chain` links a VMA to each `anon_vma` whose pages
//! it may map: a child VMA after fork links to its parent's `anon_vma`s
//! and to its own. Walking the chains of a page's `anon_vma` finds every
//! VMA, in every mm, that may map the page (`rmap_walk_anon`).
//!
//! Both objects live in their slab caches (`anon_vma`, `anon_vma_chain`)
//! so slabinfo counts them as Linux does. The chains of an `anon_vma` are
//! a doubly linked list (Linux keeps an interval tree; a list gives the
//! same answers, in linear time). One kernel-wide lock stands in for the
//! root `anon_vma`'s rwsem.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::arch::x86_64::virt_to_phys;
use crate::gfp::Gfp;
use crate::hal::RamView;
use crate::kernel::Kernel;
use crate::mm_types::Vma;
use crate::types::{Errno, VirtAddr};

/// Set in `page.mapping` when it names an `anon_vma`.
pub const PAGE_MAPPING_ANON: u64 = 1;

/// The in-RAM layout of an `anon_vma`.
#[repr(C)]
#[derive(Default)]
pub struct AnonVma {
    /// The root of the fork tree this `anon_vma` belongs to.
    pub root: AtomicU64,
    /// The `anon_vma` it was forked from (itself for a root).
    pub parent: AtomicU64,
    /// References: one per page-less holder plus the root's count of its tree.
    pub refcount: AtomicU64,
    /// Children forked from it.
    pub num_children: AtomicU64,
    /// VMAs pointing at it as their own `anon_vma`.
    pub num_active_vmas: AtomicU64,
    /// First chain of the list of VMAs that may map its pages.
    pub head: AtomicU64,
}
// SAFETY: plain atomics, valid for any bits, no Drop.
unsafe impl RamView for AnonVma {}

/// The in-RAM layout of an `anon_vma_chain`.
#[repr(C)]
#[derive(Default)]
pub struct AnonVmaChain {
    /// The VMA.
    pub vma: AtomicU64,
    /// The `anon_vma`.
    pub anon_vma: AtomicU64,
    /// Next chain of the same VMA (`same_vma`).
    pub same_vma_next: AtomicU64,
    /// Next chain of the same `anon_vma`.
    pub av_next: AtomicU64,
    /// Previous chain of the same `anon_vma`.
    pub av_prev: AtomicU64,
}
// SAFETY: plain atomics, valid for any bits, no Drop.
unsafe impl RamView for AnonVmaChain {}

impl Kernel {
    fn obj<T: RamView>(&self, va: u64) -> &T {
        let pa = virt_to_phys(VirtAddr(va)).expect("rmap objects live in the direct map");
        &self.mem.view::<T>(pa, 1)[0]
    }
    /// The `anon_vma` at `va`.
    pub fn anon_vma(&self, va: u64) -> &AnonVma {
        self.obj(va)
    }
    fn avc(&self, va: u64) -> &AnonVmaChain {
        self.obj(va)
    }

    fn anon_vma_alloc(&self) -> Option<u64> {
        let c = self.slab.subsystem.get()?.anon_vma;
        let va = self.kmem_cache_alloc(c, Gfp::GFP_KERNEL | Gfp::ZERO)?.0;
        let av = self.anon_vma(va);
        av.root.store(va, Relaxed);
        av.parent.store(va, Relaxed);
        av.refcount.store(1, Relaxed);
        Some(va)
    }

    fn put_anon_vma(&self, va: u64) {
        let av = self.anon_vma(va);
        if av.refcount.fetch_sub(1, Relaxed) == 1 {
            let root = av.root.load(Relaxed);
            let c = self.slab.subsystem.get().expect("caches exist after boot").anon_vma;
            self.kmem_cache_free(c, VirtAddr(va));
            if root != va {
                self.put_anon_vma(root);
            }
        }
    }

    fn avc_link(&self, vma: Vma<'_>, anon_vma: u64) -> Result<(), Errno> {
        let c = self.slab.subsystem.get().ok_or(Errno::ENOMEM)?.anon_vma_chain;
        let avc_va = self.kmem_cache_alloc(c, Gfp::GFP_KERNEL | Gfp::ZERO).ok_or(Errno::ENOMEM)?.0;
        let avc = self.avc(avc_va);
        avc.vma.store(vma.va.0, Relaxed);
        avc.anon_vma.store(anon_vma, Relaxed);
        avc.same_vma_next.store(vma.raw().anon_vma_chain.load(Relaxed), Relaxed);
        vma.raw().anon_vma_chain.store(avc_va, Relaxed);
        let av = self.anon_vma(anon_vma);
        let head = av.head.load(Relaxed);
        avc.av_next.store(head, Relaxed);
        if head != 0 {
            self.avc(head).av_prev.store(avc_va, Relaxed);
        }
        av.head.store(avc_va, Relaxed);
        Ok(())
    }

    /// Gives `vma` an `anon_vma` before its first anonymous page
    /// (`anon_vma_prepare`): a new one, linked by one chain.
    pub fn anon_vma_prepare(&self, vma: Vma<'_>) -> Result<u64, Errno> {
        let cur = vma.anon_vma();
        if cur != 0 {
            return Ok(cur);
        }
        let _g = self.vm_rmap_lock.lock();
        let av = self.anon_vma_alloc().ok_or(Errno::ENOMEM)?;
        if let Err(e) = self.avc_link(vma, av) {
            self.put_anon_vma(av);
            return Err(e);
        }
        let a = self.anon_vma(av);
        a.num_active_vmas.store(1, Relaxed);
        // The self-parent link of a new root counts as a child, as in Linux.
        a.num_children.store(1, Relaxed);
        vma.raw().anon_vma.store(av, Relaxed);
        Ok(av)
    }

    /// [`Kernel::anon_vma_prepare`] as `__anon_vma_prepare` does it: a
    /// neighbour's `anon_vma` is reused when the two VMAs could be one but
    /// for their access flags (`find_mergeable_anon_vma`), so that they can
    /// merge after a later mprotect.
    pub fn anon_vma_prepare_in(&self, st: &crate::mm_types::MmState, vma: Vma<'_>) -> Result<u64, Errno> {
        let cur = vma.anon_vma();
        if cur != 0 {
            return Ok(cur);
        }
        let next = self.find_vma(st, vma.end()).filter(|n| n.start() == vma.end());
        let prev = self.vma_before(st, vma.start()).filter(|p| p.end() == vma.start());
        let reuse = next
            .and_then(|n| self.reusable_anon_vma(n, vma, n))
            .or_else(|| prev.and_then(|p| self.reusable_anon_vma(p, p, vma)));
        let Some(av) = reuse else { return self.anon_vma_prepare(vma) };
        let _g = self.vm_rmap_lock.lock();
        self.avc_link(vma, av)?;
        self.anon_vma(av).num_active_vmas.fetch_add(1, Relaxed);
        vma.raw().anon_vma.store(av, Relaxed);
        Ok(av)
    }

    /// `old`'s anon_vma if `a` and `b` (adjacent, in that order) differ
    /// only in access flags and `old` has no forked parents (`reusable_anon_vma`).
    fn reusable_anon_vma(&self, old: Vma<'_>, a: Vma<'_>, b: Vma<'_>) -> Option<u64> {
        use crate::mm_types::vm;
        let compatible = a.end() == b.start()
            && a.raw().vm_policy.load(Relaxed) == b.raw().vm_policy.load(Relaxed)
            && a.file() == b.file()
            && (a.flags() ^ b.flags()) & !(vm::ACCESS | vm::SOFTDIRTY) == 0
            && b.pgoff() == a.pgoff() + ((b.start() - a.start()) >> 12);
        let av = old.anon_vma();
        let chain = old.raw().anon_vma_chain.load(Relaxed);
        (compatible && av != 0 && chain != 0 && self.anon_vma_chain_next(chain) == 0).then_some(av)
    }

    /// The chains of `vma`, oldest first.
    fn vma_chains(&self, vma: Vma<'_>) -> alloc::vec::Vec<u64> {
        let mut v = alloc::vec::Vec::new();
        let mut c = vma.raw().anon_vma_chain.load(Relaxed);
        while c != 0 {
            v.push(c);
            c = self.avc(c).same_vma_next.load(Relaxed);
        }
        v.reverse();
        v
    }

    /// Links `dst` to every `anon_vma` of `src` (`anon_vma_clone`): after a
    /// split or a copy, both may map the same pages. With `for_fork`, an
    /// `anon_vma` that no VMA uses as its own and that has fewer than two
    /// children is reused as `dst`'s own, as Linux does to keep long fork
    /// chains short.
    pub fn anon_vma_clone(&self, dst: Vma<'_>, src: Vma<'_>, for_fork: bool) -> Result<(), Errno> {
        let _g = self.vm_rmap_lock.lock();
        for c in self.vma_chains(src) {
            let av = self.avc(c).anon_vma.load(Relaxed);
            if let Err(e) = self.avc_link(dst, av) {
                drop(_g);
                self.unlink_anon_vmas(dst);
                return Err(e);
            }
            let a = self.anon_vma(av);
            if for_fork
                && dst.anon_vma() == 0
                && a.num_active_vmas.load(Relaxed) == 0
                && a.num_children.load(Relaxed) < 2
            {
                dst.raw().anon_vma.store(av, Relaxed);
            }
        }
        let own = dst.anon_vma();
        if own != 0 {
            self.anon_vma(own).num_active_vmas.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// Gives the child VMA of a fork its chains and its own `anon_vma`
    /// (`anon_vma_fork`).
    pub fn anon_vma_fork(&self, vma: Vma<'_>, pvma: Vma<'_>) -> Result<(), Errno> {
        let pav = pvma.anon_vma();
        if pav == 0 {
            return Ok(());
        }
        vma.raw().anon_vma.store(0, Relaxed);
        vma.raw().anon_vma_chain.store(0, Relaxed);
        self.anon_vma_clone(vma, pvma, true)?;
        if vma.anon_vma() != 0 {
            return Ok(());
        }
        let _g = self.vm_rmap_lock.lock();
        let av = match self.anon_vma_alloc() {
            Some(a) => a,
            None => {
                drop(_g);
                self.unlink_anon_vmas(vma);
                return Err(Errno::ENOMEM);
            }
        };
        let root = self.anon_vma(pav).root.load(Relaxed);
        let a = self.anon_vma(av);
        a.root.store(root, Relaxed);
        a.parent.store(pav, Relaxed);
        a.num_active_vmas.store(1, Relaxed);
        self.anon_vma(root).refcount.fetch_add(1, Relaxed);
        if let Err(e) = self.avc_link(vma, av) {
            drop(_g);
            self.put_anon_vma(av);
            self.unlink_anon_vmas(vma);
            return Err(e);
        }
        self.anon_vma(pav).num_children.fetch_add(1, Relaxed);
        vma.raw().anon_vma.store(av, Relaxed);
        Ok(())
    }

    /// Drops every chain of `vma` and the `anon_vma`s no one uses any more
    /// (`unlink_anon_vmas`).
    pub fn unlink_anon_vmas(&self, vma: Vma<'_>) {
        let _g = self.vm_rmap_lock.lock();
        let own = vma.anon_vma();
        if own != 0 {
            self.anon_vma(own).num_active_vmas.fetch_sub(1, Relaxed);
        }
        let chains = self.vma_chains(vma);
        let cache = self.slab.subsystem.get().expect("caches exist after boot").anon_vma_chain;
        let mut emptied = alloc::vec::Vec::new();
        for c in chains {
            let avc = self.avc(c);
            let av = avc.anon_vma.load(Relaxed);
            let (next, prev) = (avc.av_next.load(Relaxed), avc.av_prev.load(Relaxed));
            if prev != 0 {
                self.avc(prev).av_next.store(next, Relaxed);
            } else {
                self.anon_vma(av).head.store(next, Relaxed);
            }
            if next != 0 {
                self.avc(next).av_prev.store(prev, Relaxed);
            }
            self.kmem_cache_free(cache, VirtAddr(c));
            if self.anon_vma(av).head.load(Relaxed) == 0 {
                // No VMA can map its pages any more: the parent loses a child.
                let parent = self.anon_vma(av).parent.load(Relaxed);
                self.anon_vma(parent).num_children.fetch_sub(1, Relaxed);
                emptied.push(av);
            }
        }
        for av in emptied {
            self.put_anon_vma(av);
        }
        vma.raw().anon_vma_chain.store(0, Relaxed);
        vma.raw().anon_vma.store(0, Relaxed);
    }

    /// Links `vma` to one more anon_vma, a stand-in for the parent's of a
    /// process that was forked (for address spaces copied from a real
    /// process, whose history we cannot replay).
    pub fn anon_vma_add_parent(&self, vma: Vma<'_>) -> Result<(), Errno> {
        let _g = self.vm_rmap_lock.lock();
        let av = self.anon_vma_alloc().ok_or(Errno::ENOMEM)?;
        self.anon_vma(av).num_children.store(1, Relaxed);
        if let Err(e) = self.avc_link(vma, av) {
            self.put_anon_vma(av);
            return Err(e);
        }
        Ok(())
    }

    /// The chain after `avc` on its VMA's list (0 at the end).
    pub fn anon_vma_chain_next(&self, avc: u64) -> u64 {
        self.avc(avc).same_vma_next.load(Relaxed)
    }

    /// Every VMA that may map a page of `anon_vma` (`rmap_walk_anon`'s
    /// iteration), as object addresses.
    pub fn anon_vma_vmas(&self, anon_vma: u64) -> alloc::vec::Vec<VirtAddr> {
        let _g = self.vm_rmap_lock.lock();
        let mut v = alloc::vec::Vec::new();
        let mut c = self.anon_vma(anon_vma).head.load(Relaxed);
        while c != 0 {
            let avc = self.avc(c);
            v.push(VirtAddr(avc.vma.load(Relaxed)));
            c = avc.av_next.load(Relaxed);
        }
        v
    }
}

impl Kernel {
    /// Every place an anonymous page is mapped, found through its
    /// `anon_vma` (`rmap_walk_anon`): `(mm id, address)` pairs.
    pub fn rmap_walk_anon(&self, pfn: crate::types::Pfn) -> alloc::vec::Vec<(u64, u64)> {
        use crate::arch::x86_64::pgtable::{entry_pfn, pte_present};
        let page = self.memmap.page(pfn);
        let mapping = page.mapping.load(Relaxed);
        if mapping & PAGE_MAPPING_ANON == 0 {
            return alloc::vec::Vec::new();
        }
        let index = page.index.load(Relaxed);
        let tasks: alloc::vec::Vec<_> = self.vm.tasks.lock().values().cloned().collect();
        let mut out = alloc::vec::Vec::new();
        for va in self.anon_vma_vmas(mapping & !PAGE_MAPPING_ANON) {
            let v = Vma::at(self, va);
            // vma_address: where the page's index falls in this VMA.
            if index < v.pgoff() || index - v.pgoff() >= v.pages() {
                continue;
            }
            let addr = v.start() + ((index - v.pgoff()) << 12);
            let mm_id = v.raw().vm_mm.load(Relaxed);
            let Some(t) = tasks.iter().find(|t| t.mm.id == mm_id) else { continue };
            let mapped = self.pte_of(&t.mm, addr).is_some_and(|p| {
                let e = p.load(Relaxed);
                pte_present(e) && entry_pfn(e) == pfn
            });
            if mapped {
                out.push((mm_id, addr));
            }
        }
        out
    }

    /// Unmaps an anonymous page from every address space that maps it
    /// (`try_to_unmap`), flushing each TLB; returns how many mappings went.
    /// The caller holds a reference, so the page survives; with no swap
    /// device yet, this is the first half of a migration (the caller maps
    /// a copy back) rather than of reclaim.
    pub fn try_to_unmap(&self, pfn: crate::types::Pfn) -> usize {
        let places = self.rmap_walk_anon(pfn);
        let tasks: alloc::vec::Vec<_> = self.vm.tasks.lock().values().cloned().collect();
        let mut n = 0;
        for (mm_id, addr) in places {
            let Some(t) = tasks.iter().find(|t| t.mm.id == mm_id) else { continue };
            let mm = &*t.mm;
            let st = mm.lock.read();
            let Some(v) = self.vma_lookup(&st, addr) else { continue };
            let mut tlb = crate::memory::MmuGather::default();
            self.zap_pte_range(mm, v, addr, addr + 4096, &mut tlb);
            self.tlb_finish_mmu(mm, &mut tlb);
            n += 1;
        }
        n
    }
}
