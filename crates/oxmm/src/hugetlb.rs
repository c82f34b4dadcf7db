//! hugetlbfs mappings (Linux's `mm/hugetlb.c`, `fs/hugetlbfs/inode.c`), so
//! far as `mmap(MAP_HUGETLB)` needs them with empty pools: the huge page
//! sizes x86-64 offers (2 MiB and 1 GiB), lengths and addresses aligned to
//! them, a reservation that fails without pool pages unless MAP_NORESERVE,
//! VMAs that split only on huge-page boundaries, and faults that find no
//! page (SIGBUS). Pools, `nr_hugepages` and HugePages_* in meminfo come
//! with the hugetlb component.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::kernel::Kernel;
use crate::mm_types::{vm, MmState, Task, Vma};
use crate::mmap::{map, TASK_SIZE};
use crate::types::Errno;
use crate::vma::{vm_stat_account, UnmappedAreaInfo};

/// File handles at or above this (and below the shmem ones) are hugetlbfs
/// files; bit 0 set means 1 GiB pages.
pub const HUGETLB_ID_BASE: u64 = 1 << 39;

/// Huge page size of a hugetlb file handle, or `None` for other files.
pub fn hugetlb_file_size(id: u64) -> Option<u64> {
    (HUGETLB_ID_BASE..crate::shmem::SHMEM_ID_BASE).contains(&id).then_some(if id & 1 != 0 { 1 << 30 } else { 1 << 21 })
}

/// The hugetlb page size of a VMA, if it is a hugetlb VMA.
pub fn vma_hugetlb_size(v: Vma<'_>) -> Option<u64> {
    if v.flags() & vm::HUGETLB == 0 {
        return None;
    }
    hugetlb_file_size(v.file())
}

/// The counter that names hugetlb files.
#[derive(Default)]
pub struct HugetlbState {
    next: AtomicU64,
}

