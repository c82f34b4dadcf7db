//! User-space workloads end to end: their faults, RSS and the counters
//! they leave behind.

use oxmm::vmstat::NodeStat;
use oxmm_sim::user_workloads::{AnonAccess, ForkServer, Pattern};
use oxmm_sim::workload::Workload;
use oxmm_sim::{Machine, MachineConfig};

fn machine(seed: u64) -> Machine {
    Machine::boot(&MachineConfig::single(1 << 30, 2), seed).unwrap()
}

#[test]
fn sequential_writes_fault_every_page_once() {
    let mut m = machine(1);
    let w =
        AnonAccess { size: 4 << 20, accesses: 1024, write_ratio: 1.0, pattern: Pattern::Sequential, phases: vec![] };
    let st = Workload::Anon(w).run(&mut m, |_, _| {});
    assert_eq!(st.failures, 0);
    assert_eq!(st.faults, 1024, "one write fault per page");
    assert_eq!(st.peak_rss_bytes, 4 << 20);
    assert_eq!(m.kernel.global_node_page_state(NodeStat::NrAnonPages), 0, "the process exited");
}

#[test]
fn skewed_patterns_touch_fewer_pages_than_uniform_ones() {
    let run = |pattern| {
        let mut m = machine(3);
        let w = AnonAccess { size: 16 << 20, accesses: 3000, write_ratio: 0.0, pattern, phases: vec![] };
        Workload::Anon(w).run(&mut m, |_, _| {})
    };
    let uniform = run(Pattern::Random);
    let zipf = run(Pattern::Zipf(1.2));
    let hot = run(Pattern::HotCold { hot_fraction: 0.05, hot_share: 0.95 });
    // Reads of untouched anonymous memory map the zero page: a fault per
    // distinct page, and no RSS.
    assert!(zipf.faults < uniform.faults, "zipf {} vs uniform {}", zipf.faults, uniform.faults);
    assert!(hot.faults < uniform.faults, "hot/cold {} vs uniform {}", hot.faults, uniform.faults);
    assert_eq!(uniform.peak_rss_bytes, 0, "reads only map the zero page");
    assert_eq!(run(Pattern::Random), uniform, "the same seed gives the same run");
}

#[test]
fn fork_server_workers_copy_on_write() {
    let mut m = machine(5);
    let before = m.kernel.global_node_page_state(NodeStat::NrAnonPages);
    let w = ForkServer { size: 2 << 20, children: 3, touch_fraction: 0.5 };
    let st = Workload::ForkServer(w).run(&mut m, |_, _| {});
    let pages = 512;
    assert_eq!(st.allocs, 3, "three workers forked");
    assert_eq!(st.peak_rss_bytes, 2 << 20);
    // The server faults each page in once; each worker faults on the first
    // write to each page it dirties (a copy), never more than it writes.
    assert!(st.faults > pages && st.faults <= pages + 3 * 256, "{}", st.faults);
    assert!(st.peak_live_bytes > 0 && st.peak_live_bytes < 2 << 20, "a worker holds only the pages it copied");
    assert_eq!(m.kernel.global_node_page_state(NodeStat::NrAnonPages), before);
}

#[test]
fn heap_churn_uses_brk_for_small_blocks_and_mmap_for_large_ones() {
    use oxmm_sim::user_workloads::HeapChurn;
    let mut m = machine(7);
    let anon0 = m.kernel.global_node_page_state(NodeStat::NrAnonPages);
    let w = HeapChurn { ops: 3000, max_live: 200, max_size: 1 << 20 };
    let st = Workload::HeapChurn(w.clone()).run(&mut m, |_, _| {});
    assert_eq!(st.failures, 0);
    assert_eq!(st.allocs, 3000);
    assert!(st.frees > 2000, "{}", st.frees);
    assert!(st.faults > 0 && st.peak_rss_bytes > 0);
    assert_eq!(m.kernel.global_node_page_state(NodeStat::NrAnonPages), anon0);
    let mut m2 = machine(7);
    assert_eq!(Workload::HeapChurn(w).run(&mut m2, |_, _| {}), st, "reproducible per seed");
}

