//! The SLAB back-end (`mm/slab.c`) on booted machines: a property test
//! against a reference model (several caches, several CPUs on two nodes,
//! alloc/free/shrink/reap interleaved), the debug reports, the slabinfo
//! tunables and cache colouring.

use std::collections::BTreeMap;

use oxmm::arch::x86_64::virt_to_phys;
use oxmm::printk::Level;
use oxmm::slab::{CacheArgs, CacheId, SlabFlags, SlabKind};
use oxmm::{Gfp, Kernel, Pfn, VirtAddr};
use oxmm_sim::config::{NodeConfig, MIB};
use oxmm_sim::{Machine, MachineConfig};
use proptest::prelude::*;

fn slab_single() -> Machine {
    let cfg = MachineConfig { slab: SlabKind::Slab, ..MachineConfig::single(1 << 30, 2) };
    Machine::boot(&cfg, 1).unwrap()
}

/// Two nodes of two CPUs each, so frees on the other node go through the
/// alien arrays (SLAB) or reach remote slabs (SLUB).
fn two_nodes(slab: SlabKind) -> Machine {
    let cfg = MachineConfig {
        nodes: vec![NodeConfig { mem: 512 * MIB, cpus: 2 }, NodeConfig { mem: 512 * MIB, cpus: 2 }],
        slab,
        ..Default::default()
    };
    Machine::boot(&cfg, 1).unwrap()
}

fn slab_two_nodes() -> Machine {
    two_nodes(SlabKind::Slab)
}

/// Objects in use, less SLUB's sheaves (kmalloc objects themselves, taken
/// and given back as CPUs exchange sheaves).
fn in_use(k: &Kernel, id: CacheId) -> u64 {
    let c = k.slab.cache(id).unwrap();
    k.kmem_cache_objects_in_use(c) - k.sheaves_allocated_from(c)
}

fn named(k: &Kernel, name: &str) -> CacheId {
    k.slab.caches().find(|c| c.name == name).unwrap().id
}

fn slab_pages(k: &Kernel) -> u64 {
    let (r, u) = k.slab_pages();
    r + u
}

/// The slab page holding an object, and its `Page::private` word
/// (object-0 offset | active << 32 | list << 56).
fn slab_of(k: &Kernel, obj: VirtAddr) -> (Pfn, u64) {
    let pfn = k.page_folio(virt_to_phys(obj).unwrap().pfn()).pfn;
    (pfn, k.memmap.page(pfn).private.load(std::sync::atomic::Ordering::Relaxed))
}

fn base_of(pfn: Pfn) -> u64 {
    oxmm::arch::x86_64::phys_to_virt(pfn.phys()).0
}

const CTOR_BYTE: u8 = 0xc7;

fn ctor(obj: &mut [u8]) {
    obj.fill(CTOR_BYTE);
}

/// The caches of the model: (name, object size, alignment, constructor, debug).
/// Cache 0 is kmalloc-96, used through kmalloc/kfree with 80-byte requests
/// (pt_align64's 128-byte slots keep their index arrays off-slab, in kmalloc-64).
const CACHES: [(&str, u32, u32, bool, bool); 6] = [
    ("kmalloc-96", 96, 8, false, false),
    ("pt_ctor", 120, 8, true, false),
    ("pt_align64", 72, 64, false, false),
    ("pt_offslab", 512, 8, false, false),
    ("pt_big", 3000, 8, false, false),
    ("pt_debug", 200, 8, false, true),
];

#[derive(Clone, Debug)]
enum Op {
    Alloc { cache: usize, cpu: usize, n: usize },
    Free { pick: usize, cpu: usize, n: usize },
    Shrink { cache: usize },
    Reap { advance_ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..CACHES.len(), 0..4usize, 1..48usize).prop_map(|(cache, cpu, n)| Op::Alloc { cache, cpu, n }),
        5 => (any::<usize>(), 0..4usize, 1..48usize).prop_map(|(pick, cpu, n)| Op::Free { pick, cpu, n }),
        1 => (0..CACHES.len()).prop_map(|cache| Op::Shrink { cache }),
        1 => (0..5000u64).prop_map(|advance_ms| Op::Reap { advance_ms }),
    ]
}

