//! SLUB's per-CPU sheaves and per-node barns (Linux 7.0's `mm/slub.c`,
//! where sheaves replaced the cpu slabs and cpu partial slabs).
//!
//! A sheaf is an array of object pointers with a 32-byte header, itself a
//! kmalloc object sized to fill a kmalloc bucket exactly (so sheaves show
//! in /proc/slabinfo under kmalloc-64..512, as on Linux). Each CPU owns a
//! `main` sheaf, used as a stack by allocation (pop) and free (push), and
//! may hold a `spare`. Each node has a barn of full and empty sheaves that
//! CPUs exchange theirs with. Only when those run dry do objects move to
//! or from the slabs themselves, in batches (refill, flush).
//!
//! Layout of a sheaf in simulated RAM, as Linux's `struct slab_sheaf` on
//! x86-64: bytes 0..16 the list head / capacity union (unused here: barn
//! lists are host vectors), 16..24 the cache id, 24..28 `size`, 28..32
//! `node`, then `objects[capacity]`.
//!
//! While a sheaf is some CPU's main, its object count lives in
//! [`PcpSheaves::main_size`] (written back to the sheaf when it stops
//! being main), so the fast paths touch one host cache line and one word
//! of RAM.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use super::slub::{CacheAligned, Counters, SlubCache};
use super::{CacheImpl, KmemCache, SlabFlags};
use crate::arch::x86_64::virt_to_phys;
use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::types::{Pfn, PhysAddr, VirtAddr, PAGE_SIZE};

/// Bytes of a sheaf's header before `objects[]`.
pub const SHEAF_HDR: u64 = 32;
const SHEAF_CACHE_OFF: u64 = 16;
const SHEAF_SIZE_OFF: u64 = 24;
/// Full sheaves a barn keeps at most (`MAX_FULL_SHEAVES`).
pub const MAX_FULL_SHEAVES: usize = 10;
/// Empty sheaves a barn keeps at most (`MAX_EMPTY_SHEAVES`).
pub const MAX_EMPTY_SHEAVES: usize = 10;
/// Objects a main-sheaf flush hands to the slabs at a time (`PCS_BATCH_MAX`).
pub const PCS_BATCH_MAX: usize = 32;

/// One CPU's sheaves of one cache (`struct slub_percpu_sheaves`). Only the
/// owning CPU touches it (Linux: `local_trylock`, preemption off), so
/// relaxed loads and stores suffice; flushes of another CPU's sheaves run
/// with the machine quiescent, as Linux runs them on that CPU.
#[repr(align(64))]
#[derive(Default)]
pub struct PcpSheaves {
    /// The main sheaf's kernel address (0: the cache has no sheaves).
    pub main: AtomicU64,
    /// Physical address of the main sheaf's `objects[0]`.
    pub main_objs: AtomicU64,
    /// Objects in the main sheaf.
    pub main_size: AtomicU32,
    /// The spare sheaf (empty or full, rarely in between), or 0.
    pub spare: AtomicU64,
}

/// A node's stock of sheaves (`struct node_barn`); LIFO lists.
#[derive(Default)]
pub struct Barn {
    /// Full sheaves.
    pub full: Vec<u64>,
    /// Empty sheaves.
    pub empty: Vec<u64>,
}

/// A barn behind its lock, with counts readable without it.
#[derive(Default)]
pub struct NodeBarn {
    /// `barn->lock` and the lists.
    pub lock: CacheAligned<spin::Mutex<Barn>>,
    /// Full sheaves (`nr_full`), for lockless peeks.
    pub nr_full: AtomicU32,
    /// Empty sheaves (`nr_empty`).
    pub nr_empty: AtomicU32,
}

/// Linux's kmalloc bucket for a request (`kmalloc_size_roundup`), for
/// sizes up to a page.
fn kmalloc_bucket(bytes: u64) -> u64 {
    match bytes {
        0..=8 => 8,
        9..=96 if bytes > 64 => 96,
        129..=192 => 192,
        _ => bytes.next_power_of_two(),
    }
}

