//! fork and exit of address spaces (Linux's `kernel/fork.c` `dup_mmap`,
//! `mm/mmap.c` `exit_mmap`).
//!
//! The child gets a copy of every VMA but those marked `VM_DONTCOPY`
//! (madvise DONTFORK); private pages become copy-on-write in both, VMAs
//! marked `VM_WIPEONFORK` start empty in the child, and mlock does not
//! carry over. Exit unmaps everything and frees the page tables, so
//! PageTables and the memory counters return to where they were.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::memory::MmuGather;
use crate::mm_types::{vm, Mm, Task};
use crate::types::Errno;

impl Kernel {
    /// Forks `parent` (`copy_process` as far as memory goes): a new task
    /// whose mm is a copy of the parent's (`dup_mm`).
    pub fn fork_task(&self, parent: &Task) -> Result<Arc<Task>, Errno> {
        let mm = self.dup_mm(parent)?;
        let c = self.slab.subsystem.get().ok_or(Errno::ENOMEM)?.task_struct;
        let obj = match self.kmem_cache_alloc(c, Gfp::GFP_KERNEL | Gfp::ZERO) {
            Some(o) => o,
            None => {
                self.mmput(&mm);
                return Err(Errno::ENOMEM);
            }
        };
        let task = Arc::new(Task {
            pid: self.vm.next_pid.fetch_add(1, Relaxed),
            comm: parent.comm.clone(),
            mm,
            rlim: spin::Mutex::new(*parent.rlim.lock()),
            personality: AtomicU64::new(parent.personality.load(Relaxed)),
            cap_ipc_lock: AtomicBool::new(parent.cap_ipc_lock.load(Relaxed)),
            cap_sys_resource: AtomicBool::new(parent.cap_sys_resource.load(Relaxed)),
            cap_sys_rawio: AtomicBool::new(parent.cap_sys_rawio.load(Relaxed)),
            obj,
        });
        self.vm.tasks.lock().insert(task.pid, task.clone());
        Ok(task)
    }

    /// A copy of the parent's address space (`dup_mm` + `dup_mmap`).
    pub fn dup_mm(&self, parent: &Task) -> Result<Arc<Mm>, Errno> {
        let old = &*parent.mm;
        let mm = self.mm_alloc()?;
        let ost = old.lock.write();
        let res = (|| {
            let mut st = mm.lock.write();
            st.mmap_base = ost.mmap_base;
            st.mmap_legacy_base = ost.mmap_legacy_base;
            st.task_size = ost.task_size;
            st.topdown = ost.topdown;
            st.start_code = ost.start_code;
            st.end_code = ost.end_code;
            st.start_data = ost.start_data;
            st.end_data = ost.end_data;
            st.start_brk = ost.start_brk;
            st.brk = ost.brk;
            st.start_stack = ost.start_stack;
            st.total_vm = ost.total_vm;
            st.data_vm = ost.data_vm;
            st.exec_vm = ost.exec_vm;
            st.stack_vm = ost.stack_vm;
            st.hiwater_vm = ost.total_vm;
            st.def_flags = ost.def_flags & vm::NOHUGEPAGE;
            for v in self.vmas(&ost) {
                if v.flags() & vm::DONTCOPY != 0 {
                    crate::vma::vm_stat_account(&mut st, v.flags(), -(v.pages() as i64));
                    continue;
                }
                if v.flags() & vm::ACCOUNT != 0 {
                    self.vm_enough_memory(parent, v.pages() as i64, true)?;
                }
                let n = match self.vm_area_dup(v, mm.id) {
                    Ok(n) => n,
                    Err(e) => {
                        if v.flags() & vm::ACCOUNT != 0 {
                            self.vm_acct_memory(-(v.pages() as i64));
                        }
                        return Err(e);
                    }
                };
                n.set_flags(v.flags() & !vm::LOCKED_MASK);
                n.raw().anon_vma_chain.store(0, Relaxed);
                if v.flags() & vm::WIPEONFORK != 0 {
                    n.raw().anon_vma.store(0, Relaxed);
                } else if let Err(e) = self.anon_vma_fork(n, v) {
                    self.vm_area_free(n);
                    return Err(e);
                }
                self.vma_link(&mut st, n);
                if v.flags() & vm::WIPEONFORK == 0 {
                    self.copy_page_range(&mm, old, n, v)?;
                }
            }
            Ok(())
        })();
        // The parent's writable private PTEs became read-only.
        self.flush_tlb_mm(old);
        drop(ost);
        match res {
            Ok(()) => Ok(mm),
            Err(e) => {
                self.mmput(&mm);
                Err(e)
            }
        }
    }

