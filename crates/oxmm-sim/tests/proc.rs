//! The /proc renderers against the allocator's state and against the
//! host's own files: same names, same order, same layout, and values that
//! follow allocations and frees.

use oxmm::mmzone::{MigrateType, ZoneType, MIGRATE_TYPES};
use oxmm::page_alloc::Zone;
use oxmm::types::{NR_PAGE_ORDERS, PAGEBLOCK_NR_PAGES};
use oxmm::vmstat::{NodeStat, NumaStat, VmEvent, ZoneStat, MEMMAP_STAT_NAMES, WRITEBACK_STAT_NAMES};
use oxmm::{Gfp, Kernel, Pfn};
use oxmm_sim::config::{NodeConfig, GIB};
use oxmm_sim::{Machine, MachineConfig};

fn small() -> Machine {
    Machine::boot(&MachineConfig::single(GIB, 2), 7).expect("boot 1 GiB")
}

/// Node 0: 1 GiB (DMA, DMA32); node 1: 3 GiB across the PCI hole (an
/// empty DMA, then DMA32 and Normal).
fn two_nodes() -> Machine {
    let c = MachineConfig {
        nodes: vec![NodeConfig { mem: GIB, cpus: 2 }, NodeConfig { mem: 3 * GIB, cpus: 1 }],
        ..Default::default()
    };
    Machine::boot(&c, 7).expect("boot two nodes")
}

fn host(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().filter(|s| !s.is_empty())
}

/// The number on the line `name: N [kB]` of a meminfo text.
fn meminfo_value(text: &str, name: &str) -> u64 {
    let line = text.lines().find(|l| l.split(':').next() == Some(name)).unwrap_or_else(|| panic!("no {name}"));
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("bad line {line:?}"))
}

/// The number on the line `name N` of a vmstat text.
fn vmstat_value(text: &str, name: &str) -> u64 {
    let line = text.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("no {name}"));
    line[name.len() + 1..].parse().unwrap_or_else(|_| panic!("bad line {line:?}"))
}

fn free_counts(z: &Zone) -> [u64; NR_PAGE_ORDERS] {
    let fa = z.free.lock();
    std::array::from_fn(|o| fa.area[o].nr_free)
}

/// Allocates `n` blocks of `order` on the running CPU's node.
fn alloc_n(k: &Kernel, n: usize, order: u32) -> Vec<Pfn> {
    (0..n).map(|_| k.alloc_pages(Gfp::GFP_KERNEL, order).expect("allocation")).collect()
}

fn free_all(k: &Kernel, pages: Vec<Pfn>, order: u32) {
    for p in pages {
        k.free_pages(p, order);
    }
}

/// Each run of digits becomes `#`: for files whose numbers are
/// left-aligned, two files with the same layout compare equal.
fn mask(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

/// Each run of digits becomes `#` and the padding before it goes, so two
/// files with the same layout but different values compare equal.
fn shape(text: &str) -> String {
    let mut out = String::new();
    let mut in_num = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_num {
                while out.ends_with(' ') {
                    out.pop();
                }
                out.push('#');
            }
            in_num = true;
        } else {
            in_num = false;
            out.push(c);
        }
    }
    out
}

/// Every line is `Name:` padded to 16 columns and a value ending at
/// column 24 (wider values push on), then ` kB` or nothing.
fn check_meminfo_layout(text: &str) {
    for line in text.lines() {
        let (name, rest) = line.split_once(':').expect("name: value");
        assert!(!name.is_empty() && !name.contains(' '), "{line:?}");
        let value: &str = rest.split_whitespace().next().expect("value");
        assert!(value.parse::<u64>().is_ok(), "{line:?}");
        let unit = if line.ends_with(" kB") { 3 } else { 0 };
        assert_eq!(line.len(), 16 + value.len().max(8) + unit, "column layout of {line:?}");
    }
}

