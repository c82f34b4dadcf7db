//! Page faults, user memory access, and the page-range walks of unmap and
//! fork (Linux's `mm/memory.c` and `arch/x86/mm/fault.c`).
//!
//! A user access goes through the software MMU ([`Kernel::mmu_translate`]);
//! a miss that the tables cannot satisfy becomes a page fault handled as
//! `do_user_addr_fault` does: find the VMA (growing a stack when the
//! address lies just below one), check the access against its flags, then
//! `handle_mm_fault`: the shared zero page for a read of untouched
//! anonymous memory, a new zeroed page for a write, a copy (or reuse) for
//! a write to a write-protected private page. What Linux answers with a
//! signal ends as a [`SigInfo`].

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::arch::x86_64::pgtable::{bits, entry_pfn, mk_entry, pte_present, Level, PTRS_PER_TABLE};
use crate::arch::x86_64::tlb::{pf, Access};
use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::mm_types::{mm_counter, vm, Mm, MmState, Task, Vma};
use crate::page::pg;
use crate::rmap::PAGE_MAPPING_ANON;
use crate::types::{Errno, Pfn, VirtAddr};
use crate::vmstat::{NodeStat, VmEvent};

/// `SIGBUS`.
pub const SIGBUS: i32 = 7;
/// `SIGSEGV`.
pub const SIGSEGV: i32 = 11;
/// `si_code` of a SIGSEGV for an address no VMA covers.
pub const SEGV_MAPERR: i32 = 1;
/// `si_code` of a SIGSEGV for an access the VMA does not allow.
pub const SEGV_ACCERR: i32 = 2;
/// `si_code` of a SIGBUS for a nonexistent address in an object.
pub const BUS_ADRERR: i32 = 2;

/// The signal a faulting access delivers (`siginfo_t`'s fields that matter).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SigInfo {
    /// Signal number.
    pub signo: i32,
    /// `si_code`.
    pub code: i32,
    /// `si_addr`: the faulting address.
    pub addr: u64,
}

/// Why `handle_mm_fault` failed (`VM_FAULT_*` error bits).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VmFault {
    /// No memory for a page or a table.
    Oom,
    /// SIGBUS.
    Sigbus,
    /// SIGSEGV.
    Sigsegv,
}

/// Fault flags (`FAULT_FLAG_*`) this layer uses.
pub mod fault_flag {
    #![allow(missing_docs)]
    pub const WRITE: u32 = 1 << 0;
    pub const USER: u32 = 1 << 6;
    pub const INSTRUCTION: u32 = 1 << 8;
}

/// Frames whose last mapping went away and that may be freed once the TLBs
/// no longer reach them (`struct mmu_gather`).
#[derive(Default)]
pub struct MmuGather {
    /// Pages to release after the flush.
    pub pages: Vec<Pfn>,
    /// Lowest address whose translation changed.
    pub start: u64,
    /// End of the changed range.
    pub end: u64,
    /// Page-table pages to free after the flush.
    pub tables: Vec<Pfn>,
}

impl MmuGather {
    fn note(&mut self, start: u64, end: u64) {
        if self.start == self.end {
            self.start = start;
            self.end = end;
        } else {
            self.start = self.start.min(start);
            self.end = self.end.max(end);
        }
    }
}

/// The page protection bits for VMA flags (x86's `protection_map`, with NX).
pub const fn vm_get_page_prot(flags: u64) -> u64 {
    let acc = flags & (vm::READ | vm::WRITE | vm::EXEC);
    if acc == 0 {
        return bits::PROTNONE | bits::ACCESSED;
    }
    let mut p = bits::PRESENT | bits::USER | bits::ACCESSED;
    if flags & vm::SHARED != 0 && flags & vm::WRITE != 0 {
        p |= bits::RW;
    }
    if flags & vm::EXEC == 0 {
        p |= bits::NX;
    }
    p
}

/// Bits of a PTE that survive a protection change (`_PAGE_CHG_MASK`).
pub const PAGE_CHG_MASK: u64 = bits::PFN_MASK
    | bits::PWT
    | bits::PCD
    | bits::ACCESSED
    | bits::DIRTY
    | bits::SPECIAL
    | bits::SOFT_DIRTY
    | bits::PSE;

const PMD_SIZE: u64 = 1 << 21;

/// PTEs a read fault on a file maps around itself (`fault_around_bytes`
/// of 64 KiB).
pub const FAULT_AROUND_PAGES: u64 = 16;

/// Pages a page-cache miss on a disk file reads around itself (the
/// device's `read_ahead_kb` of 128 KiB).
pub const READAROUND_PAGES: u64 = 32;

impl Kernel {
    /// The shared zero page, allocated on first use.
    pub fn zero_pfn(&self) -> Pfn {
        *self.vm.zero_pfn.call_once(|| {
            let pfn = self.alloc_pages(Gfp::GFP_KERNEL | Gfp::ZERO, 0).expect("the zero page at boot");
            self.memmap.page(pfn).set(pg::RESERVED);
            pfn
        })
    }

