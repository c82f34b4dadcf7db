//! Shared memory objects (Linux's `mm/shmem.c`), so far as shared
//! anonymous mappings need them: `mmap(MAP_SHARED | MAP_ANONYMOUS)` gets an
//! unlinked shmem file (`shmem_zero_setup`), its pages live in the file's
//! page cache, every mapping of the file sees the same pages (also across
//! fork), and they stay until the file goes with its last VMA or a hole is
//! punched (MADV_REMOVE). tmpfs files and memfd build on the same object
//! with the page-cache component.
//!
//! A file's page index is a B-tree in host memory for now; the page-cache
//! component replaces it with an xarray of `radix_tree_node` slab objects.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::mm_types::{vm, Vma};
use crate::page::pg;
use crate::types::{Errno, Pfn};
use crate::vmstat::NodeStat;

/// The per-mm RSS counter of a file page (`mm_counter_file`).
pub fn mm_counter_file(page: &crate::page::Page) -> usize {
    if page.test(pg::SWAPBACKED) {
        crate::mm_types::mm_counter::SHMEMPAGES
    } else {
        crate::mm_types::mm_counter::FILEPAGES
    }
}

/// The largest page-cache folio order on x86-64 (`MAX_PAGECACHE_ORDER`,
/// the PMD order).
pub const MAX_PAGECACHE_ORDER: u32 = 9;

/// File handles at or above this are shmem files.
pub const SHMEM_ID_BASE: u64 = 1 << 40;

/// One shmem file (an inode with its page cache).
pub struct ShmemFile {
    /// The handle VMAs hold in `vm_file`.
    pub id: u64,
    /// Pages by index.
    pub pages: spin::Mutex<BTreeMap<u64, Pfn>>,
    /// Size in bytes.
    pub size: AtomicU64,
    /// References: one per VMA mapping it (and open descriptors later).
    pub refs: AtomicU64,
    /// Pages charged to the commit (`shmem_acct_size`), 0 with NORESERVE.
    pub accounted: u64,
    /// Mappings of the file are placed as a filesystem with large folios
    /// places them (`thp_get_unmapped_area`, ext4 and xfs do), not as
    /// tmpfs does without huge pages.
    pub thp_aligned: bool,
    /// For disk files: the folios writes created, by first index, with
    /// their order (a large folio stays whole in the cache when a
    /// truncation ends inside it).
    pub folios: spin::Mutex<BTreeMap<u64, u32>>,
}

/// All shmem files.
#[derive(Default)]
pub struct ShmemState {
    next: AtomicU64,
    files: spin::Mutex<BTreeMap<u64, Arc<ShmemFile>>>,
}

impl Kernel {
    /// The shmem file behind a handle.
    pub fn shmem_file(&self, id: u64) -> Option<Arc<ShmemFile>> {
        if id < SHMEM_ID_BASE {
            return None;
        }
        self.vm.shmem.files.lock().get(&id).cloned()
    }

    /// Makes the unlinked shmem file of a shared anonymous mapping of
    /// `size` bytes (`shmem_zero_setup`), charging it to the commit unless
    /// `vm_flags` has VM_NORESERVE; one reference, for the VMA.
    pub fn shmem_zero_setup(&self, task: &crate::mm_types::Task, size: u64, vm_flags: u64) -> Result<u64, Errno> {
        let pages = size.div_ceil(4096);
        let accounted = if vm_flags & vm::NORESERVE != 0 {
            0
        } else {
            self.vm_enough_memory(task, pages as i64, true)?;
            pages
        };
        let id = SHMEM_ID_BASE + self.vm.shmem.next.fetch_add(1, Relaxed);
        let f = Arc::new(ShmemFile {
            id,
            pages: spin::Mutex::new(BTreeMap::new()),
            size: AtomicU64::new(size),
            refs: AtomicU64::new(1),
            accounted,
            thp_aligned: false,
            folios: spin::Mutex::new(BTreeMap::new()),
        });
        self.vm.shmem.files.lock().insert(id, f);
        self.vm.file_names.lock().insert(id, alloc::string::String::from("/dev/zero (deleted)"));
        Ok(id)
    }

    /// One more reference on a file handle (`get_file`).
    pub fn file_get(&self, id: u64) {
        if let Some(f) = self.shmem_file(id) {
            f.refs.fetch_add(1, Relaxed);
        }
    }

    /// Drops a reference; the last one frees the file and its pages (`fput`
    /// then `shmem_evict_inode`).
    pub fn file_put(&self, id: u64) {
        let Some(f) = self.shmem_file(id) else { return };
        if f.refs.fetch_sub(1, Relaxed) == 1 {
            self.vm.shmem.files.lock().remove(&id);
            self.vm.file_names.lock().remove(&id);
            let pages: Vec<Pfn> = core::mem::take(&mut *f.pages.lock()).into_values().collect();
            for pfn in pages {
                self.shmem_release_page(pfn);
            }
            self.vm_acct_memory(-(f.accounted as i64));
        }
    }

