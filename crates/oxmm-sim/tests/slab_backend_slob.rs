//! The SLOB back-end on a booted machine: a property test against a
//! reference model, the debug reports, and the packing of objects of many
//! caches into shared pages.

use std::collections::{BTreeMap, HashMap, HashSet};

use oxmm::printk::Level;
use oxmm::slab::kmalloc::ZERO_SIZE_PTR;
use oxmm::slab::{CacheArgs, CacheId, SlabFlags, SlabKind};
use oxmm::{Gfp, Kernel, VirtAddr};
use oxmm_sim::{Machine, MachineConfig};
use proptest::prelude::*;

fn machine(kind: SlabKind, seed: u64) -> Machine {
    Machine::boot(&MachineConfig { slab: kind, ..MachineConfig::single(1 << 30, 2) }, seed).unwrap()
}

fn slob() -> Machine {
    machine(SlabKind::Slob, 1)
}

/// Pages of slab memory (meminfo's Slab line).
fn slab_pages(k: &Kernel) -> u64 {
    let (r, u) = k.slab_pages();
    r + u
}

fn slob_pages(k: &Kernel) -> u64 {
    k.slob_global().unwrap().pages.load(std::sync::atomic::Ordering::Relaxed)
}

fn in_use(k: &Kernel, id: CacheId) -> u64 {
    k.slob_objects_in_use(k.slab.cache(id).unwrap())
}

fn errors(k: &Kernel) -> usize {
    k.log.count_matching(Level::Err, "")
}

fn has_line(k: &Kernel, needle: &str) -> bool {
    k.log.lines().iter().any(|(_, l)| l.contains(needle))
}

const CTOR_BYTE: u8 = 0xc7;

fn ctor(b: &mut [u8]) {
    b.fill(CTOR_BYTE);
}

#[derive(Clone, Debug)]
enum Op {
    Alloc { cache: usize, zero: bool },
    Free { pick: usize },
    Kmalloc { size: u64, zero: bool },
    Kfree { pick: usize },
    Shrink { cache: usize },
}

const NCACHES: usize = 6;

fn op() -> impl Strategy<Value = Op> {
    let ksize = prop_oneof![4 => 1u64..256, 2 => 256u64..1100, 2 => 1100u64..4200, 1 => 4200u64..20_000];
    prop_oneof![
        6 => (0..NCACHES, any::<bool>()).prop_map(|(cache, zero)| Op::Alloc { cache, zero }),
        4 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        3 => (ksize, any::<bool>()).prop_map(|(size, zero)| Op::Kmalloc { size, zero }),
        2 => any::<usize>().prop_map(|pick| Op::Kfree { pick }),
        1 => (0..NCACHES).prop_map(|cache| Op::Shrink { cache }),
    ]
}

/// A live allocation in the model.
struct Obj {
    addr: u64,
    len: u64,
    pat: u8,
}

/// The reference model: live objects per cache and kmallocs, and the
/// byte ranges they own.
#[derive(Default)]
struct Model {
    caches: Vec<Vec<Obj>>,
    kmallocs: Vec<Obj>,
    /// start -> end of every owned range (kmalloc ranges include the header).
    ranges: BTreeMap<u64, u64>,
    next_pat: u8,
}

impl Model {
    fn claim(&mut self, start: u64, end: u64) {
        if let Some((&s, &e)) = self.ranges.range(..end).next_back() {
            assert!(e <= start || s >= end, "block {start:#x}-{end:#x} overlaps live {s:#x}-{e:#x}");
        }
        self.ranges.insert(start, end);
    }
    fn pattern(&mut self) -> u8 {
        self.next_pat = self.next_pat % 250 + 1;
        self.next_pat
    }
}

fn fill(k: &Kernel, o: &Obj) {
    k.kwrite(VirtAddr(o.addr), &vec![o.pat; o.len as usize]);
}

