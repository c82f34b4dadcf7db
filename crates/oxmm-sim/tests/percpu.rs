//! The per-cpu allocator: the first chunk reserved at boot, vmalloc chunks
//! populated on demand and destroyed when free, bad input, and random
//! allocation/free sequences against a reference model.
//!
//! The numbers are Linux's for an x86-64 kernel whose static per-cpu
//! section is 216 KiB: `Embedded 63 pages/cpu s221184 r8192 d28672`, with
//! 512 KiB units on four CPUs of one node (four units share a 2 MiB atom).

use oxmm::memblock::Memblock;
use oxmm::percpu::{PercpuPtr, PercpuStats};
use oxmm::printk::Level;
use oxmm::types::{PAGE_SHIFT, PAGE_SIZE};
use oxmm::{debug_vm, Gfp, Kernel, PhysAddr, VirtAddr};
use oxmm_sim::config::{NodeConfig, GIB};
use oxmm_sim::{Machine, MachineConfig};
use proptest::prelude::*;

const CPUS: usize = 4;
/// Pages each unit of the first chunk uses: (216 + 8 + 28) KiB.
const FIRST_CHUNK_PAGES: u64 = 63;

fn machine(cpus: usize) -> Machine {
    Machine::boot(&MachineConfig::single(GIB, cpus), 1).expect("boot")
}

fn meminfo_kb(k: &Kernel, name: &str) -> u64 {
    let text = oxmm::proc::meminfo(k);
    let line = text.lines().find(|l| l.split(':').next() == Some(name)).unwrap_or_else(|| panic!("no {name}"));
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("bad line {line:?}"))
}

/// Pages `memblock_free_all` hands to the buddy allocator: every free
/// range, trimmed to whole pages.
fn free_pages_of(mb: &Memblock) -> u64 {
    mb.free_ranges().iter().map(|&(s, e, _)| (e >> PAGE_SHIFT).saturating_sub(s.div_ceil(PAGE_SIZE))).sum()
}

fn reserved_covers(mb: &Memblock, start: u64, len: u64) -> bool {
    mb.reserved.regions().iter().any(|r| r.base <= start && start + len <= r.end())
}

fn reserved_overlaps(mb: &Memblock, start: u64, len: u64) -> bool {
    mb.reserved.overlaps(start, len)
}

fn has_log(k: &Kernel, level: Level, needle: &str) -> bool {
    k.log.count_matching(level, needle) > 0
}

/// Frames mapped behind the vmalloc chunks, over all units, read from the
/// page tables (not from the allocator's own bookkeeping).
fn mapped_vm_frames(k: &Kernel, stats: &PercpuStats) -> u64 {
    let base = k.percpu.base_addr().0;
    let mut n = 0;
    for c in stats.chunks.iter().filter(|c| !c.first && !c.reserved) {
        for page in 0..c.nr_pages as u64 {
            let ptr = PercpuPtr(c.base_addr.0 + (page << PAGE_SHIFT) - base);
            for cpu in 0..k.nr_cpus {
                n += k.per_cpu_ptr_to_phys(k.per_cpu_ptr(ptr, cpu)).is_some() as u64;
            }
        }
    }
    n
}

/// meminfo's Percpu agrees with the chunks: the first chunk's pages plus
/// every populated page of the others, times the units, and the page
/// tables hold exactly those populated frames.
fn check_percpu_accounting(k: &Kernel) -> Result<PercpuStats, TestCaseError> {
    let st = k.percpu_stats();
    let units = k.percpu.nr_units() as u64;
    let vm_populated: u64 = st.chunks.iter().filter(|c| !c.first && !c.reserved).map(|c| c.nr_populated as u64).sum();
    prop_assert_eq!(st.nr_populated, FIRST_CHUNK_PAGES + vm_populated);
    prop_assert_eq!(k.pcpu_nr_pages(), st.nr_populated * units);
    prop_assert_eq!(meminfo_kb(k, "Percpu"), k.pcpu_nr_pages() * 4);
    prop_assert_eq!(mapped_vm_frames(k, &st), vm_populated * k.nr_cpus as u64);
    let empty: usize =
        st.chunks.iter().filter(|c| !c.reserved && !c.isolated).map(|c| c.nr_empty_pop_pages).sum::<usize>();
    prop_assert_eq!(st.empty_pop_pages, empty as i64);
    Ok(st)
}

