//! SLAB (Linux's `mm/slab.c`, removed in 6.8): objects cached per CPU in
//! LIFO arrays, slabs kept per node on full / partial / free lists, colouring.
//!
//! - **Array caches** (`struct array_cache`): alloc pops the most recently
//!   freed object, free pushes. An empty array is refilled with up to
//!   `batchcount` objects (`cache_alloc_refill`) from the node's shared
//!   array, else partial slabs, then free slabs, else one new slab; a full
//!   one gives its oldest `batchcount` to the shared array or back to their
//!   slabs (`cache_flusharray`).
//! - **Per node** (`struct kmem_cache_node`): the three lists, `free_objects`
//!   (free objects in listed slabs) and `free_limit` (above it free slabs go
//!   back to the page allocator), the shared array, and one alien array per
//!   other node collecting frees of that node's objects made here.
//! - **Freelist**: an array of 2-byte object indices (`freelist_idx_t`);
//!   entries `[active, num)` name the free objects; alloc takes entry
//!   `active`, free stores the index at `active - 1`. On the slab after the
//!   colour offset, or off-slab in a kmalloc object for objects of 128 bytes
//!   and more when the leftover space cannot hold it (`CFLGS_OFF_SLAB`).
//! - **Colouring**: the unused bytes of a slab make `colour` steps of
//!   `colour_off` (a cache line); successive slabs of a node shift their
//!   objects one step further (`colour_next`).
//! - **Reaping** ([`Kernel::slab_cache_reap`], `cache_reap`): idle arrays give
//!   back a fifth of their limit; every `REAPTIMEOUT_NODE` a node trims its
//!   shared array and frees a fifth of `free_limit` worth of free slabs.
//! - **Debug** (`SLAB_RED_ZONE`, `SLAB_POISON`, `SLAB_STORE_USER`, as
//!   `CONFIG_DEBUG_SLAB`): a red-zone word on each side of an object
//!   (`RED_INACTIVE` free, `RED_ACTIVE` allocated), poisoned free objects, a
//!   last-user word, checked at alloc and free (submodule `debug`); reports
//!   name the cache and the object (``slab error in f(): cache `name': what``).
//!
//! Where things live: object bytes, red zones and freelists are in simulated
//! RAM; arrays and list heads are Rust values of the cache. A slab's head
//! `Page`: `PG_slab`, `mapping` = cache id, `index` = freelist address,
//! `private` = object 0's offset (`s_mem`) | `active` << 32 | list << 56,
//! `lru_*` = list links.
//!
//! Where we differ: arrays are Rust memory with a `spin::Mutex` each (taken
//! by its CPU, or by drains that Linux runs on that CPU through IPIs), not
//! kmalloc'ed and guarded by disabled interrupts. The on-slab freelist sits
//! at the slab start as up to 4.5 (no `OBJFREELIST_SLAB`, no freelist
//! randomization). Debug caches keep a status byte per object after the
//! freelist (the `CONFIG_DEBUG_SLAB_LEAK` layout) to catch double frees into
//! a slab and freelist entries naming a live object; such an entry, or one
//! out of range, quarantines the slab: never allocated from again, freed
//! when its last object returns. Bad frees are reported and ignored, nothing
//! `BUG()`s; caches without debugging do not detect double frees (as Linux).
//! `TYPESAFE_BY_RCU` slabs are freed at once (no RCU yet); kmalloc's ladder
//! is the shared one (8- and 16-byte classes included).
//!
//! Locking, in order: a per-cpu or alien array lock, then a node's
//! `list_lock` (which also guards the shared array). Slabs are made and
//! destroyed with no lock of the cache held (page allocator, and kmalloc for
//! off-slab freelists). `slab_mutex` serializes reaping with create, destroy
//! and shrink.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::kmalloc::{kmalloc_index, KmallocType, KMALLOC_MAX_CACHE_SIZE};
use super::{calculate_alignment, CacheArgs, CacheId, CacheImpl, KmemCache, SlabError, SlabFlags, SlabInfo};
use super::{CACHE_LINE, WORD};
use crate::arch::x86_64::{phys_to_virt, virt_to_phys};
use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::page::{pg, Page};
use crate::page_alloc::PageList;
use crate::types::{Pfn, VirtAddr, MAX_PAGE_ORDER, PAGE_SIZE};
use crate::vmstat::NodeStat;

mod debug;

/// Red-zone word of a free object (`RED_INACTIVE`).
pub const RED_INACTIVE: u64 = 0x09F9_1102_9D74_E35B;
/// Red-zone word of an allocated object (`RED_ACTIVE`).
pub const RED_ACTIVE: u64 = 0xD841_56C5_6356_88C0;
/// Largest slab order chosen unless no object fits in a smaller one
/// (`SLAB_MAX_ORDER_HI`, Linux's value on machines above 32 MiB).
pub const SLAB_MAX_ORDER: u32 = 1;
/// Most objects a slab may hold (`SLAB_OBJ_MAX_NUM` with 2-byte indices).
pub const SLAB_OBJ_MAX_NUM: u32 = u16::MAX as u32;
/// Objects of this size and more may keep their freelist off the slab (`OFF_SLAB_MIN_SIZE`).
pub const OFF_SLAB_MIN_SIZE: u32 = (PAGE_SIZE >> 5) as u32;
/// Period of the per-cpu reap work, for the kthread that calls
/// [`Kernel::slab_cache_reap`] (`REAPTIMEOUT_AC`: 2 s).
pub const REAPTIMEOUT_AC_NS: u64 = 2_000_000_000;
/// Period of a node's reap of its shared array and free slabs (`REAPTIMEOUT_NODE`: 4 s).
pub const REAPTIMEOUT_NODE_NS: u64 = 4_000_000_000;
/// Refill size of an array not used since the last reap (`BATCHREFILL_LIMIT`).
const BATCHREFILL_LIMIT: u32 = 16;
/// Bytes of a freelist entry (`sizeof(freelist_idx_t)`).
const IDX_SIZE: u32 = 2;
const OBJECT_FREE: u8 = 0;
const OBJECT_ACTIVE: u8 = 1;
const ACTIVE_SHIFT: u32 = 32;
const ACTIVE_MASK: u64 = 0xff_ffff;
const LIST_SHIFT: u32 = 56;
const L_NONE: u64 = 0;
const L_PARTIAL: u64 = 1;
const L_FULL: u64 = 2;
const L_FREE: u64 = 3;
/// On the quarantine list (or, while being destroyed, was).
const L_QUAR: u64 = 4;
/// Caller GFP bits slab pages do not take: zone and mobility (the cache
/// decides), zeroing, compound, accounting.
const GFP_NOT_FOR_SLAB: Gfp = Gfp(0x1f | Gfp::ZERO.0 | Gfp::COMP.0 | Gfp::ACCOUNT.0);

