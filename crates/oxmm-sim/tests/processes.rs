//! `[[process]]`es on the virtual clock: deterministic interleaving, start
//! times, the duration, resource limits, and per-process counters.

use oxmm::vmstat::{NodeStat, VmEvent};
use oxmm_sim::processes::{run_processes, ProcState, ProcessRun};
use oxmm_sim::sampler::Sampler;
use oxmm_sim::scenario::Scenario;
use oxmm_sim::Machine;

fn scenario(text: &str) -> Scenario {
    Scenario::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn boot(sc: &Scenario, seed: u64) -> Machine {
    Machine::boot(&sc.machine, seed).unwrap()
}

/// After each callback: the virtual time and each process's operations done.
type Progress = Vec<(u64, Vec<u64>)>;

/// Runs the scenario's processes; returns the runs and their [`Progress`].
fn run(sc: &Scenario, seed: u64) -> (Machine, Vec<ProcessRun>, Progress) {
    let mut m = boot(sc, seed);
    let mut trace = Vec::new();
    let runs = run_processes(&mut m, &sc.processes, sc.duration_ns, seed, |m, runs| {
        trace.push((m.now_ns(), runs.iter().map(|r| r.stats.allocs).collect()));
        None
    });
    (m, runs, trace)
}

const TWO_READERS: &str = "
[machine]
mem = \"512M\"
cpus = 1

[[process]]
name = \"a\"
kind = \"anon\"
size = \"1M\"
accesses = 1000
pattern = \"random\"

[[process]]
name = \"b\"
kind = \"anon\"
size = \"1M\"
accesses = 1000
pattern = \"sequential\"
write_ratio = 1.0
";

#[test]
fn processes_on_one_cpu_take_turns_deterministically() {
    let sc = scenario(TWO_READERS);
    let (m, runs, trace) = run(&sc, 1);
    assert!(runs.iter().all(|r| r.state == ProcState::Exited && r.stats.allocs == 1000), "{runs:?}");
    // One CPU: their 2000 accesses of 100 ns follow one another.
    assert_eq!(m.now_ns(), 200_000);
    // Turns alternate: while `a` has done n accesses, `b` has done n or n - 1.
    for (t, done) in &trace {
        assert!(done[0].abs_diff(done[1]) <= 1, "at {t} ns: {done:?}");
    }
    // `b` writes 256 pages sequentially: one fault each; its RSS peaks at 1 MiB.
    assert_eq!(runs[1].minor_faults, 256);
    assert_eq!(runs[1].peak_rss_bytes, 1 << 20);
    assert_eq!(runs[1].major_faults, 0);
    // The same seed gives the same interleaving and counters.
    let (m2, runs2, trace2) = run(&sc, 1);
    assert_eq!((runs2, trace2, m2.now_ns()), (runs.clone(), trace, m.now_ns()));
    // Each process has its own random stream: `b`'s run is the same under another seed.
    let (_, runs3, _) = run(&sc, 2);
    assert_eq!(runs3[1].minor_faults, 256);
}

#[test]
fn processes_on_two_cpus_run_side_by_side_on_their_own_cpus() {
    let sc = scenario(&TWO_READERS.replace("cpus = 1", "cpus = 2"));
    let (m, runs, _) = run(&sc, 1);
    assert_eq!((runs[0].cpu, runs[1].cpu), (0, 1), "round-robin over the CPUs");
    assert_eq!(m.now_ns(), 100_000, "both run at once");
    assert_eq!(runs[0].end_ns, Some(100_000));
}

#[test]
fn faults_are_counted_per_process() {
    let sc = scenario(&TWO_READERS.replace("cpus = 1", "cpus = 2"));
    let mut m = boot(&sc, 4);
    let before = m.kernel.vm_event(VmEvent::Pgfault);
    let runs = run_processes(&mut m, &sc.processes, None, 4, |_, _| None);
    let total = m.kernel.vm_event(VmEvent::Pgfault) - before;
    assert_eq!(runs.iter().map(|r| r.minor_faults + r.major_faults).sum::<u64>(), total);
    assert!(runs.iter().all(|r| r.minor_faults > 0));
    assert!(runs.iter().all(|r| r.stats.faults == r.minor_faults + r.major_faults));
}

#[test]
fn a_process_starting_at_5ms_has_no_faults_before_5ms() {
    let sc = scenario(
        "[machine]\nmem = \"512M\"\ncpus = 2\n\
         [[process]]\nname = \"late\"\nstart = \"5ms\"\nkind = \"anon\"\nsize = \"4M\"\naccesses = 20000\n\
         pattern = \"sequential\"\nwrite_ratio = 1.0\n",
    );
    let mut m = boot(&sc, 1);
    let names = vec!["late".to_string()];
    let mut sampler = Sampler::with_processes(&m, 100_000, &names);
    let runs = run_processes(&mut m, &sc.processes, sc.duration_ns, 1, |m, runs| {
        sampler.set_pids(runs.iter().map(|r| if r.state == ProcState::Running { r.pid } else { None }));
        sampler.poll(m);
        Some(sampler.next_due_ns())
    });
    sampler.sample(&m);
    assert_eq!(runs[0].start_ns, Some(5_000_000));
    assert_eq!(runs[0].end_ns, Some(7_000_000), "20000 accesses of 100 ns");
    let ts = sampler.finish();
    let (fault, rss) = (ts.column("pgfault").unwrap(), ts.column("rss_late_kB").unwrap());
    let before: Vec<_> = ts.rows.iter().filter(|r| r.t_ns < 5_000_000).collect();
    // The idle stretch is sampled on time, every 0.1 ms.
    assert_eq!(before.len(), 50);
    assert!(before.iter().all(|r| r.values[fault] == ts.rows[0].values[fault] && r.values[rss] == 0));
    let during: Vec<_> = ts.rows.iter().filter(|r| (5_100_000..7_000_000).contains(&r.t_ns)).collect();
    assert!(during.iter().all(|r| r.values[rss] > 0));
    assert!(during.windows(2).all(|w| w[0].values[rss] <= w[1].values[rss]), "RSS grows while it writes");
    assert_eq!(ts.rows.last().unwrap().values[rss], 0, "it exited");
}

#[test]
fn duration_kills_what_still_runs_and_never_starts_what_is_due_later() {
    let sc = scenario(
        "duration = \"1ms\"\n[machine]\nmem = \"512M\"\ncpus = 2\n\
         [[process]]\nname = \"long\"\nkind = \"anon\"\nsize = \"8M\"\naccesses = 1000000\nwrite_ratio = 1.0\n\
         [[process]]\nname = \"short\"\nkind = \"anon\"\nsize = \"1M\"\naccesses = 100\n\
         [[process]]\nname = \"later\"\nstart = \"2ms\"\nkind = \"anon\"\nsize = \"1M\"\naccesses = 100\n",
    );
    let (m, runs, _) = run(&sc, 1);
    assert_eq!(m.now_ns(), 1_000_000, "the run lasts the duration");
    assert_eq!(runs[0].state, ProcState::Killed);
    assert_eq!(runs[0].end_ns, Some(1_000_000));
    assert_eq!(runs[0].stats.allocs, 10_000, "1 ms of 100 ns accesses");
    assert!(runs[0].peak_rss_bytes > 0);
    assert_eq!(runs[1].state, ProcState::Exited);
    assert_eq!(runs[1].end_ns, Some(10_000));
    assert_eq!((runs[2].state.clone(), runs[2].pid), (ProcState::Waiting, None));
    assert_eq!(m.kernel.global_node_page_state(NodeStat::NrAnonPages), 0, "the killed process's memory is freed");
    assert!(m.kernel.vm.tasks.lock().is_empty(), "no task is left");
}

#[test]
fn address_space_limit_stops_a_memory_hog_with_enomem() {
    let sc = scenario(
        "[machine]\nmem = \"1G\"\ncpus = 1\n\
         [[process]]\nname = \"hog\"\nkind = \"memory_hog\"\nstep = \"8M\"\nlimit = 0\nmax_steps = 100\n\
         limits = { as = \"64M\" }\n",
    );
    let (_, runs, _) = run(&sc, 1);
    let h = &runs[0];
    // The 128 KiB stack and seven 8 MiB steps fit in 64 MiB, the eighth does not.
    assert_eq!(h.stats.allocs, 7);
    assert_eq!(h.stats.failures, 1);
    assert_eq!(h.stats.last_error.as_deref(), Some("mmap: ENOMEM"));
    assert_eq!(h.peak_rss_bytes, 56 << 20);
    assert_eq!(h.state, ProcState::Exited);
    // Unlimited, the same hog takes all 100 steps.
    let (_, runs, _) = run(&scenario(&sc_text_unlimited()), 1);
    assert_eq!(runs[0].stats.allocs, 100);
}

fn sc_text_unlimited() -> String {
    "[machine]\nmem = \"1G\"\ncpus = 1\n\
     [[process]]\nname = \"hog\"\nkind = \"memory_hog\"\nstep = \"1M\"\nlimit = 0\nmax_steps = 100\n\
     limits = { as = \"unlimited\" }\n"
        .to_string()
}

#[test]
fn data_limit_makes_brk_and_private_mmap_fail() {
    let text = "[machine]\nmem = \"1G\"\ncpus = 1\n\
         [[process]]\nname = \"heap\"\nkind = \"heap_churn\"\nops = 2000\nmax_live = 400\nmax_size = \"1M\"\n";
    let (_, free, _) = run(&scenario(text), 3);
    assert_eq!(free[0].stats.failures, 0);
    let (_, limited, _) = run(&scenario(&format!("{text}limits = {{ data = \"1M\" }}\n")), 3);
    let st = &limited[0].stats;
    assert!(st.failures > 100, "{st:?}");
    assert!(st.last_error.as_deref().is_some_and(|e| e.ends_with("ENOMEM")), "{st:?}");
    assert!(limited[0].peak_rss_bytes < free[0].peak_rss_bytes);
}

#[test]
fn fork_server_as_a_process_counts_its_workers_faults() {
    let sc = scenario(
        "[machine]\nmem = \"512M\"\ncpus = 2\n\
         [[process]]\nname = \"web\"\nkind = \"fork_server\"\nsize = \"2M\"\nchildren = 2\ntouch_fraction = 0.5\n",
    );
    let (m, runs, _) = run(&sc, 5);
    let w = &runs[0];
    assert_eq!(w.stats.allocs, 2, "two workers forked");
    assert_eq!(w.stats.frees, 2, "and reaped");
    // 512 pages written by the server, then up to 256 copies per worker.
    assert!(w.minor_faults > 512 && w.minor_faults <= 512 + 2 * 256, "{}", w.minor_faults);
    assert_eq!(w.peak_rss_bytes, 2 << 20);
    assert_eq!(m.kernel.global_node_page_state(NodeStat::NrAnonPages), 0);
}

#[test]
fn anon_phases_run_in_order() {
    let sc = scenario(
        "[machine]\nmem = \"512M\"\ncpus = 1\n\
         [[process]]\nname = \"phased\"\nkind = \"anon\"\nsize = \"2M\"\nphases = [\n\
         { accesses = 512, pattern = \"sequential\", write_ratio = 1.0 },\n\
         { accesses = 3000, pattern = \"zipf\", skew = 1.2, write_ratio = 0.0 },\n]\n",
    );
    let (m, runs, _) = run(&sc, 1);
    // The first phase writes every page once; the second only reads them.
    assert_eq!(runs[0].minor_faults, 512);
    assert_eq!(runs[0].stats.allocs, 3512);
    assert!(runs[0].describe.starts_with("anon: 3512 accesses in 2 phases (512 Sequential"), "{}", runs[0].describe);
    assert_eq!(m.now_ns(), 351_200);
}

#[test]
fn kernel_workloads_and_user_workloads_still_run_as_workload_tables() {
    let sc = scenario(
        "[machine]\nmem = \"512M\"\ncpus = 2\n\
         [[workload]]\nkind = \"page_churn\"\nops = 1000\nmax_live = \"1M\"\n\
         [[workload]]\nkind = \"file\"\nmode = \"write\"\nfile_size = \"1M\"\nio_size = \"64k\"\nops = 16\n",
    );
    let mut m = boot(&sc, 1);
    let stats: Vec<_> = sc.workloads.iter().map(|w| w.run(&mut m, |_, _| {})).collect();
    assert_eq!(stats[0].allocs, 1000);
    assert_eq!(stats[1].bytes_written, 1 << 20);
    assert_eq!(m.kernel.global_node_page_state(NodeStat::NrShmem), 0, "an unlinked file goes with its process");
}

#[test]
fn a_trace_replays_as_a_process_next_to_others() {
    let dir = std::env::temp_dir().join(format!("oxmm-proc-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("refs.txt"), "5\n5 W\n9 I\n5\n11 W\n").unwrap();
    let text = "[machine]\nmem = \"512M\"\ncpus = 1\n\
         [[process]]\nname = \"prog\"\nkind = \"replay\"\ntrace = \"refs.txt\"\n\
         [[process]]\nname = \"other\"\nkind = \"anon\"\nsize = \"1M\"\naccesses = 10\n";
    // The trace's path is relative to the scenario file.
    let file = dir.join("s.toml");
    std::fs::write(&file, text).unwrap();
    let sc = Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let mut m = boot(&sc, 1);
    let runs = run_processes(&mut m, &sc.processes, None, 1, |_, _| None);
    let p = &runs[0];
    assert_eq!(p.stats.allocs, 5);
    assert_eq!(p.stats.failures, 0);
    // Page 5: read (zero page), then write (a copy); page 9: fetch (zero
    // page); page 11: write.
    assert_eq!(p.minor_faults, 4);
    assert_eq!(p.peak_rss_bytes, 2 * 4096);
    assert!(p.describe.contains("refs.txt") && p.describe.contains("5 references"), "{}", p.describe);
    let e = Scenario::parse(&text.replace("refs.txt", "missing.txt"), &file.display().to_string()).unwrap_err();
    assert_eq!(e.key, "process[0].trace");
    assert!(e.problem.contains("missing.txt") && e.problem.contains("cannot open"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