    fn shmem_release_page(&self, pfn: Pfn) {
        let page = self.memmap.page(pfn);
        let nid = page.nid();
        self.nodes[nid].stat.add(NodeStat::NrShmem as usize, -1);
        self.nodes[nid].stat.add(NodeStat::NrFilePages as usize, -1);
        page.mapping.store(0, Relaxed);
        self.put_user_page(pfn);
    }

    /// The page at `index` of a file, if cached (`filemap_get_folio`).
    pub fn shmem_lookup(&self, id: u64, index: u64) -> Option<Pfn> {
        self.shmem_file(id)?.pages.lock().get(&index).copied()
    }

    /// The page at `index`, allocated zeroed when missing (`shmem_get_folio`
    /// with SGP_CACHE); the page cache's reference is the file's.
    pub fn shmem_get_page(&self, id: u64, index: u64) -> Result<Pfn, Errno> {
        let f = self.shmem_file(id).ok_or(Errno::EIO)?;
        if let Some(&p) = f.pages.lock().get(&index) {
            return Ok(p);
        }
        let pfn = self.alloc_pages(Gfp::GFP_HIGHUSER_MOVABLE | Gfp::ZERO, 0).ok_or(Errno::ENOMEM)?;
        let mut pages = f.pages.lock();
        if let Some(&p) = pages.get(&index) {
            drop(pages);
            self.free_pages(pfn, 0);
            return Ok(p);
        }
        let page = self.memmap.page(pfn);
        page.mapping.store(id << 1, Relaxed);
        page.index.store(index, Relaxed);
        page.set(pg::SWAPBACKED | pg::UPTODATE);
        pages.insert(index, pfn);
        drop(pages);
        let nid = page.nid();
        self.nodes[nid].stat.add(NodeStat::NrShmem as usize, 1);
        self.nodes[nid].stat.add(NodeStat::NrFilePages as usize, 1);
        self.folio_add_lru(pfn, false);
        Ok(pfn)
    }

    /// Frees the pages of `[first, last]` (page indexes) of a file after
    /// unmapping them from every VMA (`shmem_fallocate` with
    /// FALLOC_FL_PUNCH_HOLE, as MADV_REMOVE does).
    /// `cur` is the calling task with its mmap state, when the caller
    /// holds that task's mmap lock.
    pub fn shmem_punch_hole(
        &self,
        cur: Option<(&crate::mm_types::Task, &crate::mm_types::MmState)>,
        id: u64,
        first: u64,
        last: u64,
    ) {
        let Some(f) = self.shmem_file(id) else { return };
        self.unmap_mapping_range(cur, id, first, last);
        let removed: Vec<Pfn> = {
            let mut pages = f.pages.lock();
            let keys: Vec<u64> = pages.range(first..=last).map(|(&k, _)| k).collect();
            keys.into_iter().filter_map(|k| pages.remove(&k)).collect()
        };
        for pfn in removed {
            self.shmem_release_page(pfn);
        }
    }

    /// Unmaps pages `[first, last]` of a file from every VMA that maps
    /// them, private copies included (`unmap_mapping_range` with `even_cows`).
    fn unmap_mapping_range(
        &self,
        cur: Option<(&crate::mm_types::Task, &crate::mm_types::MmState)>,
        id: u64,
        first: u64,
        last: u64,
    ) {
        let tasks: Vec<_> = self.vm.tasks.lock().values().cloned().collect();
        for t in tasks {
            let own = cur.filter(|(c, _)| c.mm.id == t.mm.id).map(|(_, s)| s);
            let guard = if own.is_some() { None } else { Some(t.mm.lock.read()) };
            let Some(st) = own.or(guard.as_deref()) else { continue };
            let vmas: Vec<Vma<'_>> = self.vmas(st).into_iter().filter(|v| v.file() == id).collect();
            let mut tlb = crate::memory::MmuGather::default();
            for v in vmas {
                let (lo, hi) = (v.pgoff(), v.pgoff() + v.pages());
                let s = first.max(lo);
                let e = last.saturating_add(1).min(hi);
                if s < e {
                    let start = v.start() + ((s - lo) << 12);
                    let end = v.start() + ((e - lo) << 12);
                    self.zap_pte_range(&t.mm, v, start, end, &mut tlb);
                }
            }
            self.tlb_finish_mmu(&t.mm, &mut tlb);
        }
    }

    /// A new file of `size` bytes named `name`, with one reference for the
    /// descriptor that opens it: a tmpfs file or memfd, or with
    /// `thp_aligned` a stand-in for a disk file (its pages live in memory
    /// like tmpfs's until the page cache and writeback land).
    pub fn shmem_create(&self, name: &str, size: u64, thp_aligned: bool) -> u64 {
        let id = SHMEM_ID_BASE + self.vm.shmem.next.fetch_add(1, Relaxed);
        let f = Arc::new(ShmemFile {
            id,
            pages: spin::Mutex::new(BTreeMap::new()),
            size: AtomicU64::new(size),
            refs: AtomicU64::new(1),
            accounted: 0,
            thp_aligned,
            folios: spin::Mutex::new(BTreeMap::new()),
        });
        self.vm.shmem.files.lock().insert(id, f);
        self.vm.file_names.lock().insert(id, alloc::string::String::from(name));
        id
    }