/// A live object of the model.
struct Live {
    cache: usize,
    len: usize,
    seed: u8,
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add((i as u8).wrapping_mul(7))).collect()
}

fn check_contents(k: &Kernel, live: &BTreeMap<u64, Live>) -> Result<(), TestCaseError> {
    for (&a, o) in live {
        let mut buf = vec![0; o.len];
        k.kread(VirtAddr(a), &mut buf);
        prop_assert_eq!(buf, pattern(o.seed, o.len), "object {:#x} of {} lost its contents", a, CACHES[o.cache].0);
    }
    Ok(())
}

/// Slab pages of the caches whose objects include sheaves (SLUB).
fn sheaf_holding_pages(k: &Kernel) -> u64 {
    k.slab.caches().filter(|c| k.sheaves_allocated_from(c) > 0).map(|c| k.kmem_cache_info(c).num_slabs << c.order).sum()
}

/// Runs the model on a machine with the given back-end; SLUB and SLAB
/// share it (SLOB has its own model, with kmalloc of any size).
fn run_model(ops: &[Op], kind: SlabKind) -> Result<(), TestCaseError> {
    let m = two_nodes(kind);
    let k = &m.kernel;
    let boot_pages = slab_pages(k);
    let boot_sheaf_pages = sheaf_holding_pages(k);
    let boot_objects: Vec<(String, u64)> = k
        .slab
        .caches()
        .map(|c| (c.name.clone(), k.kmem_cache_objects_in_use(c) - k.sheaves_allocated_from(c)))
        .collect();
    let mut ids = Vec::new();
    for &(name, size, align, with_ctor, debug) in &CACHES {
        let id = if name.starts_with("kmalloc") {
            named(k, name)
        } else {
            let ctor = if with_ctor { Some(ctor as oxmm::slab::Ctor) } else { None };
            let flags = if debug {
                SlabFlags::RED_ZONE | SlabFlags::POISON | SlabFlags::STORE_USER
            } else {
                SlabFlags::default()
            };
            k.kmem_cache_create(&CacheArgs { name, size, align, flags, ctor }).unwrap()
        };
        ids.push(id);
    }
    let baseline: Vec<u64> = ids.iter().map(|&id| in_use(k, id)).collect();
    let mut live: BTreeMap<u64, Live> = BTreeMap::new();
    let mut count = [0u64; CACHES.len()];
    let mut seed = 0u8;
    for op in ops {
        match *op {
            Op::Alloc { cache, cpu, n } => {
                m.hal.set_cpu(cpu);
                let (_, size, align, with_ctor, _) = CACHES[cache];
                for _ in 0..n {
                    if live.len() >= 700 {
                        break;
                    }
                    let a = if cache == 0 {
                        k.kmalloc(80, Gfp::GFP_KERNEL)
                    } else {
                        k.kmem_cache_alloc(ids[cache], Gfp::GFP_KERNEL)
                    };
                    let a = a.expect("allocation failed").0;
                    prop_assert_eq!(a % u64::from(align), 0, "{:#x} misaligned in {}", a, CACHES[cache].0);
                    // No overlap with any live object.
                    if let Some((&p, po)) = live.range(..=a).next_back() {
                        prop_assert!(
                            p + u64::from(CACHES[po.cache].1) <= a,
                            "{:#x} handed out twice or overlaps {:#x}",
                            a,
                            p
                        );
                    }
                    if let Some((&q, _)) = live.range(a..).next() {
                        prop_assert!(a + u64::from(size) <= q, "{:#x} overlaps {:#x}", a, q);
                    }
                    let len = if cache == 0 { 80 } else { size as usize };
                    if with_ctor {
                        let mut buf = vec![0; len];
                        k.kread(VirtAddr(a), &mut buf);
                        prop_assert!(buf.iter().all(|&b| b == CTOR_BYTE), "object not in its constructed state");
                    }
                    seed = seed.wrapping_add(1);
                    k.kwrite(VirtAddr(a), &pattern(seed, len));
                    live.insert(a, Live { cache, len, seed });
                    count[cache] += 1;
                }
            }
            Op::Free { pick, cpu, n } => {
                m.hal.set_cpu(cpu);
                for j in 0..n {
                    if live.is_empty() {
                        break;
                    }
                    let a = *live.keys().nth(pick.wrapping_add(j * 31) % live.len()).unwrap();
                    let o = live.remove(&a).unwrap();
                    let mut buf = vec![0; o.len];
                    k.kread(VirtAddr(a), &mut buf);
                    prop_assert_eq!(buf, pattern(o.seed, o.len));
                    if CACHES[o.cache].3 {
                        // Objects go back in their constructed state.
                        k.kwrite(VirtAddr(a), &vec![CTOR_BYTE; o.len]);
                    }
                    if o.cache == 0 {
                        k.kfree(VirtAddr(a));
                    } else {
                        k.kmem_cache_free(ids[o.cache], VirtAddr(a));
                    }
                    count[o.cache] -= 1;
                }
            }
            Op::Shrink { cache } => k.kmem_cache_shrink(ids[cache]).unwrap(),
            Op::Reap { advance_ms } => {
                m.hal.advance(advance_ms * 1_000_000);
                k.slab_cache_reap();
            }
        }
        for (i, &id) in ids.iter().enumerate() {
            prop_assert_eq!(in_use(k, id), baseline[i] + count[i], "objects in use of {} after {:?}", CACHES[i].0, op);
        }
        check_contents(k, &live)?;
        if kind == SlabKind::Slub {
            oxmm::debug_vm::slub::check_slub(k).map_err(TestCaseError::fail)?;
        }
    }
    prop_assert!(k.log.count_matching(Level::Err, "slab error") == 0, "{:?}", k.log.lines());
    // Free everything, shrink: the test caches hold no slab any more.
    for (i, (&a, o)) in live.iter().enumerate() {
        m.hal.set_cpu(i % 4);
        if o.cache == 0 {
            k.kfree(VirtAddr(a));
        } else {
            k.kmem_cache_free(ids[o.cache], VirtAddr(a));
        }
    }
    for (i, &id) in ids.iter().enumerate() {
        k.kmem_cache_shrink(id).unwrap();
        prop_assert_eq!(in_use(k, id), baseline[i]);
        // A cache that SLUB merged into a kmalloc cache may hold other
        // caches' sheaves.
        let c = k.slab.cache(id).unwrap();
        if i > 0 && k.sheaves_allocated_from(c) == 0 {
            prop_assert_eq!(k.kmem_cache_info(c).num_slabs, 0);
        }
    }
    for &id in &ids[1..] {
        k.kmem_cache_destroy(id).unwrap();
    }
    // Twice: under SLUB, shrinking a cache frees its sheaves into kmalloc
    // caches that may have been shrunk already.
    let all: Vec<CacheId> = k.slab.caches().map(|c| c.id).collect();
    for id in all.iter().chain(all.iter()) {
        k.kmem_cache_shrink(*id).unwrap();
    }
    let after = slab_pages(k);
    // SLUB's sheaves are kmalloc objects spread over kmalloc slabs: those
    // caches keep their objects (sheaves apart) as at boot, and every other
    // slab page is gone.
    for (name, n) in &boot_objects {
        if let Some(c) = k.slab.caches().find(|c| &c.name == name) {
            prop_assert_eq!(k.kmem_cache_objects_in_use(c) - k.sheaves_allocated_from(c), *n, "objects of {}", name);
        }
    }
    let after = after - sheaf_holding_pages(k) + boot_sheaf_pages;
    prop_assert!(after <= boot_pages + 2, "slab pages {after} after everything was freed, {boot_pages} at boot");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn slab_matches_model(ops in prop::collection::vec(op(), 1..300)) {
        run_model(&ops, SlabKind::Slab)?;
    }

    #[test]
    fn slub_matches_model(ops in prop::collection::vec(op(), 1..300)) {
        run_model(&ops, SlabKind::Slub)?;
    }
}