fn verify(k: &Kernel, o: &Obj) {
    let mut buf = vec![0u8; o.len as usize];
    k.kread(VirtAddr(o.addr), &mut buf);
    assert!(buf.iter().all(|&b| b == o.pat), "object {:#x}+{} lost its contents", o.addr, o.len);
}

/// Bytes before a kmalloc'd address that its allocation owns (the header).
fn kmalloc_head(size: u64) -> u64 {
    if size < 4096 - 8 {
        8
    } else {
        0
    }
}

fn run_model(cache_sizes: [u32; 3], align_size: u32, ctor_size: u32, ops: &[Op]) {
    let m = slob();
    let k = &m.kernel;
    let base_slab = slab_pages(k);
    let base_slob = slob_pages(k);
    let errs0 = errors(k);
    let specs: [(u32, u32, bool); NCACHES] = [
        (cache_sizes[0], 0, false),
        (cache_sizes[1], 0, false),
        (cache_sizes[2], 0, false),
        (align_size, 64, false),
        (ctor_size, 0, true),
        (4096, 0, false),
    ];
    let ids: Vec<CacheId> = specs
        .iter()
        .enumerate()
        .map(|(i, &(size, align, with_ctor))| {
            let name = format!("model{i}");
            let args = CacheArgs {
                name: &name,
                size,
                align,
                flags: SlabFlags::default(),
                ctor: if with_ctor { Some(ctor as fn(&mut [u8])) } else { None },
            };
            k.kmem_cache_create(&args).unwrap()
        })
        .collect();
    let mut md = Model { caches: (0..NCACHES).map(|_| Vec::new()).collect(), ..Model::default() };
    for op in ops {
        match *op {
            Op::Alloc { cache, zero } => {
                let (size, align, with_ctor) = specs[cache];
                let zero = zero && !with_ctor;
                let gfp = if zero { Gfp::GFP_KERNEL | Gfp::ZERO } else { Gfp::GFP_KERNEL };
                let a = k.kmem_cache_alloc(ids[cache], gfp).expect("cache allocation");
                assert_eq!(a.0 % u64::from(align.max(8)), 0, "cache {cache} alignment");
                let mut buf = vec![0u8; size as usize];
                k.kread(a, &mut buf);
                if with_ctor {
                    assert!(buf.iter().all(|&b| b == CTOR_BYTE), "constructor ran");
                } else if zero {
                    assert!(buf.iter().all(|&b| b == 0), "zeroed");
                }
                md.claim(a.0, a.0 + u64::from(size));
                let o = Obj { addr: a.0, len: u64::from(size), pat: md.pattern() };
                fill(k, &o);
                md.caches[cache].push(o);
            }
            Op::Free { pick } => {
                let live: usize = md.caches.iter().map(Vec::len).sum();
                if live == 0 {
                    continue;
                }
                let mut i = pick % live;
                let cache = md.caches.iter().position(|v| {
                    if i < v.len() {
                        true
                    } else {
                        i -= v.len();
                        false
                    }
                });
                let cache = cache.unwrap();
                let o = md.caches[cache].swap_remove(i);
                verify(k, &o);
                md.ranges.remove(&o.addr);
                k.kmem_cache_free(ids[cache], VirtAddr(o.addr));
            }
            Op::Kmalloc { size, zero } => {
                let gfp = if zero { Gfp::GFP_KERNEL | Gfp::ZERO } else { Gfp::GFP_KERNEL };
                let a = k.slob_kmalloc(size, gfp).expect("kmalloc");
                assert_eq!(a.0 % 8, 0, "kmalloc minimum alignment");
                if size.is_power_of_two() {
                    assert_eq!(a.0 % size.min(4096), 0, "power-of-two kmalloc of {size} aligned to its size");
                }
                assert!(k.slob_ksize(a) >= size, "ksize covers the request");
                if zero {
                    let mut buf = vec![1u8; size as usize];
                    k.kread(a, &mut buf);
                    assert!(buf.iter().all(|&b| b == 0), "kzalloc zeroed");
                }
                md.claim(a.0 - kmalloc_head(size), a.0 + size);
                let o = Obj { addr: a.0, len: size, pat: md.pattern() };
                fill(k, &o);
                md.kmallocs.push(o);
            }
            Op::Kfree { pick } => {
                if md.kmallocs.is_empty() {
                    continue;
                }
                let o = md.kmallocs.swap_remove(pick % md.kmallocs.len());
                verify(k, &o);
                md.ranges.remove(&(o.addr - kmalloc_head(o.len)));
                k.slob_kfree(VirtAddr(o.addr));
            }
            Op::Shrink { cache } => k.kmem_cache_shrink(ids[cache]).unwrap(),
        }
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(in_use(k, id), md.caches[i].len() as u64, "live objects of cache {i}");
        }
    }
    // Everything still intact; then free it all.
    for o in md.caches.iter().flatten().chain(md.kmallocs.iter()) {
        verify(k, o);
    }
    for (i, objs) in md.caches.iter().enumerate() {
        for o in objs {
            k.kmem_cache_free(ids[i], VirtAddr(o.addr));
        }
    }
    for o in &md.kmallocs {
        k.slob_kfree(VirtAddr(o.addr));
    }
    for &id in &ids {
        assert_eq!(in_use(k, id), 0);
        k.kmem_cache_destroy(id).unwrap();
    }
    assert_eq!(errors(k), errs0, "no reports: {:#?}", k.log.lines());
    assert_eq!(slob_pages(k), base_slob, "every SLOB page given back");
    assert_eq!(slab_pages(k), base_slab, "meminfo Slab back to where it was");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn slob_against_a_model(
        sizes in [8u32..=4096, 8u32..=4096, 8u32..=512],
        align_size in 8u32..=1000,
        ctor_size in 8u32..=300,
        ops in prop::collection::vec(op(), 1..1500),
    ) {
        run_model(sizes, align_size, ctor_size, &ops);
    }
}

