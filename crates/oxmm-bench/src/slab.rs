//! The `slab` bench: oxmm's `kmalloc`/`kfree` (the SLUB back-end, the
//! default) against two peers on the same small-object work:
//!
//! - `glibc`: the host C library's `malloc`/`free` (per-thread tcache,
//!   fastbins, arenas) with its default tunables: when a round's frees
//!   leave more than `M_TRIM_THRESHOLD` (128 KiB at first) free at the top
//!   of the heap it gives it back to the host, and the next round faults
//!   it in again, which is most of its time from 512-byte objects up;
//! - `slabmalloc`: the `slabmalloc` crate's `ZoneAllocator` (power-of-two
//!   size classes, a bitmap per page, first fit). It does not get memory
//!   by itself: the bench hands it pages from a host arena reserved and
//!   touched before timing ([`PageArena`]), 4 KiB pages for its classes up
//!   to 256 bytes and, as its design requires, 2 MiB pages (its
//!   `LargeObjectPage`) for the larger ones, each aligned to its size.
//!
//! For each size of [`SIZES`] and for one and two threads there is one
//! comparison, `slab-kmalloc-<size>-<threads>t`. The work ([`Params`]) is
//! `pairs` allocations each freed at once, then `rounds` of "allocate
//! `batch` objects, free them in a shuffled order" (one fixed permutation,
//! the same for every contender). With two threads each thread does half
//! of the pairs and half of the rounds at the same time, so the operation
//! count is the same and the ns/op figures show the scaling:
//!
//! - oxmm runs on a machine with two CPUs; one thread runs on CPU 0 in
//!   the single-thread mode, two threads switch the machine to threaded
//!   mode and each binds itself to its own CPU (so each has its own cpu
//!   slab, as two CPUs of Linux do);
//! - glibc: two host threads calling `malloc`/`free`;
//! - slabmalloc is not thread-safe: each thread has its own allocator and
//!   arena, the analogue of oxmm's per-cpu slabs.
//!
//! All one-thread comparisons run first, in a process that has never had
//! a second thread, so glibc gets the fast paths of a single-threaded
//! program (no arena lock, plain fastbin updates); once a thread exists it
//! keeps its multi-threaded paths, which cost it some 40% more per
//! operation on small sizes.
//!
//! Every run frees all it allocates; the bench checks that oxmm's cache of
//! each size has as many objects in use at the end as at the start and
//! that slabmalloc gives back every page it was handed.

use std::alloc::Layout;
use std::cell::RefCell;
use std::io::Write;
use std::ptr::NonNull;

use oxmm::slab::KmemCache;
use oxmm::{Gfp, Kernel, VirtAddr};
use oxmm_sim::{Machine, MachineConfig};
use slabmalloc::{AllocationError, Allocator, LargeObjectPage, ObjectPage, ZoneAllocator};

use crate::harness::{compare, Contender, Report, Rng, Settings};

/// Seed of the free-order shuffle.
pub const SEED: u64 = 0x6f78_6d6d_736c_6162;

/// Object sizes compared, in bytes.
pub const SIZES: [usize; 10] = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

/// Thread counts compared.
pub const THREADS: [usize; 2] = [1, 2];

/// Peer name of glibc's `malloc`/`free`.
pub const PEER_GLIBC: &str = "glibc";
/// Peer name of `slabmalloc`'s `ZoneAllocator`.
pub const PEER_SLABMALLOC: &str = "slabmalloc";

/// Alignment asked of every allocator: kmalloc's minimum
/// (`ARCH_KMALLOC_MINALIGN` on x86-64).
pub const MIN_ALIGN: usize = 8;

/// The comparison name for objects of `size` bytes on `threads` threads,
/// e.g. `slab-kmalloc-64-2t`.
pub fn bench_name(size: usize, threads: usize) -> String {
    format!("slab-kmalloc-{size}-{threads}t")
}

/// A general-purpose small-object allocator as the workload sees it.
///
/// Allocations come back as an [`ObjectAllocator::Obj`] that `free`
/// consumes. For the peers it is an owned token only their `alloc` makes
/// (neither `Copy` nor `Clone`), so safe code cannot hand `free` an
/// address twice or one it never got; oxmm's is the plain address, as
/// `kfree` checks its argument itself.
pub trait ObjectAllocator {
    /// An allocated object.
    type Obj;
    /// Allocates `size` bytes aligned to at least [`MIN_ALIGN`]; `None`
    /// when out of memory.
    fn alloc(&mut self, size: usize) -> Option<Self::Obj>;
    /// Frees an object this allocator returned for the same `size`.
    fn free(&mut self, obj: Self::Obj, size: usize);
    /// The object's address, for checksums and tests.
    fn addr(obj: &Self::Obj) -> u64;
}

/// Shape of the work of one comparison (all threads together).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Allocations freed right away.
    pub pairs: usize,
    /// Objects live at once in a round.
    pub batch: usize,
    /// Rounds of "allocate `batch`, free them all in shuffled order".
    pub rounds: usize,
}

