//! SLOB, the "simple list of blocks" allocator (Linux's `mm/slob.c`,
//! removed upstream in 6.4): a first-fit heap over whole pages, meant for
//! machines where a few kilobytes matter more than speed.
//!
//! # Design (as Linux)
//!
//! - Memory is counted in units of [`SLOB_UNIT`] bytes (2 with 4 KiB
//!   pages). Blocks of any size, from any cache, share the same pages: a
//!   page holds objects of many caches and kmalloc blocks side by side.
//! - The free blocks of a page form an address-ordered singly linked list
//!   kept inside the free space itself. A free block of several units
//!   holds its size in its first unit and the offset (in units, from the
//!   page start) of the next free block in its second; a one-unit block
//!   holds only the negated next offset. The last block points at offset
//!   [`PAGE_UNITS`], the end of the page. The page's first free block and
//!   its count of free units live in `struct page`.
//! - Pages with free space sit on three global lists by request size:
//!   `free_slob_small` (< 256 bytes), `free_slob_medium` (< 1024) and
//!   `free_slob_large`. An allocation scans its list for a page with
//!   enough free units on the right node, then first-fits inside the page
//!   (splitting a block to honour alignment); the page that satisfied it
//!   becomes the list head, so the next search starts there (the next-fit
//!   rotation). A full page leaves its list; a page that gets a block back
//!   returns to the list of that block's size; an entirely free page goes
//!   straight back to the page allocator. Frees insert in address order
//!   and merge with both neighbours.
//! - Cache objects of a page or more come straight from the page allocator
//!   (`slob_new_pages`), as do kmallocs of `PAGE_SIZE - 8` bytes or more
//!   (compound pages). Smaller kmallocs carry an 8-byte header holding
//!   their size, in front of the returned address.
//! - Constructors run on every allocation; `kmem_cache_shrink` has nothing
//!   to do (SLOB never keeps an empty page).
//!
//! # Pages and accounting
//!
//! A shared SLOB page has `PG_slab` set and `mapping` = [`SLOB_PAGE_MAPPING`]
//! (whose low 32 bits are zero, so it names no cache: `virt_to_cache` finds
//! none, which is true). `index` holds the first free block's offset in
//! units and `private` the free units, the list the page is on and the
//! debug and quarantine bits. Each such page counts one page of
//! `NR_SLAB_UNRECLAIMABLE` (SLOB had no reclaimable pages). A page of a
//! big cache object has `PG_slab` and `mapping` = the cache id, like a
//! one-object SLUB slab, and counts as reclaimable when the cache has
//! `SLAB_RECLAIM_ACCOUNT`. Large kmallocs are plain compound pages counted
//! as unreclaimable slab, marked in the head's `private`.
//!
//! /proc/slabinfo: SLOB has no slabs of its own per cache, so a cache
//! reports its live objects as both active and total objects, and as slabs
//! the pages those objects fill (`ceil(live * size / PAGE_SIZE)` for small
//! objects, `live << order` for big ones). `objperslab` is `PAGE_SIZE / size`.
//!
//! # Where we differ from Linux
//!
//! - Zone modifiers (`__GFP_DMA`, `__GFP_DMA32`) pick pages of a suitable
//!   zone from the lists; Linux's SLOB only applied them to new pages.
//! - Every free checks that the block lies inside the page, does not
//!   overlap a free block (a double free) and that the encoded offsets it
//!   walks are in range and increasing. A bad free is reported and
//!   ignored. A free-list entry that fails the checks gets the page
//!   quarantined: it leaves the lists, nothing is allocated from it or
//!   freed into it again, and its memory stays counted as slab (leaked).
//! - kmalloc headers also hold a magic word, so `kfree` of a pointer
//!   kmalloc never returned, or a second `kfree`, is reported, not obeyed.
//!   `kfree` of a big cache object frees it; of a small one is reported.
//! - Debugging (Linux's SLOB had none). Debug caches use their own three
//!   lists of debug pages, whose free space is kept filled with
//!   `POISON_FREE` (`0x6b`). A debug object follows an 8-byte header (a
//!   live tag and the cache id: a left red zone and proof of ownership at
//!   free); with `SLAB_RED_ZONE` [`SLOB_RED_ZONE`] guard bytes follow it
//!   (plus the block's rounding to the alignment), `0xcc`, checked at
//!   free. With `SLAB_POISON` a block being handed out must still hold
//!   poison (a write after free is reported and repaired). A debug
//!   cache's every allocation and free checks its page's whole free list.
//!   Reports have SLUB's shape (`BUG <cache> (Not tainted): ...`).
//! - Objects of `SLAB_TYPESAFE_BY_RCU` caches are freed at once (the
//!   simulator has no RCU grace periods to wait for).
//!
//! # Locking
//!
//! One global `slob_lock` ([`SlobGlobal`]) guards the lists, every SLOB
//! page's free list and its `struct page` words. The page allocator is
//! called without it (new pages are made, and empty pages freed, outside),
//! as Linux does. The global state is shared by every cache through an
//! `Arc` made by the first SLOB cache; kmalloc finds it through that cache.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

use super::debug::{POISON_FREE, SLUB_RED_ACTIVE};
use super::kmalloc::{KMALLOC_MAX_SIZE, ZERO_SIZE_PTR};
use super::slub::get_order;
use super::{calculate_alignment, CacheArgs, CacheId, CacheImpl, KmemCache, SlabError, SlabFlags, SlabInfo};
use crate::arch::x86_64::{phys_to_virt, virt_to_phys};
use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::page::pg;
use crate::page_alloc::PageList;
use crate::types::{Pfn, VirtAddr, MAX_PAGE_ORDER, PAGE_SIZE};
use crate::vmstat::NodeStat;

