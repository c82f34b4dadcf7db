//! Boot of real-sized machines: zone spans, present and managed counts and
//! watermarks follow Linux's rules, stated number by number.

use oxmm::mmzone::ZoneType;
use oxmm::page_alloc::{Wmark, ZoneRef};
use oxmm_sim::config::{NodeConfig, GIB, MIB};
use oxmm_sim::{Machine, MachineConfig};

fn two_node_64g() -> MachineConfig {
    MachineConfig {
        nodes: vec![NodeConfig { mem: 32 * GIB, cpus: 2 }, NodeConfig { mem: 32 * GIB, cpus: 2 }],
        ..Default::default()
    }
}

#[test]
fn boot_64g_two_nodes_with_pci_hole_counts_like_linux() {
    let m = Machine::boot(&two_node_64g(), 1).unwrap();
    let k = &m.kernel;
    let z = |nid: usize, t: ZoneType| &k.nodes[nid].zones[t as usize];

    // RAM: [0, 0x9fc00) + [1 MiB, 3 GiB) + [4 GiB, 65 GiB); node 0 holds the
    // first 32 GiB of RAM, so it ends at 33 GiB (the PCI hole shifts it).
    // Page 0 is dropped from memblock (trim_bios_range), so node 0 starts at pfn 1.
    assert_eq!(k.nodes[0].node_start_pfn, 1);
    assert_eq!(k.nodes[1].node_start_pfn, (33 * GIB) >> 12);

    // DMA spans pfn 1..4096. Present: pfns 1..0x9f (158 pages below 640K)
    // plus 1 MiB..16 MiB (3840 pages). The first MiB is reserved on x86,
    // so only 1..16 MiB is managed. (A Linux 6.18 PC shows the same
    // 4095/3998/3840 in /proc/zoneinfo.)
    let dma = z(0, ZoneType::Dma);
    assert_eq!((dma.zone_start_pfn, dma.spanned_pages, dma.present_pages, dma.managed()), (1, 4095, 3998, 3840));

    // DMA32 spans 16 MiB..4 GiB, but RAM stops at 3 GiB (the PCI hole):
    // present = (3 GiB - 16 MiB) / 4 KiB = 782336. The 24 MiB kernel image
    // loaded at 16 MiB (6144 pages) is reserved: managed = 776192.
    let dma32 = z(0, ZoneType::Dma32);
    assert_eq!((dma32.zone_start_pfn, dma32.spanned_pages, dma32.present_pages), (0x1000, 1_044_480, 782_336));
    assert_eq!(dma32.managed(), 782_336 - 6144);

    // Normal on node 0: 4 GiB..33 GiB, no holes. Node 0 has 24 + 232 = 256
    // present 128 MiB sections; each needs 2 MiB of struct page (32768 x 64
    // bytes) = 131072 pages, allocated top-down from the node's own memory,
    // plus 4 pages of pageblock flags (256 sections x 64 bytes), plus the
    // first percpu chunk's units of the node's 2 CPUs (63 pages each),
    // embedded node-locally from memblock as pcpu_embed_first_chunk does.
    let n0 = z(0, ZoneType::Normal);
    assert_eq!((n0.zone_start_pfn, n0.spanned_pages, n0.present_pages), (0x10_0000, 7_602_176, 7_602_176));
    assert_eq!(n0.managed(), 7_602_176 - 131_072 - 4 - 2 * 63);

    // Node 1: only Normal, 33 GiB..65 GiB, 256 sections of memmap again.
    let n1 = z(1, ZoneType::Normal);
    assert_eq!((n1.zone_start_pfn, n1.spanned_pages, n1.present_pages), (0x84_0000, 8_388_608, 8_388_608));
    assert_eq!(n1.managed(), 8_388_608 - 131_072 - 4 - 2 * 63);
    assert!(!z(1, ZoneType::Dma).populated() && !z(1, ZoneType::Dma32).populated());
    assert!(!z(0, ZoneType::Movable).populated());
    assert_eq!(k.boot.memmap_boot_pages, 2 * 131_072);

    // min_free_kbytes = int_sqrt(16 * lowmem KiB), lowmem = managed pages of
    // DMA..Normal = 16508412 pages = 66033648 KiB -> int_sqrt(1056538368) = 32504.
    let total: u64 = k.totalram_pages();
    assert_eq!(total, 3840 + 776_192 + 7_470_974 + 8_257_406);
    assert_eq!(k.sysctl_get("vm.min_free_kbytes").unwrap(), "32504");
    // Each zone gets min in proportion to its size: 8126 pages * managed / total.
    // low = min + max(min/4, managed * 10 / 10000), high = low + the same step.
    for zone in k.zones().filter(|z| z.populated()) {
        let min = 8126 * zone.managed() / total;
        let step = (min / 4).max(zone.managed() * 10 / 10000);
        assert_eq!(zone.wmark_pages(Wmark::Min), min, "{} min", zone.kind.name());
        assert_eq!(zone.wmark_pages(Wmark::Low), min + step);
        assert_eq!(zone.wmark_pages(Wmark::High), min + 2 * step);
    }
    // lowmem_reserve: DMA keeps (DMA32 + Normal managed) / 256 from Normal allocations.
    assert_eq!(
        dma.lowmem_reserve[ZoneType::Normal as usize].load(std::sync::atomic::Ordering::Relaxed),
        (776_192 + 7_470_974) / 256
    );
    assert_eq!(
        dma32.lowmem_reserve[ZoneType::Normal as usize].load(std::sync::atomic::Ordering::Relaxed),
        7_470_974 / 256
    );

    // Zonelists: local node's zones highest first, then the other node's.
    let zr = |nid, zone: ZoneType| ZoneRef { nid, zone: zone as u8 };
    assert_eq!(
        k.nodes[1].zonelists[0],
        vec![zr(1, ZoneType::Normal), zr(0, ZoneType::Normal), zr(0, ZoneType::Dma32), zr(0, ZoneType::Dma)]
    );
    assert_eq!(k.nodes[1].zonelists[1], vec![zr(1, ZoneType::Normal)]);
    // After boot every managed page is free, except the slab caches' pages
    // (kmem_cache, kmem_cache_node, kmalloc, vmap_area) and the kernel's
    // top-level page table (init_mm.pgd, like Linux's swapper_pg_dir not
    // counted as PageTables) and the shared zero page (in Linux's image,
    // a page from the buddy allocator here).
    let (srecl, sunrecl) = k.slab_pages();
    let tables = k.global_node_page_state(oxmm::vmstat::NodeStat::NrPageTablePages);
    assert_eq!(k.nr_free_pages() + k.pcp_pages() + srecl + sunrecl + tables + 2, total);
}