impl Params {
    /// The shape the bench runs: 0.8 million operations per comparison,
    /// half of them in pairs, half in 200 rounds of 1000 objects.
    pub fn standard() -> Params {
        Params { pairs: 200_000, batch: 1000, rounds: 200 }
    }

    /// What each of `threads` threads does; the pairs and rounds are
    /// split evenly (rounded down).
    pub fn share(&self, threads: usize) -> Share {
        let t = threads.max(1);
        Share { pairs: self.pairs / t, batch: self.batch, rounds: self.rounds / t }
    }

    /// Operations (allocations plus frees) of one run on `threads` threads.
    pub fn ops(&self, threads: usize) -> u64 {
        threads.max(1) as u64 * self.share(threads).ops()
    }
}

/// One thread's part of the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// Allocations freed right away.
    pub pairs: usize,
    /// Objects live at once in a round.
    pub batch: usize,
    /// Rounds of allocate-then-free.
    pub rounds: usize,
}

impl Share {
    /// Allocations plus frees.
    pub fn ops(&self) -> u64 {
        2 * (self.pairs as u64 + self.batch as u64 * self.rounds as u64)
    }
}

/// The order in which a round frees its batch: a permutation of
/// `0..batch` drawn from `seed`.
pub fn free_order(seed: u64, batch: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..batch as u32).collect();
    Rng::new(seed).shuffle(&mut order);
    order
}

/// Runs one thread's share of the work on `a` with objects of `size`
/// bytes. `order` is the free order of a round (a permutation of
/// `0..share.batch`), `slots` the table of live objects (resized here).
/// After each round's allocations, `on_batch` sees the live objects
/// (tests record them; the bench passes a no-op). Returns the wrapping
/// sum of the addresses handed out, for [`std::hint::black_box`].
pub fn run_share<A: ObjectAllocator>(
    a: &mut A,
    size: usize,
    share: &Share,
    order: &[u32],
    slots: &mut Vec<Option<A::Obj>>,
    mut on_batch: impl FnMut(&[Option<A::Obj>]),
) -> Result<u64, String> {
    let mut seen = vec![false; share.batch];
    let permutation = order.len() == share.batch
        && order.iter().all(|&i| seen.get_mut(i as usize).is_some_and(|s| !std::mem::replace(s, true)));
    if !permutation {
        return Err(format!("the free order is not a permutation of a batch of {}", share.batch));
    }
    let mut sum = 0u64;
    for i in 0..share.pairs {
        let Some(o) = a.alloc(size) else {
            return Err(format!("out of memory at pair {i} ({size} bytes)"));
        };
        sum = sum.wrapping_add(A::addr(&o));
        a.free(o, size);
    }
    slots.clear();
    slots.resize_with(share.batch, || None);
    for round in 0..share.rounds {
        for (i, s) in slots.iter_mut().enumerate() {
            match a.alloc(size) {
                Some(o) => {
                    sum = sum.wrapping_add(A::addr(&o));
                    *s = Some(o);
                }
                None => {
                    for o in slots.iter_mut().filter_map(Option::take) {
                        a.free(o, size);
                    }
                    return Err(format!("out of memory in round {round} at object {i} ({size} bytes)"));
                }
            }
        }
        on_batch(slots);
        for &i in order {
            if let Some(o) = slots[i as usize].take() {
                a.free(o, size);
            }
        }
    }
    Ok(sum)
}

/// Runs `f(thread, state)` on one scoped host thread per element of
/// `states` and adds up the checksums; the first error wins.
fn in_threads<S: Send>(
    states: &mut [S],
    f: impl Fn(usize, &mut S) -> Result<u64, String> + Sync,
) -> Result<u64, String> {
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = states.iter_mut().enumerate().map(|(t, s)| scope.spawn(move || f(t, s))).collect();
        let mut sum = 0u64;
        let mut err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(v)) => sum = sum.wrapping_add(v),
                Ok(Err(e)) => err = err.or(Some(e)),
                Err(_) => err = err.or(Some("a bench thread panicked".to_string())),
            }
        }
        err.map_or(Ok(sum), Err)
    })
}

/// oxmm's `kmalloc`/`kfree` with `GFP_KERNEL` on the running CPU.
pub struct OxmmKmalloc<'k> {
    kernel: &'k Kernel,
    gfp: Gfp,
}

impl<'k> OxmmKmalloc<'k> {
    /// Allocates from `kernel`.
    pub fn new(kernel: &'k Kernel) -> OxmmKmalloc<'k> {
        OxmmKmalloc { kernel, gfp: Gfp::GFP_KERNEL }
    }
}

impl ObjectAllocator for OxmmKmalloc<'_> {
    type Obj = VirtAddr;
    #[inline]
    fn alloc(&mut self, size: usize) -> Option<VirtAddr> {
        self.kernel.kmalloc(size as u64, self.gfp)
    }
    #[inline]
    fn free(&mut self, obj: VirtAddr, _size: usize) {
        self.kernel.kfree(obj);
    }
    #[inline]
    fn addr(obj: &VirtAddr) -> u64 {
        obj.0
    }
}