#[test]
fn debug_reports_overflow_double_free_and_use_after_free() {
    let m = slab_single();
    let k = &m.kernel;
    let flags = SlabFlags::RED_ZONE | SlabFlags::POISON | SlabFlags::STORE_USER;
    let id = k.kmem_cache_create(&CacheArgs { name: "dbg_slab", size: 96, align: 0, flags, ctor: None }).unwrap();
    let has = |needle: &str| k.log.lines().iter().any(|(_, l)| l.contains(needle));

    // A write just past the object lands in the second red zone.
    let a = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    k.kwrite(VirtAddr(a.0 + 96), &[0x41]);
    k.kmem_cache_free(id, a);
    assert_eq!(k.log.count_matching(Level::Err, "cache `dbg_slab': memory outside object was overwritten"), 1);
    assert!(has(&format!("{:#x}: redzone 1:", a.0)), "{:#?}", k.log.lines());
    assert_eq!(in_use(k, id), 0, "the overflowed object was still freed");

    // A double free is caught by the red zones and ignored.
    let b = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    k.kmem_cache_free(id, b);
    k.kmem_cache_free(id, b);
    assert_eq!(k.log.count_matching(Level::Err, "cache `dbg_slab': double free detected"), 1);
    assert!(has(&format!("{:#x}: free ignored", b.0)));
    let objs: Vec<u64> = (0..200).map(|_| k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap().0).collect();
    let mut u = objs.clone();
    u.sort();
    u.dedup();
    assert_eq!(u.len(), objs.len(), "no object handed out twice after the double free");
    assert_eq!(in_use(k, id), 200);

    // A double free of an object that went back to its slab (shrink) is caught too.
    let c = objs[7];
    k.kmem_cache_free(id, VirtAddr(c));
    k.kmem_cache_shrink(id).unwrap();
    k.kmem_cache_free(id, VirtAddr(c));
    assert_eq!(k.log.count_matching(Level::Err, "cache `dbg_slab': double free detected"), 2);
    assert_eq!(in_use(k, id), 199);

    // A write into a free object is found when it is handed out again.
    let d = objs[8];
    k.kmem_cache_free(id, VirtAddr(d));
    k.kwrite(VirtAddr(d + 10), &[1, 2, 3]);
    let again = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(again.0, d, "LIFO: the last freed object comes back first");
    assert!(has(&format!("Slab corruption (Not tainted): dbg_slab start={d:#x}, len=96")), "{:#?}", k.log.lines());

    // A write into the red zone of a free object is found when the object
    // is handed out again.
    let e = objs[9];
    k.kmem_cache_free(id, VirtAddr(e));
    k.kwrite(VirtAddr(e + 96), &[0x42]);
    assert_eq!(k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap().0, e);
    assert_eq!(
        k.log.count_matching(Level::Err, "cache `dbg_slab': double free, or memory outside object was overwritten"),
        1
    );
    assert!(has(&format!("{e:#x}: redzone 1:")));

    // A bogus pointer is refused.
    k.kmem_cache_free(id, VirtAddr(d + 4));
    assert_eq!(k.log.count_matching(Level::Err, "not in a slab of this cache"), 1);
    // The machine keeps going.
    assert!(k.kmalloc(64, Gfp::GFP_KERNEL).is_some());
    assert!(k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).is_some());
}