    /// Adds to a node counter: a plain update while all CPUs share one
    /// host thread, an atomic one otherwise.
    #[inline]
    pub fn node_stat_add(&self, nid: usize, item: NodeStat, n: i64) {
        if self.threaded.load(Relaxed) {
            self.nodes[nid].stat.add(item as usize, n);
        } else {
            self.nodes[nid].stat.add_unshared(item as usize, n);
        }
    }

    /// The PTE table covering `va` and the entry's index, allocating
    /// missing tables (`pte_alloc`); tables count in the mm's VmPTE.
    pub fn pte_offset_alloc(&self, mm: &Mm, va: u64) -> Result<(Pfn, usize), Errno> {
        let mut table = mm.pgd;
        let mut l = Level::top(self.pgtable_levels);
        while let Some(next) = l.next() {
            let e = &self.table(table)[l.index(VirtAddr(va))];
            let mut v = e.load(Relaxed);
            if v & bits::PRESENT == 0 {
                let new = self.pgtable_alloc().ok_or(Errno::ENOMEM)?;
                mm.pgtables_bytes.fetch_add(4096, Relaxed);
                v = mk_entry(new, bits::PAGE_TABLE);
                e.store(v, Relaxed);
            } else if v & bits::PSE != 0 {
                return Err(Errno::EEXIST);
            }
            table = entry_pfn(v);
            l = next;
        }
        Ok((table, Level::Pte.index(VirtAddr(va))))
    }

    /// The PTE table covering `va`, if the tables exist (`pte_offset_map`).
    pub fn pte_table(&self, mm: &Mm, va: u64) -> Option<Pfn> {
        let mut table = mm.pgd;
        let mut l = Level::top(self.pgtable_levels);
        while let Some(next) = l.next() {
            let v = self.table(table)[l.index(VirtAddr(va))].load(Relaxed);
            if v & bits::PRESENT == 0 || v & bits::PSE != 0 {
                return None;
            }
            table = entry_pfn(v);
            l = next;
        }
        Some(table)
    }

    /// The PTE of `va`, if its table exists.
    pub fn pte_of(&self, mm: &Mm, va: u64) -> Option<&AtomicU64> {
        self.pte_table(mm, va).map(|t| &self.table(t)[Level::Pte.index(VirtAddr(va))])
    }

