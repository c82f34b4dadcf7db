//! Kernel object caches (Linux's `mm/slab_common.c` and `include/linux/slab.h`):
//! the `kmem_cache` API, the registry of caches, cache merging, and the
//! choice between three back-ends.
//!
//! - [`slub`] (`mm/slub.c`, Linux's allocator, as of 7.0): per-CPU
//!   sheaves of object pointers exchanged with per-node barns
//!   ([`sheaf`]), per-node partial lists.
//! - `slab` (`mm/slab.c`, removed from Linux in 6.8): per-cpu array caches,
//!   shared and alien caches, per-node full/partial/free lists, colouring.
//! - `slob` (`mm/slob.c`, removed in 6.4): first fit over pages on three
//!   size-class lists.
//!
//! The back-end is chosen at boot ([`SlabKind`]); everything above the
//! back-end (this module, [`kmalloc`], the typed handles) is shared, so
//! the three designs can be compared on the same workload.
//!
//! Objects are addressed by kernel virtual address in the direct map
//! ([`crate::arch::x86_64::PAGE_OFFSET`] + physical address), as Linux's
//! `void *` objects are, and their bytes live in simulated RAM. The cache
//! descriptors are Rust values; each cache also takes a `kmem_cache`
//! object (and a `kmem_cache_node` object per node) from the boot caches,
//! so /proc/slabinfo counts them as Linux does.
//!
//! Locking: `slab_mutex` ([`SlabState::mutex`]) serializes create, destroy
//! and shrink. Back-ends document their own locks.

pub mod debug;
pub mod kmalloc;
pub mod sheaf;
#[allow(clippy::module_inception)]
pub mod slab;
pub mod slob;
pub mod slub;
pub mod typed;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::types::VirtAddr;

/// Which slab allocator the machine boots with (scenario key `slab`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum SlabKind {
    /// SLUB, Linux's allocator since 2.6.23 and its only one since 6.8.
    #[default]
    Slub,
    /// The original SLAB design.
    Slab,
    /// SLOB, the allocator for tiny systems.
    Slob,
}

impl SlabKind {
    /// The name Linux's config option uses.
    pub fn name(self) -> &'static str {
        match self {
            SlabKind::Slub => "slub",
            SlabKind::Slab => "slab",
            SlabKind::Slob => "slob",
        }
    }
}

/// Cache creation flags (`slab_flags_t`), Linux's values.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct SlabFlags(pub u32);

#[allow(missing_docs)]
impl SlabFlags {
    pub const CONSISTENCY_CHECKS: SlabFlags = SlabFlags(0x100);
    pub const RED_ZONE: SlabFlags = SlabFlags(0x400);
    pub const POISON: SlabFlags = SlabFlags(0x800);
    pub const KMALLOC: SlabFlags = SlabFlags(0x1000);
    pub const HWCACHE_ALIGN: SlabFlags = SlabFlags(0x2000);
    pub const CACHE_DMA: SlabFlags = SlabFlags(0x4000);
    pub const CACHE_DMA32: SlabFlags = SlabFlags(0x8000);
    pub const STORE_USER: SlabFlags = SlabFlags(0x10000);
    pub const RECLAIM_ACCOUNT: SlabFlags = SlabFlags(0x20000);
    pub const PANIC: SlabFlags = SlabFlags(0x40000);
    pub const TYPESAFE_BY_RCU: SlabFlags = SlabFlags(0x80000);
    pub const TRACE: SlabFlags = SlabFlags(0x200000);
    pub const NOLEAKTRACE: SlabFlags = SlabFlags(0x800000);
    pub const NO_MERGE: SlabFlags = SlabFlags(0x1000000);
    pub const ACCOUNT: SlabFlags = SlabFlags(0x4000000);
    /// No object extensions (`SLAB_NO_OBJ_EXT`): the boot caches; such a
    /// cache gets no sheaves.
    pub const NO_OBJ_EXT: SlabFlags = SlabFlags(0x2000_0000);
    /// Internal: poison objects (set when POISON applies: no ctor, no RCU).
    pub const OBJECT_POISON: SlabFlags = SlabFlags(0x8000_0000);