#[test]
fn node_allocations_and_remote_frees() {
    let m = slab_two_nodes();
    let k = &m.kernel;
    let id = k.kmem_cache_create(&CacheArgs::new("numa_test", 256)).unwrap();
    m.hal.set_cpu(0);
    let nid_of = |o: VirtAddr| k.memmap.page(virt_to_phys(o).unwrap().pfn()).nid();
    let remote: Vec<VirtAddr> = (0..300).map(|_| k.kmem_cache_alloc_node(id, Gfp::GFP_KERNEL, 1).unwrap()).collect();
    assert!(remote.iter().all(|&o| nid_of(o) == 1), "kmem_cache_alloc_node honours the node");
    let local: Vec<VirtAddr> = (0..300).map(|_| k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap()).collect();
    assert!(local.iter().all(|&o| nid_of(o) == 0), "plain allocations come from the CPU's node");
    assert_eq!(in_use(k, id), 600);
    // CPU 0 frees node 1's objects: they pass through node 0's alien array.
    for &o in &remote {
        k.kmem_cache_free(id, o);
    }
    assert_eq!(in_use(k, id), 300);
    m.hal.set_cpu(3);
    for &o in &local {
        k.kmem_cache_free(id, o);
    }
    assert_eq!(in_use(k, id), 0);
    k.kmem_cache_shrink(id).unwrap();
    assert_eq!(k.kmem_cache_info(k.slab.cache(id).unwrap()).num_slabs, 0);
    assert_eq!(k.log.count_matching(Level::Err, "slab error"), 0);
}