/// A LIFO stack of free objects (`struct array_cache`); `entry.len()` is `avail`.
pub struct ArrayCache {
    /// Object addresses, the most recently freed last.
    pub entry: Vec<u64>,
    /// Most objects the array holds.
    pub limit: u32,
    /// Objects moved per refill or flush.
    pub batchcount: u32,
    /// Used since the last reap.
    pub touched: bool,
}

impl ArrayCache {
    fn new(limit: u32, batchcount: u32) -> ArrayCache {
        ArrayCache { entry: Vec::with_capacity(limit as usize), limit, batchcount, touched: false }
    }

    /// Moves up to `max` of `from`'s newest objects here, as room allows (`transfer_objects`).
    fn transfer_from(&mut self, from: &mut ArrayCache, max: u32) -> usize {
        let room = (self.limit as usize).saturating_sub(self.entry.len());
        let nr = from.entry.len().min(max as usize).min(room);
        let start = from.entry.len() - nr;
        self.entry.extend(from.entry.drain(start..));
        nr
    }
}

/// What a node's `list_lock` guards.
#[derive(Default)]
pub struct NodeLists {
    /// Slabs with free and allocated objects.
    pub slabs_partial: PageList,
    /// Slabs with no free object.
    pub slabs_full: PageList,
    /// Slabs with no allocated object.
    pub slabs_free: PageList,
    /// Slabs with a corrupted freelist, waiting for their objects to come back.
    pub quarantine: PageList,
    /// Slabs of the cache on this node, quarantined ones included.
    pub total_slabs: u64,
    /// Slabs on `slabs_free`.
    pub free_slabs: u64,
    /// Free objects in slabs on the partial and free lists.
    pub free_objects: u64,
    /// `free_objects` above which free slabs are released at once.
    pub free_limit: u64,
    /// A free slab was taken since the last reap.
    pub free_touched: bool,
    /// The node's shared array, if the cache has one.
    pub shared: Option<ArrayCache>,
}

/// One node's part of a cache (`struct kmem_cache_node`).
pub struct SlabNode {
    /// `list_lock` and what it guards.
    pub list_lock: spin::Mutex<NodeLists>,
    /// Colour of the next slab made on this node.
    pub colour_next: AtomicU32,
    /// Virtual time of the node's next reap (ns).
    pub next_reap: AtomicU64,
    /// Alien arrays, indexed by the node the objects belong to; empty on
    /// single-node machines (`use_alien_caches` off).
    pub alien: Box<[spin::Mutex<ArrayCache>]>,
}

/// One CPU's part of a cache.
#[repr(align(64))]
pub struct SlabCpu {
    /// The array cache.
    pub ac: spin::Mutex<ArrayCache>,
    /// Node whose alien array this CPU drains at its next reap (`slab_reap_node`).
    pub reap_node: AtomicUsize,
}

/// SLAB's part of a cache (the SLAB fields of `struct kmem_cache`).
pub struct SlabCache {
    /// Per CPU.
    pub cpu: Box<[SlabCpu]>,
    /// Per node.
    pub node: Box<[SlabNode]>,
    /// Objects per slab.
    pub num: u32,
    /// Number of colour offsets.
    pub colour: u32,
    /// Bytes of one colour step.
    pub colour_off: u32,
    /// Offset of the object in its slot: the left red-zone word (`obj_offset`).
    pub obj_offset: u32,
    /// Bytes of a slab's freelist array (status bytes included).
    pub freelist_size: u32,
    /// The kmalloc cache off-slab freelists come from; `None` when on-slab.
    pub freelist_cache: Option<CacheId>,
    /// Tunable: per-cpu array size.
    pub limit: u32,
    /// Tunable: objects moved per refill or flush.
    pub batchcount: u32,
    /// Tunable: shared array size in batches.
    pub shared: u32,
    /// Debugging on: status bytes, red zones, poison or user words.
    pub debug: bool,
}

/// Objects per slab and leftover bytes for a slab of `order` (`cache_estimate`),
/// with `idx` freelist bytes per object.
fn cache_estimate(order: u32, size: u32, align: u32, idx: u32, off_slab: bool) -> (u32, u32) {
    let slab = PAGE_SIZE << order;
    let (size, idx, align) = (u64::from(size), u64::from(idx), u64::from(align));
    if off_slab {
        let num = slab / size;
        return (num as u32, (slab - num * size) as u32);
    }
    let mgmt = |n: u64| (n * idx).next_multiple_of(align);
    let mut num = slab / (size + idx);
    while num > 0 && num * size + mgmt(num) > slab {
        num -= 1;
    }
    (num as u32, (slab - num * size - mgmt(num)) as u32)
}

/// The slab order (`calculate_slab_order`): the first order that holds an
/// object, then larger ones while more than an eighth is wasted, up to
/// [`SLAB_MAX_ORDER`]; reclaimable caches stop at the first. Returns
/// `(order, objects, leftover bytes)`.
pub fn calculate_slab_order(size: u32, align: u32, idx: u32, off_slab: bool, reclaim: bool) -> Option<(u32, u32, u32)> {
    let mut best = None;
    for order in 0..=MAX_PAGE_ORDER {
        let (num, left) = cache_estimate(order, size, align, idx, off_slab);
        if num == 0 {
            continue;
        }
        // More objects than the index type can name, or an off-slab
        // freelist larger than an object: stop growing.
        if num > SLAB_OBJ_MAX_NUM || (off_slab && num > size / idx) {
            break;
        }
        best = Some((order, num, left));
        if reclaim || order >= SLAB_MAX_ORDER || u64::from(left) * 8 <= PAGE_SIZE << order {
            break;
        }
    }
    best
}

