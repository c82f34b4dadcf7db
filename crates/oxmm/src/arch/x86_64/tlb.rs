//! The software MMU: per-CPU TLBs and the hardware page walk, and Linux's
//! flush primitives (`arch/x86/mm/tlb.c`).
//!
//! A translation is looked up in the running CPU's TLB, a direct-mapped
//! array tagged by virtual page and mm id (as PCIDs tag them). A miss walks
//! the tables as the hardware does: every level must be present; write
//! needs RW at every level, user access needs USER at every level,
//! instruction fetch needs NX clear at every level; Accessed is set on
//! each entry used and Dirty on the leaf of a write. The TLB keeps the
//! leaf's value, so a path that changes a PTE and forgets to flush keeps
//! using the old translation, exactly the bug real hardware shows.
//!
//! Flushes reach every CPU in the mm's cpumask (shootdowns); a range of
//! more than [`TLB_SINGLE_PAGE_FLUSH_CEILING`] pages flushes the whole mm,
//! as `flush_tlb_mm_range` does.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::pgtable::{bits, entry_pfn, Level};
use crate::kernel::Kernel;
use crate::mm_types::Mm;
use crate::types::{Pfn, PhysAddr, VirtAddr};

/// Entries of each CPU's TLB.
pub const TLB_ENTRIES: usize = 1024;

/// Above this many pages a range flush flushes the whole mm
/// (`tlb_single_page_flush_ceiling`).
pub const TLB_SINGLE_PAGE_FLUSH_CEILING: u64 = 33;

/// Page-fault error code bits (`X86_PF_*`).
pub mod pf {
    #![allow(missing_docs)]
    pub const PROT: u64 = 1 << 0;
    pub const WRITE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const RSVD: u64 = 1 << 3;
    pub const INSTR: u64 = 1 << 4;
}

/// Kinds of memory access.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch.
    Exec,
}

impl Access {
    /// The error-code bits of a fault for this access from user mode.
    pub const fn error_code(self) -> u64 {
        match self {
            Access::Read => pf::USER,
            Access::Write => pf::USER | pf::WRITE,
            Access::Exec => pf::USER | pf::INSTR,
        }
    }
}

#[derive(Default)]
#[repr(C)]
struct Entry {
    /// Virtual page number + 1 (0: invalid).
    vpn: AtomicU64,
    /// Owning mm id.
    mm: AtomicU64,
    /// The leaf entry, with the permissions of the whole walk folded in
    /// (RW and USER cleared, NX set, when an upper level says so), and the
    /// frame of the 4 KiB page inside a huge mapping.
    pte: AtomicU64,
}

/// One CPU's TLB.
pub struct Tlb {
    entries: alloc::boxed::Box<[Entry]>,
}

impl Default for Tlb {
    fn default() -> Self {
        Tlb { entries: (0..TLB_ENTRIES).map(|_| Entry::default()).collect() }
    }
}

impl Tlb {
    #[inline]
    fn slot(&self, vpn: u64) -> &Entry {
        &self.entries[(vpn as usize) & (TLB_ENTRIES - 1)]
    }
    /// The cached leaf for `(mm, vpn)`.
    #[inline]
    fn lookup(&self, mm: u64, vpn: u64) -> Option<u64> {
        let e = self.slot(vpn);
        (e.vpn.load(Relaxed) == vpn + 1 && e.mm.load(Relaxed) == mm).then(|| e.pte.load(Relaxed))
    }
    #[inline]
    fn fill(&self, mm: u64, vpn: u64, pte: u64) {
        let e = self.slot(vpn);
        e.vpn.store(0, Relaxed);
        e.pte.store(pte, Relaxed);
        e.mm.store(mm, Relaxed);
        e.vpn.store(vpn + 1, Relaxed);
    }
    fn flush_page(&self, mm: u64, vpn: u64) {
        let e = self.slot(vpn);
        if e.vpn.load(Relaxed) == vpn + 1 && e.mm.load(Relaxed) == mm {
            e.vpn.store(0, Relaxed);
        }
    }
    fn flush_mm(&self, mm: u64) {
        for e in self.entries.iter() {
            if e.mm.load(Relaxed) == mm {
                e.vpn.store(0, Relaxed);
            }
        }
    }
    /// Valid entries (for tests and statistics).
    pub fn valid_entries(&self) -> usize {
        self.entries.iter().filter(|e| e.vpn.load(Relaxed) != 0).count()
    }
}

/// Every CPU's TLB.
#[derive(Default)]
pub struct Mmu {
    /// Indexed by CPU.
    pub tlbs: alloc::vec::Vec<Tlb>,
    /// Single-page flushes sent (what `nr_tlb_local_flush_one` counts on
    /// kernels built with `CONFIG_DEBUG_TLBFLUSH`; this host's vmstat has
    /// no such line, so neither does ours).
    pub flush_one: AtomicU64,
    /// Whole-mm flushes sent.
    pub flush_all: AtomicU64,
}

/// Why a translation failed: the error code a #PF would carry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PageFault {
    /// `X86_PF_*` bits.
    pub code: u64,
}

