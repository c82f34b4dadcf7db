//! `mmap`, `munmap` and `brk`, the address-space layout and overcommit
//! accounting (Linux's `mm/mmap.c`, `mm/vma.c`, `mm/util.c`,
//! `arch/x86/mm/mmap.c`, `arch/x86/kernel/sys_x86_64.c`).
//!
//! Validation happens in Linux's order, so that a call with several bad
//! arguments fails with the errno Linux gives; addresses come from the
//! same searches (top-down below `mmap_base`, bottom-up from
//! `TASK_UNMAPPED_BASE` as the fallback or legacy layout, THP alignment
//! for anonymous mappings whose length is a multiple of 2 MiB).

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::memory::MmuGather;
use crate::mm_types::{personality, rlimit, vm, Mm, MmState, Rlimit, Task, Vma, RLIM_INFINITY};
use crate::types::{Errno, VirtAddr};
use crate::vma::{vm_stat_account, UnmappedAreaInfo, VmaAttrs};

/// `mmap` protection bits (`PROT_*`).
pub mod prot {
    #![allow(missing_docs)]
    pub const NONE: u64 = 0;
    pub const READ: u64 = 0x1;
    pub const WRITE: u64 = 0x2;
    pub const EXEC: u64 = 0x4;
    pub const SEM: u64 = 0x8;
    pub const GROWSDOWN: u64 = 0x0100_0000;
    pub const GROWSUP: u64 = 0x0200_0000;
}

/// `mmap` flags (`MAP_*`, x86-64 values).
pub mod map {
    #![allow(missing_docs)]
    pub const SHARED: u64 = 0x01;
    pub const PRIVATE: u64 = 0x02;
    pub const SHARED_VALIDATE: u64 = 0x03;
    pub const DROPPABLE: u64 = 0x08;
    pub const TYPE: u64 = 0x0f;
    pub const FIXED: u64 = 0x10;
    pub const ANONYMOUS: u64 = 0x20;
    pub const BIT32: u64 = 0x40;
    pub const GROWSDOWN: u64 = 0x0100;
    pub const DENYWRITE: u64 = 0x0800;
    pub const EXECUTABLE: u64 = 0x1000;
    pub const LOCKED: u64 = 0x2000;
    pub const NORESERVE: u64 = 0x4000;
    pub const POPULATE: u64 = 0x8000;
    pub const NONBLOCK: u64 = 0x10000;
    pub const STACK: u64 = 0x20000;
    pub const HUGETLB: u64 = 0x40000;
    pub const SYNC: u64 = 0x80000;
    pub const FIXED_NOREPLACE: u64 = 0x100000;
    pub const UNINITIALIZED: u64 = 0x4000000;
    pub const HUGE_SHIFT: u64 = 26;
    pub const HUGE_MASK: u64 = 0x3f;
}

/// Top of user space for 4-level paging and the default mmap window
/// (`TASK_SIZE`, `DEFAULT_MAP_WINDOW`).
pub const TASK_SIZE: u64 = crate::arch::x86_64::TASK_SIZE_MAX;
const PMD_SIZE: u64 = 1 << 21;
const SIZE_128M: u64 = 128 << 20;
/// `STACK_RND_MASK` for 64-bit tasks, in pages.
const STACK_RND_MASK: u64 = 0x3f_ffff;

/// `PAGE_ALIGN`, saturating at the top (the caller checks for 0).
const fn page_align(x: u64) -> u64 {
    x.wrapping_add(4095) & !4095
}

/// The bottom-up base (`TASK_UNMAPPED_BASE`): a third of the task size.
pub const fn task_unmapped_base(task_size: u64) -> u64 {
    page_align(task_size / 3)
}

impl Kernel {
    /// A fresh, empty address space with its top-level table (`mm_alloc`).
    pub fn mm_alloc(&self) -> Result<Arc<Mm>, Errno> {
        let pgd = self.pgtable_alloc().ok_or(Errno::ENOMEM)?;
        let c = self.slab.subsystem.get().ok_or(Errno::ENOMEM)?.mm_struct;
        let obj = match self.kmem_cache_alloc(c, Gfp::GFP_KERNEL | Gfp::ZERO) {
            Some(o) => o,
            None => {
                self.pgtable_free(pgd);
                return Err(Errno::ENOMEM);
            }
        };
        Ok(Arc::new(Mm {
            id: self.vm.next_mm_id.fetch_add(1, Relaxed),
            pgd,
            obj,
            lock: spin::RwLock::new(MmState { task_size: TASK_SIZE, ..Default::default() }),
            rss: Default::default(),
            hiwater_rss: AtomicU64::new(0),
            pgtables_bytes: AtomicI64::new(4096),
            cpumask: AtomicU64::new(0),
            dead: AtomicBool::new(false),
        }))
    }

    /// A random multiple of pages below `2^bits` pages (`arch_rnd`), or 0
    /// without randomization.
    fn arch_rnd(&self, task: &Task, bits: u64) -> u64 {
        if !task.randomize(self) {
            return 0;
        }
        (self.vm.random_long() & ((1u64 << bits) - 1)) << 12
    }