    /// Tears an address space down (`exit_mmap`): every VMA unmapped,
    /// every page table freed, the commit released.
    pub fn mmput(&self, mm: &Mm) {
        if mm.dead.swap(true, Relaxed) {
            return;
        }
        let mut st = mm.lock.write();
        let vmas = self.vmas(&st);
        let mut tlb = MmuGather::default();
        for v in &vmas {
            self.zap_pte_range(mm, *v, v.start(), v.end(), &mut tlb);
        }
        self.free_pgd_range(mm, &mut tlb, 0, crate::mmap::TASK_SIZE, 0, 0);
        self.tlb_finish_mmu(mm, &mut tlb);
        self.flush_tlb_mm(mm);
        for v in vmas {
            if v.flags() & vm::ACCOUNT != 0 {
                self.vm_acct_memory(-(v.pages() as i64));
            }
            self.vma_unlink(&mut st, v);
            self.vm_area_free(v);
        }
        st.total_vm = 0;
        st.locked_vm = 0;
        st.data_vm = 0;
        st.exec_vm = 0;
        st.stack_vm = 0;
        drop(st);
        self.pgtable_free(mm.pgd);
        mm.pgtables_bytes.fetch_sub(4096, Relaxed);
        if let Some(c) = self.slab.subsystem.get() {
            self.kmem_cache_free(c.mm_struct, mm.obj);
        }
    }

    /// Ends a task (`do_exit` as far as memory goes): its mm goes away
    /// with its last user.
    pub fn exit_task(&self, task: &Task) {
        self.vm.tasks.lock().remove(&task.pid);
        self.mmput(&task.mm);
        if let Some(c) = self.slab.subsystem.get() {
            self.kmem_cache_free(c.task_struct, task.obj);
        }
    }
}

/// `process_vm_readv` and `process_vm_writev` (Linux's
/// `mm/process_vm_access.c`).
impl Kernel {
    /// Copies from `pid`'s memory (`remote`) into the caller's (`local`),
    /// page by page; stops at the first page that cannot be read or
    /// written and returns the bytes moved, or the error when none moved.
    pub fn sys_process_vm_readv(
        &self,
        task: &Task,
        pid: u64,
        local: &[(u64, u64)],
        remote: &[(u64, u64)],
        flags: u64,
    ) -> Result<u64, Errno> {
        self.process_vm_rw(task, pid, local, remote, flags, false)
    }

    /// Copies from the caller's memory (`local`) into `pid`'s (`remote`).
    pub fn sys_process_vm_writev(
        &self,
        task: &Task,
        pid: u64,
        local: &[(u64, u64)],
        remote: &[(u64, u64)],
        flags: u64,
    ) -> Result<u64, Errno> {
        self.process_vm_rw(task, pid, local, remote, flags, true)
    }

    fn process_vm_rw(
        &self,
        task: &Task,
        pid: u64,
        local: &[(u64, u64)],
        remote: &[(u64, u64)],
        flags: u64,
        write: bool,
    ) -> Result<u64, Errno> {
        const UIO_MAXIOV: usize = 1024;
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        if local.len() > UIO_MAXIOV || remote.len() > UIO_MAXIOV {
            return Err(Errno::EINVAL);
        }
        // The iovec lengths must not overflow a signed size (rw_copy_check_uvector).
        let total_local = local.iter().try_fold(0u64, |a, &(_, l)| a.checked_add(l).filter(|t| *t <= i64::MAX as u64));
        let total_remote =
            remote.iter().try_fold(0u64, |a, &(_, l)| a.checked_add(l).filter(|t| *t <= i64::MAX as u64));
        let (Some(total), Some(_)) = (total_local, total_remote) else { return Err(Errno::EINVAL) };
        if total == 0 {
            return Ok(0);
        }
        let other = self.vm.tasks.lock().get(&pid).cloned().ok_or(Errno::ESRCH)?;
        let mut li = local.iter().copied().filter(|&(_, l)| l > 0).peekable();
        let mut lpos = 0u64;
        let mut moved = 0u64;
        let mut err = None;
        'outer: for &(raddr, rlen) in remote {
            let mut off = 0;
            while off < rlen {
                let Some(&(laddr, llen)) = li.peek() else { break 'outer };
                let ra = raddr + off;
                let n = (4096 - (ra & 0xfff)).min(rlen - off).min(llen - lpos);
                let mut buf = alloc::vec![0u8; n as usize];
                let la = laddr + lpos;
                let ok = if write {
                    self.read_user(task, la, &mut buf).is_ok() && self.write_user(&other, ra, &buf).is_ok()
                } else {
                    self.read_user(&other, ra, &mut buf).is_ok() && self.write_user(task, la, &buf).is_ok()
                };
                if !ok {
                    err = Some(Errno::EFAULT);
                    break 'outer;
                }
                moved += n;
                off += n;
                lpos += n;
                if lpos == llen {
                    li.next();
                    lpos = 0;
                }
            }
        }
        match (moved, err) {
            (0, Some(e)) => Err(e),
            _ => Ok(moved),
        }
    }
}