/// Corrupts the next freelist entry of the slab holding `a` after a shrink
/// brought the slab's other objects back, then allocates.
fn corrupt_freelist(debug: bool) {
    let m = slab_single();
    let k = &m.kernel;
    let flags = if debug { SlabFlags::RED_ZONE | SlabFlags::POISON } else { SlabFlags::default() };
    let name = if debug { "fl_dbg" } else { "fl_plain" };
    let id = k.kmem_cache_create(&CacheArgs { name, size: 200, align: 0, flags, ctor: None }).unwrap();
    let c = k.slab.cache(id).unwrap();
    let a = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    k.kmem_cache_shrink(id).unwrap();
    let (slab, private) = slab_of(k, a);
    let active = (private >> 32) & 0xff_ffff;
    assert_eq!(active, 1, "only `a` is out of its slab");
    let fl = k.memmap.page(slab).index.load(std::sync::atomic::Ordering::Relaxed);
    let base = base_of(slab);
    let s_mem = base + (private & 0xffff_ffff);
    let bad_index: u16 = if debug {
        // An index in range, naming the allocated object `a`.
        ((a.0 - u64::from(c.red_left_pad) - s_mem) / u64::from(c.size)) as u16
    } else {
        0xfff0
    };
    k.kwrite(VirtAddr(fl + 2 * active), &bad_index.to_le_bytes());

    let mut got = Vec::new();
    for _ in 0..100 {
        got.push(k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap().0);
    }
    let lines = k.log.lines();
    assert!(
        lines.iter().any(|(_, l)| l.contains(&format!("cache `{name}': corrupted freelist"))
            && l.contains(&format!("slab {base:#x}"))
            && l.contains("quarantined")),
        "{lines:#?}"
    );
    if debug {
        let obj = format!("object {:#x}", a.0);
        assert!(lines.iter().any(|(_, l)| l.contains(&obj) && l.contains("names an allocated object")), "{lines:#?}");
    }
    let slab_bytes = 4096u64 << c.order;
    assert!(got.iter().all(|&o| o < base || o >= base + slab_bytes), "nothing comes from the quarantined slab");
    let mut u = got.clone();
    u.push(a.0);
    u.sort();
    u.dedup();
    assert_eq!(u.len(), 101, "no object handed out twice");
    assert_eq!(in_use(k, id), 101);
    // Its last object back (through the per-cpu array, drained by the
    // shrink), the quarantined slab goes back to the page allocator.
    k.kmem_cache_free(id, a);
    assert_eq!(in_use(k, id), 100);
    assert!(k.memmap.page(slab).test(oxmm::page::pg::SLAB));
    k.kmem_cache_shrink(id).unwrap();
    assert!(!k.memmap.page(slab).test(oxmm::page::pg::SLAB));
    for &o in &got {
        k.kmem_cache_free(id, VirtAddr(o));
    }
    k.kmem_cache_shrink(id).unwrap();
    assert_eq!(k.kmem_cache_info(c).num_slabs, 0);
    k.kmem_cache_destroy(id).unwrap();
    assert!(k.kmalloc(100, Gfp::GFP_KERNEL).is_some(), "the machine still allocates");
}

