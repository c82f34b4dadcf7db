//! SLUB (Linux's `mm/slub.c`, the 7.0 design): each CPU allocates from
//! and frees to its own sheaves, arrays of object pointers exchanged
//! with a per-node barn ([`super::sheaf`]); objects move between sheaves
//! and slabs in batches. Slabs with free objects wait on per-node partial
//! lists; empty slabs beyond `min_partial` go back to the page allocator.
//!
//! Where the state lives:
//! - per CPU ([`PcpSheaves`]): the main and spare sheaves. Only the owning
//!   CPU touches them (Linux: `local_trylock`, preemption off), so plain
//!   atomic loads and stores suffice. A flush of another CPU's sheaves
//!   (shrink, destroy) happens with the machine quiescent, as Linux runs
//!   it on that CPU from a workqueue.
//! - per slab, on its head `Page`: `mapping` = cache id, `index` = the
//!   slab's freelist, `private` = inuse | objects << 16 | frozen << 31,
//!   `lru_*` = list links, `PG_workingset` = "on the node partial list"
//!   (Linux uses the same bit). `slab_lock` (a bit lock on `PG_locked`, the
//!   fallback Linux uses without cmpxchg16b) guards freelist and counters.
//!   A slab is on its node's partial list, full and on no list, or briefly
//!   off the list while a refill drains it; no slab belongs to a CPU.
//! - per node ([`SlubNode`]): `list_lock` and the partial list; debug
//!   caches also keep a full list. Barns ([`NodeBarn`]) are per node too.
//!
//! Free objects on a slab hold the address of the next free object at
//! `s->offset` (the middle of the object for plain caches, after it when a
//! constructor, RCU or poisoning must keep the object's bytes).
//!
//! Debug caches (red zones, poisoning, user tracking, consistency checks)
//! have no sheaves: every allocation and free goes through the node lists
//! with the checks of [`super::debug`], as in Linux.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI64, AtomicU32, Ordering::Relaxed};

pub(crate) use super::sheaf::imp;
use super::sheaf::{NodeBarn, PcpSheaves};
use super::{calculate_alignment, CacheArgs, CacheId, CacheImpl, KmemCache, SlabError, SlabFlags, SlabInfo, WORD};
use crate::arch::x86_64::{phys_to_virt, virt_to_phys};
use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::page::{pg, Page};
use crate::page_alloc::PageList;
use crate::page_alloc::PAGE_ALLOC_COSTLY_ORDER;
use crate::types::{Pfn, VirtAddr, PAGE_SIZE};
use crate::vmstat::NodeStat;

/// Most objects one slab may hold (`MAX_OBJS_PER_PAGE`: 15 bits).
pub const MAX_OBJS_PER_PAGE: u32 = 32767;
/// `slub_max_order`: slabs of up to 8 pages.
pub const SLUB_MAX_ORDER: u32 = PAGE_ALLOC_COSTLY_ORDER;

const INUSE_MASK: u64 = 0xffff;
const OBJECTS_SHIFT: u32 = 16;
const FROZEN: u64 = 1 << 31;
/// Page flag marking a slab on its node's partial list (`slab_test_node_partial`).
const NODE_PARTIAL: u64 = pg::WORKINGSET;

/// What `list_lock` guards.
#[derive(Default)]
pub struct NodeLists {
    /// Partial slabs.
    pub partial: PageList,
    /// Count of partial slabs.
    pub nr_partial: u64,
    /// Full slabs (debug caches only).
    pub full: PageList,
}

/// A value alone on its cache line, so CPUs taking the lock do not
/// bounce the line that others update counters on.
#[repr(align(64))]
#[derive(Default)]
pub struct CacheAligned<T>(pub T);

impl<T> core::ops::Deref for CacheAligned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// One node's slabs of a cache (`struct kmem_cache_node`).
pub struct SlubNode {
    /// `list_lock` with the lists, on its own cache line.
    pub list_lock: CacheAligned<spin::Mutex<NodeLists>>,
    /// Slabs of this cache on the node.
    pub nr_slabs: AtomicI64,
    /// Object slots in them.
    pub total_objects: AtomicI64,
}

/// SLUB's part of a cache.
pub struct SlubCache {
    /// Per CPU: the sheaves (`cpu_sheaves`).
    pub pcs: Box<[PcpSheaves]>,
    /// Per node: the barns.
    pub barn: Box<[NodeBarn]>,
    /// Per node: the slab lists.
    pub node: Box<[SlubNode]>,
    /// Partial slabs a node keeps even when empty (`min_partial`).
    pub min_partial: u64,
    /// Objects a sheaf holds (`sheaf_capacity`); 0: no sheaves (debug and
    /// boot caches, and the kmalloc caches until their sheaves are bootstrapped).
    pub sheaf_capacity: AtomicU32,
    /// Smallest usable order when the preferred one fails (`oo_min`).
    pub min_order: u32,
}