    /// Flags that turn on debugging.
    pub const DEBUG_FLAGS: SlabFlags = SlabFlags(0x100 | 0x400 | 0x800 | 0x10000 | 0x200000);
    /// Flags that forbid merging (`SLAB_NEVER_MERGE`).
    pub const NEVER_MERGE: SlabFlags = SlabFlags(0x100 | 0x400 | 0x800 | 0x10000 | 0x200000 | 0x80000 | 0x1000000);
    /// Flags merged caches must share (`SLAB_MERGE_SAME`).
    pub const MERGE_SAME: SlabFlags = SlabFlags(0x4000 | 0x8000 | 0x20000 | 0x800000 | 0x4000000);
    /// Every flag a caller may pass.
    pub const ALL: SlabFlags = SlabFlags(0x1ffffff | 0x4000000 | 0x2000_0000);

    /// True when every bit of `o` is set.
    #[inline]
    pub const fn contains(self, o: SlabFlags) -> bool {
        self.0 & o.0 == o.0
    }
    /// True when any bit of `o` is set.
    #[inline]
    pub const fn intersects(self, o: SlabFlags) -> bool {
        self.0 & o.0 != 0
    }
}

impl core::ops::BitOr for SlabFlags {
    type Output = SlabFlags;
    fn bitor(self, o: SlabFlags) -> SlabFlags {
        SlabFlags(self.0 | o.0)
    }
}

/// An object constructor: runs once on each object when its slab is made
/// (Linux's `ctor(void *)`), with the object's bytes.
pub type Ctor = fn(&mut [u8]);

/// Names a cache.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct CacheId(pub u32);

/// Why a cache operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlabError {
    /// Size, alignment or flags Linux would refuse (`-EINVAL`).
    Invalid(&'static str),
    /// No memory for the cache or its first slab (`-ENOMEM`).
    NoMemory,
    /// Destroy refused: objects are still allocated.
    Busy {
        /// Objects still allocated.
        objects: u64,
    },
    /// No such cache (already destroyed, or never created).
    NoCache,
}

/// Largest number of caches a machine can have.
pub const MAX_CACHES: usize = 4096;

/// A cache of equal-sized objects (`struct kmem_cache`). Geometry fields
/// follow SLUB's names; the other back-ends use what applies.
pub struct KmemCache {
    /// Id in the registry.
    pub id: CacheId,
    /// Name in /proc/slabinfo.
    pub name: String,
    /// Bytes the caller asked for.
    pub object_size: u32,
    /// Bytes per object with metadata and alignment (`s->size`).
    pub size: u32,
    /// Object alignment.
    pub align: u32,
    /// Bytes of object plus right red zone, before the free pointer (`s->inuse`).
    pub inuse: u32,
    /// Offset of the free pointer within the object slot (`s->offset`).
    pub offset: u32,
    /// Left red zone in front of each object (`s->red_left_pad`).
    pub red_left_pad: u32,
    /// Creation flags plus internal ones.
    pub flags: SlabFlags,
    /// Constructor.
    pub ctor: Option<Ctor>,
    /// Page order of a slab.
    pub order: u32,
    /// Objects per slab.
    pub objects_per_slab: u32,
    /// `ceil(2^32 / size)`: object index by multiplication (`reciprocal_size`).
    pub reciprocal_size: u64,
    /// GFP bits every slab allocation adds (DMA, DMA32, RECLAIMABLE).
    pub allocflags: Gfp,
    /// Callers sharing this cache through merging (`s->refcount`).
    pub refcount: AtomicU32,
    /// Cleared when destroyed.
    pub alive: AtomicBool,
    /// Names merged into this cache (the aliases /sys/kernel/slab shows).
    pub aliases: spin::Mutex<Vec<String>>,
    /// The descriptor objects this cache occupies in the boot caches.
    pub descriptor: spin::Mutex<Vec<(CacheId, VirtAddr)>>,
    /// The back-end's state.
    pub imp: CacheImpl,
}

