//! The VMA tree and the operations that reshape it (Linux's `mm/vma.c`):
//! lookups, allocation of VMA objects, split, merge and the gap search
//! behind `get_unmapped_area`.
//!
//! The tree maps each VMA's end address to its object, which answers
//! `find_vma` ("the first VMA ending above addr") with one ordered lookup,
//! as the maple tree does. Merging follows `vma_merge_new_range` and
//! `vma_merge_existing_range`: neighbours merge when their flags (less
//! `VM_SOFTDIRTY`), file and offset continuity, `anon_vma`, name, policy
//! and userfaultfd context agree.

use alloc::vec::Vec;
use core::ops::Bound::{Excluded, Included, Unbounded};
use core::sync::atomic::Ordering::Relaxed;

use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::mm_types::{vm, Mm, MmState, Vma};
use crate::types::{Errno, VirtAddr};

/// What a VMA modification sets on the range (the arguments of
/// `vma_modify_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmaAttrs {
    /// New `vm_flags`.
    pub flags: u64,
    /// New `anon_vma_name` object (0: none).
    pub anon_name: u64,
    /// New policy object (0: default).
    pub policy: u64,
}

impl VmaAttrs {
    /// The attributes `vma` has now.
    pub fn of(vma: Vma<'_>) -> VmaAttrs {
        VmaAttrs {
            flags: vma.flags(),
            anon_name: vma.raw().anon_name.load(Relaxed),
            policy: vma.raw().vm_policy.load(Relaxed),
        }
    }
}

/// Per-mm accounting of mapped pages by kind (`vm_stat_account`).
pub fn vm_stat_account(st: &mut MmState, flags: u64, pages: i64) {
    let add = |v: &mut u64| *v = (*v as i64 + pages) as u64;
    add(&mut st.total_vm);
    if st.total_vm > st.hiwater_vm {
        st.hiwater_vm = st.total_vm;
    }
    if flags & (vm::EXEC | vm::WRITE | vm::STACK) == vm::EXEC {
        add(&mut st.exec_vm);
    } else if flags & vm::STACK == vm::STACK {
        add(&mut st.stack_vm);
    } else if flags & (vm::WRITE | vm::SHARED | vm::STACK) == vm::WRITE {
        add(&mut st.data_vm);
    }
}

