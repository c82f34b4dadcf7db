//! `struct page` (Linux's `include/linux/mm_types.h` and `page-flags.h`):
//! one 64-byte descriptor per physical frame, stored in the memmap inside
//! simulated RAM.
//!
//! Every field is an atomic so descriptors can be shared between CPUs
//! without `unsafe`; `Relaxed` loads and stores compile to plain moves, and
//! the locks that Linux takes (zone lock, pcp lock, page lock, lruvec lock)
//! give the ordering, exactly as in C.
//!
//! Layout of `flags`, as Linux packs it: page flags in the low bits, then
//! the node id and the zone index in the top bits, so `page_zone` needs no
//! lookup. Where Linux overlays fields in unions, the field is named after
//! its main use and the other uses are documented on it.

use core::sync::atomic::{AtomicI32, AtomicU64, Ordering::Relaxed};

use crate::hal::RamView;
use crate::mmzone::ZoneType;
use crate::types::Pfn;

/// Marks "no page" in PFN-indexed links.
pub const NIL: u64 = u64::MAX;

/// Page flags (Linux's `enum pageflags`, same order).
#[allow(missing_docs)]
pub mod pg {
    pub const LOCKED: u64 = 1 << 0;
    pub const WRITEBACK: u64 = 1 << 1;
    pub const REFERENCED: u64 = 1 << 2;
    pub const UPTODATE: u64 = 1 << 3;
    pub const DIRTY: u64 = 1 << 4;
    pub const LRU: u64 = 1 << 5;
    pub const HEAD: u64 = 1 << 6;
    pub const WAITERS: u64 = 1 << 7;
    pub const ACTIVE: u64 = 1 << 8;
    pub const WORKINGSET: u64 = 1 << 9;
    pub const OWNER_PRIV_1: u64 = 1 << 10;
    pub const OWNER_2: u64 = 1 << 11;
    /// An anonymous page only one mapping may write without copying
    /// (`PG_anon_exclusive`, Linux's alias of PG_owner_2 for anon pages).
    pub const ANON_EXCLUSIVE: u64 = OWNER_2;
    pub const ARCH_1: u64 = 1 << 12;
    pub const RESERVED: u64 = 1 << 13;
    pub const PRIVATE: u64 = 1 << 14;
    pub const PRIVATE_2: u64 = 1 << 15;
    pub const RECLAIM: u64 = 1 << 16;
    pub const SWAPBACKED: u64 = 1 << 17;
    pub const UNEVICTABLE: u64 = 1 << 18;
    pub const DROPBEHIND: u64 = 1 << 19;
    pub const MLOCKED: u64 = 1 << 20;
    pub const HWPOISON: u64 = 1 << 21;
    pub const YOUNG: u64 = 1 << 22;
    pub const IDLE: u64 = 1 << 23;
    pub const ARCH_2: u64 = 1 << 24;
    pub const ARCH_3: u64 = 1 << 25;
    /// Free in the buddy allocator. Linux keeps this as a page type in the
    /// `_mapcount` word; a flag bit keeps `mapcount` free for its real use.
    pub const BUDDY: u64 = 1 << 26;
    /// Allocated from the reserves below the min watermark.
    pub const PFMEMALLOC: u64 = 1 << 27;
    /// Slab page (Linux's page type `PGTY_slab`).
    pub const SLAB: u64 = 1 << 28;
    /// Page-table page (Linux's page type `PGTY_table`).
    pub const TABLE: u64 = 1 << 29;
    /// Tail page of a compound page; `lru_next` holds the head's PFN.
    /// (Linux marks tails with bit 0 of `compound_head`; here list links are
    /// PFNs, which may be odd, so a flag says it.)
    pub const TAIL: u64 = 1 << 30;

