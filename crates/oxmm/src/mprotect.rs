//! `mprotect` (Linux's `mm/mprotect.c`): new access flags on a range of
//! VMAs, split and merged as Linux does, their PTEs rewritten and flushed.

use core::sync::atomic::Ordering::Relaxed;

use crate::arch::x86_64::pgtable::{bits, entry_pfn, pte_present};
use crate::kernel::Kernel;
use crate::memory::{vm_get_page_prot, PAGE_CHG_MASK};
use crate::mm_types::{personality, vm, MmState, Task, Vma};
use crate::mmap::prot;
use crate::page::pg;
use crate::types::Errno;
use crate::vma::{vm_stat_account, VmaAttrs};

impl Kernel {
    /// The `mprotect` system call (`do_mprotect_pkey` without keys).
    pub fn sys_mprotect(&self, task: &Task, start: u64, len: u64, protv: u64) -> Result<u64, Errno> {
        let grows = protv & (prot::GROWSDOWN | prot::GROWSUP);
        let mut p = protv & !(prot::GROWSDOWN | prot::GROWSUP);
        let rier = task.personality.load(Relaxed) & personality::READ_IMPLIES_EXEC != 0 && p & prot::READ != 0;
        if grows == prot::GROWSDOWN | prot::GROWSUP {
            return Err(Errno::EINVAL);
        }
        if start & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(0);
        }
        let len = len.wrapping_add(4095) & !4095;
        let mut start = start;
        let mut end = start.wrapping_add(len);
        if end <= start {
            return Err(Errno::ENOMEM);
        }
        if p & !(prot::READ | prot::WRITE | prot::EXEC | prot::SEM) != 0 {
            return Err(Errno::EINVAL);
        }
        let reqprot = p;
        let mm = &*task.mm;
        let mut st = mm.lock.write();
        let Some(first) = self.find_vma_intersection(&st, start, end) else { return Err(Errno::ENOMEM) };
        if grows & prot::GROWSDOWN != 0 {
            if first.start() >= end {
                return Err(Errno::ENOMEM);
            }
            start = first.start();
            if first.flags() & vm::GROWSDOWN == 0 {
                return Err(Errno::EINVAL);
            }
        } else {
            if first.start() > start {
                return Err(Errno::ENOMEM);
            }
            if grows & prot::GROWSUP != 0 {
                // x86 has no grows-up VMAs.
                end = first.end();
                let _ = end;
                return Err(Errno::EINVAL);
            }
        }
        let mut nstart = start;
        let mut tmp = first.start();
        let mut result = Ok(0);
        while nstart < end {
            let Some(v) = self.find_vma(&st, nstart).filter(|v| v.start() < end) else { break };
            if v.start() != tmp {
                result = Err(Errno::ENOMEM);
                break;
            }
            if rier && v.flags() & vm::MAYEXEC != 0 {
                p |= prot::EXEC;
            }
            let newflags = (p & vm::ACCESS) | (v.flags() & !vm::ACCESS);
            // Every permission asked for must be allowed by its VM_MAY* bit.
            if (newflags & !(newflags >> 4)) & vm::ACCESS != 0 {
                result = Err(Errno::EACCES);
                break;
            }
            tmp = v.end().min(end);
            match self.mprotect_fixup(task, &mut st, v, nstart, tmp, newflags) {
                Ok(nv) => {
                    tmp = nv.end();
                    nstart = tmp;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            p = reqprot;
        }
        if result.is_ok() && tmp < end {
            result = Err(Errno::ENOMEM);
        }
        result
    }

    /// Applies new flags to `[start, end)` of `v` (`mprotect_fixup`).
    fn mprotect_fixup<'k>(
        &'k self,
        task: &Task,
        st: &mut MmState,
        v: Vma<'k>,
        start: u64,
        end: u64,
        newflags: u64,
    ) -> Result<Vma<'k>, Errno> {
        let oldflags = v.flags();
        let mut newflags = newflags;
        if newflags == oldflags {
            return Ok(v);
        }
        let nrpages = (end - start) >> 12;
        let mut charged = 0;
        if newflags & vm::WRITE != 0 {
            if !self.may_expand_vm(task, st, newflags, nrpages) && self.may_expand_vm(task, st, oldflags, nrpages) {
                return Err(Errno::ENOMEM);
            }
            if oldflags & (vm::ACCOUNT | vm::WRITE | vm::HUGETLB | vm::SHARED | vm::NORESERVE) == 0 {
                charged = nrpages;
                self.vm_enough_memory(task, charged as i64, true)?;
                newflags |= vm::ACCOUNT;
            }
        } else if oldflags & vm::ACCOUNT != 0 && v.is_anonymous() && v.anon_vma() == 0 {
            newflags &= !vm::ACCOUNT;
        }
        let mut attrs = VmaAttrs::of(v);
        attrs.flags = newflags;
        let nv = match self.vma_modify(&task.mm, st, v, start, end, &attrs) {
            Ok(nv) => nv,
            Err(e) => {
                self.vm_acct_memory(-(charged as i64));
                return Err(e);
            }
        };
        nv.set_flags(newflags);
        self.change_protection(task, nv, start, end);
        if oldflags & vm::ACCOUNT != 0 && newflags & vm::ACCOUNT == 0 {
            self.vm_acct_memory(-(nrpages as i64));
        }
        vm_stat_account(st, oldflags, -(nrpages as i64));
        vm_stat_account(st, newflags, nrpages as i64);
        if oldflags & (vm::WRITE | vm::SHARED | vm::LOCKED) == vm::LOCKED && newflags & vm::WRITE != 0 {
            // A locked private VMA turning writable breaks COW now.
            self.populate_range_locked(task, st, start, end);
        }
        Ok(nv)
    }

    /// Rewrites the PTEs of `[start, end)` for `v`'s new flags
    /// (`change_protection`), keeping frames and A/D bits, and flushes.
    pub fn change_protection(&self, task: &Task, v: Vma<'_>, start: u64, end: u64) {
        let mm = &*task.mm;
        let newprot = vm_get_page_prot(v.flags());
        let try_writable = v.flags() & vm::SHARED == 0 && v.flags() & vm::WRITE != 0;
        let mut a = start;
        let mut changed = false;
        while a < end {
            let Some(table) = self.pte_table(mm, a) else {
                a = (a | ((1 << 21) - 1)) + 1;
                continue;
            };
            let _l = self.pte_lock(table);
            let next = ((a | ((1 << 21) - 1)) + 1).min(end);
            let t = self.table(table);
            while a < next {
                let e = &t[((a >> 12) & 511) as usize];
                let old = e.load(Relaxed);
                if old != 0 && pte_present(old) {
                    let mut new = (old & PAGE_CHG_MASK) | (newprot & !PAGE_CHG_MASK);
                    if try_writable && old & bits::SPECIAL == 0 && new & bits::PRESENT != 0 {
                        let page = self.memmap.page(entry_pfn(old));
                        if page.test(pg::ANON_EXCLUSIVE) {
                            new |= bits::RW;
                        }
                    }
                    if new != old {
                        e.store(new, Relaxed);
                        changed = true;
                    }
                }
                a += 4096;
            }
        }
        if changed {
            self.flush_tlb_range(mm, start, end);
        }
    }

    /// Faults in `[start, end)` while the mmap lock is held for writing
    /// (`populate_vma_page_range` called under the lock).
    pub fn populate_range_locked(&self, task: &Task, st: &MmState, start: u64, end: u64) {
        let mm = &*task.mm;
        let mut a = start;
        while a < end {
            if let Some(v) = self.vma_lookup(st, a) {
                let write = v.flags() & (vm::WRITE | vm::SHARED) == vm::WRITE;
                let present = self.follow_pte(mm, a).is_some_and(|(_, e)| !write || e & bits::RW != 0);
                if !present && v.is_accessible() {
                    let flags = if write { crate::memory::fault_flag::WRITE } else { 0 };
                    let _ = self.handle_mm_fault(mm, st, v, a, flags);
                }
            }
            a += 4096;
        }
    }
}