#[test]
fn meminfo_has_the_hosts_fields_in_order_and_layout() {
    let m = small();
    let ours = oxmm::proc::meminfo(&m.kernel);
    check_meminfo_layout(&ours);
    assert!(ours.ends_with(" kB\n"));
    let Some(h) = host("/proc/meminfo") else {
        eprintln!("/proc/meminfo unreadable: host comparison skipped");
        return;
    };
    let names = |t: &str| t.lines().map(|l| l.split(':').next().unwrap_or("").to_string()).collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&h), "meminfo field names and order");
    for (o, hl) in ours.lines().zip(h.lines()) {
        assert_eq!(o.ends_with(" kB"), hl.ends_with(" kB"), "unit of {o:?} vs host {hl:?}");
    }
    check_meminfo_layout(&h);
}

#[test]
fn meminfo_values_follow_the_allocator() {
    let m = small();
    let k = &m.kernel;
    k.drain_all_pages();
    let before = oxmm::proc::meminfo(k);
    let total = k.totalram_pages();
    assert!(total > 200_000, "1 GiB has about 250k managed pages");
    assert_eq!(meminfo_value(&before, "MemTotal"), total * 4);
    assert_eq!(meminfo_value(&before, "MemFree"), k.nr_free_pages() * 4);
    // No page cache or slab yet: available is free memory above the reserves.
    let reserve = k.totalreserve();
    assert!(reserve > 0);
    assert_eq!(meminfo_value(&before, "MemAvailable"), (k.nr_free_pages() - reserve) * 4);
    assert_eq!(meminfo_value(&before, "CommitLimit"), total * 50 / 100 * 4);
    assert_eq!(meminfo_value(&before, "VmallocTotal"), 34_359_738_367);
    assert_eq!(meminfo_value(&before, "Hugepagesize"), 2048);
    let dm: u64 = ["DirectMap4k", "DirectMap2M", "DirectMap1G"].iter().map(|n| meminfo_value(&before, n)).sum();
    assert_eq!(dm, k.boot.direct_map.iter().sum::<u64>() >> 10);
    assert!(dm * 1024 >= k.boot.memblock.memory.total_size(), "the direct map covers RAM");
    let free0 = meminfo_value(&before, "MemFree");

    let small_pages = alloc_n(k, 100, 0);
    let big = alloc_n(k, 10, 4);
    k.drain_all_pages();
    let during = oxmm::proc::meminfo(k);
    assert_eq!(meminfo_value(&during, "MemFree"), free0 - (100 + 10 * 16) * 4);
    assert_eq!(meminfo_value(&during, "MemTotal"), total * 4, "allocations do not change MemTotal");

    free_all(k, small_pages, 0);
    free_all(k, big, 4);
    k.drain_all_pages();
    assert_eq!(meminfo_value(&oxmm::proc::meminfo(k), "MemFree"), free0);

    k.sysctl_set("vm.overcommit_kbytes", "123456").expect("sysctl");
    assert_eq!(meminfo_value(&oxmm::proc::meminfo(k), "CommitLimit"), 123456);
}

/// Parses buddyinfo into (node, zone name, counts).
fn parse_buddyinfo(text: &str) -> Vec<(usize, String, Vec<u64>)> {
    text.lines()
        .map(|l| {
            let rest = l.strip_prefix("Node ").expect("Node prefix");
            let (nid, rest) = rest.split_once(", zone ").expect("zone");
            let mut it = rest.split_whitespace();
            let zone = it.next().expect("zone name").to_string();
            (nid.parse().expect("nid"), zone, it.map(|v| v.parse().expect("count")).collect())
        })
        .collect()
}