#[test]
fn slob_model_long_run() {
    // One long deterministic run: many pages, list rotation, full pages
    // coming back to the lists.
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let ops: Vec<Op> = (0..20_000)
        .map(|i| {
            let r = next();
            let phase_alloc = (i / 2500) % 2 == 0;
            match r % 10 {
                0..=4 if phase_alloc => Op::Alloc { cache: (r >> 8) as usize % NCACHES, zero: r & 0x100 != 0 },
                0..=2 => Op::Alloc { cache: (r >> 8) as usize % NCACHES, zero: false },
                3..=5 => Op::Free { pick: (r >> 16) as usize },
                6 | 7 => Op::Kmalloc { size: 1 + (r >> 20) % if r & 0x200 != 0 { 200 } else { 5000 }, zero: false },
                8 => Op::Kfree { pick: (r >> 16) as usize },
                _ => Op::Free { pick: (r >> 24) as usize },
            }
        })
        .collect();
    run_model([24, 700, 3000], 100, 48, &ops);
}

fn debug_flags() -> SlabFlags {
    SlabFlags::CONSISTENCY_CHECKS | SlabFlags::RED_ZONE | SlabFlags::POISON
}

fn debug_cache(k: &Kernel, name: &str, size: u32) -> CacheId {
    k.kmem_cache_create(&CacheArgs { name, size, align: 0, flags: debug_flags(), ctor: None }).unwrap()
}