/// Bytes in one SLOB unit (`SLOB_UNIT`: an `s16` with 4 KiB pages).
pub const SLOB_UNIT: u64 = 2;
/// Units in a page (`SLOB_UNITS(PAGE_SIZE)`); as a next offset, "end of list".
pub const PAGE_UNITS: u32 = (PAGE_SIZE / SLOB_UNIT) as u32;
/// Requests below this many bytes use the small list (`SLOB_BREAK1`).
pub const SLOB_BREAK1: u64 = 256;
/// Requests below this many bytes use the medium list (`SLOB_BREAK2`).
pub const SLOB_BREAK2: u64 = 1024;
/// `page.mapping` of a shared SLOB page. Its low 32 bits are zero, so a
/// reader taking `mapping as u32` as a cache id gets the id no cache has.
pub const SLOB_PAGE_MAPPING: u64 = 0x510b << 32;
/// Header in front of each small kmalloc block, and kmalloc's minimum
/// alignment (`max(ARCH_KMALLOC_MINALIGN, ARCH_SLAB_MINALIGN)` on x86-64).
pub const SLOB_MINALIGN: u64 = 8;
/// Header in front of each object of a debug cache (our addition).
pub const SLOB_DEBUG_HDR: u32 = 8;
/// Guard bytes after each object of a `SLAB_RED_ZONE` cache (our addition).
pub const SLOB_RED_ZONE: u32 = 8;

/// Magic word in the second half of a kmalloc header.
const KMALLOC_MAGIC: u32 = 0x6b6d_616c;
/// Tag of a live object of a debug cache.
const OBJ_LIVE: u32 = 0x0b1e_c7ed;
/// `private` of the head page of a large kmalloc.
const LARGE_KMALLOC: u64 = 0x6b6d_616c_6c61_7267;

// `page.private` of a SLOB page: free units, list (0: none, else class + 1), bits.
const UNITS_MASK: u64 = 0xffff;
const LIST_SHIFT: u32 = 16;
const DEBUG_PAGE: u64 = 1 << 20;
const QUARANTINED: u64 = 1 << 21;

/// The lists of pages with free space, plain and debug, by size class.
#[derive(Default)]
struct SlobLists {
    free: [[PageList; 3]; 2],
}

/// SLOB's global heap: `slob_lock` with the `free_slob_*` lists.
pub struct SlobGlobal {
    lists: spin::Mutex<SlobLists>,
    /// Shared SLOB pages held (not counting big objects and large kmallocs).
    pub pages: AtomicU64,
}

impl Default for SlobGlobal {
    /// An empty heap: no pages on the lists.
    fn default() -> SlobGlobal {
        SlobGlobal { lists: spin::Mutex::new(SlobLists::default()), pages: AtomicU64::new(0) }
    }
}

/// SLOB's part of a cache.
pub struct SlobCache {
    /// The heap every SLOB cache shares.
    pub global: Arc<SlobGlobal>,
    /// Objects allocated and not freed.
    pub live: AtomicU64,
    /// Objects come from the page allocator, one per block of `2^order` pages.
    pub big: bool,
}

/// The SLOB state of a cache. Only called on caches this back-end made.
fn imp(c: &KmemCache) -> &SlobCache {
    match &c.imp {
        CacheImpl::Slob(s) => s,
        _ => unreachable!("SLOB function on a cache of another back-end"),
    }
}

/// Units holding `bytes` (`SLOB_UNITS`).
fn slob_units(bytes: u64) -> u32 {
    bytes.div_ceil(SLOB_UNIT) as u32
}

/// The list a request of `bytes` uses: 0 small, 1 medium, 2 large.
fn size_class(bytes: u64) -> usize {
    (bytes >= SLOB_BREAK1) as usize + (bytes >= SLOB_BREAK2) as usize
}

/// The GFP bits a page allocation for SLOB keeps: reclaim behaviour and
/// zone, not `__GFP_ZERO` or mobility.
fn page_gfp(gfp: Gfp) -> Gfp {
    let keep = [Gfp::RECLAIM, Gfp::IO, Gfp::FS, Gfp::HIGH, Gfp::NOWARN, Gfp::NORETRY, Gfp::RETRY_MAYFAIL, Gfp::NOFAIL]
        .into_iter()
        .chain([Gfp::NOMEMALLOC, Gfp::MEMALLOC, Gfp::DMA, Gfp::DMA32])
        .fold(0, |a, g| a | g.0);
    Gfp(gfp.0 & keep)
}

/// The `struct page` words of a shared SLOB page, decoded.
#[derive(Clone, Copy)]
struct PageState {
    units: u32,
    list: u32,
    debug: bool,
    quarantined: bool,
}

impl PageState {
    fn load(page: &crate::page::Page) -> PageState {
        let v = page.private.load(Relaxed);
        PageState {
            units: (v & UNITS_MASK) as u32,
            list: ((v >> LIST_SHIFT) & 3) as u32,
            debug: v & DEBUG_PAGE != 0,
            quarantined: v & QUARANTINED != 0,
        }
    }
    fn store(self, page: &crate::page::Page) {
        let bits = (u64::from(self.debug) * DEBUG_PAGE) | (u64::from(self.quarantined) * QUARANTINED);
        page.private.store(u64::from(self.units) | (u64::from(self.list) << LIST_SHIFT) | bits, Relaxed);
    }
}

/// A free-list entry that failed the checks: its offset, and why.
type Corrupt = (u32, &'static str);
/// The free blocks around a block: the one before as (offset, units), the
/// one after as (offset, units, next).
type Around = (Option<(u32, u32)>, Option<(u32, u32, u32)>);

/// The units of one page, read and written in simulated RAM.
struct Units<'a>(&'a [AtomicU8]);