/// Objects of `size` in a slab of `order` (`order_objects`).
fn order_objects(order: u32, size: u32) -> u32 {
    ((PAGE_SIZE << order) / u64::from(size)) as u32
}

/// Smallest order holding `size` bytes (`get_order`).
pub fn get_order(size: u64) -> u32 {
    if size <= PAGE_SIZE {
        0
    } else {
        64 - ((size - 1) >> 12).leading_zeros()
    }
}

fn fls(x: u32) -> u32 {
    32 - x.leading_zeros()
}

/// The smallest order in `[min_order, max_order]` wasting at most
/// 1/`fract` of the slab (`calc_slab_order`).
fn calc_slab_order(size: u32, min_order: u32, max_order: u32, fract: u32) -> u32 {
    let mut order = min_order;
    while order <= max_order {
        let slab_size = (PAGE_SIZE << order) as u32;
        if slab_size % size <= slab_size / fract {
            break;
        }
        order += 1;
    }
    order
}

/// The slab order SLUB picks for objects of `size` (`calculate_order`):
/// at least `4 * (fls(cpus) + 1)` objects, then the least order whose
/// waste is under 1/16, 1/8, 1/4 of the slab.
pub fn calculate_order(size: u32, nr_cpus: u32) -> Option<u32> {
    let min_objects = 4 * (fls(nr_cpus) + 1);
    let max_objects = order_objects(SLUB_MAX_ORDER, size).max(1);
    let min_objects = min_objects.min(max_objects);
    let min_order = get_order(u64::from(min_objects) * u64::from(size));
    if order_objects(min_order, size) > MAX_OBJS_PER_PAGE {
        return Some(get_order(u64::from(size) * u64::from(MAX_OBJS_PER_PAGE)) - 1);
    }
    let mut fraction = 16;
    while fraction > 1 {
        let order = calc_slab_order(size, min_order, SLUB_MAX_ORDER, fraction);
        if order <= SLUB_MAX_ORDER {
            return Some(order);
        }
        fraction /= 2;
    }
    let order = get_order(u64::from(size));
    (order <= crate::types::MAX_PAGE_ORDER).then_some(order)
}

/// Size of one allocation/free track with STORE_USER (`struct track`).
pub const TRACK_SIZE: u32 = 32;

/// Object geometry of a cache (`calculate_sizes`).
pub struct Geometry {
    /// Flags plus internal ones.
    pub flags: SlabFlags,
    /// Slot size.
    pub size: u32,
    /// Object plus right red zone.
    pub inuse: u32,
    /// Free pointer offset.
    pub offset: u32,
    /// Left red zone.
    pub red_left_pad: u32,
    /// Alignment.
    pub align: u32,
}

/// Lays out object, red zones, free pointer and tracks (`calculate_sizes`).
pub fn calculate_sizes(args: &CacheArgs<'_>) -> Geometry {
    let mut flags = args.flags;
    let align = calculate_alignment(flags, args.align, args.size);
    let object_size = args.size;
    if flags.contains(SlabFlags::POISON) && !flags.contains(SlabFlags::TYPESAFE_BY_RCU) && args.ctor.is_none() {
        flags = flags | SlabFlags::OBJECT_POISON;
    }
    let mut size = object_size.next_multiple_of(WORD);
    // A right red zone of at least one word when the object fills its words.
    if flags.contains(SlabFlags::RED_ZONE) && size == object_size {
        size += WORD;
    }
    let inuse = size;
    let offset;
    if flags.intersects(SlabFlags(SlabFlags::TYPESAFE_BY_RCU.0 | SlabFlags::POISON.0))
        || args.ctor.is_some()
        || flags.contains(SlabFlags::RED_ZONE)
    {
        // The object's bytes must survive while free: pointer after the object.
        offset = size;
        size += WORD;
    } else {
        // In the middle, so a small overflow does not hit it first.
        offset = (object_size / 2) & !(WORD - 1);
    }
    if flags.contains(SlabFlags::STORE_USER) {
        size += 2 * TRACK_SIZE;
    }
    let mut red_left_pad = 0;
    if flags.contains(SlabFlags::RED_ZONE) {
        size += WORD;
        red_left_pad = WORD.next_multiple_of(align);
        size += red_left_pad;
    }
    let size = size.next_multiple_of(align);
    Geometry { flags, size, inuse, offset, red_left_pad, align }
}