impl Kernel {
    /// Translates a user address for `access` on the running CPU, through
    /// its TLB, walking the tables on a miss; the error code of the page
    /// fault the hardware would raise otherwise.
    #[inline]
    pub fn mmu_translate(&self, mm: &Mm, va: u64, access: Access) -> Result<PhysAddr, PageFault> {
        let cpu = self.this_cpu();
        let vpn = va >> 12;
        let tlb = &self.mmu.tlbs[cpu];
        if let Some(pte) = tlb.lookup(mm.id, vpn) {
            let ok = match access {
                Access::Read => true,
                // A clean entry must be walked again to set Dirty.
                Access::Write => pte & (bits::RW | bits::DIRTY) == (bits::RW | bits::DIRTY),
                Access::Exec => pte & bits::NX == 0,
            };
            if ok {
                return Ok(PhysAddr((pte & bits::PFN_MASK) | (va & 0xfff)));
            }
            tlb.flush_page(mm.id, vpn);
        }
        self.mmu_walk(mm, va, access, cpu)
    }

    #[cold]
    fn mmu_walk(&self, mm: &Mm, va: u64, access: Access, cpu: usize) -> Result<PhysAddr, PageFault> {
        let mut table = mm.pgd;
        let mut l = Level::top(self.pgtable_levels);
        let mut rw = true;
        let mut user = true;
        let mut nx = false;
        let code = access.error_code();
        loop {
            let e = &self.table(table)[l.index(VirtAddr(va))];
            let v = e.load(Relaxed);
            if v & bits::PRESENT == 0 {
                return Err(PageFault { code });
            }
            rw &= v & bits::RW != 0;
            user &= v & bits::USER != 0;
            nx |= v & bits::NX != 0;
            let leaf = l == Level::Pte || (l.can_be_huge() && v & bits::PSE != 0);
            if leaf {
                let denied = !user
                    || match access {
                        Access::Read => false,
                        Access::Write => !rw,
                        Access::Exec => nx,
                    };
                if denied {
                    return Err(PageFault { code: code | pf::PROT });
                }
                let mut set = bits::ACCESSED;
                if access == Access::Write {
                    set |= bits::DIRTY;
                }
                let v = if v & set != set { e.fetch_or(set, Relaxed) | set } else { v };
                let mask = (1u64 << l.shift()) - 1;
                let pa = (v & bits::PFN_MASK & !mask) | (va & mask & !0xfff);
                let mut folded = (v & !bits::PFN_MASK & !(bits::RW | bits::USER | bits::NX)) | pa;
                if rw {
                    folded |= bits::RW;
                }
                if nx {
                    folded |= bits::NX;
                }
                folded |= bits::USER;
                self.mmu.tlbs[cpu].fill(mm.id, va >> 12, folded);
                mm.cpumask.fetch_or(1 << (cpu % 64), Relaxed);
                return Ok(PhysAddr(pa | (va & 0xfff)));
            }
            if v & bits::ACCESSED == 0 {
                e.fetch_or(bits::ACCESSED, Relaxed);
            }
            table = entry_pfn(v);
            l = match l.next() {
                Some(n) => n,
                None => return Err(PageFault { code: code | pf::RSVD }),
            };
        }
    }

    /// The frame a user address maps now, by walking (no TLB, no bits set).
    pub fn follow_pte(&self, mm: &Mm, va: u64) -> Option<(Pfn, u64)> {
        let (e, l) = self.pgtable_entry(mm.pgd, VirtAddr(va), Level::Pte)?;
        let v = e.load(Relaxed);
        if v & bits::PRESENT == 0 {
            return None;
        }
        let sub = (va & ((1u64 << l.shift()) - 1)) >> 12;
        Some((entry_pfn(v).add(sub), v))
    }

    fn for_each_tlb(&self, mm: &Mm, f: impl Fn(&Tlb)) {
        let mask = mm.cpumask.load(Relaxed);
        for (cpu, tlb) in self.mmu.tlbs.iter().enumerate() {
            if mask & (1 << (cpu % 64)) != 0 {
                f(tlb);
            }
        }
    }

    /// Drops one page's translations on every CPU that may cache them (`flush_tlb_page`).
    pub fn flush_tlb_page(&self, mm: &Mm, va: u64) {
        self.mmu.flush_one.fetch_add(1, Relaxed);
        self.for_each_tlb(mm, |t| t.flush_page(mm.id, va >> 12));
    }

    /// Drops the translations of `[start, end)` (`flush_tlb_range`); over
    /// the ceiling, all of the mm's.
    pub fn flush_tlb_range(&self, mm: &Mm, start: u64, end: u64) {
        if end <= start {
            return;
        }
        let pages = (end - start).div_ceil(4096);
        if pages > TLB_SINGLE_PAGE_FLUSH_CEILING {
            self.flush_tlb_mm(mm);
            return;
        }
        self.mmu.flush_one.fetch_add(pages, Relaxed);
        self.for_each_tlb(mm, |t| {
            for vpn in start >> 12..end.div_ceil(4096) {
                t.flush_page(mm.id, vpn)
            }
        });
    }

    /// Drops every translation of `mm` (`flush_tlb_mm`).
    pub fn flush_tlb_mm(&self, mm: &Mm) {
        self.mmu.flush_all.fetch_add(1, Relaxed);
        self.for_each_tlb(mm, |t| t.flush_mm(mm.id));
    }
}
