//! The slab layer on a booted machine: caches, kmalloc, debug reports.

use oxmm::printk::Level;
use oxmm::slab::kmalloc::ZERO_SIZE_PTR;
use oxmm::slab::{CacheArgs, SlabError, SlabFlags};
use oxmm::{Gfp, VirtAddr};
use oxmm_sim::{Machine, MachineConfig};

fn machine() -> Machine {
    Machine::boot(&MachineConfig::single(1 << 30, 2), 1).unwrap()
}

#[test]
fn kmalloc_classes_alignment_and_contents() {
    let m = machine();
    let k = &m.kernel;
    let mut live = Vec::new();
    for (i, size) in
        [1u64, 8, 9, 24, 64, 65, 96, 100, 192, 200, 256, 1000, 4096, 8192, 8193, 100_000].iter().enumerate()
    {
        let p = k.kmalloc(*size, Gfp::GFP_KERNEL).unwrap();
        let ks = k.ksize(p);
        assert!(ks >= *size, "ksize {ks} < {size}");
        let want = match *size {
            1..=8 => 8,
            9..=16 => 16,
            17..=32 => 32,
            33..=64 => 64,
            65..=96 => 96,
            97..=128 => 128,
            129..=192 => 192,
            193..=256 => 256,
            s if s <= 8192 => s.next_power_of_two(),
            s => 4096 << (64 - ((s - 1) >> 12).leading_zeros()),
        };
        assert_eq!(ks, want, "size {size}");
        let pat = vec![i as u8 + 1; *size as usize];
        k.kwrite(p, &pat);
        live.push((p, pat));
    }
    for (p, pat) in &live {
        let mut buf = vec![0; pat.len()];
        k.kread(*p, &mut buf);
        assert_eq!(&buf, pat, "object at {:#x} kept its bytes", p.0);
        assert_eq!(p.0 % 8, 0);
    }
    for (p, _) in live {
        k.kfree(p);
    }
    assert_eq!(k.kmalloc(0, Gfp::GFP_KERNEL), Some(ZERO_SIZE_PTR));
    k.kfree(ZERO_SIZE_PTR);
    k.kfree(VirtAddr(0));
    assert!(k.kmalloc(5 << 20, Gfp::GFP_KERNEL | Gfp::NOWARN).is_none());
    assert!(k.kcalloc(u64::MAX, 2, Gfp::GFP_KERNEL).is_none());
}

#[test]
fn krealloc_keeps_contents_and_kzalloc_zeroes() {
    let m = machine();
    let k = &m.kernel;
    let p = k.kmalloc(40, Gfp::GFP_KERNEL).unwrap();
    k.kwrite(p, &[7u8; 40]);
    let q = k.krealloc(p, 60, Gfp::GFP_KERNEL).unwrap();
    assert_eq!(q, p, "40 -> 60 fits the 64-byte object");
    let r = k.krealloc(q, 3000, Gfp::GFP_KERNEL).unwrap();
    assert_ne!(r, q);
    let mut buf = [0u8; 40];
    k.kread(r, &mut buf);
    assert_eq!(buf, [7u8; 40]);
    k.kfree(r);
    for _ in 0..200 {
        let z = k.kzalloc(128, Gfp::GFP_KERNEL).unwrap();
        let mut b = [1u8; 128];
        k.kread(z, &mut b);
        assert!(b.iter().all(|&x| x == 0));
        k.kwrite(z, &[0xff; 128]);
        k.kfree(z);
    }
}

#[test]
fn cache_lifecycle_merge_and_busy_destroy() {
    let m = machine();
    let k = &m.kernel;
    let a = k.kmem_cache_create(&CacheArgs::new("test_a", 200)).unwrap();
    let b = k.kmem_cache_create(&CacheArgs::new("test_b", 200)).unwrap();
    assert_eq!(a, b, "compatible caches merge");
    let mut objs = Vec::new();
    assert_eq!(k.kmem_cache_alloc_bulk(a, Gfp::GFP_KERNEL, 1000, &mut objs), 1000);
    let mut sorted: Vec<u64> = objs.iter().map(|o| o.0).collect();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 1000, "no object handed out twice");
    let c = k.slab.cache(a).unwrap();
    assert_eq!(k.slub_objects_in_use(c), 1000);
    k.kmem_cache_destroy(b).unwrap(); // drops the alias
    assert_eq!(k.kmem_cache_destroy(a), Err(SlabError::Busy { objects: 1000 }));
    assert!(k.log.count_matching(Level::Err, "test_a") >= 1);
    k.kmem_cache_free_bulk(a, &objs);
    let c = k.slab.cache(a).unwrap();
    assert_eq!(k.slub_objects_in_use(c), 0);
    k.kmem_cache_destroy(a).unwrap();
    assert!(k.slab.cache(a).is_none());
    assert!(k.kmem_cache_alloc(a, Gfp::GFP_KERNEL).is_none());
}