#[test]
fn buddyinfo_counts_are_the_free_lists() {
    let m = small();
    let k = &m.kernel;
    let check = |k: &Kernel| {
        let text = oxmm::proc::buddyinfo(k);
        let rows = parse_buddyinfo(&text);
        let zones: Vec<&Zone> = k.zones().filter(|z| z.populated()).collect();
        assert_eq!(rows.len(), zones.len(), "one line per populated zone:\n{text}");
        let mut total = 0;
        for ((nid, name, counts), z) in rows.iter().zip(&zones) {
            assert_eq!((*nid, name.as_str()), (z.nid, z.kind.name()));
            assert_eq!(counts.as_slice(), free_counts(z).as_slice(), "{name}");
            let pages: u64 = counts.iter().enumerate().map(|(o, n)| n << o).sum();
            assert_eq!(pages, z.page_state(ZoneStat::NrFreePages), "{name}: blocks times sizes");
            total += pages;
        }
        assert_eq!(total, k.nr_free_pages());
        for l in text.lines() {
            assert_eq!(l.len(), 22 + 7 * NR_PAGE_ORDERS, "fixed-width columns: {l:?}");
        }
        rows
    };
    let before = check(k);
    assert_eq!(before.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["DMA", "DMA32"]);
    let blocks = alloc_n(k, 3, 5);
    let during = check(k);
    assert_ne!(before, during, "order-5 allocations split larger blocks");
    free_all(k, blocks, 5);
    check(k);
}

