//! SLUB (Linux's `mm/slub.c`, the 6.8+ design): each CPU allocates from
//! its own slab through a lockless freelist; slabs with free objects wait
//! on a short per-cpu partial list, then on per-node partial lists;
//! empty slabs beyond `min_partial` go back to the page allocator.
//!
//! Where the state lives:
//! - per CPU ([`SlubCpu`]): the cpu slab, its freelist, the cpu partial
//!   chain. Only the owning CPU touches it (Linux: `this_cpu` operations
//!   with preemption off), so plain atomic loads and stores suffice. A
//!   flush of another CPU's state (shrink, destroy) happens with the
//!   machine quiescent, as Linux runs it on that CPU through IPIs.
//! - per slab, on its head `Page`: `mapping` = cache id, `index` = the
//!   slab's own freelist, `private` = inuse | objects << 16 | frozen << 31,
//!   `lru_*` = list links, `PG_workingset` = "on the node partial list"
//!   (Linux uses the same bit). `slab_lock` (a bit lock on `PG_locked`, the
//!   fallback Linux uses without cmpxchg16b) guards freelist and counters.
//! - per node ([`SlubNode`]): `list_lock` and the partial list; debug
//!   caches also keep a full list.
//!
//! Free objects hold the address of the next free object at `s->offset`
//! (the middle of the object for plain caches, after it when a
//! constructor, RCU or poisoning must keep the object's bytes).
//!
//! Debug caches (red zones, poisoning, user tracking, consistency checks)
//! never use cpu slabs: every allocation and free goes through the node
//! lists with the checks of [`super::debug`], as in Linux.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};

use super::{calculate_alignment, CacheArgs, CacheId, CacheImpl, KmemCache, SlabError, SlabFlags, SlabInfo, WORD};
use crate::arch::x86_64::{phys_to_virt, virt_to_phys};
use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::page::{pg, Page, NIL};
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

/// One CPU's slab state for one cache (`struct kmem_cache_cpu`).
#[repr(align(64))]
#[derive(Default)]
pub struct SlubCpu {
    /// Next free object of the cpu slab (a kernel address, 0: none).
    pub freelist: AtomicU64,
    /// Transaction id (`tid`), bumped when the cpu slab changes. Linux
    /// bumps it on every operation because its lockless fast path is a
    /// cmpxchg on (freelist, tid); here the owning CPU alone touches this
    /// structure, so only slab changes are counted.
    pub tid: AtomicU64,
    /// The cpu slab's head PFN, or NIL.
    pub slab: AtomicU64,
    /// First slab of the cpu partial chain, or NIL.
    pub partial: AtomicU64,
    /// Slabs on the chain.
    pub partial_slabs: AtomicU32,
}

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
    /// Per CPU.
    pub cpu: Box<[SlubCpu]>,
    /// Per node.
    pub node: Box<[SlubNode]>,
    /// Partial slabs a node keeps even when empty (`min_partial`).
    pub min_partial: u64,
    /// Objects a CPU keeps on partial slabs (`cpu_partial`).
    pub cpu_partial: u32,
    /// Slabs the cpu partial chain may hold (`cpu_partial_slabs`).
    pub cpu_partial_slabs: u32,
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
    // cpu_partial in objects by size (set_cpu_partial), then in slabs.
    let debug = g.flags.intersects(SlabFlags::DEBUG_FLAGS);
    let cpu_partial: u32 = if debug {
        0
    } else if g.size >= PAGE_SIZE as u32 {
        2
    } else if g.size >= 1024 {
        6
    } else if g.size >= 256 {
        13
    } else {
        30
    };
    let cpu_partial_slabs = (cpu_partial * 2).div_ceil(objects);
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
    let cpu: Box<[SlubCpu]> = (0..k.nr_cpus)
        .map(|_| SlubCpu { slab: AtomicU64::new(NIL), partial: AtomicU64::new(NIL), ..Default::default() })
        .collect();
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
            cpu,
            node,
            min_partial,
            cpu_partial,
            cpu_partial_slabs,
            min_order: get_order(u64::from(g.size)),
        }),
    })
}