    /// Picks the mmap layout of a new address space (`arch_pick_mmap_layout`):
    /// top-down below the stack gap, or bottom-up from a third of the task
    /// size for the legacy layout.
    pub fn arch_pick_mmap_layout(&self, task: &Task, st: &mut MmState) {
        let legacy = task.personality.load(Relaxed) & personality::ADDR_COMPAT_LAYOUT != 0
            || self.vm.legacy_va_layout.load(Relaxed) != 0;
        st.topdown = !legacy;
        let rnd = self.arch_rnd(task, self.sysctl.mmap_rnd_bits.load(Relaxed));
        let task_size = TASK_SIZE;
        st.mmap_legacy_base = task_unmapped_base(task_size) + rnd;
        st.mmap_base = if legacy {
            st.mmap_legacy_base
        } else {
            let mut gap = task.rlimit(rlimit::STACK);
            let stack_rnd = if task.randomize(self) { STACK_RND_MASK << 12 } else { 0 };
            let pad = stack_rnd + self.vm.stack_guard_gap.load(Relaxed);
            if gap.wrapping_add(pad) > gap {
                gap += pad;
            }
            let gap_max = (task_size / 6) * 5;
            gap = gap.clamp(SIZE_128M, gap_max);
            page_align(task_size - gap - rnd)
        };
    }

    /// Creates a process with an empty address space laid out as `execve`
    /// leaves it for a program without segments of its own: the mmap
    /// layout picked, a 128 KiB stack below `STACK_TOP`, a heap start.
    pub fn create_process(&self, comm: &str, rlim: [Rlimit; rlimit::NLIMITS], pers: u64) -> Result<Arc<Task>, Errno> {
        let mm = self.mm_alloc()?;
        let c = self.slab.subsystem.get().ok_or(Errno::ENOMEM)?.task_struct;
        let obj = self.kmem_cache_alloc(c, Gfp::GFP_KERNEL | Gfp::ZERO).ok_or(Errno::ENOMEM)?;
        let task = Arc::new(Task {
            pid: self.vm.next_pid.fetch_add(1, Relaxed),
            comm: alloc::string::String::from(comm),
            mm,
            rlim: spin::Mutex::new(rlim),
            personality: AtomicU64::new(pers),
            cap_ipc_lock: AtomicBool::new(false),
            cap_sys_resource: AtomicBool::new(false),
            cap_sys_rawio: AtomicBool::new(false),
            obj,
        });
        {
            let mm = &task.mm;
            let mut st = mm.lock.write();
            self.arch_pick_mmap_layout(&task, &mut st);
            // The stack: STACK_TOP less a random offset, 128 KiB as
            // setup_arg_pages grows it.
            let rnd = if task.randomize(self) { self.vm.random_long() & (STACK_RND_MASK << 12) } else { 0 };
            let top = page_align(TASK_SIZE - rnd) & !0xfff;
            let start = top - (128 << 10);
            let v = self.vm_area_alloc(mm)?;
            let flags = vm::STACK_DEFAULT | vm::ACCOUNT;
            self.vma_set_range(&mut st, v, start, top, start >> 12);
            v.set_flags(flags);
            self.vma_link(&mut st, v);
            vm_stat_account(&mut st, flags, 32);
            self.vm_acct_memory(32);
            st.start_stack = top - 4096;
            // A heap above a 4 MiB program image at the usual PIE base.
            let base = (TASK_SIZE / 3 * 2) & !0xfff;
            st.start_code = base;
            st.end_code = base + (2 << 20);
            st.start_data = base + (2 << 20);
            st.end_data = base + (4 << 20);
            let brk = st.end_data;
            let brk = if task.randomize(self) && self.vm.randomize_va_space.load(Relaxed) > 1 {
                brk + (self.vm.random_long() & ((32 << 20) - 1) & !0xfff)
            } else {
                brk
            };
            st.start_brk = brk;
            st.brk = brk;
        }
        self.vm.tasks.lock().insert(task.pid, task.clone());
        Ok(task)
    }

    /// Creates a process whose address space starts as a copy of another
    /// program's layout (the VMAs an `execve` and the loader made, taken
    /// from its /proc/PID/maps): used to run a host process's calls on a
    /// model with the same starting point. The image VMAs have no pages.
    pub fn create_process_with_layout(
        &self,
        comm: &str,
        rlim: [Rlimit; rlimit::NLIMITS],
        pers: u64,
        layout: &ImageLayout,
    ) -> Result<Arc<Task>, Errno> {
        let task = self.create_process(comm, rlim, pers)?;
        let mm = &*task.mm;
        let mut st = mm.lock.write();
        for v in self.vmas(&st) {
            if v.flags() & vm::ACCOUNT != 0 {
                self.vm_acct_memory(-(v.pages() as i64));
            }
            self.vma_unlink(&mut st, v);
            self.vm_area_free(v);
        }
        st.total_vm = 0;
        st.stack_vm = 0;
        st.data_vm = 0;
        st.exec_vm = 0;
        st.mmap_base = layout.mmap_base;
        st.mmap_legacy_base = task_unmapped_base(TASK_SIZE);
        st.topdown = !layout.legacy;
        st.start_brk = layout.start_brk;
        st.brk = layout.brk;
        st.start_stack = layout.start_stack;
        st.start_code = layout.start_code;
        st.end_code = layout.end_code;
        st.start_data = layout.start_data;
        st.end_data = layout.end_data;
        for iv in &layout.vmas {
            let v = self.vm_area_alloc(mm)?;
            v.set_flags(iv.flags);
            v.raw().vm_file.store(iv.file, Relaxed);
            self.vma_set_range(&mut st, v, iv.start, iv.end, iv.pgoff);
            self.vma_link(&mut st, v);
            let pages = (iv.end - iv.start) >> 12;
            vm_stat_account(&mut st, iv.flags, pages as i64);
            if iv.flags & vm::ACCOUNT != 0 {
                self.vm_acct_memory(pages as i64);
            }
            if iv.flags & vm::LOCKED != 0 {
                st.locked_vm += pages;
            }
            if iv.forked_anon {
                self.anon_vma_prepare(v)?;
                self.anon_vma_add_parent(v)?;
            }
        }
        drop(st);
        Ok(task)
    }

