//! `madvise` (Linux's `mm/madvise.c`) and `prctl(PR_SET_VMA_ANON_NAME)`.
//!
//! Every advice Linux 6.18 accepts is validated as Linux validates it.
//! Advice that only sets VMA flags splits and merges VMAs as Linux does;
//! DONTNEED zaps, FREE marks pages lazily freeable (they keep their data
//! until reclaim takes them), POPULATE_* fault pages in, GUARD_* install
//! and remove guard markers. COLD/PAGEOUT deactivate nothing until reclaim
//! exists, and WILLNEED has nothing to read ahead for anonymous memory.

use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use crate::arch::x86_64::pgtable::{bits, entry_pfn, pte_present};
use crate::kernel::Kernel;
use crate::memory::MmuGather;
use crate::mm_types::{vm, MmState, Task, Vma};
use crate::page::pg;
use crate::types::Errno;
use crate::vma::VmaAttrs;

/// `madvise` advice values (x86-64).
pub mod madv {
    #![allow(missing_docs)]
    pub const NORMAL: u64 = 0;
    pub const RANDOM: u64 = 1;
    pub const SEQUENTIAL: u64 = 2;
    pub const WILLNEED: u64 = 3;
    pub const DONTNEED: u64 = 4;
    pub const FREE: u64 = 8;
    pub const REMOVE: u64 = 9;
    pub const DONTFORK: u64 = 10;
    pub const DOFORK: u64 = 11;
    pub const MERGEABLE: u64 = 12;
    pub const UNMERGEABLE: u64 = 13;
    pub const HUGEPAGE: u64 = 14;
    pub const NOHUGEPAGE: u64 = 15;
    pub const DONTDUMP: u64 = 16;
    pub const DODUMP: u64 = 17;
    pub const WIPEONFORK: u64 = 18;
    pub const KEEPONFORK: u64 = 19;
    pub const COLD: u64 = 20;
    pub const PAGEOUT: u64 = 21;
    pub const POPULATE_READ: u64 = 22;
    pub const POPULATE_WRITE: u64 = 23;
    pub const DONTNEED_LOCKED: u64 = 24;
    pub const COLLAPSE: u64 = 25;
    pub const GUARD_INSTALL: u64 = 102;
    pub const GUARD_REMOVE: u64 = 103;
    pub const HWPOISON: u64 = 100;
    pub const SOFT_OFFLINE: u64 = 101;
}

/// The non-present PTE value of a guard region page (a PTE marker).
pub const GUARD_PTE: u64 = 0x8000_0000_0000_0200;

/// Advice this kernel accepts. HWPOISON and SOFT_OFFLINE need
/// CONFIG_MEMORY_FAILURE, which we (like this host's kernel) do not have.
fn behavior_valid(b: u64) -> bool {
    matches!(b, 0..=4 | 8..=25 | 102..=103)
}

impl Kernel {
    /// The `madvise` system call.
    pub fn sys_madvise(&self, task: &Task, start: u64, len_in: u64, behavior: u64) -> Result<u64, Errno> {
        if !behavior_valid(behavior) {
            return Err(Errno::EINVAL);
        }
        if start & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        let len = len_in.wrapping_add(4095) & !4095;
        if len_in != 0 && len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = start.wrapping_add(len);
        if end < start {
            return Err(Errno::EINVAL);
        }
        if end == start {
            return Ok(0);
        }
        let mm = &*task.mm;
        let mut st = mm.lock.write();
        if matches!(behavior, madv::POPULATE_READ | madv::POPULATE_WRITE) {
            return self.madvise_populate(task, &st, start, end, behavior == madv::POPULATE_WRITE);
        }
        let mut next = self.find_vma(&st, start);
        let mut start = start;
        let mut unmapped = false;
        loop {
            let Some(v) = next else { return Err(Errno::ENOMEM) };
            if start < v.start() {
                unmapped = true;
                start = v.start();
                if start >= end {
                    break;
                }
            }
            let tmp = v.end().min(end);
            let after = self.madvise_vma(task, &mut st, v, start, tmp, behavior)?;
            start = tmp.max(after);
            if start >= end {
                break;
            }
            next = self.find_vma(&st, start);
        }
        drop(st);
        if unmapped {
            return Err(Errno::ENOMEM);
        }
        Ok(0)
    }