/// Builds a SLAB cache (`__kmem_cache_create`, then `enable_cpucache`).
pub fn new_cache(k: &Kernel, id: CacheId, args: &CacheArgs<'_>) -> Result<KmemCache, SlabError> {
    let mut flags = args.flags;
    let align = calculate_alignment(flags, args.align, args.size);
    if align > WORD {
        // Red zones need word-aligned objects right after them.
        flags = SlabFlags(flags.0 & !(SlabFlags::RED_ZONE.0 | SlabFlags::STORE_USER.0));
    }
    if flags.contains(SlabFlags::POISON) && !flags.contains(SlabFlags::TYPESAFE_BY_RCU) {
        flags = flags | SlabFlags::OBJECT_POISON;
    }
    let mut size = args.size.next_multiple_of(WORD);
    let mut obj_offset = 0;
    if flags.contains(SlabFlags::RED_ZONE) {
        obj_offset = WORD;
        size += 2 * WORD;
    }
    if flags.contains(SlabFlags::STORE_USER) {
        size += WORD;
    }
    let size = size.next_multiple_of(align);
    let debug = flags.intersects(SlabFlags::DEBUG_FLAGS);
    let idx = IDX_SIZE + u32::from(debug);
    let reclaim = flags.contains(SlabFlags::RECLAIM_ACCOUNT);
    let too_large = SlabError::Invalid("object too large");
    // Large objects try an off-slab freelist; it moves back on the slab when
    // the leftover space holds it (at the cost of colours), and stays on it
    // while the kmalloc cache it would come from does not exist (early boot).
    let try_off = size >= OFF_SLAB_MIN_SIZE && !flags.contains(SlabFlags::NOLEAKTRACE);
    let (mut order, mut num, mut left) =
        calculate_slab_order(size, align, idx, try_off, reclaim).ok_or(too_large.clone())?;
    let mut freelist_size = (num * idx).next_multiple_of(align);
    let mut freelist_cache = None;
    if try_off {
        if left >= freelist_size {
            left -= freelist_size;
        } else {
            freelist_size = num * idx;
            freelist_cache = (u64::from(freelist_size) <= KMALLOC_MAX_CACHE_SIZE)
                .then(|| k.slab.kmalloc.get(KmallocType::Normal, kmalloc_index(u64::from(freelist_size))))
                .flatten();
            if freelist_cache.is_none() {
                (order, num, left) = calculate_slab_order(size, align, idx, false, reclaim).ok_or(too_large)?;
                freelist_size = (num * idx).next_multiple_of(align);
            }
        }
    }
    let colour_off = CACHE_LINE.max(align);
    // enable_cpucache's rules.
    let mut limit: u32 = match size {
        s if s > 131072 => 1,
        s if u64::from(s) > PAGE_SIZE => 8,
        s if s > 1024 => 24,
        s if s > 256 => 54,
        _ => 120,
    };
    if debug {
        limit = limit.min(32);
    }
    let shared = if u64::from(size) <= PAGE_SIZE && k.nr_cpus > 1 { 8 } else { 0 };
    let batchcount = limit.div_ceil(2);
    let nr_nodes = k.nodes.len();
    let now = k.hal.now_ns();
    let node = (0..nr_nodes)
        .map(|nid| {
            let cpus = k.cpu_to_node.iter().filter(|&&n| n == nid).count() as u64;
            let lists = NodeLists {
                free_limit: (1 + cpus) * u64::from(batchcount) + u64::from(num),
                shared: (shared > 0).then(|| ArrayCache::new(shared * batchcount, 0xbaad_f00d)),
                ..Default::default()
            };
            let alien_limit = if limit > 1 { 12 } else { limit };
            let alien: Box<[spin::Mutex<ArrayCache>]> = if nr_nodes > 1 {
                (0..nr_nodes)
                    .map(|r| spin::Mutex::new(ArrayCache::new(if r == nid { 0 } else { alien_limit }, 0xbaad_f00d)))
                    .collect()
            } else {
                Box::new([])
            };
            SlabNode {
                list_lock: spin::Mutex::new(lists),
                colour_next: AtomicU32::new(0),
                next_reap: AtomicU64::new(
                    now + REAPTIMEOUT_NODE_NS + u64::from(id.0) * 257_000_000 % REAPTIMEOUT_NODE_NS,
                ),
                alien,
            }
        })
        .collect();
    let cpu = (0..k.nr_cpus)
        .map(|c| SlabCpu {
            ac: spin::Mutex::new(ArrayCache::new(limit, batchcount)),
            reap_node: AtomicUsize::new((k.cpu_to_node.get(c).copied().unwrap_or(0) + 1) % nr_nodes.max(1)),
        })
        .collect();
    let mut allocflags = if order > 0 { Gfp::COMP } else { Gfp::empty() };
    let zones = [(SlabFlags::CACHE_DMA, Gfp::DMA), (SlabFlags::CACHE_DMA32, Gfp::DMA32)];
    for (f, g) in zones.into_iter().chain([(SlabFlags::RECLAIM_ACCOUNT, Gfp::RECLAIMABLE)]) {
        if flags.contains(f) {
            allocflags |= g;
        }
    }
    Ok(KmemCache {
        id,
        name: args.name.into(),
        object_size: args.size,
        size,
        align,
        inuse: args.size,
        offset: 0,
        red_left_pad: obj_offset,
        flags,
        ctor: args.ctor,
        order,
        objects_per_slab: num,
        reciprocal_size: (1u64 << 32).div_ceil(u64::from(size)),
        allocflags,
        refcount: AtomicU32::new(1),
        alive: AtomicBool::new(true),
        aliases: spin::Mutex::new(Vec::new()),
        descriptor: spin::Mutex::new(Vec::new()),
        imp: CacheImpl::Slab(SlabCache {
            cpu,
            node,
            num,
            colour: left / colour_off,
            colour_off,
            obj_offset,
            freelist_size,
            freelist_cache,
            limit,
            batchcount,
            shared,
            debug,
        }),
    })
}

/// `gfp_exact_node`: this node only, no direct reclaim, no warning.
fn gfp_exact_node(gfp: Gfp) -> Gfp {
    (gfp | Gfp::THISNODE | Gfp::NOWARN) & !Gfp::DIRECT_RECLAIM
}

/// One operation's view of a cache: the kernel, the cache and its SLAB state.
struct Cx<'a> {
    k: &'a Kernel,
    c: &'a KmemCache,
    s: &'a SlabCache,
}

/// Slabs to give back once no lock is held (`slabs_destroy`'s list).
type Destroy = Vec<Pfn>;