#[test]
fn pagetypeinfo_tables_add_up() {
    let m = two_nodes();
    let k = &m.kernel;
    let text = oxmm::proc::pagetypeinfo(k);
    let headers = text.matches("Page block order: 9\nPages per block:  512\n\n").count();
    assert_eq!(headers, 2, "one header per node with memory:\n{text}");
    assert!(text.contains(
        "\nNumber of blocks type     Unmovable      Movable  Reclaimable   HighAtomic          CMA      Isolate \n"
    ));
    // Free table: per zone and order, the types add up to nr_free.
    for z in k.zones().filter(|z| z.populated()) {
        let prefix = format!("Node {:4}, zone {:>8}, type ", z.nid, z.kind.name());
        let rows: Vec<Vec<u64>> = text
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .map(|l| l[prefix.len() + 12..].split_whitespace().map(|v| v.parse().expect("count")).collect())
            .collect();
        assert_eq!(rows.len(), MIGRATE_TYPES);
        let nr_free = free_counts(z);
        for o in 0..NR_PAGE_ORDERS {
            assert_eq!(rows.iter().map(|r| r[o]).sum::<u64>(), nr_free[o], "zone {} order {o}", z.kind.name());
        }
        // Block table: every pageblock of the zone is counted once.
        let bprefix = format!("Node {}, zone {:>8} ", z.nid, z.kind.name());
        let counts: Vec<u64> = text
            .lines()
            .find(|l| l.starts_with(&bprefix))
            .expect("block row")
            .split_whitespace()
            .skip(4)
            .map(|v| v.parse().expect("count"))
            .collect();
        assert_eq!(counts.len(), MIGRATE_TYPES);
        // Every pageblock of the span with a memmap is counted once; node
        // 1's DMA32 spans the PCI hole, whose sections have none.
        let sampled = (z.zone_start_pfn..z.end_pfn())
            .step_by(PAGEBLOCK_NR_PAGES as usize)
            .filter(|&p| k.memmap.pfn_valid(Pfn(p)))
            .count() as u64;
        assert_eq!(counts.iter().sum::<u64>(), sampled, "{}", z.kind.name());
        let blocks = |pages: u64| pages.div_ceil(PAGEBLOCK_NR_PAGES);
        assert!((blocks(z.present_pages)..=blocks(z.spanned_pages)).contains(&sampled), "{}", z.kind.name());
        if z.nid == 1 && z.kind == ZoneType::Dma32 {
            assert_eq!(sampled, 1024, "2 GiB of RAM below the hole; the hole itself has no memmap");
        }
    }
    // Unmovable allocations beyond what boot's unmovable blocks hold claim
    // Movable pageblocks; the table shows it.
    let unmovable = |t: &str| -> u64 {
        t.lines()
            .filter(|l| l.starts_with("Node 0, zone "))
            .map(|l| l.split_whitespace().nth(4).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
            .sum()
    };
    let before = unmovable(&text);
    let pages = alloc_n(k, 2048, 0);
    let after = oxmm::proc::pagetypeinfo(k);
    let direct: u64 = k.nodes[0]
        .zones
        .iter()
        .filter(|z| z.populated())
        .map(|z| {
            (z.zone_start_pfn..z.end_pfn())
                .step_by(PAGEBLOCK_NR_PAGES as usize)
                .filter(|&p| k.get_pageblock_migratetype(Pfn(p)) == MigrateType::Unmovable)
                .count() as u64
        })
        .sum();
    assert!(unmovable(&after) > before, "before {before}:\n{after}");
    assert_eq!(unmovable(&after), direct);
    free_all(k, pages, 0);
}

#[test]
fn zoneinfo_lists_every_zone_of_both_nodes() {
    let m = two_nodes();
    let k = &m.kernel;
    let text = oxmm::proc::zoneinfo(k);
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("Node ")).collect();
    let expect: Vec<String> =
        (0..2).flat_map(|n| ZoneType::ALL.iter().map(move |z| format!("Node {n}, zone {:>8}", z.name()))).collect();
    assert_eq!(headers, expect);
    // Split into zone blocks.
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for l in text.lines() {
        if l.starts_with("Node ") {
            blocks.push(Vec::new());
        }
        blocks.last_mut().expect("starts with a header").push(l);
    }
    let zones: Vec<&Zone> = k.zones().collect();
    assert_eq!(blocks.len(), zones.len());
    assert!(!k.nodes[1].zones[ZoneType::Dma as usize].populated());
    for (b, z) in blocks.iter().zip(&zones) {
        let first_populated = k.nodes[z.nid].zones.iter().find(|x| x.populated()).is_some_and(|x| std::ptr::eq(x, *z));
        assert_eq!(b.contains(&"  per-node stats"), first_populated, "{}", b[0]);
        let get = |key: &str| -> u64 {
            let l = b
                .iter()
                .map(|l| l.trim_start())
                .find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(' ')))
                .unwrap_or_else(|| panic!("{key} in {}", b[0]));
            l[key.len()..].trim().parse().unwrap_or_else(|_| panic!("{l:?}"))
        };
        assert_eq!(get("pages free"), z.page_state(ZoneStat::NrFreePages));
        assert_eq!(get("managed"), z.managed());
        assert_eq!(get("spanned"), z.spanned_pages);
        let protection: Vec<String> =
            z.lowmem_reserve.iter().map(|r| r.load(std::sync::atomic::Ordering::Relaxed).to_string()).collect();
        assert!(b.contains(&format!("        protection: ({})", protection.join(", ")).as_str()));
        if !z.populated() {
            let per_node = if first_populated { 1 + NodeStat::COUNT } else { 0 };
            assert_eq!(b.len(), 12 + per_node, "an empty zone stops at protection: {b:#?}");
            assert!(b.last().expect("lines").starts_with("        protection: ("));
            continue;
        }
        assert_eq!(get("start_pfn:"), z.zone_start_pfn);
        assert_eq!(b.iter().filter(|l| l.starts_with("    cpu: ")).count(), k.nr_cpus);
        assert_eq!(b.iter().filter(|l| l.starts_with("  vm stats threshold: ")).count(), k.nr_cpus);
        // Linux's "%-12s %lu": six spaces, the name padded to 12, a space.
        for item in ZoneStat::ALL {
            let line = format!("      {:<12} {}", item.name(), z.page_state(*item));
            assert!(b.contains(&line.as_str()), "{line:?} in {b:#?}");
        }
        if first_populated {
            for item in NodeStat::ALL {
                let v = k.nodes[z.nid].stat.get(*item as usize);
                let line = format!("      {:<12} {v}", item.name());
                assert!(b.contains(&line.as_str()), "{line:?} in {b:#?}");
            }
        }
    }
    // The per-node blocks: node 0 at its DMA zone, node 1 at its DMA32 zone.
    let per_node: Vec<usize> =
        blocks.iter().enumerate().filter(|(_, b)| b.contains(&"  per-node stats")).map(|x| x.0).collect();
    assert_eq!(per_node, [0, 6]);

    // Allocations from a node-0 CPU on node 1 are hits there, and "other".
    let get_numa = |t: &str, nid: usize, zone: &str, item: NumaStat| -> u64 {
        let hdr = format!("Node {nid}, zone {zone:>8}");
        let mut lines = t.lines().skip_while(|l| *l != hdr).skip(1);
        let key = format!("      {:<12} ", item.name());
        let l = lines.find(|l| l.starts_with(&key)).expect("numa line");
        l[key.len()..].parse().expect("number")
    };
    let hit0 = get_numa(&text, 1, "Normal", NumaStat::NumaHit);
    let other0 = get_numa(&text, 1, "Normal", NumaStat::NumaOther);
    let pages: Vec<Pfn> = (0..40).map(|_| k.alloc_pages_node(1, Gfp::GFP_KERNEL, 0).expect("page")).collect();
    let after = oxmm::proc::zoneinfo(k);
    assert_eq!(get_numa(&after, 1, "Normal", NumaStat::NumaHit), hit0 + 40);
    assert_eq!(get_numa(&after, 1, "Normal", NumaStat::NumaOther), other0 + 40);
    free_all(k, pages, 0);
}

