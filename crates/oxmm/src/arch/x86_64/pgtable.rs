//! x86-64 page tables (Linux's `arch/x86/include/asm/pgtable_types.h`,
//! `pgtable_64.h` and the generic walkers of `mm/memory.c`): the entry
//! format, table pages in simulated RAM, and the walks that read, fill and
//! clear them.
//!
//! Tables are ordinary frames from the page allocator, marked as page-table
//! pages and counted in `nr_page_table_pages` (meminfo's PageTables); their
//! 512 entries are real x86-64 entries read and written as atomics, so a
//! software MMU can walk them exactly as hardware does. 4-level paging
//! walks PGD (address bits 39..47), PUD (30..38), PMD (21..29) and PTE
//! (12..20); 5-level paging (`la57`, [`Kernel::pgtable_levels`]) puts a
//! PGD over bits 48..56 on top and the 39..47 table becomes the P4D. In
//! the enum below the 39..47 level is [`Level::P4d`] in both modes: with
//! 4 levels Linux folds the p4d into the pgd, and it is the top table.
//! Split page-table locks come with the address-space component; kernel
//! tables here are guarded by their caller's lock.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::page::pg;
use crate::types::{Errno, Pfn, PhysAddr, VirtAddr, PAGE_SHIFT};
use crate::vmstat::NodeStat;

/// Entry bits (`_PAGE_*`).
#[allow(missing_docs)]
pub mod bits {
    pub const PRESENT: u64 = 1 << 0;
    pub const RW: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const PWT: u64 = 1 << 3;
    pub const PCD: u64 = 1 << 4;
    pub const ACCESSED: u64 = 1 << 5;
    pub const DIRTY: u64 = 1 << 6;
    /// Huge page at PMD/PUD level (`_PAGE_PSE`).
    pub const PSE: u64 = 1 << 7;
    pub const GLOBAL: u64 = 1 << 8;
    /// `_PAGE_SPECIAL` (software bit 1).
    pub const SPECIAL: u64 = 1 << 9;
    /// `_PAGE_UFFD_WP` (software bit 2).
    pub const UFFD_WP: u64 = 1 << 10;
    /// `_PAGE_SOFT_DIRTY` (software bit 3).
    pub const SOFT_DIRTY: u64 = 1 << 11;
    /// `_PAGE_PROTNONE`: the GLOBAL bit, meaningful only when not present.
    pub const PROTNONE: u64 = GLOBAL;
    pub const NX: u64 = 1 << 63;
    /// Physical frame bits of an entry (`PTE_PFN_MASK`, 52-bit physical).
    pub const PFN_MASK: u64 = 0x000f_ffff_ffff_f000;
    /// A table entry pointing at a lower kernel table (`_KERNPG_TABLE`).
    pub const KERNPG_TABLE: u64 = PRESENT | RW | ACCESSED | DIRTY;
    /// A user table entry (`_PAGE_TABLE`).
    pub const PAGE_TABLE: u64 = KERNPG_TABLE | USER;
    /// `PAGE_KERNEL`: present, writable, global, no-exec, accessed, dirty.
    pub const PAGE_KERNEL: u64 = PRESENT | RW | ACCESSED | DIRTY | GLOBAL | NX;
}

/// Entries per table.
pub const PTRS_PER_TABLE: usize = 512;

/// Table levels, top first.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    /// Page global directory of 5-level paging: 256 TiB per entry.
    Pgd,
    /// Fourth-level directory: 512 GiB per entry (the top table with
    /// 4-level paging, where Linux calls it the pgd).
    P4d,
    /// Page upper directory: 1 GiB per entry.
    Pud,
    /// Page middle directory: 2 MiB per entry.
    Pmd,
    /// Page table: 4 KiB per entry.
    Pte,
}