impl<'a> Cx<'a> {
    fn new(k: &'a Kernel, c: &'a KmemCache) -> Option<Cx<'a>> {
        match &c.imp {
            CacheImpl::Slab(s) => Some(Cx { k, c, s }),
            _ => None,
        }
    }

    fn page(&self, slab: Pfn) -> &'a Page {
        self.k.memmap.page(slab)
    }

    fn base(&self, slab: Pfn) -> u64 {
        phys_to_virt(slab.phys()).0
    }

    fn s_off(&self, slab: Pfn) -> u64 {
        self.page(slab).private.load(Relaxed) & 0xffff_ffff
    }

    fn active(&self, slab: Pfn) -> u32 {
        ((self.page(slab).private.load(Relaxed) >> ACTIVE_SHIFT) & ACTIVE_MASK) as u32
    }

    fn set_active(&self, slab: Pfn, a: u32) {
        let p = &self.page(slab).private;
        let v = p.load(Relaxed) & !(ACTIVE_MASK << ACTIVE_SHIFT);
        p.store(v | (u64::from(a) & ACTIVE_MASK) << ACTIVE_SHIFT, Relaxed);
    }

    fn list_of(&self, slab: Pfn) -> u64 {
        self.page(slab).private.load(Relaxed) >> LIST_SHIFT
    }

    fn set_list(&self, slab: Pfn, l: u64) {
        let p = &self.page(slab).private;
        p.store(p.load(Relaxed) & !(0xff << LIST_SHIFT) | l << LIST_SHIFT, Relaxed);
    }

    /// The address of object `idx` of a slab (`index_to_obj` plus `obj_offset`).
    fn obj_addr(&self, slab: Pfn, idx: u32) -> u64 {
        self.base(slab) + self.s_off(slab) + u64::from(idx) * u64::from(self.c.size) + u64::from(self.s.obj_offset)
    }

    /// The slab and index of an object of this cache, if `obj` is one
    /// (`virt_to_head_page` and `obj_to_index`, checked).
    fn obj_index(&self, obj: u64) -> Option<(Pfn, u32)> {
        let k = self.k;
        let pa = virt_to_phys(VirtAddr(obj))?;
        if !k.memmap.pfn_valid(pa.pfn()) {
            return None;
        }
        let head = k.page_folio(pa.pfn()).pfn;
        let hp = k.memmap.page(head);
        if !hp.test(pg::SLAB) || hp.mapping.load(Relaxed) != u64::from(self.c.id.0) {
            return None;
        }
        let off = (pa.0 - head.phys().0).checked_sub(self.s_off(head) + u64::from(self.s.obj_offset))?;
        let size = u64::from(self.c.size);
        let idx = off / size;
        (idx * size == off && idx < u64::from(self.s.num)).then_some((head, idx as u32))
    }

    fn freelist(&self, slab: Pfn) -> u64 {
        self.page(slab).index.load(Relaxed)
    }

    fn get_idx(&self, slab: Pfn, pos: u32) -> u32 {
        let mut b = [0u8; 2];
        self.k.kread(VirtAddr(self.freelist(slab) + u64::from(pos) * 2), &mut b);
        u32::from(u16::from_le_bytes(b))
    }

    fn set_idx(&self, slab: Pfn, pos: u32, idx: u32) {
        self.k.kwrite(VirtAddr(self.freelist(slab) + u64::from(pos) * 2), &(idx as u16).to_le_bytes());
    }

    fn status_addr(&self, slab: Pfn, idx: u32) -> VirtAddr {
        VirtAddr(self.freelist(slab) + u64::from(self.s.num) * 2 + u64::from(idx))
    }

    fn status(&self, slab: Pfn, idx: u32) -> u8 {
        let mut b = [0u8];
        self.k.kread(self.status_addr(slab, idx), &mut b);
        b[0]
    }

    fn set_status(&self, slab: Pfn, idx: u32, v: u8) {
        self.k.kwrite(self.status_addr(slab, idx), &[v]);
    }

    /// Logs a report in `slab_error`'s shape.
    fn slab_error(&self, func: &str, what: core::fmt::Arguments<'_>) {
        self.k.log.err(format_args!("slab error in {func}(): cache `{}': {what}", self.c.name));
    }

    fn list_mut(l: &mut NodeLists, which: u64) -> Option<&mut PageList> {
        match which {
            L_PARTIAL => Some(&mut l.slabs_partial),
            L_FULL => Some(&mut l.slabs_full),
            L_FREE => Some(&mut l.slabs_free),
            L_QUAR => Some(&mut l.quarantine),
            _ => None,
        }
    }

    fn list_del(&self, l: &mut NodeLists, slab: Pfn) {
        if let Some(list) = Self::list_mut(l, self.list_of(slab)) {
            list.remove(&self.k.memmap, slab);
        }
        self.set_list(slab, L_NONE);
    }

    fn list_add(&self, l: &mut NodeLists, slab: Pfn, which: u64, tail: bool) {
        if let Some(list) = Self::list_mut(l, which) {
            if tail {
                list.push_back(&self.k.memmap, slab);
            } else {
                list.push_front(&self.k.memmap, slab);
            }
        }
        self.set_list(slab, which);
    }

    /// Takes the next free object of a slab (`slab_get_obj`). A corrupt
    /// freelist entry is reported and yields `None`; the caller quarantines.
    fn slab_get_obj(&self, slab: Pfn) -> Option<u64> {
        let active = self.active(slab);
        if active >= self.s.num {
            return None;
        }
        let idx = self.get_idx(slab, active);
        let bad = if idx >= self.s.num {
            Some("is out of range")
        } else if self.s.debug && self.status(slab, idx) != OBJECT_FREE {
            Some("names an allocated object")
        } else {
            None
        };
        if let Some(why) = bad {
            let base = self.base(slab);
            self.slab_error(
                "slab_get_obj",
                format_args!(
                    "corrupted freelist: entry {active} of slab {base:#x} holds index {idx}, object {:#x}, which {why} ({} objects); slab quarantined",
                    self.obj_addr(slab, idx),
                    self.s.num
                ),
            );
            return None;
        }
        if self.s.debug {
            self.set_status(slab, idx, OBJECT_ACTIVE);
        }
        self.set_active(slab, active + 1);
        Some(self.obj_addr(slab, idx))
    }

    /// Returns an object to its slab (`slab_put_obj`); false when refused.
    fn slab_put_obj(&self, slab: Pfn, idx: u32, obj: u64) -> bool {
        let active = self.active(slab);
        if self.s.debug {
            if self.status(slab, idx) == OBJECT_FREE {
                self.slab_error("slab_put_obj", format_args!("double free detected, object {obj:#x}; ignored"));
                return false;
            }
            self.set_status(slab, idx, OBJECT_FREE);
        }
        if active == 0 {
            self.slab_error(
                "slab_put_obj",
                format_args!("free of {obj:#x} to a slab with no object allocated; ignored"),
            );
            return false;
        }
        if self.list_of(slab) != L_QUAR {
            self.set_idx(slab, active - 1, idx);
        }
        self.set_active(slab, active - 1);
        true
    }

    /// The slab the next object comes from: partial first, then free (`get_first_slab`).
    fn get_first_slab(&self, l: &mut NodeLists) -> Option<Pfn> {
        if let Some(p) = l.slabs_partial.first() {
            return Some(p);
        }
        l.free_touched = true;
        let p = l.slabs_free.first()?;
        l.free_slabs = l.free_slabs.saturating_sub(1);
        Some(p)
    }

    /// Moves up to `batch` objects of a slab into an array (`alloc_block`);
    /// returns the batch left and whether the freelist was found corrupt.
    fn alloc_block(&self, ac: &mut ArrayCache, slab: Pfn, mut batch: u32) -> (u32, bool) {
        while batch > 0 && self.active(slab) < self.s.num {
            match self.slab_get_obj(slab) {
                Some(o) => ac.entry.push(o),
                None => return (batch, true),
            }
            batch -= 1;
        }
        (batch, false)
    }

    /// Puts a slab on the list its state calls for after an allocation
    /// (`fixup_slab_list`), or in quarantine.
    fn fixup_slab_list(&self, l: &mut NodeLists, slab: Pfn, bad: bool, destroy: &mut Destroy) {
        self.list_del(l, slab);
        if bad {
            self.quarantine(l, slab, destroy);
        } else if self.active(slab) == self.s.num {
            self.list_add(l, slab, L_FULL, false);
        } else {
            self.list_add(l, slab, L_PARTIAL, false);
        }
    }

    /// Withdraws a slab (on no list) whose freelist cannot be trusted: its
    /// free objects are written off; it goes when its last object returns.
    fn quarantine(&self, l: &mut NodeLists, slab: Pfn, destroy: &mut Destroy) {
        let active = self.active(slab);
        l.free_objects = l.free_objects.saturating_sub(u64::from(self.s.num - active.min(self.s.num)));
        if active == 0 {
            self.set_list(slab, L_QUAR);
            l.total_slabs = l.total_slabs.saturating_sub(1);
            destroy.push(slab);
        } else {
            self.list_add(l, slab, L_QUAR, true);
        }
    }

    /// Returns objects of one node to their slabs (`free_block`), then
    /// releases free slabs while `free_objects` is above `free_limit`.
    fn free_block(&self, l: &mut NodeLists, objs: &[u64], destroy: &mut Destroy) {
        for &obj in objs {
            let Some((slab, idx)) = self.obj_index(obj) else {
                self.slab_error("free_block", format_args!("{obj:#x} is not an object of this cache; ignored"));
                continue;
            };
            if !self.slab_put_obj(slab, idx, obj) {
                continue;
            }
            if self.list_of(slab) == L_QUAR {
                if self.active(slab) == 0 {
                    l.quarantine.remove(&self.k.memmap, slab);
                    l.total_slabs = l.total_slabs.saturating_sub(1);
                    destroy.push(slab);
                }
                continue;
            }
            l.free_objects += 1;
            self.list_del(l, slab);
            if self.active(slab) == 0 {
                self.list_add(l, slab, L_FREE, false);
                l.free_slabs += 1;
            } else {
                // At the tail: the other objects get the most time to come back.
                self.list_add(l, slab, L_PARTIAL, true);
            }
        }
        while l.free_objects > l.free_limit {
            let Some(slab) = l.slabs_free.last() else { break };
            self.list_del(l, slab);
            l.free_objects = l.free_objects.saturating_sub(u64::from(self.s.num));
            l.free_slabs = l.free_slabs.saturating_sub(1);
            l.total_slabs = l.total_slabs.saturating_sub(1);
            destroy.push(slab);
        }
    }

    fn slabs_destroy(&self, destroy: Destroy) {
        for slab in destroy {
            self.slab_destroy(slab);
        }
    }

    /// Allocates and formats a slab, on no list yet (`cache_grow_begin`).
    fn cache_grow_begin(&self, gfp: Gfp, nid: usize) -> Option<Pfn> {
        let (k, c, s) = (self.k, self.c, self.s);
        let gfp = gfp & !GFP_NOT_FOR_SLAB;
        let pfn = k.alloc_pages_node(nid, gfp | c.allocflags, c.order)?;
        let page = k.memmap.page(pfn);
        let node = page.nid();
        let n = &s.node[node];
        let colour = n.colour_next.load(Relaxed);
        let colour = if colour >= s.colour { 0 } else { colour };
        n.colour_next.store(if colour + 1 >= s.colour { 0 } else { colour + 1 }, Relaxed);
        let offset = u64::from(colour) * u64::from(s.colour_off);
        let base = self.base(pfn);
        let (fl, s_off) = match s.freelist_cache {
            Some(fc) => match k.kmem_cache_alloc_node(fc, gfp & !Gfp::THISNODE, node) {
                Some(v) => (v.0, offset),
                None => {
                    k.free_pages(pfn, c.order);
                    return None;
                }
            },
            None => (base + offset, offset + u64::from(s.freelist_size)),
        };
        page.set(pg::SLAB);
        page.mapping.store(u64::from(c.id.0), Relaxed);
        page.index.store(fl, Relaxed);
        page.private.store(s_off, Relaxed);
        self.cache_init_objs(pfn);
        k.nodes[node].stat.add(self.stat_item() as usize, 1 << c.order);
        Some(pfn)
    }

    fn stat_item(&self) -> NodeStat {
        if self.c.flags.contains(SlabFlags::RECLAIM_ACCOUNT) {
            NodeStat::NrSlabReclaimable
        } else {
            NodeStat::NrSlabUnreclaimable
        }
    }

    /// Writes a new slab's freelist and prepares its objects (`cache_init_objs`).
    fn cache_init_objs(&self, slab: Pfn) {
        let (k, s) = (self.k, self.s);
        let num = s.num as usize;
        let mut fl = alloc::vec![OBJECT_FREE; num * 2 + if s.debug { num } else { 0 }];
        for i in 0..num {
            fl[2 * i..2 * i + 2].copy_from_slice(&(i as u16).to_le_bytes());
        }
        k.kwrite(VirtAddr(self.freelist(slab)), &fl);
        for i in 0..s.num {
            self.init_obj(self.obj_addr(slab, i));
        }
    }

    fn run_ctor(&self, obj: u64) {
        if let Some(ctor) = self.c.ctor {
            let mut buf = alloc::vec![0u8; self.c.object_size as usize];
            self.k.kread(VirtAddr(obj), &mut buf);
            ctor(&mut buf);
            self.k.kwrite(VirtAddr(obj), &buf);
        }
    }

    /// Files a slab made by [`Cx::cache_grow_begin`] on its node (`cache_grow_end`).
    fn cache_grow_end(&self, slab: Pfn, bad: bool) {
        let mut destroy = Destroy::new();
        {
            let mut l = self.s.node[self.page(slab).nid()].list_lock.lock();
            let active = self.active(slab);
            l.total_slabs += 1;
            l.free_objects += u64::from(self.s.num.saturating_sub(active));
            if bad {
                self.quarantine(&mut l, slab, &mut destroy);
            } else if active == 0 {
                self.list_add(&mut l, slab, L_FREE, true);
                l.free_slabs += 1;
            } else {
                self.fixup_slab_list(&mut l, slab, false, &mut destroy);
            }
        }
        self.slabs_destroy(destroy);
    }

    /// Gives a slab, on no list, back to the page allocator (`slab_destroy`).
    fn slab_destroy(&self, slab: Pfn) {
        let (k, c, s) = (self.k, self.c, self.s);
        if s.debug && self.list_of(slab) != L_QUAR {
            self.destroy_debugcheck(slab);
        }
        let page = self.page(slab);
        let fl = page.index.load(Relaxed);
        k.nodes[page.nid()].stat.add(self.stat_item() as usize, -(1i64 << c.order));
        page.clear(pg::SLAB);
        page.mapping.store(0, Relaxed);
        page.index.store(0, Relaxed);
        page.private.store(0, Relaxed);
        k.free_pages(slab, c.order);
        if let Some(fc) = s.freelist_cache {
            k.kmem_cache_free(fc, VirtAddr(fl));
        }
    }

    /// The per-cpu allocation path (`____cache_alloc`).
    fn cache_alloc(&self, gfp: Gfp, node: usize) -> Option<u64> {
        let cpu = &self.s.cpu[self.k.hal.current_cpu()];
        let mut ac = cpu.ac.lock();
        if let Some(o) = ac.entry.pop() {
            ac.touched = true;
            return Some(o);
        }
        drop(ac);
        self.cache_alloc_refill(cpu, gfp, node)
    }

    /// Refills this CPU's empty array from the shared array, the node's
    /// slabs, or one new slab, and takes an object (`cache_alloc_refill`).
    fn cache_alloc_refill(&self, cpu: &SlabCpu, gfp: Gfp, node: usize) -> Option<u64> {
        let mut destroy = Destroy::new();
        let mut ac = cpu.ac.lock();
        let mut batch = ac.batchcount;
        if !ac.touched && batch > BATCHREFILL_LIMIT {
            // Little recent use: a partial refill.
            batch = BATCHREFILL_LIMIT;
        }
        {
            let mut l = self.s.node[node].list_lock.lock();
            let mut from_shared = false;
            if let Some(sh) = l.shared.as_mut() {
                if ac.transfer_from(sh, batch) > 0 {
                    sh.touched = true;
                    from_shared = true;
                }
            }
            if !from_shared && l.free_objects > 0 {
                let before = ac.entry.len();
                while batch > 0 {
                    let Some(slab) = self.get_first_slab(&mut l) else { break };
                    let (rest, bad) = self.alloc_block(&mut ac, slab, batch);
                    batch = rest;
                    self.fixup_slab_list(&mut l, slab, bad, &mut destroy);
                }
                l.free_objects = l.free_objects.saturating_sub((ac.entry.len() - before) as u64);
            }
        }
        if ac.entry.is_empty() {
            drop(ac);
            let page = self.cache_grow_begin(gfp_exact_node(gfp), node);
            ac = cpu.ac.lock();
            if let Some(p) = page {
                let mut bad = false;
                if ac.entry.is_empty() && self.page(p).nid() == node {
                    bad = self.alloc_block(&mut ac, p, batch.max(1)).1;
                }
                self.cache_grow_end(p, bad);
            }
        }
        ac.touched = true;
        let obj = ac.entry.pop();
        drop(ac);
        self.slabs_destroy(destroy);
        obj
    }

    /// Takes one object from a node's slab lists.
    fn alloc_from_lists(&self, node: usize) -> Option<u64> {
        let mut destroy = Destroy::new();
        let obj = {
            let mut l = self.s.node[node].list_lock.lock();
            loop {
                let Some(slab) = self.get_first_slab(&mut l) else { break None };
                let o = self.slab_get_obj(slab);
                if o.is_some() {
                    l.free_objects = l.free_objects.saturating_sub(1);
                }
                self.fixup_slab_list(&mut l, slab, o.is_none(), &mut destroy);
                if o.is_some() {
                    break o;
                }
            }
        };
        self.slabs_destroy(destroy);
        obj
    }

    /// Allocation from a given node, bypassing the arrays
    /// (`____cache_alloc_node`), falling back to any node unless
    /// `__GFP_THISNODE` (`fallback_alloc`).
    fn cache_alloc_node(&self, gfp: Gfp, node: usize) -> Option<u64> {
        if let Some(o) = self.alloc_from_lists(node) {
            return Some(o);
        }
        let grow = |g: Gfp, nid: usize| {
            let p = self.cache_grow_begin(g, nid)?;
            let o = self.slab_get_obj(p);
            self.cache_grow_end(p, o.is_none());
            o
        };
        if let Some(o) = grow(gfp_exact_node(gfp), node) {
            return Some(o);
        }
        if gfp.contains(Gfp::THISNODE) {
            return None;
        }
        let local = self.k.numa_node_id();
        let mut nodes: Vec<usize> = (0..self.k.nodes.len()).filter(|&n| n != node).collect();
        nodes.sort_by_key(|&n| self.k.distance[local][n]);
        for n in nodes {
            if self.s.node[n].list_lock.lock().free_objects > 0 {
                if let Some(o) = self.alloc_from_lists(n) {
                    return Some(o);
                }
            }
        }
        grow(gfp & !Gfp::THISNODE, local)
    }

    /// Gives an array's oldest `batchcount` objects to the shared array or
    /// back to their slabs (`cache_flusharray`).
    fn cache_flusharray(&self, ac: &mut ArrayCache, node: usize, destroy: &mut Destroy) {
        let batch = (ac.batchcount as usize).min(ac.entry.len());
        let mut l = self.s.node[node].list_lock.lock();
        if let Some(sh) = l.shared.as_mut() {
            let room = (sh.limit as usize).saturating_sub(sh.entry.len());
            if room > 0 {
                let b = batch.min(room);
                sh.entry.extend_from_slice(&ac.entry[..b]);
                ac.entry.drain(..b);
                return;
            }
        }
        self.free_block(&mut l, &ac.entry[..batch], destroy);
        drop(l);
        ac.entry.drain(..batch);
    }

    /// Frees into this CPU's array (`___cache_free`).
    fn cache_free_local(&self, obj: u64, node: usize) {
        let mut destroy = Destroy::new();
        {
            let mut ac = self.s.cpu[self.k.hal.current_cpu()].ac.lock();
            if ac.entry.len() >= ac.limit as usize {
                self.cache_flusharray(&mut ac, node, &mut destroy);
            }
            ac.entry.push(obj);
        }
        self.slabs_destroy(destroy);
    }

    /// Frees an object of another node (`__cache_free_alien`): into this
    /// node's alien array for it, or straight to its slab.
    fn cache_free_alien(&self, obj: u64, local: usize, page_node: usize) {
        let mut destroy = Destroy::new();
        match self.s.node[local].alien.get(page_node) {
            Some(alc) => {
                let mut ac = alc.lock();
                if ac.entry.len() >= ac.limit as usize {
                    self.drain_alien(&mut ac, page_node, &mut destroy);
                }
                ac.entry.push(obj);
            }
            None => {
                let mut l = self.s.node[page_node].list_lock.lock();
                self.free_block(&mut l, &[obj], &mut destroy);
            }
        }
        self.slabs_destroy(destroy);
    }

    /// Hands an alien array's objects to their node: its shared array first,
    /// then their slabs (`__drain_alien_cache`).
    fn drain_alien(&self, ac: &mut ArrayCache, node: usize, destroy: &mut Destroy) {
        if ac.entry.is_empty() {
            return;
        }
        let mut l = self.s.node[node].list_lock.lock();
        if let Some(sh) = l.shared.as_mut() {
            let limit = ac.limit;
            sh.transfer_from(ac, limit);
        }
        self.free_block(&mut l, &ac.entry, destroy);
        ac.entry.clear();
    }

    /// Frees part of an array (`drain_array_locked`): all of it, or a fifth
    /// of its limit (at most half of what it holds), oldest first.
    fn drain_array_locked(&self, l: &mut NodeLists, ac: &mut ArrayCache, all: bool, destroy: &mut Destroy) {
        let avail = ac.entry.len();
        let mut tofree = if all { avail } else { (ac.limit as usize).div_ceil(5) };
        if tofree > avail {
            tofree = avail.div_ceil(2);
        }
        self.free_block(l, &ac.entry[..tofree], destroy);
        ac.entry.drain(..tofree);
    }

    /// Trims an array not used since the last reap; clears `touched` (`drain_array`).
    fn reap_array(&self, l: &mut NodeLists, ac: &mut ArrayCache, destroy: &mut Destroy) {
        if ac.touched {
            ac.touched = false;
        } else if !ac.entry.is_empty() {
            self.drain_array_locked(l, ac, false, destroy);
        }
    }

    /// Empties every array of the cache (`drain_cpu_caches`).
    fn drain_cpu_caches(&self) {
        let mut destroy = Destroy::new();
        for (cpu, pc) in self.s.cpu.iter().enumerate() {
            let node = self.k.cpu_to_node.get(cpu).copied().unwrap_or(0);
            let mut ac = pc.ac.lock();
            if !ac.entry.is_empty() {
                let mut l = self.s.node[node].list_lock.lock();
                self.free_block(&mut l, &ac.entry, &mut destroy);
                ac.entry.clear();
            }
        }
        for (nid, n) in self.s.node.iter().enumerate() {
            for (r, alc) in n.alien.iter().enumerate().filter(|&(r, _)| r != nid) {
                self.drain_alien(&mut alc.lock(), r, &mut destroy);
            }
        }
        for n in self.s.node.iter() {
            let mut l = n.list_lock.lock();
            if let Some(mut sh) = l.shared.take() {
                self.drain_array_locked(&mut l, &mut sh, true, &mut destroy);
                l.shared = Some(sh);
            }
        }
        self.slabs_destroy(destroy);
    }

    /// Releases up to `tofree` free slabs of a node, oldest first (`drain_freelist`).
    fn drain_freelist(&self, node: usize, tofree: u64) {
        for _ in 0..tofree {
            let slab = {
                let mut l = self.s.node[node].list_lock.lock();
                let Some(slab) = l.slabs_free.last() else { return };
                self.list_del(&mut l, slab);
                l.free_slabs = l.free_slabs.saturating_sub(1);
                l.total_slabs = l.total_slabs.saturating_sub(1);
                l.free_objects = l.free_objects.saturating_sub(u64::from(self.s.num));
                slab
            };
            self.slab_destroy(slab);
        }
    }

    /// One CPU's reap of this cache: one alien array, round robin, and the
    /// per-cpu array unless it was used since the last pass.
    fn reap_cpu(&self, cpu: usize) {
        let nodes = self.k.nodes.len();
        let node = self.k.cpu_to_node.get(cpu).copied().unwrap_or(0);
        let pc = &self.s.cpu[cpu];
        let mut destroy = Destroy::new();
        if nodes > 1 {
            let r = pc.reap_node.load(Relaxed) % nodes;
            pc.reap_node.store((r + 1) % nodes, Relaxed);
            if let Some(mut ac) = self.s.node[node].alien.get(r).and_then(|a| a.try_lock()) {
                self.drain_alien(&mut ac, r, &mut destroy);
            }
        }
        {
            let mut ac = pc.ac.lock();
            self.reap_array(&mut self.s.node[node].list_lock.lock(), &mut ac, &mut destroy);
        }
        self.slabs_destroy(destroy);
    }

    /// A node's reap, every `REAPTIMEOUT_NODE`: the shared array unless
    /// touched, and a fifth of `free_limit` worth of free slabs unless a free
    /// slab was used since the last pass.
    fn reap_node(&self, node: usize, now: u64) {
        let n = &self.s.node[node];
        if n.next_reap.load(Relaxed) > now {
            return;
        }
        n.next_reap.store(now + REAPTIMEOUT_NODE_NS, Relaxed);
        let mut destroy = Destroy::new();
        let tofree = {
            let mut l = n.list_lock.lock();
            if let Some(mut sh) = l.shared.take() {
                self.reap_array(&mut l, &mut sh, &mut destroy);
                l.shared = Some(sh);
            }
            if l.free_touched {
                l.free_touched = false;
                0
            } else {
                let per = 5 * u64::from(self.s.num);
                l.free_limit.div_ceil(per)
            }
        };
        self.slabs_destroy(destroy);
        self.drain_freelist(node, tofree);
    }
}