/// The kmalloc cache that serves `size`-byte requests on `kernel`, found
/// from the slab page of a probe object.
pub fn kmalloc_cache(kernel: &Kernel, size: usize) -> Result<&KmemCache, String> {
    let probe = kernel.kmalloc(size as u64, Gfp::GFP_KERNEL).ok_or_else(|| format!("kmalloc({size}) failed"))?;
    let cache = kernel.virt_to_cache(probe);
    kernel.kfree(probe);
    cache.ok_or_else(|| format!("kmalloc({size}) did not come from a slab cache"))
}

/// glibc's `malloc`/`free`.
pub struct Glibc;

/// An object from [`Glibc`]: the address `malloc` returned, owned until
/// [`ObjectAllocator::free`] consumes it.
#[derive(Debug)]
pub struct GlibcObj(usize);

fn glibc_malloc(size: usize) -> *mut libc::c_void {
    // SAFETY: malloc has no precondition; it returns null or a fresh
    // block of at least `size` bytes.
    unsafe { libc::malloc(size) }
}

fn glibc_free(obj: GlibcObj) {
    // SAFETY: a `GlibcObj` is only made by `Glibc::alloc` from a non-null
    // pointer malloc returned, is neither `Copy` nor `Clone`, and is
    // consumed here: the block is live and freed exactly once.
    unsafe { libc::free(obj.0 as *mut libc::c_void) }
}

impl ObjectAllocator for Glibc {
    type Obj = GlibcObj;
    #[inline]
    fn alloc(&mut self, size: usize) -> Option<GlibcObj> {
        // black_box: the optimizer may not pair up and drop a malloc/free.
        let p = std::hint::black_box(glibc_malloc(size));
        (!p.is_null()).then_some(GlibcObj(p as usize))
    }
    #[inline]
    fn free(&mut self, obj: GlibcObj, _size: usize) {
        glibc_free(obj);
    }
    #[inline]
    fn addr(obj: &GlibcObj) -> u64 {
        obj.0 as u64
    }
}

/// Bytes of a slabmalloc `ObjectPage`.
pub const SMALL_PAGE: usize = 4096;
/// Bytes of a slabmalloc `LargeObjectPage`.
pub const LARGE_PAGE: usize = 2 << 20;

/// Host memory for one slabmalloc allocator: `large` 2 MiB pages and
/// `small` 4 KiB pages, each aligned to its size, written once when
/// made so that no first-touch fault lands in a timed run.
pub struct PageArena {
    buf: Vec<u8>,
    small: usize,
    large: usize,
}

impl PageArena {
    /// An arena of `small` 4 KiB and `large` 2 MiB pages.
    pub fn new(small: usize, large: usize) -> Result<PageArena, String> {
        let bytes = small
            .checked_mul(SMALL_PAGE)
            .and_then(|s| large.checked_mul(LARGE_PAGE)?.checked_add(s)?.checked_add(LARGE_PAGE))
            .ok_or("slabmalloc arena size overflows")?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(bytes).map_err(|e| format!("cannot reserve {bytes} bytes for slabmalloc: {e}"))?;
        // Any byte pattern will do: slabmalloc writes every header field
        // when it takes a page, and never reads object bytes.
        buf.resize(bytes, 0x5a);
        Ok(PageArena { buf, small, large })
    }

    /// The arena cut into page-sized, page-aligned pieces: (4 KiB pages,
    /// 2 MiB pages).
    fn pages(&mut self) -> (Vec<&mut [u8]>, Vec<&mut [u8]>) {
        let start = self.buf.as_ptr() as usize;
        let skip = start.next_multiple_of(LARGE_PAGE) - start;
        let (_, rest) = self.buf.split_at_mut(skip);
        let (large, rest) = rest.split_at_mut(self.large * LARGE_PAGE);
        let small = &mut rest[..self.small * SMALL_PAGE];
        (small.chunks_exact_mut(SMALL_PAGE).collect(), large.chunks_exact_mut(LARGE_PAGE).collect())
    }
}