/// Builds a SLUB cache (`__kmem_cache_create` / `kmem_cache_open`).
pub fn new_cache(k: &Kernel, id: CacheId, args: &CacheArgs<'_>) -> Result<KmemCache, SlabError> {
    let g = calculate_sizes(args);
    let order = calculate_order(g.size, k.nr_cpus as u32).ok_or(SlabError::Invalid("object too large"))?;
    let objects = order_objects(order, g.size);
    if objects == 0 {
        return Err(SlabError::Invalid("object too large"));
    }
    // min_partial: ilog2(size) / 2, clamped to [5, 10] (set_min_partial).
    let min_partial = u64::from((31 - g.size.leading_zeros()) / 2).clamp(5, 10);
    let mut allocflags = Gfp::empty();
    if order > 0 {
        allocflags |= Gfp::COMP;
    }
    if g.flags.contains(SlabFlags::CACHE_DMA) {
        allocflags |= Gfp::DMA;
    }
    if g.flags.contains(SlabFlags::CACHE_DMA32) {
        allocflags |= Gfp::DMA32;
    }
    if g.flags.contains(SlabFlags::RECLAIM_ACCOUNT) {
        allocflags |= Gfp::RECLAIMABLE;
    }
    let node = (0..k.nodes.len())
        .map(|_| SlubNode {
            list_lock: CacheAligned(spin::Mutex::new(NodeLists::default())),
            nr_slabs: AtomicI64::new(0),
            total_objects: AtomicI64::new(0),
        })
        .collect();
    let pcs: Box<[PcpSheaves]> = (0..k.nr_cpus).map(|_| PcpSheaves::default()).collect();
    let barn: Box<[NodeBarn]> = (0..k.nodes.len()).map(|_| NodeBarn::default()).collect();
    Ok(KmemCache {
        id,
        name: args.name.into(),
        object_size: args.size,
        size: g.size,
        align: g.align,
        inuse: g.inuse,
        offset: g.offset,
        red_left_pad: g.red_left_pad,
        flags: g.flags,
        ctor: args.ctor,
        order,
        objects_per_slab: objects,
        reciprocal_size: (1u64 << 32).div_ceil(u64::from(g.size)),
        allocflags,
        refcount: AtomicU32::new(1),
        alive: core::sync::atomic::AtomicBool::new(true),
        aliases: spin::Mutex::new(Vec::new()),
        descriptor: spin::Mutex::new(Vec::new()),
        imp: CacheImpl::Slub(SlubCache {
            pcs,
            barn,
            node,
            min_partial,
            sheaf_capacity: AtomicU32::new(0),
            min_order: get_order(u64::from(g.size)),
        }),
    })
}

/// Counters of a slab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Objects allocated (or held by a cpu freelist).
    pub inuse: u32,
    /// Object slots.
    pub objects: u32,
    /// Owned by a CPU.
    pub frozen: bool,
}

impl Counters {
    pub(crate) fn pack(self) -> u64 {
        u64::from(self.inuse) | (u64::from(self.objects) << OBJECTS_SHIFT) | if self.frozen { FROZEN } else { 0 }
    }
    pub(crate) fn unpack(v: u64) -> Counters {
        Counters {
            inuse: (v & INUSE_MASK) as u32,
            objects: ((v >> OBJECTS_SHIFT) & 0x7fff) as u32,
            frozen: v & FROZEN != 0,
        }
    }
}

/// RAII guard of `slab_lock`. While every CPU runs on one host thread
/// (the deterministic mode) nothing can race, and the lock is skipped, as
/// a uniprocessor kernel compiles its spinlocks away.
struct SlabLock<'a>(Option<&'a Page>);

impl<'a> SlabLock<'a> {
    #[inline]
    fn lock(k: &Kernel, p: &'a Page) -> SlabLock<'a> {
        if !k.threaded.load(Relaxed) {
            return SlabLock(None);
        }
        while p.flags.fetch_or(pg::LOCKED, core::sync::atomic::Ordering::Acquire) & pg::LOCKED != 0 {
            core::hint::spin_loop();
        }
        SlabLock(Some(p))
    }
}

impl Drop for SlabLock<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            p.flags.fetch_and(!pg::LOCKED, core::sync::atomic::Ordering::Release);
        }
    }
}

impl Kernel {
    /// The address of a slab's first byte.
    #[inline]
    pub(crate) fn slab_base(&self, slab: Pfn) -> VirtAddr {
        phys_to_virt(slab.phys())
    }

    /// Object `i` of a slab (after the left red zone).
    #[inline]
    pub(crate) fn slab_object(&self, c: &KmemCache, slab: Pfn, i: u32) -> VirtAddr {
        VirtAddr(self.slab_base(slab).0 + u64::from(i) * u64::from(c.size) + u64::from(c.red_left_pad))
    }

    /// The free pointer stored in a free object (`get_freepointer`).
    #[inline]
    pub(crate) fn get_freepointer(&self, c: &KmemCache, obj: VirtAddr) -> u64 {
        self.kread_u64(VirtAddr(obj.0 + u64::from(c.offset)))
    }

    /// Stores a free pointer (`set_freepointer`).
    #[inline]
    pub(crate) fn set_freepointer(&self, c: &KmemCache, obj: VirtAddr, next: u64) {
        self.kwrite_u64(VirtAddr(obj.0 + u64::from(c.offset)), next)
    }