/// Back-end state of a cache.
pub enum CacheImpl {
    /// SLUB.
    Slub(slub::SlubCache),
    /// SLAB.
    Slab(slab::SlabCache),
    /// SLOB.
    Slob(slob::SlobCache),
}

/// What a cache holds, as /proc/slabinfo reports it (`struct slabinfo`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlabInfo {
    /// Objects counted as in use.
    pub active_objs: u64,
    /// Object slots in all slabs.
    pub num_objs: u64,
    /// Slabs counted as in use.
    pub active_slabs: u64,
    /// Slabs.
    pub num_slabs: u64,
    /// SLAB's `limit` tunable.
    pub limit: u32,
    /// SLAB's `batchcount` tunable.
    pub batchcount: u32,
    /// SLAB's `shared` tunable.
    pub shared: u32,
    /// Objects in shared array caches.
    pub shared_avail: u64,
}

/// The slab layer's part of the kernel state.
pub struct SlabState {
    /// The back-end.
    pub kind: SlabKind,
    /// `slab_mutex`.
    pub mutex: spin::Mutex<()>,
    caches: Box<[spin::Once<Box<KmemCache>>]>,
    /// `caches[id]`'s address while that cache is alive, null otherwise:
    /// the hot paths find a cache with one load.
    live: Box<[core::sync::atomic::AtomicPtr<KmemCache>]>,
    next_id: AtomicU32,
    /// kmalloc caches by kind and size index (0: none yet).
    pub(crate) kmalloc: kmalloc::KmallocCaches,
    /// The boot caches for cache descriptors (`kmem_cache`, `kmem_cache_node`).
    boot_caches: spin::Once<(CacheId, CacheId)>,
    /// Caches other subsystems create at boot on Linux.
    pub subsystem: spin::Once<SubsystemCaches>,
}

/// The object caches Linux's subsystems create during boot
/// (`proc_caches_init`, `fork_init`, `anon_vma_init`, `radix_tree_init`),
/// with Linux's object sizes and flags, so the components that land later
/// find them and /proc/slabinfo lists them from boot on.
#[derive(Clone, Copy, Debug)]
pub struct SubsystemCaches {
    /// `vm_area_struct`.
    pub vm_area_struct: CacheId,
    /// `anon_vma`.
    pub anon_vma: CacheId,
    /// `anon_vma_chain`.
    pub anon_vma_chain: CacheId,
    /// `mm_struct`.
    pub mm_struct: CacheId,
    /// `task_struct`.
    pub task_struct: CacheId,
    /// `files_cache`.
    pub files_cache: CacheId,
    /// `radix_tree_node` (also the xarray's nodes).
    pub radix_tree_node: CacheId,
}

impl SlabState {
    /// An empty slab layer for `kind`; [`Kernel::kmem_cache_init`] fills it.
    pub fn new(kind: SlabKind) -> SlabState {
        SlabState {
            kind,
            mutex: spin::Mutex::new(()),
            caches: (0..MAX_CACHES).map(|_| spin::Once::new()).collect(),
            live: (0..MAX_CACHES).map(|_| core::sync::atomic::AtomicPtr::new(core::ptr::null_mut())).collect(),
            next_id: AtomicU32::new(1),
            kmalloc: kmalloc::KmallocCaches::default(),
            boot_caches: spin::Once::new(),
            subsystem: spin::Once::new(),
        }
    }

    /// A cache by id, if it exists and is alive.
    #[inline]
    pub fn cache(&self, id: CacheId) -> Option<&KmemCache> {
        let p = self.live.get(id.0 as usize)?.load(core::sync::atomic::Ordering::Acquire);
        // SAFETY: a non-null entry is the address of the `KmemCache` boxed in
        // `caches[id]` (set by `publish` after the slot was initialized).
        // Slots are written once and never emptied, and a Box's allocation
        // never moves, so it stays valid for as long as `self` lives.
        unsafe { p.as_ref() }
    }