    /// Applies advice to `[start, end)` of `v`; returns the end of the VMA
    /// now covering the range (after merges).
    fn madvise_vma(
        &self,
        task: &Task,
        st: &mut MmState,
        v: Vma<'_>,
        start: u64,
        end: u64,
        b: u64,
    ) -> Result<u64, Errno> {
        let f = v.flags();
        let mut nf = f;
        match b {
            madv::REMOVE => {
                if f & vm::LOCKED != 0 || v.is_anonymous() {
                    return Err(Errno::EINVAL);
                }
                if f & (vm::SHARED | vm::MAYWRITE) != (vm::SHARED | vm::MAYWRITE) {
                    return Err(Errno::EACCES);
                }
                let first = v.linear_page_index(start);
                let last = v.linear_page_index(end - 4096);
                // vfs_fallocate: the hole must end below the filesystem's
                // largest file (ext4's 16 TiB for disk files).
                let max = if self.shmem_file(v.file()).is_some_and(|f| f.thp_aligned) {
                    0xffff_ffff_f000
                } else {
                    i64::MAX as u64
                };
                if (first << 12).checked_add(end - start).is_none_or(|e| e > max) {
                    return Err(Errno::EFBIG);
                }
                self.shmem_punch_hole(Some((task, &*st)), v.file(), first, last);
                return Ok(end);
            }
            madv::WILLNEED => return Ok(end),
            madv::COLD | madv::PAGEOUT => {
                if f & (vm::LOCKED | vm::PFNMAP | vm::HUGETLB) != 0 {
                    return Err(Errno::EINVAL);
                }
                if b == madv::PAGEOUT {
                    self.madvise_pageout(task, v, start, end);
                }
                return Ok(end);
            }
            madv::DONTNEED | madv::DONTNEED_LOCKED | madv::FREE => {
                let mut forbidden = vm::PFNMAP;
                if b != madv::DONTNEED_LOCKED {
                    forbidden |= vm::LOCKED;
                }
                if f & forbidden != 0 {
                    return Err(Errno::EINVAL);
                }
                if let Some(h) = crate::hugetlb::vma_hugetlb_size(v) {
                    if b == madv::FREE || start & (h - 1) != 0 {
                        return Err(Errno::EINVAL);
                    }
                }
                if b == madv::FREE {
                    if !v.is_anonymous() {
                        return Err(Errno::EINVAL);
                    }
                    self.madvise_free(task, v, start, end);
                } else {
                    self.zap_keep_guards(task, v, start, end);
                }
                return Ok(end);
            }
            madv::COLLAPSE => {
                // Until THPs exist nothing can be collapsed, and Linux
                // answers a collapse that builds no huge page with EINVAL
                // (madvise_collapse_errno), as it does for ineligible VMAs.
                return Err(Errno::EINVAL);
            }
            madv::GUARD_INSTALL => {
                if f & (vm::SPECIAL | vm::HUGETLB | vm::LOCKED) != 0 {
                    return Err(Errno::EINVAL);
                }
                // With an anon_vma, fork copies the markers.
                self.anon_vma_prepare_in(st, v).map_err(|_| Errno::ENOMEM)?;
                self.guard_install(task, v, start, end);
                return Ok(end);
            }
            madv::GUARD_REMOVE => {
                if f & (vm::SPECIAL | vm::HUGETLB) != 0 {
                    return Err(Errno::EINVAL);
                }
                self.guard_remove(task, start, end);
                return Ok(end);
            }
            madv::NORMAL => nf &= !(vm::SEQ_READ | vm::RAND_READ),
            madv::SEQUENTIAL => nf = (nf & !vm::RAND_READ) | vm::SEQ_READ,
            madv::RANDOM => nf = (nf & !vm::SEQ_READ) | vm::RAND_READ,
            madv::DONTFORK => nf |= vm::DONTCOPY,
            madv::DOFORK => {
                if f & vm::IO != 0 {
                    return Err(Errno::EINVAL);
                }
                nf &= !vm::DONTCOPY;
            }
            madv::WIPEONFORK => {
                if !v.is_anonymous() || f & vm::SHARED != 0 {
                    return Err(Errno::EINVAL);
                }
                nf |= vm::WIPEONFORK;
            }
            madv::KEEPONFORK => {
                if f & vm::DROPPABLE != 0 {
                    return Err(Errno::EINVAL);
                }
                nf &= !vm::WIPEONFORK;
            }
            madv::DONTDUMP => nf |= vm::DONTDUMP,
            madv::DODUMP => {
                if f & vm::SPECIAL != 0 || f & vm::DROPPABLE != 0 {
                    return Err(Errno::EINVAL);
                }
                nf &= !vm::DONTDUMP;
            }
            madv::MERGEABLE => {
                if f & (vm::MERGEABLE
                    | vm::SHARED
                    | vm::MAYSHARE
                    | vm::SPECIAL
                    | vm::HUGETLB
                    | vm::MIXEDMAP
                    | vm::DROPPABLE)
                    == 0
                {
                    nf |= vm::MERGEABLE;
                }
            }
            madv::UNMERGEABLE => nf &= !vm::MERGEABLE,
            madv::HUGEPAGE => nf = (nf & !vm::NOHUGEPAGE) | vm::HUGEPAGE,
            madv::NOHUGEPAGE => nf = (nf & !vm::HUGEPAGE) | vm::NOHUGEPAGE,
            _ => return Err(Errno::EINVAL),
        }
        if nf == f {
            return Ok(end);
        }
        let mut attrs = VmaAttrs::of(v);
        attrs.flags = nf;
        match self.vma_modify(&task.mm, st, v, start, end, &attrs) {
            Ok(nv) => {
                nv.set_flags(nf);
                Ok(nv.end())
            }
            Err(Errno::ENOMEM) => Err(Errno::EAGAIN),
            Err(e) => Err(e),
        }
    }