    /// Bits of the flag word that hold page flags (the rest is node/zone).
    pub const FLAGS_MASK: u64 = (1 << 32) - 1;
    /// Flags a page must not have when it is freed (`PAGE_FLAGS_CHECK_AT_FREE`).
    pub const CHECK_AT_FREE: u64 = LOCKED
        | WRITEBACK
        | LRU
        | ACTIVE
        | RESERVED
        | PRIVATE
        | PRIVATE_2
        | RECLAIM
        | SWAPBACKED
        | UNEVICTABLE
        | MLOCKED
        | HWPOISON
        | BUDDY
        | SLAB
        | TABLE
        | TAIL;
    /// Flags a page must not have when it is handed out (`PAGE_FLAGS_CHECK_AT_PREP`).
    pub const CHECK_AT_PREP: u64 = CHECK_AT_FREE | REFERENCED | UPTODATE | DIRTY | HEAD | WORKINGSET;
}

const ZONE_SHIFT: u32 = 61;
const NODE_SHIFT: u32 = 51;
const NODE_BITS: u32 = 10;
/// Most NUMA nodes the flag layout can hold (`MAX_NUMNODES`).
pub const MAX_NUMNODES: usize = 1 << NODE_BITS;

/// The descriptor of one physical frame.
#[repr(C, align(64))]
#[derive(Default)]
pub struct Page {
    /// Page flags (low 32 bits), node id and zone index (top bits).
    pub flags: AtomicU64,
    /// Next frame on the list this page is on (buddy free list, pcp list,
    /// LRU), or [`NIL`]. In a tail page of a compound page ([`pg::TAIL`]):
    /// the head's PFN (Linux's `compound_head`).
    pub lru_next: AtomicU64,
    /// Previous frame on the list this page is on, or [`NIL`].
    pub lru_prev: AtomicU64,
    /// The address_space or anon_vma this page belongs to (an id; 0 = none).
    pub mapping: AtomicU64,
    /// Offset within the mapping, in pages. In the first tail page of a
    /// compound page: the folio's order (Linux's `_flags_1` low byte).
    pub index: AtomicU64,
    /// Owner's word: the buddy order while free, swap entry in the swap
    /// cache, buffer heads for file pages.
    pub private: AtomicU64,
    /// Number of page-table mappings minus one (-1: unmapped).
    pub mapcount: AtomicI32,
    /// References (0: free).
    pub refcount: AtomicI32,
    /// Memory cgroup ownership (later); 0 when uncharged.
    pub memcg_data: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<Page>() <= 64, "struct page must stay within 64 bytes");
const _: () = assert!(core::mem::size_of::<Page>() == 64);

// SAFETY: Page is a plain aggregate of atomics: valid for every bit pattern,
// mutated only atomically, no Drop.
unsafe impl RamView for Page {}