    /// Makes cache `id` findable by [`SlabState::cache`] (after creation),
    /// or not (when it is destroyed).
    fn publish(&self, id: CacheId, alive: bool) {
        let p = match self.caches[id.0 as usize].get() {
            Some(c) if alive => &**c as *const KmemCache as *mut KmemCache,
            _ => core::ptr::null_mut(),
        };
        self.live[id.0 as usize].store(p, core::sync::atomic::Ordering::Release);
    }

    /// Every live cache, in creation order.
    pub fn caches(&self) -> impl Iterator<Item = &KmemCache> {
        let n = self.next_id.load(Relaxed) as usize;
        self.caches[1..n.min(MAX_CACHES)].iter().filter_map(|c| c.get()).map(|c| &**c).filter(|c| c.alive.load(Relaxed))
    }
}

/// A kmalloc cache of the normal kind (`is_kmalloc_normal`): its sheaves
/// come after every kmalloc cache exists, since sheaves are kmalloc objects.
pub fn is_kmalloc_normal(flags: SlabFlags) -> bool {
    flags.contains(SlabFlags::KMALLOC)
        && !flags.intersects(SlabFlags(SlabFlags::CACHE_DMA.0 | SlabFlags::ACCOUNT.0 | SlabFlags::RECLAIM_ACCOUNT.0))
}

/// Arguments of `kmem_cache_create`.
#[derive(Clone, Debug)]
pub struct CacheArgs<'a> {
    /// Name.
    pub name: &'a str,
    /// Object size in bytes.
    pub size: u32,
    /// Minimum alignment (0: the word size).
    pub align: u32,
    /// Flags.
    pub flags: SlabFlags,
    /// Constructor.
    pub ctor: Option<Ctor>,
}

impl<'a> CacheArgs<'a> {
    /// A plain cache of `size`-byte objects.
    pub fn new(name: &'a str, size: u32) -> CacheArgs<'a> {
        CacheArgs { name, size, align: 0, flags: SlabFlags::default(), ctor: None }
    }
}

/// Size of Linux's `struct kmem_cache` on x86-64 (SLUB, no debug), for the
/// descriptor objects the boot cache hands out.
const KMEM_CACHE_SIZE: u32 = 256;
/// Size of Linux's `struct kmem_cache_node`.
const KMEM_CACHE_NODE_SIZE: u32 = 64;

/// Cache line size (`cache_line_size()` on x86-64).
pub const CACHE_LINE: u32 = 64;
/// Pointer size.
pub const WORD: u32 = 8;
/// Largest object a cache may hold (`KMALLOC_MAX_SIZE` for SLUB: order MAX_PAGE_ORDER).
pub const MAX_OBJECT_SIZE: u32 = 4 << 20;

/// The alignment Linux gives a cache (`calculate_alignment`): with
/// HWCACHE_ALIGN, the cache line, halved while the object fits in half;
/// never below the word size.
pub fn calculate_alignment(flags: SlabFlags, align: u32, size: u32) -> u32 {
    let mut align = align;
    if flags.contains(SlabFlags::HWCACHE_ALIGN) {
        let mut ralign = CACHE_LINE;
        while size <= ralign / 2 {
            ralign /= 2;
        }
        align = align.max(ralign);
    }
    align.max(WORD).next_power_of_two()
}

impl Kernel {
    /// Sets up the slab layer after the page allocator (`kmem_cache_init`):
    /// the descriptor caches, then the kmalloc caches.
    pub fn kmem_cache_init(&self) -> Result<(), SlabError> {
        let kc = self.create_cache_locked(&CacheArgs {
            name: "kmem_cache",
            size: KMEM_CACHE_SIZE,
            align: 0,
            flags: SlabFlags::HWCACHE_ALIGN | SlabFlags::PANIC | SlabFlags::NO_OBJ_EXT,
            ctor: None,
        })?;
        let kcn = self.create_cache_locked(&CacheArgs {
            name: "kmem_cache_node",
            size: KMEM_CACHE_NODE_SIZE,
            align: 0,
            flags: SlabFlags::HWCACHE_ALIGN | SlabFlags::PANIC | SlabFlags::NO_OBJ_EXT,
            ctor: None,
        })?;
        self.slab.boot_caches.call_once(|| (kc, kcn));
        for id in [kc, kcn] {
            self.account_descriptor(id);
        }
        // Under SLOB the kmalloc caches exist (as on Linux, for their names
        // and sizes) but stay empty: SLOB's kmalloc carves blocks from its
        // own pages.
        self.create_kmalloc_caches()?;
        self.create_subsystem_caches()
    }