/// Sheaf capacity of a cache (`calculate_sheaf_capacity`): none for debug
/// caches and the boot caches; otherwise 4, 12, 26 or 60 objects by
/// object stride, raised so the sheaf fills its kmalloc bucket.
pub fn calculate_sheaf_capacity(size: u32, flags: SlabFlags) -> u32 {
    if flags.intersects(SlabFlags::DEBUG_FLAGS) || flags.intersects(SlabFlags::NO_OBJ_EXT) {
        return 0;
    }
    let base: u64 = if size >= PAGE_SIZE as u32 {
        4
    } else if size >= 1024 {
        12
    } else if size >= 256 {
        26
    } else {
        60
    };
    let bytes = kmalloc_bucket(SHEAF_HDR + 8 * base);
    ((bytes - SHEAF_HDR) / 8) as u32
}

/// The SLUB state of a cache; only called on SLUB caches.
#[inline]
pub(crate) fn imp(c: &KmemCache) -> &SlubCache {
    match &c.imp {
        CacheImpl::Slub(s) => s,
        _ => unreachable!("SLUB function on a cache of another back-end"),
    }
}

fn sheaf_objs_pa(sheaf: u64) -> u64 {
    virt_to_phys(VirtAddr(sheaf + SHEAF_HDR)).map_or(0, |p| p.0)
}

impl Kernel {
    /// Word `i` of an object array at physical address `base`.
    #[inline(always)]
    pub(crate) fn ram_word(&self, base: u64, i: u32) -> u64 {
        self.mem.word(PhysAddr(base + 8 * u64::from(i))).load(Relaxed)
    }

    /// Stores word `i` of an object array at physical address `base`.
    #[inline(always)]
    pub(crate) fn set_ram_word(&self, base: u64, i: u32, v: u64) {
        self.mem.word(PhysAddr(base + 8 * u64::from(i))).store(v, Relaxed)
    }

    fn sheaf_size(&self, sheaf: u64) -> u32 {
        self.kread_u64(VirtAddr(sheaf + SHEAF_SIZE_OFF)) as u32
    }

    fn set_sheaf_size(&self, sheaf: u64, n: u32) {
        // `size` and `node` share the word; `node` is only used by kfree_rcu sheaves.
        self.kwrite_u64(VirtAddr(sheaf + SHEAF_SIZE_OFF), u64::from(n))
    }

    fn sheaf_objects(&self, sheaf: u64) -> Vec<u64> {
        let n = self.sheaf_size(sheaf);
        let base = sheaf_objs_pa(sheaf);
        (0..n).map(|i| self.ram_word(base, i)).collect()
    }

    /// Does the cache use sheaves now (`cache_has_sheaves`)?
    #[inline]
    pub(crate) fn cache_has_sheaves(&self, c: &KmemCache) -> bool {
        imp(c).sheaf_capacity.load(Relaxed) != 0
    }

    /// A new empty sheaf for `c` (`alloc_empty_sheaf`): a zeroed kmalloc
    /// object from the normal bucket of its size. A kmalloc cache's sheaf
    /// is allocated with `NO_OBJ_EXT`, and such a nested request never
    /// allocates a sheaf itself, so the recursion stops at one level.
    pub(crate) fn alloc_empty_sheaf(&self, c: &KmemCache, gfp: Gfp) -> Option<u64> {
        if gfp.contains(Gfp::NO_OBJ_EXT) {
            return None;
        }
        let cap = u64::from(imp(c).sheaf_capacity.load(Relaxed));
        let clear = Gfp::DMA.0 | Gfp::RECLAIMABLE.0 | Gfp::ACCOUNT.0 | Gfp::NOFAIL.0 | Gfp::THISNODE.0 | Gfp::COMP.0;
        let mut g = Gfp((gfp.0 & !clear) | Gfp::ZERO.0);
        if c.flags.contains(SlabFlags::KMALLOC) {
            g |= Gfp::NO_OBJ_EXT;
        }
        let sheaf = self.kmalloc(SHEAF_HDR + 8 * cap, g)?.0;
        self.kwrite_u64(VirtAddr(sheaf + SHEAF_CACHE_OFF), u64::from(c.id.0));
        Some(sheaf)
    }