    /// `prlimit64` on oneself (`do_prlimit`): sets a limit, returns the old one.
    pub fn sys_prlimit(&self, task: &Task, resource: u64, new: Option<Rlimit>) -> Result<Rlimit, Errno> {
        if resource >= rlimit::NLIMITS as u64 {
            return Err(Errno::EINVAL);
        }
        let r = resource as usize;
        let mut lim = task.rlim.lock();
        let old = lim[r];
        if let Some(n) = new {
            if n.cur > n.max {
                return Err(Errno::EINVAL);
            }
            if r == 7 && n.max > 1 << 20 {
                return Err(Errno::EPERM);
            }
            if n.max > old.max && !task.cap_sys_resource.load(Relaxed) {
                return Err(Errno::EPERM);
            }
            lim[r] = n;
        }
        Ok(old)
    }

    /// Whether the mm may grow by `npages` of `flags` under RLIMIT_AS and
    /// RLIMIT_DATA (`may_expand_vm`).
    pub fn may_expand_vm(&self, task: &Task, st: &MmState, flags: u64, npages: u64) -> bool {
        let lim = *task.rlim.lock();
        if st.total_vm + npages > lim[rlimit::AS].cur >> 12 {
            return false;
        }
        if flags & (vm::WRITE | vm::SHARED | vm::STACK) == vm::WRITE
            && st.data_vm + npages > lim[rlimit::DATA].cur >> 12
        {
            // Valgrind's workaround: a zero soft limit under a larger hard one.
            return lim[rlimit::DATA].cur == 0 && st.data_vm + npages <= lim[rlimit::DATA].max >> 12;
        }
        true
    }

    /// Whether locking `bytes` more keeps the mm under RLIMIT_MEMLOCK
    /// (`mlock_future_ok`).
    pub fn mlock_future_ok(&self, task: &Task, st: &MmState, flags: u64, bytes: u64) -> bool {
        if flags & vm::LOCKED == 0 || task.cap_ipc_lock.load(Relaxed) {
            return true;
        }
        let limit = task.rlimit(rlimit::MEMLOCK) >> 12;
        st.locked_vm + (bytes >> 12) <= limit
    }

    /// Adds to the committed address space (`vm_acct_memory`).
    pub fn vm_acct_memory(&self, pages: i64) {
        self.vm.committed_as.fetch_add(pages, Relaxed);
    }

    /// The overcommit limit in pages (`vm_commit_limit`).
    pub fn vm_commit_limit(&self) -> u64 {
        let kb = self.sysctl.overcommit_kbytes.load(Relaxed);
        if kb != 0 {
            kb >> 2
        } else {
            let ram =
                self.totalram_pages().saturating_sub(self.global_node_page_state(crate::vmstat::NodeStat::NrHugetlb));
            ram * self.sysctl.overcommit_ratio.load(Relaxed) / 100
        }
    }

    /// Charges `pages` to the committed address space if the overcommit
    /// policy allows (`__vm_enough_memory`), ENOMEM otherwise.
    pub fn vm_enough_memory(&self, task: &Task, pages: i64, _with_mm: bool) -> Result<(), Errno> {
        self.vm_acct_memory(pages);
        match self.sysctl.overcommit_memory.load(Relaxed) {
            1 => return Ok(()),
            0 => {
                if pages as u64 <= self.totalram_pages() {
                    return Ok(());
                }
            }
            _ => {
                let mut allowed = self.vm_commit_limit() as i64;
                allowed -= (self.vm.admin_reserve_kbytes.load(Relaxed) >> 2) as i64;
                let total_vm = task.mm.lock.try_read().map(|s| s.total_vm).unwrap_or(0);
                let reserve = (self.vm.user_reserve_kbytes.load(Relaxed) >> 2) as i64;
                allowed -= ((total_vm / 32) as i64).min(reserve);
                if self.vm.committed_as.load(Relaxed) < allowed {
                    return Ok(());
                }
            }
        }
        self.vm_acct_memory(-pages);
        Err(Errno::ENOMEM)
    }

    /// Finds room for a mapping (`__get_unmapped_area`): the hint when it
    /// is free, otherwise a search in the layout's direction.
    pub fn get_unmapped_area(
        &self,
        st: &MmState,
        addr: u64,
        len: u64,
        pgoff: u64,
        flags: u64,
        file: u64,
    ) -> Result<u64, Errno> {
        if len > TASK_SIZE {
            return Err(Errno::ENOMEM);
        }
        let anon = file == 0;
        let pgoff = if anon { 0 } else { pgoff };
        let thp_file = self.shmem_file(file).is_some_and(|f| f.thp_aligned);
        let addr = if thp_file || (anon && flags & map::SHARED == 0 && addr == 0 && len.is_multiple_of(PMD_SIZE)) {
            self.thp_get_unmapped_area(st, addr, len, pgoff, flags)?
        } else {
            self.arch_get_unmapped_area(st, addr, len, pgoff, flags)?
        };
        if addr > TASK_SIZE - len {
            return Err(Errno::ENOMEM);
        }
        if addr & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(addr)
    }