    /// Is `obj` the start of an object slot of this slab (`check_valid_pointer`)?
    pub(crate) fn check_valid_pointer(&self, c: &KmemCache, slab: Pfn, obj: u64) -> bool {
        if obj == 0 {
            return true;
        }
        let base = self.slab_base(slab).0 + u64::from(c.red_left_pad);
        let cnt = Counters::unpack(self.memmap.page(slab).private.load(Relaxed));
        obj >= base
            && obj < base + u64::from(cnt.objects) * u64::from(c.size)
            && (obj - base).is_multiple_of(u64::from(c.size))
    }

    pub(crate) fn slab_counters(&self, slab: Pfn) -> Counters {
        Counters::unpack(self.memmap.page(slab).private.load(Relaxed))
    }

    fn set_counters(&self, slab: Pfn, cnt: Counters) {
        self.memmap.page(slab).private.store(cnt.pack(), Relaxed);
    }

    /// The head PFN of the slab holding an object, if `obj` is the start
    /// of an object slot in a slab of `c` (Linux trusts the caller; a
    /// multiply by the reciprocal of the size keeps the check cheap).
    #[inline]
    pub(crate) fn obj_to_slab(&self, c: &KmemCache, obj: VirtAddr) -> Option<Pfn> {
        let pa = virt_to_phys(obj)?;
        if !self.memmap.pfn_valid(pa.pfn()) {
            return None;
        }
        let p = self.memmap.page(pa.pfn());
        let head = if p.is_tail() { self.page_folio(pa.pfn()).pfn } else { pa.pfn() };
        let hp = self.memmap.page(head);
        if !(hp.test(pg::SLAB) && hp.mapping.load(Relaxed) == u64::from(c.id.0)) {
            return None;
        }
        let off = (pa.0 - head.phys().0).checked_sub(u64::from(c.red_left_pad))?;
        let idx = (off * c.reciprocal_size) >> 32;
        (idx * u64::from(c.size) == off && idx < u64::from(Counters::unpack(hp.private.load(Relaxed)).objects))
            .then_some(head)
    }

    /// Allocates and formats a new slab (`allocate_slab`): the page
    /// allocator's block, the object chain, constructors, debug patterns.
    /// Returns the slab, its freelist taken and the slab frozen.
    pub(crate) fn new_slab(&self, c: &KmemCache, gfp: Gfp, nid: usize) -> Option<Pfn> {
        let s = imp(c);
        let base_gfp = (gfp
            & Gfp(Gfp::RECLAIM.0
                | Gfp::IO.0
                | Gfp::FS.0
                | Gfp::HIGH.0
                | Gfp::NOWARN.0
                | Gfp::NOMEMALLOC.0
                | Gfp::MEMALLOC.0))
            | c.allocflags;
        let alloc = |g: Gfp, order: u32| {
            if nid == usize::MAX {
                self.alloc_pages(g, order)
            } else {
                self.alloc_pages_node(nid, g, order)
            }
        };
        let mut order = c.order;
        let mut pfn = alloc(base_gfp | Gfp::NOWARN | Gfp::NORETRY, order);
        if pfn.is_none() && s.min_order < order {
            order = s.min_order;
            let g = if order > 0 { base_gfp | Gfp::COMP } else { Gfp(base_gfp.0 & !Gfp::COMP.0) };
            pfn = alloc(g, order);
        }
        let pfn = pfn?;
        let objects = order_objects(order, c.size).min(MAX_OBJS_PER_PAGE);
        let page = self.memmap.page(pfn);
        page.set(pg::SLAB);
        page.mapping.store(u64::from(c.id.0), Relaxed);
        let slab_bytes = PAGE_SIZE << order;
        if c.flags.contains(SlabFlags::OBJECT_POISON) || c.flags.contains(SlabFlags::RED_ZONE) {
            // Linux fills the whole slab with POISON_INUSE first.
            self.kfill(self.slab_base(pfn), slab_bytes, super::debug::POISON_INUSE);
        }
        // Chain every object: 0 -> 1 -> ... -> n-1 -> 0.
        for i in 0..objects {
            let obj = self.slab_object(c, pfn, i);
            self.setup_object(c, obj);
            let next = if i + 1 < objects { self.slab_object(c, pfn, i + 1).0 } else { 0 };
            self.set_freepointer(c, obj, next);
        }
        let first = self.slab_object(c, pfn, 0).0;
        page.index.store(first, Relaxed);
        self.set_counters(pfn, Counters { inuse: 0, objects, frozen: false });
        let node = page.nid();
        let item = if c.flags.contains(SlabFlags::RECLAIM_ACCOUNT) {
            NodeStat::NrSlabReclaimable
        } else {
            NodeStat::NrSlabUnreclaimable
        };
        self.nodes[node].stat.add(item as usize, 1 << order);
        s.node[node].nr_slabs.fetch_add(1, Relaxed);
        s.node[node].total_objects.fetch_add(i64::from(objects), Relaxed);
        Some(pfn)
    }