    /// MADV_POPULATE_READ/WRITE (`madvise_populate`): faults the whole
    /// range in as GUP does, page by page; ENOMEM where no VMA is, EINVAL
    /// for a VMA the access is not allowed in, EFAULT when a fault fails
    /// with a signal.
    fn madvise_populate(&self, task: &Task, st: &MmState, start: u64, end: u64, write: bool) -> Result<u64, Errno> {
        let mm = &*task.mm;
        let mut a = start;
        while a < end {
            let Some(v) = self.vma_lookup(st, a) else { return Err(Errno::ENOMEM) };
            let f = v.flags();
            let allowed = if write { f & vm::WRITE != 0 } else { f & vm::READ != 0 };
            if f & (vm::IO | vm::PFNMAP) != 0 || !allowed {
                return Err(Errno::EINVAL);
            }
            let stop = v.end().min(end);
            while a < stop {
                let present = self.follow_pte(mm, a).is_some_and(|(_, e)| !write || e & bits::RW != 0);
                if !present {
                    let flags =
                        crate::memory::fault_flag::USER | if write { crate::memory::fault_flag::WRITE } else { 0 };
                    match self.handle_mm_fault(mm, st, v, a, flags) {
                        Ok(()) => {}
                        Err(crate::memory::VmFault::Oom) => return Err(Errno::ENOMEM),
                        Err(_) => return Err(Errno::EFAULT),
                    }
                }
                a += 4096;
            }
        }
        Ok(0)
    }

    /// MADV_PAGEOUT without swap (`madvise_cold_or_pageout_pte_range` and
    /// `shrink_folio_list`): anonymous pages cannot go anywhere and stay;
    /// file and shmem pages mapped only here are unmapped on the way to
    /// writeback and stay in their page cache.
    fn madvise_pageout(&self, task: &Task, v: Vma<'_>, start: u64, end: u64) {
        let mm = &*task.mm;
        let zero = self.vm.zero_pfn.get().copied();
        let mut tlb = MmuGather::default();
        let mut a = start;
        while a < end {
            let e = self.pte_of(mm, a).map_or(0, |p| p.load(Relaxed));
            if e & bits::PRESENT != 0 && e & bits::SPECIAL == 0 && Some(entry_pfn(e)) != zero {
                let page = self.memmap.page(entry_pfn(e));
                let anon = page.mapping.load(Relaxed) & crate::rmap::PAGE_MAPPING_ANON != 0;
                if !anon && page.mapcount.load(Relaxed) == 0 {
                    self.zap_pte_range(mm, v, a, a + 4096, &mut tlb);
                }
            }
            a += 4096;
        }
        self.tlb_finish_mmu(mm, &mut tlb);
    }

    /// Zaps `[start, end)` of `v` (MADV_DONTNEED), leaving guard markers.
    fn zap_keep_guards(&self, task: &Task, v: Vma<'_>, start: u64, end: u64) {
        let mm = &*task.mm;
        let guards: Vec<u64> = (start..end)
            .step_by(4096)
            .filter(|&a| self.pte_of(mm, a).is_some_and(|p| p.load(Relaxed) == GUARD_PTE))
            .collect();
        let mut tlb = MmuGather::default();
        self.zap_pte_range(mm, v, start, end, &mut tlb);
        self.tlb_finish_mmu(mm, &mut tlb);
        for a in guards {
            if let Some(p) = self.pte_of(mm, a) {
                p.store(GUARD_PTE, Relaxed);
            }
        }
    }