    /// THP alignment of large anonymous mappings (`__thp_get_unmapped_area`).
    fn thp_get_unmapped_area(&self, st: &MmState, addr: u64, len: u64, pgoff: u64, flags: u64) -> Result<u64, Errno> {
        let off = pgoff << 12;
        let size = PMD_SIZE;
        let fallback = || self.arch_get_unmapped_area(st, addr, len, pgoff, flags);
        let Some(off_end) = off.checked_add(len) else { return fallback() };
        let off_align = off.wrapping_add(size - 1) & !(size - 1);
        if off_end <= off_align || off_end - off_align < size {
            return fallback();
        }
        let len_pad = len + size;
        if off.checked_add(len_pad).is_none() {
            return fallback();
        }
        match self.arch_get_unmapped_area(st, addr, len_pad, pgoff, flags) {
            Ok(ret) if ret == addr => Ok(addr),
            Ok(ret) => {
                let off_sub = off.wrapping_sub(ret) & (size - 1);
                if st.topdown && off_sub == 0 {
                    Ok(ret + size)
                } else {
                    Ok(ret + off_sub)
                }
            }
            Err(_) => fallback(),
        }
    }

    /// x86's `arch_get_unmapped_area_topdown` / `arch_get_unmapped_area`.
    fn arch_get_unmapped_area(&self, st: &MmState, addr: u64, len: u64, pgoff: u64, flags: u64) -> Result<u64, Errno> {
        if flags & map::FIXED != 0 {
            return Ok(addr);
        }
        let guard = self.vm.stack_guard_gap.load(Relaxed);
        if !st.topdown || flags & map::BIT32 != 0 {
            return self.get_unmapped_area_bottomup(st, addr, len, pgoff, flags);
        }
        if addr != 0 {
            let a = addr & !0xfff;
            if TASK_SIZE - len >= a {
                match self.find_vma(st, a) {
                    None => return Ok(a),
                    Some(v) if a + len <= v.start_gap(guard) => return Ok(a),
                    _ => {}
                }
            }
        }
        let info = UnmappedAreaInfo {
            length: len,
            low_limit: 4096,
            high_limit: st.mmap_base,
            align_offset: pgoff << 12,
            ..Default::default()
        };
        match self.unmapped_area_topdown(st, &info) {
            Ok(a) => Ok(a),
            Err(_) => self.get_unmapped_area_bottomup(st, addr, len, pgoff, flags & !map::FIXED),
        }
    }

    fn get_unmapped_area_bottomup(
        &self,
        st: &MmState,
        addr: u64,
        len: u64,
        pgoff: u64,
        flags: u64,
    ) -> Result<u64, Errno> {
        let (begin, end) =
            if flags & map::BIT32 != 0 { (0x4000_0000, 0x8000_0000) } else { (st.mmap_legacy_base, TASK_SIZE) };
        if len > end {
            return Err(Errno::ENOMEM);
        }
        if addr != 0 {
            let a = page_align(addr);
            let guard = self.vm.stack_guard_gap.load(Relaxed);
            if end - len >= a && self.find_vma(st, a).is_none_or(|v| a + len <= v.start_gap(guard)) {
                return Ok(a);
            }
        }
        let info = UnmappedAreaInfo {
            length: len,
            low_limit: begin,
            high_limit: end,
            align_offset: pgoff << 12,
            ..Default::default()
        };
        self.unmapped_area(st, &info)
    }

    /// The `mmap` system call (`ksys_mmap_pgoff` + `do_mmap` + populate).
    /// Anonymous mappings only until the page cache lands; a file mapping
    /// (no MAP_ANONYMOUS) is answered EBADF as for a closed descriptor.
    #[allow(clippy::too_many_arguments)]
    pub fn sys_mmap(
        &self,
        task: &Task,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        fd: i64,
        off: u64,
    ) -> Result<u64, Errno> {
        if off & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & map::ANONYMOUS == 0 {
            let _ = fd;
            return Err(Errno::EBADF);
        } else if flags & map::HUGETLB != 0 {
            let ret = {
                let mut st = task.mm.lock.write();
                self.mmap_hugetlb_anon(task, &mut st, addr, len, prot, flags, off >> 12)?
            };
            return Ok(ret);
        }
        let (ret, populate) = {
            let mut st = task.mm.lock.write();
            self.do_mmap(task, &mut st, addr, len, prot, flags, off >> 12, None)?
        };
        if populate != 0 {
            self.mm_populate(task, ret, populate);
        }
        Ok(ret)
    }

    /// `mmap` of an open file (the descriptor already looked up).
    #[allow(clippy::too_many_arguments)]
    pub fn sys_mmap_file(
        &self,
        task: &Task,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        file: &OpenFile,
        off: u64,
    ) -> Result<u64, Errno> {
        if off & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & map::HUGETLB != 0 {
            return Err(Errno::EINVAL);
        }
        let (ret, populate) = {
            let mut st = task.mm.lock.write();
            self.do_mmap(task, &mut st, addr, len, prot, flags, off >> 12, Some(file))?
        };
        if populate != 0 {
            self.mm_populate(task, ret, populate);
        }
        Ok(ret)
    }