    /// Creates the caches of [`SubsystemCaches`]. The sizes are what Linux
    /// 6.x on x86-64 shows in /proc/slabinfo (`objsize`), reached from
    /// each structure's size and the cache's flags.
    fn create_subsystem_caches(&self) -> Result<(), SlabError> {
        fn zero(b: &mut [u8]) {
            b.fill(0);
        }
        let acct = SlabFlags::PANIC | SlabFlags::ACCOUNT;
        let mk = |name, size, flags, ctor: Option<Ctor>| {
            self.kmem_cache_create(&CacheArgs { name, size, align: 0, flags, ctor })
        };
        let c = SubsystemCaches {
            vm_area_struct: mk(
                "vm_area_struct",
                184,
                acct | SlabFlags::TYPESAFE_BY_RCU | SlabFlags::HWCACHE_ALIGN,
                None,
            )?,
            anon_vma: mk("anon_vma", 96, acct | SlabFlags::TYPESAFE_BY_RCU, Some(zero))?,
            anon_vma_chain: mk("anon_vma_chain", 64, acct, None)?,
            mm_struct: mk("mm_struct", 1576, acct | SlabFlags::HWCACHE_ALIGN, None)?,
            task_struct: mk("task_struct", 5888, acct | SlabFlags::HWCACHE_ALIGN, None)?,
            files_cache: mk("files_cache", 704, acct | SlabFlags::HWCACHE_ALIGN, None)?,
            radix_tree_node: mk("radix_tree_node", 576, acct | SlabFlags::RECLAIM_ACCOUNT, Some(zero))?,
        };
        self.slab.subsystem.call_once(|| c);
        Ok(())
    }

    /// Takes the `kmem_cache` and `kmem_cache_node` objects a new cache's
    /// descriptor occupies on Linux.
    fn account_descriptor(&self, id: CacheId) {
        let Some(&(kc, kcn)) = self.slab.boot_caches.get() else { return };
        let mut objs = Vec::new();
        if let Some(o) = self.kmem_cache_alloc(kc, Gfp::GFP_KERNEL | Gfp::NOWARN) {
            objs.push((kc, o));
        }
        for _ in 0..self.nodes.len() {
            if let Some(o) = self.kmem_cache_alloc(kcn, Gfp::GFP_KERNEL | Gfp::NOWARN) {
                objs.push((kcn, o));
            }
        }
        if let Some(c) = self.slab.cache(id) {
            c.descriptor.lock().extend(objs);
        }
    }

    /// Creates a cache or merges with a compatible one (`kmem_cache_create`).
    pub fn kmem_cache_create(&self, args: &CacheArgs<'_>) -> Result<CacheId, SlabError> {
        let _guard = self.slab.mutex.lock();
        let r = self.create_cache_locked(args);
        if let Ok(id) = r {
            if self.slab.cache(id).is_some_and(|c| c.name == args.name && c.refcount.load(Relaxed) == 1) {
                self.account_descriptor(id);
            }
        } else if args.flags.contains(SlabFlags::PANIC) {
            self.log.err(format_args!("kmem_cache_create: failed to create slab `{}'", args.name));
        }
        r
    }