#[test]
fn movablecore_carves_zone_movable_from_the_top_of_each_node() {
    let mut c = two_node_64g();
    c.movablecore = Some(oxmm::kernel::CoreSize::Bytes(16 * GIB));
    let m = Machine::boot(&c, 1).unwrap();
    let k = &m.kernel;
    // kernelcore = all RAM - 16 GiB, split evenly: each node keeps 24 GiB of
    // kernel memory from its bottom (node 0 counts its DMA/DMA32 memory
    // too), and ZONE_MOVABLE takes the rest, aligned to 4 MiB.
    let mv0 = &k.nodes[0].zones[ZoneType::Movable as usize];
    let mv1 = &k.nodes[1].zones[ZoneType::Movable as usize];
    assert!(mv0.populated() && mv1.populated());
    let total_movable = mv0.present_pages + mv1.present_pages;
    let want = (16 * GIB) >> 12;
    assert!(total_movable.abs_diff(want) <= 2 * 1024, "movable {total_movable} pages, want about {want}");
    assert_eq!(mv0.zone_start_pfn % 1024, 0);
    let n0 = &k.nodes[0].zones[ZoneType::Normal as usize];
    assert_eq!(n0.end_pfn(), mv0.zone_start_pfn, "Normal ends where Movable starts");
    // Movable zones keep the small fixed min watermark Linux gives them.
    assert!((32..=128).contains(&mv0.wmark_pages(Wmark::Min)));
}

#[test]
fn small_machine_without_hole() {
    let m = Machine::boot(&MachineConfig::single(GIB, 1), 1).unwrap();
    let k = &m.kernel;
    assert!(!k.nodes[0].zones[ZoneType::Normal as usize].populated(), "1 GiB fits below 4 GiB: no Normal zone");
    let dma32 = &k.nodes[0].zones[ZoneType::Dma32 as usize];
    assert_eq!(dma32.present_pages, (GIB - 16 * MIB) >> 12);
    // One node, 8 sections: 8 x 2 MiB memmap + 1 page of pageblock flags +
    // 24 MiB image + the first percpu chunk (one CPU: 63 pages).
    assert_eq!(dma32.managed(), dma32.present_pages - 8 * 512 - 1 - 6144 - 63);
}

mod fuzz {
    use oxmm::kernel::CoreSize;
    use oxmm_sim::config::{NodeConfig, MIB};
    use oxmm_sim::{Machine, MachineConfig};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        /// Every machine that validates boots, or fails with a boot error;
        /// nothing panics, and a booted machine's counts add up.
        #[test]
        fn valid_machines_boot_or_fail_cleanly(
            nodes in prop::collection::vec((1u64..6, 1usize..3), 1..3),
            reserved in prop::collection::vec((0u64..2048, 1u64..64), 0..3),
            image_mib in 0u64..80,
            movable_pc in prop::option::of(0u64..100),
        ) {
            let c = MachineConfig {
                nodes: nodes.iter().map(|&(m, cpus)| NodeConfig { mem: m * 128 * MIB, cpus }).collect(),
                reserved: reserved.iter().map(|&(s, l)| (s * MIB, l * MIB)).collect(),
                kernel_image: image_mib * MIB,
                movablecore: movable_pc.map(CoreSize::Percent),
                ..Default::default()
            };
            prop_assume!(c.validate().is_ok());
            match Machine::boot(&c, 1) {
                Ok(m) => {
                    let k = &m.kernel;
                    let managed: u64 = k.zones().map(|z| z.managed()).sum();
                    prop_assert_eq!(managed, k.totalram_pages());
                    for z in k.zones() {
                        prop_assert!(z.managed() <= z.present_pages && z.present_pages <= z.spanned_pages);
                    }
                    prop_assert!(oxmm::debug_vm::check_all(k).is_ok());
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
