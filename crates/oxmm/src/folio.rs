//! Compound pages and folios (Linux's `include/linux/mm.h` folio API and
//! `prep_compound_page` in `mm/page_alloc.c`).
//!
//! A folio is a head page and, for order > 0, its tail pages. The head has
//! `PG_head`; each tail has [`pg::TAIL`] and the head's PFN in its
//! `lru_next` (Linux's `compound_head`); the first tail stores the order
//! (Linux's `_flags_1` low byte, here `index`). Multi-order folios are the
//! unit that the LRU, page cache, swap and THP later move around.

use core::sync::atomic::Ordering::Relaxed;

use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::page::{pg, Memmap, NIL};
use crate::types::Pfn;

/// A folio: a power-of-two run of pages owned as one, named by its head.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Folio {
    /// The head page's frame.
    pub pfn: Pfn,
}

/// Turns `2^order` freshly allocated pages into a compound page (`prep_compound_page`).
pub fn prep_compound_page(mm: &Memmap, head: Pfn, order: u32) {
    let h = mm.page(head);
    h.set_nonatomic(pg::HEAD);
    for i in 1..(1u64 << order) {
        let t = mm.page(head.add(i));
        t.lru_next.store(head.0, Relaxed);
        t.set_nonatomic(pg::TAIL);
        t.mapping.store(0, Relaxed);
    }
    mm.page(head.add(1)).index.store(order as u64, Relaxed);
}

/// Checks and clears the tails of a compound page being freed
/// (`free_tail_page_prepare`); false when a tail was in a bad state.
pub(crate) fn free_tail_pages_check(k: &Kernel, head: Pfn, order: u32) -> bool {
    let mut ok = true;
    let stored = if order > 0 { k.memmap.page(head.add(1)).index.load(Relaxed) } else { 0 };
    if order > 0 && stored != order as u64 {
        k.bad_page(head, "compound order mismatch");
        ok = false;
    }
    for i in 1..(1u64 << order) {
        let t = k.memmap.page(head.add(i));
        if t.compound_head_pfn() != Some(head) {
            k.bad_page(head.add(i), "corrupted compound_head");
            ok = false;
        }
        t.clear_nonatomic(pg::TAIL);
        t.lru_next.store(NIL, Relaxed);
        t.index.store(0, Relaxed);
        t.mapping.store(0, Relaxed);
    }
    ok
}

impl Folio {
    /// The folio's order (`folio_order`).
    pub fn order(self, k: &Kernel) -> u32 {
        if k.memmap.page(self.pfn).test(pg::HEAD) {
            k.memmap.page(self.pfn.add(1)).index.load(Relaxed) as u32
        } else {
            0
        }
    }
    /// Pages in the folio (`folio_nr_pages`).
    pub fn nr_pages(self, k: &Kernel) -> u64 {
        1 << self.order(k)
    }
    /// References held (`folio_ref_count`).
    pub fn ref_count(self, k: &Kernel) -> i32 {
        k.memmap.page(self.pfn).ref_count()
    }
    /// Takes a reference (`folio_get`).
    pub fn get(self, k: &Kernel) {
        k.memmap.page(self.pfn).get();
    }
}

impl Kernel {
    /// Allocates a folio of `2^order` pages (`folio_alloc`): a compound page
    /// for order > 0.
    pub fn folio_alloc(&self, gfp: Gfp, order: u32) -> Option<Folio> {
        let gfp = if order > 0 { gfp | Gfp::COMP } else { gfp };
        self.alloc_pages(gfp, order).map(|pfn| Folio { pfn })
    }

    /// The folio a page belongs to (`page_folio`).
    pub fn page_folio(&self, pfn: Pfn) -> Folio {
        Folio { pfn: self.memmap.page(pfn).compound_head_pfn().unwrap_or(pfn) }
    }

    /// Drops a reference and frees the folio with the last (`folio_put`).
    pub fn folio_put(&self, folio: Folio) {
        let order = folio.order(self);
        if self.memmap.page(folio.pfn).put_testzero() {
            self.free_frozen_pages(folio.pfn, order);
        }
    }
}