#[test]
fn first_chunk_is_reserved_at_boot() {
    let m = machine(CPUS);
    let k = &m.kernel;
    let pc = &k.percpu;
    assert_eq!((pc.static_size(), pc.reserved_size(), pc.dyn_size()), (221_184, 8192, 28_672));
    assert_eq!((pc.unit_size(), pc.nr_units()), (512 << 10, 4), "four 512 KiB units fill one 2 MiB atom");
    assert_eq!(pc.size_sum(), FIRST_CHUNK_PAGES * PAGE_SIZE);
    assert!(has_log(k, Level::Info, "percpu: Embedded 63 pages/cpu s221184 r8192 d28672 u524288"));
    assert!(has_log(k, Level::Info, "pcpu-alloc: s221184 r8192 d28672 u524288 alloc=1*2097152"));
    assert!(has_log(k, Level::Info, "pcpu-alloc: [0] 0 1 2 3 "));

    // One group, 2 MiB aligned, units back to back; each unit keeps its
    // 63 pages reserved and gives the rest of its 512 KiB back.
    let mb = &k.boot.memblock;
    let g = &pc.groups()[0];
    assert_eq!(g.phys.0 % (2 << 20), 0);
    for cpu in 0..CPUS {
        let pa = pc.first_unit_phys(cpu).0;
        assert_eq!(pa, g.phys.0 + cpu as u64 * pc.unit_size());
        assert!(reserved_covers(mb, pa, pc.size_sum()), "cpu {cpu}'s unit is reserved");
        assert!(!reserved_overlaps(mb, pa + pc.size_sum(), pc.unit_size() - pc.size_sum()), "its tail is not");
        assert_eq!(k.per_cpu_ptr(PercpuPtr(0), cpu), VirtAddr(oxmm::arch::x86_64::PAGE_OFFSET + pa));
    }

    // MemTotal is what memblock_free_all handed out, and it is lower than
    // without the first chunk by exactly the chunk: 4 units x 63 pages.
    let total = k.totalram_pages();
    assert_eq!(free_pages_of(mb), total);
    assert_eq!(meminfo_kb(k, "MemTotal"), total * 4);
    let mut without = mb.clone();
    for cpu in 0..CPUS {
        without.free(pc.first_unit_phys(cpu), pc.size_sum());
    }
    assert_eq!(free_pages_of(&without) - total, CPUS as u64 * FIRST_CHUNK_PAGES);
    // The boot line reports the same MemTotal.
    let line = format!("Memory: {}K/", total * 4);
    assert!(k.log.lines().iter().any(|(_, l)| l.starts_with(&line)), "{:?}", k.log.lines());

    // Percpu: the first chunk's pages times the units, as Linux counts it.
    assert_eq!(k.pcpu_nr_pages(), FIRST_CHUNK_PAGES * 4);
    assert_eq!(meminfo_kb(k, "Percpu"), 1008);
    let st = k.percpu_stats();
    assert_eq!((st.counters.nr_chunks, st.empty_pop_pages, st.chunks.len()), (1, 7, 2));
    assert!(st.chunks[0].reserved && st.chunks[1].first);
}