    /// Prepares one object of a new slab (`setup_object`): debug patterns,
    /// then the constructor.
    fn setup_object(&self, c: &KmemCache, obj: VirtAddr) {
        if c.flags.intersects(SlabFlags::DEBUG_FLAGS) {
            self.init_object(c, obj, super::debug::SLUB_RED_INACTIVE);
        }
        if let Some(ctor) = c.ctor {
            let mut buf = alloc::vec![0u8; c.object_size as usize];
            self.kread(obj, &mut buf);
            ctor(&mut buf);
            self.kwrite(obj, &buf);
        }
    }

    /// Returns a slab's pages (`discard_slab`).
    pub(crate) fn discard_slab(&self, c: &KmemCache, slab: Pfn) {
        let s = imp(c);
        let page = self.memmap.page(slab);
        let order = if page.test(pg::HEAD) { self.page_folio(slab).order(self) } else { 0 };
        let cnt = self.slab_counters(slab);
        let node = page.nid();
        s.node[node].nr_slabs.fetch_sub(1, Relaxed);
        s.node[node].total_objects.fetch_sub(i64::from(cnt.objects), Relaxed);
        let item = if c.flags.contains(SlabFlags::RECLAIM_ACCOUNT) {
            NodeStat::NrSlabReclaimable
        } else {
            NodeStat::NrSlabUnreclaimable
        };
        self.nodes[node].stat.add(item as usize, -(1i64 << order));
        if c.flags.contains(SlabFlags::OBJECT_POISON) || c.flags.contains(SlabFlags::RED_ZONE) {
            // Linux checks the padding here; the pattern has done its job.
        }
        page.clear(pg::SLAB | NODE_PARTIAL);
        page.mapping.store(0, Relaxed);
        page.index.store(0, Relaxed);
        page.private.store(0, Relaxed);
        if page.test(pg::HEAD) {
            self.folio_put(self.page_folio(slab));
        } else {
            self.free_pages(slab, 0);
        }
    }

    pub(crate) fn add_partial(&self, n: &mut NodeLists, slab: Pfn, tail: bool) {
        let p = self.memmap.page(slab);
        if tail {
            n.partial.push_back(&self.memmap, slab);
        } else {
            n.partial.push_front(&self.memmap, slab);
        }
        p.set(NODE_PARTIAL);
        n.nr_partial += 1;
    }

    pub(crate) fn remove_partial(&self, n: &mut NodeLists, slab: Pfn) {
        n.partial.remove(&self.memmap, slab);
        self.memmap.page(slab).clear(NODE_PARTIAL);
        n.nr_partial -= 1;
    }

    /// Takes a slab's whole freelist for a refill (`get_freelist_nofreeze`):
    /// every object counts as in use until what is left is given back.
    pub(crate) fn take_freelist(&self, slab: Pfn) -> u64 {
        let page = self.memmap.page(slab);
        let _l = SlabLock::lock(self, page);
        let fl = page.index.swap(0, Relaxed);
        let mut cnt = self.slab_counters(slab);
        cnt.inuse = cnt.objects;
        self.set_counters(slab, cnt);
        fl
    }

    /// Gives the untaken rest of a freelist back to its (isolated) slab,
    /// in front of objects freed to it meanwhile.
    pub(crate) fn return_freelist(&self, c: &KmemCache, slab: Pfn, head: u64) {
        let (mut tail, mut cnt) = (head, 1u32);
        loop {
            let next = self.get_freepointer(c, VirtAddr(tail));
            if next == 0 {
                break;
            }
            tail = next;
            cnt += 1;
        }
        let page = self.memmap.page(slab);
        let _l = SlabLock::lock(self, page);
        self.set_freepointer(c, VirtAddr(tail), page.index.load(Relaxed));
        page.index.store(head, Relaxed);
        let mut counters = self.slab_counters(slab);
        counters.inuse = counters.inuse.saturating_sub(cnt);
        self.set_counters(slab, counters);
    }

    /// The SLUB allocation path (`slab_alloc_node`): pop from this CPU's
    /// main sheaf; when it is empty, replace it (spare, barn, refill); a
    /// request for another node, or a cache without sheaves, takes one
    /// object straight from the slabs.
    #[inline]
    pub(crate) fn slub_alloc(&self, c: &KmemCache, gfp: Gfp, nid: usize) -> Option<VirtAddr> {
        if c.flags.intersects(SlabFlags::DEBUG_FLAGS) {
            return self.slub_alloc_debug(c, gfp, nid);
        }
        let s = imp(c);
        let pcs = &s.pcs[self.this_cpu()];
        if nid == usize::MAX {
            let n = pcs.main_size.load(Relaxed);
            if n != 0 {
                pcs.main_size.store(n - 1, Relaxed);
                return Some(VirtAddr(self.ram_word(pcs.main_objs.load(Relaxed), n - 1)));
            }
        }
        self.slub_alloc_slow(c, pcs, gfp, nid)
    }