impl Units<'_> {
    fn get(&self, i: u32) -> i16 {
        let b = i as usize * 2;
        i16::from_le_bytes([self.0[b].load(Relaxed), self.0[b + 1].load(Relaxed)])
    }
    fn put(&self, i: u32, v: i16) {
        let b = i as usize * 2;
        let [lo, hi] = v.to_le_bytes();
        self.0[b].store(lo, Relaxed);
        self.0[b + 1].store(hi, Relaxed);
    }
    /// Encodes a free block of `units` at `off` whose successor is `next` (`set_slob`).
    fn set_block(&self, off: u32, units: u32, next: u32) {
        if units > 1 {
            self.put(off, units as i16);
            self.put(off + 1, next as i16);
        } else {
            self.put(off, -(next as i16));
        }
    }
    /// Decodes the free block at `off` as (units, next offset), checking
    /// that both stay inside the page, that the list moves forward and that
    /// the block ends before its successor.
    fn block(&self, off: u32) -> Result<(u32, u32), &'static str> {
        if off >= PAGE_UNITS {
            return Err("block offset outside the page");
        }
        let v = self.get(off);
        let (units, next) = if v > 0 {
            if v == 1 || off + 1 >= PAGE_UNITS {
                return Err("size field out of range");
            }
            (v as u32, i32::from(self.get(off + 1)))
        } else {
            (1, -i32::from(v))
        };
        if next <= off as i32 || next > PAGE_UNITS as i32 {
            return Err("next offset out of range");
        }
        if off + units > next as u32 {
            return Err("block overlaps the next free block");
        }
        Ok((units, next as u32))
    }
    /// Sets `n` units from `off` to `byte`.
    fn fill(&self, off: u32, n: u32, byte: u8) {
        for b in &self.0[off as usize * 2..(off + n) as usize * 2] {
            b.store(byte, Relaxed);
        }
    }
    /// Walks the whole free list, checking every entry and that the free
    /// units add up to the page's count.
    fn check_list(&self, head: u32, free: u32) -> Result<(), Corrupt> {
        if free == 0 {
            return Ok(());
        }
        let (mut cur, mut sum) = (head, 0);
        loop {
            let (u, n) = self.block(cur).map_err(|e| (cur, e))?;
            sum += u;
            if n == PAGE_UNITS {
                break;
            }
            cur = n;
        }
        (sum == free).then_some(()).ok_or((head, "free units do not add up to the page's count"))
    }
    /// The free blocks around offset `bo`, checking entries on the way: the
    /// last one before it as (offset, units) and the first one at or after
    /// it as (offset, units, next).
    fn neighbours(&self, head: u32, free: u32, bo: u32) -> Result<Around, Corrupt> {
        let (mut prev, mut cur) = (None, head);
        if free == 0 {
            return Ok((None, None));
        }
        loop {
            let (u, n) = self.block(cur).map_err(|e| (cur, e))?;
            if cur >= bo {
                return Ok((prev, Some((cur, u, n))));
            }
            prev = Some((cur, u));
            if n == PAGE_UNITS {
                return Ok((prev, None));
            }
            cur = n;
        }
    }
    /// First fit of `units` units in the list from `head`, placed so that
    /// `block + align_off` is `align`-aligned (`slob_page_alloc`). Returns
    /// the block's offset and the list's new head.
    fn alloc(&self, head: u32, units: u32, align: u64, align_off: u64) -> Result<Option<(u32, u32)>, Corrupt> {
        let mut prev: Option<(u32, u32)> = None;
        let mut cur = head;
        loop {
            let (avail, next) = self.block(cur).map_err(|e| (cur, e))?;
            let start = u64::from(cur) * SLOB_UNIT;
            let delta = ((start + align_off).next_multiple_of(align) - align_off - start) / SLOB_UNIT;
            let delta = delta as u32;
            if avail >= units + delta {
                let (mut prev, mut cur, mut avail, mut head) = (prev, cur, avail, head);
                if delta > 0 {
                    // Split off the misaligned front as a free block of its own.
                    self.set_block(cur + delta, avail - delta, next);
                    self.set_block(cur, delta, cur + delta);
                    prev = Some((cur, delta));
                    cur += delta;
                    avail -= delta;
                }
                let follow = if avail == units {
                    next
                } else {
                    self.set_block(cur + units, avail - units, next);
                    cur + units
                };
                match prev {
                    Some((p, pu)) => self.set_block(p, pu, follow),
                    None => head = follow,
                }
                return Ok(Some((cur, head)));
            }
            if next == PAGE_UNITS {
                return Ok(None);
            }
            prev = Some((cur, avail));
            cur = next;
        }
    }
}

/// Does a block at `bo` of `bu` units overlap the free blocks around it?
fn overlaps((prev, next): Around, bo: u32, bu: u32) -> bool {
    prev.is_some_and(|(p, pu)| p + pu > bo) || next.is_some_and(|(n, _, _)| n < bo + bu)
}

/// Who asks: the name reports carry, the bytes in front of the object
/// (a block is placed so that `block + hdr` is `align`-aligned), whether
/// the debug lists and checks apply.
struct Req<'a> {
    name: &'a str,
    hdr: u64,
    align: u64,
    debug: bool,
    poison: bool,
}

impl<'a> Req<'a> {
    fn of(c: &'a KmemCache) -> Req<'a> {
        Req {
            name: &c.name,
            hdr: u64::from(c.red_left_pad),
            align: u64::from(c.align),
            debug: c.flags.intersects(SlabFlags::DEBUG_FLAGS),
            poison: c.flags.contains(SlabFlags::POISON),
        }
    }
    const KMALLOC: Req<'static> =
        Req { name: "kmalloc", hdr: SLOB_MINALIGN, align: SLOB_MINALIGN, debug: false, poison: false };
}

/// Builds a SLOB cache (`__kmem_cache_create`): objects below a page are
/// blocks of the shared heap; bigger ones (or ones whose alignment a page
/// cannot give) are whole page blocks.
pub fn new_cache(k: &Kernel, id: CacheId, args: &CacheArgs<'_>) -> Result<KmemCache, SlabError> {
    let mut flags = args.flags;
    let debug = flags.intersects(SlabFlags::DEBUG_FLAGS);
    if flags.contains(SlabFlags::POISON) {
        flags = flags | SlabFlags::OBJECT_POISON;
    }
    let align = calculate_alignment(flags, args.align, args.size);
    let hdr = if debug { SLOB_DEBUG_HDR } else { 0 };
    let mut rz = if flags.contains(SlabFlags::RED_ZONE) { SLOB_RED_ZONE } else { 0 };
    // Debug blocks are rounded to the alignment (the guard takes the
    // slack), so they pack without alignment fragments between them.
    let unit = if debug { u64::from(align).max(SLOB_UNIT) } else { SLOB_UNIT };
    let small = (u64::from(hdr) + u64::from(args.size) + u64::from(rz)).next_multiple_of(unit);
    // Where the block starts in an empty page so the object is aligned.
    let lead = u64::from(hdr).next_multiple_of(u64::from(align)) - u64::from(hdr);
    let big = small >= PAGE_SIZE || lead + small > PAGE_SIZE || u64::from(align) > PAGE_SIZE;
    let (size, hdr, order) = if big {
        let mut order = get_order(u64::from(args.size + rz).max(u64::from(align)));
        if order > MAX_PAGE_ORDER && rz > 0 {
            rz = 0;
            order = get_order(u64::from(args.size).max(u64::from(align)));
        }
        if order > MAX_PAGE_ORDER {
            return Err(SlabError::Invalid("object too large"));
        }
        (args.size + rz, 0, order)
    } else {
        (small as u32, hdr, 0)
    };
    // Zone bits always; reclaimable only for big objects' own pages.
    let reclaim = if big { SlabFlags::RECLAIM_ACCOUNT } else { SlabFlags(0) };
    let allocflags =
        [(SlabFlags::CACHE_DMA, Gfp::DMA), (SlabFlags::CACHE_DMA32, Gfp::DMA32), (reclaim, Gfp::RECLAIMABLE)]
            .into_iter()
            .filter(|&(f, _)| f.0 != 0 && flags.contains(f))
            .fold(Gfp::empty(), |a, (_, g)| a | g);
    let global = k.slob_global().cloned().unwrap_or_default();
    Ok(KmemCache {
        id,
        name: args.name.into(),
        object_size: args.size,
        size,
        align,
        inuse: size - hdr,
        offset: 0,
        red_left_pad: hdr,
        flags,
        ctor: args.ctor,
        order,
        objects_per_slab: if big { 1 } else { (PAGE_SIZE / u64::from(size)) as u32 },
        reciprocal_size: (1u64 << 32).div_ceil(u64::from(size)),
        allocflags,
        refcount: core::sync::atomic::AtomicU32::new(1),
        alive: core::sync::atomic::AtomicBool::new(true),
        aliases: spin::Mutex::new(Vec::new()),
        descriptor: spin::Mutex::new(Vec::new()),
        imp: CacheImpl::Slob(SlobCache { global, live: AtomicU64::new(0), big }),
    })
}

const BAR: &str = "=============================================================================";
const DASH: &str = "-----------------------------------------------------------------------------";

impl Kernel {
    /// The SLOB heap, found through the first SLOB cache (`None` on a
    /// machine booted with another back-end).
    pub fn slob_global(&self) -> Option<&Arc<SlobGlobal>> {
        self.slab.caches.iter().skip(1).filter_map(|c| c.get()).find_map(|c| match &c.imp {
            CacheImpl::Slob(s) => Some(&s.global),
            _ => None,
        })
    }