#[test]
fn padding_units_and_single_cpu_units_follow_linux() {
    // Three CPUs still take a four-unit atom: the fourth unit is padding,
    // returned whole to memblock, yet counted in Percpu as Linux counts
    // pcpu_nr_units.
    let m = machine(3);
    let k = &m.kernel;
    assert_eq!((k.percpu.unit_size(), k.percpu.nr_units()), (512 << 10, 4));
    assert_eq!(k.percpu.groups()[0].cpu_map, vec![Some(0), Some(1), Some(2), None]);
    let pad = k.percpu.groups()[0].phys.0 + 3 * (512 << 10);
    assert!(!reserved_overlaps(&k.boot.memblock, pad, 512 << 10));
    assert_eq!(meminfo_kb(k, "Percpu"), 1008);
    assert!(has_log(k, Level::Info, "pcpu-alloc: [0] 0 1 2 - "));
    // One CPU: the unit is the whole 2 MiB atom.
    let m = machine(1);
    assert_eq!((m.kernel.percpu.unit_size(), m.kernel.percpu.nr_units()), (2 << 20, 1));
    assert_eq!(meminfo_kb(&m.kernel, "Percpu"), 252);
}

#[test]
fn units_are_node_local_on_two_nodes() {
    let c = MachineConfig {
        nodes: vec![NodeConfig { mem: GIB, cpus: 2 }, NodeConfig { mem: GIB, cpus: 2 }],
        ..Default::default()
    };
    let m = Machine::boot(&c, 3).expect("boot");
    let k = &m.kernel;
    // Two groups of two 1 MiB units, one per node.
    assert_eq!((k.percpu.unit_size(), k.percpu.nr_units(), k.percpu.groups().len()), (1 << 20, 4, 2));
    let node_of = |pa: PhysAddr| {
        let pfn = pa.0 >> PAGE_SHIFT;
        (0..k.nodes.len())
            .find(|&n| {
                let nd = &k.nodes[n];
                pfn >= nd.node_start_pfn && pfn < nd.node_start_pfn + nd.node_spanned_pages
            })
            .unwrap()
    };
    for cpu in 0..4 {
        assert_eq!(node_of(k.percpu.first_unit_phys(cpu)), k.cpu_to_node[cpu], "first chunk unit of cpu {cpu}");
    }
    // Fill the first chunk, then a vmalloc chunk: every copy is the
    // CPU's own, and vmalloc-chunk pages come from the CPU's node.
    let ptrs: Vec<PercpuPtr> = (0..12).map(|_| k.alloc_percpu(8192, 8).unwrap()).collect();
    assert!(k.percpu_stats().counters.nr_chunks >= 2);
    for (i, &p) in ptrs.iter().enumerate() {
        for cpu in 0..4 {
            assert!(k.percpu_write(p, cpu, &[(i * 4 + cpu) as u8; 8192]));
        }
    }
    for (i, &p) in ptrs.iter().enumerate() {
        for cpu in 0..4 {
            let mut b = vec![0; 8192];
            assert!(k.percpu_read(p, cpu, &mut b));
            assert!(b.iter().all(|&x| x == (i * 4 + cpu) as u8));
            let pa = k.per_cpu_ptr_to_phys(k.per_cpu_ptr(p, cpu)).unwrap();
            assert_eq!(node_of(pa), k.cpu_to_node[cpu], "area {i} of cpu {cpu}");
        }
    }
    for p in ptrs {
        k.free_percpu(p);
    }
    debug_vm::check_all(k).unwrap();
}

