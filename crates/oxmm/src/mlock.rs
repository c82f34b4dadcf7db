//! `mlock`, `mlock2`, `munlock`, `mlockall`, `munlockall` (Linux's
//! `mm/mlock.c`): VM_LOCKED on VMAs, RLIMIT_MEMLOCK unless CAP_IPC_LOCK,
//! locked pages on the unevictable list and counted in Mlocked.

use core::sync::atomic::Ordering::Relaxed;

use crate::arch::x86_64::pgtable::{bits, entry_pfn, pte_present};
use crate::kernel::Kernel;
use crate::mm_types::{rlimit, vm, MmState, Task, Vma};
use crate::page::pg;
use crate::types::Errno;
use crate::vma::VmaAttrs;
use crate::vmstat::VmEvent;

/// `mlock2` flag: lock pages as they are faulted in.
pub const MLOCK_ONFAULT: u64 = 1;
/// `mlockall` flags.
pub mod mcl {
    #![allow(missing_docs)]
    pub const CURRENT: u64 = 1;
    pub const FUTURE: u64 = 2;
    pub const ONFAULT: u64 = 4;
}

impl Kernel {
    /// The `mlock` system call.
    pub fn sys_mlock(&self, task: &Task, start: u64, len: u64) -> Result<u64, Errno> {
        self.do_mlock(task, start, len, vm::LOCKED)
    }

    /// The `mlock2` system call.
    pub fn sys_mlock2(&self, task: &Task, start: u64, len: u64, flags: u64) -> Result<u64, Errno> {
        if flags & !MLOCK_ONFAULT != 0 {
            return Err(Errno::EINVAL);
        }
        let f = if flags & MLOCK_ONFAULT != 0 { vm::LOCKED | vm::LOCKONFAULT } else { vm::LOCKED };
        self.do_mlock(task, start, len, f)
    }

    fn do_mlock(&self, task: &Task, start: u64, len: u64, flags: u64) -> Result<u64, Errno> {
        if !self.can_do_mlock(task) {
            return Err(Errno::EPERM);
        }
        let len = len.wrapping_add(start & 0xfff).wrapping_add(4095) & !4095;
        let start = start & !0xfff;
        let lock_limit = task.rlimit(rlimit::MEMLOCK) >> 12;
        let cap = task.cap_ipc_lock.load(Relaxed);
        {
            let mut st = task.mm.lock.write();
            let mut locked = (len >> 12) + st.locked_vm;
            if locked > lock_limit && !cap {
                locked -= self.count_mm_mlocked_page_nr(&st, start, len);
            }
            if locked > lock_limit && !cap {
                return Err(Errno::ENOMEM);
            }
            self.apply_vma_lock_flags(task, &mut st, start, len, flags)?;
        }
        self.populate_for_mlock(task, start, len, false).map_err(|e| match e {
            Errno::EFAULT => Errno::ENOMEM,
            Errno::ENOMEM => Errno::EAGAIN,
            e => e,
        })?;
        Ok(0)
    }

    /// The `munlock` system call.
    pub fn sys_munlock(&self, task: &Task, start: u64, len: u64) -> Result<u64, Errno> {
        let len = len.wrapping_add(start & 0xfff).wrapping_add(4095) & !4095;
        let start = start & !0xfff;
        let mut st = task.mm.lock.write();
        self.apply_vma_lock_flags(task, &mut st, start, len, 0).map(|_| 0)
    }

    /// Pages of `[start, start+len)` already in locked VMAs (`count_mm_mlocked_page_nr`).
    fn count_mm_mlocked_page_nr(&self, st: &MmState, start: u64, len: u64) -> u64 {
        let end = if len == 0 { u64::MAX } else { start.saturating_add(len) };
        self.vmas_in(st, start, end)
            .iter()
            .filter(|v| v.flags() & vm::LOCKED != 0)
            .map(|v| (v.end().min(end) - v.start().max(start)) >> 12)
            .sum()
    }