    /// Pages for SLOB: from node `nid`, or any (`usize::MAX`).
    fn slob_get_pages(&self, gfp: Gfp, order: u32, nid: usize) -> Option<Pfn> {
        if nid == usize::MAX {
            self.alloc_pages(gfp, order)
        } else {
            self.alloc_pages_node(nid, gfp, order)
        }
    }

    fn slob_units_of(&self, sp: Pfn) -> Units<'_> {
        Units(self.mem.view::<AtomicU8>(sp.phys(), PAGE_SIZE as usize))
    }

    fn slob_base(sp: Pfn) -> u64 {
        phys_to_virt(sp.phys()).0
    }

    /// Reports a SLOB bug in SLUB's shape: banner, page, object.
    fn slob_bug(&self, name: &str, sp: Pfn, obj: Option<VirtAddr>, what: core::fmt::Arguments<'_>) {
        let page = self.memmap.page(sp);
        let st = PageState::load(page);
        let base = Self::slob_base(sp);
        self.log.err(format_args!("{BAR}"));
        self.log.err(format_args!("BUG {name} (Not tainted): {what}"));
        self.log.err(format_args!("{DASH}"));
        let (units, fp, flags) = (st.units, page.index.load(Relaxed), page.flag_bits());
        self.log.err(format_args!("Slab {base:#x} free_units={units} fp={fp:#x} flags={flags:#x}"));
        if let Some(o) = obj {
            self.log.err(format_args!("Object {:#x} @offset={}", o.0, o.0.wrapping_sub(base)));
        }
    }

    fn slob_fix(&self, name: &str, what: core::fmt::Arguments<'_>) {
        self.log.err(format_args!("FIX {name}: {what}"));
    }

    /// Reports a free of something that is not a live block.
    fn slob_bad_free(&self, name: &str, obj: VirtAddr, why: &str) {
        self.log.err(format_args!("{BAR}"));
        self.log.err(format_args!("BUG {name} (Not tainted): Invalid object pointer {:#x}: {why}", obj.0));
        self.slob_fix(name, format_args!("Object at {:#x} not freed", obj.0));
    }

    fn slob_list_add(&self, l: &mut SlobLists, sp: Pfn, st: &mut PageState, class: usize) {
        l.free[st.debug as usize][class].push_front(&self.memmap, sp);
        st.list = class as u32 + 1;
    }

    fn slob_list_del(&self, l: &mut SlobLists, sp: Pfn, st: &mut PageState) {
        if st.list != 0 {
            l.free[st.debug as usize][st.list as usize - 1].remove(&self.memmap, sp);
            st.list = 0;
        }
    }

    /// Takes a page with a corrupt free list out of service and reports
    /// the entry that failed the checks.
    fn slob_quarantine(&self, l: &mut SlobLists, sp: Pfn, req: &Req<'_>, entry: u32, why: &str) {
        let page = self.memmap.page(sp);
        let mut st = PageState::load(page);
        self.slob_list_del(l, sp, &mut st);
        st.quarantined = true;
        st.store(page);
        let base = Self::slob_base(sp);
        let e = base + u64::from(entry) * SLOB_UNIT;
        self.slob_bug(req.name, sp, Some(VirtAddr(e + req.hdr)), format_args!("Freepointer corrupt"));
        self.log.err(format_args!("Free block {e:#x} @offset={}: {why}", e - base));
        self.slob_fix(req.name, format_args!("Page {base:#x} quarantined: nothing is allocated from it again"));
    }

    /// Checks that `len` bytes at `start` all hold `val`; else reports
    /// `what` overwritten and restores the pattern (`check_bytes_and_report`).
    fn slob_check_bytes(&self, name: &str, sp: Pfn, obj: VirtAddr, what: &str, (start, len): (u64, u64), val: u8) {
        let mut buf = alloc::vec![0u8; len as usize];
        self.kread(VirtAddr(start), &mut buf);
        let Some(first) = buf.iter().position(|&b| b != val) else { return };
        let last = buf.iter().rposition(|&b| b != val).unwrap_or(first);
        let (a, z) = (start + first as u64, start + last as u64);
        self.slob_bug(name, sp, Some(obj), format_args!("{what} overwritten"));
        let off = a - Self::slob_base(sp);
        self.log.err(format_args!("{a:#x}-{z:#x} @offset={off}. First byte {:#x} instead of {val:#x}", buf[first]));
        self.kfill(VirtAddr(a), z - a + 1, val);
        self.slob_fix(name, format_args!("Restoring {what} {a:#x}-{z:#x}={val:#x}"));
    }