    /// Sets up a new cache's sheaves (`init_percpu_sheaves`, barns): one
    /// main sheaf per CPU and one barn per node. Returns false when memory
    /// ran out (the cache then works without sheaves).
    pub(crate) fn init_sheaves(&self, c: &KmemCache, capacity: u32) -> bool {
        let s = imp(c);
        if capacity == 0 {
            return true;
        }
        s.sheaf_capacity.store(capacity, Relaxed);
        let mut mains = Vec::with_capacity(s.pcs.len());
        for _ in 0..s.pcs.len() {
            match self.alloc_empty_sheaf(c, Gfp::GFP_KERNEL) {
                Some(sh) => mains.push(sh),
                None => {
                    mains.into_iter().for_each(|m| self.kfree(VirtAddr(m)));
                    s.sheaf_capacity.store(0, Relaxed);
                    return false;
                }
            }
        }
        for (pcs, m) in s.pcs.iter().zip(mains) {
            pcs.main_objs.store(sheaf_objs_pa(m), Relaxed);
            pcs.main_size.store(0, Relaxed);
            pcs.main.store(m, Relaxed);
        }
        // The barns' own memory (`kmalloc_node(sizeof(struct node_barn))`),
        // kept with the descriptor objects so destroy frees it.
        for nid in 0..self.nodes.len() {
            if let Some(o) = self.kmalloc(56, Gfp::GFP_KERNEL | Gfp::NOWARN) {
                let _ = nid;
                c.descriptor.lock().push((super::CacheId(0), o));
            }
        }
        true
    }

    /// Installs `sheaf` as this CPU's main, writing back the old main's size.
    fn set_main(&self, pcs: &PcpSheaves, sheaf: u64) {
        let old = pcs.main.load(Relaxed);
        if old != 0 {
            self.set_sheaf_size(old, pcs.main_size.load(Relaxed));
        }
        pcs.main.store(sheaf, Relaxed);
        pcs.main_objs.store(sheaf_objs_pa(sheaf), Relaxed);
        pcs.main_size.store(self.sheaf_size(sheaf), Relaxed);
    }

    /// Swaps main and spare.
    fn swap_main_spare(&self, pcs: &PcpSheaves) {
        let spare = pcs.spare.load(Relaxed);
        let main = pcs.main.load(Relaxed);
        self.set_main(pcs, spare);
        pcs.spare.store(main, Relaxed);
    }