impl Kernel {
    /// `mmap(MAP_HUGETLB | MAP_ANONYMOUS)`: the huge page size from the
    /// flags (`hstate_sizelog`), then a mapping of an unlinked hugetlbfs file.
    #[allow(clippy::too_many_arguments)]
    pub fn mmap_hugetlb_anon(
        &self,
        task: &Task,
        st: &mut MmState,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        pgoff: u64,
    ) -> Result<u64, Errno> {
        let hsize: u64 = match (flags >> map::HUGE_SHIFT) & map::HUGE_MASK {
            0 | 21 => 1 << 21,
            30 => 1 << 30,
            _ => return Err(Errno::EINVAL),
        };
        let len = len.checked_add(hsize - 1).map_or(0, |l| l & !(hsize - 1));
        // do_mmap's checks, in its order.
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let mut flags = flags;
        let mut addr = addr;
        if flags & map::FIXED_NOREPLACE != 0 {
            flags |= map::FIXED;
        }
        let min = self.sysctl.mmap_min_addr.load(Relaxed);
        if flags & map::FIXED == 0 {
            addr &= !0xfff;
            if addr != 0 && addr < min {
                addr = (min + 4095) & !4095;
            }
        }
        if pgoff.checked_add(len >> 12).is_none() {
            return Err(Errno::EOVERFLOW);
        }
        if st.map_count > self.sysctl.max_map_count.load(Relaxed) {
            return Err(Errno::ENOMEM);
        }
        let mut vm_flags = (prot & vm::ACCESS)
            | crate::mmap::calc_vm_flag_bits(flags)
            | st.def_flags
            | vm::MAYREAD
            | vm::MAYWRITE
            | vm::MAYEXEC;
        let addr = self.hugetlb_get_unmapped_area(st, addr, len, flags, hsize)?;
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
        // hugetlbfs files are too big for nothing: file_mmap_ok holds.
        match flags & map::TYPE {
            map::SHARED | map::SHARED_VALIDATE => {
                if flags & map::TYPE == map::SHARED_VALIDATE && flags & !LEGACY_MAP_MASK != 0 {
                    return Err(Errno::EOPNOTSUPP);
                }
                vm_flags |= vm::SHARED | vm::MAYSHARE;
            }
            map::PRIVATE => {}
            _ => return Err(Errno::EINVAL),
        }
        if vm_flags & vm::GROWSDOWN != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & map::NORESERVE != 0 {
            vm_flags |= vm::NORESERVE;
        }
        let pglen = len >> 12;
        let nr: u64 = self
            .vmas_in(st, addr, addr + len)
            .iter()
            .map(|v| (v.end().min(addr + len) - v.start().max(addr)) >> 12)
            .sum();
        if !self.may_expand_vm(task, st, vm_flags, pglen - nr) {
            return Err(Errno::ENOMEM);
        }
        // The mappings in the way are gone before hugetlbfs's mmap hook
        // runs; if the hook fails, Linux leaves the range unmapped.
        if nr != 0 {
            self.do_munmap(task, st, addr, len)?;
        }
        // hugetlbfs_file_mmap: the offset must fall on a huge page.
        if pgoff & ((hsize >> 12) - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        // The pools are empty: a reservation cannot be had.
        if vm_flags & vm::NORESERVE == 0 {
            return Err(Errno::ENOMEM);
        }
        let id = HUGETLB_ID_BASE + 2 * self.vm.hugetlb.next.fetch_add(1, Relaxed) + u64::from(hsize == 1 << 30);
        self.vm.file_names.lock().insert(id, alloc::string::String::from("/anon_hugepage (deleted)"));
        vm_flags |= vm::HUGETLB | vm::DONTEXPAND;
        let v = self.vm_area_alloc(&task.mm)?;
        v.set_flags(vm_flags);
        v.raw().vm_file.store(id, Relaxed);
        self.vma_set_range(st, v, addr, addr + len, pgoff);
        self.vma_link(st, v);
        vm_stat_account(st, vm_flags, pglen as i64);
        Ok(addr)
    }

    /// `hugetlb_get_unmapped_area`: huge-page-aligned lengths and fixed
    /// addresses, a search aligned to the huge page size.
    fn hugetlb_get_unmapped_area(
        &self,
        st: &MmState,
        addr: u64,
        len: u64,
        flags: u64,
        hsize: u64,
    ) -> Result<u64, Errno> {
        if len > TASK_SIZE {
            return Err(Errno::ENOMEM);
        }
        if len & (hsize - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & map::FIXED != 0 {
            if addr & (hsize - 1) != 0 {
                return Err(Errno::EINVAL);
            }
            if addr > TASK_SIZE - len {
                return Err(Errno::ENOMEM);
            }
            return Ok(addr);
        }
        let guard = self.vm.stack_guard_gap.load(Relaxed);
        let hint = if addr != 0 { addr.checked_add(hsize - 1).map_or(0, |a| a & !(hsize - 1)) } else { 0 };
        let align_mask = (hsize - 1) & !0xfff;
        if st.topdown && flags & map::BIT32 == 0 {
            if hint != 0
                && TASK_SIZE - len >= hint
                && self.find_vma(st, hint).is_none_or(|v| hint + len <= v.start_gap(guard))
            {
                return Ok(hint);
            }
            let info = UnmappedAreaInfo {
                length: len,
                low_limit: 4096,
                high_limit: st.mmap_base,
                align_mask,
                ..Default::default()
            };
            if let Ok(a) = self.unmapped_area_topdown(st, &info) {
                return Ok(a);
            }
        }
        let (begin, end) =
            if flags & map::BIT32 != 0 { (0x4000_0000, 0x8000_0000) } else { (st.mmap_legacy_base, TASK_SIZE) };
        if hint != 0 && end - len >= hint && self.find_vma(st, hint).is_none_or(|v| hint + len <= v.start_gap(guard)) {
            return Ok(hint);
        }
        let info =
            UnmappedAreaInfo { length: len, low_limit: begin, high_limit: end, align_mask, ..Default::default() };
        self.unmapped_area(st, &info)
    }

    /// Whether `v` may be split at `addr` (the `may_split` of its
    /// `vm_ops`): hugetlb VMAs only on huge page boundaries
    /// (`hugetlb_vm_op_split`), special mappings such as `[vdso]` and
    /// `[vvar]` never (`special_mapping_split`).
    pub fn vma_may_split(&self, v: Vma<'_>, addr: u64) -> Result<(), Errno> {
        if let Some(h) = vma_hugetlb_size(v) {
            return if addr & (h - 1) != 0 { Err(Errno::EINVAL) } else { Ok(()) };
        }
        let f = v.file();
        if f != 0 && self.vm.file_names.lock().get(&f).is_some_and(|n| n.starts_with('[')) {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }
}

/// `LEGACY_MAP_MASK`: the flags plain MAP_SHARED accepts silently.
pub const LEGACY_MAP_MASK: u64 = map::SHARED
    | map::PRIVATE
    | map::FIXED
    | map::ANONYMOUS
    | map::DENYWRITE
    | map::EXECUTABLE
    | map::UNINITIALIZED
    | map::GROWSDOWN
    | map::LOCKED
    | map::NORESERVE
    | map::POPULATE
    | map::NONBLOCK
    | map::STACK
    | map::HUGETLB
    | map::BIT32
    | 0x80 // MAP_ABOVE4G
    | (21 << map::HUGE_SHIFT) // MAP_HUGE_2MB
    | (30 << map::HUGE_SHIFT); // MAP_HUGE_1GB