    /// The file's size in bytes (`i_size_read`).
    pub fn file_size(&self, id: u64) -> Option<u64> {
        self.shmem_file(id).map(|f| f.size.load(Relaxed))
    }

    /// Reads up to `len` bytes at `off`, stopping at the end of the file
    /// (`pread`); holes read as zeroes.
    pub fn file_read(&self, id: u64, off: u64, len: u64) -> Result<Vec<u8>, Errno> {
        let f = self.shmem_file(id).ok_or(Errno::EBADF)?;
        let size = f.size.load(Relaxed);
        let end = off.saturating_add(len).min(size);
        let mut out = Vec::new();
        let mut pos = off;
        while pos < end {
            let n = (4096 - (pos & 0xfff)).min(end - pos);
            let mut buf = alloc::vec![0u8; n as usize];
            let page = f.pages.lock().get(&(pos >> 12)).copied();
            if let Some(pfn) = page {
                self.mem.read(crate::types::PhysAddr(pfn.phys().0 + (pos & 0xfff)), &mut buf);
            }
            out.extend_from_slice(&buf);
            pos += n;
        }
        Ok(out)
    }

    /// Writes `data` at `off` through the page cache, growing the file
    /// (`pwrite`); returns the bytes written.
    pub fn file_write(&self, id: u64, off: u64, data: &[u8]) -> Result<u64, Errno> {
        let f = self.shmem_file(id).ok_or(Errno::EBADF)?;
        let end = off.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        if end > f.size.load(Relaxed) {
            f.size.store(end, Relaxed);
        }
        if f.thp_aligned {
            self.note_write_folios(&f, off, end);
        }
        let mut pos = off;
        while pos < end {
            let n = (4096 - (pos & 0xfff)).min(end - pos);
            let pfn = self.shmem_get_page(id, pos >> 12)?;
            let from = (pos - off) as usize;
            self.mem.write(crate::types::PhysAddr(pfn.phys().0 + (pos & 0xfff)), &data[from..from + n as usize]);
            self.memmap.page(pfn).set(pg::DIRTY);
            pos += n;
        }
        Ok(data.len() as u64)
    }

    /// Records the folios a buffered write of `[off, end)` creates on a
    /// filesystem with large folios (`fgf_set_order` and the alignment
    /// rule of `__filemap_get_folio`), for the pages not cached yet.
    fn note_write_folios(&self, f: &ShmemFile, off: u64, end: u64) {
        let mut folios = f.folios.lock();
        let mut pos = off & !0xfff;
        while pos < end {
            let index = pos >> 12;
            if f.pages.lock().contains_key(&index) {
                pos += 4096;
                continue;
            }
            let len = end - pos.max(off);
            let shift = 63 - len.leading_zeros();
            let mut order = shift.saturating_sub(12).min(MAX_PAGECACHE_ORDER);
            if index & ((1 << order) - 1) != 0 {
                order = index.trailing_zeros().min(order);
            }
            folios.insert(index, order);
            pos += 4096 << order;
        }
    }

    /// Sets the file's size (`ftruncate`): shrinking unmaps and frees the
    /// pages past the new end and zeroes the tail of the last page.
    pub fn file_truncate(&self, id: u64, len: u64) -> Result<(), Errno> {
        let f = self.shmem_file(id).ok_or(Errno::EBADF)?;
        let old = f.size.swap(len, Relaxed);
        if len < old {
            let mut first = len.div_ceil(4096);
            // A large folio holding the new end stays whole (observed with
            // ext4 on Linux 6.18: its pages past the end remain cached).
            if f.thp_aligned && len & 0xfff != 0 {
                let last = len >> 12;
                if let Some((&start, &order)) = f.folios.lock().range(..=last).next_back() {
                    if last < start + (1 << order) {
                        first = first.max(start + (1 << order));
                    }
                }
            }
            self.unmap_mapping_range(None, id, first, u64::MAX >> 12);
            let removed: Vec<Pfn> = {
                let mut pages = f.pages.lock();
                let keys: Vec<u64> = pages.range(first..).map(|(&k, _)| k).collect();
                keys.into_iter().filter_map(|k| pages.remove(&k)).collect()
            };
            for pfn in removed {
                self.shmem_release_page(pfn);
            }
            if len & 0xfff != 0 {
                let last = f.pages.lock().get(&(len >> 12)).copied();
                if let Some(pfn) = last {
                    self.mem.fill(crate::types::PhysAddr(pfn.phys().0 + (len & 0xfff)), 4096 - (len & 0xfff), 0);
                }
            }
        }
        Ok(())
    }

    /// Shmem pages of every file.
    pub fn shmem_pages(&self) -> u64 {
        self.global_node_page_state(NodeStat::NrShmem)
    }
}