    fn barn<'c>(&self, c: &'c KmemCache) -> &'c NodeBarn {
        &imp(c).barn[self.numa_node_id()]
    }

    /// A full sheaf from the barn in exchange for an empty one
    /// (`barn_replace_empty_sheaf`); the empty limit is not checked.
    fn barn_replace_empty_sheaf(&self, barn: &NodeBarn, empty: u64) -> Option<u64> {
        if barn.nr_full.load(Relaxed) == 0 {
            return None;
        }
        let mut b = barn.lock.lock();
        let full = b.full.pop()?;
        b.empty.push(empty);
        barn.nr_full.store(b.full.len() as u32, Relaxed);
        barn.nr_empty.store(b.empty.len() as u32, Relaxed);
        Some(full)
    }

    /// An empty sheaf for a full one (`barn_replace_full_sheaf`): `Err(true)`
    /// when the barn holds its limit of full sheaves (-E2BIG), `Err(false)`
    /// when it has no empty one (-ENOMEM).
    fn barn_replace_full_sheaf(&self, barn: &NodeBarn, full: u64) -> Result<u64, bool> {
        if barn.nr_full.load(Relaxed) as usize >= MAX_FULL_SHEAVES {
            return Err(true);
        }
        let mut b = barn.lock.lock();
        let empty = b.empty.pop().ok_or(false)?;
        b.full.push(full);
        barn.nr_full.store(b.full.len() as u32, Relaxed);
        barn.nr_empty.store(b.empty.len() as u32, Relaxed);
        Ok(empty)
    }

    fn barn_get_empty_sheaf(&self, barn: &NodeBarn) -> Option<u64> {
        if barn.nr_empty.load(Relaxed) == 0 {
            return None;
        }
        let mut b = barn.lock.lock();
        let e = b.empty.pop();
        barn.nr_empty.store(b.empty.len() as u32, Relaxed);
        e
    }

    fn barn_put(&self, barn: &NodeBarn, sheaf: u64, full: bool) {
        let mut b = barn.lock.lock();
        if full {
            b.full.push(sheaf);
        } else {
            b.empty.push(sheaf);
        }
        barn.nr_full.store(b.full.len() as u32, Relaxed);
        barn.nr_empty.store(b.empty.len() as u32, Relaxed);
    }

    /// Refills this CPU's empty main sheaf (`__pcs_replace_empty_main`):
    /// the spare if it has objects, a full sheaf from the barn, or (when
    /// the caller may block) a sheaf filled from the slabs. False when
    /// none of that worked and the caller must take the slab path.
    #[cold]
    #[inline(never)]
    pub(crate) fn pcs_replace_empty_main(&self, c: &KmemCache, pcs: &PcpSheaves, gfp: Gfp) -> bool {
        if !self.cache_has_sheaves(c) || pcs.main.load(Relaxed) == 0 {
            return false;
        }
        let spare = pcs.spare.load(Relaxed);
        if spare != 0 && self.sheaf_size(spare) > 0 {
            self.swap_main_spare(pcs);
            return true;
        }
        let barn = self.barn(c);
        let main = pcs.main.load(Relaxed);
        self.set_sheaf_size(main, 0);
        if let Some(full) = self.barn_replace_empty_sheaf(barn, main) {
            pcs.main.store(0, Relaxed);
            self.set_main(pcs, full);
            return true;
        }
        if !gfp.intersects(Gfp::DIRECT_RECLAIM) {
            return false;
        }
        let empty = if spare != 0 {
            pcs.spare.store(0, Relaxed);
            Some(spare)
        } else {
            self.barn_get_empty_sheaf(barn)
        };
        let Some(empty) = empty.or_else(|| self.alloc_empty_sheaf(c, gfp)) else { return false };
        if !self.refill_sheaf(c, empty, gfp | Gfp::NOMEMALLOC) {
            self.sheaf_flush_unused(c, empty);
            self.kfree(VirtAddr(empty));
            return false;
        }
        // Install: nested allocations above may have changed this CPU's sheaves.
        if pcs.main_size.load(Relaxed) == 0 {
            let old = pcs.main.load(Relaxed);
            self.set_main(pcs, empty);
            if pcs.spare.load(Relaxed) == 0 {
                pcs.spare.store(old, Relaxed);
            } else {
                self.barn_put(self.barn(c), old, false);
            }
        } else if pcs.spare.load(Relaxed) == 0 {
            pcs.spare.store(empty, Relaxed);
        } else if self.sheaf_size(pcs.spare.load(Relaxed)) == 0 {
            let old = pcs.spare.swap(empty, Relaxed);
            self.barn_put(self.barn(c), old, false);
        } else {
            self.barn_put(self.barn(c), empty, true);
        }
        true
    }

    /// Makes room in this CPU's full main sheaf (`__pcs_replace_full_main`):
    /// an empty spare or barn sheaf, an exchange with the barn, flushing the
    /// spare when the barn is full, a new empty sheaf, or at last flushing
    /// main itself to the slabs. False when the cache has no sheaves.
    #[cold]
    #[inline(never)]
    pub(crate) fn pcs_replace_full_main(&self, c: &KmemCache, pcs: &PcpSheaves) -> bool {
        if !self.cache_has_sheaves(c) || pcs.main.load(Relaxed) == 0 {
            return false;
        }
        let cap = imp(c).sheaf_capacity.load(Relaxed);
        let barn = self.barn(c);
        let spare = pcs.spare.load(Relaxed);
        let got_empty = if spare == 0 {
            if let Some(empty) = self.barn_get_empty_sheaf(barn) {
                let full = pcs.main.load(Relaxed);
                self.set_main(pcs, empty);
                pcs.spare.store(full, Relaxed);
                return true;
            }
            None
        } else if self.sheaf_size(spare) < cap {
            self.swap_main_spare(pcs);
            return true;
        } else {
            let main = pcs.main.load(Relaxed);
            self.set_sheaf_size(main, pcs.main_size.load(Relaxed));
            match self.barn_replace_full_sheaf(barn, main) {
                Ok(empty) => {
                    pcs.main.store(0, Relaxed);
                    self.set_main(pcs, empty);
                    return true;
                }
                Err(true) => {
                    // The barn is full of full sheaves: give the spare's
                    // objects back to the slabs and use it as the empty one.
                    pcs.spare.store(0, Relaxed);
                    self.sheaf_flush_unused(c, spare);
                    Some(spare)
                }
                Err(false) => None,
            }
        };
        let empty = got_empty.or_else(|| self.alloc_empty_sheaf(c, Gfp::GFP_NOWAIT));
        let Some(empty) = empty else {
            self.sheaf_flush_main(c, pcs);
            return true;
        };
        // Install the empty sheaf (`__pcs_install_empty_sheaf`).
        let spare = pcs.spare.load(Relaxed);
        if spare == 0 {
            let full = pcs.main.load(Relaxed);
            self.set_main(pcs, empty);
            pcs.spare.store(full, Relaxed);
        } else if pcs.main_size.load(Relaxed) < cap {
            self.barn_put(self.barn(c), empty, false);
        } else if self.sheaf_size(spare) < cap {
            self.swap_main_spare(pcs);
            self.barn_put(self.barn(c), empty, false);
        } else {
            let full = pcs.main.load(Relaxed);
            self.set_main(pcs, empty);
            self.barn_put(self.barn(c), full, true);
        }
        true
    }

    /// Fills a sheaf to capacity from the slabs (`refill_sheaf`); false if
    /// memory ran out before it was full.
    pub(crate) fn refill_sheaf(&self, c: &KmemCache, sheaf: u64, gfp: Gfp) -> bool {
        let cap = imp(c).sheaf_capacity.load(Relaxed);
        let size = self.sheaf_size(sheaf);
        let want = cap.saturating_sub(size) as usize;
        let mut objs = Vec::with_capacity(want);
        self.refill_objects(c, &mut objs, want, want, gfp);
        let base = sheaf_objs_pa(sheaf);
        for (i, &o) in objs.iter().enumerate() {
            self.set_ram_word(base, size + i as u32, o);
        }
        self.set_sheaf_size(sheaf, size + objs.len() as u32);
        objs.len() == want
    }

    /// Gives every object of a sheaf no CPU owns back to the slabs
    /// (`sheaf_flush_unused`).
    pub(crate) fn sheaf_flush_unused(&self, c: &KmemCache, sheaf: u64) {
        let mut objs = self.sheaf_objects(sheaf);
        self.free_objects_bulk(c, &mut objs);
        self.set_sheaf_size(sheaf, 0);
    }

    /// Empties this CPU's main sheaf into the slabs, in batches
    /// (`sheaf_flush_main`).
    pub(crate) fn sheaf_flush_main(&self, c: &KmemCache, pcs: &PcpSheaves) {
        loop {
            let n = pcs.main_size.load(Relaxed);
            if n == 0 {
                return;
            }
            let batch = n.min(PCS_BATCH_MAX as u32);
            let base = pcs.main_objs.load(Relaxed);
            let mut objs: Vec<u64> = (n - batch..n).map(|i| self.ram_word(base, i)).collect();
            pcs.main_size.store(n - batch, Relaxed);
            self.free_objects_bulk(c, &mut objs);
        }
    }

    /// Flushes one CPU's sheaves (`pcs_flush_all`): the spare's objects go
    /// back to the slabs and the spare is freed; main is emptied and kept.
    pub(crate) fn pcs_flush_cpu(&self, c: &KmemCache, cpu: usize) {
        let pcs = &imp(c).pcs[cpu];
        let spare = pcs.spare.swap(0, Relaxed);
        if spare != 0 {
            self.sheaf_flush_unused(c, spare);
            self.kfree(VirtAddr(spare));
        }
        self.sheaf_flush_main(c, pcs);
    }

    /// Empties every barn of a cache (`barn_shrink`): full sheaves' objects
    /// go back to the slabs, and every sheaf is freed.
    pub(crate) fn barn_shrink(&self, c: &KmemCache) {
        for barn in imp(c).barn.iter() {
            let (full, empty) = {
                let mut b = barn.lock.lock();
                barn.nr_full.store(0, Relaxed);
                barn.nr_empty.store(0, Relaxed);
                (core::mem::take(&mut b.full), core::mem::take(&mut b.empty))
            };
            for sh in full {
                self.sheaf_flush_unused(c, sh);
                self.kfree(VirtAddr(sh));
            }
            for sh in empty {
                self.kfree(VirtAddr(sh));
            }
        }
    }

    /// Frees every CPU's (empty) main sheaf of a cache being destroyed (`pcs_destroy`).
    pub(crate) fn pcs_destroy(&self, c: &KmemCache) {
        let s = imp(c);
        s.sheaf_capacity.store(0, Relaxed);
        for pcs in s.pcs.iter() {
            let m = pcs.main.swap(0, Relaxed);
            pcs.main_size.store(0, Relaxed);
            pcs.main_objs.store(0, Relaxed);
            if m != 0 {
                self.kfree(VirtAddr(m));
            }
        }
    }

    /// Objects parked in sheaves (main, spare, barns): free, yet counted
    /// as in use by slabinfo as on Linux.
    pub fn sheaf_cached_objects(&self, c: &KmemCache) -> u64 {
        let s = imp(c);
        let mut n = 0u64;
        for pcs in s.pcs.iter() {
            if pcs.main.load(Relaxed) != 0 {
                n += u64::from(pcs.main_size.load(Relaxed));
            }
            let spare = pcs.spare.load(Relaxed);
            if spare != 0 {
                n += u64::from(self.sheaf_size(spare));
            }
        }
        for barn in s.barn.iter() {
            let b = barn.lock.lock();
            n += b.full.iter().map(|&sh| u64::from(self.sheaf_size(sh))).sum::<u64>();
        }
        n
    }

    /// The nodes other than `local`, nearest first, in the order of its
    /// zonelist (`get_any_partial`'s walk).
    pub(crate) fn other_nodes_by_distance(&self, local: usize) -> Vec<usize> {
        let mut seen = alloc::vec![local];
        for z in self.nodes[local].zonelists[0].iter() {
            let n = z.nid as usize;
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
        seen.remove(0);
        seen
    }

    /// Objects from the slabs for a sheaf or a bulk allocation
    /// (`refill_objects`): at least `min` and at most `max`, appended to
    /// `out`, from the local node's partial slabs, then other nodes'
    /// (those with more than `min_partial`), then new slabs. Returns how
    /// many it took.
    pub(crate) fn refill_objects(&self, c: &KmemCache, out: &mut Vec<u64>, min: usize, max: usize, gfp: Gfp) -> usize {
        let start = out.len();
        let local = self.numa_node_id();
        self.refill_from_node(c, local, out, start + min, start + max, false);
        if out.len() - start < min {
            for n in self.other_nodes_by_distance(local) {
                if self.refill_from_node(c, n, out, start + min, start + max, true) && out.len() - start >= min {
                    break;
                }
            }
        }
        while out.len() - start < min {
            let Some(slab) = self.new_slab(c, gfp, usize::MAX) else { break };
            self.take_from_new_slab(c, slab, out, start + max);
        }
        out.len() - start
    }

    /// Takes objects from one node's partial slabs (`__refill_objects_node`):
    /// slabs are isolated from the list head until they hold enough free
    /// objects, drained into `out`, and what is left goes back to them.
    /// `remote`: only a node with more than `min_partial` partial slabs.
    fn refill_from_node(
        &self,
        c: &KmemCache,
        nid: usize,
        out: &mut Vec<u64>,
        min: usize,
        max: usize,
        remote: bool,
    ) -> bool {
        let s = imp(c);
        let mut isolated = Vec::new();
        {
            let mut lists = s.node[nid].list_lock.lock();
            if remote && lists.nr_partial <= s.min_partial {
                return false;
            }
            let mut total = out.len();
            while let Some(slab) = lists.partial.first() {
                let cnt = self.slab_counters(slab);
                let free = (cnt.objects - cnt.inuse.min(cnt.objects)) as usize;
                if total >= min && total + free > max {
                    break;
                }
                self.remove_partial(&mut lists, slab);
                isolated.push(slab);
                total += free;
                if total >= max {
                    break;
                }
            }
        }
        if isolated.is_empty() {
            return false;
        }
        for &slab in &isolated {
            let mut fl = self.take_freelist(slab);
            while fl != 0 && out.len() < max {
                out.push(fl);
                fl = self.get_freepointer(c, VirtAddr(fl));
            }
            if fl != 0 {
                self.return_freelist(c, slab, fl);
            }
        }
        // Slabs that kept free objects go back to the list's tail; an empty
        // one beyond min_partial goes back to the page allocator.
        let mut discard = Vec::new();
        {
            let mut lists = s.node[nid].list_lock.lock();
            for &slab in &isolated {
                let page = self.memmap.page(slab);
                // Drained (full), or put back on the list by a free that
                // found it full while it was isolated: nothing to do.
                if page.index.load(Relaxed) == 0 || page.test(crate::page::pg::WORKINGSET) {
                    continue;
                }
                if self.slab_counters(slab).inuse == 0 && lists.nr_partial >= s.min_partial {
                    discard.push(slab);
                } else {
                    self.add_partial(&mut lists, slab, true);
                }
            }
        }
        for slab in discard {
            self.discard_slab(c, slab);
        }
        true
    }

    /// Objects from a slab fresh from the page allocator
    /// (`alloc_from_new_slab`): up to `max` in `out`; a slab with objects
    /// left goes to the head of its node's partial list.
    fn take_from_new_slab(&self, c: &KmemCache, slab: Pfn, out: &mut Vec<u64>, max: usize) {
        let page = self.memmap.page(slab);
        let mut fl = page.index.load(Relaxed);
        let mut cnt = self.slab_counters(slab);
        while fl != 0 && out.len() < max {
            out.push(fl);
            cnt.inuse += 1;
            fl = self.get_freepointer(c, VirtAddr(fl));
        }
        page.index.store(fl, Relaxed);
        self.set_slab_counters(slab, cnt);
        if fl != 0 {
            let mut lists = imp(c).node[page.nid()].list_lock.lock();
            self.add_partial(&mut lists, slab, false);
        }
    }

    /// Frees a batch of objects to their slabs (`__kmem_cache_free_bulk`):
    /// objects of one slab are chained into a detached freelist (looking
    /// at most three objects past a miss, `build_detached_freelist`) and
    /// freed with one slab update.
    pub(crate) fn free_objects_bulk(&self, c: &KmemCache, objs: &mut Vec<u64>) {
        let mut items: Vec<(u64, Pfn)> = Vec::with_capacity(objs.len());
        for o in objs.drain(..) {
            match self.obj_to_slab(c, VirtAddr(o)) {
                Some(slab) => items.push((o, slab)),
                None => self.log.err(format_args!("kmem_cache_free_bulk({}): {o:#x} is not an object of it", c.name)),
            }
        }
        while let Some((head, slab)) = items.pop() {
            let (mut tail, mut cnt) = (head, 1u32);
            let mut lookahead = 3;
            let mut i = items.len();
            while i > 0 && lookahead > 0 {
                i -= 1;
                let (o, s) = items[i];
                if s == slab {
                    self.set_freepointer(c, VirtAddr(tail), o);
                    tail = o;
                    cnt += 1;
                    items.swap_remove(i);
                } else {
                    lookahead -= 1;
                }
            }
            self.slab_free_chain(c, slab, head, tail, cnt);
        }
    }

    /// The counters of a slab (for the sheaf code).
    fn set_slab_counters(&self, slab: Pfn, cnt: Counters) {
        self.memmap.page(slab).private.store(cnt.pack(), Relaxed);
    }
}