fn debug_cache(k: &oxmm::Kernel, name: &str) -> oxmm::slab::CacheId {
    let flags = SlabFlags::CONSISTENCY_CHECKS | SlabFlags::RED_ZONE | SlabFlags::POISON | SlabFlags::STORE_USER;
    k.kmem_cache_create(&CacheArgs { name, size: 100, align: 0, flags, ctor: None }).unwrap()
}

#[test]
fn debug_reports_overflow_double_free_and_corrupt_freepointer() {
    let m = machine();
    let k = &m.kernel;
    let id = debug_cache(k, "dbg_cache");
    // A write past the end of the object hits the right red zone.
    let a = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    k.kwrite(VirtAddr(a.0 + 100), &[0x41]);
    k.kmem_cache_free(id, a);
    assert_eq!(k.log.count_matching(Level::Err, "BUG dbg_cache (Not tainted): Right Redzone overwritten"), 1);
    assert!(k.log.lines().iter().any(|(_, l)| l.contains(&format!("Object {:#x}", a.0))));
    // A double free is caught and ignored.
    let b = k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap();
    k.kmem_cache_free(id, b);
    k.kmem_cache_free(id, b);
    assert_eq!(k.log.count_matching(Level::Err, "BUG dbg_cache (Not tainted): Object already free"), 1);
    // A corrupted free pointer in a free object is found when it is next handed out.
    let objs: Vec<_> = (0..5).map(|_| k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap()).collect();
    for &o in &objs {
        k.kmem_cache_free(id, o);
    }
    let c = k.slab.cache(id).unwrap();
    let victim = objs[4];
    k.kwrite(VirtAddr(victim.0 + u64::from(c.offset)), &0xdead_beef_u64.to_le_bytes());
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap());
    }
    assert!(k.log.count_matching(Level::Err, "dbg_cache") > 2);
    assert!(
        k.log.lines().iter().any(|(_, l)| l.contains("Freepointer corrupt") || l.contains("Freechain corrupt")),
        "{:#?}",
        k.log.lines()
    );
    let mut u: Vec<u64> = got.iter().map(|o| o.0).collect();
    u.sort();
    u.dedup();
    assert_eq!(u.len(), got.len(), "still no object handed out twice");
    // The machine keeps running: more allocations work.
    assert!(k.kmalloc(64, Gfp::GFP_KERNEL).is_some());
}

#[test]
fn typed_objects_live_in_slab_memory_and_free_on_drop() {
    use oxmm::slab::typed::TypedCache;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let m = machine();
    let k = &m.kernel;
    let cache: TypedCache<[AtomicU64; 4]> = TypedCache::create(k, "vm_area_struct", SlabFlags::default()).unwrap();
    let c = k.slab.cache(cache.id()).unwrap();
    {
        let boxes: Vec<_> = (0..100)
            .map(|i| {
                let b = cache.alloc(k, Gfp::GFP_KERNEL).unwrap();
                assert!(b.iter().all(|w| w.load(Relaxed) == 0), "zeroed");
                b[0].store(i * 3, Relaxed);
                b
            })
            .collect();
        assert_eq!(k.slub_objects_in_use(c), 100);
        for (i, b) in boxes.iter().enumerate() {
            assert_eq!(b[0].load(Relaxed), i as u64 * 3);
            let mut raw = [0u8; 8];
            k.kread(b.addr(), &mut raw);
            assert_eq!(u64::from_le_bytes(raw), i as u64 * 3, "the value is in simulated RAM");
        }
        let raw = cache.alloc(k, Gfp::GFP_KERNEL).unwrap().into_raw();
        let back = cache.from_raw(k, raw).unwrap();
        drop(back);
        assert!(cache.from_raw(k, VirtAddr(raw.0 + 1)).is_none(), "not an object start");
        assert!(cache.from_raw(k, VirtAddr(raw.0 + 8)).is_none(), "inside an object");
        // Freeing an address that is not an object is reported, not obeyed.
        k.kmem_cache_free(cache.id(), VirtAddr(raw.0 + 4));
        assert_eq!(k.log.count_matching(Level::Err, "not in a slab of this cache"), 1, "{:?}", k.log.lines());
    }
    assert_eq!(k.slub_objects_in_use(c), 0, "dropping handles frees the objects");
}