    /// Allocates from one page with the lock held; the page leaves its
    /// list when full and is quarantined when its list is corrupt.
    fn slob_take(&self, l: &mut SlobLists, req: &Req<'_>, sp: Pfn, units: u32) -> Option<u64> {
        let page = self.memmap.page(sp);
        let mut st = PageState::load(page);
        if st.units < units || st.quarantined {
            return None;
        }
        let m = self.slob_units_of(sp);
        let head = page.index.load(Relaxed) as u32;
        let r = if req.debug { m.check_list(head, st.units) } else { Ok(()) };
        match r.and_then(|()| m.alloc(head, units, req.align.max(SLOB_UNIT), req.hdr)) {
            Err((entry, why)) => {
                self.slob_quarantine(l, sp, req, entry, why);
                None
            }
            Ok(None) => None,
            Ok(Some((off, new_head))) => {
                st.units -= units;
                page.index.store(u64::from(new_head), Relaxed);
                if st.units == 0 {
                    self.slob_list_del(l, sp, &mut st);
                }
                st.store(page);
                let block = Self::slob_base(sp) + u64::from(off) * SLOB_UNIT;
                // A block from a debug page holds poison past its first two
                // units (where its free-list entry was).
                let len = u64::from(units) * SLOB_UNIT;
                if req.poison && st.debug && len > 4 {
                    let obj = VirtAddr(block + req.hdr);
                    self.slob_check_bytes(req.name, sp, obj, "Poison", (block + 4, len - 4), POISON_FREE);
                }
                Some(block)
            }
        }
    }

    /// A fresh SLOB page: one free block covering it (`slob_new_pages`
    /// plus the set-up in `slob_alloc`).
    fn slob_new_page(&self, g: &SlobGlobal, gfp: Gfp, nid: usize, debug: bool) -> Option<Pfn> {
        let gfp = page_gfp(gfp);
        let sp = self.slob_get_pages(gfp, 0, nid)?;
        let page = self.memmap.page(sp);
        page.set(pg::SLAB);
        page.mapping.store(SLOB_PAGE_MAPPING, Relaxed);
        page.index.store(0, Relaxed);
        PageState { units: PAGE_UNITS, list: 0, debug, quarantined: false }.store(page);
        if debug {
            self.kfill(VirtAddr(Self::slob_base(sp)), PAGE_SIZE, POISON_FREE);
        }
        self.slob_units_of(sp).set_block(0, PAGE_UNITS, PAGE_UNITS);
        self.nodes[page.nid()].stat.add(NodeStat::NrSlabUnreclaimable as usize, 1);
        g.pages.fetch_add(1, Relaxed);
        Some(sp)
    }

    /// Gives an empty SLOB page back to the page allocator.
    fn slob_release_page(&self, g: &SlobGlobal, sp: Pfn) {
        let page = self.memmap.page(sp);
        page.clear(pg::SLAB);
        page.mapping.store(0, Relaxed);
        page.index.store(0, Relaxed);
        page.private.store(0, Relaxed);
        self.nodes[page.nid()].stat.add(NodeStat::NrSlabUnreclaimable as usize, -1);
        g.pages.fetch_sub(1, Relaxed);
        self.free_pages(sp, 0);
    }

    /// Allocates a block of `size` bytes placed as `req` says (`slob_alloc`): scan the size class's list for a
    /// page on the right node and zone with room, first fit inside it,
    /// make it the list head; else a new page.
    fn slob_alloc_block(&self, g: &SlobGlobal, req: &Req<'_>, size: u64, gfp: Gfp, nid: usize) -> Option<u64> {
        let units = slob_units(size);
        let class = size_class(size);
        let d = req.debug as usize;
        let zone = page_gfp(gfp).zone();
        {
            let mut l = g.lists.lock();
            let mut cur = l.free[d][class].first();
            while let Some(sp) = cur {
                let page = self.memmap.page(sp);
                let next = page.lru_next.load(Relaxed);
                cur = (next != crate::page::NIL).then_some(Pfn(next));
                if (nid != usize::MAX && page.nid() != nid) || page.zonenum() > zone {
                    continue;
                }
                if let Some(b) = self.slob_take(&mut l, req, sp, units) {
                    // Next fit: the next search starts at this page.
                    if PageState::load(page).list != 0 {
                        let list = &mut l.free[d][class];
                        while let Some(f) = list.first().filter(|&f| f != sp) {
                            list.remove(&self.memmap, f);
                            list.push_back(&self.memmap, f);
                        }
                    }
                    return Some(b);
                }
            }
        }
        let sp = self.slob_new_page(g, gfp, nid, req.debug)?;
        let mut l = g.lists.lock();
        let page = self.memmap.page(sp);
        let mut st = PageState::load(page);
        self.slob_list_add(&mut l, sp, &mut st, class);
        st.store(page);
        self.slob_take(&mut l, req, sp, units)
    }