    /// `do_mmap` for anonymous memory: returns the address and how many
    /// bytes to populate after the lock is dropped.
    #[allow(clippy::too_many_arguments)]
    pub fn do_mmap(
        &self,
        task: &Task,
        st: &mut MmState,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        pgoff: u64,
        file: Option<&OpenFile>,
    ) -> Result<(u64, u64), Errno> {
        let mut prot = prot;
        let mut flags = flags;
        let mut addr = addr;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        if prot & prot::READ != 0 && task.personality.load(Relaxed) & personality::READ_IMPLIES_EXEC != 0 {
            prot |= prot::EXEC;
        }
        if flags & map::FIXED_NOREPLACE != 0 {
            flags |= map::FIXED;
        }
        let min = self.sysctl.mmap_min_addr.load(Relaxed);
        if flags & map::FIXED == 0 {
            addr &= !0xfff;
            if addr != 0 && addr < min {
                addr = page_align(min);
            }
        }
        let len = page_align(len);
        if len == 0 {
            return Err(Errno::ENOMEM);
        }
        let mut pgoff = pgoff;
        if pgoff.checked_add(len >> 12).is_none() {
            return Err(Errno::EOVERFLOW);
        }
        if st.map_count > self.sysctl.max_map_count.load(Relaxed) {
            return Err(Errno::ENOMEM);
        }
        let mut vm_flags = (prot & (prot::READ | prot::WRITE | prot::EXEC))
            | calc_vm_flag_bits(flags)
            | st.def_flags
            | vm::MAYREAD
            | vm::MAYWRITE
            | vm::MAYEXEC;
        let addr = self.get_unmapped_area(st, addr, len, pgoff, flags, file.map_or(0, |f| f.id))?;
        if addr < min && !task.cap_sys_rawio() {
            return Err(Errno::EPERM);
        }
        if flags & map::FIXED_NOREPLACE != 0 && self.find_vma_intersection(st, addr, addr + len).is_some() {
            return Err(Errno::EEXIST);
        }
        if flags & map::LOCKED != 0 && !self.can_do_mlock(task) {
            return Err(Errno::EPERM);
        }
        if !self.mlock_future_ok(task, st, vm_flags, len) {
            return Err(Errno::EAGAIN);
        }
        if let Some(f) = file {
            // file_mmap_ok: the range must fit below the largest file offset.
            let max = (i64::MAX as u64) - len;
            if pgoff > max >> 12 {
                return Err(Errno::EOVERFLOW);
            }
            let mut fl = flags;
            match flags & map::TYPE {
                map::SHARED | map::SHARED_VALIDATE => {
                    if flags & map::TYPE == map::SHARED {
                        fl &= crate::hugetlb::LEGACY_MAP_MASK;
                    }
                    // Disk filesystems with DAX support accept MAP_SYNC here
                    // (FOP_MMAP_SYNC) and refuse it later for non-DAX files.
                    let mut mask = crate::hugetlb::LEGACY_MAP_MASK;
                    if self.shmem_file(f.id).is_some_and(|sf| sf.thp_aligned) {
                        mask |= map::SYNC;
                    }
                    if fl & !mask != 0 {
                        return Err(Errno::EOPNOTSUPP);
                    }
                    if prot & prot::WRITE != 0 && !f.writable {
                        return Err(Errno::EACCES);
                    }
                    vm_flags |= vm::SHARED | vm::MAYSHARE;
                    if !f.writable {
                        vm_flags &= !(vm::MAYWRITE | vm::SHARED);
                    }
                    if !f.readable {
                        return Err(Errno::EACCES);
                    }
                }
                map::PRIVATE => {
                    if !f.readable {
                        return Err(Errno::EACCES);
                    }
                }
                _ => return Err(Errno::EINVAL),
            }
            if vm_flags & vm::GROWSDOWN != 0 {
                return Err(Errno::EINVAL);
            }
            if flags & map::NORESERVE != 0 && self.sysctl.overcommit_memory.load(Relaxed) != 2 {
                vm_flags |= vm::NORESERVE;
            }
            let addr = self.mmap_region_file(task, st, addr, len, vm_flags, pgoff, f.id)?;
            let populate = if vm_flags & vm::LOCKED != 0 || flags & (map::POPULATE | map::NONBLOCK) == map::POPULATE {
                len
            } else {
                0
            };
            return Ok((addr, populate));
        }
        match flags & map::TYPE {
            map::SHARED => {
                if vm_flags & vm::GROWSDOWN != 0 {
                    return Err(Errno::EINVAL);
                }
                pgoff = 0;
                vm_flags |= vm::SHARED | vm::MAYSHARE;
            }
            map::DROPPABLE => {
                if flags & (map::LOCKED | map::HUGETLB) != 0 || vm_flags & vm::GROWSDOWN != 0 {
                    return Err(Errno::EINVAL);
                }
                vm_flags |= vm::NORESERVE | vm::WIPEONFORK | vm::DONTDUMP | vm::DROPPABLE;
                pgoff = addr >> 12;
            }
            map::PRIVATE => pgoff = addr >> 12,
            _ => return Err(Errno::EINVAL),
        }
        if flags & map::NORESERVE != 0 && self.sysctl.overcommit_memory.load(Relaxed) != 2 {
            vm_flags |= vm::NORESERVE;
        }
        let addr = self.mmap_region(task, st, addr, len, vm_flags, pgoff)?;
        let populate = if vm_flags & vm::LOCKED != 0 || flags & (map::POPULATE | map::NONBLOCK) == map::POPULATE {
            len
        } else {
            0
        };
        Ok((addr, populate))
    }