impl Kernel {
    /// kmalloc's fast path: an object from this CPU's main sheaf of cache
    /// `id`, or `None` (no sheaves, empty main, not SLUB) for the full path.
    #[inline]
    pub(crate) fn slub_alloc_fast(&self, id: super::CacheId) -> Option<VirtAddr> {
        let c = self.slab.cache(id)?;
        let CacheImpl::Slub(s) = &c.imp else { return None };
        let pcs = s.pcs.get(self.this_cpu())?;
        let n = pcs.main_size.load(Relaxed);
        if n == 0 {
            return None;
        }
        pcs.main_size.store(n - 1, Relaxed);
        Some(VirtAddr(self.ram_word(pcs.main_objs.load(Relaxed), n - 1)))
    }

    /// kfree's fast path: push an object of a SLUB slab on this CPU's main
    /// sheaf when it has room and the object is local; false sends the
    /// caller down the full path (which also reports bad pointers).
    #[inline]
    pub(crate) fn slub_free_fast(&self, pfn: Pfn, obj: VirtAddr) -> bool {
        let mut page = self.memmap.page_or_absent(pfn);
        let mut head = pfn;
        let f = page.flags.load(Relaxed);
        if f & crate::page::pg::SLAB == 0 {
            let Some(h) = page.compound_head_pfn() else { return false };
            head = h;
            page = self.memmap.page(h);
            if !page.test(crate::page::pg::SLAB) {
                return false;
            }
        }
        let Some(c) = self.slab.cache(super::CacheId(page.mapping.load(Relaxed) as u32)) else { return false };
        let CacheImpl::Slub(s) = &c.imp else { return false };
        let Some(pcs) = s.pcs.get(self.this_cpu()) else { return false };
        let n = pcs.main_size.load(Relaxed);
        if n >= s.sheaf_capacity.load(Relaxed) || (self.nodes.len() > 1 && page.nid() != self.numa_node_id()) {
            return false;
        }
        let off = (obj.0.wrapping_sub(self.slab_base(head).0)).wrapping_sub(u64::from(c.red_left_pad));
        let idx = (off * c.reciprocal_size) >> 32;
        if idx * u64::from(c.size) != off || idx >= u64::from(Counters::unpack(page.private.load(Relaxed)).objects) {
            return false;
        }
        self.set_ram_word(pcs.main_objs.load(Relaxed), n, obj.0);
        pcs.main_size.store(n + 1, Relaxed);
        true
    }

