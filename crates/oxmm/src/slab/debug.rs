//! Slab debugging (Linux's `slub_debug`: red zones, poisoning, user
//! tracking, consistency checks), shared by the back-ends.
//!
//! Patterns are Linux's (`include/linux/poison.h`): free objects hold
//! `0x6b` bytes ending in `0xa5`; red zones hold `0xbb` while the object is
//! free and `0xcc` while it is allocated; slab padding holds `0x5a`.
//! A violation is reported in the kernel log in Linux's shape (a `BUG
//! <cache> (Not tainted): <what>` banner, the slab and object addresses,
//! the fix applied), the damage is repaired or the object quarantined, and
//! the machine keeps running.

use core::sync::atomic::Ordering::Relaxed;

use super::slub::{Counters, TRACK_SIZE};
use super::{CacheImpl, KmemCache, SlabFlags, WORD};
use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::types::{Pfn, VirtAddr};

/// Byte of a free object (`POISON_FREE`).
pub const POISON_FREE: u8 = 0x6b;
/// Last byte of a free object (`POISON_END`).
pub const POISON_END: u8 = 0xa5;
/// Byte of slab padding (`POISON_INUSE`).
pub const POISON_INUSE: u8 = 0x5a;
/// Red zone of a free object (`SLUB_RED_INACTIVE`).
pub const SLUB_RED_INACTIVE: u8 = 0xbb;
/// Red zone of an allocated object (`SLUB_RED_ACTIVE`).
pub const SLUB_RED_ACTIVE: u8 = 0xcc;

impl Kernel {
    /// Writes the red zones and the poison of an object (`init_object`).
    pub(crate) fn init_object(&self, c: &KmemCache, obj: VirtAddr, val: u8) {
        if c.flags.contains(SlabFlags::RED_ZONE) {
            self.kfill(VirtAddr(obj.0 - u64::from(c.red_left_pad)), u64::from(c.red_left_pad), val);
        }
        if c.flags.contains(SlabFlags::OBJECT_POISON) {
            let n = u64::from(c.object_size);
            self.kfill(obj, n - 1, POISON_FREE);
            self.kfill(VirtAddr(obj.0 + n - 1), 1, POISON_END);
        }
        if c.flags.contains(SlabFlags::RED_ZONE) {
            let n = u64::from(c.inuse - c.object_size);
            self.kfill(VirtAddr(obj.0 + u64::from(c.object_size)), n, val);
        }
    }

    /// Reports a slab bug with Linux's banner (`slab_bug` + `print_trailer`).
    pub(crate) fn slab_bug(&self, c: &KmemCache, slab: Pfn, obj: Option<VirtAddr>, what: core::fmt::Arguments<'_>) {
        let bar = "=============================================================================";
        let page = self.memmap.page(slab);
        let cnt = self.slab_counters(slab);
        self.log.err(format_args!("{bar}"));
        self.log.err(format_args!("BUG {} (Not tainted): {}", c.name, what));
        self.log.err(format_args!("-----------------------------------------------------------------------------"));
        self.log.err(format_args!(
            "Slab {:#x} objects={} used={} fp={:#x} flags={:#x}",
            self.slab_base(slab).0,
            cnt.objects,
            cnt.inuse,
            page.index.load(Relaxed),
            page.flag_bits()
        ));
        if let Some(o) = obj {
            let off = o.0 - self.slab_base(slab).0;
            self.log.err(format_args!("Object {:#x} @offset={} fp={:#x}", o.0, off, self.get_freepointer(c, o)));
        }
    }

    /// Logs the repair applied after a bug (`slab_fix`).
    pub(crate) fn slab_fix(&self, c: &KmemCache, what: core::fmt::Arguments<'_>) {
        self.log.err(format_args!("FIX {}: {}", c.name, what));
    }

    #[allow(clippy::too_many_arguments)]
    /// Checks that `len` bytes at `start` all equal `val`; on a mismatch
    /// reports, restores the pattern and returns false (`check_bytes_and_report`).
    fn check_bytes(
        &self,
        c: &KmemCache,
        slab: Pfn,
        obj: VirtAddr,
        what: &str,
        start: VirtAddr,
        val: u8,
        len: u64,
    ) -> bool {
        if len == 0 {
            return true;
        }
        let mut buf = alloc::vec![0u8; len as usize];
        self.kread(start, &mut buf);
        let Some(first) = buf.iter().position(|&b| b != val) else { return true };
        let last = buf.iter().rposition(|&b| b != val).unwrap_or(first);
        self.slab_bug(c, slab, Some(obj), format_args!("{what} overwritten"));
        self.log.err(format_args!(
            "{:#x}-{:#x} @offset={}. First byte {:#x} instead of {:#x}",
            start.0 + first as u64,
            start.0 + last as u64,
            start.0 + first as u64 - self.slab_base(slab).0,
            buf[first],
            val
        ));
        self.kfill(VirtAddr(start.0 + first as u64), (last - first + 1) as u64, val);
        self.slab_fix(
            c,
            format_args!("Restoring {what} {:#x}-{:#x}={:#x}", start.0 + first as u64, start.0 + last as u64, val),
        );
        false
    }