    /// What [`Kernel::slub_alloc`] does past an empty main sheaf or with a
    /// node requested (`alloc_from_pcs` after its fast case, then `___slab_alloc`).
    #[cold]
    #[inline(never)]
    fn slub_alloc_slow(&self, c: &KmemCache, pcs: &PcpSheaves, gfp: Gfp, nid: usize) -> Option<VirtAddr> {
        let local = nid == usize::MAX || nid == self.numa_node_id();
        if local {
            if pcs.main_size.load(Relaxed) == 0 && !self.pcs_replace_empty_main(c, pcs, gfp) {
                return self.slab_alloc_single(c, gfp, nid);
            }
            let n = pcs.main_size.load(Relaxed);
            let obj = self.ram_word(pcs.main_objs.load(Relaxed), n - 1);
            // Sheaves may hold other nodes' objects: a node request needs its own.
            let ok = nid == usize::MAX
                || virt_to_phys(VirtAddr(obj)).is_some_and(|pa| self.memmap.page(pa.pfn()).nid() == nid);
            if ok {
                pcs.main_size.store(n - 1, Relaxed);
                return Some(VirtAddr(obj));
            }
        }
        self.slab_alloc_single(c, gfp, nid)
    }

    /// One object straight from the slabs (`___slab_alloc`): a partial slab
    /// of the node (asked for, or this CPU's), then of other nodes unless
    /// the node was required, then a new slab. With a node requested the
    /// first pass stays on it without waiting; the second may go anywhere.
    fn slab_alloc_single(&self, c: &KmemCache, gfp: Gfp, nid: usize) -> Option<VirtAddr> {
        if nid != usize::MAX && !gfp.contains(Gfp::THISNODE) {
            let first =
                Gfp((gfp.0 & (Gfp::GFP_NOWAIT.0 | Gfp::NOMEMALLOC.0 | Gfp::ACCOUNT.0)) | Gfp::NOWARN.0) | Gfp::THISNODE;
            if let Some(o) = self.slab_alloc_pass(c, first, nid) {
                return Some(o);
            }
        }
        self.slab_alloc_pass(c, gfp, nid)
    }

    fn slab_alloc_pass(&self, c: &KmemCache, gfp: Gfp, nid: usize) -> Option<VirtAddr> {
        let local = if nid == usize::MAX { self.numa_node_id() } else { nid };
        if let Some(o) = self.alloc_from_partial_node(c, local, false) {
            return Some(o);
        }
        if !gfp.contains(Gfp::THISNODE) {
            for n in self.other_nodes_by_distance(local) {
                if let Some(o) = self.alloc_from_partial_node(c, n, true) {
                    return Some(o);
                }
            }
        }
        let slab = self.new_slab(c, gfp, nid)?;
        let mut out = Vec::with_capacity(1);
        self.take_one_from_new_slab(c, slab, &mut out);
        out.pop().map(VirtAddr)
    }

    fn take_one_from_new_slab(&self, c: &KmemCache, slab: Pfn, out: &mut Vec<u64>) {
        let page = self.memmap.page(slab);
        let obj = page.index.load(Relaxed);
        let next = self.get_freepointer(c, VirtAddr(obj));
        page.index.store(next, Relaxed);
        let mut cnt = self.slab_counters(slab);
        cnt.inuse = 1;
        self.set_counters(slab, cnt);
        out.push(obj);
        if next != 0 {
            let mut lists = imp(c).node[page.nid()].list_lock.lock();
            self.add_partial(&mut lists, slab, false);
        }
    }

    /// One object from the first partial slab of a node
    /// (`get_from_partial_node`); `remote`: only from a node keeping more
    /// than `min_partial` partial slabs.
    fn alloc_from_partial_node(&self, c: &KmemCache, nid: usize, remote: bool) -> Option<VirtAddr> {
        let s = imp(c);
        let mut lists = s.node[nid].list_lock.lock();
        if remote && lists.nr_partial <= s.min_partial {
            return None;
        }
        let slab = lists.partial.first()?;
        let page = self.memmap.page(slab);
        let (obj, empty) = {
            let _l = SlabLock::lock(self, page);
            let obj = page.index.load(Relaxed);
            let next = self.get_freepointer(c, VirtAddr(obj));
            page.index.store(next, Relaxed);
            let mut cnt = self.slab_counters(slab);
            cnt.inuse += 1;
            self.set_counters(slab, cnt);
            (obj, next == 0)
        };
        if empty {
            self.remove_partial(&mut lists, slab);
        }
        Some(VirtAddr(obj))
    }

    /// The SLUB free path (`kmem_cache_free`).
    #[inline]
    pub(crate) fn slub_free(&self, c: &KmemCache, obj: VirtAddr, _caller_checks: bool) {
        let Some(slab) = self.obj_to_slab(c, obj) else {
            self.log
                .err(format_args!("kmem_cache_free({}, {:#x}): object is not in a slab of this cache", c.name, obj.0));
            return;
        };
        self.slub_free_in(c, slab, self.memmap.page(slab), obj);
    }