    /// Whether the task may lock memory at all (`can_do_mlock`).
    pub fn can_do_mlock(&self, task: &Task) -> bool {
        task.rlimit(rlimit::MEMLOCK) != 0 || task.cap_ipc_lock.load(Relaxed)
    }

    /// Maps `[addr, addr+len)` with `vm_flags`, replacing what was there
    /// (`mmap_region`).
    pub fn mmap_region(
        &self,
        task: &Task,
        st: &mut MmState,
        addr: u64,
        len: u64,
        vm_flags: u64,
        pgoff: u64,
    ) -> Result<u64, Errno> {
        self.mmap_region_file(task, st, addr, len, vm_flags, pgoff, 0)
    }

    /// [`Kernel::mmap_region`] of a file (`file` 0: anonymous memory).
    #[allow(clippy::too_many_arguments)]
    pub fn mmap_region_file(
        &self,
        task: &Task,
        st: &mut MmState,
        addr: u64,
        len: u64,
        vm_flags: u64,
        pgoff: u64,
        file: u64,
    ) -> Result<u64, Errno> {
        let opened = file;
        let mm = &*task.mm;
        let pglen = len >> 12;
        let end = addr + len;
        // __mmap_setup: the VMAs in the way are split at the edges first
        // (and stay split if a check below fails), then the limits are
        // checked for the pages that are really new.
        let (mut nr_pages, mut nr_accounted) = (0, 0);
        if self.find_vma_intersection(st, addr, end).is_some() {
            self.munmap_gather_split(task, st, addr, end)?;
            for v in self.vmas_in(st, addr, end) {
                nr_pages += v.pages();
                if v.flags() & vm::ACCOUNT != 0 {
                    nr_accounted += v.pages();
                }
            }
        }
        if !self.may_expand_vm(task, st, vm_flags, pglen - nr_pages) {
            return Err(Errno::ENOMEM);
        }
        // Private writable memory is charged to the commit unless NORESERVE;
        // what the replaced VMAs had charged carries over.
        let mut vm_flags = vm_flags;
        let accountable = vm_flags & (vm::NORESERVE | vm::SHARED | vm::WRITE) == vm::WRITE;
        if accountable {
            let charged = pglen - nr_accounted;
            if charged != 0 {
                self.vm_enough_memory(task, charged as i64, true)?;
            }
            vm_flags |= vm::ACCOUNT;
        }
        // A disk filesystem without DAX refuses synchronous page faults in
        // its mmap hook (ext4's daxdev_mapping_supported); tmpfs ignores them.
        // By then the old mappings' PTEs are gone, so Linux cannot put
        // them back: the range is left unmapped.
        if vm_flags & vm::SYNC != 0 && self.shmem_file(opened).is_some_and(|f| f.thp_aligned) {
            if accountable {
                self.vm_acct_memory(-((pglen - nr_accounted) as i64));
            }
            if nr_pages != 0 {
                self.do_munmap(task, st, addr, len)?;
            }
            return Err(Errno::EOPNOTSUPP);
        }
        if nr_pages != 0 {
            self.do_munmap(task, st, addr, len)?;
            if accountable {
                self.vm_acct_memory(nr_accounted as i64);
            }
        }
        let attrs = VmaAttrs { flags: vm_flags, anon_name: 0, policy: 0 };
        // Shared anonymous memory is a new shmem file: it never merges.
        let file = if opened != 0 {
            self.file_get(opened);
            opened
        } else if vm_flags & vm::SHARED != 0 {
            match self.shmem_zero_setup(task, len, vm_flags) {
                Ok(f) => f,
                Err(e) => {
                    if accountable {
                        self.vm_acct_memory(-(pglen as i64));
                    }
                    return Err(e);
                }
            }
        } else {
            0
        };
        let merged =
            if file == 0 || opened != 0 { self.vma_merge_new_range(st, addr, end, &attrs, file, pgoff) } else { None };
        if merged.is_some() && opened != 0 {
            // The VMA that grew already holds a reference on the file.
            self.file_put(opened);
        }
        if merged.is_none() {
            let v = match self.vm_area_alloc(mm) {
                Ok(v) => v,
                Err(e) => {
                    if accountable {
                        self.vm_acct_memory(-(pglen as i64));
                    }
                    self.file_put(file);
                    return Err(e);
                }
            };
            v.set_flags(vm_flags);
            v.raw().vm_file.store(file, Relaxed);
            self.vma_set_range(st, v, addr, end, pgoff);
            self.vma_link(st, v);
        }
        vm_stat_account(st, vm_flags, pglen as i64);
        if vm_flags & vm::LOCKED != 0 {
            st.locked_vm += pglen;
        }
        Ok(addr)
    }