    fn create_cache_locked(&self, args: &CacheArgs<'_>) -> Result<CacheId, SlabError> {
        if args.name.is_empty() {
            return Err(SlabError::Invalid("empty name"));
        }
        if args.size < 1 || args.size > MAX_OBJECT_SIZE {
            return Err(SlabError::Invalid("object size out of range"));
        }
        if args.align != 0 && !args.align.is_power_of_two() {
            return Err(SlabError::Invalid("alignment is not a power of two"));
        }
        if args.flags.0 & !SlabFlags::ALL.0 != 0 {
            return Err(SlabError::Invalid("unknown flags"));
        }
        if let Some(id) = self.find_mergeable(args) {
            let c = self.slab.cache(id).ok_or(SlabError::NoCache)?;
            c.refcount.fetch_add(1, Relaxed);
            c.aliases.lock().push(String::from(args.name));
            return Ok(id);
        }
        let id = self.slab.next_id.fetch_add(1, Relaxed);
        if id as usize >= MAX_CACHES {
            return Err(SlabError::NoMemory);
        }
        let id = CacheId(id);
        let cache = match self.slab.kind {
            SlabKind::Slub => slub::new_cache(self, id, args)?,
            SlabKind::Slab => slab::new_cache(self, id, args)?,
            SlabKind::Slob => slob::new_cache(self, id, args)?,
        };
        self.slab.caches[id.0 as usize].call_once(|| Box::new(cache));
        self.slab.publish(id, true);
        if let Some(c) = self.slab.cache(id) {
            if matches!(c.imp, CacheImpl::Slub(_)) && !is_kmalloc_normal(c.flags) {
                // A cache that cannot get its sheaves works without them.
                self.init_sheaves(c, sheaf::calculate_sheaf_capacity(c.size, c.flags));
            }
        }
        Ok(id)
    }

    /// A live cache that can serve this request too (`find_mergeable`): no
    /// constructor, no debug or never-merge flags, same merge-relevant
    /// flags, big enough, alignment compatible, waste under a word.
    fn find_mergeable(&self, args: &CacheArgs<'_>) -> Option<CacheId> {
        if args.ctor.is_some() || args.flags.intersects(SlabFlags::NEVER_MERGE) {
            return None;
        }
        if self.slab.kind != SlabKind::Slub {
            return None;
        }
        let size = args.size.next_multiple_of(WORD);
        let align = calculate_alignment(args.flags, args.align, args.size);
        let size = size.next_multiple_of(align);
        self.slab.caches().find_map(|s| {
            let ok = s.ctor.is_none()
                && !s.flags.intersects(SlabFlags::NEVER_MERGE)
                && s.flags.0 & SlabFlags::MERGE_SAME.0 == args.flags.0 & SlabFlags::MERGE_SAME.0
                && size <= s.size
                && s.size - size < WORD
                && s.size % align == 0
                && s.refcount.load(Relaxed) > 0;
            (ok && !s.name.starts_with("kmem_cache")).then_some(s.id)
        })
    }

    /// Allocates an object (`kmem_cache_alloc`); `None` when no memory.
    #[inline]
    pub fn kmem_cache_alloc(&self, id: CacheId, gfp: Gfp) -> Option<VirtAddr> {
        let c = self.slab.cache(id)?;
        let obj = match &c.imp {
            CacheImpl::Slub(_) => self.slub_alloc(c, gfp, usize::MAX),
            CacheImpl::Slab(_) => self.slab_alloc(c, gfp, usize::MAX),
            CacheImpl::Slob(_) => self.slob_alloc(c, gfp, usize::MAX),
        }?;
        if gfp.contains(Gfp::ZERO) {
            self.zero_object(c, obj);
        }
        Some(obj)
    }