impl Page {
    /// Page flag bits.
    #[inline]
    pub fn flag_bits(&self) -> u64 {
        self.flags.load(Relaxed) & pg::FLAGS_MASK
    }
    /// True when every bit of `f` is set.
    #[inline]
    pub fn test(&self, f: u64) -> bool {
        self.flags.load(Relaxed) & f == f
    }
    /// Atomically sets flags (`SetPageX`).
    #[inline]
    pub fn set(&self, f: u64) {
        self.flags.fetch_or(f, Relaxed);
    }
    /// Atomically clears flags (`ClearPageX`).
    #[inline]
    pub fn clear(&self, f: u64) {
        self.flags.fetch_and(!f, Relaxed);
    }
    /// Sets flags without an atomic read-modify-write, for pages nobody else
    /// can see (`__SetPageX`): free pages under the zone lock.
    #[inline]
    pub fn set_nonatomic(&self, f: u64) {
        self.flags.store(self.flags.load(Relaxed) | f, Relaxed);
    }
    /// Clears flags without an atomic read-modify-write (`__ClearPageX`).
    #[inline]
    pub fn clear_nonatomic(&self, f: u64) {
        self.flags.store(self.flags.load(Relaxed) & !f, Relaxed);
    }
    /// Zone index from the flag word (`page_zonenum`).
    #[inline]
    pub fn zonenum(&self) -> ZoneType {
        ZoneType::from_index(((self.flags.load(Relaxed) >> ZONE_SHIFT) & 7) as usize)
    }
    /// Node id from the flag word (`page_to_nid`).
    #[inline]
    pub fn nid(&self) -> usize {
        ((self.flags.load(Relaxed) >> NODE_SHIFT) & ((1 << NODE_BITS) - 1)) as usize
    }
    /// Node and zone packed together (`page_zone_id`): equal for pages of one zone.
    #[inline]
    pub fn zone_id(&self) -> u64 {
        self.flags.load(Relaxed) >> NODE_SHIFT
    }
    /// Initializes a descriptor (`__init_single_page`): given zone and node,
    /// one reference, unmapped, on no list.
    pub fn init(&self, zone: ZoneType, nid: usize, extra_flags: u64) {
        let links = ((zone as u64) << ZONE_SHIFT) | ((nid as u64) << NODE_SHIFT);
        self.flags.store(links | extra_flags, Relaxed);
        self.lru_next.store(NIL, Relaxed);
        self.lru_prev.store(NIL, Relaxed);
        self.mapping.store(0, Relaxed);
        self.index.store(0, Relaxed);
        self.private.store(0, Relaxed);
        self.mapcount.store(-1, Relaxed);
        self.refcount.store(1, Relaxed);
        self.memcg_data.store(0, Relaxed);
    }
    /// References held (`page_ref_count`).
    #[inline]
    pub fn ref_count(&self) -> i32 {
        self.refcount.load(Relaxed)
    }
    /// Takes a reference (`get_page` on a page known to be live).
    #[inline]
    pub fn get(&self) {
        self.refcount.fetch_add(1, Relaxed);
    }
    /// Drops a reference; true when it was the last (`put_page_testzero`).
    #[inline]
    pub fn put_testzero(&self) -> bool {
        self.refcount.fetch_sub(1, core::sync::atomic::Ordering::AcqRel) == 1
    }
    /// True for a tail page of a compound page (`PageTail`).
    #[inline]
    pub fn is_tail(&self) -> bool {
        self.flags.load(Relaxed) & pg::TAIL != 0
    }
    /// The head of the compound page this tail belongs to.
    #[inline]
    pub fn compound_head_pfn(&self) -> Option<Pfn> {
        self.is_tail().then(|| Pfn(self.lru_next.load(Relaxed)))
    }
    /// True while free in the buddy allocator (`PageBuddy`).
    #[inline]
    pub fn is_buddy(&self) -> bool {
        self.flags.load(Relaxed) & pg::BUDDY != 0
    }
    /// The order of a free buddy block (`buddy_order`).
    #[inline]
    pub fn buddy_order(&self) -> u32 {
        self.private.load(Relaxed) as u32
    }
}

/// The memmap: every present section's array of [`Page`], inside simulated
/// RAM, plus its pageblock flags (Linux's SPARSEMEM `mem_section` with its
/// `section_mem_map` and `usemap`). `pfn_to_page` is one table load and an
/// offset.
pub struct Memmap {
    mem: alloc::sync::Arc<crate::hal::PhysMem>,
    /// Host address of each section's first `Page`; absent sections point
    /// at `absent`, so a lookup needs no check (as `pfn_to_page` on Linux).
    sections: alloc::boxed::Box<[usize]>,
    /// Whether each section is present.
    present: alloc::boxed::Box<[bool]>,
    /// Descriptors that stand in for absent sections: all zero, never
    /// handed out by any allocator; `pfn_valid` tells them apart.
    absent: alloc::boxed::Box<[Page]>,
    /// Host address of each section's pageblock bytes (one per pageblock).
    usemaps: alloc::boxed::Box<[usize]>,
    max_pfn: u64,
}

use crate::types::{PAGEBLOCK_ORDER, PAGES_PER_SECTION};
use core::sync::atomic::AtomicU8;

/// Pageblocks in one section.
pub const PAGEBLOCKS_PER_SECTION: u64 = PAGES_PER_SECTION >> PAGEBLOCK_ORDER;
const SECTION_SHIFT: u32 = PAGES_PER_SECTION.trailing_zeros();