impl Kernel {
    /// The SLAB allocation path (`slab_alloc_node`): this CPU's array when
    /// the node is local or not given (`usize::MAX`), else that node's slabs,
    /// with fallback to other nodes unless `__GFP_THISNODE`.
    pub(crate) fn slab_alloc(&self, c: &KmemCache, gfp: Gfp, nid: usize) -> Option<VirtAddr> {
        let cx = Cx::new(self, c)?;
        let local = self.numa_node_id();
        let node = if nid < self.nodes.len() { nid } else { local };
        let mut obj = if node == local { cx.cache_alloc(gfp, local) } else { None };
        if obj.is_none() {
            obj = cx.cache_alloc_node(gfp, node);
        }
        let obj = obj?;
        if cx.s.debug {
            cx.alloc_debugcheck(obj);
        }
        Some(VirtAddr(obj))
    }

    /// The SLAB free path (`__cache_free`): checks, then this CPU's array,
    /// or the alien array when the object is another node's. A pointer that
    /// is not an object of the cache, or an object already free (debug
    /// caches), is reported and ignored.
    pub(crate) fn slab_free(&self, c: &KmemCache, obj: VirtAddr) {
        let Some(cx) = Cx::new(self, c) else { return };
        let Some((slab, _)) = cx.obj_index(obj.0) else {
            self.log
                .err(format_args!("kmem_cache_free({}, {:#x}): object is not in a slab of this cache", c.name, obj.0));
            return;
        };
        if cx.s.debug && !cx.free_debugcheck(obj.0) {
            return;
        }
        let page_node = self.memmap.page(slab).nid();
        let local = self.numa_node_id();
        if page_node != local && self.nodes.len() > 1 {
            cx.cache_free_alien(obj.0, local, page_node);
        } else {
            cx.cache_free_local(obj.0, local);
        }
    }