    /// Allocates on a node (`kmem_cache_alloc_node`).
    pub fn kmem_cache_alloc_node(&self, id: CacheId, gfp: Gfp, nid: usize) -> Option<VirtAddr> {
        let c = self.slab.cache(id)?;
        let obj = match &c.imp {
            CacheImpl::Slub(_) => self.slub_alloc(c, gfp, nid),
            CacheImpl::Slab(_) => self.slab_alloc(c, gfp, nid),
            CacheImpl::Slob(_) => self.slob_alloc(c, gfp, nid),
        }?;
        if gfp.contains(Gfp::ZERO) {
            self.zero_object(c, obj);
        }
        Some(obj)
    }

    fn zero_object(&self, c: &KmemCache, obj: VirtAddr) {
        if let Some(pa) = crate::arch::x86_64::virt_to_phys(obj) {
            self.mem.fill(pa, u64::from(c.object_size), 0);
        }
    }

    /// Frees an object (`kmem_cache_free`). A pointer that is not an object
    /// of this cache is reported in the log and ignored.
    #[inline]
    pub fn kmem_cache_free(&self, id: CacheId, obj: VirtAddr) {
        let Some(c) = self.slab.cache(id) else {
            self.log.err(format_args!("kmem_cache_free: no cache {id:?} for object {:#x}", obj.0));
            return;
        };
        match &c.imp {
            CacheImpl::Slub(_) => self.slub_free(c, obj, true),
            CacheImpl::Slab(_) => self.slab_free(c, obj),
            CacheImpl::Slob(_) => self.slob_free(c, obj),
        }
    }

    /// Allocates `n` objects into `out`; all or none (`kmem_cache_alloc_bulk`).
    pub fn kmem_cache_alloc_bulk(&self, id: CacheId, gfp: Gfp, n: usize, out: &mut Vec<VirtAddr>) -> usize {
        let start = out.len();
        for _ in 0..n {
            match self.kmem_cache_alloc(id, gfp) {
                Some(o) => out.push(o),
                None => {
                    for o in out.drain(start..) {
                        self.kmem_cache_free(id, o);
                    }
                    return 0;
                }
            }
        }
        n
    }

    /// Frees objects (`kmem_cache_free_bulk`).
    pub fn kmem_cache_free_bulk(&self, id: CacheId, objs: &[VirtAddr]) {
        for &o in objs {
            self.kmem_cache_free(id, o);
        }
    }

    /// Returns a cache's empty slabs to the page allocator (`kmem_cache_shrink`).
    pub fn kmem_cache_shrink(&self, id: CacheId) -> Result<(), SlabError> {
        let _g = self.slab.mutex.lock();
        let c = self.slab.cache(id).ok_or(SlabError::NoCache)?;
        self.kmem_cache_shrink_locked(c);
        Ok(())
    }

    /// Destroys a cache (`kmem_cache_destroy`). Refused, with a report
    /// naming the cache and the objects left, while objects remain; a
    /// merged cache only loses one user.
    pub fn kmem_cache_destroy(&self, id: CacheId) -> Result<(), SlabError> {
        let _g = self.slab.mutex.lock();
        let c = self.slab.cache(id).ok_or(SlabError::NoCache)?;
        if c.refcount.load(Relaxed) > 1 {
            c.refcount.fetch_sub(1, Relaxed);
            return Ok(());
        }
        self.kmem_cache_shrink_locked(c);
        let in_use = self.kmem_cache_objects_in_use(c);
        if in_use > 0 {
            self.log.err(format_args!(
                "kmem_cache_destroy {}: Slab cache still has objects when called from kmem_cache_destroy ({} objects)",
                c.name, in_use
            ));
            return Err(SlabError::Busy { objects: in_use });
        }
        if matches!(c.imp, CacheImpl::Slub(_)) {
            self.pcs_destroy(c);
        }
        c.refcount.store(0, Relaxed);
        c.alive.store(false, Relaxed);
        self.slab.publish(id, false);
        let desc = core::mem::take(&mut *c.descriptor.lock());
        for (cache, obj) in desc {
            if cache.0 == 0 {
                self.kfree(obj);
            } else {
                self.kmem_cache_free(cache, obj);
            }
        }
        Ok(())
    }