#[test]
fn memory_hog_stops_at_its_address_space_limit() {
    use oxmm_sim::user_workloads::MemoryHog;
    let mut m = machine(9);
    // The process starts with its 128 KiB stack: 64 MiB of RLIMIT_AS holds
    // seven 8 MiB steps and not the eighth.
    let st = Workload::MemoryHog(MemoryHog { step: 8 << 20, limit: 64 << 20, max_steps: 100 }).run(&mut m, |_, _| {});
    assert_eq!(st.allocs, 7);
    assert_eq!(st.failures, 1, "the eighth mmap is refused with ENOMEM");
    assert_eq!(st.peak_rss_bytes, 56 << 20);
    assert_eq!(st.faults, 7 * 2048);
}

/// The kernel-side workloads end to end: page churn's allocations show in
/// vmstat's pgalloc_* and pgfree and every page comes back; slab churn's
/// objects show in slab memory while it runs and are all freed after.
#[test]
fn kernel_workloads_count_their_allocations_and_give_everything_back() {
    use oxmm::vmstat::VmEvent;
    use oxmm_sim::workload::{PageChurn, SlabChurn};
    let mut m = machine(5);
    let k_free = |m: &Machine| m.kernel.nr_free_pages() + m.kernel.pcp_pages();
    let pgalloc = |m: &Machine| {
        [VmEvent::PgallocDma, VmEvent::PgallocDma32, VmEvent::PgallocNormal, VmEvent::PgallocMovable]
            .iter()
            .map(|&e| m.kernel.vm_event(e))
            .sum::<u64>()
    };
    let free0 = k_free(&m);
    let (alloc0, pgfree0) = (pgalloc(&m), m.kernel.vm_event(VmEvent::Pgfree));
    let mut least_free = u64::MAX;
    let pc = PageChurn { ops: 20_000, max_live_bytes: 64 << 20, max_order: 3 };
    let st = Workload::PageChurn(pc).run(&mut m, |m, _| least_free = least_free.min(k_free(m)));
    assert_eq!(st.allocs + st.failures, 20_000);
    assert_eq!(st.failures, 0, "64 MiB live fits in 1 GiB");
    assert_eq!(st.frees, st.allocs, "everything allocated is freed");
    assert!(st.peak_live_bytes <= 64 << 20 && st.peak_live_bytes > 0);
    assert!(free0 - least_free >= st.peak_live_bytes / 4096 / 2, "the live set shows in the free pages");
    assert!(pgalloc(&m) - alloc0 >= st.allocs, "pgalloc_* counts pages, at least one an allocation");
    assert_eq!(pgalloc(&m) - alloc0, m.kernel.vm_event(VmEvent::Pgfree) - pgfree0, "as many pages freed as allocated");
    assert_eq!(k_free(&m), free0, "every page back");

    let slab_pages = |m: &Machine| {
        m.kernel.global_node_page_state(NodeStat::NrSlabReclaimable)
            + m.kernel.global_node_page_state(NodeStat::NrSlabUnreclaimable)
    };
    let slab0 = slab_pages(&m);
    let mut most_slab = 0;
    let sc = SlabChurn { ops: 30_000, max_live: 5_000 };
    let st = Workload::SlabChurn(sc).run(&mut m, |m, _| most_slab = most_slab.max(slab_pages(m)));
    assert_eq!(st.allocs + st.failures, 30_000);
    assert_eq!(st.failures, 0);
    assert_eq!(st.frees, st.allocs);
    assert!(most_slab > slab0 + 100, "live objects take slab pages: {slab0} -> {most_slab}");
    let dentry = m.kernel.slab.caches().find(|c| c.name == "dentry").expect("the workload's dentry cache");
    assert_eq!(m.kernel.kmem_cache_objects_in_use(dentry), 0, "every dentry freed");
    // Shrunk at the end: what is left is the caches' descriptors and sheaves.
    assert!(slab_pages(&m) < slab0 + 40, "slab pages back near the start: {slab0} -> {}", slab_pages(&m));
    assert_eq!(m.kernel.log.count_matching(oxmm::printk::Level::Err, ""), 0, "{:#?}", m.kernel.log.lines());
}
