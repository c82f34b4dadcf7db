//! SLAB's debugging (`CONFIG_DEBUG_SLAB` in `mm/slab.c`): red-zone words,
//! poisoning, the last-user word, and the checks run when an object is
//! handed out (`cache_alloc_debugcheck_after`), taken back
//! (`cache_free_debugcheck`) and when its slab is destroyed.
//!
//! Slot layout with `SLAB_RED_ZONE` (and `SLAB_STORE_USER`):
//! `[red zone 1][object, padded to a word][red zone 2][user word]`; the
//! object starts `obj_offset` (one word) into its slot.

use super::super::debug::{POISON_END, POISON_FREE, POISON_INUSE};
use super::{ArrayCache, Cx, OBJECT_FREE, RED_ACTIVE, RED_INACTIVE};
use crate::slab::{SlabFlags, WORD};
use crate::types::{Pfn, VirtAddr};

/// Bit of the user word marking a free (the rest is the virtual time).
const USER_FREED: u64 = 1 << 63;

impl Cx<'_> {
    /// Prepares an object of a new slab (`cache_init_objs_debug`, then the
    /// constructor, which poisoned caches run at allocation instead).
    pub(super) fn init_obj(&self, obj: u64) {
        let f = self.c.flags;
        if f.contains(SlabFlags::STORE_USER) {
            self.k.kwrite_u64(self.user_word(obj), 0);
        }
        if f.contains(SlabFlags::RED_ZONE) {
            self.set_redzones(obj, RED_INACTIVE);
        }
        if f.contains(SlabFlags::OBJECT_POISON) {
            self.poison(obj, POISON_FREE);
        } else {
            self.run_ctor(obj);
        }
    }

    fn redzone2(&self, obj: u64) -> u64 {
        let user = if self.c.flags.contains(SlabFlags::STORE_USER) { WORD } else { 0 };
        obj - u64::from(self.s.obj_offset) + u64::from(self.c.size - WORD - user)
    }

    fn user_word(&self, obj: u64) -> VirtAddr {
        VirtAddr(obj - u64::from(self.s.obj_offset) + u64::from(self.c.size - WORD))
    }

    fn redzones(&self, obj: u64) -> (u64, u64) {
        (self.k.kread_u64(VirtAddr(obj - WORD as u64)), self.k.kread_u64(VirtAddr(self.redzone2(obj))))
    }

    fn set_redzones(&self, obj: u64, v: u64) {
        self.k.kwrite_u64(VirtAddr(obj - WORD as u64), v);
        self.k.kwrite_u64(VirtAddr(self.redzone2(obj)), v);
    }

    /// Fills an object with `val`, its last byte `POISON_END` (`poison_obj`).
    fn poison(&self, obj: u64, val: u8) {
        let n = u64::from(self.c.object_size);
        self.k.kfill(VirtAddr(obj), n - 1, val);
        self.k.kfill(VirtAddr(obj + n - 1), 1, POISON_END);
    }

    /// Checks a free object's poison (`check_poison_obj`); reports the
    /// first damaged bytes.
    fn check_poison(&self, obj: u64) -> bool {
        let n = self.c.object_size as usize;
        let mut buf = alloc::vec![0u8; n];
        self.k.kread(VirtAddr(obj), &mut buf);
        let want = |i: usize| if i == n - 1 { POISON_END } else { POISON_FREE };
        let Some(first) = (0..n).find(|&i| buf[i] != want(i)) else { return true };
        let bad = (0..n).filter(|&i| buf[i] != want(i)).count();
        self.k.log.err(format_args!("Slab corruption (Not tainted): {} start={obj:#x}, len={n}", self.c.name));
        self.k
            .log
            .err(format_args!("{first:03x}: first bad byte {:#04x} ({bad} bytes differ from the poison)", buf[first]));
        false
    }

    /// Is an object free: in its slab's freelist (debug caches) or in any
    /// array? Used where red zones cannot tell.
    fn is_free(&self, obj: u64) -> bool {
        if let Some((slab, idx)) = self.obj_index(obj) {
            if self.s.debug && self.status(slab, idx) == OBJECT_FREE {
                return true;
            }
        }
        let has = |ac: &ArrayCache| ac.entry.contains(&obj);
        self.s.cpu.iter().any(|pc| has(&pc.ac.lock()))
            || self
                .s
                .node
                .iter()
                .any(|n| n.alien.iter().any(|a| has(&a.lock())) || n.list_lock.lock().shared.as_ref().is_some_and(has))
    }

    /// Checks an object on its way to a caller (`cache_alloc_debugcheck_after`).
    pub(super) fn alloc_debugcheck(&self, obj: u64) {
        let f = self.c.flags;
        if f.contains(SlabFlags::OBJECT_POISON) {
            self.check_poison(obj);
            self.poison(obj, POISON_INUSE);
        }
        if f.contains(SlabFlags::STORE_USER) {
            self.k.kwrite_u64(self.user_word(obj), self.k.hal.now_ns() & !USER_FREED);
        }
        if f.contains(SlabFlags::RED_ZONE) {
            let (r1, r2) = self.redzones(obj);
            if r1 != RED_INACTIVE || r2 != RED_INACTIVE {
                self.slab_error(
                    "cache_alloc_debugcheck_after",
                    format_args!("double free, or memory outside object was overwritten"),
                );
                self.k.log.err(format_args!("{obj:#x}: redzone 1:{r1:#x}, redzone 2:{r2:#x}"));
            }
            self.set_redzones(obj, RED_ACTIVE);
        }
        if f.contains(SlabFlags::OBJECT_POISON) {
            self.run_ctor(obj);
        }
    }

    /// Checks an object being freed (`cache_free_debugcheck`); false when
    /// the free must be ignored (the object is already free).
    pub(super) fn free_debugcheck(&self, obj: u64) -> bool {
        let f = self.c.flags;
        if f.contains(SlabFlags::RED_ZONE) {
            let (r1, r2) = self.redzones(obj);
            if r1 != RED_ACTIVE || r2 != RED_ACTIVE {
                let free = if r1 == RED_INACTIVE && r2 == RED_INACTIVE {
                    true
                } else {
                    self.slab_error("cache_free_debugcheck", format_args!("memory outside object was overwritten"));
                    if r1 == RED_ACTIVE || r2 == RED_ACTIVE {
                        false
                    } else {
                        r1 == RED_INACTIVE || r2 == RED_INACTIVE || self.is_free(obj)
                    }
                };
                if free {
                    self.slab_error("cache_free_debugcheck", format_args!("double free detected"));
                }
                self.k.log.err(format_args!("{obj:#x}: redzone 1:{r1:#x}, redzone 2:{r2:#x}"));
                if free {
                    self.set_redzones(obj, RED_INACTIVE);
                    self.k.log.err(format_args!("{obj:#x}: free ignored"));
                    return false;
                }
            }
            self.set_redzones(obj, RED_INACTIVE);
        } else if self.is_free(obj) {
            self.slab_error("cache_free_debugcheck", format_args!("double free detected, object {obj:#x}; ignored"));
            return false;
        }
        if f.contains(SlabFlags::STORE_USER) {
            self.k.kwrite_u64(self.user_word(obj), self.k.hal.now_ns() | USER_FREED);
        }
        if f.contains(SlabFlags::OBJECT_POISON) {
            self.poison(obj, POISON_FREE);
        }
        true
    }

    /// Checks the free objects of a slab about to be released (`slab_destroy_debugcheck`).
    pub(super) fn destroy_debugcheck(&self, slab: Pfn) {
        for i in 0..self.s.num {
            let obj = self.obj_addr(slab, i);
            if self.c.flags.contains(SlabFlags::OBJECT_POISON) {
                self.check_poison(obj);
            }
            if self.c.flags.contains(SlabFlags::RED_ZONE) {
                let (r1, r2) = self.redzones(obj);
                if r1 != RED_INACTIVE {
                    self.slab_error("slab_destroy", format_args!("start of a freed object {obj:#x} was overwritten"));
                }
                if r2 != RED_INACTIVE {
                    self.slab_error("slab_destroy", format_args!("end of a freed object {obj:#x} was overwritten"));
                }
            }
        }
    }
}