    /// Returns a block of `size` bytes at `block` to its page (`slob_free`).
    /// The block must lie in a SLOB page and overlap no free block; then
    /// `accept` (run with the lock held) may still refuse it. True when the
    /// block is gone (freed, or dropped into a quarantined page).
    fn slob_free_block(
        &self,
        g: &SlobGlobal,
        req: &Req<'_>,
        obj: VirtAddr,
        block: u64,
        size: u64,
        accept: impl FnOnce(Pfn) -> bool,
    ) -> bool {
        let Some(pa) = virt_to_phys(VirtAddr(block)).filter(|pa| self.memmap.pfn_valid(pa.pfn())) else {
            self.slob_bad_free(req.name, obj, "not a kernel address in RAM");
            return false;
        };
        let sp = pa.pfn();
        let off = pa.0 % PAGE_SIZE;
        let (bo, bu) = ((off / SLOB_UNIT) as u32, slob_units(size));
        let mut l = g.lists.lock();
        let page = self.memmap.page(sp);
        let slob_page = page.test(pg::SLAB) && page.mapping.load(Relaxed) == SLOB_PAGE_MAPPING;
        if !slob_page || !off.is_multiple_of(SLOB_UNIT) || bo + bu > PAGE_UNITS {
            drop(l);
            self.slob_bad_free(req.name, obj, "not a block of a SLOB page");
            return false;
        }
        let mut st = PageState::load(page);
        if st.quarantined {
            return true;
        }
        let m = self.slob_units_of(sp);
        let head = page.index.load(Relaxed) as u32;
        let checked = if req.debug { m.check_list(head, st.units) } else { Ok(()) };
        let around = match checked.and_then(|()| m.neighbours(head, st.units, bo)) {
            Ok(a) => a,
            Err((entry, why)) => {
                self.slob_quarantine(&mut l, sp, req, entry, why);
                return true;
            }
        };
        let (prev, next) = around;
        if st.units + bu > PAGE_UNITS || overlaps(around, bo, bu) {
            self.slob_bug(req.name, sp, Some(obj), format_args!("Object already free"));
            self.slob_fix(req.name, format_args!("Object at {:#x} not freed", obj.0));
            return false;
        }
        if !accept(sp) {
            return false;
        }
        if st.units + bu == PAGE_UNITS {
            // Entirely free: straight back to the page allocator.
            self.slob_list_del(&mut l, sp, &mut st);
            st.store(page);
            drop(l);
            self.slob_release_page(g, sp);
            return true;
        }
        if st.debug {
            m.fill(bo, bu, POISON_FREE);
        }
        if st.units == 0 {
            // It was full: it becomes partially free, on the list of this size.
            m.set_block(bo, bu, PAGE_UNITS);
            page.index.store(u64::from(bo), Relaxed);
            st.units = bu;
            self.slob_list_add(&mut l, sp, &mut st, size_class(size));
        } else {
            let (mut len, mut follow) = (bu, next.map_or(PAGE_UNITS, |(n, _, _)| n));
            if let Some((n, nu, nn)) = next.filter(|&(n, _, _)| n == bo + bu) {
                if st.debug {
                    m.fill(n, nu.min(2), POISON_FREE);
                }
                len += nu;
                follow = nn;
            }
            match prev {
                Some((p, pu)) if p + pu == bo => m.set_block(p, pu + len, follow),
                Some((p, pu)) => {
                    m.set_block(bo, len, follow);
                    m.set_block(p, pu, bo);
                }
                None => {
                    m.set_block(bo, len, follow);
                    page.index.store(u64::from(bo), Relaxed);
                }
            }
            st.units += bu;
        }
        st.store(page);
        true
    }

    /// Checks a debug object being freed (lock held): its header must say
    /// "live, this cache"; its red zone is checked and repaired. Clears the
    /// live tag. False refuses the free.
    fn slob_debug_free_checks(&self, c: &KmemCache, sp: Pfn, obj: VirtAddr, block: u64) -> bool {
        let (tag, id) = self.slob_read_hdr(block);
        if tag != OBJ_LIVE || id != c.id.0 {
            let what = format_args!("Invalid object header {tag:#x}/{id}: already freed, or not from this cache");
            self.slob_bug(&c.name, sp, Some(obj), what);
            self.slob_fix(&c.name, format_args!("Object at {:#x} not freed", obj.0));
            return false;
        }
        self.slob_check_red_zone(c, sp, obj, c.inuse - c.object_size);
        self.kwrite(VirtAddr(block), &0u32.to_le_bytes());
        true
    }

    /// Checks (and repairs) the guard bytes after an object.
    fn slob_check_red_zone(&self, c: &KmemCache, sp: Pfn, obj: VirtAddr, rz_len: u32) {
        if c.flags.contains(SlabFlags::RED_ZONE) && rz_len > 0 {
            let start = obj.0 + u64::from(c.object_size);
            self.slob_check_bytes(&c.name, sp, obj, "Right Redzone", (start, u64::from(rz_len)), SLUB_RED_ACTIVE);
        }
    }

    /// Counts a big object's pages as slab, reclaimable or not as its cache says.
    fn slob_big_stat(&self, c: &KmemCache, page: &crate::page::Page, pages: i64) {
        let reclaimable = c.allocflags.contains(Gfp::RECLAIMABLE);
        let item = if reclaimable { NodeStat::NrSlabReclaimable } else { NodeStat::NrSlabUnreclaimable };
        self.nodes[page.nid()].stat.add(item as usize, pages);
    }

    /// Reads the two words of a header (kmalloc's or a debug object's).
    fn slob_read_hdr(&self, at: u64) -> (u32, u32) {
        let mut h = [0u8; 8];
        self.kread(VirtAddr(at), &mut h);
        (u32::from_le_bytes([h[0], h[1], h[2], h[3]]), u32::from_le_bytes([h[4], h[5], h[6], h[7]]))
    }

    fn slob_write_hdr(&self, at: u64, a: u32, b: u32) {
        self.kwrite(VirtAddr(at), &(u64::from(a) | u64::from(b) << 32).to_le_bytes());
    }

    /// A big object: its own block of pages (`slob_new_pages`), marked as a
    /// one-object slab of the cache.
    fn slob_alloc_big(&self, c: &KmemCache, gfp: Gfp, nid: usize) -> Option<VirtAddr> {
        let g = page_gfp(gfp) | c.allocflags | if c.order > 0 { Gfp::COMP } else { Gfp::empty() };
        let pfn = self.slob_get_pages(g, c.order, nid)?;
        let page = self.memmap.page(pfn);
        page.set(pg::SLAB);
        page.mapping.store(u64::from(c.id.0), Relaxed);
        self.slob_big_stat(c, page, 1 << c.order);
        let obj = phys_to_virt(pfn.phys());
        if c.flags.contains(SlabFlags::RED_ZONE) && c.size > c.object_size {
            self.kfill(VirtAddr(obj.0 + u64::from(c.object_size)), u64::from(c.size - c.object_size), SLUB_RED_ACTIVE);
        }
        Some(obj)
    }