    /// MADV_FREE: exclusive anonymous pages become clean and lazily
    /// freeable; shared ones are only unmapped here (`madvise_free_pte_range`).
    fn madvise_free(&self, task: &Task, v: Vma<'_>, start: u64, end: u64) {
        let mm = &*task.mm;
        let zero = self.vm.zero_pfn.get().copied();
        let mut shared = Vec::new();
        let mut a = start;
        while a < end {
            if let Some(p) = self.pte_of(mm, a) {
                let e = p.load(Relaxed);
                if e != 0 && pte_present(e) && e & bits::SPECIAL == 0 && Some(entry_pfn(e)) != zero {
                    let pfn = entry_pfn(e);
                    let page = self.memmap.page(pfn);
                    if page.mapcount.load(Relaxed) > 0 {
                        shared.push(a);
                    } else {
                        p.store(e & !(bits::DIRTY | bits::ACCESSED), Relaxed);
                        if page.test(pg::SWAPBACKED) {
                            self.folio_move_lru(pfn, 0, pg::SWAPBACKED | pg::ACTIVE | pg::REFERENCED | pg::DIRTY);
                            self.events().count(crate::vmstat::VmEvent::Pglazyfree, 1);
                        }
                    }
                }
            }
            a += 4096;
        }
        self.flush_tlb_range(mm, start, end);
        let _ = (v, shared);
    }

    fn guard_install(&self, task: &Task, v: Vma<'_>, start: u64, end: u64) {
        let mm = &*task.mm;
        let mut tlb = MmuGather::default();
        self.zap_pte_range(mm, v, start, end, &mut tlb);
        self.tlb_finish_mmu(mm, &mut tlb);
        let mut a = start;
        while a < end {
            if let Ok((t, i)) = self.pte_offset_alloc(mm, a) {
                self.table(t)[i].store(GUARD_PTE, Relaxed);
            }
            a += 4096;
        }
    }

    fn guard_remove(&self, task: &Task, start: u64, end: u64) {
        let mm = &*task.mm;
        let mut a = start;
        while a < end {
            if let Some(p) = self.pte_of(mm, a) {
                let _ = p.compare_exchange(GUARD_PTE, 0, Relaxed, Relaxed);
            }
            a += 4096;
        }
    }

    /// `prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, start, len, name)`: names
    /// (or, with `None`, unnames) the anonymous VMAs of a range.
    pub fn sys_set_vma_anon_name(
        &self,
        task: &Task,
        start: u64,
        len_in: u64,
        name: Option<&[u8]>,
    ) -> Result<u64, Errno> {
        if let Some(n) = name {
            if n.len() > 80 {
                return Err(Errno::EINVAL);
            }
            if n.iter().any(|&c| !(0x20..0x7f).contains(&c) || matches!(c, b'\\' | b'`' | b'$' | b'[' | b']')) {
                return Err(Errno::EINVAL);
            }
        }
        if start & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        let len = len_in.wrapping_add(4095) & !4095;
        if len_in != 0 && len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = start.wrapping_add(len);
        if end < start {
            return Err(Errno::EINVAL);
        }
        if end == start {
            return Ok(0);
        }
        let obj = match name {
            Some(n) => self.anon_name_alloc(n)?,
            None => 0,
        };
        let mut st = task.mm.lock.write();
        let mut start = start;
        let mut unmapped = false;
        let mut res = Ok(0);
        let mut next = self.find_vma(&st, start);
        loop {
            let Some(v) = next else {
                res = Err(Errno::ENOMEM);
                break;
            };
            if start < v.start() {
                unmapped = true;
                start = v.start();
                if start >= end {
                    break;
                }
            }
            let tmp = v.end().min(end);
            if v.file() != 0 {
                res = Err(Errno::EBADF);
                break;
            }
            let mut attrs = VmaAttrs::of(v);
            attrs.anon_name = obj;
            if !self.anon_names_equal(attrs.anon_name, v.raw().anon_name.load(Relaxed)) {
                match self.vma_modify(&task.mm, &mut st, v, start, tmp, &attrs) {
                    Ok(_) => {}
                    Err(Errno::ENOMEM) => {
                        res = Err(Errno::EAGAIN);
                        break;
                    }
                    Err(e) => {
                        res = Err(e);
                        break;
                    }
                }
            }
            start = tmp;
            if start >= end {
                break;
            }
            next = self.find_vma(&st, start);
        }
        drop(st);
        self.anon_name_put(obj);
        if res.is_ok() && unmapped {
            return Err(Errno::ENOMEM);
        }
        res
    }
}