    /// Verifies red zones, poison and the free pointer of an object
    /// (`check_object`). `val` is the red-zone value it should have.
    pub(crate) fn check_object(&self, c: &KmemCache, slab: Pfn, obj: VirtAddr, val: u8) -> bool {
        let mut ok = true;
        let end = VirtAddr(obj.0 + u64::from(c.object_size));
        if c.flags.contains(SlabFlags::RED_ZONE) {
            let left = VirtAddr(obj.0 - u64::from(c.red_left_pad));
            ok &= self.check_bytes(c, slab, obj, "Left Redzone", left, val, u64::from(c.red_left_pad));
            ok &= self.check_bytes(c, slab, obj, "Right Redzone", end, val, u64::from(c.inuse - c.object_size));
        }
        if c.flags.contains(SlabFlags::POISON) && val != SLUB_RED_ACTIVE && c.flags.contains(SlabFlags::OBJECT_POISON) {
            let n = u64::from(c.object_size);
            ok &= self.check_bytes(c, slab, obj, "Poison", obj, POISON_FREE, n - 1);
            ok &= self.check_bytes(c, slab, obj, "End Poison", VirtAddr(obj.0 + n - 1), POISON_END, 1);
        }
        let outside = c.offset >= c.inuse;
        if (outside || val != SLUB_RED_ACTIVE) && !self.check_valid_pointer(c, slab, self.get_freepointer(c, obj)) {
            self.slab_bug(c, slab, Some(obj), format_args!("Freepointer corrupt"));
            self.set_freepointer(c, obj, 0);
            self.slab_fix(c, format_args!("Freepointer of object {:#x} cleared", obj.0));
            ok = false;
        }
        ok
    }

    /// Is `obj` on the slab's freelist? Repairs a corrupt chain on the way
    /// (`on_freelist`).
    fn on_freelist(&self, c: &KmemCache, slab: Pfn, obj: VirtAddr) -> bool {
        let page = self.memmap.page(slab);
        let cnt = self.slab_counters(slab);
        let mut fp = page.index.load(Relaxed);
        let mut prev: Option<u64> = None;
        let mut nr = 0;
        while fp != 0 && nr <= cnt.objects {
            if fp == obj.0 {
                return true;
            }
            if !self.check_valid_pointer(c, slab, fp) {
                match prev {
                    Some(p) => {
                        self.slab_bug(c, slab, Some(VirtAddr(p)), format_args!("Freechain corrupt"));
                        self.set_freepointer(c, VirtAddr(p), 0);
                    }
                    None => {
                        self.slab_bug(c, slab, None, format_args!("Freepointer corrupt"));
                        page.index.store(0, Relaxed);
                    }
                }
                let fixed = Counters { inuse: cnt.objects - nr, ..cnt };
                page.private.store(fixed.pack(), Relaxed);
                self.slab_fix(c, format_args!("Isolate corrupted freechain"));
                return false;
            }
            prev = Some(fp);
            fp = self.get_freepointer(c, VirtAddr(fp));
            nr += 1;
        }
        false
    }

    /// Records who allocated or freed an object (`set_track`).
    fn set_track(&self, c: &KmemCache, obj: VirtAddr, free: bool) {
        if !c.flags.contains(SlabFlags::STORE_USER) {
            return;
        }
        let info_end = if c.offset >= c.inuse { c.offset + WORD } else { c.inuse };
        let t = VirtAddr(obj.0 + u64::from(info_end) + if free { u64::from(TRACK_SIZE) } else { 0 });
        self.kwrite_u64(t, 0);
        self.kwrite_u64(VirtAddr(t.0 + 8), self.this_cpu() as u64);
        self.kwrite_u64(VirtAddr(t.0 + 16), self.hal.now_ns());
        self.kwrite_u64(VirtAddr(t.0 + 24), 0);
    }