#[test]
fn chunks_are_created_populated_and_destroyed() {
    let m = machine(CPUS);
    let k = &m.kernel;
    let boot_kb = meminfo_kb(k, "Percpu");
    let vmalloc0 = meminfo_kb(k, "VmallocUsed");
    // 32 KiB, the largest request, until four vmalloc chunks exist.
    let mut ptrs = Vec::new();
    let mut last_chunks = 1;
    let mut last_kb = boot_kb;
    while k.percpu_stats().counters.nr_chunks < 5 {
        let p = k.alloc_percpu(32 << 10, 4096).expect("32 KiB area");
        assert_eq!(k.per_cpu_ptr(p, 2).0 % 4096, 0);
        ptrs.push(p);
        let st = check_percpu_accounting(k).unwrap();
        let kb = meminfo_kb(k, "Percpu");
        assert!(kb >= last_kb, "Percpu only grows while allocating");
        if st.counters.nr_chunks > last_chunks {
            assert!(kb > last_kb, "a new chunk is populated as it is used");
        }
        (last_chunks, last_kb) = (st.counters.nr_chunks, kb);
    }
    // Each vmalloc chunk is one 2 MiB area; its metadata is kernel memory
    // (two bitmaps of more than a page each are vmalloc'd).
    let info = k.vmallocinfo();
    assert_eq!(info.lines().filter(|l| l.contains(" 2097152 vmap")).count(), 4, "{info}");
    assert!(meminfo_kb(k, "VmallocUsed") > vmalloc0);
    let peak_kb = meminfo_kb(k, "Percpu");
    assert!(peak_kb > boot_kb + 3 * 128 * 16, "three full chunks and more: {peak_kb} kB");

    // Free in allocation order: chunks die as they empty, one free chunk
    // is kept, and Percpu shrinks back.
    for p in ptrs {
        k.free_percpu(p);
        check_percpu_accounting(k).unwrap();
    }
    let st = check_percpu_accounting(k).unwrap();
    assert_eq!(st.counters.nr_cur_alloc, 0);
    assert_eq!(st.counters.nr_chunks, 2, "the first chunk and one spare: {st:#?}");
    let spare = st.chunks.iter().find(|c| !c.first && !c.reserved).unwrap();
    assert_eq!(spare.free_bytes, 512 << 10);
    assert_eq!(meminfo_kb(k, "Percpu"), boot_kb + spare.nr_populated as u64 * 16);
    assert!(meminfo_kb(k, "Percpu") < peak_kb);
    k.vm_unmap_aliases();
    assert_eq!(k.vmallocinfo().lines().filter(|l| l.contains(" 2097152 vmap")).count(), 1);
    debug_vm::check_all(k).unwrap();
}

#[test]
fn reserved_area_serves_reserved_requests_only() {
    let m = machine(CPUS);
    let k = &m.kernel;
    let a = k.alloc_reserved_percpu(4096, 8).unwrap();
    let b = k.alloc_reserved_percpu(4096, 8).unwrap();
    assert_eq!((a.0, b.0), (221_184, 221_184 + 4096), "right after the static area");
    assert!(k.alloc_reserved_percpu(4, 4).is_none(), "8 KiB only");
    assert!(has_log(k, Level::Warn, "alloc from reserved chunk failed"));
    let d = k.alloc_percpu(4, 4).unwrap();
    assert_eq!(d.0, 221_184 + 8192, "normal requests start at the dynamic area");
    k.free_percpu(a);
    assert_eq!(k.alloc_reserved_percpu(16, 16), Some(a));
    // An atomic request is served from populated memory.
    let e = k.alloc_percpu_gfp(64, 8, Gfp::GFP_ATOMIC).unwrap();
    assert!(k.percpu_write(e, 1, &[7; 64]));
    for p in [a, b, d, e] {
        k.free_percpu(p);
    }
    assert_eq!(k.percpu_stats().counters.nr_cur_alloc, 0);
}

