//! `mincore` (Linux's `mm/mincore.c`) and `msync` (`mm/msync.c`).

use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use crate::arch::x86_64::pgtable::pte_present;
use crate::kernel::Kernel;
use crate::mm_types::{vm, Task};
use crate::types::Errno;

/// `msync` flags.
pub mod ms {
    #![allow(missing_docs)]
    pub const ASYNC: u64 = 1;
    pub const INVALIDATE: u64 = 2;
    pub const SYNC: u64 = 4;
}

impl Kernel {
    /// The `mincore` system call: one byte per page, bit 0 set when the
    /// page is resident. On error, the vector holds what was filled before
    /// the failing page (Linux copies each batch out as it goes).
    pub fn sys_mincore(&self, task: &Task, start: u64, len: u64) -> (Result<u64, Errno>, Vec<u8>) {
        let mut vec = Vec::new();
        if start & 0xfff != 0 {
            return (Err(Errno::EINVAL), vec);
        }
        // access_ok: the range must end at or below the top of user space.
        if start.checked_add(len).is_none_or(|e| e > crate::mmap::TASK_SIZE) {
            return (Err(Errno::ENOMEM), vec);
        }
        let mut pages = (len >> 12) + u64::from(len & 0xfff != 0);
        let mm = &*task.mm;
        let st = mm.lock.read();
        let mut addr = start;
        while pages > 0 {
            let Some(v) = self.vma_lookup(&st, addr) else { return (Err(Errno::ENOMEM), vec) };
            let end = v.end().min(addr + (pages << 12));
            let mut a = addr;
            while a < end {
                let e = self.pte_of(mm, a).map_or(0, |p| p.load(Relaxed));
                // Present (or PROT_NONE) pages are resident; for a file, an
                // unmapped page may still be in its page cache.
                let resident = if e != 0 && pte_present(e) {
                    true
                } else if e == 0 && !v.is_anonymous() {
                    self.shmem_lookup(v.file(), v.linear_page_index(a)).is_some()
                } else {
                    false
                };
                vec.push(u8::from(resident));
                a += 4096;
            }
            pages -= (end - addr) >> 12;
            addr = end;
        }
        (Ok(0), vec)
    }

    /// The `msync` system call.
    pub fn sys_msync(&self, task: &Task, start: u64, len: u64, flags: u64) -> Result<u64, Errno> {
        if flags & !(ms::ASYNC | ms::INVALIDATE | ms::SYNC) != 0 {
            return Err(Errno::EINVAL);
        }
        if start & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & ms::ASYNC != 0 && flags & ms::SYNC != 0 {
            return Err(Errno::EINVAL);
        }
        let len = len.wrapping_add(4095) & !4095;
        let end = start.wrapping_add(len);
        if end < start {
            return Err(Errno::ENOMEM);
        }
        if end == start {
            return Ok(0);
        }
        let st = task.mm.lock.read();
        let mut start = start;
        let mut unmapped = false;
        let mut v = self.find_vma(&st, start);
        loop {
            let Some(cur) = v else { return Err(Errno::ENOMEM) };
            if start < cur.start() {
                if flags == ms::ASYNC {
                    return Err(Errno::ENOMEM);
                }
                start = cur.start();
                if start >= end {
                    return Err(Errno::ENOMEM);
                }
                unmapped = true;
            }
            if flags & ms::INVALIDATE != 0 && cur.flags() & vm::LOCKED != 0 {
                return Err(Errno::EBUSY);
            }
            // Writeback of shared file mappings arrives with the page cache.
            start = cur.end();
            if start >= end {
                return if unmapped { Err(Errno::ENOMEM) } else { Ok(0) };
            }
            v = self.find_vma(&st, cur.end());
        }
    }
}