impl Memmap {
    /// A memmap for frames `[0, max_pfn)` with no section present yet.
    pub fn new(mem: alloc::sync::Arc<crate::hal::PhysMem>, max_pfn: u64) -> Memmap {
        let n = max_pfn.div_ceil(PAGES_PER_SECTION) as usize;
        let absent: alloc::boxed::Box<[Page]> = (0..PAGES_PER_SECTION).map(|_| Page::default()).collect();
        let absent_addr = absent.as_ptr() as usize;
        Memmap {
            mem,
            sections: alloc::vec![absent_addr; n].into_boxed_slice(),
            present: alloc::vec![false; n].into_boxed_slice(),
            absent,
            usemaps: alloc::vec![0; n].into_boxed_slice(),
            max_pfn,
        }
    }

    /// Makes section `nr` present with its page array at `map` and its
    /// pageblock bytes at `usemap` (both inside RAM, reserved by the caller).
    ///
    /// # Panics
    /// If either range leaves RAM or `nr` is beyond the memmap.
    pub fn add_section(&mut self, nr: usize, map: crate::types::PhysAddr, usemap: crate::types::PhysAddr) {
        let pages: &[Page] = self.mem.view(map, PAGES_PER_SECTION as usize);
        let blocks: &[AtomicU8] = self.mem.view(usemap, PAGEBLOCKS_PER_SECTION as usize);
        self.sections[nr] = pages.as_ptr() as usize;
        self.present[nr] = true;
        self.usemaps[nr] = blocks.as_ptr() as usize;
    }

    /// One past the highest frame number.
    #[inline]
    pub fn max_pfn(&self) -> u64 {
        self.max_pfn
    }

    /// True when the frame has a descriptor (`pfn_valid`).
    #[inline]
    pub fn pfn_valid(&self, pfn: Pfn) -> bool {
        pfn.0 < self.max_pfn && self.present[(pfn.0 >> SECTION_SHIFT) as usize]
    }

    /// True when section `nr` is present.
    pub fn section_present(&self, nr: usize) -> bool {
        self.present.get(nr).copied().unwrap_or(false)
    }

    /// The descriptor of a frame (`pfn_to_page`). A frame outside RAM gets
    /// an all-zero stand-in, as Linux's lookup is unchecked; callers that
    /// may see such frames test [`Memmap::pfn_valid`] first.
    #[inline]
    pub fn page(&self, pfn: Pfn) -> &Page {
        debug_assert!(self.pfn_valid(pfn), "pfn {:#x} has no memmap", pfn.0);
        self.page_or_absent(pfn)
    }

    /// [`Memmap::page`] for any frame number: one outside RAM or in an
    /// absent section gets the zeroed stand-in (no flags set), so a hot
    /// path can test the flags instead of calling [`Memmap::pfn_valid`].
    #[inline]
    pub fn page_or_absent(&self, pfn: Pfn) -> &Page {
        let base =
            self.sections.get((pfn.0 >> SECTION_SHIFT) as usize).copied().unwrap_or(self.absent.as_ptr() as usize);
        let off = (pfn.0 & (PAGES_PER_SECTION - 1)) as usize;
        // SAFETY: `base` is either a section's array from a `PhysMem::view`
        // of PAGES_PER_SECTION pages (add_section; `self.mem` keeps the
        // mapping alive as long as `self`) or `self.absent`, also
        // PAGES_PER_SECTION long; `off` is below that count.
        unsafe { &*(base as *const Page).add(off) }
    }

    /// The pageblock byte of the block holding `pfn` (low 3 bits:
    /// migratetype; bit 3: compaction skip hint).
    ///
    /// # Panics
    /// If the frame has no descriptor.
    #[inline]
    pub fn pageblock(&self, pfn: Pfn) -> &AtomicU8 {
        let base = self.usemaps[(pfn.0 >> SECTION_SHIFT) as usize];
        assert!(base != 0, "pfn {:#x} has no memmap", pfn.0);
        let off = ((pfn.0 & (PAGES_PER_SECTION - 1)) >> PAGEBLOCK_ORDER) as usize;
        // SAFETY: `base` came from a `PhysMem::view` of PAGEBLOCKS_PER_SECTION
        // bytes (add_section), `off` is below that count, and `self.mem`
        // keeps the mapping alive as long as `self`.
        unsafe { &*(base as *const AtomicU8).add(off) }
    }

    /// The RAM this memmap lives in.
    pub fn mem(&self) -> &crate::hal::PhysMem {
        &self.mem
    }
}