    fn kmem_cache_shrink_locked(&self, c: &KmemCache) {
        match &c.imp {
            CacheImpl::Slub(_) => self.slub_shrink(c),
            CacheImpl::Slab(_) => self.slab_shrink(c),
            CacheImpl::Slob(_) => self.slob_shrink(c),
        }
    }

    /// What /proc/slabinfo shows for a cache.
    pub fn kmem_cache_info(&self, c: &KmemCache) -> SlabInfo {
        match &c.imp {
            CacheImpl::Slub(_) => self.slub_info(c),
            CacheImpl::Slab(_) => self.slab_info(c),
            CacheImpl::Slob(_) => self.slob_info(c),
        }
    }

    /// Objects allocated from a cache right now, exactly (slots minus
    /// every free object, including those cached per CPU).
    pub fn kmem_cache_objects_in_use(&self, c: &KmemCache) -> u64 {
        match &c.imp {
            CacheImpl::Slub(_) => self.slub_objects_in_use(c),
            CacheImpl::Slab(_) => self.slab_objects_in_use(c),
            CacheImpl::Slob(_) => self.slob_objects_in_use(c),
        }
    }

    /// The cache an object belongs to, from its slab page (`virt_to_slab`).
    pub fn virt_to_cache(&self, obj: VirtAddr) -> Option<&KmemCache> {
        let pa = crate::arch::x86_64::virt_to_phys(obj)?;
        if !self.memmap.pfn_valid(pa.pfn()) {
            return None;
        }
        let head = self.page_folio(pa.pfn()).pfn;
        let page = self.memmap.page(head);
        if !page.test(crate::page::pg::SLAB) || page.mapping.load(Relaxed) == slob::SLOB_PAGE_MAPPING {
            // A shared SLOB page holds objects of many caches.
            return None;
        }
        self.slab.cache(CacheId(page.mapping.load(Relaxed) as u32))
    }

    /// Pages of slab memory: (reclaimable, unreclaimable), for meminfo.
    pub fn slab_pages(&self) -> (u64, u64) {
        use crate::vmstat::NodeStat;
        let r = self.global_node_page_state(NodeStat::NrSlabReclaimable);
        let u = self.global_node_page_state(NodeStat::NrSlabUnreclaimable);
        (r, u)
    }

    /// Reads the word at a kernel address (an object's free pointer).
    #[inline]
    pub(crate) fn kread_u64(&self, va: VirtAddr) -> u64 {
        match crate::arch::x86_64::virt_to_phys(va) {
            Some(pa) => self.mem.view::<core::sync::atomic::AtomicU64>(pa, 1)[0].load(Relaxed),
            None => 0,
        }
    }

    /// Writes the word at a kernel address.
    #[inline]
    pub(crate) fn kwrite_u64(&self, va: VirtAddr, v: u64) {
        if let Some(pa) = crate::arch::x86_64::virt_to_phys(va) {
            self.mem.view::<core::sync::atomic::AtomicU64>(pa, 1)[0].store(v, Relaxed);
        }
    }

    /// Sets bytes at a kernel address.
    pub(crate) fn kfill(&self, va: VirtAddr, len: u64, byte: u8) {
        if let Some(pa) = crate::arch::x86_64::virt_to_phys(va) {
            self.mem.fill(pa, len, byte);
        }
    }

    /// Reads bytes at a kernel address.
    pub fn kread(&self, va: VirtAddr, buf: &mut [u8]) {
        if let Some(pa) = crate::arch::x86_64::virt_to_phys(va) {
            self.mem.read(pa, buf);
        }
    }

    /// Writes bytes at a kernel address.
    pub fn kwrite(&self, va: VirtAddr, buf: &[u8]) {
        if let Some(pa) = crate::arch::x86_64::virt_to_phys(va) {
            self.mem.write(pa, buf);
        }
    }
}