impl Level {
    /// Lowest address bit this level indexes.
    pub const fn shift(self) -> u32 {
        match self {
            Level::Pgd => 48,
            Level::P4d => 39,
            Level::Pud => 30,
            Level::Pmd => 21,
            Level::Pte => 12,
        }
    }
    /// The next level down.
    pub const fn next(self) -> Option<Level> {
        match self {
            Level::Pgd => Some(Level::P4d),
            Level::P4d => Some(Level::Pud),
            Level::Pud => Some(Level::Pmd),
            Level::Pmd => Some(Level::Pte),
            Level::Pte => None,
        }
    }
    /// The top level for 4- or 5-level paging.
    pub const fn top(levels: u8) -> Level {
        if levels == 5 {
            Level::Pgd
        } else {
            Level::P4d
        }
    }
    /// Whether an entry of this level can map a huge page (`_PAGE_PSE`).
    pub const fn can_be_huge(self) -> bool {
        matches!(self, Level::Pud | Level::Pmd)
    }
    /// Index of `va` in a table of this level.
    #[inline]
    pub const fn index(self, va: VirtAddr) -> usize {
        ((va.0 >> self.shift()) & 511) as usize
    }
}

/// The frame an entry points at.
#[inline]
pub const fn entry_pfn(e: u64) -> Pfn {
    Pfn((e & bits::PFN_MASK) >> PAGE_SHIFT)
}

/// An entry mapping `pfn` with `flags` (`pfn_pte`).
#[inline]
pub const fn mk_entry(pfn: Pfn, flags: u64) -> u64 {
    ((pfn.0 << PAGE_SHIFT) & bits::PFN_MASK) | (flags & !bits::PFN_MASK)
}

impl Kernel {
    /// Allocates a zeroed page-table page (`pagetable_alloc` + ctor).
    pub fn pgtable_alloc(&self) -> Option<Pfn> {
        let pfn = self.alloc_pages(Gfp::GFP_KERNEL | Gfp::ZERO | Gfp::ACCOUNT | Gfp::NOWARN, 0)?;
        let page = self.memmap.page(pfn);
        page.set(pg::TABLE);
        self.nodes[page.nid()].stat.add(NodeStat::NrPageTablePages as usize, 1);
        Some(pfn)
    }

    /// Frees a page-table page (`pagetable_free` + dtor).
    pub fn pgtable_free(&self, pfn: Pfn) {
        let page = self.memmap.page(pfn);
        page.clear(pg::TABLE);
        self.nodes[page.nid()].stat.add(NodeStat::NrPageTablePages as usize, -1);
        self.free_pages(pfn, 0);
    }

    /// The entries of a table page.
    #[inline]
    pub fn table(&self, pfn: Pfn) -> &[AtomicU64] {
        self.mem.view(pfn.phys(), PTRS_PER_TABLE)
    }

    /// The entry for `va` at `level` below `root`, without allocating:
    /// `None` when a table on the way is missing; a huge entry above
    /// `level` is returned with its own level.
    pub fn pgtable_entry(&self, root: Pfn, va: VirtAddr, level: Level) -> Option<(&AtomicU64, Level)> {
        let mut table = root;
        let mut l = Level::top(self.pgtable_levels);
        loop {
            let e = &self.table(table)[l.index(va)];
            if l == level {
                return Some((e, l));
            }
            let v = e.load(Relaxed);
            if v & bits::PRESENT == 0 {
                return None;
            }
            if v & bits::PSE != 0 && l.can_be_huge() {
                return Some((e, l));
            }
            table = entry_pfn(v);
            l = l.next()?;
        }
    }

    /// The PTE slot for `va`, allocating missing tables on the way;
    /// `ENOMEM` when a table page cannot be had, `EEXIST` when a huge entry
    /// already maps the range. `table_flags` go into new upper entries.
    pub fn pte_alloc(&self, root: Pfn, va: VirtAddr, table_flags: u64) -> Result<&AtomicU64, Errno> {
        let mut table = root;
        let mut l = Level::top(self.pgtable_levels);
        while let Some(next) = l.next() {
            let e = &self.table(table)[l.index(va)];
            let mut v = e.load(Relaxed);
            if v & bits::PRESENT == 0 {
                let new = self.pgtable_alloc().ok_or(Errno::ENOMEM)?;
                v = mk_entry(new, table_flags);
                e.store(v, Relaxed);
            } else if v & bits::PSE != 0 {
                return Err(Errno::EEXIST);
            }
            table = entry_pfn(v);
            l = next;
        }
        Ok(&self.table(table)[Level::Pte.index(va)])
    }

