//! `mremap` (Linux's `mm/mremap.c`): shrink in place, grow in place when
//! the space after the VMA is free, otherwise move (MAYMOVE) to a new
//! address (or the FIXED one), carrying the pages' PTEs along; DONTUNMAP
//! leaves the old range mapped and empty.

use core::sync::atomic::Ordering::Relaxed;

use crate::kernel::Kernel;
use crate::mm_types::{vm, MmState, Task, Vma};
use crate::mmap::{map, TASK_SIZE};
use crate::types::Errno;
use crate::vma::{vm_stat_account, VmaAttrs};

/// `mremap` flags.
pub mod mremap_flags {
    #![allow(missing_docs)]
    pub const MAYMOVE: u64 = 1;
    pub const FIXED: u64 = 2;
    pub const DONTUNMAP: u64 = 4;
}
use mremap_flags::{DONTUNMAP, FIXED, MAYMOVE};

const fn page_align(x: u64) -> u64 {
    x.wrapping_add(4095) & !4095
}

impl Kernel {
    /// The `mremap` system call.
    pub fn sys_mremap(
        &self,
        task: &Task,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> Result<u64, Errno> {
        let old_len = page_align(old_len);
        let new_len = page_align(new_len);
        if flags & !(FIXED | MAYMOVE | DONTUNMAP) != 0 {
            return Err(Errno::EINVAL);
        }
        if addr & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        if new_len == 0 || new_len > TASK_SIZE || new_addr > TASK_SIZE - new_len {
            return Err(Errno::EINVAL);
        }
        let implies_new = flags & (FIXED | DONTUNMAP) != 0;
        let mm = &*task.mm;
        if implies_new {
            if new_addr & 0xfff != 0 {
                return Err(Errno::EINVAL);
            }
            if flags & MAYMOVE == 0 {
                return Err(Errno::EINVAL);
            }
            if flags & DONTUNMAP != 0 && old_len != new_len {
                return Err(Errno::EINVAL);
            }
            if addr.wrapping_add(old_len) > new_addr && new_addr.wrapping_add(new_len) > addr {
                return Err(Errno::EINVAL);
            }
            if mm.lock.read().map_count + 3 >= self.sysctl.max_map_count.load(Relaxed) {
                return Err(Errno::ENOMEM);
            }
        }
        let mut st = mm.lock.write();
        let (ret, populate) = if flags & FIXED != 0 && old_len == new_len {
            (self.remap_move(task, &mut st, addr, old_len, flags, new_addr)?, None)
        } else {
            self.mremap_one(task, &mut st, addr, old_len, new_len, flags, new_addr)?
        };
        drop(st);
        if let Some((s, l)) = populate {
            self.mm_populate(task, s, l);
        }
        Ok(ret)
    }

    /// One VMA's remap: the checks on it, then a move or a resize.
    #[allow(clippy::too_many_arguments)]
    fn mremap_one(
        &self,
        task: &Task,
        st: &mut MmState,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> Result<(u64, Option<(u64, u64)>), Errno> {
        let implies_new = flags & (FIXED | DONTUNMAP) != 0;
        let (mut old_len, mut new_len) = (old_len, new_len);
        let v = self.vma_lookup(st, addr).ok_or(Errno::EFAULT)?;
        if let Some(h) = crate::hugetlb::vma_hugetlb_size(v) {
            old_len = old_len.checked_add(h - 1).map_or(0, |l| l & !(h - 1));
            new_len = new_len.checked_add(h - 1).map_or(0, |l| l & !(h - 1));
            if addr & (h - 1) != 0 || new_addr & (h - 1) != 0 || new_len > old_len {
                return Err(Errno::EINVAL);
            }
        }
        if new_len > old_len || implies_new {
            self.check_prep_vma(task, st, v, addr, old_len, new_len, flags)?;
        }
        if implies_new {
            self.mremap_to(task, st, addr, old_len, new_len, flags, new_addr)
        } else {
            self.mremap_at(task, st, addr, old_len, new_len, flags)
        }
    }

    /// A MREMAP_FIXED move of equal length, which may span several VMAs
    /// (`remap_move`): each is moved in turn, the gaps between them kept,
    /// none allowed before the first.
    fn remap_move(
        &self,
        task: &Task,
        st: &mut MmState,
        start: u64,
        len: u64,
        flags: u64,
        new_addr: u64,
    ) -> Result<u64, Errno> {
        let end = start + len;
        let mut res = Err(Errno::EFAULT);
        let mut seen = false;
        let mut target = new_addr;
        let mut last_end = 0;
        let mut cursor = start;
        while cursor < end {
            let Some(v) = self.find_vma_intersection(st, cursor, end) else { break };
            let a = v.start().max(start);
            let l = end.min(v.end()) - a;
            if !seen && start < v.start() {
                return Err(Errno::EFAULT);
            }
            let offset = if seen { v.start() - last_end } else { 0 };
            last_end = v.end();
            let (moved, _) = self.mremap_one(task, st, a, l, l, flags, target + offset)?;
            if !seen {
                res = Ok(moved);
            }
            seen = true;
            target = moved + l;
            cursor = a + l;
        }
        res
    }

    /// The checks on the source VMA of a remap that maps something new
    /// (`check_prep_vma`): it grows, or it moves.
    #[allow(clippy::too_many_arguments)]
    fn check_prep_vma(
        &self,
        task: &Task,
        st: &MmState,
        v: Vma<'_>,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
    ) -> Result<(), Errno> {
        if old_len == 0 && v.flags() & (vm::SHARED | vm::MAYSHARE) == 0 {
            return Err(Errno::EINVAL);
        }
        if flags & DONTUNMAP != 0 && v.flags() & (vm::DONTEXPAND | vm::PFNMAP) != 0 {
            return Err(Errno::EINVAL);
        }
        // A shrink may unmap across VMA boundaries: only what stays counts.
        let old_len = old_len.min(new_len);
        if old_len > v.end() - addr {
            return Err(Errno::EFAULT);
        }
        if new_len == old_len {
            return Ok(());
        }
        let pgoff = ((addr - v.start()) >> 12) + v.pgoff();
        if pgoff.checked_add(new_len >> 12).is_none() {
            return Err(Errno::EINVAL);
        }
        if v.flags() & (vm::DONTEXPAND | vm::PFNMAP) != 0 {
            return Err(Errno::EFAULT);
        }
        let delta = new_len.abs_diff(old_len);
        if !self.mlock_future_ok(task, st, v.flags(), delta) {
            return Err(Errno::EAGAIN);
        }
        if !self.may_expand_vm(task, st, v.flags(), delta >> 12) {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn mremap_to(
        &self,
        task: &Task,
        st: &mut MmState,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> Result<(u64, Option<(u64, u64)>), Errno> {
        let delta = new_len.abs_diff(old_len);
        let mut old_len = old_len;
        if flags & FIXED != 0 {
            self.do_munmap(task, st, new_addr, new_len)?;
            // The unmap may have taken the source VMA.
            if self.vma_lookup(st, addr).is_none() {
                return Err(Errno::EFAULT);
            }
        }
        if old_len > new_len {
            self.do_munmap(task, st, addr + new_len, old_len - new_len)?;
            old_len = new_len;
        }
        let v = self.vma_lookup(st, addr).ok_or(Errno::EFAULT)?;
        if flags & DONTUNMAP != 0 && !self.may_expand_vm(task, st, v.flags(), old_len >> 12) {
            return Err(Errno::ENOMEM);
        }
        let target = self.vrm_new_addr(st, v, addr, new_len, flags, new_addr, task.cap_sys_rawio())?;
        self.move_vma(task, st, v, addr, old_len, new_len, target, flags, delta)
    }

    /// Where a moving VMA goes (`vrm_set_new_addr`).
    #[allow(clippy::too_many_arguments)]
    fn vrm_new_addr(
        &self,
        st: &MmState,
        v: Vma<'_>,
        addr: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
        rawio: bool,
    ) -> Result<u64, Errno> {
        let mut map_flags = 0;
        if flags & FIXED != 0 {
            map_flags |= map::FIXED;
        }
        if v.flags() & vm::MAYSHARE != 0 {
            map_flags |= map::SHARED;
        }
        let pgoff = v.pgoff() + ((addr - v.start()) >> 12);
        let hint = if flags & (FIXED | DONTUNMAP) != 0 { new_addr } else { 0 };
        let a = self.get_unmapped_area(st, hint, new_len, pgoff, map_flags, v.file())?;
        // security_mmap_addr: below vm.mmap_min_addr only with CAP_SYS_RAWIO.
        if a < self.sysctl.mmap_min_addr.load(Relaxed) && !rawio {
            return Err(Errno::EPERM);
        }
        Ok(a)
    }

    fn mremap_at(
        &self,
        task: &Task,
        st: &mut MmState,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
    ) -> Result<(u64, Option<(u64, u64)>), Errno> {
        if old_len >= new_len {
            if old_len != new_len {
                self.do_munmap(task, st, addr + new_len, old_len - new_len)?;
            }
            return Ok((addr, None));
        }
        let v = self.vma_lookup(st, addr).ok_or(Errno::EFAULT)?;
        if addr + old_len == v.end() {
            let delta = new_len - old_len;
            if self.vma_expandable(st, v, delta) {
                let pages = (delta >> 12) as i64;
                if v.flags() & vm::ACCOUNT != 0 {
                    self.vm_enough_memory(task, pages, true)?;
                }
                let nv = self.vma_merge_extend(st, v, delta);
                vm_stat_account(st, nv.flags(), pages);
                let mut populate = None;
                if nv.flags() & vm::LOCKED != 0 {
                    st.locked_vm += pages as u64;
                    populate = Some((addr + old_len, delta));
                }
                return Ok((addr, populate));
            }
        }
        if flags & MAYMOVE == 0 {
            return Err(Errno::ENOMEM);
        }
        let target = self.vrm_new_addr(st, v, addr, new_len, flags, 0, task.cap_sys_rawio())?;
        self.move_vma(task, st, v, addr, old_len, new_len, target, flags, new_len - old_len)
    }

    /// Whether `v` can grow by `delta` in place (`vma_expandable`).
    fn vma_expandable(&self, st: &MmState, v: Vma<'_>, delta: u64) -> bool {
        let Some(end) = v.end().checked_add(delta) else { return false };
        if self.find_vma_intersection(st, v.end(), end).is_some() {
            return false;
        }
        let len = end - v.start();
        len <= TASK_SIZE && v.start() <= TASK_SIZE - len
    }

    /// Grows `v` by `delta` and merges it with the next VMA when they now
    /// touch and agree (`vma_merge_extend`).
    fn vma_merge_extend<'k>(&'k self, st: &mut MmState, v: Vma<'k>, delta: u64) -> Vma<'k> {
        let new_end = v.end() + delta;
        let next = self.find_vma(st, v.end()).filter(|n| n.start() == new_end);
        self.vma_set_range(st, v, v.start(), new_end, v.pgoff());
        if let Some(n) = next {
            let attrs = VmaAttrs::of(v);
            let compatible = VmaAttrs::of(n).flags & !vm::SOFTDIRTY == attrs.flags & !vm::SOFTDIRTY
                && n.file() == v.file()
                && n.pgoff() == v.pgoff() + v.pages()
                && attrs.flags & vm::SPECIAL == 0
                && self.anon_names_equal(attrs.anon_name, n.raw().anon_name.load(Relaxed))
                && attrs.policy == n.raw().vm_policy.load(Relaxed)
                && (v.anon_vma() == 0 || n.anon_vma() == 0 || v.anon_vma() == n.anon_vma());
            if compatible {
                let _ = self.vma_modify_merge_next(st, v, n);
            }
        }
        v
    }

    fn vma_modify_merge_next(&self, st: &mut MmState, v: Vma<'_>, n: Vma<'_>) -> Result<(), Errno> {
        if v.anon_vma() == 0 && n.anon_vma() != 0 {
            v.raw().anon_vma.store(n.anon_vma(), Relaxed);
            self.anon_vma_clone(v, n, false)?;
        }
        let end = n.end();
        self.vma_unlink(st, n);
        self.vm_area_free(n);
        self.vma_set_range(st, v, v.start(), end, v.pgoff());
        Ok(())
    }

    /// Moves `[old_addr, old_addr+old_len)` of `v` to `new_addr`, grown to
    /// `new_len` (`move_vma`): a new VMA (or a merge), the PTEs moved over,
    /// the old range unmapped unless DONTUNMAP.
    #[allow(clippy::too_many_arguments)]
    fn move_vma(
        &self,
        task: &Task,
        st: &mut MmState,
        v: Vma<'_>,
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        new_addr: u64,
        flags: u64,
        delta: u64,
    ) -> Result<(u64, Option<(u64, u64)>), Errno> {
        let mm = &*task.mm;
        if st.map_count + 3 >= self.sysctl.max_map_count.load(Relaxed) {
            return Err(Errno::ENOMEM);
        }
        let vm_flags = v.flags();
        // vrm_calc_charge: the whole new length when the old range stays,
        // else the size change the caller asked for (a shrinking move
        // charges it too).
        let to_account = if flags & DONTUNMAP != 0 { new_len } else { delta };
        if vm_flags & vm::ACCOUNT != 0 {
            self.vm_enough_memory(task, (to_account >> 12) as i64, true)?;
        }
        // copy_vma: an anonymous VMA without pages restarts its offset at the new address.
        let new_pgoff = if v.is_anonymous() && v.anon_vma() == 0 {
            new_addr >> 12
        } else {
            v.pgoff() + ((old_addr - v.start()) >> 12)
        };
        let attrs = VmaAttrs::of(v);
        let new_vma = match self.vma_merge_new_range(st, new_addr, new_addr + new_len, &attrs, v.file(), new_pgoff) {
            Some(nv) if nv.anon_vma() == v.anon_vma() || nv.anon_vma() == 0 || v.anon_vma() == 0 => {
                if nv.anon_vma() == 0 && v.anon_vma() != 0 {
                    nv.raw().anon_vma.store(v.anon_vma(), Relaxed);
                    self.anon_vma_clone(nv, v, false)?;
                }
                nv
            }
            Some(nv) => nv,
            None => {
                let nv = match self.vm_area_dup(v, mm.id) {
                    Ok(nv) => nv,
                    Err(e) => {
                        if vm_flags & vm::ACCOUNT != 0 {
                            self.vm_acct_memory(-((to_account >> 12) as i64));
                        }
                        return Err(e);
                    }
                };
                nv.raw().anon_vma_chain.store(0, Relaxed);
                nv.raw().anon_vma.store(0, Relaxed);
                if v.anon_vma() != 0 {
                    nv.raw().anon_vma.store(v.anon_vma(), Relaxed);
                    self.anon_vma_clone(nv, v, false)?;
                }
                self.vma_set_range(st, nv, new_addr, new_addr + new_len, new_pgoff);
                self.vma_link(st, nv);
                nv
            }
        };
        self.move_page_tables(task, old_addr, new_addr, old_len)?;
        // The old range's commit moves with it: hide VM_ACCOUNT from the unmap.
        let mut account_start = false;
        let mut account_end = false;
        let (vs, ve) = (v.start(), v.end());
        if vm_flags & vm::ACCOUNT != 0 && flags & DONTUNMAP == 0 {
            v.set_flags(v.flags() & !vm::ACCOUNT);
            account_start = vs < old_addr;
            account_end = ve > old_addr + old_len;
        }
        let hiwater = st.hiwater_vm;
        vm_stat_account(st, vm_flags, (new_len >> 12) as i64);
        if flags & DONTUNMAP != 0 {
            // dontunmap_complete: the emptied source keeps no lock and no
            // charge; a wholly moved one drops its anon_vma links.
            v.set_flags(v.flags() & !(vm::LOCKED_MASK | vm::ACCOUNT));
            if new_vma.va != v.va && v.start() == old_addr && v.end() == old_addr + old_len {
                self.unlink_anon_vmas(v);
            }
            return Ok((new_addr, None));
        }
        if self.do_munmap(task, st, old_addr, old_len).is_err() && vm_flags & vm::ACCOUNT != 0 {
            self.vm_acct_memory((old_len >> 12) as i64);
        }
        let mut populate = None;
        if vm_flags & vm::LOCKED != 0 {
            st.locked_vm += new_len >> 12;
            if new_len > old_len {
                populate = Some((new_addr + old_len, new_len - old_len));
            }
        }
        st.hiwater_vm = hiwater;
        if account_start {
            if let Some(p) = self.vma_before(st, old_addr) {
                p.set_flags(p.flags() | vm::ACCOUNT);
            }
        }
        if account_end {
            if let Some(n) = self.find_vma(st, old_addr + old_len) {
                n.set_flags(n.flags() | vm::ACCOUNT);
            }
        }
        Ok((new_addr, populate))
    }

    /// Moves the PTEs of `[old, old+len)` to `[new, new+len)` (`move_page_tables`).
    fn move_page_tables(&self, task: &Task, old: u64, new: u64, len: u64) -> Result<(), Errno> {
        let mm = &*task.mm;
        let mut moved = false;
        let mut off = 0;
        while off < len {
            let from = old + off;
            if let Some(p) = self.pte_of(mm, from) {
                let e = p.load(Relaxed);
                if e != 0 {
                    let (t, i) = self.pte_offset_alloc(mm, new + off)?;
                    p.store(0, Relaxed);
                    self.table(t)[i].store(e, Relaxed);
                    moved = true;
                }
            } else {
                off = ((from | ((1 << 21) - 1)) + 1) - old;
                continue;
            }
            off += 4096;
        }
        if moved {
            self.flush_tlb_range(mm, old, old + len);
        }
        Ok(())
    }
}