    /// [`Kernel::slub_free`] for a caller that found the slab's head page
    /// already (`kfree`); checks that `obj` starts an object slot of it.
    #[inline]
    pub(crate) fn slub_free_at(&self, c: &KmemCache, head: Pfn, hp: &Page, obj: VirtAddr) {
        let off = (obj.0 - self.slab_base(head).0).wrapping_sub(u64::from(c.red_left_pad));
        let idx = (off * c.reciprocal_size) >> 32;
        if idx * u64::from(c.size) != off || idx >= u64::from(Counters::unpack(hp.private.load(Relaxed)).objects) {
            self.log
                .err(format_args!("kmem_cache_free({}, {:#x}): object is not in a slab of this cache", c.name, obj.0));
            return;
        }
        self.slub_free_in(c, head, hp, obj);
    }

    /// `slab_free`: push on this CPU's main sheaf (`free_to_pcs`) unless the
    /// object belongs to another node (`can_free_to_pcs`); a full main is
    /// replaced first; without sheaves, straight back to the slab.
    #[inline]
    fn slub_free_in(&self, c: &KmemCache, slab: Pfn, hp: &Page, obj: VirtAddr) {
        if c.flags.intersects(SlabFlags::DEBUG_FLAGS) {
            self.slub_free_debug(c, slab, obj);
            return;
        }
        let s = imp(c);
        let pcs = &s.pcs[self.this_cpu()];
        let n = pcs.main_size.load(Relaxed);
        if n < s.sheaf_capacity.load(Relaxed) && (self.nodes.len() == 1 || hp.nid() == self.numa_node_id()) {
            self.set_ram_word(pcs.main_objs.load(Relaxed), n, obj.0);
            pcs.main_size.store(n + 1, Relaxed);
            return;
        }
        self.slub_free_slow(c, pcs, slab, hp, obj);
    }

    #[cold]
    #[inline(never)]
    fn slub_free_slow(&self, c: &KmemCache, pcs: &PcpSheaves, slab: Pfn, hp: &Page, obj: VirtAddr) {
        let local = self.nodes.len() == 1 || hp.nid() == self.numa_node_id();
        if local && self.pcs_replace_full_main(c, pcs) {
            let n = pcs.main_size.load(Relaxed);
            self.set_ram_word(pcs.main_objs.load(Relaxed), n, obj.0);
            pcs.main_size.store(n + 1, Relaxed);
            return;
        }
        self.slab_free_chain(c, slab, obj.0, obj.0, 1);
    }

    /// Frees a chain of `cnt` objects of one slab, `head` to `tail`
    /// (`__slab_free`). A slab that was full joins its node's partial list;
    /// one that becomes empty goes back to the page allocator if the node
    /// keeps `min_partial` partial slabs already. The list lock is taken
    /// first, and only when one of those can happen; a slab off every list
    /// but not full is being refilled from, and its refiller places it.
    pub(crate) fn slab_free_chain(&self, c: &KmemCache, slab: Pfn, head: u64, tail: u64, cnt: u32) {
        let s = imp(c);
        let page = self.memmap.page(slab);
        let node = &s.node[page.nid()];
        loop {
            let predict = {
                let c0 = self.slab_counters(slab);
                page.index.load(Relaxed) == 0 || c0.inuse <= cnt
            };
            let mut lists = if predict { Some(node.list_lock.lock()) } else { None };
            let (was_full, now_empty) = {
                let _l = SlabLock::lock(self, page);
                let prior = page.index.load(Relaxed);
                let mut counters = self.slab_counters(slab);
                counters.inuse = counters.inuse.saturating_sub(cnt);
                let need = prior == 0 || counters.inuse == 0;
                if need && lists.is_none() {
                    // The slab changed under us: redo with the list lock.
                    continue;
                }
                self.set_freepointer(c, VirtAddr(tail), prior);
                page.index.store(head, Relaxed);
                self.set_counters(slab, counters);
                (prior == 0, counters.inuse == 0)
            };
            let Some(l) = lists.as_mut() else { return };
            let on_partial = page.test(NODE_PARTIAL);
            if !was_full && !on_partial {
                return;
            }
            if now_empty && l.nr_partial >= s.min_partial {
                if !was_full {
                    self.remove_partial(l, slab);
                }
                drop(lists);
                self.discard_slab(c, slab);
            } else if was_full {
                self.add_partial(l, slab, true);
            }
            return;
        }
    }