    /// Empties every array and releases every free slab (`__kmem_cache_shrink`).
    pub(crate) fn slab_shrink(&self, c: &KmemCache) {
        let Some(cx) = Cx::new(self, c) else { return };
        cx.drain_cpu_caches();
        for node in 0..cx.s.node.len() {
            cx.drain_freelist(node, u64::MAX);
        }
    }

    /// /proc/slabinfo numbers as SLAB reports them (`get_slabinfo`): objects
    /// in slabs on the node lists count as free, so objects waiting in the
    /// per-cpu, shared and alien arrays count as active; the tunables and
    /// the objects in shared arrays are shown.
    pub(crate) fn slab_info(&self, c: &KmemCache) -> SlabInfo {
        let Some(cx) = Cx::new(self, c) else { return SlabInfo::default() };
        let s = cx.s;
        let (mut total, mut free_slabs, mut free_objs, mut shared_avail) = (0, 0, 0, 0);
        for n in s.node.iter() {
            let l = n.list_lock.lock();
            total += l.total_slabs;
            free_slabs += l.free_slabs;
            free_objs += l.free_objects;
            shared_avail += l.shared.as_ref().map_or(0, |sh| sh.entry.len() as u64);
        }
        let num_objs = total * u64::from(s.num);
        SlabInfo {
            active_objs: num_objs.saturating_sub(free_objs),
            num_objs,
            active_slabs: total.saturating_sub(free_slabs),
            num_slabs: total,
            limit: s.limit,
            batchcount: s.batchcount,
            shared: s.shared,
            shared_avail,
        }
    }