#[test]
fn bad_input_is_refused_and_bad_frees_are_reported() {
    let m = machine(CPUS);
    let k = &m.kernel;
    assert!(k.alloc_percpu(0, 4).is_none());
    assert!(k.alloc_percpu((32 << 10) + 1, 4).is_none());
    assert!(k.alloc_percpu(u64::MAX, 4).is_none());
    assert!(k.alloc_percpu(64, 8192).is_none(), "alignment above a page");
    assert!(k.alloc_percpu(64, 12).is_none(), "alignment not a power of two");
    assert_eq!(k.log.count_matching(Level::Warn, "for percpu allocation"), 5);
    assert!(has_log(k, Level::Warn, "percpu: illegal size (0) or align (4) for percpu allocation"));
    assert!(k.alloc_percpu_gfp(0, 4, Gfp::GFP_KERNEL | Gfp::NOWARN).is_none());
    assert_eq!(k.log.count_matching(Level::Warn, "for percpu allocation"), 5, "__GFP_NOWARN is quiet");
    // The limits themselves are fine: 32 KiB at page alignment, align 0.
    let big = k.alloc_percpu(32 << 10, 4096).unwrap();
    let small = k.alloc_percpu(1, 0).unwrap();

    let before = k.percpu_stats();
    let warns = k.log.count_matching(Level::Warn, "no percpu area");
    // Too big for what is left of the first chunk: next to `big`.
    let vm = k.alloc_percpu(30 << 10, 4).unwrap();
    assert!(vm.0 > k.percpu.unit_size(), "a vmalloc chunk's pointer");
    k.free_percpu(PercpuPtr::NULL);
    for bogus in [
        PercpuPtr(0x40),                // a static variable
        PercpuPtr(small.0 + 4),         // inside an area
        PercpuPtr(vm.0 + 8),            // inside an area of a vmalloc chunk
        PercpuPtr(big.0 + (200 << 10)), // free space of a vmalloc chunk
        PercpuPtr(0x1234_5678_9abc),    // nowhere
        PercpuPtr(u64::MAX - 7),        // wraps around
        PercpuPtr(vm.0 + (1 << 30)),    // vmalloc space without a chunk
    ] {
        k.free_percpu(bogus);
    }
    k.free_percpu(vm);
    k.free_percpu(vm); // double free
    assert_eq!(k.log.count_matching(Level::Warn, "no percpu area"), warns + 8);
    let after = k.percpu_stats();
    assert_eq!(after.counters.nr_cur_alloc, before.counters.nr_cur_alloc);
    // Nothing was disturbed: the areas still read back.
    assert!(k.percpu_write(small, 3, &[1]));
    k.free_percpu(small);
    k.free_percpu(big);
    assert_eq!(k.percpu_stats().counters.nr_cur_alloc, 0);
    check_percpu_accounting(k).unwrap();
}

#[derive(Clone, Debug)]
enum Op {
    /// `alloc_percpu(size, 1 << align_shift)` on `cpu`.
    Alloc { size: u64, align_shift: u32, cpu: usize },
    /// Frees the live area at `pick` (modulo the live count) on `cpu`.
    Free { pick: usize, cpu: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1..=8192u64, 0..=12u32, 0..CPUS).prop_map(|(size, align_shift, cpu)| Op::Alloc { size, align_shift, cpu }),
        1 => (any::<usize>(), 0..CPUS).prop_map(|(pick, cpu)| Op::Free { pick, cpu }),
    ]
}

/// A live area of the model.
#[derive(Clone, Copy, Debug)]
struct Live {
    ptr: PercpuPtr,
    size: u64,
    tag: u64,
}

/// The bytes `cpu`'s copy of area `tag` should hold.
fn pattern(tag: u64, cpu: usize, size: u64) -> Vec<u8> {
    (0..size).map(|i| (tag.wrapping_mul(131).wrapping_add(cpu as u64 * 29).wrapping_add(i * 7) % 251) as u8).collect()
}