    /// Translates `va` through the tables under `root` as the MMU would:
    /// the physical address, or `None` when not present.
    pub fn pgtable_translate(&self, root: Pfn, va: VirtAddr) -> Option<PhysAddr> {
        let (e, l) = self.pgtable_entry(root, va, Level::Pte)?;
        let v = e.load(Relaxed);
        if v & bits::PRESENT == 0 {
            return None;
        }
        let mask = (1u64 << l.shift()) - 1;
        Some(PhysAddr((v & bits::PFN_MASK & !mask) | (va.0 & mask)))
    }

    /// Clears the PTEs of `[start, end)` under `root`, collecting the frames
    /// they mapped (`vunmap_range_noflush`). Tables stay; TLB flushing is
    /// the caller's business.
    pub fn pgtable_clear_range(&self, root: Pfn, start: VirtAddr, end: VirtAddr, out: &mut alloc::vec::Vec<Pfn>) {
        let mut va = start.0;
        while va < end.0 {
            match self.pgtable_entry(root, VirtAddr(va), Level::Pte) {
                Some((e, Level::Pte)) => {
                    let v = e.swap(0, Relaxed);
                    if v & bits::PRESENT != 0 {
                        out.push(entry_pfn(v));
                    }
                    va += 1 << PAGE_SHIFT;
                }
                _ => va = (va | ((1 << Level::Pmd.shift()) - 1)) + 1,
            }
        }
    }

    /// Frees every table page below `root`, and `root` itself
    /// (`free_pgtables` for a whole address space).
    pub fn pgtable_free_tree(&self, root: Pfn) {
        self.free_level(root, Level::top(self.pgtable_levels));
    }

    fn free_level(&self, table: Pfn, l: Level) {
        if let Some(next) = l.next() {
            for e in self.table(table) {
                let v = e.load(Relaxed);
                if v & bits::PRESENT != 0 && (v & bits::PSE == 0 || !l.can_be_huge()) {
                    self.free_level(entry_pfn(v), next);
                }
            }
        }
        self.pgtable_free(table);
    }
}

/// Swap-entry bits that survive in a non-present PTE (`_PAGE_SWP_*`):
/// soft-dirty in RW's place, userfaultfd write-protect in USER's, and
/// "exclusive" (no other mapping may share the swapped page) in PWT's.
#[allow(missing_docs)]
pub mod swp_bits {
    pub const SOFT_DIRTY: u64 = super::bits::RW;
    pub const UFFD_WP: u64 = super::bits::USER;
    pub const EXCLUSIVE: u64 = super::bits::PWT;
}

/// Bits of the swap type in a PTE (`SWP_TYPE_BITS`): 32 swap devices.
pub const SWP_TYPE_BITS: u32 = 5;
/// First bit of the offset, just above PROTNONE (`SWP_OFFSET_FIRST_BIT`).
pub const SWP_OFFSET_FIRST_BIT: u32 = 9;
const SWP_OFFSET_SHIFT: u32 = SWP_OFFSET_FIRST_BIT + SWP_TYPE_BITS;

/// A swap entry: which device and which slot (`swp_entry_t`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct SwpEntry {
    /// Swap device (`swp_type`), below 32.
    pub kind: u32,
    /// Slot on the device (`swp_offset`).
    pub offset: u64,
}

/// Largest offset a PTE can hold: 64 - 5 type bits - 14 shift bits + 5.
pub const SWP_OFFSET_MAX: u64 = (1 << (64 - SWP_OFFSET_SHIFT)) - 1;