    /// Frees a big object; false (with a report) when `obj` is not one of
    /// this cache's live objects.
    fn slob_free_big(&self, c: &KmemCache, obj: VirtAddr) -> bool {
        let Some(pa) = virt_to_phys(obj).filter(|pa| self.memmap.pfn_valid(pa.pfn())) else {
            self.slob_bad_free(&c.name, obj, "not a kernel address in RAM");
            return false;
        };
        let pfn = pa.pfn();
        let page = self.memmap.page(pfn);
        let owned = page.test(pg::SLAB) && page.mapping.load(Relaxed) == u64::from(c.id.0);
        if !pa.0.is_multiple_of(PAGE_SIZE) || self.page_folio(pfn).pfn != pfn || !owned {
            if page.ref_count() == 0 && pa.0.is_multiple_of(PAGE_SIZE) {
                // Its pages are back in the page allocator.
                self.slob_bug(&c.name, pfn, Some(obj), format_args!("Object already free"));
                self.slob_fix(&c.name, format_args!("Object at {:#x} not freed", obj.0));
            } else {
                self.slob_bad_free(&c.name, obj, "not an object of this cache");
            }
            return false;
        }
        self.slob_check_red_zone(c, pfn, obj, c.size - c.object_size);
        page.clear(pg::SLAB);
        page.mapping.store(0, Relaxed);
        self.slob_big_stat(c, page, -(1i64 << c.order));
        self.folio_put(self.page_folio(pfn));
        true
    }

    /// Allocates an object (`slob_alloc_node` / `kmem_cache_alloc_node`);
    /// `nid` `usize::MAX` means any node. The constructor runs every time.
    pub(crate) fn slob_alloc(&self, c: &KmemCache, gfp: Gfp, nid: usize) -> Option<VirtAddr> {
        let s = imp(c);
        let obj = if s.big {
            self.slob_alloc_big(c, gfp, nid)?
        } else {
            let req = Req::of(c);
            let block = self.slob_alloc_block(&s.global, &req, u64::from(c.size), gfp | c.allocflags, nid)?;
            let obj = VirtAddr(block + req.hdr);
            if req.debug {
                self.slob_write_hdr(block, OBJ_LIVE, c.id.0);
                if c.flags.contains(SlabFlags::RED_ZONE) {
                    let rz = obj.0 + u64::from(c.object_size);
                    self.kfill(VirtAddr(rz), u64::from(c.inuse - c.object_size), SLUB_RED_ACTIVE);
                }
            }
            obj
        };
        if let Some(ctor) = c.ctor {
            let mut buf = alloc::vec![0u8; c.object_size as usize];
            self.kread(obj, &mut buf);
            ctor(&mut buf);
            self.kwrite(obj, &buf);
        }
        s.live.fetch_add(1, Relaxed);
        Some(obj)
    }