    /// A SLUB cache's sheaf capacity now (0 for other back-ends).
    pub fn slab_sheaf_capacity(&self, c: &KmemCache) -> u32 {
        match &c.imp {
            CacheImpl::Slub(s) => s.sheaf_capacity.load(Relaxed),
            _ => 0,
        }
    }
}

impl Kernel {
    /// Live sheaves (of any cache) that are objects of cache `c`: sheaves
    /// are kmalloc objects, so a kmalloc cache's count of objects in use
    /// includes them (even its own: kmalloc-512's sheaves are kmalloc-512
    /// objects).
    pub fn sheaves_allocated_from(&self, c: &KmemCache) -> u64 {
        let mut n = 0u64;
        for x in self.slab.caches() {
            let CacheImpl::Slub(s) = &x.imp else { continue };
            let mut sheaves: Vec<u64> = Vec::new();
            for pcs in s.pcs.iter() {
                sheaves.extend([pcs.main.load(Relaxed), pcs.spare.load(Relaxed)].into_iter().filter(|&a| a != 0));
            }
            for barn in s.barn.iter() {
                let b = barn.lock.lock();
                sheaves.extend(b.full.iter().chain(b.empty.iter()));
            }
            n += sheaves.iter().filter(|&&a| self.virt_to_cache(VirtAddr(a)).is_some_and(|k| k.id == c.id)).count()
                as u64;
        }
        n
    }
}
