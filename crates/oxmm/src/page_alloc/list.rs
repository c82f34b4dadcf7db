//! Doubly linked lists of pages threaded through the memmap by PFN
//! (Linux's `list_head` in `page->lru` / `page->buddy_list` / `page->pcp_list`).
//!
//! The list head is two PFNs owned by whoever owns the list (a zone's free
//! area under the zone lock, a pcp list by its CPU); the links live in the
//! pages' `lru_next`/`lru_prev`. Removal from the middle is O(1), which
//! buddy merging needs. Heads are atomics used with `Relaxed` loads and
//! stores (plain moves): the owner's lock or CPU gives the exclusion, and
//! readers without it (statistics) see a consistent-enough value.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::page::{Memmap, NIL};
use crate::types::Pfn;

/// A list of pages: first and last PFN, [`NIL`] when empty.
#[derive(Debug)]
pub struct PageList {
    head: AtomicU64,
    tail: AtomicU64,
}

impl Default for PageList {
    fn default() -> Self {
        PageList { head: AtomicU64::new(NIL), tail: AtomicU64::new(NIL) }
    }
}

impl PageList {
    /// True when the list holds no page.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head.load(Relaxed) == NIL
    }
    /// The first page, if any.
    #[inline]
    pub fn first(&self) -> Option<Pfn> {
        let h = self.head.load(Relaxed);
        (h != NIL).then_some(Pfn(h))
    }
    /// The last page, if any.
    #[inline]
    pub fn last(&self) -> Option<Pfn> {
        let t = self.tail.load(Relaxed);
        (t != NIL).then_some(Pfn(t))
    }
    /// Adds at the front (`list_add`).
    #[inline]
    pub fn push_front(&self, mm: &Memmap, pfn: Pfn) {
        self.push_front_page(mm, pfn, mm.page(pfn))
    }
    /// [`PageList::push_front`] for a caller that holds the descriptor.
    #[inline]
    pub fn push_front_page(&self, mm: &Memmap, pfn: Pfn, p: &crate::page::Page) {
        let head = self.head.load(Relaxed);
        p.lru_prev.store(NIL, Relaxed);
        p.lru_next.store(head, Relaxed);
        if head == NIL {
            self.tail.store(pfn.0, Relaxed);
        } else {
            mm.page(Pfn(head)).lru_prev.store(pfn.0, Relaxed);
        }
        self.head.store(pfn.0, Relaxed);
    }
    /// Adds at the back (`list_add_tail`).
    #[inline]
    pub fn push_back(&self, mm: &Memmap, pfn: Pfn) {
        let p = mm.page(pfn);
        let tail = self.tail.load(Relaxed);
        p.lru_next.store(NIL, Relaxed);
        p.lru_prev.store(tail, Relaxed);
        if tail == NIL {
            self.head.store(pfn.0, Relaxed);
        } else {
            mm.page(Pfn(tail)).lru_next.store(pfn.0, Relaxed);
        }
        self.tail.store(pfn.0, Relaxed);
    }
    /// Unlinks a page that is on this list (`list_del`).
    #[inline]
    pub fn remove(&self, mm: &Memmap, pfn: Pfn) {
        let p = mm.page(pfn);
        let next = p.lru_next.load(Relaxed);
        let prev = p.lru_prev.load(Relaxed);
        if prev == NIL {
            self.head.store(next, Relaxed);
        } else {
            mm.page(Pfn(prev)).lru_next.store(next, Relaxed);
        }
        if next == NIL {
            self.tail.store(prev, Relaxed);
        } else {
            mm.page(Pfn(next)).lru_prev.store(prev, Relaxed);
        }
        p.lru_next.store(NIL, Relaxed);
        p.lru_prev.store(NIL, Relaxed);
    }
    /// Removes and returns the first page.
    #[inline]
    pub fn pop_front(&self, mm: &Memmap) -> Option<Pfn> {
        self.pop_front_page(mm).map(|(pfn, _)| pfn)
    }
    /// [`PageList::pop_front`], also giving the page's descriptor.
    #[inline]
    pub fn pop_front_page<'m>(&self, mm: &'m Memmap) -> Option<(Pfn, &'m crate::page::Page)> {
        let h = self.head.load(Relaxed);
        if h == NIL {
            return None;
        }
        let p = mm.page(Pfn(h));
        let next = p.lru_next.load(Relaxed);
        self.head.store(next, Relaxed);
        if next == NIL {
            self.tail.store(NIL, Relaxed);
        } else {
            mm.page(Pfn(next)).lru_prev.store(NIL, Relaxed);
        }
        p.lru_next.store(NIL, Relaxed);
        Some((Pfn(h), p))
    }
    /// Removes and returns the last page.
    #[inline]
    pub fn pop_back(&self, mm: &Memmap) -> Option<Pfn> {
        let l = self.last()?;
        self.remove(mm, l);
        Some(l)
    }
    /// Iterates the PFNs from first to last.
    pub fn iter<'a>(&self, mm: &'a Memmap) -> impl Iterator<Item = Pfn> + 'a {
        let mut cur = self.head.load(Relaxed);
        core::iter::from_fn(move || {
            if cur == NIL {
                return None;
            }
            let p = Pfn(cur);
            cur = mm.page(p).lru_next.load(Relaxed);
            Some(p)
        })
    }
}