    fn apply_vma_lock_flags(
        &self,
        task: &Task,
        st: &mut MmState,
        start: u64,
        len: u64,
        flags: u64,
    ) -> Result<(), Errno> {
        let end = start.wrapping_add(len);
        if end < start {
            return Err(Errno::EINVAL);
        }
        if end == start {
            return Ok(());
        }
        let Some(first) = self.vma_lookup(st, start) else { return Err(Errno::ENOMEM) };
        let mut nstart = start;
        let mut tmp = first.start();
        while nstart < end {
            let Some(v) = self.find_vma(st, nstart).filter(|v| v.start() < end) else { break };
            if v.start() != tmp {
                return Err(Errno::ENOMEM);
            }
            let newflags = (v.flags() & !vm::LOCKED_MASK) | flags;
            tmp = v.end().min(end);
            let nv = self.mlock_fixup(task, st, v, nstart, tmp, newflags)?;
            tmp = nv.end();
            nstart = tmp;
        }
        if tmp < end {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }

    fn mlock_fixup<'k>(
        &'k self,
        task: &Task,
        st: &mut MmState,
        v: Vma<'k>,
        start: u64,
        end: u64,
        newflags: u64,
    ) -> Result<Vma<'k>, Errno> {
        let oldflags = v.flags();
        if newflags == oldflags || oldflags & (vm::SPECIAL | vm::HUGETLB | vm::DROPPABLE) != 0 {
            return Ok(v);
        }
        let mut attrs = VmaAttrs::of(v);
        attrs.flags = newflags;
        let nv = self.vma_modify(&task.mm, st, v, start, end, &attrs)?;
        let pages = ((end - start) >> 12) as i64;
        let delta = if newflags & vm::LOCKED == 0 {
            -pages
        } else if oldflags & vm::LOCKED != 0 {
            0
        } else {
            pages
        };
        st.locked_vm = (st.locked_vm as i64 + delta) as u64;
        nv.set_flags(newflags);
        if !(newflags & vm::LOCKED != 0 && oldflags & vm::LOCKED != 0) {
            self.mlock_pages_range(task, start, end, newflags & vm::LOCKED != 0);
        }
        Ok(nv)
    }

    /// Marks the present pages of a range mlocked or not (`mlock_vma_pages_range`).
    fn mlock_pages_range(&self, task: &Task, start: u64, end: u64, lock: bool) {
        let mm = &*task.mm;
        let zero = self.vm.zero_pfn.get().copied();
        let mut a = start;
        while a < end {
            if let Some(pte) = self.pte_of(mm, a) {
                let e = pte.load(Relaxed);
                if e != 0 && pte_present(e) && e & bits::SPECIAL == 0 && Some(entry_pfn(e)) != zero {
                    self.mlock_folio(entry_pfn(e), lock);
                }
            }
            a += 4096;
        }
    }

    /// Moves a page to or from the unevictable list (`mlock_folio` / `munlock_folio`).
    pub fn mlock_folio(&self, pfn: crate::types::Pfn, lock: bool) {
        let page = self.memmap.page(pfn);
        if lock && !page.test(pg::MLOCKED) {
            self.folio_move_lru(pfn, pg::UNEVICTABLE | pg::MLOCKED, 0);
            self.mlock_account(pfn, 1);
            self.events().count(VmEvent::UnevictablePgsMlocked, 1);
        } else if !lock && page.test(pg::MLOCKED) {
            self.folio_move_lru(pfn, 0, pg::UNEVICTABLE | pg::MLOCKED);
            self.mlock_account(pfn, -1);
            self.events().count(VmEvent::UnevictablePgsMunlocked, 1);
        }
    }

    /// Faults in a range for mlock (`__mm_populate`): `ignore_errors` as
    /// mlockall does; EFAULT when a VMA refuses the access.
    pub fn populate_for_mlock(&self, task: &Task, start: u64, len: u64, ignore_errors: bool) -> Result<(), Errno> {
        let mm = &*task.mm;
        let end = start.saturating_add(len);
        let st = mm.lock.read();
        let mut nstart = start;
        while nstart < end {
            let Some(v) = self.find_vma_intersection(&st, nstart, end) else { break };
            let nend = end.min(v.end());
            if v.flags() & (vm::IO | vm::PFNMAP) != 0 {
                nstart = nend;
                continue;
            }
            nstart = nstart.max(v.start());
            if v.flags() & vm::LOCKONFAULT == 0 {
                let write = v.flags() & (vm::WRITE | vm::SHARED) == vm::WRITE;
                let force = v.is_accessible();
                let refused = if write { false } else { v.flags() & vm::READ == 0 && !force };
                if refused {
                    if ignore_errors {
                        nstart = nend;
                        continue;
                    }
                    return Err(Errno::EFAULT);
                }
                let mut a = nstart;
                while a < nend {
                    let present = self.follow_pte(mm, a).is_some_and(|(_, e)| !write || e & bits::RW != 0);
                    if !present {
                        let flags = if write { crate::memory::fault_flag::WRITE } else { 0 };
                        match self.handle_mm_fault(mm, &st, v, a, flags) {
                            Ok(()) => {}
                            Err(_) if ignore_errors => break,
                            Err(crate::memory::VmFault::Oom) => return Err(Errno::ENOMEM),
                            Err(_) => return Err(Errno::EFAULT),
                        }
                    }
                    a += 4096;
                }
                if v.flags() & vm::LOCKED != 0 {
                    self.mlock_pages_range(task, nstart, nend, true);
                }
            }
            nstart = nend;
        }
        Ok(())
    }

    /// The `mlockall` system call.
    pub fn sys_mlockall(&self, task: &Task, flags: u64) -> Result<u64, Errno> {
        if flags == 0 || flags & !(mcl::CURRENT | mcl::FUTURE | mcl::ONFAULT) != 0 || flags == mcl::ONFAULT {
            return Err(Errno::EINVAL);
        }
        if !self.can_do_mlock(task) {
            return Err(Errno::EPERM);
        }
        let lock_limit = task.rlimit(rlimit::MEMLOCK) >> 12;
        {
            let mut st = task.mm.lock.write();
            if flags & mcl::CURRENT != 0 && st.total_vm > lock_limit && !task.cap_ipc_lock.load(Relaxed) {
                return Err(Errno::ENOMEM);
            }
            self.apply_mlockall_flags(task, &mut st, flags);
        }
        if flags & mcl::CURRENT != 0 {
            let _ = self.populate_for_mlock(task, 0, crate::mmap::TASK_SIZE, true);
        }
        Ok(0)
    }

    /// The `munlockall` system call.
    pub fn sys_munlockall(&self, task: &Task) -> Result<u64, Errno> {
        let mut st = task.mm.lock.write();
        self.apply_mlockall_flags(task, &mut st, 0);
        Ok(0)
    }

    fn apply_mlockall_flags(&self, task: &Task, st: &mut MmState, flags: u64) {
        st.def_flags &= !vm::LOCKED_MASK;
        if flags & mcl::FUTURE != 0 {
            st.def_flags |= vm::LOCKED;
            if flags & mcl::ONFAULT != 0 {
                st.def_flags |= vm::LOCKONFAULT;
            }
            if flags & mcl::CURRENT == 0 {
                return;
            }
        }
        let mut to_add = 0;
        if flags & mcl::CURRENT != 0 {
            to_add |= vm::LOCKED;
            if flags & mcl::ONFAULT != 0 {
                to_add |= vm::LOCKONFAULT;
            }
        }
        let mut a = 0;
        while let Some(v) = self.find_vma(st, a) {
            let (s, e) = (v.start(), v.end());
            let newflags = (v.flags() & !vm::LOCKED_MASK) | to_add;
            let end = match self.mlock_fixup(task, st, v, s, e, newflags) {
                Ok(nv) => nv.end().max(e),
                Err(_) => e,
            };
            a = end;
        }
    }
}