#[test]
fn debug_write_past_object_and_double_free() {
    let m = slob();
    let k = &m.kernel;
    let id = debug_cache(k, "slob_dbg", 100);
    let keep = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    // A write past the end of the object hits the red zone.
    let a = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    k.kwrite(VirtAddr(a.0 + 100), &[0x41]);
    k.kmem_cache_free(id, a);
    assert_eq!(k.log.count_matching(Level::Err, "BUG slob_dbg (Not tainted): Right Redzone overwritten"), 1);
    assert!(has_line(k, &format!("Object {:#x}", a.0)));
    assert_eq!(in_use(k, id), 1, "the object is freed once the red zone is repaired");
    // A double free is caught and ignored.
    let b = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    k.kmem_cache_free(id, b);
    k.kmem_cache_free(id, b);
    assert_eq!(k.log.count_matching(Level::Err, "BUG slob_dbg (Not tainted): Object already free"), 1);
    assert!(has_line(k, &format!("Object {:#x}", b.0)));
    assert_eq!(in_use(k, id), 1);
    // A double free after the block went to another cache is caught too,
    // and the other cache's object survives.
    let other = debug_cache(k, "slob_dbg2", 100);
    let c = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    k.kmem_cache_free(id, c);
    let x = k.kmem_cache_alloc(other, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(x, c, "first fit hands the same block to the other cache");
    k.kwrite(x, &[0x55; 100]);
    let before = k.log.count_matching(Level::Err, "BUG slob_dbg (Not tainted)");
    k.kmem_cache_free(id, c);
    assert_eq!(k.log.count_matching(Level::Err, "BUG slob_dbg (Not tainted)"), before + 1);
    let mut buf = [0u8; 100];
    k.kread(x, &mut buf);
    assert_eq!(buf, [0x55; 100]);
    k.kmem_cache_free(other, x);
    assert_eq!(in_use(k, other), 0);
    // A pointer into the middle of an object is refused.
    let d = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    let (dc, oc) = (k.slab.cache(id).unwrap(), k.slab.cache(other).unwrap());
    assert!(k.slob_object_valid(dc, d) && k.slob_object_valid(dc, keep));
    assert!(!k.slob_object_valid(dc, VirtAddr(d.0 + 8)), "inside an object");
    assert!(!k.slob_object_valid(oc, d), "another cache's object");
    let e = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    k.kmem_cache_free(id, e);
    assert!(!k.slob_object_valid(dc, e), "a freed object");
    k.kmem_cache_free(id, VirtAddr(d.0 + 4));
    assert!(k.log.count_matching(Level::Err, &format!("Invalid object pointer {:#x}", d.0 + 4)) == 1);
    k.kmem_cache_free(id, d);
    k.kmem_cache_free(id, keep);
    assert_eq!(in_use(k, id), 0);
    k.kmem_cache_destroy(id).unwrap();
    k.kmem_cache_destroy(other).unwrap();
    assert!(k.slob_kmalloc(64, Gfp::GFP_KERNEL).is_some(), "the machine keeps running");
}

#[test]
fn debug_poison_catches_write_after_free() {
    let m = slob();
    let k = &m.kernel;
    let id = debug_cache(k, "slob_uaf", 200);
    let keep = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    let p = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    k.kmem_cache_free(id, p);
    let mut buf = [0u8; 200];
    k.kread(p, &mut buf);
    assert!(buf[8..].iter().all(|&b| b == 0x6b), "a freed object is poisoned");
    k.kwrite(VirtAddr(p.0 + 20), &[0x99]);
    let q = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(q, p);
    assert_eq!(k.log.count_matching(Level::Err, "BUG slob_uaf (Not tainted): Poison overwritten"), 1);
    assert!(has_line(k, &format!("Object {:#x}", q.0)));
    for o in [keep, q] {
        k.kmem_cache_free(id, o);
    }
    k.kmem_cache_destroy(id).unwrap();
}

#[test]
fn debug_corrupt_free_list_entry_quarantines_the_page() {
    let m = slob();
    let k = &m.kernel;
    let id = debug_cache(k, "slob_fp", 100);
    let objs: Vec<VirtAddr> = (0..4).map(|_| k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap()).collect();
    let victim = objs[2];
    k.kmem_cache_free(id, victim);
    // The free block starts at the object's header: its size unit, then
    // its next offset. Make the size run off the page.
    let block = victim.0 - 8;
    k.kwrite(VirtAddr(block), &0x7fffi16.to_le_bytes());
    let errs = k.log.count_matching(Level::Err, "slob_fp");
    let mut got = Vec::new();
    for _ in 0..60 {
        got.push(k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap());
    }
    assert_eq!(k.log.count_matching(Level::Err, "BUG slob_fp (Not tainted): Freepointer corrupt"), 1);
    assert!(has_line(k, &format!("Free block {block:#x}")), "{:#?}", k.log.lines());
    assert!(has_line(k, &format!("Object {:#x}", victim.0)));
    assert!(k.log.count_matching(Level::Err, "slob_fp") > errs);
    // Nothing comes from the quarantined page again; nothing is handed out twice.
    let page = victim.0 >> 12;
    assert!(got.iter().all(|o| o.0 >> 12 != page), "no block from the quarantined page");
    let mut all: Vec<u64> = got.iter().chain(objs.iter()).map(|o| o.0).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), got.len() + objs.len());
    // Frees into the quarantined page are dropped quietly; the rest work.
    let errs = errors(k);
    for (i, &o) in objs.iter().enumerate() {
        if i != 2 {
            k.kmem_cache_free(id, o);
        }
    }
    for &o in &got {
        k.kmem_cache_free(id, o);
    }
    assert_eq!(errors(k), errs, "{:#?}", k.log.lines());
    assert_eq!(in_use(k, id), 0);
    // A next offset pointing backwards is caught the same way.
    let objs: Vec<VirtAddr> = (0..4).map(|_| k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap()).collect();
    k.kmem_cache_free(id, objs[1]);
    let block = objs[1].0 - 8;
    k.kwrite(VirtAddr(block + 2), &3i16.to_le_bytes());
    k.kmem_cache_free(id, objs[3]);
    assert_eq!(k.log.count_matching(Level::Err, "BUG slob_fp (Not tainted): Freepointer corrupt"), 2);
    assert!(has_line(k, &format!("Free block {block:#x} @offset={}: next offset out of range", block % 4096)));
    for o in [objs[0], objs[2]] {
        k.kmem_cache_free(id, o);
    }
    assert_eq!(in_use(k, id), 0);
    assert!(k.slob_kmalloc(100, Gfp::GFP_KERNEL).is_some(), "the machine keeps running");
}