    /// Empties the sheaves and frees empty partial slabs (`__kmem_cache_shrink`):
    /// every CPU's sheaves and the barns go back to the slabs, fully free
    /// slabs go back to the page allocator whatever `min_partial` says, and
    /// the partial lists are sorted fullest first.
    pub(crate) fn slub_shrink(&self, c: &KmemCache) {
        for cpu in 0..self.nr_cpus {
            self.pcs_flush_cpu(c, cpu);
        }
        self.barn_shrink(c);
        let s = imp(c);
        for n in s.node.iter() {
            let mut empty = Vec::new();
            {
                let mut lists = n.list_lock.lock();
                let slabs: Vec<Pfn> = lists.partial.iter(&self.memmap).collect();
                let mut keep: Vec<(u32, Pfn)> = Vec::new();
                for slab in slabs {
                    let cnt = self.slab_counters(slab);
                    self.remove_partial(&mut lists, slab);
                    if cnt.inuse == 0 {
                        empty.push(slab);
                    } else {
                        keep.push((cnt.inuse, slab));
                    }
                }
                // Fuller slabs first, so allocations fill them and the
                // emptier ones can drain (Linux sorts by free objects).
                keep.sort_by_key(|k| core::cmp::Reverse(k.0));
                for (_, slab) in keep {
                    self.add_partial(&mut lists, slab, true);
                }
            }
            for slab in empty {
                self.discard_slab(c, slab);
            }
        }
    }

    /// /proc/slabinfo numbers (`get_slabinfo`): objects on node partial
    /// slabs count as free; objects in sheaves count as in use.
    pub(crate) fn slub_info(&self, c: &KmemCache) -> SlabInfo {
        let s = imp(c);
        let mut info = SlabInfo::default();
        let mut free = 0u64;
        for n in s.node.iter() {
            info.num_slabs += n.nr_slabs.load(Relaxed).max(0) as u64;
            info.num_objs += n.total_objects.load(Relaxed).max(0) as u64;
            free += self.partial_free_objects(n);
        }
        info.active_objs = info.num_objs - free.min(info.num_objs);
        info.active_slabs = info.num_slabs;
        info
    }

    /// Free objects on a node's partial slabs (`count_partial(count_free)`).
    fn partial_free_objects(&self, n: &SlubNode) -> u64 {
        let lists = n.list_lock.lock();
        lists
            .partial
            .iter(&self.memmap)
            .map(|p| {
                let cnt = self.slab_counters(p);
                u64::from(cnt.objects - cnt.inuse.min(cnt.objects))
            })
            .sum()
    }

    /// Objects allocated right now, exactly (for destroy and tests): slots
    /// minus free objects on the slabs and in sheaves.
    pub fn slub_objects_in_use(&self, c: &KmemCache) -> u64 {
        let s = imp(c);
        let total: i64 = s.node.iter().map(|n| n.total_objects.load(Relaxed)).sum();
        let free: u64 = s.node.iter().map(|n| self.partial_free_objects(n)).sum::<u64>() + self.sheaf_cached_objects(c);
        (total.max(0) as u64).saturating_sub(free)
    }

    /// A `/sys/kernel/slab/<cache>/` attribute (SLUB only): object_size,
    /// slab_size, objs_per_slab, order, min_partial, cpu_partial, aliases,
    /// and the per-node counts partial, cpu_slabs, slabs, total_objects,
    /// objects_partial, printed as Linux does (`total N0=.. N1=..`).
    pub fn slub_sysfs(&self, c: &KmemCache, attr: &str) -> Option<alloc::string::String> {
        use alloc::format;
        let CacheImpl::Slub(s) = &c.imp else { return None };
        let per_node = |vals: Vec<u64>| {
            let mut out = format!("{}", vals.iter().sum::<u64>());
            for (n, v) in vals.iter().enumerate() {
                if *v != 0 {
                    out.push_str(&format!(" N{n}={v}"));
                }
            }
            out.push('\n');
            out
        };
        Some(match attr {
            "object_size" => format!("{}\n", c.object_size),
            "slab_size" => format!("{}\n", c.size),
            "objs_per_slab" => format!("{}\n", c.objects_per_slab),
            "order" => format!("{}\n", c.order),
            "align" => format!("{}\n", c.align),
            "min_partial" => format!("{}\n", s.min_partial),
            "cpu_partial" => "0\n".into(),
            "aliases" => format!("{}\n", c.refcount.load(Relaxed).saturating_sub(1)),
            "partial" => per_node(s.node.iter().map(|n| n.list_lock.lock().nr_partial).collect()),
            "objects_partial" => per_node(
                s.node
                    .iter()
                    .map(|n| {
                        let l = n.list_lock.lock();
                        l.partial.iter(&self.memmap).map(|p| u64::from(self.slab_counters(p).inuse)).sum()
                    })
                    .collect(),
            ),
            "slabs" => per_node(s.node.iter().map(|n| n.nr_slabs.load(Relaxed).max(0) as u64).collect()),
            "total_objects" => per_node(s.node.iter().map(|n| n.total_objects.load(Relaxed).max(0) as u64).collect()),
            // Sheaves replaced cpu slabs and cpu partial lists: Linux keeps
            // the files, and they read as empty.
            "cpu_slabs" => "0\n".into(),
            "slabs_cpu_partial" => "0(0)\n".into(),
            "sheaf_capacity" => format!("{}\n", s.sheaf_capacity.load(Relaxed)),
            _ => return None,
        })
    }
}