/// The SLUB state of a cache. Only called on caches this back-end made.
#[inline]
fn imp(c: &KmemCache) -> &SlubCache {
    match &c.imp {
        CacheImpl::Slub(s) => s,
        _ => unreachable!("SLUB function on a cache of another back-end"),
    }
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
    fn unpack(v: u64) -> Counters {
        Counters {
            inuse: (v & INUSE_MASK) as u32,
            objects: ((v >> OBJECTS_SHIFT) & 0x7fff) as u32,
            frozen: v & FROZEN != 0,
        }
    }
}

/// RAII guard of `slab_lock`.
struct SlabLock<'a>(&'a Page);

impl<'a> SlabLock<'a> {
    fn lock(p: &'a Page) -> SlabLock<'a> {
        while p.flags.fetch_or(pg::LOCKED, core::sync::atomic::Ordering::Acquire) & pg::LOCKED != 0 {
            core::hint::spin_loop();
        }
        SlabLock(p)
    }
}

impl Drop for SlabLock<'_> {
    fn drop(&mut self) {
        self.0.flags.fetch_and(!pg::LOCKED, core::sync::atomic::Ordering::Release);
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

    /// Takes a slab's whole freelist, making it the cpu slab (`get_freelist`
    /// and `freeze_slab`): the slab stays frozen only if it had objects.
    fn get_freelist(&self, slab: Pfn) -> u64 {
        let page = self.memmap.page(slab);
        let _l = SlabLock::lock(page);
        let fl = page.index.swap(0, Relaxed);
        let mut cnt = self.slab_counters(slab);
        cnt.inuse = cnt.objects;
        cnt.frozen = fl != 0;
        self.set_counters(slab, cnt);
        fl
    }

    /// The SLUB allocation path (`slab_alloc_node`).
    #[inline]
    pub(crate) fn slub_alloc(&self, c: &KmemCache, gfp: Gfp, nid: usize) -> Option<VirtAddr> {
        if c.flags.intersects(SlabFlags::DEBUG_FLAGS) {
            return self.slub_alloc_debug(c, gfp, nid);
        }
        let s = imp(c);
        let cpu = &s.cpu[self.this_cpu()];
        let obj = cpu.freelist.load(Relaxed);
        if obj != 0 && (nid == usize::MAX || self.slab_nid(cpu.slab.load(Relaxed)) == nid) {
            let next = self.get_freepointer(c, VirtAddr(obj));
            cpu.freelist.store(next, Relaxed);
            return Some(VirtAddr(obj));
        }
        self.slub_alloc_slow(c, cpu, gfp, nid)
    }

    fn slab_nid(&self, slab: u64) -> usize {
        if slab == NIL {
            usize::MAX
        } else {
            self.memmap.page(Pfn(slab)).nid()
        }
    }

    /// The slow path (`___slab_alloc`): refill from the cpu slab's remote
    /// frees, the cpu partial chain, the node partial lists, or a new slab.
    #[cold]
    #[inline(never)]
    fn slub_alloc_slow(&self, c: &KmemCache, cpu: &SlubCpu, gfp: Gfp, nid: usize) -> Option<VirtAddr> {
        let node_ok = |slab: u64| nid == usize::MAX || self.slab_nid(slab) == nid;
        let load = |cpu: &SlubCpu, fl: u64| {
            let next = self.get_freepointer(c, VirtAddr(fl));
            cpu.freelist.store(next, Relaxed);
            cpu.tid.store(cpu.tid.load(Relaxed).wrapping_add(1), Relaxed);
            Some(VirtAddr(fl))
        };
        let slab = cpu.slab.load(Relaxed);
        if slab != NIL {
            if !node_ok(slab) {
                self.flush_cpu_slab_only(c, cpu);
            } else {
                let fl = self.get_freelist(Pfn(slab));
                if fl != 0 {
                    return load(cpu, fl);
                }
                // Full: it leaves the cpu, unfrozen, on no list.
                cpu.slab.store(NIL, Relaxed);
                cpu.freelist.store(0, Relaxed);
            }
        }
        // The cpu partial chain.
        loop {
            let p = cpu.partial.load(Relaxed);
            if p == NIL {
                break;
            }
            let page = self.memmap.page(Pfn(p));
            cpu.partial.store(page.lru_next.load(Relaxed), Relaxed);
            cpu.partial_slabs.store(cpu.partial_slabs.load(Relaxed).saturating_sub(1), Relaxed);
            page.lru_next.store(NIL, Relaxed);
            if node_ok(p) {
                let fl = self.get_freelist(Pfn(p));
                if fl != 0 {
                    cpu.slab.store(p, Relaxed);
                    return load(cpu, fl);
                }
            } else {
                self.put_partials_one(c, Pfn(p));
            }
        }
        // The node partial lists: the requested or local node, then others.
        let local = if nid == usize::MAX { self.numa_node_id() } else { nid };
        if let Some(slab) = self.get_partial(c, cpu, local, nid != usize::MAX) {
            let fl = self.get_freelist(slab);
            if fl != 0 {
                cpu.slab.store(slab.0, Relaxed);
                return load(cpu, fl);
            }
        }
        let slab = self.new_slab(c, gfp, nid)?;
        let fl = self.get_freelist(slab);
        cpu.slab.store(slab.0, Relaxed);
        load(cpu, fl)
    }

    /// Takes partial slabs from a node (`get_partial_node`), then from the
    /// others by distance unless the node was required (`get_any_partial`):
    /// the first becomes the cpu slab, more fill the cpu partial chain up
    /// to half its limit.
    fn get_partial(&self, c: &KmemCache, cpu: &SlubCpu, nid: usize, exact: bool) -> Option<Pfn> {
        let s = imp(c);
        // The requested node, then (unless it was required) the others in
        // its zonelist's order: nearest first, without allocating.
        let zonelist = &self.nodes[nid].zonelists[0];
        let others = zonelist
            .iter()
            .map(|z| z.nid as usize)
            .enumerate()
            .filter(|&(i, n)| n != nid && (i == 0 || zonelist[i - 1].nid as usize != n))
            .map(|(_, n)| n)
            .filter(move |_| !exact);
        for n in core::iter::once(nid).chain(others) {
            let mut lists = s.node[n].list_lock.lock();
            let mut first = None;
            let mut taken = 0;
            while let Some(slab) = lists.partial.first() {
                self.remove_partial(&mut lists, slab);
                if first.is_none() {
                    first = Some(slab);
                    if s.cpu_partial_slabs == 0 {
                        break;
                    }
                } else {
                    self.push_cpu_partial(c, cpu, slab);
                    taken += 1;
                    if taken > s.cpu_partial_slabs / 2 {
                        break;
                    }
                }
            }
            if first.is_some() {
                return first;
            }
        }
        None
    }

    /// Adds a slab to this CPU's partial chain; when the chain is full it
    /// is first flushed to the node lists (`put_cpu_partial`).
    fn push_cpu_partial(&self, c: &KmemCache, cpu: &SlubCpu, slab: Pfn) {
        let s = imp(c);
        let mut head = cpu.partial.load(Relaxed);
        if head != NIL && cpu.partial_slabs.load(Relaxed) >= s.cpu_partial_slabs {
            cpu.partial.store(NIL, Relaxed);
            cpu.partial_slabs.store(0, Relaxed);
            self.put_partials_chain(c, head);
            head = NIL;
        }
        self.memmap.page(slab).lru_next.store(head, Relaxed);
        cpu.partial.store(slab.0, Relaxed);
        cpu.partial_slabs.fetch_add(1, Relaxed);
    }

    /// Moves a chain of cpu partial slabs to their node lists, discarding
    /// empty ones beyond `min_partial` (`__put_partials`).
    fn put_partials_chain(&self, c: &KmemCache, mut p: u64) {
        while p != NIL {
            let next = self.memmap.page(Pfn(p)).lru_next.load(Relaxed);
            self.memmap.page(Pfn(p)).lru_next.store(NIL, Relaxed);
            self.put_partials_one(c, Pfn(p));
            p = next;
        }
    }

    fn put_partials_one(&self, c: &KmemCache, slab: Pfn) {
        let s = imp(c);
        let node = self.memmap.page(slab).nid();
        let discard = {
            let mut lists = s.node[node].list_lock.lock();
            let cnt = self.slab_counters(slab);
            if cnt.inuse == 0 && lists.nr_partial >= s.min_partial {
                true
            } else {
                self.add_partial(&mut lists, slab, true);
                false
            }
        };
        if discard {
            self.discard_slab(c, slab);
        }
    }

    /// Gives the cpu slab back with the cpu freelist spliced onto it
    /// (`deactivate_slab`).
    fn flush_cpu_slab_only(&self, c: &KmemCache, cpu: &SlubCpu) {
        let slab = cpu.slab.swap(NIL, Relaxed);
        let mut fl = cpu.freelist.swap(0, Relaxed);
        cpu.tid.store(cpu.tid.load(Relaxed).wrapping_add(1), Relaxed);
        if slab == NIL {
            return;
        }
        let slab = Pfn(slab);
        let s = imp(c);
        let page = self.memmap.page(slab);
        let (cnt, has_free) = {
            let _l = SlabLock::lock(page);
            let mut cnt = self.slab_counters(slab);
            while fl != 0 {
                let next = self.get_freepointer(c, VirtAddr(fl));
                self.set_freepointer(c, VirtAddr(fl), page.index.load(Relaxed));
                page.index.store(fl, Relaxed);
                cnt.inuse -= 1;
                fl = next;
            }
            cnt.frozen = false;
            self.set_counters(slab, cnt);
            // Decided under the lock: once it drops, a remote free may see
            // the slab full-and-unfrozen and put it on a list itself.
            (cnt, page.index.load(Relaxed) != 0)
        };
        let node = page.nid();
        let mut lists = s.node[node].list_lock.lock();
        if cnt.inuse == 0 && lists.nr_partial >= s.min_partial {
            drop(lists);
            self.discard_slab(c, slab);
        } else if has_free {
            self.add_partial(&mut lists, slab, false);
        }
    }

    /// Flushes one CPU's cpu slab and partial chain (`flush_cpu_slab`).
    pub fn slub_flush_cpu(&self, c: &KmemCache, cpu: usize) {
        let s = imp(c);
        let cs = &s.cpu[cpu];
        self.flush_cpu_slab_only(c, cs);
        let chain = cs.partial.swap(NIL, Relaxed);
        cs.partial_slabs.store(0, Relaxed);
        self.put_partials_chain(c, chain);
    }

    /// The SLUB free path (`do_slab_free`).
    #[inline]
    pub(crate) fn slub_free(&self, c: &KmemCache, obj: VirtAddr, _caller_checks: bool) {
        let Some(slab) = self.obj_to_slab(c, obj) else {
            self.log
                .err(format_args!("kmem_cache_free({}, {:#x}): object is not in a slab of this cache", c.name, obj.0));
            return;
        };
        self.slub_free_in(c, slab, obj);
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
        self.slub_free_in(c, head, obj);
    }

    #[inline]
    fn slub_free_in(&self, c: &KmemCache, slab: Pfn, obj: VirtAddr) {
        if c.flags.intersects(SlabFlags::DEBUG_FLAGS) {
            self.slub_free_debug(c, slab, obj);
            return;
        }
        let s = imp(c);
        let cpu = &s.cpu[self.this_cpu()];
        if cpu.slab.load(Relaxed) == slab.0 {
            self.set_freepointer(c, obj, cpu.freelist.load(Relaxed));
            cpu.freelist.store(obj.0, Relaxed);
            return;
        }
        self.slab_free_slow(c, cpu, slab, obj);
    }

    /// Frees to a slab that is not this CPU's (`__slab_free`).
    #[cold]
    #[inline(never)]
    fn slab_free_slow(&self, c: &KmemCache, cpu: &SlubCpu, slab: Pfn, obj: VirtAddr) {
        let s = imp(c);
        let page = self.memmap.page(slab);
        let (prior, cnt) = {
            let _l = SlabLock::lock(page);
            let prior = page.index.load(Relaxed);
            self.set_freepointer(c, obj, prior);
            page.index.store(obj.0, Relaxed);
            let mut cnt = self.slab_counters(slab);
            cnt.inuse = cnt.inuse.saturating_sub(1);
            self.set_counters(slab, cnt);
            (prior, cnt)
        };
        if cnt.frozen {
            return;
        }
        if prior != 0 && cnt.inuse > 0 {
            // It was partial and stays partial: no list moves, no node lock
            // (Linux's `if (likely(!n))` case).
            return;
        }
        if prior == 0 && s.cpu_partial_slabs > 0 {
            // It was full and on no list: keep it close, on this CPU's chain.
            self.push_cpu_partial(c, cpu, slab);
            return;
        }
        let node = page.nid();
        let mut lists = s.node[node].list_lock.lock();
        let on_node_partial = page.test(NODE_PARTIAL);
        if prior != 0 && !on_node_partial {
            // On some CPU's partial chain: that CPU owns its list placement.
            return;
        }
        if cnt.inuse == 0 && lists.nr_partial >= s.min_partial {
            if prior != 0 {
                self.remove_partial(&mut lists, slab);
            }
            drop(lists);
            self.discard_slab(c, slab);
            return;
        }
        if prior == 0 {
            self.add_partial(&mut lists, slab, true);
        }
    }

    /// Empties the cpu slabs and frees empty partial slabs (`__kmem_cache_shrink`).
    pub(crate) fn slub_shrink(&self, c: &KmemCache) {
        for cpu in 0..self.nr_cpus {
            self.slub_flush_cpu(c, cpu);
        }
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
    /// slabs count as free; cpu slabs count as fully in use.
    pub(crate) fn slub_info(&self, c: &KmemCache) -> SlabInfo {
        let s = imp(c);
        let mut info = SlabInfo::default();
        for n in s.node.iter() {
            info.num_slabs += n.nr_slabs.load(Relaxed).max(0) as u64;
            info.num_objs += n.total_objects.load(Relaxed).max(0) as u64;
            let lists = n.list_lock.lock();
            let free: u64 = lists
                .partial
                .iter(&self.memmap)
                .map(|p| {
                    let cnt = self.slab_counters(p);
                    u64::from(cnt.objects - cnt.inuse.min(cnt.objects))
                })
                .sum();
            info.active_objs += free;
        }
        info.active_objs = info.num_objs - info.active_objs.min(info.num_objs);
        info.active_slabs = info.num_slabs;
        info
    }

    /// Objects allocated right now, exactly (for destroy and tests): slots
    /// minus free objects on slab freelists and cpu freelists.
    pub fn slub_objects_in_use(&self, c: &KmemCache) -> u64 {
        let s = imp(c);
        let total: i64 = s.node.iter().map(|n| n.total_objects.load(Relaxed)).sum();
        let mut free = 0u64;
        let mut seen = Vec::new();
        for cpu in s.cpu.iter() {
            let mut f = cpu.freelist.load(Relaxed);
            while f != 0 {
                free += 1;
                f = self.get_freepointer(c, VirtAddr(f));
            }
            let mut p = cpu.slab.load(Relaxed);
            if p != NIL {
                seen.push(p);
            }
            p = cpu.partial.load(Relaxed);
            while p != NIL {
                seen.push(p);
                p = self.memmap.page(Pfn(p)).lru_next.load(Relaxed);
            }
        }
        for n in s.node.iter() {
            let lists = n.list_lock.lock();
            seen.extend(lists.partial.iter(&self.memmap).map(|p| p.0));
        }
        for p in seen {
            let cnt = self.slab_counters(Pfn(p));
            free += u64::from(cnt.objects - cnt.inuse.min(cnt.objects));
        }
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
            "cpu_partial" => format!("{}\n", s.cpu_partial),
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
            "cpu_slabs" => {
                let mut v = alloc::vec![0u64; self.nodes.len()];
                for cpu in s.cpu.iter() {
                    let slab = cpu.slab.load(Relaxed);
                    if slab != NIL {
                        v[self.slab_nid(slab)] += 1;
                    }
                    let mut p = cpu.partial.load(Relaxed);
                    while p != NIL {
                        v[self.slab_nid(p)] += 1;
                        p = self.memmap.page(Pfn(p)).lru_next.load(Relaxed);
                    }
                }
                per_node(v)
            }
            _ => return None,
        })
    }
}