fn check_all_live(k: &Kernel, live: &[Live]) -> Result<(), TestCaseError> {
    for l in live {
        for cpu in 0..CPUS {
            let mut b = vec![0; l.size as usize];
            prop_assert!(k.percpu_read(l.ptr, cpu, &mut b), "area {:?} unreadable", l);
            prop_assert!(b == pattern(l.tag, cpu, l.size), "area {:?} of cpu {} was overwritten", l, cpu);
        }
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let m = machine(CPUS);
    let k = &m.kernel;
    let boot_kb = meminfo_kb(k, "Percpu");
    let mut live: Vec<Live> = Vec::new();
    let mut tag = 0;
    let mut prev = check_percpu_accounting(k)?;
    let n = ops.len();
    // The random steps, then everything still live freed in random order.
    let tail = (0..n).map(|i| Op::Free { pick: i.wrapping_mul(2_654_435_761), cpu: i % CPUS });
    let steps: Vec<Op> = ops.into_iter().chain(tail).collect();
    for op in steps {
        match op {
            Op::Alloc { size, align_shift, cpu } => {
                m.hal.set_cpu(cpu);
                let align = 1u64 << align_shift;
                let ptr = k.alloc_percpu(size, align);
                prop_assert!(ptr.is_some(), "alloc_percpu({}, {}) failed", size, align);
                let ptr = ptr.unwrap();
                // Within the unit space the area overlaps no live one.
                let rounded = size.next_multiple_of(4);
                for l in &live {
                    let disjoint = ptr.0 + rounded <= l.ptr.0 || l.ptr.0 + l.size.next_multiple_of(4) <= ptr.0;
                    prop_assert!(disjoint, "{:?}+{} overlaps {:?}", ptr, size, l);
                }
                for c in 0..CPUS {
                    prop_assert_eq!(k.per_cpu_ptr(ptr, c).0 % align.max(4), 0, "misaligned for align {}", align);
                    let mut b = vec![0xff; size as usize];
                    prop_assert!(k.percpu_read(ptr, c, &mut b));
                    prop_assert!(b.iter().all(|&x| x == 0), "a new area is zeroed on every cpu");
                }
                tag += 1;
                for c in 0..CPUS {
                    prop_assert!(k.percpu_write(ptr, c, &pattern(tag, c, size)));
                }
                live.push(Live { ptr, size, tag });
            }
            Op::Free { pick, cpu } => {
                if live.is_empty() {
                    continue;
                }
                m.hal.set_cpu(cpu);
                let l = live.swap_remove(pick % live.len());
                k.free_percpu(l.ptr);
            }
        }
        check_all_live(k, &live)?;
        let st = check_percpu_accounting(k)?;
        let kb = meminfo_kb(k, "Percpu");
        let prev_kb = prev.nr_populated * 16;
        if st.counters.nr_chunks > prev.counters.nr_chunks {
            prop_assert!(kb > prev_kb, "a new chunk populates pages: {} -> {} kB", prev_kb, kb);
        }
        if st.counters.nr_chunks < prev.counters.nr_chunks {
            prop_assert!(kb <= prev_kb, "a dying chunk gives its pages back: {} -> {} kB", prev_kb, kb);
        }
        prop_assert_eq!(st.counters.nr_cur_alloc, live.len() as u64);
        prev = st;
    }
    // All freed. Every chunk left besides the first is entirely free; the
    // last balance run may have spared a second free chunk that still has
    // populated pages (as Linux does), the next run leaves one spare. Percpu
    // is back to the boot value plus that spare's populated pages.
    prop_assert!(live.is_empty());
    prop_assert!(prev.chunks.iter().filter(|c| !c.first && !c.reserved).all(|c| c.free_bytes == 512 << 10));
    k.pcpu_balance_work();
    let st = &check_percpu_accounting(k)?;
    prop_assert!(st.counters.nr_chunks <= 2, "free chunks die, one is kept: {:#?}", st);
    let spare: u64 = st.chunks.iter().filter(|c| !c.first && !c.reserved).map(|c| c.nr_populated as u64).sum();
    prop_assert!(st.chunks.iter().filter(|c| !c.first && !c.reserved).all(|c| c.free_bytes == 512 << 10));
    prop_assert_eq!(meminfo_kb(k, "Percpu"), boot_kb + spare * 16);
    debug_vm::check_all(k).map_err(TestCaseError::fail)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_alloc_free_against_a_model(ops in prop::collection::vec(op(), 1..400)) {
        run(ops)?;
    }
}