/// Views a free 4 KiB piece of the arena as a slabmalloc page.
fn as_object_page<'a>(piece: &'a mut [u8]) -> &'a mut ObjectPage<'a> {
    assert!(piece.len() == size_of::<ObjectPage>() && (piece.as_ptr() as usize).is_multiple_of(SMALL_PAGE));
    // SAFETY: the piece is exactly an `ObjectPage` long and aligned to
    // 4096 (above its alignment of 8); its bytes are initialized and every
    // field of `ObjectPage` (bytes, raw pointers, atomics) is valid for any
    // bits; the exclusive borrow moves into the returned reference.
    unsafe { &mut *piece.as_mut_ptr().cast::<ObjectPage<'a>>() }
}

/// Views a free 2 MiB piece of the arena as a slabmalloc large page.
fn as_large_page<'a>(piece: &'a mut [u8]) -> &'a mut LargeObjectPage<'a> {
    assert!(piece.len() == size_of::<LargeObjectPage>() && (piece.as_ptr() as usize).is_multiple_of(LARGE_PAGE));
    // SAFETY: as for `as_object_page`, with a 2 MiB piece aligned to 2 MiB.
    unsafe { &mut *piece.as_mut_ptr().cast::<LargeObjectPage<'a>>() }
}

/// Takes back a page slabmalloc released (`try_reclaim_base_pages`).
fn reclaimed_object_page<'a>(p: *mut ObjectPage<'_>) -> &'a mut ObjectPage<'a> {
    // SAFETY: slabmalloc only releases pages it was given by `refill`,
    // each an `&'a mut ObjectPage<'a>` into the arena, and drops every
    // reference of its own to a page it releases: the pointer is the
    // unique handle of a live, initialized page borrowed for 'a.
    unsafe { &mut *p.cast::<ObjectPage<'a>>() }
}

/// Takes back a large page slabmalloc released (`try_reclaim_large_pages`).
fn reclaimed_large_page<'a>(p: *mut LargeObjectPage<'_>) -> &'a mut LargeObjectPage<'a> {
    // SAFETY: as for `reclaimed_object_page`, for pages given by `refill_large`.
    unsafe { &mut *p.cast::<LargeObjectPage<'a>>() }
}

/// `slabmalloc`'s `ZoneAllocator` with its page provider: the free pages
/// of a [`PageArena`]. On `OutOfMemory` it is refilled with one page of
/// the kind the size class takes and the allocation is retried, as
/// slabmalloc's own `GlobalAlloc` example does.
pub struct SlabmallocHeap<'a> {
    zone: ZoneAllocator<'a>,
    free_small: Vec<&'a mut ObjectPage<'a>>,
    free_large: Vec<&'a mut LargeObjectPage<'a>>,
    small_total: usize,
    large_total: usize,
}

/// An object from [`SlabmallocHeap`], owned until freed.
#[derive(Debug)]
pub struct SlabmallocObj(usize);

impl<'a> SlabmallocHeap<'a> {
    /// An allocator that takes its pages from `arena`.
    pub fn new(arena: &'a mut PageArena) -> SlabmallocHeap<'a> {
        let (small, large) = arena.pages();
        let free_small: Vec<_> = small.into_iter().map(as_object_page).collect();
        let free_large: Vec<_> = large.into_iter().map(as_large_page).collect();
        SlabmallocHeap {
            zone: ZoneAllocator::new(),
            small_total: free_small.len(),
            large_total: free_large.len(),
            free_small,
            free_large,
        }
    }

    /// Pages (4 KiB, 2 MiB) the allocator holds now.
    pub fn pages_held(&self) -> (usize, usize) {
        (self.small_total - self.free_small.len(), self.large_total - self.free_large.len())
    }

    /// Takes back every page slabmalloc holds no object in; returns the
    /// pages (4 KiB, 2 MiB) it still holds, (0, 0) when all objects were
    /// freed.
    pub fn reclaim(&mut self) -> (usize, usize) {
        // The base-page callback must be `Fn`: gather through a RefCell.
        let released = RefCell::new(std::mem::take(&mut self.free_small));
        self.zone.try_reclaim_base_pages(usize::MAX, |p| released.borrow_mut().push(reclaimed_object_page(p)));
        self.free_small = released.into_inner();
        let free_large = &mut self.free_large;
        self.zone.try_reclaim_large_pages(usize::MAX, |p| free_large.push(reclaimed_large_page(p)));
        self.pages_held()
    }

    /// Gives the size class of `layout` one more page; false when the
    /// arena has none left.
    fn refill(&mut self, layout: Layout) -> bool {
        let done = if layout.size() <= ZoneAllocator::MAX_BASE_ALLOC_SIZE {
            self.free_small.pop().map(|page| {
                // SAFETY: the page is a free, unique piece of the arena,
                // borrowed for 'a like the allocator; slabmalloc formats it.
                unsafe { self.zone.refill(layout, page) }
            })
        } else {
            self.free_large.pop().map(|page| {
                // SAFETY: as above, for a 2 MiB piece.
                unsafe { self.zone.refill_large(layout, page) }
            })
        };
        matches!(done, Some(Ok(())))
    }

    fn layout(size: usize) -> Option<Layout> {
        Layout::from_size_align(size, MIN_ALIGN).ok()
    }
}

impl ObjectAllocator for SlabmallocHeap<'_> {
    type Obj = SlabmallocObj;
    #[inline]
    fn alloc(&mut self, size: usize) -> Option<SlabmallocObj> {
        let layout = Self::layout(size)?;
        match self.zone.allocate(layout) {
            Ok(p) => return Some(SlabmallocObj(p.as_ptr() as usize)),
            Err(AllocationError::InvalidLayout) => return None,
            Err(AllocationError::OutOfMemory) => {}
        }
        if !self.refill(layout) {
            // Out of arena pages: take back the empty ones and retry.
            self.reclaim();
            if !self.refill(layout) {
                return None;
            }
        }
        self.zone.allocate(layout).ok().map(|p| SlabmallocObj(p.as_ptr() as usize))
    }
    #[inline]
    fn free(&mut self, obj: SlabmallocObj, size: usize) {
        let (Some(layout), Some(p)) = (Self::layout(size), NonNull::new(obj.0 as *mut u8)) else { return };
        let _ = self.zone.deallocate(p, layout);
    }
    #[inline]
    fn addr(obj: &SlabmallocObj) -> u64 {
        obj.0 as u64
    }
}