    /// Faults in `[start, start+len)` (`mm_populate` / `__mm_populate`):
    /// writable private VMAs get their own pages, others are read.
    pub fn mm_populate(&self, task: &Task, start: u64, len: u64) {
        let mm = &*task.mm;
        let end = start.saturating_add(len);
        let mut a = start;
        while a < end {
            let (write, ok) = {
                let st = mm.lock.read();
                match self.find_vma(&st, a) {
                    Some(v) if v.start() <= a => {
                        let f = v.flags();
                        (
                            f & (vm::WRITE | vm::SHARED) == vm::WRITE,
                            // populate_vma_page_range leaves lock-on-fault VMAs alone.
                            f & (vm::IO | vm::PFNMAP | vm::HUGETLB | vm::LOCKONFAULT) == 0 && v.is_accessible(),
                        )
                    }
                    Some(v) => {
                        a = v.start();
                        continue;
                    }
                    None => break,
                }
            };
            if ok {
                let st = mm.lock.read();
                if let Some(v) = self.vma_lookup(&st, a) {
                    let flags = if write { crate::memory::fault_flag::WRITE } else { 0 };
                    let present = self
                        .follow_pte(mm, a)
                        .is_some_and(|(_, e)| !write || e & crate::arch::x86_64::pgtable::bits::RW != 0);
                    if !present {
                        let _ = self.handle_mm_fault(mm, &st, v, a, flags);
                    }
                }
            }
            a += 4096;
        }
    }

    /// The `munmap` system call.
    pub fn sys_munmap(&self, task: &Task, addr: u64, len: u64) -> Result<u64, Errno> {
        let mut st = task.mm.lock.write();
        self.do_munmap(task, &mut st, addr, len).map(|_| 0)
    }

    /// Unmaps `[start, start+len)` (`do_vmi_munmap` + `do_vmi_align_munmap`).
    pub fn do_munmap(&self, task: &Task, st: &mut MmState, start: u64, len: u64) -> Result<(), Errno> {
        if start & 0xfff != 0 || start > TASK_SIZE || len > TASK_SIZE - start {
            return Err(Errno::EINVAL);
        }
        let end = start + page_align(len);
        if end == start {
            return Err(Errno::EINVAL);
        }
        let mm = &*task.mm;
        let Some(first) = self.find_vma_intersection(st, start, end) else { return Ok(()) };
        if start > first.start() {
            if end < first.end() && st.map_count >= self.sysctl.max_map_count.load(Relaxed) {
                return Err(Errno::ENOMEM);
            }
            self.split_vma(mm, st, first, start, true, false)?;
        }
        let vmas = self.vmas_in(st, start, end);
        if let Some(last) = vmas.last() {
            if last.end() > end {
                self.split_vma(mm, st, *last, end, true, false)?;
            }
        }
        let vmas = self.vmas_in(st, start, end);
        let floor = self.vma_before(st, start).map_or(0, |p| p.end());
        let ceiling = self.find_vma(st, end).filter(|n| n.start() >= end).map_or(0, |n| n.start());
        let mut tlb = MmuGather::default();
        for v in &vmas {
            self.vma_unlink(st, *v);
        }
        // Recompute the ceiling now that the range is out of the tree.
        let ceiling = self.find_vma(st, start).map_or(ceiling, |n| n.start());
        for v in &vmas {
            self.unmap_vma_accounting(st, *v);
            self.zap_pte_range(mm, *v, v.start(), v.end(), &mut tlb);
        }
        if let (Some(f), Some(l)) = (vmas.first(), vmas.last()) {
            self.free_pgd_range(mm, &mut tlb, f.start(), l.end(), floor, ceiling);
        }
        self.tlb_finish_mmu(mm, &mut tlb);
        for v in vmas {
            self.vm_area_free(v);
        }
        Ok(())
    }

    /// Splits the VMAs at the edges of `[start, end)` as an unmap of that
    /// range does before anything else (`vms_gather_munmap_vmas`).
    fn munmap_gather_split(&self, task: &Task, st: &mut MmState, start: u64, end: u64) -> Result<(), Errno> {
        let mm = &*task.mm;
        let Some(first) = self.find_vma_intersection(st, start, end) else { return Ok(()) };
        if start > first.start() {
            if end < first.end() && st.map_count >= self.sysctl.max_map_count.load(Relaxed) {
                return Err(Errno::ENOMEM);
            }
            self.split_vma(mm, st, first, start, true, false)?;
        }
        if let Some(last) = self.vmas_in(st, start, end).last() {
            if last.end() > end {
                self.split_vma(mm, st, *last, end, true, false)?;
            }
        }
        Ok(())
    }

    /// Takes a VMA's pages out of the mm's counts and the commit.
    fn unmap_vma_accounting(&self, st: &mut MmState, v: Vma<'_>) {
        let pages = v.pages();
        if v.flags() & vm::LOCKED != 0 {
            st.locked_vm = st.locked_vm.saturating_sub(pages);
        }
        if v.flags() & vm::ACCOUNT != 0 {
            self.vm_acct_memory(-(pages as i64));
        }
        vm_stat_account(st, v.flags(), -(pages as i64));
    }