fn slabinfo_line(k: &oxmm::Kernel, name: &str) -> Vec<String> {
    let text = oxmm::proc::slabinfo(k);
    let line =
        text.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("{name} missing"));
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn slabinfo_and_sysfs_follow_slub() {
    let m = machine();
    let k = &m.kernel;
    let text = oxmm::proc::slabinfo(k);
    assert!(text.starts_with("slabinfo - version: 2.1\n# name            <active_objs> <num_objs> <objsize>"));
    // kmalloc-64 on a 2-CPU machine: size 64, order 0 (64 objects per page).
    let f = slabinfo_line(k, "kmalloc-64");
    assert_eq!((f[3].as_str(), f[4].as_str(), f[5].as_str()), ("64", "64", "1"));
    // kmalloc-8k: 4 objects per order-3 slab.
    let f = slabinfo_line(k, "kmalloc-8k");
    assert_eq!((f[3].as_str(), f[4].as_str(), f[5].as_str()), ("8192", "4", "8"));
    let before: u64 = slabinfo_line(k, "kmalloc-64")[1].parse().unwrap();
    let slab_kb = |k: &oxmm::Kernel| -> u64 {
        let mi = oxmm::proc::meminfo(k);
        mi.lines().find(|l| l.starts_with("Slab:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let slab0 = slab_kb(k);
    let objs: Vec<_> = (0..10_000).map(|_| k.kmalloc(64, Gfp::GFP_KERNEL).unwrap()).collect();
    let f = slabinfo_line(k, "kmalloc-64");
    let active: u64 = f[1].parse().unwrap();
    assert!(active >= before + 10_000, "active {active}");
    // 10000 objects of 64 bytes take about 157 pages (628 KiB) of slab.
    let grown = slab_kb(k) - slab0;
    assert!((600..=700).contains(&grown), "Slab grew by {grown} kB");
    let sys = |a: &str| oxmm::proc::render(k, &format!("sys/kernel/slab/kmalloc-64/{a}")).unwrap();
    assert_eq!(sys("object_size"), "64\n");
    assert_eq!(sys("objs_per_slab"), "64\n");
    assert_eq!(sys("order"), "0\n");
    let total: u64 = sys("total_objects").split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(total, f[2].parse::<u64>().unwrap());
    assert!(sys("total_objects").contains(" N0="));
    for o in objs {
        k.kfree(o);
    }
    for id in k.slab.caches().map(|c| c.id).collect::<Vec<_>>() {
        k.kmem_cache_shrink(id).unwrap();
    }
    assert!(slab_kb(k) <= slab0 + 8, "shrink returns the pages: {} vs {slab0}", slab_kb(k));
    assert!(oxmm::proc::render(k, "sys/kernel/slab/nope/order").is_none());
}

#[test]
fn boot_creates_linux_subsystem_caches_with_linux_geometry() {
    let m = machine();
    let k = &m.kernel;
    // (name, objsize, objperslab, pagesperslab) as a Linux 6.18 x86-64
    // machine with 2 CPUs shows them in /proc/slabinfo.
    for (name, size, per, pages) in [
        ("vm_area_struct", 192, 21, 1),
        ("anon_vma", 104, 39, 1),
        ("anon_vma_chain", 64, 64, 1),
        ("mm_struct", 1600, 20, 8),
        ("task_struct", 5888, 5, 8),
        ("files_cache", 704, 23, 4),
        ("radix_tree_node", 584, 14, 2),
        ("kmalloc-64", 64, 64, 1),
        ("kmalloc-4k", 4096, 8, 8),
        ("kmem_cache", 256, 16, 1),
    ] {
        let f = slabinfo_line(k, name);
        assert_eq!(
            (f[3].parse::<u32>().unwrap(), f[4].parse::<u32>().unwrap(), f[5].parse::<u32>().unwrap()),
            (size, per, pages),
            "{name}"
        );
    }
}

/// SLUB with its CPUs on host threads: per-CPU sheaves, barn exchanges,
/// refills and flushes race with frees of objects other CPUs allocated.
/// Contents stay intact, and once the machine is quiescent and the caches
/// shrunk, every object is accounted for.
#[test]
fn slub_sheaves_are_safe_with_cpus_on_host_threads() {
    let m = Machine::boot(&MachineConfig::single(1 << 30, 4), 5).unwrap();
    let k = &m.kernel;
    let sizes = [8u64, 64, 192, 256, 1000];
    let caches: Vec<&oxmm::slab::KmemCache> = sizes
        .iter()
        .map(|&s| {
            let o = k.kmalloc(s, Gfp::GFP_KERNEL).unwrap();
            let c = k.virt_to_cache(o).unwrap();
            k.kfree(o);
            c
        })
        .collect();
    let before: Vec<u64> = caches
        .iter()
        .map(|c| {
            k.kmem_cache_shrink(c.id).unwrap();
            k.kmem_cache_objects_in_use(c) - k.sheaves_allocated_from(c)
        })
        .collect();
    // Objects handed from one thread to the next, freed by another CPU.
    let handoff: Vec<std::sync::Mutex<Vec<(VirtAddr, u64, u8)>>> = (0..4).map(|_| Default::default()).collect();
    m.enter_threaded();
    std::thread::scope(|scope| {
        for cpu in 0..4usize {
            let (m, handoff) = (&m, &handoff);
            scope.spawn(move || {
                m.hal.bind_thread(cpu);
                let k = &m.kernel;
                let mut live: Vec<(VirtAddr, u64, u8)> = Vec::new();
                let mut r = 0x9e37_79b9_7f4a_7c15u64 ^ (cpu as u64 + 1);
                for i in 0..200_000u64 {
                    if i % 256 == 0 {
                        // Interleave the CPUs even on a host with fewer cores.
                        std::thread::yield_now();
                    }
                    r ^= r << 13;
                    r ^= r >> 7;
                    r ^= r << 17;
                    let pat = (cpu as u8) << 6 | (i % 61) as u8;
                    if r % 5 < 3 || live.is_empty() {
                        let len = sizes[(r >> 8) as usize % sizes.len()];
                        let a = k.kmalloc(len, Gfp::GFP_KERNEL).unwrap();
                        k.kwrite(a, &vec![pat; len as usize]);
                        live.push((a, len, pat));
                    } else {
                        let (a, len, pat) = live.swap_remove((r >> 16) as usize % live.len());
                        let mut buf = vec![0u8; len as usize];
                        k.kread(a, &mut buf);
                        assert!(buf.iter().all(|&b| b == pat), "cpu {cpu}: object {:#x} overwritten", a.0);
                        if r & 0x100 != 0 {
                            handoff[(cpu + 1) % 4].lock().unwrap().push((a, len, pat));
                        } else {
                            k.kfree(a);
                        }
                    }
                    if i % 1000 == 0 {
                        let theirs = std::mem::take(&mut *handoff[cpu].lock().unwrap());
                        for (a, _, _) in theirs {
                            k.kfree(a);
                        }
                    }
                }
                for (a, _, _) in live {
                    k.kfree(a);
                }
            });
        }
    });
    m.leave_threaded();
    oxmm::debug_vm::slub::check_slub(k).unwrap();
    for h in &handoff {
        for (a, _, _) in std::mem::take(&mut *h.lock().unwrap()) {
            k.kfree(a);
        }
    }
    for (c, b) in caches.iter().zip(before) {
        k.kmem_cache_shrink(c.id).unwrap();
        // Sheaves are kmalloc objects too, and how many exist depends on the run.
        let objects = k.kmem_cache_objects_in_use(c) - k.sheaves_allocated_from(c);
        assert_eq!(objects, b, "{}: objects in use back to where they were", c.name);
        oxmm::debug_vm::slub::check_slub(k).unwrap();
    }
    assert_eq!(k.log.count_matching(oxmm::printk::Level::Err, ""), 0, "{:#?}", k.log.lines());
}
