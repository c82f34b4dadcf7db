//! The same workload under SLUB, SLAB and SLOB: slabinfo and meminfo differ
//! the way the three designs predict.

use oxmm::slab::{CacheArgs, SlabKind};
use oxmm::{Gfp, Kernel, VirtAddr};
use oxmm_sim::{Machine, MachineConfig};

fn boot(kind: SlabKind) -> Machine {
    Machine::boot(&MachineConfig { slab: kind, ..MachineConfig::single(1 << 30, 2) }, 1).unwrap()
}

fn slab_pages(k: &Kernel) -> u64 {
    let (r, u) = k.slab_pages();
    r + u
}

/// 30 small caches of 4 objects each (no merging: each has a constructor),
/// then 10000 kmalloc(64) objects. Returns the slab pages each part took.
fn workload(k: &Kernel) -> (u64, u64, Vec<VirtAddr>) {
    fn ctor(b: &mut [u8]) {
        b.fill(0x11);
    }
    let p0 = slab_pages(k);
    let mut live = Vec::new();
    for i in 0..30 {
        let name = format!("small_cache_{i}");
        let id = k
            .kmem_cache_create(&CacheArgs {
                name: &name,
                size: 48,
                align: 0,
                flags: Default::default(),
                ctor: Some(ctor),
            })
            .unwrap();
        for _ in 0..4 {
            live.push(k.kmem_cache_alloc(id, Gfp::GFP_KERNEL).unwrap());
        }
    }
    let p1 = slab_pages(k);
    for _ in 0..10_000 {
        live.push(k.kmalloc(64, Gfp::GFP_KERNEL).unwrap());
    }
    let p2 = slab_pages(k);
    (p1 - p0, p2 - p1, live)
}

fn slabinfo_fields(k: &Kernel, name: &str) -> Vec<u64> {
    let t = oxmm::proc::slabinfo(k);
    let l = t.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("{name}:\n{t}"));
    l.split_whitespace().filter_map(|w| w.parse().ok()).collect()
}

#[test]
fn designs_differ_as_predicted() {
    let (slub, slab, slob) = (boot(SlabKind::Slub), boot(SlabKind::Slab), boot(SlabKind::Slob));
    let (ub_small, ub_big, _) = workload(&slub.kernel);
    let (ab_small, ab_big, _) = workload(&slab.kernel);
    let (ob_small, ob_big, _) = workload(&slob.kernel);
    eprintln!("slab pages: small caches SLUB {ub_small} SLAB {ab_small} SLOB {ob_small}; 10000 x 64 B SLUB {ub_big} SLAB {ab_big} SLOB {ob_big}");
    // SLOB packs objects of different caches into shared pages; SLUB and
    // SLAB give every cache its own slabs.
    assert!(ob_small * 3 < ub_small, "SLOB {ob_small} vs SLUB {ub_small}");
    assert!(ob_small * 3 < ab_small, "SLOB {ob_small} vs SLAB {ab_small}");
    // SLAB keeps a freelist index array in each slab: 62 objects of 64
    // bytes per page against SLUB's 64, so more pages for the same objects.
    assert!(ab_big > ub_big, "SLAB {ab_big} vs SLUB {ub_big}");
    // slabinfo: only SLAB has tunables (limit, batchcount) and per-cpu arrays.
    let ub = slabinfo_fields(&slub.kernel, "kmalloc-64");
    let ab = slabinfo_fields(&slab.kernel, "kmalloc-64");
    // Fields: active num objsize objperslab pagesperslab limit batch shared active_slabs num_slabs shared_avail.
    assert_eq!((ub[3], ub[5], ub[6]), (64, 0, 0));
    assert_eq!(ab[3], 62);
    assert!(ab[5] > 0 && ab[6] > 0, "SLAB tunables {ab:?}");
    assert!(ab[9] > ub[9], "SLAB needs more slabs: {} vs {}", ab[9], ub[9]);
    // SLOB's kmalloc puts a header before each block and aligns
    // power-of-two sizes to themselves: 64-byte blocks take 128 bytes.
    assert!(ob_big > ub_big * 3 / 2, "SLOB {ob_big} vs SLUB {ub_big}");
    // SLOB's kmalloc caches stay empty: its kmalloc blocks come from the
    // shared pages, not from caches.
    assert_eq!(slabinfo_fields(&slob.kernel, "kmalloc-64")[0], 0);
    assert!(ub[0] >= 10_000);
}