    /// The `brk` system call: returns the new break, or the old one when
    /// the request is refused.
    pub fn sys_brk(&self, task: &Task, brk: u64) -> u64 {
        let mm = &*task.mm;
        let mut st = mm.lock.write();
        let origbrk = st.brk;
        let min_brk = st.start_brk;
        if brk < min_brk {
            return origbrk;
        }
        let data_lim = task.rlimit(rlimit::DATA);
        if data_lim < RLIM_INFINITY && (brk - st.start_brk) + (st.end_data - st.start_data) > data_lim {
            return origbrk;
        }
        let newbrk = page_align(brk);
        let oldbrk = page_align(st.brk);
        if oldbrk == newbrk {
            st.brk = brk;
            return brk;
        }
        if brk <= st.brk {
            // Shrinking: only the heap VMA may go.
            let brkvma = self.find_vma_intersection(&st, newbrk, oldbrk);
            match brkvma {
                Some(v) if v.start() < oldbrk => {}
                _ => return origbrk,
            }
            st.brk = brk;
            if self.do_munmap(task, &mut st, newbrk, oldbrk - newbrk).is_err() {
                st.brk = origbrk;
                return origbrk;
            }
            return brk;
        }
        let guard = self.vm.stack_guard_gap.load(Relaxed);
        if let Some(next) = self.find_vma_intersection(&st, oldbrk, newbrk + 4096 + guard) {
            if newbrk + 4096 > next.start_gap(guard) {
                return origbrk;
            }
        }
        if self.do_brk_flags(task, &mut st, oldbrk, newbrk - oldbrk).is_err() {
            return origbrk;
        }
        st.brk = brk;
        let populate = st.def_flags & vm::LOCKED != 0;
        drop(st);
        if populate {
            self.mm_populate(task, oldbrk, newbrk - oldbrk);
        }
        brk
    }

    /// Extends the heap by `[addr, addr+len)` (`do_brk_flags`).
    fn do_brk_flags(&self, task: &Task, st: &mut MmState, addr: u64, len: u64) -> Result<(), Errno> {
        let flags = vm::DATA_DEFAULT | vm::ACCOUNT | st.def_flags;
        let pages = len >> 12;
        if !self.may_expand_vm(task, st, flags, pages) {
            return Err(Errno::ENOMEM);
        }
        if st.map_count > self.sysctl.max_map_count.load(Relaxed) {
            return Err(Errno::ENOMEM);
        }
        if !self.mlock_future_ok(task, st, flags, len) {
            return Err(Errno::EAGAIN);
        }
        self.vm_enough_memory(task, pages as i64, true)?;
        // Grow the heap VMA in place when it ends at addr and agrees.
        let prev = self.vma_before(st, addr).filter(|p| p.end() == addr);
        let attrs = VmaAttrs { flags, anon_name: 0, policy: 0 };
        let grown = prev.filter(|p| self.mergeable(*p, &attrs, 0, 0, None) && p.pgoff() + p.pages() == addr >> 12);
        if let Some(p) = grown {
            self.vma_set_range(st, p, p.start(), addr + len, p.pgoff());
        } else {
            let v = match self.vm_area_alloc(&task.mm) {
                Ok(v) => v,
                Err(e) => {
                    self.vm_acct_memory(-(pages as i64));
                    return Err(e);
                }
            };
            v.set_flags(flags);
            self.vma_set_range(st, v, addr, addr + len, addr >> 12);
            self.vma_link(st, v);
        }
        vm_stat_account(st, flags, pages as i64);
        if flags & vm::LOCKED != 0 {
            st.locked_vm += pages;
        }
        Ok(())
    }

    /// The object address of a VMA covering `addr` (for tests and /proc).
    pub fn vma_at(&self, task: &Task, addr: u64) -> Option<VirtAddr> {
        let st = task.mm.lock.read();
        self.vma_lookup(&st, addr).map(|v| v.va)
    }
}

/// An open file as `mmap` sees it (`struct file`): which file, and the
/// access the descriptor was opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFile {
    /// File handle.
    pub id: u64,
    /// Opened for reading (`FMODE_READ`).
    pub readable: bool,
    /// Opened for writing (`FMODE_WRITE`).
    pub writable: bool,
}

/// One VMA of a program image ([`Kernel::create_process_with_layout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageVma {
    /// Start.
    pub start: u64,
    /// End.
    pub end: u64,
    /// `VM_*` flags.
    pub flags: u64,
    /// Offset in pages.
    pub pgoff: u64,
    /// File handle (0: anonymous).
    pub file: u64,
    /// The VMA holds anonymous pages inherited through fork: it gets an
    /// anon_vma linked to a parent's too, which decides what it may merge
    /// with as on Linux.
    pub forked_anon: bool,
}

/// The layout a program image starts with.
#[derive(Clone, Debug, Default)]
pub struct ImageLayout {
    /// Top of the top-down mmap area.
    pub mmap_base: u64,
    /// Bottom-up layout.
    pub legacy: bool,
    /// Heap start.
    pub start_brk: u64,
    /// Current break.
    pub brk: u64,
    /// An address in the initial stack.
    pub start_stack: u64,
    /// Program text.
    pub start_code: u64,
    /// End of text.
    pub end_code: u64,
    /// Data.
    pub start_data: u64,
    /// End of data.
    pub end_data: u64,
    /// The VMAs, in any order.
    pub vmas: alloc::vec::Vec<ImageVma>,
}

/// VMA flags from `mmap` flags (`calc_vm_flag_bits`).
pub const fn calc_vm_flag_bits(flags: u64) -> u64 {
    let mut f = 0;
    if flags & map::GROWSDOWN != 0 {
        f |= vm::GROWSDOWN;
    }
    if flags & map::LOCKED != 0 {
        f |= vm::LOCKED;
    }
    if flags & map::SYNC != 0 {
        f |= vm::SYNC;
    }
    if flags & map::STACK != 0 {
        f |= vm::NOHUGEPAGE;
    }
    f
}