#[test]
fn corrupted_freelist_index_out_of_range_quarantines_the_slab() {
    corrupt_freelist(false);
}

#[test]
fn corrupted_freelist_index_naming_a_live_object_quarantines_the_slab() {
    corrupt_freelist(true);
}

#[test]
fn slabinfo_shows_tunables_and_shared_objects() {
    let m = slab_single();
    let k = &m.kernel;
    let k64 = k.slab.cache(named(k, "kmalloc-64")).unwrap();
    let i = k.kmem_cache_info(k64);
    // enable_cpucache: limit 120 up to 256 bytes, batchcount (limit + 1) / 2,
    // shared 8 with more than one CPU.
    assert_eq!((i.limit, i.batchcount, i.shared), (120, 60, 8));
    // 62 objects per page: 4096 / (64 + 2) with the index array rounded to 8 bytes.
    assert_eq!((k64.objects_per_slab, k64.order), (62, 0));
    let text = oxmm::proc::slabinfo(k);
    let line = text.lines().find(|l| l.starts_with("kmalloc-64 ")).unwrap();
    assert!(line.contains(": tunables  120   60    8 :"), "{line}");
    for (size, want) in [(1100u32, (24, 12, 8)), (5000, (8, 4, 0)), (200_000, (1, 1, 0))] {
        let id = k.kmem_cache_create(&CacheArgs::new(&format!("tun_{size}"), size)).unwrap();
        let i = k.kmem_cache_info(k.slab.cache(id).unwrap());
        assert_eq!((i.limit, i.batchcount, i.shared), want, "size {size}");
    }
    // Objects waiting in arrays count as active; freed past the per-cpu
    // limit they go to the shared array, shown as shared_avail.
    let before = k.kmem_cache_info(k64);
    let before_used = k.kmem_cache_objects_in_use(k64);
    let objs: Vec<VirtAddr> = (0..1000).map(|_| k.kmalloc(64, Gfp::GFP_KERNEL).unwrap()).collect();
    for &o in &objs {
        k.kfree(o);
    }
    let after = k.kmem_cache_info(k64);
    assert_eq!(k.kmem_cache_objects_in_use(k64), before_used);
    assert!(after.shared_avail > 0, "{after:?}");
    assert!(after.active_objs > before.active_objs, "array objects are active to slabinfo: {after:?}");
    // Reaping drains idle arrays step by step.
    let mut last = after.active_objs;
    for _ in 0..40 {
        m.hal.advance(2_000_000_000);
        k.slab_cache_reap();
        let now = k.kmem_cache_info(k64).active_objs;
        assert!(now <= last);
        last = now;
    }
    assert!(last < after.active_objs, "cache_reap gave objects back");
    assert_eq!(k.kmem_cache_info(k64).shared_avail, 0);
}

#[test]
fn consecutive_slabs_start_at_successive_colours() {
    let m = slab_single();
    let k = &m.kernel;
    // 1104-byte slots: order 1 holds 7 with 464 bytes over; a 16-byte index
    // array on the slab leaves 448 = 7 colours of 64 bytes.
    let id = k.kmem_cache_create(&CacheArgs::new("colour_test", 1100)).unwrap();
    let c = k.slab.cache(id).unwrap();
    assert_eq!((c.order, c.objects_per_slab, c.size), (1, 7, 1104));
    let objs: Vec<u64> = (0..7 * 10).map(|_| k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap().0).collect();
    let slab_bytes = 8192u64;
    let mut slabs: Vec<(u64, u64)> = Vec::new(); // (base, first object offset), in creation order
    for &o in &objs {
        let base = o & !(slab_bytes - 1);
        match slabs.iter_mut().find(|(b, _)| *b == base) {
            Some(e) => e.1 = e.1.min(o - base),
            None => slabs.push((base, o - base)),
        }
    }
    assert_eq!(slabs.len(), 10);
    let offsets: Vec<u64> = slabs.iter().map(|s| s.1).collect();
    let want: Vec<u64> = (0..10).map(|i| 16 + 64 * (i % 7)).collect();
    assert_eq!(offsets, want, "object 0 sits after the colour and the index array");
    for w in offsets.windows(2) {
        assert_ne!(w[0], w[1], "consecutive slabs use different colours");
    }
}