/// Everything that sizes a `slab` run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchConfig {
    /// RAM of the simulated machine.
    pub mem_bytes: u64,
    /// Seed of the machine and of the free order.
    pub seed: u64,
    /// The work of each comparison.
    pub params: Params,
    /// Sampling.
    pub settings: Settings,
}

impl BenchConfig {
    /// The configuration `oxmm bench slab` runs: a 512 MiB machine with
    /// two CPUs, [`Params::standard`].
    pub fn standard(quick: bool) -> BenchConfig {
        BenchConfig { mem_bytes: 512 << 20, seed: SEED, params: Params::standard(), settings: Settings { quick } }
    }
}

/// Runs the bench with the standard configuration.
pub fn run(quick: bool, out: &mut dyn Write) -> Result<(), String> {
    bench(&BenchConfig::standard(quick), out)
}

/// Arena pages one slabmalloc allocator needs for `batch` live objects of
/// any size, with room to spare: (4 KiB pages, 2 MiB pages). Its fullest
/// classes hold 15 objects of 256 bytes per 4 KiB page and 511 of 4 KiB
/// per 2 MiB page.
fn arena_pages(batch: usize) -> (usize, usize) {
    (2 * batch.div_ceil(15) + 16, 2 * batch.div_ceil(511) + 2)
}