    /// Frees an object (`kmem_cache_free`). Something that is not a live
    /// object of this cache is reported and ignored (as far as the checks
    /// can tell; debug caches tell exactly).
    pub(crate) fn slob_free(&self, c: &KmemCache, obj: VirtAddr) {
        let s = imp(c);
        let freed = if s.big {
            self.slob_free_big(c, obj)
        } else if !obj.0.is_multiple_of(u64::from(c.align)) || obj.0 < u64::from(c.red_left_pad) {
            self.slob_bad_free(&c.name, obj, "misaligned for this cache");
            false
        } else {
            let req = Req::of(c);
            let block = obj.0 - req.hdr;
            let debug = req.debug;
            self.slob_free_block(&s.global, &req, obj, block, u64::from(c.size), |sp| {
                !debug || self.slob_debug_free_checks(c, sp, obj, block)
            })
        };
        if freed {
            let _ = s.live.fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1));
        }
    }

    /// Is `obj` a live object of this cache, as far as SLOB can tell? A
    /// big object must start its own slab page of the cache; a small one
    /// must be aligned, lie in a SLOB page and overlap no free block, and
    /// for a debug cache carry its header (`TypedCache::from_raw`'s check).
    pub fn slob_object_valid(&self, c: &KmemCache, obj: VirtAddr) -> bool {
        let s = imp(c);
        let Some(pa) = virt_to_phys(obj).filter(|pa| self.memmap.pfn_valid(pa.pfn())) else { return false };
        let page = self.memmap.page(pa.pfn());
        if s.big {
            let head = pa.0.is_multiple_of(PAGE_SIZE) && self.page_folio(pa.pfn()).pfn == pa.pfn();
            return head && page.test(pg::SLAB) && page.mapping.load(Relaxed) == u64::from(c.id.0);
        }
        let (hdr, off) = (u64::from(c.red_left_pad), pa.0 % PAGE_SIZE);
        if !obj.0.is_multiple_of(u64::from(c.align)) || off < hdr || off - hdr + u64::from(c.size) > PAGE_SIZE {
            return false;
        }
        let (bo, bu) = (((off - hdr) / SLOB_UNIT) as u32, slob_units(u64::from(c.size)));
        let _l = s.global.lists.lock();
        let st = PageState::load(page);
        if !page.test(pg::SLAB) || page.mapping.load(Relaxed) != SLOB_PAGE_MAPPING {
            return false;
        }
        // A quarantined page's free list is not trusted; its objects still live.
        let head = page.index.load(Relaxed) as u32;
        let free = if st.quarantined { 0 } else { st.units };
        let around = self.slob_units_of(pa.pfn()).neighbours(head, free, bo);
        around.is_ok_and(|a| !overlaps(a, bo, bu))
            && (hdr == 0 || self.slob_read_hdr(obj.0 - hdr) == (OBJ_LIVE, c.id.0))
    }

    /// Nothing to do: SLOB frees a page as soon as it is empty (Linux's
    /// SLOB `kmem_cache_shrink` returned 0 too).
    pub(crate) fn slob_shrink(&self, _c: &KmemCache) {}

    /// /proc/slabinfo numbers: live objects, and the pages they fill.
    pub(crate) fn slob_info(&self, c: &KmemCache) -> SlabInfo {
        let s = imp(c);
        let live = s.live.load(Relaxed);
        let pages = if s.big { live << c.order } else { (live * u64::from(c.size)).div_ceil(PAGE_SIZE) };
        SlabInfo { active_objs: live, num_objs: live, active_slabs: pages, num_slabs: pages, ..SlabInfo::default() }
    }

    /// Objects allocated from a cache and not freed, exactly.
    pub fn slob_objects_in_use(&self, c: &KmemCache) -> u64 {
        imp(c).live.load(Relaxed)
    }

    /// SLOB's `kmalloc`: below `PAGE_SIZE - 8` bytes, a heap block with an
    /// 8-byte header holding the size (a power-of-two size is aligned to
    /// itself); otherwise a compound page block. `kmalloc(0)` is
    /// `ZERO_SIZE_PTR`.
    pub fn slob_kmalloc(&self, size: u64, gfp: Gfp) -> Option<VirtAddr> {
        self.slob_kmalloc_node(size, gfp, usize::MAX)
    }

    /// SLOB's `kmalloc_node` (`__do_kmalloc_node`); `nid` `usize::MAX`: any node.
    pub fn slob_kmalloc_node(&self, size: u64, gfp: Gfp, nid: usize) -> Option<VirtAddr> {
        if size == 0 {
            return Some(ZERO_SIZE_PTR);
        }
        if size > KMALLOC_MAX_SIZE {
            if !gfp.contains(Gfp::NOWARN) {
                self.log.warn(format_args!("kmalloc: size {size} above KMALLOC_MAX_SIZE"));
            }
            return None;
        }
        if size < PAGE_SIZE - SLOB_MINALIGN {
            let g = self.slob_global()?;
            let align = if size.is_power_of_two() { size.max(SLOB_MINALIGN) } else { SLOB_MINALIGN };
            let m = self.slob_alloc_block(g, &Req { align, ..Req::KMALLOC }, size + SLOB_MINALIGN, gfp, nid)?;
            self.slob_write_hdr(m, size as u32, KMALLOC_MAGIC);
            let obj = VirtAddr(m + SLOB_MINALIGN);
            if gfp.contains(Gfp::ZERO) {
                self.kfill(obj, size, 0);
            }
            return Some(obj);
        }
        let order = get_order(size);
        let g = page_gfp(gfp) | Gfp(gfp.0 & Gfp::ZERO.0) | if order > 0 { Gfp::COMP } else { Gfp::empty() };
        let pfn = self.slob_get_pages(g, order, nid)?;
        let page = self.memmap.page(pfn);
        page.private.store(LARGE_KMALLOC, Relaxed);
        self.nodes[page.nid()].stat.add(NodeStat::NrSlabUnreclaimable as usize, 1 << order);
        Some(phys_to_virt(pfn.phys()))
    }

    /// The header of a small kmalloc block: (block address, size), if `obj`
    /// has a readable one with the magic word.
    fn slob_kmalloc_header(&self, obj: VirtAddr) -> Option<(u64, u64)> {
        if !obj.0.is_multiple_of(SLOB_MINALIGN) || obj.0 % PAGE_SIZE < SLOB_MINALIGN {
            return None;
        }
        let m = obj.0 - SLOB_MINALIGN;
        let (size, magic) = self.slob_read_hdr(m);
        let size = u64::from(size);
        let fits = size > 0 && m % PAGE_SIZE + size + SLOB_MINALIGN <= PAGE_SIZE;
        (magic == KMALLOC_MAGIC && fits).then_some((m, size))
    }

    /// SLOB's `kfree`: a heap block by its header, a large kmalloc by its
    /// page, a big cache object by its cache. NULL and `ZERO_SIZE_PTR` are
    /// ignored; anything else kmalloc did not return is reported, not obeyed.
    pub fn slob_kfree(&self, obj: VirtAddr) {
        if obj.0 <= ZERO_SIZE_PTR.0 {
            return;
        }
        let Some(pa) = virt_to_phys(obj).filter(|pa| self.memmap.pfn_valid(pa.pfn())) else {
            self.log.err(format_args!("kfree: {:#x} is not a kernel address in RAM", obj.0));
            return;
        };
        let folio = self.page_folio(pa.pfn());
        let page = self.memmap.page(folio.pfn);
        if page.test(pg::SLAB) && page.mapping.load(Relaxed) == SLOB_PAGE_MAPPING {
            let Some(g) = self.slob_global() else { return };
            let Some((m, size)) = self.slob_kmalloc_header(obj) else {
                // Already freed (the magic is cleared), or not a kmalloc block.
                let what = format_args!("kfree of a block kmalloc did not return, or already freed");
                self.slob_bug("kmalloc", pa.pfn(), Some(obj), what);
                self.slob_fix("kmalloc", format_args!("Object at {:#x} not freed", obj.0));
                return;
            };
            self.slob_free_block(g, &Req::KMALLOC, obj, m, size + SLOB_MINALIGN, |_| {
                self.kwrite(VirtAddr(m + 4), &0u32.to_le_bytes());
                true
            });
            return;
        }
        if page.test(pg::SLAB) {
            if let Some(c) = self.slab.cache(CacheId(page.mapping.load(Relaxed) as u32)) {
                self.kmem_cache_free(c.id, obj);
                return;
            }
        }
        let live = page.ref_count() > 0 && page.private.load(Relaxed) == LARGE_KMALLOC;
        if folio.pfn != pa.pfn() || !pa.0.is_multiple_of(PAGE_SIZE) || !live {
            self.log.err(format_args!("kfree: {:#x} was not returned by kmalloc, or is already free", obj.0));
            return;
        }
        let order = folio.order(self);
        page.private.store(0, Relaxed);
        self.nodes[page.nid()].stat.add(NodeStat::NrSlabUnreclaimable as usize, -(1i64 << order));
        self.folio_put(folio);
    }

    /// SLOB's `ksize`: a heap block's size rounded to units, a page
    /// block's size, a big cache object's size; 0 for `ZERO_SIZE_PTR` and
    /// for what kmalloc did not return.
    pub fn slob_ksize(&self, obj: VirtAddr) -> u64 {
        if obj.0 <= ZERO_SIZE_PTR.0 {
            return 0;
        }
        let Some(pa) = virt_to_phys(obj).filter(|pa| self.memmap.pfn_valid(pa.pfn())) else { return 0 };
        let folio = self.page_folio(pa.pfn());
        let page = self.memmap.page(folio.pfn);
        if page.test(pg::SLAB) {
            if page.mapping.load(Relaxed) == SLOB_PAGE_MAPPING {
                return self.slob_kmalloc_header(obj).map_or(0, |(_, size)| size.next_multiple_of(SLOB_UNIT));
            }
            return self.slab.cache(CacheId(page.mapping.load(Relaxed) as u32)).map_or(0, |c| u64::from(c.object_size));
        }
        if page.private.load(Relaxed) == LARGE_KMALLOC {
            PAGE_SIZE << folio.order(self)
        } else {
            0
        }
    }
}
