//! vmalloc: mapping, contents, lazy purging, /proc/vmallocinfo, meminfo.

use oxmm::arch::x86_64::{VMALLOC_END, VMALLOC_START};
use oxmm::{Gfp, VirtAddr};
use oxmm_sim::{Machine, MachineConfig};
use std::sync::atomic::Ordering::Relaxed;

fn machine() -> Machine {
    Machine::boot(&MachineConfig::single(1 << 30, 2), 1).unwrap()
}

fn meminfo_kb(k: &oxmm::Kernel, field: &str) -> u64 {
    let t = oxmm::proc::meminfo(k);
    t.lines().find(|l| l.starts_with(field)).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn vmalloc_maps_scattered_pages_contiguously() {
    let m = machine();
    let k = &m.kernel;
    let tables0 = k.global_node_page_state(oxmm::vmstat::NodeStat::NrPageTablePages);
    let a = k.vmalloc(5 * 4096 + 1).unwrap();
    assert!(a.0 >= VMALLOC_START && a.0 < VMALLOC_END);
    assert_eq!(a.0 % 4096, 0);
    // 6 pages, mapped through real page tables, bytes round-trip across pages.
    let data: Vec<u8> = (0..6 * 4096).map(|i| (i % 251) as u8).collect();
    assert!(k.vwrite(a, &data));
    let mut back = vec![0; data.len()];
    assert!(k.vread(a, &mut back));
    assert_eq!(back, data);
    let pfns: Vec<_> = (0..6).map(|i| k.vmalloc_to_pfn(VirtAddr(a.0 + i * 4096)).unwrap()).collect();
    assert!(pfns.windows(2).any(|w| w[1].0 != w[0].0 + 1) || pfns.len() == 6);
    // The guard page after the area is not mapped.
    assert!(k.vmalloc_to_pfn(VirtAddr(a.0 + 6 * 4096)).is_none());
    assert_eq!(meminfo_kb(k, "VmallocUsed:"), 24);
    assert!(k.global_node_page_state(oxmm::vmstat::NodeStat::NrPageTablePages) > tables0, "tables are counted");
    // A second area starts after the first one's guard page.
    let b = k.vzalloc(4096).unwrap();
    assert_eq!(b.0, a.0 + 7 * 4096);
    let mut z = vec![1u8; 4096];
    k.vread(b, &mut z);
    assert!(z.iter().all(|&x| x == 0));
    let info = k.vmallocinfo();
    let lines: Vec<&str> = info.lines().collect();
    assert_eq!(lines.len(), 2, "{info}");
    assert!(
        lines[0].starts_with(&format!("{:#018x}-{:#018x}   28672 vmalloc pages=6 vmalloc N0=6", a.0, a.0 + 7 * 4096)),
        "{info}"
    );
    let free0 = k.nr_free_pages() + k.pcp_pages();
    k.vfree(a);
    assert_eq!(k.nr_free_pages() + k.pcp_pages(), free0 + 6, "the six pages come back (slab keeps its cpu slab)");
    assert!(k.vmallocinfo().contains("unpurged vm_area"));
    assert_eq!(meminfo_kb(k, "VmallocUsed:"), 4);
    k.vfree(b);
    k.vfree(VirtAddr(0xffff_c900_1234_0000));
    assert!(k.log.lines().iter().any(|(_, l)| l.contains("Trying to vfree() nonexistent vm area")));
}

#[test]
fn lazy_freeing_batches_tlb_flushes() {
    let m = machine();
    let k = &m.kernel;
    let max = k.lazy_max_pages();
    // Free areas of 16 pages until the lazy total passes lazy_max_pages:
    // exactly one batched flush covers them all.
    let per = 17; // 16 pages plus the guard page
    let n = max / per + 2;
    for _ in 0..n {
        let a = k.vmalloc(16 * 4096).unwrap();
        k.vfree(a);
    }
    assert_eq!(k.vmalloc.tlb_flushes.load(Relaxed), 1, "{n} frees, one flush");
    // The purged ranges are reused: the next area starts where the first did.
    k.vm_unmap_aliases();
    let a = k.vmalloc(4096).unwrap();
    assert_eq!(a.0, VMALLOC_START);
    k.vfree(a);
}

#[test]
fn vmalloc_fails_cleanly_without_memory() {
    let m = machine();
    let k = &m.kernel;
    let free0 = k.nr_free_pages() + k.pcp_pages();
    assert!(k.vmalloc_node(2 << 30, Gfp::GFP_KERNEL | Gfp::NOWARN, usize::MAX, "test").is_none(), "more than RAM");
    assert!(k.vmalloc(0).is_none());
    // Most of RAM: page allocation fails part-way and everything is given back.
    assert!(k.vmalloc_node(1000 << 20, Gfp::GFP_KERNEL | Gfp::NOWARN, usize::MAX, "test").is_none());
    k.drain_all_pages();
    assert_eq!(k.nr_free_pages() + k.pcp_pages(), free0);
    assert_eq!(k.vmalloc.nr_pages.load(Relaxed), 0);
}

#[test]
fn five_level_tables_tell_apart_what_four_levels_cannot() {
    use oxmm::arch::x86_64::pgtable::{bits, mk_entry};
    let cfg4 = MachineConfig::single(1 << 30, 1);
    let cfg5 = MachineConfig { la57: true, ..MachineConfig::single(1 << 30, 1) };
    for (cfg, levels) in [(cfg4, 4u8), (cfg5, 5)] {
        let m = Machine::boot(&cfg, 1).unwrap();
        let k = &m.kernel;
        assert_eq!(k.pgtable_levels, levels);
        let root = k.pgtable_alloc().unwrap();
        let tables0 = k.global_node_page_state(oxmm::vmstat::NodeStat::NrPageTablePages);
        // Two addresses that differ only in bit 50 (beyond 4-level's 48 bits).
        let (a, b) = (VirtAddr(0x1000), VirtAddr(0x1000 | 1 << 50));
        let (pa, pb) = (k.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap(), k.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap());
        k.pte_alloc(root, a, bits::PAGE_TABLE).unwrap().store(mk_entry(pa, bits::PRESENT | bits::USER), Relaxed);
        k.pte_alloc(root, b, bits::PAGE_TABLE).unwrap().store(mk_entry(pb, bits::PRESENT | bits::USER), Relaxed);
        let ta = k.pgtable_translate(root, a).unwrap().pfn();
        let tb = k.pgtable_translate(root, b).unwrap().pfn();
        let tables = k.global_node_page_state(oxmm::vmstat::NodeStat::NrPageTablePages) - tables0;
        if levels == 5 {
            assert_eq!((ta, tb), (pa, pb), "separate P4D subtrees");
            assert_eq!(tables, 2 * 4, "each address needs its own P4D, PUD, PMD and PTE table below the PGD");
        } else {
            assert_eq!((ta, tb), (pb, pb), "bit 50 is outside 4-level paging: the second map overwrote the first");
            assert_eq!(tables, 3, "one PUD, PMD and PTE table");
        }
        k.pgtable_free_tree(root);
        assert_eq!(k.global_node_page_state(oxmm::vmstat::NodeStat::NrPageTablePages), tables0 - 1);
    }
}