/// Runs the bench: boots a 2-CPU machine, builds one slabmalloc allocator
/// per thread, times every size on one and two threads, checks after each
/// size that every allocator got all its objects back, and writes the
/// report.
pub fn bench(cfg: &BenchConfig, out: &mut dyn Write) -> Result<(), String> {
    let mut report = Report::new();
    let machine = Machine::boot(&MachineConfig::single(cfg.mem_bytes, 2), cfg.seed)
        .map_err(|e| format!("cannot boot the bench machine: {e}"))?;
    let p = cfg.params;
    let order = free_order(cfg.seed, p.batch);
    let (small, large) = arena_pages(p.batch);
    let mut arenas = [PageArena::new(small, large)?, PageArena::new(small, large)?];
    let mut heaps: Vec<SlabmallocHeap<'_>> = arenas.iter_mut().map(SlabmallocHeap::new).collect();
    report.line(
        out,
        &format!(
            "slab: oxmm kmalloc/kfree (SLUB) vs glibc malloc/free vs slabmalloc ZoneAllocator; \
             {} MiB machine with 2 CPUs; per size: {} alloc/free pairs + {} rounds of {} objects \
             freed in shuffled order ({} ops), split evenly over the threads",
            cfg.mem_bytes >> 20,
            p.pairs,
            p.rounds,
            p.batch,
            p.ops(1)
        ),
    )?;
    report.line(
        out,
        &format!(
            "slab: slabmalloc gets {small} 4 KiB and {large} 2 MiB pages per thread from a pre-touched host \
             arena (2 MiB pages serve its classes above 256 bytes)"
        ),
    )?;
    let kernel = &machine.kernel;
    let mut slots_ox: [Vec<Option<VirtAddr>>; 2] = Default::default();
    let mut slots_gl: [Vec<Option<GlibcObj>>; 2] = Default::default();
    let mut slots_sm: [Vec<Option<SlabmallocObj>>; 2] = Default::default();
    // Every one-thread comparison runs before the first host thread is
    // made: glibc switches to its multi-threaded paths (arena lock,
    // atomic fastbins) for good once a process has had a second thread.
    for &threads in &THREADS {
        for &size in &SIZES {
            let cache = kmalloc_cache(kernel, size)?;
            // Objects in sheaves count as in use (as in slabinfo): shrinking
            // gives them back to the slabs. Sheaves are kmalloc objects
            // themselves, maybe of this very cache, and their number varies
            // with the run: they are left out of the comparison.
            kernel.kmem_cache_shrink(cache.id).map_err(|e| format!("kmem_cache_shrink: {e:?}"))?;
            let in_use = kernel.kmem_cache_objects_in_use(cache) - kernel.sheaves_allocated_from(cache);
            let name = bench_name(size, threads);
            let share = p.share(threads);
            let order = &order[..];
            let c = if threads == 1 {
                let [ox, ..] = &mut slots_ox;
                let [gl, ..] = &mut slots_gl;
                let [sm, ..] = &mut slots_sm;
                let heap = &mut heaps[0];
                let mut contenders = [
                    Contender::new("oxmm", || {
                        run_share(&mut OxmmKmalloc::new(kernel), size, &share, order, ox, |_| {})
                    }),
                    Contender::new(PEER_GLIBC, || run_share(&mut Glibc, size, &share, order, gl, |_| {})),
                    Contender::new(PEER_SLABMALLOC, || run_share(heap, size, &share, order, sm, |_| {})),
                ];
                compare(&name, p.ops(threads), cfg.settings, &mut contenders)?
            } else {
                let hal = &*machine.hal;
                let mut sm_states: Vec<(&mut SlabmallocHeap<'_>, &mut Vec<Option<SlabmallocObj>>)> =
                    heaps.iter_mut().zip(slots_sm.iter_mut()).collect();
                let mut contenders = [
                    Contender::new("oxmm", || {
                        machine.enter_threaded();
                        let r = in_threads(&mut slots_ox, |cpu, slots| {
                            hal.bind_thread(cpu);
                            run_share(&mut OxmmKmalloc::new(kernel), size, &share, order, slots, |_| {})
                        });
                        machine.leave_threaded();
                        r
                    }),
                    Contender::new(PEER_GLIBC, || {
                        in_threads(&mut slots_gl, |_, slots| run_share(&mut Glibc, size, &share, order, slots, |_| {}))
                    }),
                    Contender::new(PEER_SLABMALLOC, || {
                        in_threads(&mut sm_states, |_, (heap, slots)| {
                            run_share(&mut **heap, size, &share, order, slots, |_| {})
                        })
                    }),
                ];
                compare(&name, p.ops(threads), cfg.settings, &mut contenders)?
            };
            report.add(out, &c)?;
            kernel.kmem_cache_shrink(cache.id).map_err(|e| format!("kmem_cache_shrink: {e:?}"))?;
            let after = kernel.kmem_cache_objects_in_use(cache) - kernel.sheaves_allocated_from(cache);
            if after != in_use {
                return Err(format!("oxmm's {} has {after} objects in use after {name}, {in_use} before", cache.name));
            }
            for (t, heap) in heaps.iter_mut().enumerate() {
                let held = heap.reclaim();
                if held != (0, 0) {
                    return Err(format!(
                        "slabmalloc (thread {t}) still holds {} 4 KiB and {} 2 MiB pages after {name}",
                        held.0, held.1
                    ));
                }
            }
        }
    }
    let bad = kernel.bad_pages.load(std::sync::atomic::Ordering::Relaxed);
    if bad != 0 {
        return Err(format!("oxmm reported {bad} bad pages"));
    }
    report.line(
        out,
        "slab: every run freed all it allocated (oxmm objects in use back to start in each kmalloc cache, \
         slabmalloc returned every page)",
    )?;
    report.finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Barrier;

    /// A thread's slot table for oxmm objects.
    type Slots = Vec<Option<VirtAddr>>;

    fn small_params() -> Params {
        Params { pairs: 300, batch: 64, rounds: 4 }
    }

    /// A reference allocator: hands out fresh addresses, tracks the live
    /// set, and fails after `limit` allocations.
    #[derive(Default)]
    struct Model {
        next: u64,
        live: HashSet<u64>,
        peak: usize,
        allocs: u64,
        frees: u64,
        limit: Option<u64>,
    }

    impl ObjectAllocator for Model {
        type Obj = u64;
        fn alloc(&mut self, size: usize) -> Option<u64> {
            if self.limit.is_some_and(|l| self.allocs >= l) {
                return None;
            }
            self.next += size as u64;
            self.allocs += 1;
            assert!(self.live.insert(self.next));
            self.peak = self.peak.max(self.live.len());
            Some(self.next)
        }
        fn free(&mut self, obj: u64, _size: usize) {
            self.frees += 1;
            assert!(self.live.remove(&obj), "free of {obj:#x}, which is not live");
        }
        fn addr(obj: &u64) -> u64 {
            *obj
        }
    }

    #[test]
    fn shares_split_the_work_and_count_operations() {
        let p = Params::standard();
        assert_eq!(p.ops(1), 800_000);
        assert_eq!(p.ops(2), p.ops(1));
        assert_eq!(p.share(2), Share { pairs: 100_000, batch: 1000, rounds: 100 });
        let q = Params { pairs: 3, batch: 5, rounds: 3 };
        assert_eq!(q.share(2), Share { pairs: 1, batch: 5, rounds: 1 });
        assert_eq!(q.ops(2), 2 * 2 * (1 + 5));
    }

    #[test]
    fn free_order_is_a_seeded_permutation() {
        let o = free_order(SEED, 1000);
        let mut sorted = o.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_ne!(o, sorted);
        assert_eq!(o, free_order(SEED, 1000));
        assert_ne!(o, free_order(SEED + 1, 1000));
    }

    #[test]
    fn workload_frees_everything_it_allocates() {
        let share = small_params().share(1);
        let order = free_order(SEED, share.batch);
        let mut m = Model::default();
        let mut batches = 0;
        let sum = run_share(&mut m, 64, &share, &order, &mut Vec::new(), |live| {
            batches += 1;
            assert!(live.iter().all(Option::is_some));
            assert_eq!(live.len(), share.batch);
        })
        .unwrap();
        assert_eq!(batches, share.rounds);
        assert!(m.live.is_empty());
        assert_eq!(m.allocs, m.frees);
        assert_eq!(m.allocs + m.frees, share.ops());
        assert_eq!(m.peak, share.batch);
        assert_ne!(sum, 0);
        // A failure in the middle of a round frees what the round holds.
        let mut m = Model { limit: Some(share.pairs as u64 + 10), ..Model::default() };
        assert!(run_share(&mut m, 64, &share, &order, &mut Vec::new(), |_| {}).is_err());
        assert!(m.live.is_empty());
        // A free order that is not a permutation of the batch is refused.
        assert!(run_share(&mut Model::default(), 8, &share, &order[1..], &mut Vec::new(), |_| {}).is_err());
        let mut twice = order.clone();
        twice[0] = twice[1];
        assert!(run_share(&mut Model::default(), 8, &share, &twice, &mut Vec::new(), |_| {}).is_err());
    }

    /// Objects in use over every cache of the machine.
    fn all_objects_in_use(k: &Kernel) -> u64 {
        k.slab.caches().map(|c| live(k, c)).sum()
    }

    /// Objects in use other than sheaves (SLUB's sheaves are kmalloc
    /// objects, taken and given back as CPUs exchange them).
    fn live(k: &oxmm::Kernel, c: &KmemCache) -> u64 {
        k.kmem_cache_objects_in_use(c) - k.sheaves_allocated_from(c)
    }

    #[test]
    fn oxmm_runs_leave_every_cache_as_they_found_it() {
        let machine = Machine::boot(&MachineConfig::single(256 << 20, 2), 1).unwrap();
        let k = &machine.kernel;
        let p = small_params();
        let order = free_order(SEED, p.batch);
        let total_before = all_objects_in_use(k);
        for &size in &SIZES {
            let cache = kmalloc_cache(k, size).unwrap();
            assert!(cache.size as usize >= size && (cache.size as usize) < 2 * size.max(8), "{}", cache.name);
            k.kmem_cache_shrink(cache.id).unwrap();
            let info = k.kmem_cache_info(cache);
            let in_use = live(k, cache);
            // slabinfo counts objects parked in sheaves as active, as Linux does.
            assert_eq!(
                info.active_objs,
                k.kmem_cache_objects_in_use(cache) + k.sheaf_cached_objects(cache),
                "{} after shrink",
                cache.name
            );

            run_share(&mut OxmmKmalloc::new(k), size, &p.share(1), &order, &mut Vec::new(), |_| {}).unwrap();
            assert_eq!(live(k, cache), in_use, "{} after one thread", cache.name);

            let share = p.share(2);
            let mut slots: [Vec<Option<VirtAddr>>; 2] = Default::default();
            let hal = &*machine.hal;
            machine.enter_threaded();
            in_threads(&mut slots, |cpu, s| {
                hal.bind_thread(cpu);
                run_share(&mut OxmmKmalloc::new(k), size, &share, &order, s, |_| {})
            })
            .unwrap();
            machine.leave_threaded();
            assert_eq!(live(k, cache), in_use, "{} after two threads", cache.name);

            k.kmem_cache_shrink(cache.id).unwrap();
            let after = k.kmem_cache_info(cache);
            assert_eq!(
                after.active_objs,
                k.kmem_cache_objects_in_use(cache) + k.sheaf_cached_objects(cache),
                "{}: slabinfo active_objs",
                cache.name
            );
            assert!(after.num_objs <= info.num_objs.max(after.active_objs + u64::from(cache.objects_per_slab) * 10));
        }
        assert_eq!(all_objects_in_use(k), total_before);
        assert_eq!(k.bad_pages.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn threaded_oxmm_hands_out_no_object_twice() {
        let machine = Machine::boot(&MachineConfig::single(256 << 20, 2), 2).unwrap();
        let k = &machine.kernel;
        let p = Params { pairs: 200, batch: 300, rounds: 6 };
        let share = p.share(2);
        let order = free_order(SEED, p.batch);
        let hal = &*machine.hal;
        for &size in &SIZES {
            let cache = kmalloc_cache(k, size).unwrap();
            let in_use = live(k, cache);
            let barrier = Barrier::new(2);
            // Per thread: the live set of each round, taken while the
            // other thread holds its own (both wait at the barrier).
            let mut seen: [(Slots, Vec<Vec<u64>>); 2] = Default::default();
            machine.enter_threaded();
            in_threads(&mut seen, |cpu, (slots, rounds)| {
                hal.bind_thread(cpu);
                run_share(&mut OxmmKmalloc::new(k), size, &share, &order, slots, |live| {
                    for o in live.iter().flatten() {
                        assert!(
                            k.virt_to_cache(*o).is_some_and(|c| c.id == cache.id),
                            "{:#x} is not an object of {}",
                            o.0,
                            cache.name
                        );
                    }
                    rounds.push(live.iter().flatten().map(|v| v.0).collect());
                    barrier.wait();
                })
            })
            .unwrap();
            machine.leave_threaded();
            let [(_, a), (_, b)] = &seen;
            assert_eq!((a.len(), b.len()), (share.rounds, share.rounds));
            for (r, (a, b)) in a.iter().zip(b).enumerate() {
                let both: HashSet<u64> = a.iter().chain(b).copied().collect();
                assert_eq!(both.len(), 2 * p.batch, "size {size} round {r}: an object is live twice");
                for &o in &both {
                    assert_eq!(o % size as u64, 0, "size {size}: {o:#x} not naturally aligned");
                }
            }
            assert_eq!(live(k, cache), in_use);
        }
    }

    #[test]
    fn slabmalloc_heap_gives_distinct_objects_and_every_page_back() {
        let p = small_params();
        let (small, large) = arena_pages(p.batch);
        let mut arena = PageArena::new(small, large).unwrap();
        let lo = arena.buf.as_ptr() as u64;
        let hi = lo + arena.buf.len() as u64;
        let mut heap = SlabmallocHeap::new(&mut arena);
        assert_eq!(heap.pages_held(), (0, 0));
        let order = free_order(SEED, p.batch);
        for &size in &SIZES {
            run_share(&mut heap, size, &p.share(1), &order, &mut Vec::new(), |live| {
                let addrs: HashSet<u64> = live.iter().flatten().map(SlabmallocHeap::addr).collect();
                assert_eq!(addrs.len(), live.len(), "size {size}: an object is live twice");
                assert!(addrs.iter().all(|&a| a >= lo && a + size as u64 <= hi && a % MIN_ALIGN as u64 == 0));
            })
            .unwrap();
            let held = heap.pages_held();
            assert!(held != (0, 0));
            assert_eq!(heap.reclaim(), (0, 0), "size {size}");
        }
        // A live object keeps its page.
        let o = heap.alloc(100).unwrap();
        assert_eq!(heap.reclaim(), (1, 0));
        heap.free(o, 100);
        let big = heap.alloc(3000).unwrap();
        assert_eq!(heap.reclaim(), (0, 1));
        heap.free(big, 3000);
        assert_eq!(heap.reclaim(), (0, 0));
        assert!(heap.alloc(1 << 20).is_none(), "above slabmalloc's largest class");
    }

    #[test]
    fn slabmalloc_heap_reports_exhaustion() {
        let mut arena = PageArena::new(1, 0).unwrap();
        let mut heap = SlabmallocHeap::new(&mut arena);
        let objs: Vec<_> = std::iter::from_fn(|| heap.alloc(256)).take(100).collect();
        assert_eq!(objs.len(), 15, "one 4 KiB page holds 15 objects of 256 bytes");
        assert!(heap.alloc(512).is_none(), "no 2 MiB page to give");
        for o in objs {
            heap.free(o, 256);
        }
        assert_eq!(heap.reclaim(), (0, 0));
    }

    #[test]
    fn glibc_objects_are_distinct_and_aligned() {
        let share = small_params().share(1);
        let order = free_order(SEED, share.batch);
        for &size in &SIZES {
            run_share(&mut Glibc, size, &share, &order, &mut Vec::new(), |live| {
                let addrs: HashSet<u64> = live.iter().flatten().map(Glibc::addr).collect();
                assert_eq!(addrs.len(), live.len());
                assert!(addrs.iter().all(|a| a % MIN_ALIGN as u64 == 0));
            })
            .unwrap();
        }
    }

    #[test]
    fn small_bench_prints_all_ratio_lines() {
        let cfg = BenchConfig {
            mem_bytes: 256 << 20,
            seed: SEED,
            params: small_params(),
            settings: Settings { quick: true },
        };
        let mut out = Vec::new();
        bench(&cfg, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let ratios: Vec<(String, String)> = lines
            .iter()
            .filter(|l| l.starts_with("ratio "))
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                assert_eq!(f.len(), 4, "{l}");
                let v: f64 = f[3].parse().unwrap_or_else(|e| panic!("{l}: {e}"));
                assert!(v.is_finite() && v > 0.0, "{l}");
                assert_eq!(f[3].split_once('.').map(|(_, d)| d.len()), Some(3), "{l}");
                (f[1].to_string(), f[2].to_string())
            })
            .collect();
        let mut want = Vec::new();
        for threads in THREADS {
            for size in SIZES {
                for peer in [PEER_GLIBC, PEER_SLABMALLOC] {
                    want.push((bench_name(size, threads), peer.to_string()));
                }
            }
        }
        assert_eq!(ratios, want);
        assert_eq!(want[0], ("slab-kmalloc-8-1t".to_string(), "glibc".to_string()));
        assert_eq!(want[1], ("slab-kmalloc-8-1t".to_string(), "slabmalloc".to_string()));
        assert_eq!(want[2 * SIZES.len()], ("slab-kmalloc-8-2t".to_string(), "glibc".to_string()));
        let first_ratio = lines.iter().position(|l| l.starts_with("ratio ")).unwrap();
        assert_eq!(first_ratio + want.len(), lines.len(), "ratio lines come last, together");
        for size in SIZES {
            for threads in THREADS {
                let name = bench_name(size, threads);
                assert!(
                    lines[..first_ratio].iter().any(|l| l.starts_with(&format!("{name}  oxmm "))
                        && l.contains(" ns/op  glibc ")
                        && l.contains(" ns/op  slabmalloc ")),
                    "no readable line for {name}"
                );
            }
        }
    }
}
