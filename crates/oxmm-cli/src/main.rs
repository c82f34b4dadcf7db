//! The `oxmm` command: boots simulated machines, runs scenarios, prints
//! Linux's /proc views, writes run reports (`oxmm run --report DIR`, see
//! [`report`]), and runs the benchmarks.

mod difftest_cmd;
mod html;
mod plot;
mod report;
mod trace_cmd;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use oxmm_sim::processes::ProcState;
use oxmm_sim::scenario::Scenario;
use oxmm_sim::Machine;

#[derive(Parser)]
#[command(name = "oxmm", version, about = "Linux's memory-management subsystem, in Rust, on a simulated machine")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot a machine from a scenario (the embedded default without one), run its workloads, print /proc files.
    Run {
        /// A scenario file (TOML); see docs/scenarios.md.
        scenario: Option<PathBuf>,
        /// Seed for every random choice (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// /proc files to print at the end, comma-separated (meminfo,buddyinfo,zoneinfo,pagetypeinfo,vmstat,...).
        #[arg(long, value_delimiter = ',')]
        proc: Vec<String>,
        /// No progress bar and no summary: only the requested /proc files.
        #[arg(long)]
        quiet: bool,
        /// Write a report into this directory: /proc snapshots, a time series (CSV), charts (SVG, PNG), index.html.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
    },
    /// Run a benchmark against its peers; prints `ratio <bench> <peer> <value>` lines.
    Bench {
        /// Benchmark name.
        name: String,
        /// Fewer repetitions.
        #[arg(long)]
        quick: bool,
    },
    /// Differential testing against the host kernel: run .mms scripts or random programs on both (see docs/difftest.md).
    #[command(disable_help_flag = true)]
    Difftest {
        /// Scripts and options (`oxmm difftest --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Record a real program's memory accesses with valgrind into a page-granular trace.
    #[command(disable_help_flag = true)]
    Trace {
        /// `-o FILE -- CMD ARGS...` (`oxmm trace --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Replay a memory trace as a process of a simulated machine.
    #[command(disable_help_flag = true)]
    Replay {
        /// `FILE [--ram SIZE] [--format lackey|pages|oxmm]` (`oxmm replay --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Show the vm sysctls of a freshly booted default machine (`sysctl -a`), or one of them.
    Sysctl {
        /// All knobs.
        #[arg(short = 'a', long = "all")]
        all: bool,
        /// One knob by name.
        name: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Run { scenario, seed, proc, quiet, report } => run(scenario, seed, proc, quiet, report),
        Cmd::Bench { name, quick } => {
            let mut out = std::io::stdout().lock();
            oxmm_bench::run(&name, quick, &mut out)
        }
        Cmd::Sysctl { all, name } => sysctl(all, name),
        Cmd::Difftest { args } => return difftest_cmd::main(args),
        Cmd::Trace { args } => trace_cmd::trace(args),
        Cmd::Replay { args } => trace_cmd::replay(args),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oxmm: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(scenario: Option<&Path>) -> Result<Scenario, String> {
    match scenario {
        Some(p) => Scenario::load(p).map_err(|e| e.to_string()),
        None => Ok(Scenario::default_scenario()),
    }
}

/// The scenario's name and text for a report: the file name only (no host
/// path, so reports compare across directories), or the embedded default.
fn scenario_for_report(path: Option<&Path>, sc: &Scenario) -> Result<(String, String), String> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: cannot read the file: {e}", p.display()))?;
            let name = p.file_name().map_or_else(|| sc.source.clone(), |n| n.to_string_lossy().into_owned());
            Ok((name, text))
        }
        None => Ok((sc.source.clone(), oxmm_sim::scenario::DEFAULT_SCENARIO.to_string())),
    }
}

fn boot(sc: &Scenario, seed: u64) -> Result<Machine, String> {
    let mut m = Machine::boot(&sc.machine, seed).map_err(|e| format!("{}: {e}", sc.source))?;
    for (name, value) in &sc.sysctls {
        m.kernel.sysctl_set(name, value).map_err(|e| format!("{}: key `sysctl.\"{name}\"`: {e:?}", sc.source))?;
    }
    let mut fs = std::mem::take(&mut m.tmpfs);
    let made = fs.create_files(&m.kernel, &sc.files);
    m.tmpfs = fs;
    made.map_err(|e| format!("{}: key `machine.file`: {e}", sc.source))?;
    Ok(m)
}

/// A one-line progress bar on stderr, only when stderr is a terminal.
struct Progress {
    on: bool,
    label: String,
    /// The percentage last drawn, so a tick per operation redraws once per percent.
    shown: Option<u32>,
}

impl Progress {
    fn tick(&mut self, frac: f64) {
        if !self.on {
            return;
        }
        let pct = (frac.clamp(0.0, 1.0) * 100.0) as u32;
        if self.shown == Some(pct) {
            return;
        }
        self.shown = Some(pct);
        let width = 40;
        let done = ((frac * width as f64) as usize).min(width);
        eprint!("\r{} [{}{}] {:3.0}%", self.label, "#".repeat(done), " ".repeat(width - done), frac * 100.0);
        if frac >= 1.0 {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    }
}

fn run(
    scenario: Option<PathBuf>,
    seed: Option<u64>,
    procs: Vec<String>,
    quiet: bool,
    report_dir: Option<PathBuf>,
) -> Result<(), String> {
    let sc = load(scenario.as_deref())?;
    for p in &procs {
        let name = p.trim_start_matches("/proc/");
        if !oxmm::proc::FILES.contains(&name) {
            return Err(format!("--proc: no file `{p}` (known: {})", oxmm::proc::FILES.join(", ")));
        }
    }
    let seed = seed.unwrap_or(sc.seed);
    // Read before the run, so an unreadable file fails early.
    let report_scenario = report_dir.as_ref().map(|_| scenario_for_report(scenario.as_deref(), &sc)).transpose()?;
    let t0 = Instant::now();
    let mut m = boot(&sc, seed)?;
    let mut report = match &report_dir {
        Some(dir) => {
            let interval = sc
                .report_interval_ns
                .unwrap_or_else(|| oxmm_sim::sampler::auto_interval_for_ns(sc.expected_virtual_ns()));
            let names: Vec<String> = sc.processes.iter().map(|p| p.name.clone()).collect();
            Some(report::Report::start(dir, &m, interval, &names)?)
        }
        None => None,
    };
    let mut stats = Vec::new();
    let mut runs = Vec::new();
    for (i, w) in sc.workloads.iter().enumerate() {
        let mut bar =
            Progress { on: !quiet && std::io::stderr().is_terminal(), label: format!("workload {i}"), shown: None };
        let start_ns = m.now_ns();
        let st = w.run(&mut m, |m, f| {
            if let Some(r) = report.as_mut() {
                r.poll(m);
            }
            bar.tick(f);
        });
        if let Some(r) = report.as_mut() {
            r.sample(&m);
        }
        runs.push(report::WorkloadRun { describe: w.describe(), stats: st.clone(), start_ns, end_ns: m.now_ns() });
        stats.push((w.describe(), w.is_user(), st));
    }
    let proc_runs = if sc.processes.is_empty() {
        Vec::new()
    } else {
        let mut bar =
            Progress { on: !quiet && std::io::stderr().is_terminal(), label: "processes".into(), shown: None };
        let origin = m.now_ns();
        let mem = sc.machine.total_mem();
        let expected =
            sc.duration_ns.unwrap_or_else(|| sc.processes.iter().map(|p| p.expected_end_ns(mem)).max().unwrap_or(0));
        let runs = oxmm_sim::processes::run_processes(&mut m, &sc.processes, sc.duration_ns, seed, |m, runs| {
            let done = runs.iter().all(|r| !matches!(r.state, ProcState::Waiting | ProcState::Running));
            bar.tick(if done { 1.0 } else { ((m.now_ns() - origin) as f64 / expected.max(1) as f64).min(0.99) });
            report.as_mut().map(|r| r.poll_processes(m, runs))
        });
        if let Some(r) = report.as_mut() {
            r.sample(&m);
        }
        runs
    };
    let index = match (report, report_scenario) {
        (Some(r), Some((scenario, scenario_text))) => {
            let k = &m.kernel;
            let info = report::RunInfo {
                scenario,
                scenario_text,
                seed,
                machine: format!(
                    "{} node(s), {} CPUs, {} MiB RAM; slab allocator: {}",
                    k.nodes.len(),
                    k.nr_cpus,
                    sc.machine.total_mem() >> 20,
                    sc.slab.name()
                ),
                workloads: runs,
                processes: proc_runs.clone(),
            };
            Some(r.finish(&m, &info)?)
        }
        _ => None,
    };
    let host = t0.elapsed();
    let mut out = std::io::stdout().lock();
    let w = |out: &mut std::io::StdoutLock, s: String| out.write_all(s.as_bytes()).map_err(|e| e.to_string());
    if !quiet {
        let k = &m.kernel;
        let mut s = String::from("== oxmm run ==\n");
        s += &format!("  scenario   {} (seed {seed})\n", sc.source);
        s += &format!(
            "  machine    {} node(s), {} CPUs, {} MiB RAM; boot took {:.3} s host time\n",
            k.nodes.len(),
            k.nr_cpus,
            sc.machine.total_mem() >> 20,
            m.boot_time.as_secs_f64()
        );
        for (d, user, st) in &stats {
            let peak = if st.peak_live_bytes >= 1 << 20 {
                format!("{} MiB", st.peak_live_bytes >> 20)
            } else {
                format!("{} KiB", st.peak_live_bytes >> 10)
            };
            if *user {
                // User workloads: accesses (or workers), page faults, peak RSS.
                s += &format!(
                    "  workload   {d}\n             {} done, {} failed, {} page faults (minor), peak RSS {} MiB, \
                     {peak} at most in one step{}\n",
                    st.allocs,
                    st.failures,
                    st.faults,
                    st.peak_rss_bytes >> 20,
                    if st.bytes_read + st.bytes_written > 0 {
                        format!(
                            ", {} read ({} mismatching reads), {} written",
                            oxmm_sim::workload::size_text(st.bytes_read),
                            st.mismatches,
                            oxmm_sim::workload::size_text(st.bytes_written)
                        )
                    } else {
                        String::new()
                    }
                );
            } else {
                s += &format!(
                    "  workload   {d}\n             {} allocations, {} failed, {} frees, peak {peak} live\n",
                    st.allocs, st.failures, st.frees
                );
            }
        }
        if !proc_runs.is_empty() {
            s += &format!(
                "  processes  {} on {} CPUs{}\n",
                proc_runs.len(),
                k.nr_cpus,
                sc.duration_ns.map_or(String::new(), |d| format!(", for {}", report::ms(d)))
            );
            for p in &proc_runs {
                s += &report::process_summary(p);
            }
        }
        for (path, id) in m.tmpfs.files() {
            let pages = k.shmem_file(id).map_or(0, |f| f.pages.lock().len() as u64);
            s += &format!(
                "  tmpfs      {path}: {} bytes, {} in memory (Shmem)\n",
                k.file_size(id).unwrap_or(0),
                oxmm_sim::workload::size_text(pages * 4096)
            );
        }
        s += &format!("  time       {:.3} ms simulated, {:.3} s host\n", m.now_ns() as f64 / 1e6, host.as_secs_f64());
        if let Some(index) = &index {
            s += &format!("  report     {}\n", index.display());
        }
        w(&mut out, s)?;
    }
    let list: Vec<String> = if procs.is_empty() && !quiet { vec!["meminfo".into()] } else { procs };
    for p in list {
        let name = p.trim_start_matches("/proc/");
        let text = oxmm::proc::render(&m.kernel, name).ok_or_else(|| format!("--proc: no file `{p}`"))?;
        if !quiet {
            w(&mut out, format!("==> /proc/{name} <==\n"))?;
        }
        w(&mut out, text)?;
    }
    Ok(())
}

fn sysctl(all: bool, name: Option<String>) -> Result<(), String> {
    let sc = Scenario::default_scenario();
    let m = boot(&sc, sc.seed)?;
    let k = &m.kernel;
    match (all, name) {
        (_, Some(n)) => {
            let v = k.sysctl_get(&n).ok_or_else(|| {
                format!("sysctl: cannot stat /proc/sys/{}: No such file or directory", n.replace('.', "/"))
            })?;
            println!("{n} = {v}");
        }
        (true, None) => print!("{}", k.sysctl_all()),
        (false, None) => return Err("sysctl: give -a or a knob name".into()),
    }
    Ok(())
}