/// Encodes a swap entry as a non-present PTE, as x86-64 does
/// (`__swp_entry` + `__swp_entry_to_pte`): the type in the top five bits,
/// the offset inverted below it, so a stale entry read speculatively as a
/// frame number points at high, unpopulated physical memory (the L1TF
/// mitigation). Bits 0..8 (present, PROTNONE...) stay clear.
#[inline]
pub const fn swp_entry_to_pte(e: SwpEntry) -> u64 {
    ((!e.offset) << SWP_OFFSET_SHIFT >> SWP_TYPE_BITS) | ((e.kind as u64) << (64 - SWP_TYPE_BITS))
}

/// Decodes a swap PTE (`__pte_to_swp_entry` + `__swp_type`/`__swp_offset`),
/// ignoring the `_PAGE_SWP_*` flag bits.
#[inline]
pub const fn pte_to_swp_entry(pte: u64) -> SwpEntry {
    SwpEntry { kind: (pte >> (64 - SWP_TYPE_BITS)) as u32, offset: (!pte) << SWP_TYPE_BITS >> SWP_OFFSET_SHIFT }
}

/// Is the entry empty (`pte_none`)?
#[inline]
pub const fn pte_none(pte: u64) -> bool {
    pte == 0
}

/// Does the entry map a page, counting PROT_NONE mappings, which are
/// present to the kernel though not to the MMU (`pte_present`)?
#[inline]
pub const fn pte_present(pte: u64) -> bool {
    pte & (bits::PRESENT | bits::PROTNONE) != 0
}

/// Is the entry a swap (or migration, device...) entry (`is_swap_pte`)?
#[inline]
pub const fn is_swap_pte(pte: u64) -> bool {
    !pte_none(pte) && !pte_present(pte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_entries_round_trip_and_stay_non_present() {
        for kind in [0u32, 1, 7, 31] {
            for offset in [0u64, 1, 0x1234, SWP_OFFSET_MAX / 3, SWP_OFFSET_MAX] {
                let e = SwpEntry { kind, offset };
                let pte = swp_entry_to_pte(e);
                assert_eq!(pte_to_swp_entry(pte), e);
                assert!(is_swap_pte(pte) || (kind == 0 && offset == SWP_OFFSET_MAX && pte == 0));
                assert_eq!(pte & 0x1ff, 0, "bits 0..8 clear: not present, not PROTNONE");
                // The flag bits may be set without disturbing the entry.
                let flagged = pte | swp_bits::SOFT_DIRTY | swp_bits::UFFD_WP | swp_bits::EXCLUSIVE;
                assert_eq!(pte_to_swp_entry(flagged), e);
            }
        }
        // Offset 0 of device 0: the inverted offset sets every high frame
        // bit, so the PFN field points far above any RAM.
        let pte = swp_entry_to_pte(SwpEntry { kind: 0, offset: 0 });
        assert!(entry_pfn(pte).0 > 1 << 30);
        assert_eq!(pte >> 59, 0);
        assert_eq!(swp_entry_to_pte(SwpEntry { kind: 3, offset: 0 }) >> 59, 3);
    }

    #[test]
    fn present_none_and_protnone() {
        let m = mk_entry(Pfn(0x1234), bits::PRESENT | bits::RW | bits::USER);
        assert!(pte_present(m) && !is_swap_pte(m) && !pte_none(m));
        assert_eq!(entry_pfn(m), Pfn(0x1234));
        let protnone = mk_entry(Pfn(0x1234), bits::PROTNONE | bits::ACCESSED);
        assert!(pte_present(protnone), "PROT_NONE pages stay present to the kernel");
        assert!(pte_none(0) && !is_swap_pte(0));
        assert_eq!(Level::P4d.index(VirtAddr(0x0000_7fff_ffff_f000)), 255);
        assert_eq!(Level::Pgd.index(VirtAddr(0x00ff_ffff_ffff_f000)), 255);
        assert_eq!(Level::top(4), Level::P4d);
        assert_eq!(Level::top(5), Level::Pgd);
        assert_eq!(Level::Pte.index(VirtAddr(0x1000)), 1);
    }
}