#[test]
fn debug_big_objects_red_zone_and_double_free() {
    let m = slob();
    let k = &m.kernel;
    let id = debug_cache(k, "slob_big", 4096);
    let a = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(a.0 % 4096, 0);
    k.kwrite(VirtAddr(a.0 + 4096), &[1, 2, 3]);
    k.kmem_cache_free(id, a);
    assert_eq!(k.log.count_matching(Level::Err, "BUG slob_big (Not tainted): Right Redzone overwritten"), 1);
    k.kmem_cache_free(id, a);
    assert_eq!(k.log.count_matching(Level::Err, "BUG slob_big (Not tainted): Object already free"), 1);
    assert!(has_line(k, &format!("Object {:#x}", a.0)));
    assert_eq!(in_use(k, id), 0);
    k.kmem_cache_destroy(id).unwrap();
}

#[test]
fn bad_frees_without_debug_flags_are_reported_and_ignored() {
    let m = slob();
    let k = &m.kernel;
    let id = k.kmem_cache_create(&CacheArgs::new("plain64", 64)).unwrap();
    let keep = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    let a = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    k.kmem_cache_free(id, a);
    k.kmem_cache_free(id, a);
    assert_eq!(k.log.count_matching(Level::Err, "BUG plain64 (Not tainted): Object already free"), 1);
    k.kmem_cache_free(id, VirtAddr(keep.0 + 4));
    assert_eq!(k.log.count_matching(Level::Err, "BUG plain64 (Not tainted): Invalid object pointer"), 1);
    assert_eq!(in_use(k, id), 1);
    // kmalloc: a second kfree, and a pointer kmalloc never returned.
    let p = k.slob_kmalloc(100, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(k.slob_ksize(p), 100);
    k.slob_kfree(p);
    let e = errors(k);
    k.slob_kfree(p);
    assert!(errors(k) > e, "double kfree reported");
    let e = errors(k);
    k.slob_kfree(keep);
    assert!(errors(k) > e, "kfree of a cache object reported");
    let big = k.slob_kmalloc(10_000, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(k.slob_ksize(big), 16384);
    k.slob_kfree(big);
    let e = errors(k);
    k.slob_kfree(big);
    assert!(errors(k) > e, "double kfree of a large kmalloc reported");
    k.slob_kfree(ZERO_SIZE_PTR);
    k.slob_kfree(VirtAddr(0));
    assert_eq!(k.slob_kmalloc(0, Gfp::GFP_KERNEL), Some(ZERO_SIZE_PTR));
    assert_eq!(in_use(k, id), 1);
    // A corrupt free-list entry in a plain page is caught when a free walks over it.
    let objs: Vec<VirtAddr> = (0..3).map(|_| k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap()).collect();
    k.kmem_cache_free(id, objs[1]);
    k.kwrite(objs[1], &[0xff, 0x7f, 0xff, 0x7f]);
    k.kmem_cache_free(id, objs[2]);
    assert_eq!(k.log.count_matching(Level::Err, "BUG plain64 (Not tainted): Freepointer corrupt"), 1);
    assert!(has_line(k, &format!("Free block {:#x}", objs[1].0)));
    k.kmem_cache_free(id, objs[0]);
    k.kmem_cache_free(id, keep);
    assert_eq!(in_use(k, id), 0);
    k.kmem_cache_destroy(id).unwrap();
}

/// Slab pages for 30 unmergeable caches of 4 small objects each (and their descriptors);
/// objects grouped by page: which caches each page holds.
fn many_small_caches(kind: SlabKind) -> (u64, HashMap<u64, HashSet<usize>>) {
    let m = machine(kind, 3);
    let k = &m.kernel;
    let before = slab_pages(k);
    let sizes = [16u32, 24, 40, 56, 72, 96, 120, 136, 160, 200];
    let mut by_page: HashMap<u64, HashSet<usize>> = HashMap::new();
    let mut live = Vec::new();
    for i in 0..30 {
        let name = format!("tiny{i}");
        // Unmergeable, so SLUB cannot share slabs between them either.
        let args = CacheArgs { flags: SlabFlags::NO_MERGE, ..CacheArgs::new(&name, sizes[i % sizes.len()]) };
        let id = k.kmem_cache_create(&args).unwrap();
        for _ in 0..4 {
            let o = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
            by_page.entry(o.0 >> 12).or_default().insert(i);
            live.push((id, o));
        }
        if kind == SlabKind::Slob {
            let p = k.slob_kmalloc(30, Gfp::GFP_KERNEL).unwrap();
            by_page.entry(p.0 >> 12).or_default().insert(1000 + i);
            k.slob_kfree(p);
        }
    }
    let grown = slab_pages(k) - before;
    for (id, o) in live {
        k.kmem_cache_free(id, o);
    }
    (grown, by_page)
}

#[test]
fn slob_packs_small_objects_of_many_caches_into_shared_pages() {
    let (grown, by_page) = many_small_caches(SlabKind::Slob);
    let (slub, _) = many_small_caches(SlabKind::Slub);
    let most = by_page.values().map(HashSet::len).max().unwrap();
    eprintln!("30 caches x 4 small objects: SLOB {grown} pages (up to {most} caches in one page), SLUB {slub} pages");
    assert!(most >= 10, "a page holds objects of many caches ({most})");
    assert!(grown <= 8, "120 small objects of 30 caches (and their descriptors) fit in a few pages: {grown}");
    assert!(grown * 3 < slub, "SLOB needs far fewer pages than one slab per cache");
}

/// Slab pages for `n` objects of `size` bytes on a machine with `kind`.
fn pages_for(kind: SlabKind, n: usize, size: u32) -> u64 {
    let m = machine(kind, 7);
    let k = &m.kernel;
    let before = slab_pages(k);
    let id = k.kmem_cache_create(&CacheArgs::new("obj", size)).unwrap();
    let objs: Vec<VirtAddr> = (0..n).map(|_| k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap()).collect();
    let used = slab_pages(k) - before;
    for o in objs {
        k.kmem_cache_free(id, o);
    }
    used
}

#[test]
fn slab_pages_for_10000_objects_slob_vs_slub() {
    for size in [64, 72, 200] {
        let slob = pages_for(SlabKind::Slob, 10_000, size);
        let slub = pages_for(SlabKind::Slub, 10_000, size);
        eprintln!("10000 objects of {size} bytes: SLOB {slob} pages, SLUB {slub} pages");
        // Whole objects per page; the tail of each page stays for smaller requests.
        let ideal = 10_000u64.div_ceil(4096 / u64::from(size));
        assert!(slob + 3 >= ideal && slob <= ideal + 3, "SLOB packs tightly: {slob} pages vs {ideal} ideal");
    }
}

#[test]
fn slob_is_safe_with_cpus_on_host_threads() {
    let m = Machine::boot(&MachineConfig { slab: SlabKind::Slob, ..MachineConfig::single(1 << 30, 4) }, 5).unwrap();
    let k = &m.kernel;
    let base = slob_pages(k);
    let ids: Vec<CacheId> = [24u32, 100, 700]
        .iter()
        .map(|&s| k.kmem_cache_create(&CacheArgs::new(&format!("mt{s}"), s)).unwrap())
        .collect();
    m.enter_threaded();
    std::thread::scope(|scope| {
        for cpu in 0..4usize {
            let (m, ids) = (&m, &ids);
            scope.spawn(move || {
                m.hal.bind_thread(cpu);
                let k = &m.kernel;
                let mut live: Vec<(Option<CacheId>, VirtAddr, u64, u8)> = Vec::new();
                let mut r = 0x9e37_79b9_7f4a_7c15u64 ^ cpu as u64;
                for i in 0..20_000u64 {
                    r ^= r << 13;
                    r ^= r >> 7;
                    r ^= r << 17;
                    let pat = (cpu as u8) << 6 | (i % 61) as u8;
                    if !r.is_multiple_of(3) || live.is_empty() {
                        let (cache, a, len) = if r & 8 == 0 {
                            let c = ids[(r >> 8) as usize % ids.len()];
                            let len = u64::from(k.slab.cache(c).unwrap().object_size);
                            (Some(c), k.kmem_cache_alloc(c, Gfp::GFP_KERNEL).unwrap(), len)
                        } else {
                            let len = 1 + (r >> 20) % 600;
                            (None, k.slob_kmalloc(len, Gfp::GFP_KERNEL).unwrap(), len)
                        };
                        k.kwrite(a, &vec![pat; len as usize]);
                        live.push((cache, a, len, pat));
                    } else {
                        let (cache, a, len, pat) = live.swap_remove((r >> 16) as usize % live.len());
                        let mut buf = vec![0u8; len as usize];
                        k.kread(a, &mut buf);
                        assert!(buf.iter().all(|&b| b == pat), "cpu {cpu}: object {:#x} overwritten", a.0);
                        match cache {
                            Some(c) => k.kmem_cache_free(c, a),
                            None => k.slob_kfree(a),
                        }
                    }
                }
                for (cache, a, _, _) in live {
                    match cache {
                        Some(c) => k.kmem_cache_free(c, a),
                        None => k.slob_kfree(a),
                    }
                }
            });
        }
    });
    m.leave_threaded();
    for id in ids {
        assert_eq!(in_use(k, id), 0);
        k.kmem_cache_destroy(id).unwrap();
    }
    assert_eq!(k.log.count_matching(Level::Err, ""), 0, "{:#?}", k.log.lines());
    assert_eq!(slob_pages(k), base, "every page given back");
}