    /// Allocation for a debug cache: one object at a time under the node
    /// lock, checked (`alloc_single_from_partial` / `alloc_single_from_new_slab`).
    pub(crate) fn slub_alloc_debug(&self, c: &KmemCache, gfp: Gfp, nid: usize) -> Option<VirtAddr> {
        let CacheImpl::Slub(s) = &c.imp else { return None };
        let local = if nid == usize::MAX { self.numa_node_id() } else { nid };
        let mut nodes = alloc::vec![local];
        if nid == usize::MAX {
            nodes.extend((0..self.nodes.len()).filter(|&n| n != local));
        }
        for n in nodes {
            let mut lists = s.node[n].list_lock.lock();
            while let Some(slab) = lists.partial.first() {
                let page = self.memmap.page(slab);
                let obj = page.index.load(Relaxed);
                if obj == 0 || !self.check_valid_pointer(c, slab, obj) {
                    if obj != 0 {
                        self.slab_bug(c, slab, None, format_args!("Freelist Pointer check fails"));
                    }
                    self.mark_slab_used(c, slab);
                    self.remove_partial(&mut lists, slab);
                    continue;
                }
                let obj = VirtAddr(obj);
                page.index.store(self.get_freepointer(c, obj), Relaxed);
                let mut cnt = self.slab_counters(slab);
                cnt.inuse += 1;
                page.private.store(cnt.pack(), Relaxed);
                if !self.alloc_debug_processing(c, slab, obj) {
                    self.remove_partial(&mut lists, slab);
                    continue;
                }
                if cnt.inuse == cnt.objects {
                    self.remove_partial(&mut lists, slab);
                    lists.full.push_back(&self.memmap, slab);
                }
                return Some(obj);
            }
        }
        let slab = self.new_slab(c, gfp, nid)?;
        let page = self.memmap.page(slab);
        let obj = VirtAddr(page.index.load(Relaxed));
        page.index.store(self.get_freepointer(c, obj), Relaxed);
        let mut cnt = self.slab_counters(slab);
        cnt.inuse = 1;
        page.private.store(cnt.pack(), Relaxed);
        if !self.alloc_debug_processing(c, slab, obj) {
            return None;
        }
        let mut lists = s.node[page.nid()].list_lock.lock();
        if cnt.inuse == cnt.objects {
            lists.full.push_back(&self.memmap, slab);
        } else {
            self.add_partial(&mut lists, slab, false);
        }
        Some(obj)
    }

    fn mark_slab_used(&self, c: &KmemCache, slab: Pfn) {
        let page = self.memmap.page(slab);
        let mut cnt = self.slab_counters(slab);
        cnt.inuse = cnt.objects;
        page.private.store(cnt.pack(), Relaxed);
        page.index.store(0, Relaxed);
        self.slab_fix(c, format_args!("Marking all objects used"));
    }

    /// Checks and prepares an object handed out by a debug cache (`alloc_debug_processing`).
    fn alloc_debug_processing(&self, c: &KmemCache, slab: Pfn, obj: VirtAddr) -> bool {
        if c.flags.contains(SlabFlags::CONSISTENCY_CHECKS) {
            if !self.check_valid_pointer(c, slab, obj.0) {
                self.slab_bug(c, slab, Some(obj), format_args!("Freelist Pointer check fails"));
                self.mark_slab_used(c, slab);
                return false;
            }
            if !self.check_object(c, slab, obj, SLUB_RED_INACTIVE) {
                self.mark_slab_used(c, slab);
                return false;
            }
        }
        self.set_track(c, obj, false);
        self.init_object(c, obj, SLUB_RED_ACTIVE);
        true
    }

    /// Free for a debug cache: checks, then back to the slab under the
    /// node lock (`free_to_partial_list`). A bad free is reported and the
    /// object is not freed.
    pub(crate) fn slub_free_debug(&self, c: &KmemCache, slab: Pfn, obj: VirtAddr) {
        let CacheImpl::Slub(s) = &c.imp else { return };
        let page = self.memmap.page(slab);
        let mut lists = s.node[page.nid()].list_lock.lock();
        if c.flags.contains(SlabFlags::CONSISTENCY_CHECKS) {
            let ok = if !self.check_valid_pointer(c, slab, obj.0) {
                self.slab_bug(c, slab, None, format_args!("Invalid object pointer {:#x}", obj.0));
                false
            } else if self.on_freelist(c, slab, obj) {
                self.slab_bug(c, slab, Some(obj), format_args!("Object already free"));
                false
            } else {
                self.check_object(c, slab, obj, SLUB_RED_ACTIVE)
            };
            if !ok {
                self.slab_fix(c, format_args!("Object at {:#x} not freed", obj.0));
                return;
            }
        }
        self.set_track(c, obj, true);
        self.init_object(c, obj, SLUB_RED_INACTIVE);
        let prior = page.index.load(Relaxed);
        self.set_freepointer(c, obj, prior);
        page.index.store(obj.0, Relaxed);
        let mut cnt = self.slab_counters(slab);
        cnt.inuse = cnt.inuse.saturating_sub(1);
        page.private.store(cnt.pack(), Relaxed);
        let discard = cnt.inuse == 0 && lists.nr_partial >= s.min_partial;
        if prior == 0 {
            lists.full.remove(&self.memmap, slab);
            if !discard {
                self.add_partial(&mut lists, slab, false);
            }
        } else if discard {
            self.remove_partial(&mut lists, slab);
        }
        drop(lists);
        if discard {
            self.discard_slab(c, slab);
        }
    }
}