    /// Takes a PTE table's split lock (`pte_offset_map_lock`): a bit lock in
    /// the table page's `struct page`.
    /// While every CPU runs on one host thread (the deterministic mode)
    /// no two faults can interleave, so the lock is only taken when CPUs
    /// run on host threads of their own, as the pcp lists do.
    #[inline]
    pub fn pte_lock(&self, table: Pfn) -> PteLock<'_> {
        if !self.threaded.load(Relaxed) {
            return PteLock { flags: None };
        }
        let page = self.memmap.page(table);
        while page.flags.fetch_or(pg::LOCKED, core::sync::atomic::Ordering::Acquire) & pg::LOCKED != 0 {
            core::hint::spin_loop();
        }
        PteLock { flags: Some(&page.flags) }
    }

    /// Handles a user page fault at `addr` with x86 error code `code`
    /// (`do_user_addr_fault`): `Ok` when the access may be retried, the
    /// signal otherwise.
    pub fn handle_page_fault(&self, task: &Task, addr: u64, code: u64) -> Result<(), SigInfo> {
        let mm = &*task.mm;
        let segv = |c| SigInfo { signo: SIGSEGV, code: c, addr };
        if code & pf::RSVD != 0 || addr >= crate::arch::x86_64::TASK_SIZE_MAX {
            return Err(segv(SEGV_MAPERR));
        }
        let mut flags = fault_flag::USER;
        if code & pf::WRITE != 0 {
            flags |= fault_flag::WRITE;
        }
        if code & pf::INSTR != 0 {
            flags |= fault_flag::INSTRUCTION;
        }
        self.events().count(VmEvent::Pgfault, 1);
        loop {
            let st = mm.lock.read();
            let vma = match self.find_vma(&st, addr) {
                Some(v) if v.start() <= addr => v,
                Some(v) if v.flags() & vm::GROWSDOWN != 0 => {
                    drop(st);
                    let mut w = mm.lock.write();
                    // Re-check under the write lock: the tree may have changed.
                    let v = match self.find_vma(&w, addr) {
                        Some(v) if v.start() > addr && v.flags() & vm::GROWSDOWN != 0 => v,
                        Some(v) if v.start() <= addr => continue,
                        _ => return Err(segv(SEGV_MAPERR)),
                    };
                    let _ = v;
                    if self.expand_downwards(task, &mut w, v, addr).is_err() {
                        return Err(segv(SEGV_MAPERR));
                    }
                    continue;
                }
                _ => return Err(segv(SEGV_MAPERR)),
            };
            if access_error(code, vma) {
                return Err(segv(SEGV_ACCERR));
            }
            return match self.handle_mm_fault(mm, &st, vma, addr, flags) {
                Ok(()) => Ok(()),
                Err(VmFault::Sigbus) => Err(SigInfo { signo: SIGBUS, code: BUS_ADRERR, addr }),
                // The OOM killer is a later component; the task gets the
                // SIGKILL-equivalent answer Linux's pagefault_out_of_memory
                // ends in for the victim: we report SIGBUS-free SIGSEGV.
                Err(VmFault::Oom) | Err(VmFault::Sigsegv) => Err(segv(SEGV_MAPERR)),
            };
        }
    }

    /// Grows a stack VMA down to cover `addr` (`expand_downwards`).
    pub fn expand_downwards(&self, task: &Task, st: &mut MmState, v: Vma<'_>, addr: u64) -> Result<(), Errno> {
        if v.flags() & vm::GROWSDOWN == 0 {
            return Err(Errno::EFAULT);
        }
        let address = addr & !0xfff;
        if address < self.sysctl.mmap_min_addr.load(Relaxed) {
            return Err(Errno::EPERM);
        }
        let guard = self.vm.stack_guard_gap.load(Relaxed);
        if let Some(prev) = self.vma_before(st, v.start().saturating_sub(1)).filter(|p| p.end() <= v.start()) {
            if prev.flags() & vm::GROWSDOWN == 0 && prev.is_accessible() && address.saturating_sub(prev.end()) < guard {
                return Err(Errno::ENOMEM);
            }
            if address < prev.end() {
                return Err(Errno::ENOMEM);
            }
        }
        self.anon_vma_prepare_in(st, v).map_err(|_| Errno::ENOMEM)?;
        if address < v.start() {
            let size = v.end() - address;
            let grow = (v.start() - address) >> 12;
            if grow > v.pgoff() {
                return Ok(());
            }
            // acct_stack_growth
            if !self.may_expand_vm(task, st, v.flags(), grow) {
                return Err(Errno::ENOMEM);
            }
            if size > task.rlimit(crate::mm_types::rlimit::STACK) {
                return Err(Errno::ENOMEM);
            }
            if !self.mlock_future_ok(task, st, v.flags(), grow << 12) {
                return Err(Errno::ENOMEM);
            }
            if v.flags() & vm::ACCOUNT != 0 {
                self.vm_enough_memory(task, grow as i64, true)?;
            }
            if v.flags() & vm::LOCKED != 0 {
                st.locked_vm += grow;
            }
            crate::vma::vm_stat_account(st, v.flags(), grow as i64);
            let (end, off) = (v.end(), v.pgoff() - grow);
            self.vma_set_range(st, v, address, end, off);
        }
        Ok(())
    }

    /// Resolves a fault inside `vma` (`handle_mm_fault`).
    pub fn handle_mm_fault(&self, mm: &Mm, st: &MmState, vma: Vma<'_>, addr: u64, flags: u32) -> Result<(), VmFault> {
        if vma.flags() & vm::HUGETLB != 0 {
            // Empty hugetlb pools: no page to fault in (hugetlb_no_page).
            return Err(VmFault::Sigbus);
        }
        let (table, idx) = self.pte_offset_alloc(mm, addr).map_err(|_| VmFault::Oom)?;
        let pte = &self.table(table)[idx];
        let write = flags & fault_flag::WRITE != 0;
        // An empty entry is handled without the lock first, as
        // handle_pte_fault does; the handlers take it and look again.
        if pte.load(Relaxed) == 0 {
            if vma.is_anonymous() {
                return self.do_anonymous_page(mm, st, vma, addr, table, idx, write);
            }
            return self.do_shared_fault(mm, st, vma, addr, table, idx, write);
        }
        let lock = self.pte_lock(table);
        let v = pte.load(Relaxed);
        if v == 0 {
            // Zapped between the look and the lock: fault again.
            return Ok(());
        }
        if !pte_present(v) {
            if v == crate::madvise::GUARD_PTE {
                return Err(VmFault::Sigsegv);
            }
            // Swap entries arrive with the swap component.
            return Err(VmFault::Sigbus);
        }
        if v & bits::PRESENT == 0 {
            // PROT_NONE entry in an accessible VMA: a NUMA hinting fault
            // restores the VMA's protection.
            let new = (v & PAGE_CHG_MASK) | vm_get_page_prot(vma.flags());
            pte.store(new, Relaxed);
            drop(lock);
            self.flush_tlb_page(mm, addr);
            return Ok(());
        }
        if write && v & bits::RW == 0 {
            drop(lock);
            return self.do_wp_page(mm, st, vma, addr, table, idx);
        }
        let mut set = bits::ACCESSED;
        if write {
            set |= bits::DIRTY;
        }
        pte.fetch_or(set, Relaxed);
        Ok(())
    }

    /// Maps a page of anonymous memory (`do_anonymous_page`): the zero page
    /// for a read, a new zeroed page for a write.
    #[allow(clippy::too_many_arguments)]
    fn do_anonymous_page(
        &self,
        mm: &Mm,
        st: &MmState,
        vma: Vma<'_>,
        addr: u64,
        table: Pfn,
        idx: usize,
        write: bool,
    ) -> Result<(), VmFault> {
        if vma.flags() & vm::SHARED != 0 {
            return Err(VmFault::Sigbus);
        }
        let prot = vm_get_page_prot(vma.flags());
        if !write {
            let e = mk_entry(self.zero_pfn(), prot | bits::SPECIAL);
            let _l = self.pte_lock(table);
            let pte = &self.table(table)[idx];
            if pte.load(Relaxed) == 0 {
                pte.store(e, Relaxed);
            }
            return Ok(());
        }
        let av = self.anon_vma_prepare_in(st, vma).map_err(|_| VmFault::Oom)?;
        let pfn = self.alloc_pages(Gfp::GFP_HIGHUSER_MOVABLE | Gfp::ZERO, 0).ok_or(VmFault::Oom)?;
        let mut e = mk_entry(pfn, prot);
        if vma.flags() & vm::WRITE != 0 {
            e |= bits::RW | bits::DIRTY;
        }
        let l = self.pte_lock(table);
        let pte = &self.table(table)[idx];
        if pte.load(Relaxed) != 0 {
            drop(l);
            self.free_pages(pfn, 0);
            return Ok(());
        }
        self.folio_add_new_anon_rmap(pfn, av, vma.linear_page_index(addr));
        mm.add_counter_with(mm_counter::ANONPAGES, 1, !self.threaded.load(Relaxed));
        pte.store(e, Relaxed);
        drop(l);
        self.folio_add_lru(pfn, vma.flags() & vm::LOCKED != 0);
        Ok(())
    }

    /// A fault in a shared or file VMA. Anonymous shared memory (shmem)
    /// and files arrive with the page-cache component; until then such
    /// VMAs are refused at mmap time and this path answers SIGBUS.
    #[allow(clippy::too_many_arguments)]
    fn do_shared_fault(
        &self,
        mm: &Mm,
        st: &MmState,
        vma: Vma<'_>,
        addr: u64,
        table: Pfn,
        idx: usize,
        write: bool,
    ) -> Result<(), VmFault> {
        let Some(file) = self.shmem_file(vma.file()) else { return Err(VmFault::Sigbus) };
        let index = vma.linear_page_index(addr);
        // Observed on Linux 6.18 with ext4 (not with tmpfs): a fault past
        // the end of a disk file maps nothing around itself when it had to
        // create the page table.
        let past_eof = file.thp_aligned && index << 12 >= file.size.load(Relaxed);
        // (A table nothing else in its 2 MiB uses is one the fault created:
        // an image VMA beside this one would have had its pages mapped.)
        let pmd = addr & !(PMD_SIZE - 1);
        let fresh_table = past_eof
            && self.table(table).iter().all(|e| e.load(Relaxed) == 0)
            && self.vmas_in(st, pmd, pmd + PMD_SIZE).iter().all(|v| v.va == vma.va);
        if !write && !fresh_table {
            self.do_fault_around(mm, vma, addr, table, idx, &file);
            if self.table(table)[idx].load(Relaxed) != 0 {
                return Ok(());
            }
        }
        if index << 12 >= file.size.load(Relaxed) {
            return Err(VmFault::Sigbus);
        }
        if file.thp_aligned && vma.flags() & vm::RAND_READ == 0 && self.shmem_lookup(file.id, index).is_none() {
            self.read_around(&file, index);
        }
        let pfn = self.shmem_get_page(file.id, index).map_err(|_| VmFault::Oom)?;
        if write && vma.flags() & vm::SHARED == 0 {
            return self.do_cow_fault(mm, st, vma, addr, table, idx, pfn);
        }
        let mut e = mk_entry(pfn, vm_get_page_prot(vma.flags()));
        if write {
            e |= bits::DIRTY;
        }
        let l = self.pte_lock(table);
        let pte = &self.table(table)[idx];
        if pte.load(Relaxed) != 0 {
            return Ok(());
        }
        let page = self.memmap.page(pfn);
        page.get();
        if page.mapcount.fetch_add(1, Relaxed) == -1 {
            self.nodes[page.nid()].stat.add(NodeStat::NrMapped as usize, 1);
        }
        mm.add_counter(crate::shmem::mm_counter_file(page), 1);
        pte.store(e, Relaxed);
        drop(l);
        if vma.flags() & vm::LOCKED != 0 {
            self.mlock_folio(pfn, true);
        }
        Ok(())
    }

    /// Maps the cached pages of the file around a read fault
    /// (`do_fault_around` + `filemap_map_pages`): up to
    /// [`FAULT_AROUND_PAGES`] aligned PTEs of the same table, inside the
    /// VMA and the file, that are empty and have a page in the cache.
    fn do_fault_around(
        &self,
        mm: &Mm,
        vma: Vma<'_>,
        addr: u64,
        table: Pfn,
        idx: usize,
        file: &crate::shmem::ShmemFile,
    ) {
        let nr = FAULT_AROUND_PAGES;
        let pte_off = idx as u64;
        let vma_off = (addr - vma.start()) >> 12;
        let from = (pte_off & !(nr - 1)).max(pte_off - pte_off.min(vma_off));
        let to = (from + nr).min(512).min(pte_off + vma.pages() - vma_off) - 1;
        let index0 = vma.linear_page_index(addr);
        let size = file.size.load(Relaxed);
        if size == 0 {
            return;
        }
        let file_end = size.div_ceil(4096) - 1;
        let prot = vm_get_page_prot(vma.flags());
        let locked = vma.flags() & vm::LOCKED != 0;
        let _l = self.pte_lock(table);
        let t = self.table(table);
        for i in from..=to {
            let index = index0 + i - pte_off;
            if index > file_end {
                break;
            }
            let e = &t[i as usize];
            if e.load(Relaxed) != 0 {
                continue;
            }
            let Some(pfn) = file.pages.lock().get(&index).copied() else { continue };
            let page = self.memmap.page(pfn);
            page.get();
            if page.mapcount.fetch_add(1, Relaxed) == -1 {
                self.nodes[page.nid()].stat.add(NodeStat::NrMapped as usize, 1);
            }
            mm.add_counter(crate::shmem::mm_counter_file(page), 1);
            e.store(mk_entry(pfn, prot), Relaxed);
            if locked {
                self.mlock_folio(pfn, true);
            }
        }
    }

    /// Reads the pages around a page-cache miss of a disk file into the
    /// cache (`do_sync_mmap_readahead`'s read-around: a window of
    /// [`READAROUND_PAGES`] centred on the miss, cut at the end of the file).
    fn read_around(&self, file: &crate::shmem::ShmemFile, index: u64) {
        let eof = file.size.load(Relaxed).div_ceil(4096);
        let start = index.saturating_sub(READAROUND_PAGES / 2);
        let end = (start + READAROUND_PAGES).min(eof);
        for i in start..end {
            if self.shmem_get_page(file.id, i).is_err() {
                break;
            }
        }
    }

    /// A write fault on an unmapped page of a private file mapping
    /// (`do_cow_fault`): a new anonymous page with the file page's bytes.
    #[allow(clippy::too_many_arguments)]
    fn do_cow_fault(
        &self,
        mm: &Mm,
        st: &MmState,
        vma: Vma<'_>,
        addr: u64,
        table: Pfn,
        idx: usize,
        src: Pfn,
    ) -> Result<(), VmFault> {
        let av = self.anon_vma_prepare_in(st, vma).map_err(|_| VmFault::Oom)?;
        let new = self.alloc_pages(Gfp::GFP_HIGHUSER_MOVABLE, 0).ok_or(VmFault::Oom)?;
        self.copy_page(src, new);
        let mut e = mk_entry(new, vm_get_page_prot(vma.flags()));
        if vma.flags() & vm::WRITE != 0 {
            e |= bits::RW | bits::DIRTY;
        }
        let l = self.pte_lock(table);
        let pte = &self.table(table)[idx];
        if pte.load(Relaxed) != 0 {
            drop(l);
            self.free_pages(new, 0);
            return Ok(());
        }
        self.folio_add_new_anon_rmap(new, av, vma.linear_page_index(addr));
        mm.add_counter(mm_counter::ANONPAGES, 1);
        pte.store(e, Relaxed);
        drop(l);
        self.folio_add_lru(new, vma.flags() & vm::LOCKED != 0);
        Ok(())
    }

    /// Makes a new anonymous page mapped once, by this VMA only
    /// (`folio_add_new_anon_rmap` with `RMAP_EXCLUSIVE`).
    pub fn folio_add_new_anon_rmap(&self, pfn: Pfn, anon_vma: u64, index: u64) {
        let page = self.memmap.page(pfn);
        page.mapping.store(anon_vma | PAGE_MAPPING_ANON, Relaxed);
        page.index.store(index, Relaxed);
        page.mapcount.store(0, Relaxed);
        // Nobody else sees the new page yet: plain flag updates (__folio_set_*).
        page.set_nonatomic(pg::SWAPBACKED | pg::UPTODATE | pg::ANON_EXCLUSIVE);
        self.node_stat_add(page.nid(), NodeStat::NrAnonPages, 1);
    }

    /// One more mapping of an anonymous page (`folio_add_anon_rmap_pte`, fork).
    fn folio_dup_anon_rmap(&self, pfn: Pfn) {
        let page = self.memmap.page(pfn);
        page.clear(pg::ANON_EXCLUSIVE);
        page.mapcount.fetch_add(1, Relaxed);
        page.get();
    }

    /// One mapping of a page fewer (`folio_remove_rmap_pte`).
    fn folio_remove_rmap(&self, pfn: Pfn) {
        let page = self.memmap.page(pfn);
        if page.mapcount.fetch_sub(1, Relaxed) == 0 {
            let item = if page.mapping.load(Relaxed) & PAGE_MAPPING_ANON != 0 {
                NodeStat::NrAnonPages
            } else {
                NodeStat::NrMapped
            };
            self.node_stat_add(page.nid(), item, -1);
            if page.test(pg::MLOCKED) {
                page.clear(pg::MLOCKED);
                self.mlock_account(pfn, -1);
                self.events().count(VmEvent::UnevictablePgsCleared, 1);
            }
        }
    }

    /// Drops a reference on a user page; the last one takes it off its LRU
    /// list and frees it (`folio_put`).
    pub fn put_user_page(&self, pfn: Pfn) {
        let page = self.memmap.page(pfn);
        if page.put_testzero() {
            self.folio_del_lru(pfn);
            if page.test(pg::MLOCKED) {
                page.clear(pg::MLOCKED);
                self.mlock_account(pfn, -1);
            }
            page.clear(pg::SWAPBACKED | pg::ANON_EXCLUSIVE | pg::UNEVICTABLE | pg::ACTIVE);
            page.mapping.store(0, Relaxed);
            page.index.store(0, Relaxed);
            page.refcount.store(1, Relaxed);
            self.free_pages(pfn, 0);
        }
    }

    /// A write to a write-protected present page (`do_wp_page`): reuse the
    /// page when this mapping is its only user, copy it otherwise.
    fn do_wp_page(
        &self,
        mm: &Mm,
        st: &MmState,
        vma: Vma<'_>,
        addr: u64,
        table: Pfn,
        idx: usize,
    ) -> Result<(), VmFault> {
        let pte = &self.table(table)[idx];
        let v = pte.load(Relaxed);
        let old = entry_pfn(v);
        let zero = v & bits::SPECIAL != 0;
        if vma.flags() & vm::SHARED != 0 {
            // Shared writable mappings are mapped writable from the start.
            pte.fetch_or(bits::RW | bits::DIRTY | bits::ACCESSED, Relaxed);
            self.flush_tlb_page(mm, addr);
            return Ok(());
        }
        if !zero {
            let page = self.memmap.page(old);
            let exclusive = page.test(pg::ANON_EXCLUSIVE)
                || (page.mapcount.load(Relaxed) == 0 && page.ref_count() == 1 && page.mapping.load(Relaxed) & 1 != 0);
            if exclusive {
                page.set(pg::ANON_EXCLUSIVE);
                let _l = self.pte_lock(table);
                pte.fetch_or(bits::RW | bits::DIRTY | bits::ACCESSED, Relaxed);
                self.events().count(VmEvent::Pgreuse, 1);
                self.flush_tlb_page(mm, addr);
                return Ok(());
            }
        }
        // wp_page_copy
        let av = self.anon_vma_prepare_in(st, vma).map_err(|_| VmFault::Oom)?;
        let gfp = Gfp::GFP_HIGHUSER_MOVABLE | if zero { Gfp::ZERO } else { Gfp(0) };
        let new = self.alloc_pages(gfp, 0).ok_or(VmFault::Oom)?;
        if !zero {
            self.copy_page(old, new);
        }
        let e = mk_entry(new, vm_get_page_prot(vma.flags())) | bits::RW | bits::DIRTY;
        let l = self.pte_lock(table);
        if pte.load(Relaxed) != v {
            drop(l);
            self.free_pages(new, 0);
            return Ok(());
        }
        self.folio_add_new_anon_rmap(new, av, vma.linear_page_index(addr));
        pte.store(e, Relaxed);
        drop(l);
        self.flush_tlb_page(mm, addr);
        self.folio_add_lru(new, vma.flags() & vm::LOCKED != 0);
        mm.add_counter(mm_counter::ANONPAGES, 1);
        if !zero {
            let page = self.memmap.page(old);
            if page.mapping.load(Relaxed) & PAGE_MAPPING_ANON != 0 {
                mm.add_counter(mm_counter::ANONPAGES, -1);
            } else {
                mm.add_counter(crate::shmem::mm_counter_file(page), -1);
            }
            self.folio_remove_rmap(old);
            self.put_user_page(old);
        }
        Ok(())
    }

    /// Copies a frame's bytes (`copy_user_highpage`).
    pub fn copy_page(&self, from: Pfn, to: Pfn) {
        let src: &[AtomicU64] = self.mem.view(from.phys(), 512);
        let dst: &[AtomicU64] = self.mem.view(to.phys(), 512);
        for (d, s) in dst.iter().zip(src) {
            d.store(s.load(Relaxed), Relaxed);
        }
    }

    /// Unmaps the pages of `[start, end)` inside `vma` (`zap_page_range_single`
    /// / `unmap_page_range`), gathering pages to free after the TLB flush.
    pub fn zap_pte_range(&self, mm: &Mm, vma: Vma<'_>, start: u64, end: u64, tlb: &mut MmuGather) {
        let zero = self.vm.zero_pfn.get().copied();
        let mut va = start;
        while va < end {
            let next = ((va | (PMD_SIZE - 1)) + 1).min(end);
            if let Some(table) = self.pte_table(mm, va) {
                let _l = self.pte_lock(table);
                let t = self.table(table);
                let mut a = va;
                while a < next {
                    let e = &t[Level::Pte.index(VirtAddr(a))];
                    let v = e.load(Relaxed);
                    if v != 0 {
                        e.store(0, Relaxed);
                        if pte_present(v) {
                            let pfn = entry_pfn(v);
                            if Some(pfn) != zero && v & bits::SPECIAL == 0 {
                                let page = self.memmap.page(pfn);
                                if page.mapping.load(Relaxed) & PAGE_MAPPING_ANON != 0 {
                                    mm.add_counter(mm_counter::ANONPAGES, -1);
                                } else {
                                    mm.add_counter(crate::shmem::mm_counter_file(page), -1);
                                }
                                self.folio_remove_rmap(pfn);
                                tlb.pages.push(pfn);
                            }
                        }
                    }
                    a += 4096;
                }
            }
            va = next;
        }
        tlb.note(start, end);
        let _ = vma;
    }

    /// Flushes the gathered range and releases the gathered pages and
    /// tables (`tlb_finish_mmu`).
    pub fn tlb_finish_mmu(&self, mm: &Mm, tlb: &mut MmuGather) {
        if tlb.end > tlb.start {
            self.flush_tlb_range(mm, tlb.start, tlb.end);
        }
        for pfn in tlb.pages.drain(..) {
            self.put_user_page(pfn);
        }
        for t in tlb.tables.drain(..) {
            mm.pgtables_bytes.fetch_sub(4096, Relaxed);
            self.pgtable_free(t);
        }
        tlb.start = 0;
        tlb.end = 0;
    }

    /// Frees the page tables that only covered `[floor, ceiling)` (a range
    /// no VMA maps any more) within `[start, end)` (`free_pgd_range`);
    /// `ceiling == 0` means the top of the address space.
    pub fn free_pgd_range(&self, mm: &Mm, tlb: &mut MmuGather, start: u64, end: u64, floor: u64, ceiling: u64) {
        let top = Level::top(self.pgtable_levels);
        let span = 1u128 << (top.shift() + 9);
        let ceiling = if ceiling == 0 { span } else { ceiling as u128 };
        self.free_level_range(mm.pgd, top, 0, start as u128, end as u128, floor as u128, ceiling, tlb);
    }

    #[allow(clippy::too_many_arguments)]
    fn free_level_range(
        &self,
        table: Pfn,
        l: Level,
        base: u128,
        start: u128,
        end: u128,
        floor: u128,
        ceiling: u128,
        tlb: &mut MmuGather,
    ) {
        let Some(next) = l.next() else { return };
        let size = 1u128 << l.shift();
        let t = self.table(table);
        let first = ((start.max(base) - base) / size) as usize;
        for (i, e) in t.iter().enumerate().take(PTRS_PER_TABLE).skip(first) {
            let cs = base + i as u128 * size;
            if cs >= end {
                break;
            }
            let ce = cs + size;
            let v = e.load(Relaxed);
            if v & bits::PRESENT == 0 || v & bits::PSE != 0 {
                continue;
            }
            let child = entry_pfn(v);
            if cs >= floor && ce <= ceiling {
                e.store(0, Relaxed);
                self.collect_tables(child, next, tlb);
            } else {
                self.free_level_range(child, next, cs, start, end, floor, ceiling, tlb);
            }
        }
    }

    fn collect_tables(&self, table: Pfn, l: Level, tlb: &mut MmuGather) {
        if let Some(next) = l.next() {
            for e in self.table(table) {
                let v = e.load(Relaxed);
                if v & bits::PRESENT != 0 && v & bits::PSE == 0 {
                    self.collect_tables(entry_pfn(v), next, tlb);
                }
            }
        }
        tlb.tables.push(table);
    }

    /// Copies the PTEs of `src` into `dst` at fork (`copy_page_range`):
    /// private pages become shared read-only in both, for COW.
    pub fn copy_page_range(&self, dst_mm: &Mm, src_mm: &Mm, dst: Vma<'_>, src: Vma<'_>) -> Result<(), Errno> {
        // vma_needs_copy: without an anon_vma, faults fill anonymous VMAs
        // correctly in the child; nothing to copy.
        if src.anon_vma() == 0 && src.flags() & (vm::PFNMAP | vm::MIXEDMAP) == 0 {
            return Ok(());
        }
        let cow = src.is_cow_mapping();
        let zero = self.vm.zero_pfn.get().copied();
        let mut va = src.start();
        let end = src.end();
        while va < end {
            let next = ((va | (PMD_SIZE - 1)) + 1).min(end);
            if let Some(stable) = self.pte_table(src_mm, va) {
                let (dtable, _) = self.pte_offset_alloc(dst_mm, va)?;
                let _sl = self.pte_lock(stable);
                let _dl = self.pte_lock(dtable);
                let (st, dt) = (self.table(stable), self.table(dtable));
                let mut a = va;
                while a < next {
                    let i = Level::Pte.index(VirtAddr(a));
                    let mut v = st[i].load(Relaxed);
                    if v == crate::madvise::GUARD_PTE {
                        dt[i].store(v, Relaxed);
                    } else if v != 0 && pte_present(v) {
                        let pfn = entry_pfn(v);
                        if Some(pfn) != zero && v & bits::SPECIAL == 0 {
                            let page = self.memmap.page(pfn);
                            if page.mapping.load(Relaxed) & PAGE_MAPPING_ANON != 0 {
                                self.folio_dup_anon_rmap(pfn);
                                dst_mm.add_counter(mm_counter::ANONPAGES, 1);
                            } else {
                                page.mapcount.fetch_add(1, Relaxed);
                                page.get();
                                dst_mm.add_counter(crate::shmem::mm_counter_file(page), 1);
                            }
                        }
                        if cow && v & bits::RW != 0 {
                            st[i].fetch_and(!bits::RW, Relaxed);
                            v &= !bits::RW;
                        }
                        if src.flags() & vm::SHARED != 0 {
                            v &= !bits::DIRTY;
                        }
                        v &= !bits::ACCESSED;
                        dt[i].store(v, Relaxed);
                    }
                    a += 4096;
                }
            }
            va = next;
        }
        let _ = dst;
        Ok(())
    }

    /// Accesses `len` bytes of user memory at `addr` as `task`, faulting
    /// pages in as the CPU would; `f` gets each piece's physical address,
    /// its offset in the request and its length.
    pub fn access_user(
        &self,
        task: &Task,
        addr: u64,
        len: u64,
        access: Access,
        mut f: impl FnMut(crate::types::PhysAddr, u64, u64),
    ) -> Result<(), SigInfo> {
        let mm = &*task.mm;
        let mut done = 0u64;
        while done < len {
            let va = addr.wrapping_add(done);
            let chunk = (4096 - (va & 0xfff)).min(len - done);
            let mut tries = 0;
            let pa = loop {
                match self.mmu_translate(mm, va, access) {
                    Ok(pa) => break pa,
                    Err(fault) => {
                        tries += 1;
                        if tries > 4 {
                            return Err(SigInfo { signo: SIGSEGV, code: SEGV_ACCERR, addr: va });
                        }
                        self.handle_page_fault(task, va, fault.code)?;
                    }
                }
            };
            f(pa, done, chunk);
            done += chunk;
        }
        Ok(())
    }

    /// Reads user memory (a `memcpy` from user space by the program).
    pub fn read_user(&self, task: &Task, addr: u64, out: &mut [u8]) -> Result<(), SigInfo> {
        self.access_user(task, addr, out.len() as u64, Access::Read, |pa, off, n| {
            self.mem.read(pa, &mut out[off as usize..(off + n) as usize])
        })
    }

    /// Writes user memory.
    pub fn write_user(&self, task: &Task, addr: u64, data: &[u8]) -> Result<(), SigInfo> {
        self.access_user(task, addr, data.len() as u64, Access::Write, |pa, off, n| {
            self.mem.write(pa, &data[off as usize..(off + n) as usize])
        })
    }

    /// Fills user memory with one byte.
    pub fn fill_user(&self, task: &Task, addr: u64, len: u64, byte: u8) -> Result<(), SigInfo> {
        self.access_user(task, addr, len, Access::Write, |pa, _, n| self.mem.fill(pa, n, byte))
    }

    /// Fetches an instruction at `addr` (a call into user code).
    pub fn exec_user(&self, task: &Task, addr: u64) -> Result<u8, SigInfo> {
        let mut b = [0u8];
        self.access_user(task, addr, 1, Access::Exec, |pa, _, _| self.mem.read(pa, &mut b))?;
        Ok(b[0])
    }
}

/// Does the VMA forbid this access (x86's `access_error`)?
pub fn access_error(code: u64, vma: Vma<'_>) -> bool {
    if code & pf::WRITE != 0 {
        return vma.flags() & vm::WRITE == 0;
    }
    if code & pf::PROT != 0 {
        return true;
    }
    !vma.is_accessible()
}

/// A held PTE-table lock.
pub struct PteLock<'a> {
    flags: Option<&'a AtomicU64>,
}

impl Drop for PteLock<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.flags {
            f.fetch_and(!pg::LOCKED, core::sync::atomic::Ordering::Release);
        }
    }
}