#[test]
fn vmstat_names_and_counters() {
    let m = two_nodes();
    let k = &m.kernel;
    let text = oxmm::proc::vmstat(k);
    let names: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap_or("")).collect();
    let mut expect: Vec<&str> = Vec::new();
    expect.extend(ZoneStat::ALL.iter().map(|i| i.name()));
    expect.extend(NumaStat::ALL.iter().map(|i| i.name()));
    expect.extend(NodeStat::ALL.iter().map(|i| i.name()));
    expect.extend(WRITEBACK_STAT_NAMES);
    expect.extend(MEMMAP_STAT_NAMES);
    expect.extend(VmEvent::ALL.iter().map(|i| i.name()));
    expect.push("nr_unstable");
    assert_eq!(names, expect);
    assert!(text.ends_with("\nnr_unstable 0\n"));
    if let Some(h) = host("/proc/vmstat") {
        let host_names: Vec<&str> = h.lines().map(|l| l.split(' ').next().unwrap_or("")).collect();
        assert_eq!(names, host_names, "vmstat names and order");
    } else {
        eprintln!("/proc/vmstat unreadable: host comparison skipped");
    }
    assert_eq!(vmstat_value(&text, "nr_free_pages"), k.nr_free_pages());
    assert_eq!(vmstat_value(&text, "nr_memmap_boot_pages"), k.boot.memmap_boot_pages);
    assert!(k.boot.memmap_boot_pages > 0);
    // Dirty limits: 20% and 10% of free memory above the reserves, plus one page.
    let dirtyable = k.nr_free_pages() - k.totalreserve() + 1;
    let thresh = vmstat_value(&text, "nr_dirty_threshold");
    let bg = vmstat_value(&text, "nr_dirty_background_threshold");
    assert!(thresh <= dirtyable / 5 && thresh + dirtyable / 1000 >= dirtyable / 5, "{thresh} of {dirtyable}");
    assert!(bg <= dirtyable / 10 && bg + dirtyable / 1000 >= dirtyable / 10, "{bg} of {dirtyable}");

    let (alloc0, free0) = (vmstat_value(&text, "pgalloc_normal"), vmstat_value(&text, "pgfree"));
    let hit0 = vmstat_value(&text, "numa_hit");
    let pages: Vec<Pfn> = (0..64).map(|_| k.alloc_pages_node(1, Gfp::GFP_KERNEL, 0).expect("page")).collect();
    let mid = oxmm::proc::vmstat(k);
    assert_eq!(vmstat_value(&mid, "pgalloc_normal"), alloc0 + 64);
    assert_eq!(vmstat_value(&mid, "numa_hit"), hit0 + 64);
    assert_eq!(vmstat_value(&mid, "pgfree"), free0);
    free_all(k, pages, 0);
    let end = oxmm::proc::vmstat(k);
    assert_eq!(vmstat_value(&end, "pgfree"), free0 + 64);
    assert_eq!(vmstat_value(&end, "pgalloc_normal"), alloc0 + 64);
}