#[test]
fn large_objects_keep_their_freelist_off_slab() {
    let m = slab_single();
    let k = &m.kernel;
    let id = k.kmem_cache_create(&CacheArgs::new("offslab_test", 512)).unwrap();
    let c = k.slab.cache(id).unwrap();
    // 8 x 512 fill the page: the 16-byte index array goes to kmalloc-16.
    assert_eq!(c.objects_per_slab, 8);
    let k16 = k.slab.cache(named(k, "kmalloc-16")).unwrap();
    let used16 = k.kmem_cache_objects_in_use(k16);
    let a = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    let (slab, private) = slab_of(k, a);
    assert_eq!(private & 0xffff_ffff, 0, "object 0 at the start of the page");
    let fl = k.memmap.page(slab).index.load(std::sync::atomic::Ordering::Relaxed);
    assert!(k.virt_to_cache(VirtAddr(fl)).is_some_and(|c| c.name == "kmalloc-16"));
    assert_eq!(k.kmem_cache_objects_in_use(k16), used16 + 1);
    k.kmem_cache_free(id, a);
    k.kmem_cache_shrink(id).unwrap();
    assert_eq!(k.kmem_cache_objects_in_use(k16), used16, "the index array went back with the slab");
}

/// slabinfo for 10000 live kmalloc-64 objects under SLAB and SLUB (printed
/// with `--nocapture`).
#[test]
fn slabinfo_of_10000_kmalloc_64_slab_vs_slub() {
    for kind in [SlabKind::Slab, SlabKind::Slub] {
        let cfg = MachineConfig { slab: kind, ..MachineConfig::single(1 << 30, 2) };
        let m = Machine::boot(&cfg, 1).unwrap();
        let k = &m.kernel;
        let c = k.slab.cache(named(k, "kmalloc-64")).unwrap();
        let base = k.kmem_cache_info(c);
        let used0 = k.kmem_cache_objects_in_use(c);
        let objs: Vec<VirtAddr> = (0..10_000).map(|_| k.kmalloc(64, Gfp::GFP_KERNEL).unwrap()).collect();
        let i = k.kmem_cache_info(c);
        let line = oxmm::proc::slabinfo(k).lines().find(|l| l.starts_with("kmalloc-64 ")).unwrap().to_string();
        println!("{:?} boot: {base:?}", kind);
        println!("{:?} +10000: {line}", kind);
        assert_eq!(k.kmem_cache_objects_in_use(c), used0 + 10_000);
        assert!(i.active_objs >= used0 + 10_000 && i.num_objs >= i.active_objs);
        match kind {
            SlabKind::Slab => assert_eq!(i.num_objs, i.num_slabs * 62),
            _ => assert_eq!(i.num_objs, i.num_slabs * 64),
        }
        for o in objs {
            k.kfree(o);
        }
    }
}

#[test]
fn exhaustion_fails_cleanly_and_recovers() {
    let cfg = MachineConfig { slab: SlabKind::Slab, ..MachineConfig::single(256 * MIB, 2) };
    let m = Machine::boot(&cfg, 1).unwrap();
    let k = &m.kernel;
    let id = named(k, "kmalloc-4k");
    let used0 = in_use(k, id);
    let free0 = k.nr_free_pages();
    let mut objs = Vec::new();
    while let Some(o) = k.kmalloc(4096, Gfp::GFP_KERNEL | Gfp::NOWARN) {
        objs.push(o);
        assert!(objs.len() < 1 << 20);
    }
    assert!(objs.len() as u64 > free0 / 2, "{} objects from {free0} free pages", objs.len());
    assert_eq!(in_use(k, id), used0 + objs.len() as u64);
    for o in objs {
        k.kfree(o);
    }
    k.kmem_cache_shrink(id).unwrap();
    assert_eq!(in_use(k, id), used0);
    assert!(k.kmalloc(4096, Gfp::GFP_KERNEL).is_some(), "memory is back");
}
