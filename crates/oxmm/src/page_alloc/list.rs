//! Doubly linked lists of pages threaded through the memmap by PFN
//! (Linux's `list_head` in `page->lru` / `page->buddy_list` / `page->pcp_list`).
//!
//! The list head is two PFNs owned by whoever owns the list (a zone's free
//! area under the zone lock, a pcp under its lock); the links live in the
//! pages' `lru_next`/`lru_prev`. Removal from the middle is O(1), which
//! buddy merging needs.

use core::sync::atomic::Ordering::Relaxed;

use crate::page::{Memmap, NIL};
use crate::types::Pfn;

/// A list of pages: first and last PFN, [`NIL`] when empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageList {
    head: u64,
    tail: u64,
}

impl Default for PageList {
    fn default() -> Self {
        PageList { head: NIL, tail: NIL }
    }
}

impl PageList {
    /// True when the list holds no page.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head == NIL
    }
    /// The first page, if any.
    #[inline]
    pub fn first(&self) -> Option<Pfn> {
        (self.head != NIL).then_some(Pfn(self.head))
    }
    /// The last page, if any.
    #[inline]
    pub fn last(&self) -> Option<Pfn> {
        (self.tail != NIL).then_some(Pfn(self.tail))
    }
    /// Adds at the front (`list_add`).
    #[inline]
    pub fn push_front(&mut self, mm: &Memmap, pfn: Pfn) {
        let p = mm.page(pfn);
        p.lru_prev.store(NIL, Relaxed);
        p.lru_next.store(self.head, Relaxed);
        if self.head == NIL {
            self.tail = pfn.0;
        } else {
            mm.page(Pfn(self.head)).lru_prev.store(pfn.0, Relaxed);
        }
        self.head = pfn.0;
    }
    /// Adds at the back (`list_add_tail`).
    #[inline]
    pub fn push_back(&mut self, mm: &Memmap, pfn: Pfn) {
        let p = mm.page(pfn);
        p.lru_next.store(NIL, Relaxed);
        p.lru_prev.store(self.tail, Relaxed);
        if self.tail == NIL {
            self.head = pfn.0;
        } else {
            mm.page(Pfn(self.tail)).lru_next.store(pfn.0, Relaxed);
        }
        self.tail = pfn.0;
    }
    /// Unlinks a page that is on this list (`list_del`).
    #[inline]
    pub fn remove(&mut self, mm: &Memmap, pfn: Pfn) {
        let p = mm.page(pfn);
        let next = p.lru_next.load(Relaxed);
        let prev = p.lru_prev.load(Relaxed);
        if prev == NIL {
            self.head = next;
        } else {
            mm.page(Pfn(prev)).lru_next.store(next, Relaxed);
        }
        if next == NIL {
            self.tail = prev;
        } else {
            mm.page(Pfn(next)).lru_prev.store(prev, Relaxed);
        }
        p.lru_next.store(NIL, Relaxed);
        p.lru_prev.store(NIL, Relaxed);
    }
    /// Removes and returns the first page.
    #[inline]
    pub fn pop_front(&mut self, mm: &Memmap) -> Option<Pfn> {
        let f = self.first()?;
        self.remove(mm, f);
        Some(f)
    }
    /// Removes and returns the last page.
    #[inline]
    pub fn pop_back(&mut self, mm: &Memmap) -> Option<Pfn> {
        let l = self.last()?;
        self.remove(mm, l);
        Some(l)
    }
    /// Iterates the PFNs from first to last.
    pub fn iter<'a>(&self, mm: &'a Memmap) -> impl Iterator<Item = Pfn> + 'a {
        let mut cur = self.head;
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