#[test]
fn render_dispatches_every_listed_file() {
    let m = small();
    for f in oxmm::proc::FILES {
        let text = oxmm::proc::render(&m.kernel, f).unwrap_or_else(|| panic!("{f}"));
        assert!(text.is_empty() || text.ends_with('\n'), "{f}");
    }
    assert!(oxmm::proc::render(&m.kernel, "nosuchfile").is_none());
    assert!(oxmm::proc::render(&m.kernel, "slabinfo").is_some_and(|s| s.starts_with("slabinfo - version: 2.1")));
    let mem = oxmm::proc::render(&m.kernel, "memblock/memory").expect("memblock");
    assert_eq!(mem, m.kernel.boot.memblock.memory.debugfs());
    assert!(mem.starts_with("   0: 0x0000000000001000..0x000000000009efff    0 NONE\n"), "{mem}");
    let res = oxmm::proc::render(&m.kernel, "memblock/reserved").expect("memblock");
    assert!(res.starts_with("   0: 0x0000000000000000.."), "the first MiB is reserved: {res}");
}

/// When the host is a single node with DMA, DMA32 and Normal populated, a
/// 4 GiB machine with the host's CPU count has the same zone shape: its
/// zoneinfo, buddyinfo and pagetypeinfo must match the host's line for line
/// once the numbers are masked (pagetypeinfo without its CMA row and column,
/// which the host kernel lacks).
#[test]
fn files_have_the_hosts_shape() {
    let (Some(hz), Some(hb), Some(hp)) = (host("/proc/zoneinfo"), host("/proc/buddyinfo"), host("/proc/pagetypeinfo"))
    else {
        eprintln!("host /proc files unreadable: skipped");
        return;
    };
    let headers: Vec<&str> = hz.lines().filter(|l| l.starts_with("Node ")).collect();
    let want = ["Node 0, zone      DMA", "Node 0, zone    DMA32", "Node 0, zone   Normal", "Node 0, zone  Movable"];
    let populated = hb.lines().count();
    if !headers.starts_with(&want) || headers.len() != 5 || populated != 3 {
        eprintln!("host zone layout differs from the model machine: skipped");
        return;
    }
    let cpus = hz
        .lines()
        .skip_while(|l| !l.starts_with("  pagesets"))
        .take_while(|l| !l.starts_with("  node_unr"))
        .filter(|l| l.starts_with("    cpu: "))
        .count();
    let m = Machine::boot(&MachineConfig::single(4 * GIB, cpus), 7).expect("boot 4 GiB");
    let k = &m.kernel;

    let ours = oxmm::proc::zoneinfo(k);
    assert_eq!(mask(&ours), mask(&hz), "zoneinfo\nours:\n{ours}");

    let ours = oxmm::proc::buddyinfo(k);
    assert_eq!(shape(&ours), shape(&hb));
    for (o, h) in ours.lines().zip(hb.lines()) {
        assert_eq!(o.len(), h.len(), "{o:?} vs {h:?}");
    }

    let ours = oxmm::proc::pagetypeinfo(k);
    // Masked, ours has one more "# " per block-count row (the CMA column),
    // a CMA row per zone in the free table and a CMA column header.
    let without_cma: String = shape(&ours)
        .lines()
        .filter(|l| !l.contains(", type          CMA#"))
        .map(|l| {
            if l.starts_with("Node#, zone") && !l.contains(", type") {
                l.replacen("##", "#", 1)
            } else {
                l.replace(" HighAtomic          CMA ", " HighAtomic ")
            }
        })
        .map(|l| l + "\n")
        .collect();
    assert_eq!(without_cma, shape(&hp), "pagetypeinfo\nours:\n{ours}");
    // Right-aligned columns: the widths must match too. Without the CMA
    // rows, free-table lines are as long as the host's; block-table lines
    // are one 13-column field longer.
    let ours_rows: Vec<&str> = ours.lines().filter(|l| !l.contains(", type          CMA ")).collect();
    let host_rows: Vec<&str> = hp.lines().collect();
    assert_eq!(ours_rows.len(), host_rows.len());
    for (o, h) in ours_rows.iter().zip(&host_rows) {
        let block_table = o.starts_with("Number of blocks") || (o.starts_with("Node 0, zone ") && !o.contains("type"));
        assert_eq!(o.len(), h.len() + if block_table { 13 } else { 0 }, "{o:?} vs {h:?}");
    }
}
