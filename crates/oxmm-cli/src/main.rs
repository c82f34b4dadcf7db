//! The `oxmm` command: boots simulated machines, runs scenarios, prints
//! Linux's /proc views, and runs the benchmarks.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
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
    },
    /// Run a benchmark against its peers; prints `ratio <bench> <peer> <value>` lines.
    Bench {
        /// Benchmark name.
        name: String,
        /// Fewer repetitions.
        #[arg(long)]
        quick: bool,
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
        Cmd::Run { scenario, seed, proc, quiet } => run(scenario, seed, proc, quiet),
        Cmd::Bench { name, quick } => {
            let mut out = std::io::stdout().lock();
            oxmm_bench::run(&name, quick, &mut out)
        }
        Cmd::Sysctl { all, name } => sysctl(all, name),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oxmm: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(scenario: Option<PathBuf>) -> Result<Scenario, String> {
    match scenario {
        Some(p) => Scenario::load(&p).map_err(|e| e.to_string()),
        None => Ok(Scenario::default_scenario()),
    }
}

fn boot(sc: &Scenario, seed: u64) -> Result<Machine, String> {
    let m = Machine::boot(&sc.machine, seed).map_err(|e| format!("{}: {e}", sc.source))?;
    for (name, value) in &sc.sysctls {
        m.kernel.sysctl_set(name, value).map_err(|e| format!("{}: key `sysctl.\"{name}\"`: {e:?}", sc.source))?;
    }
    Ok(m)
}

/// A one-line progress bar on stderr, only when stderr is a terminal.
struct Progress {
    on: bool,
    label: String,
}

impl Progress {
    fn tick(&self, frac: f64) {
        if !self.on {
            return;
        }
        let width = 40;
        let done = ((frac * width as f64) as usize).min(width);
        eprint!("\r{} [{}{}] {:3.0}%", self.label, "#".repeat(done), " ".repeat(width - done), frac * 100.0);
        if frac >= 1.0 {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    }
}

fn run(scenario: Option<PathBuf>, seed: Option<u64>, procs: Vec<String>, quiet: bool) -> Result<(), String> {
    let sc = load(scenario)?;
    for p in &procs {
        let name = p.trim_start_matches("/proc/");
        if !oxmm::proc::FILES.contains(&name) {
            return Err(format!("--proc: no file `{p}` (known: {})", oxmm::proc::FILES.join(", ")));
        }
    }
    let seed = seed.unwrap_or(sc.seed);
    let t0 = Instant::now();
    let mut m = boot(&sc, seed)?;
    let mut stats = Vec::new();
    for (i, w) in sc.workloads.iter().enumerate() {
        let bar = Progress { on: !quiet && std::io::stderr().is_terminal(), label: format!("workload {i}") };
        stats.push((w.describe(), w.run(&mut m, |f| bar.tick(f))));
    }
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
        for (d, st) in &stats {
            let peak = if st.peak_live_bytes >= 1 << 20 {
                format!("{} MiB", st.peak_live_bytes >> 20)
            } else {
                format!("{} KiB", st.peak_live_bytes >> 10)
            };
            s += &format!(
                "  workload   {d}\n             {} allocations, {} failed, {} frees, peak {peak} live\n",
                st.allocs, st.failures, st.frees
            );
        }
        s += &format!("  time       {:.3} ms simulated, {:.3} s host\n", m.now_ns() as f64 / 1e6, host.as_secs_f64());
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