impl Kernel {
    /// The first VMA ending above `addr` (`find_vma`).
    #[inline]
    pub fn find_vma<'k>(&'k self, st: &MmState, addr: u64) -> Option<Vma<'k>> {
        st.tree.range((Excluded(addr), Unbounded)).next().map(|(_, &va)| Vma::at(self, va))
    }

    /// The VMA containing `addr`, if any (`vma_lookup`).
    #[inline]
    pub fn vma_lookup<'k>(&'k self, st: &MmState, addr: u64) -> Option<Vma<'k>> {
        self.find_vma(st, addr).filter(|v| v.start() <= addr)
    }

    /// `find_vma` and the VMA before it (`find_vma_prev`).
    pub fn find_vma_prev<'k>(&'k self, st: &MmState, addr: u64) -> (Option<Vma<'k>>, Option<Vma<'k>>) {
        let next = self.find_vma(st, addr);
        let prev = match next {
            Some(n) => st.tree.range(..=n.start()).next_back(),
            None => st.tree.iter().next_back(),
        }
        .map(|(_, &va)| Vma::at(self, va));
        (next, prev)
    }

    /// The first VMA that overlaps `[start, end)` (`find_vma_intersection`).
    pub fn find_vma_intersection<'k>(&'k self, st: &MmState, start: u64, end: u64) -> Option<Vma<'k>> {
        self.find_vma(st, start).filter(|v| v.start() < end)
    }

    /// The VMA ending at or before `addr`, the last one below it (`vma_prev` from `addr`).
    pub fn vma_before<'k>(&'k self, st: &MmState, addr: u64) -> Option<Vma<'k>> {
        st.tree.range(..=addr).next_back().map(|(_, &va)| Vma::at(self, va))
    }

    /// The VMAs overlapping `[start, end)`, in order.
    pub fn vmas_in<'k>(&'k self, st: &MmState, start: u64, end: u64) -> Vec<Vma<'k>> {
        st.tree
            .range((Excluded(start), Unbounded))
            .map(|(_, &va)| Vma::at(self, va))
            .take_while(|v| v.start() < end)
            .collect()
    }

    /// Every VMA, in order.
    pub fn vmas<'k>(&'k self, st: &MmState) -> Vec<Vma<'k>> {
        st.tree.values().map(|&va| Vma::at(self, va)).collect()
    }

    /// A new zeroed VMA object of `mm` (`vm_area_alloc`).
    pub fn vm_area_alloc<'k>(&'k self, mm: &Mm) -> Result<Vma<'k>, Errno> {
        let c = self.slab.subsystem.get().ok_or(Errno::ENOMEM)?.vm_area_struct;
        let va = self.kmem_cache_alloc(c, Gfp::GFP_KERNEL | Gfp::ZERO).ok_or(Errno::ENOMEM)?;
        let v = Vma::at(self, va);
        v.raw().vm_mm.store(mm.id, Relaxed);
        Ok(v)
    }

    /// A copy of `src` without its chains (`vm_area_dup`); the name is shared.
    pub fn vm_area_dup<'k>(&'k self, src: Vma<'_>, mm_id: u64) -> Result<Vma<'k>, Errno> {
        let c = self.slab.subsystem.get().ok_or(Errno::ENOMEM)?.vm_area_struct;
        let va = self.kmem_cache_alloc(c, Gfp::GFP_KERNEL | Gfp::ZERO).ok_or(Errno::ENOMEM)?;
        let v = Vma::at(self, va);
        let (s, d) = (src.raw(), v.raw());
        d.vm_start.store(s.vm_start.load(Relaxed), Relaxed);
        d.vm_end.store(s.vm_end.load(Relaxed), Relaxed);
        d.vm_flags.store(s.vm_flags.load(Relaxed), Relaxed);
        d.vm_pgoff.store(s.vm_pgoff.load(Relaxed), Relaxed);
        d.vm_mm.store(mm_id, Relaxed);
        d.anon_vma.store(s.anon_vma.load(Relaxed), Relaxed);
        d.vm_file.store(s.vm_file.load(Relaxed), Relaxed);
        self.file_get(s.vm_file.load(Relaxed));
        let name = s.anon_name.load(Relaxed);
        self.anon_name_get(name);
        d.anon_name.store(name, Relaxed);
        d.vm_policy.store(s.vm_policy.load(Relaxed), Relaxed);
        d.vm_userfaultfd_ctx.store(s.vm_userfaultfd_ctx.load(Relaxed), Relaxed);
        Ok(v)
    }

    /// Frees a VMA object that is in no tree (`vm_area_free`), with its
    /// chains and its name reference.
    pub fn vm_area_free(&self, v: Vma<'_>) {
        if v.raw().anon_vma_chain.load(Relaxed) != 0 || v.anon_vma() != 0 {
            self.unlink_anon_vmas(v);
        }
        self.anon_name_put(v.raw().anon_name.load(Relaxed));
        self.file_put(v.file());
        let c = self.slab.subsystem.get().expect("caches exist after boot").vm_area_struct;
        self.kmem_cache_free(c, v.va);
    }

    /// Inserts a VMA into the tree (`vma_link` without the file side).
    pub fn vma_link(&self, st: &mut MmState, v: Vma<'_>) {
        st.tree.insert(v.end(), v.va);
        st.map_count += 1;
    }

    /// Removes a VMA from the tree.
    pub fn vma_unlink(&self, st: &mut MmState, v: Vma<'_>) {
        st.tree.remove(&v.end());
        st.map_count -= 1;
    }

    /// Moves a VMA's bounds (and offset), keeping the tree's index right.
    pub fn vma_set_range(&self, st: &mut MmState, v: Vma<'_>, start: u64, end: u64, pgoff: u64) {
        let old_end = v.end();
        let in_tree = st.tree.get(&old_end) == Some(&v.va);
        if in_tree && old_end != end {
            st.tree.remove(&old_end);
        }
        v.raw().vm_start.store(start, Relaxed);
        v.raw().vm_end.store(end, Relaxed);
        v.raw().vm_pgoff.store(pgoff, Relaxed);
        if in_tree && old_end != end {
            st.tree.insert(end, v.va);
        }
    }

    /// Splits `v` at `addr` (`__split_vma`): the returned new VMA covers
    /// the part below `addr` when `new_below`, else the part above.
    /// Refused with ENOMEM when the mm already has `vm.max_map_count` VMAs
    /// and `check_count` (the `split_vma` check).
    pub fn split_vma<'k>(
        &'k self,
        mm: &Mm,
        st: &mut MmState,
        v: Vma<'k>,
        addr: u64,
        new_below: bool,
        check_count: bool,
    ) -> Result<Vma<'k>, Errno> {
        if check_count && st.map_count >= self.sysctl.max_map_count.load(Relaxed) {
            return Err(Errno::ENOMEM);
        }
        self.vma_may_split(v, addr)?;
        let new = self.vm_area_dup(v, mm.id)?;
        new.raw().anon_vma.store(0, Relaxed);
        if v.anon_vma() != 0 {
            new.raw().anon_vma.store(v.anon_vma(), Relaxed);
            if let Err(e) = self.anon_vma_clone(new, v, false) {
                self.anon_name_put(new.raw().anon_name.load(Relaxed));
                self.file_put(new.file());
                let c = self.slab.subsystem.get().expect("caches exist after boot").vm_area_struct;
                self.kmem_cache_free(c, new.va);
                return Err(e);
            }
            // anon_vma_clone counted the shared anon_vma once more for `new`.
        }
        let (s, e, off) = (v.start(), v.end(), v.pgoff());
        let off_at = off + ((addr - s) >> 12);
        if new_below {
            self.vma_set_range(st, new, s, addr, off);
            self.vma_set_range(st, v, addr, e, off_at);
        } else {
            self.vma_set_range(st, new, addr, e, off_at);
            self.vma_set_range(st, v, s, addr, off);
        }
        self.vma_link(st, new);
        Ok(new)
    }

    /// True when a VMA with `attrs`, `file` and `anon_vma` could sit
    /// next to `v` as one VMA, offsets aside (`is_mergeable_vma` plus
    /// `is_mergeable_anon_vma`).
    pub(crate) fn mergeable(
        &self,
        v: Vma<'_>,
        attrs: &VmaAttrs,
        file: u64,
        anon_vma: u64,
        other: Option<Vma<'_>>,
    ) -> bool {
        if (v.flags() ^ attrs.flags) & !vm::IGNORE_MERGE != 0 || attrs.flags & vm::SPECIAL != 0 {
            return false;
        }
        if v.file() != file
            || v.raw().vm_policy.load(Relaxed) != attrs.policy
            || v.raw().vm_userfaultfd_ctx.load(Relaxed) != 0
            || !self.anon_names_equal(v.raw().anon_name.load(Relaxed), attrs.anon_name)
        {
            return false;
        }
        // is_mergeable_anon_vma: the side without an anon_vma adopts the
        // other's, unless the VMA that has it was forked and still shares
        // its parents' anon_vmas (merging would widen the root lock's reach).
        let a = v.anon_vma();
        match (a, anon_vma) {
            (0, 0) => true,
            (0, _) => !other.is_some_and(|o| self.had_uncowed_parents(o)),
            (_, 0) => !self.had_uncowed_parents(v),
            _ => a == anon_vma,
        }
    }

    /// A VMA with an anon_vma linked to more than one (`vma_had_uncowed_parents`).
    fn had_uncowed_parents(&self, v: Vma<'_>) -> bool {
        let c = v.raw().anon_vma_chain.load(Relaxed);
        v.anon_vma() != 0 && c != 0 && self.anon_vma_chain_next(c) != 0
    }

    /// Tries to place a new range `[start, end)` by growing a neighbour
    /// (`vma_merge_new_range`); returns the VMA that now covers it.
    pub fn vma_merge_new_range<'k>(
        &'k self,
        st: &mut MmState,
        start: u64,
        end: u64,
        attrs: &VmaAttrs,
        file: u64,
        pgoff: u64,
    ) -> Option<Vma<'k>> {
        if attrs.flags & vm::SPECIAL != 0 {
            return None;
        }
        let pglen = (end - start) >> 12;
        let prev = self.vma_before(st, start).filter(|p| p.end() == start);
        let next = self.find_vma(st, start).filter(|n| n.start() == end);
        let left = prev.filter(|p| self.mergeable(*p, attrs, file, 0, None) && p.pgoff() + p.pages() == pgoff);
        let right = next.filter(|n| self.mergeable(*n, attrs, file, 0, None) && n.pgoff() == pgoff + pglen);
        match (left, right) {
            (Some(p), Some(n)) if self.anon_vmas_compatible(p, n) => {
                self.absorb_next(st, p, n);
                Some(p)
            }
            (Some(p), _) => {
                self.vma_set_range(st, p, p.start(), end, p.pgoff());
                Some(p)
            }
            (None, Some(n)) => {
                self.vma_set_range(st, n, start, n.end(), pgoff);
                Some(n)
            }
            _ => None,
        }
    }

    fn anon_vmas_compatible(&self, p: Vma<'_>, n: Vma<'_>) -> bool {
        let (a, b) = (p.anon_vma(), n.anon_vma());
        a == 0 || b == 0 || a == b
    }

    /// `p` grows over its neighbour `n`, which goes away; `p` adopts `n`'s
    /// `anon_vma` when it had none (`dup_anon_vma`).
    fn absorb_next(&self, st: &mut MmState, p: Vma<'_>, n: Vma<'_>) {
        if p.anon_vma() == 0 && n.anon_vma() != 0 {
            p.raw().anon_vma.store(n.anon_vma(), Relaxed);
            // Linking cannot fail for lack of memory in a way we could
            // undo here; on failure the pages stay reachable through `n`'s
            // chains, which we keep in that case.
            if self.anon_vma_clone(p, n, false).is_err() {
                p.raw().anon_vma.store(0, Relaxed);
            }
        }
        let end = n.end();
        self.vma_unlink(st, n);
        self.vm_area_free(n);
        self.vma_set_range(st, p, p.start(), end, p.pgoff());
    }

    /// Gives `[start, end)`, a range inside `v`, the attributes `attrs`,
    /// merging with neighbours or splitting `v` as Linux does
    /// (`vma_modify`). Returns the VMA that covers the range afterwards.
    pub fn vma_modify<'k>(
        &'k self,
        mm: &Mm,
        st: &mut MmState,
        v: Vma<'k>,
        start: u64,
        end: u64,
        attrs: &VmaAttrs,
    ) -> Result<Vma<'k>, Errno> {
        let file = v.file();
        let av = v.anon_vma();
        let pgoff = v.pgoff() + ((start - v.start()) >> 12);
        let pglen = (end - start) >> 12;
        if attrs.flags & vm::SPECIAL == 0 && v.flags() & vm::SPECIAL == 0 {
            let prev = if start == v.start() { self.vma_before(st, start).filter(|p| p.end() == start) } else { None };
            let next = if end == v.end() { self.find_vma(st, end).filter(|n| n.start() == end) } else { None };
            let left = prev.filter(|p| self.mergeable(*p, attrs, file, av, Some(v)) && p.pgoff() + p.pages() == pgoff);
            let right = next.filter(|n| self.mergeable(*n, attrs, file, av, Some(v)) && n.pgoff() == pgoff + pglen);
            match (left, right) {
                (Some(p), Some(n)) if self.anon_vmas_compatible(p, n) => {
                    // All three become one: prev absorbs v, then next.
                    self.absorb_next(st, p, v);
                    self.absorb_next(st, p, n);
                    return Ok(p);
                }
                (Some(p), _) => {
                    if end == v.end() {
                        self.absorb_next(st, p, v);
                    } else {
                        self.adopt_anon_vma(p, v);
                        self.vma_set_range(st, p, p.start(), end, p.pgoff());
                        self.vma_set_range(st, v, end, v.end(), pgoff + pglen);
                    }
                    return Ok(p);
                }
                (None, Some(n)) => {
                    if start == v.start() {
                        // next absorbs v.
                        self.adopt_anon_vma(n, v);
                        self.vma_unlink(st, v);
                        self.vm_area_free(v);
                    } else {
                        self.adopt_anon_vma(n, v);
                        self.vma_set_range(st, v, v.start(), start, v.pgoff());
                    }
                    self.vma_set_range(st, n, start, n.end(), pgoff);
                    return Ok(n);
                }
                _ => {}
            }
        }
        let mut cur = v;
        if start > cur.start() {
            self.split_vma(mm, st, cur, start, true, true)?;
            cur = self.vma_lookup(st, start).expect("the upper part of the split");
        }
        if end < cur.end() {
            self.split_vma(mm, st, cur, end, false, true)?;
        }
        cur.set_flags(attrs.flags);
        if cur.raw().anon_name.load(Relaxed) != attrs.anon_name {
            self.anon_name_get(attrs.anon_name);
            self.anon_name_put(cur.raw().anon_name.swap(attrs.anon_name, Relaxed));
        }
        cur.raw().vm_policy.store(attrs.policy, Relaxed);
        Ok(cur)
    }

    /// `dst` takes over pages of `src`: it needs `src`'s `anon_vma` when it
    /// has none.
    fn adopt_anon_vma(&self, dst: Vma<'_>, src: Vma<'_>) {
        if dst.anon_vma() == 0 && src.anon_vma() != 0 {
            dst.raw().anon_vma.store(src.anon_vma(), Relaxed);
            if self.anon_vma_clone(dst, src, false).is_err() {
                dst.raw().anon_vma.store(0, Relaxed);
            }
        }
    }

    /// The highest gap of at least `length` bytes inside `[low, high)`:
    /// `(gap_start, gap_end)`, ignoring guard gaps (`mas_empty_area_rev`).
    fn highest_gap(&self, st: &MmState, low: u64, high: u64, length: u64) -> Option<(u64, u64)> {
        if high <= low || high - low < length {
            return None;
        }
        let mut top = high;
        for (_, &va) in st.tree.range((Excluded(low), Unbounded)).rev() {
            let v = Vma::at(self, va);
            if v.start() >= top {
                continue;
            }
            let gap_start = v.end().max(low);
            if top > gap_start && top - gap_start >= length {
                return Some((gap_start, top));
            }
            top = v.start();
            if top <= low {
                return None;
            }
        }
        (top > low && top - low >= length).then_some((low, top))
    }

    /// The lowest gap of at least `length` bytes inside `[low, high)`
    /// (`mas_empty_area`).
    fn lowest_gap(&self, st: &MmState, low: u64, high: u64, length: u64) -> Option<(u64, u64)> {
        if high <= low || high - low < length {
            return None;
        }
        let mut bottom = low;
        for (_, &va) in st.tree.range((Excluded(low), Unbounded)) {
            let v = Vma::at(self, va);
            let gap_end = v.start().min(high);
            if gap_end > bottom && gap_end - bottom >= length {
                return Some((bottom, gap_end));
            }
            bottom = bottom.max(v.end());
            if bottom >= high {
                return None;
            }
        }
        (high > bottom && high - bottom >= length).then_some((bottom, high))
    }

    /// Top-down search for a free range (`unmapped_area_topdown`).
    pub fn unmapped_area_topdown(&self, st: &MmState, info: &UnmappedAreaInfo) -> Result<u64, Errno> {
        let length = info.length.checked_add(info.align_mask + info.start_gap).ok_or(Errno::ENOMEM)?;
        let guard = self.vm.stack_guard_gap.load(Relaxed);
        let low = info.low_limit.max(self.sysctl.mmap_min_addr.load(Relaxed));
        let mut high = info.high_limit;
        loop {
            let (_, gap_end) = self.highest_gap(st, low, high, length).ok_or(Errno::ENOMEM)?;
            let mut gap = gap_end - info.length;
            gap -= gap.wrapping_sub(info.align_offset) & info.align_mask;
            // The VMA above the gap; a stack there keeps its guard gap free.
            // (The check against the VMA below is for grows-up VMAs, which
            // x86 does not have.)
            let next = self.find_vma(st, gap_end - 1);
            if let Some(n) = next.filter(|n| n.flags() & vm::STARTGAP_FLAGS != 0) {
                if n.start_gap(guard) < gap_end {
                    high = n.start_gap(guard);
                    continue;
                }
            }
            return Ok(gap);
        }
    }

    /// Bottom-up search for a free range (`unmapped_area`).
    pub fn unmapped_area(&self, st: &MmState, info: &UnmappedAreaInfo) -> Result<u64, Errno> {
        let length = info.length.checked_add(info.align_mask + info.start_gap).ok_or(Errno::ENOMEM)?;
        let guard = self.vm.stack_guard_gap.load(Relaxed);
        let mut low = info.low_limit.max(self.sysctl.mmap_min_addr.load(Relaxed));
        loop {
            let (gap_start, _) = self.lowest_gap(st, low, info.high_limit, length).ok_or(Errno::ENOMEM)?;
            let mut gap = gap_start + info.start_gap;
            gap += info.align_offset.wrapping_sub(gap) & info.align_mask;
            if let Some(n) = self.find_vma(st, gap).filter(|n| n.flags() & vm::STARTGAP_FLAGS != 0) {
                if n.start_gap(guard) < gap + length - 1 {
                    low = n.end();
                    continue;
                }
            }
            return Ok(gap);
        }
    }

    /// Number of VMAs overlapping `[start, end)` whose end lies inside it.
    pub fn count_vmas_in(&self, st: &MmState, start: u64, end: u64) -> usize {
        st.tree.range((Excluded(start), Included(end))).count()
    }
}