    /// Objects allocated right now, exactly: objects out of their slabs
    /// minus those waiting in arrays (quarantined slabs' lost slots excluded).
    pub fn slab_objects_in_use(&self, c: &KmemCache) -> u64 {
        let Some(cx) = Cx::new(self, c) else { return 0 };
        let s = cx.s;
        let mut out = 0u64;
        let mut cached: u64 = s.cpu.iter().map(|pc| pc.ac.lock().entry.len() as u64).sum();
        for n in s.node.iter() {
            cached += n.alien.iter().map(|a| a.lock().entry.len() as u64).sum::<u64>();
            let l = n.list_lock.lock();
            cached += l.shared.as_ref().map_or(0, |sh| sh.entry.len() as u64);
            let lost: u64 =
                l.quarantine.iter(&self.memmap).map(|q| u64::from(s.num.saturating_sub(cx.active(q)))).sum();
            out += (l.total_slabs * u64::from(s.num)).saturating_sub(l.free_objects + lost);
        }
        out.saturating_sub(cached)
    }

    /// The slab holding `obj`, if `obj` is the start of an object of the
    /// SLAB cache `c` (what `obj_to_slab` answers for SLUB).
    pub fn slab_obj_to_slab(&self, c: &KmemCache, obj: VirtAddr) -> Option<Pfn> {
        Cx::new(self, c)?.obj_index(obj.0).map(|(slab, _)| slab)
    }

    /// One pass of SLAB's periodic reaper (`cache_reap`), for every CPU and
    /// node of every SLAB cache; a kthread calls it every
    /// [`REAPTIMEOUT_AC_NS`]. Skipped when `slab_mutex` is busy, as Linux
    /// skips a pass.
    pub fn slab_cache_reap(&self) {
        let Some(_g) = self.slab.mutex.try_lock() else { return };
        let now = self.hal.now_ns();
        for c in self.slab.caches() {
            let Some(cx) = Cx::new(self, c) else { continue };
            for cpu in 0..cx.s.cpu.len() {
                cx.reap_cpu(cpu);
            }
            for node in 0..cx.s.node.len() {
                cx.reap_node(node, now);
            }
        }
    }
}