/// Arguments of the gap search (`struct vm_unmapped_area_info`).
#[derive(Clone, Copy, Debug, Default)]
pub struct UnmappedAreaInfo {
    /// Bytes wanted.
    pub length: u64,
    /// Lowest address.
    pub low_limit: u64,
    /// One past the highest address.
    pub high_limit: u64,
    /// Alignment mask for the start.
    pub align_mask: u64,
    /// Wanted value of the start's masked bits.
    pub align_offset: u64,
    /// Space to leave below the start.
    pub start_gap: u64,
}

/// The in-RAM header of an `anon_vma_name` (kmalloc'd): a reference count
/// and the length, then the bytes of the name.
const NAME_HDR: u64 = 8;

impl Kernel {
    /// A new name object for `name` (`anon_vma_name_alloc`), one reference.
    pub fn anon_name_alloc(&self, name: &[u8]) -> Result<u64, Errno> {
        let va = self.kmalloc(NAME_HDR + name.len() as u64 + 1, Gfp::GFP_KERNEL).ok_or(Errno::ENOMEM)?;
        let pa = crate::arch::x86_64::virt_to_phys(va).ok_or(Errno::ENOMEM)?;
        self.mem.view::<core::sync::atomic::AtomicU64>(pa, 1)[0].store((1 << 32) | name.len() as u64, Relaxed);
        self.mem.write(crate::types::PhysAddr(pa.0 + NAME_HDR), name);
        Ok(va.0)
    }
    fn name_word(&self, va: u64) -> &core::sync::atomic::AtomicU64 {
        let pa = crate::arch::x86_64::virt_to_phys(VirtAddr(va)).expect("names live in the direct map");
        &self.mem.view::<core::sync::atomic::AtomicU64>(pa, 1)[0]
    }
    /// Takes a reference on a name (0: none).
    pub fn anon_name_get(&self, va: u64) {
        if va != 0 {
            self.name_word(va).fetch_add(1 << 32, Relaxed);
        }
    }
    /// Drops a reference on a name, freeing it with the last.
    pub fn anon_name_put(&self, va: u64) {
        if va != 0 && self.name_word(va).fetch_sub(1 << 32, Relaxed) >> 32 == 1 {
            self.kfree(VirtAddr(va));
        }
    }
    /// The bytes of a name.
    pub fn anon_name_bytes(&self, va: u64) -> Vec<u8> {
        if va == 0 {
            return Vec::new();
        }
        let len = (self.name_word(va).load(Relaxed) & 0xffff_ffff) as usize;
        let mut b = alloc::vec![0u8; len];
        let pa = crate::arch::x86_64::virt_to_phys(VirtAddr(va)).expect("names live in the direct map");
        self.mem.read(crate::types::PhysAddr(pa.0 + NAME_HDR), &mut b);
        b
    }
    /// Same name (`anon_vma_name_eq`): the same object or equal bytes.
    pub fn anon_names_equal(&self, a: u64, b: u64) -> bool {
        a == b || (a != 0 && b != 0 && self.anon_name_bytes(a) == self.anon_name_bytes(b))
    }
}
