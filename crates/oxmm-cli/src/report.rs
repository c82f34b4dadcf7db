//! `oxmm run --report DIR`: a directory that tells what a run did.
//!
//! | file | what |
//! |---|---|
//! | `proc-start/`, `proc-end/` | every file of `oxmm::proc::FILES` (`/` in a name becomes `_`) right after boot and the sysctl writes, and at the end |
//! | `timeseries.csv` | meminfo fields, vmstat counters and per-zone free pages on the virtual clock (see `oxmm_sim::sampler`) |
//! | `<chart>.svg`, `<chart>.png` | the charts of [`charts`] |
//! | `scenario.toml` | the scenario's text |
//! | `index.html` | all of it on one page |
//!
//! Everything in the directory follows from the scenario and the seed:
//! no host time, host path or date is written, maps are walked in order
//! and numbers have fixed formats, so the same seed gives the same bytes.

use std::path::{Path, PathBuf};

use oxmm_sim::processes::{ProcState, ProcessRun};
use oxmm_sim::sampler::{Sampler, TimeSeries};
use oxmm_sim::workload::{size_text, WorkloadStats};
use oxmm_sim::Machine;

use crate::html;
use crate::plot::{self, Chart, Series};

/// The time series file's name.
pub const CSV: &str = "timeseries.csv";

/// One workload as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadRun {
    /// Its one-line description.
    pub describe: String,
    /// What it did.
    pub stats: WorkloadStats,
    /// Virtual time it started, ns.
    pub start_ns: u64,
    /// Virtual time it ended, ns.
    pub end_ns: u64,
}

/// What the report says about the run besides the samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunInfo {
    /// The scenario's name: its file name, or `<default scenario>`.
    pub scenario: String,
    /// The scenario's text.
    pub scenario_text: String,
    /// The seed used.
    pub seed: u64,
    /// One line about the machine.
    pub machine: String,
    /// The workloads, in order.
    pub workloads: Vec<WorkloadRun>,
    /// The processes, in file order.
    pub processes: Vec<ProcessRun>,
}

/// Virtual nanoseconds as milliseconds without trailing zeros (`0.5 ms`).
pub fn ms(ns: u64) -> String {
    let s = oxmm_sim::sampler::format_ms(ns);
    format!("{} ms", s.trim_end_matches('0').trim_end_matches('.'))
}

/// What a process did, in words: when it ran, how it ended, its faults,
/// peak RSS and workload counters.
pub fn process_facts(p: &ProcessRun) -> String {
    let when = match (&p.state, p.start_ns, p.end_ns) {
        (ProcState::Waiting, _, _) => "never started (due after the duration)".to_string(),
        (ProcState::Failed(e), Some(t), _) => format!("failed to start at {}: {e}", ms(t)),
        (state, Some(a), Some(b)) => {
            let how = if *state == ProcState::Killed { "killed at the end of the duration" } else { "exited" };
            format!("{} to {}, {how}", ms(a), ms(b))
        }
        (_, Some(a), None) => format!("{} on, running", ms(a)),
        _ => "not run".to_string(),
    };
    let st = &p.stats;
    let mut s = format!(
        "{when}; {} minor and {} major faults; peak RSS {}; {} operations done, {} failed",
        p.minor_faults,
        p.major_faults,
        size_text(p.peak_rss_bytes),
        st.allocs,
        st.failures
    );
    if st.bytes_read + st.bytes_written > 0 {
        s += &format!(
            "; {} read ({} mismatching reads), {} written",
            size_text(st.bytes_read),
            st.mismatches,
            size_text(st.bytes_written)
        );
    }
    if let Some(e) = &st.last_error {
        s += &format!("; last error {e}");
    }
    s
}

/// The lines `oxmm run` prints for a process.
pub fn process_summary(p: &ProcessRun) -> String {
    let pid = p.pid.map_or("no pid".to_string(), |pid| format!("pid {pid}"));
    format!("  process    {} ({pid}, cpu {}): {}\n             {}\n", p.name, p.cpu, p.describe, process_facts(p))
}

/// A `/proc` snapshot: (file name as in `oxmm::proc::FILES`, text).
pub type Snapshot = Vec<(String, String)>;

/// A report being taken: the directory, the first snapshot and the sampler.
pub struct Report {
    dir: PathBuf,
    sampler: Sampler,
    start: Snapshot,
}

/// The file name a /proc file gets in a snapshot directory.
pub fn snapshot_name(file: &str) -> String {
    file.replace('/', "_")
}

/// Renders every file of `oxmm::proc::FILES`.
fn snapshot(m: &Machine) -> Snapshot {
    oxmm::proc::FILES
        .iter()
        .filter_map(|f| oxmm::proc::render(&m.kernel, f).map(|text| ((*f).to_string(), text)))
        .collect()
}

/// Creates a directory and its parents; the error names it.
fn mkdir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("--report: cannot create directory {}: {e}", p.display()))
}

/// Writes a file; the error names it.
fn write(p: &Path, data: &str) -> Result<(), String> {
    std::fs::write(p, data).map_err(|e| format!("--report: cannot write {}: {e}", p.display()))
}

/// Writes a snapshot into `dir/sub`.
fn write_snapshot(dir: &Path, sub: &str, snap: &Snapshot) -> Result<(), String> {
    let d = dir.join(sub);
    mkdir(&d)?;
    for (name, text) in snap {
        write(&d.join(snapshot_name(name)), text)?;
    }
    Ok(())
}

impl Report {
    /// Creates `dir`, writes the start snapshot of `m` and takes the first
    /// sample; then [`Report::poll`] samples every `interval_ns` of virtual
    /// time. Fails before the run if the directory cannot be written.
    /// `processes` names the scenario's processes, one RSS column each.
    pub fn start(dir: &Path, m: &Machine, interval_ns: u64, processes: &[String]) -> Result<Report, String> {
        mkdir(dir)?;
        let start = snapshot(m);
        write_snapshot(dir, "proc-start", &start)?;
        Ok(Report { dir: dir.to_path_buf(), sampler: Sampler::with_processes(m, interval_ns, processes), start })
    }

    /// Samples `m` if a sample is due, reading each process's RSS from
    /// its task; returns when the next sample is due.
    pub fn poll_processes(&mut self, m: &Machine, runs: &[ProcessRun]) -> u64 {
        self.sampler.set_pids(runs.iter().map(|r| if r.state == ProcState::Running { r.pid } else { None }));
        self.sampler.poll(m);
        self.sampler.next_due_ns()
    }

    /// Samples `m` if a sample is due; call it between operations.
    pub fn poll(&mut self, m: &Machine) {
        self.sampler.poll(m);
    }

    /// Samples `m` now (at the end of a workload).
    pub fn sample(&mut self, m: &Machine) {
        self.sampler.sample(m);
    }

    /// Takes the last sample and the end snapshot, and writes the CSV, the
    /// charts, the scenario and `index.html`. Returns the index's path.
    pub fn finish(mut self, m: &Machine, info: &RunInfo) -> Result<PathBuf, String> {
        self.sampler.sample(m);
        let interval_ns = self.sampler.interval_ns();
        let series = self.sampler.finish();
        let end = snapshot(m);
        let dir = &self.dir;
        write_snapshot(dir, "proc-end", &end)?;
        write(&dir.join(CSV), &series.to_csv())?;
        write(&dir.join("scenario.toml"), &info.scenario_text)?;
        let charts = charts(&series);
        for c in &charts {
            plot::render(dir, c).map_err(|e| format!("--report: {e}"))?;
        }
        let page = html::index(&html::Page {
            info,
            series: &series,
            interval_ns,
            charts: &charts,
            start: &self.start,
            end: &end,
            now_ns: m.now_ns(),
        });
        let index = dir.join("index.html");
        write(&index, &page)?;
        Ok(index)
    }
}

/// A memory unit for a chart, from the largest value in kB.
fn mem_unit(max_kb: u64) -> (&'static str, f64) {
    if max_kb >= 10 << 20 {
        ("GiB", (1u64 << 20) as f64)
    } else if max_kb >= 10 << 10 {
        ("MiB", 1024.0)
    } else {
        ("KiB", 1.0)
    }
}

/// Named columns of the series that exist and are not all zero.
fn nonzero<'a>(ts: &TimeSeries, names: impl IntoIterator<Item = (&'a str, String)>) -> Vec<(String, Vec<u64>)> {
    names
        .into_iter()
        .filter_map(|(col, label)| ts.column(col).map(|i| (label, ts.values(i))))
        .filter(|(_, v)| v.iter().any(|&x| x != 0))
        .collect()
}

/// A chart of memory sizes given in kB, scaled to one unit.
fn mem_chart(ts: &TimeSeries, stem: &str, title: &str, stacked: bool, cols: Vec<(String, Vec<u64>)>) -> Option<Chart> {
    if cols.is_empty() || ts.rows.is_empty() {
        return None;
    }
    let max = if stacked {
        (0..ts.rows.len()).map(|i| cols.iter().map(|(_, v)| v[i]).sum::<u64>()).max().unwrap_or(0)
    } else {
        cols.iter().flat_map(|(_, v)| v.iter().copied()).max().unwrap_or(0)
    };
    let (unit, div) = mem_unit(max);
    Some(Chart {
        stem: stem.to_string(),
        title: title.to_string(),
        y_label: unit.to_string(),
        x: ts.times_ms(),
        series: cols
            .into_iter()
            .map(|(name, v)| Series { name, values: v.iter().map(|&x| x as f64 / div).collect() })
            .collect(),
        stacked,
        y_cap: None,
    })
}

/// A chart of the per-virtual-millisecond rate of counters.
fn rate_chart(ts: &TimeSeries, stem: &str, title: &str, cols: Vec<(String, Vec<u64>)>) -> Option<Chart> {
    if cols.is_empty() || ts.rows.len() < 2 {
        return None;
    }
    let t: Vec<u64> = ts.rows.iter().map(|r| r.t_ns).collect();
    let rate = |v: &[u64]| -> Vec<f64> {
        (1..t.len())
            .map(|i| {
                let dt_ms = t[i].saturating_sub(t[i - 1]).max(1) as f64 / 1e6;
                v[i].saturating_sub(v[i - 1]) as f64 / dt_ms
            })
            .collect()
    };
    let series: Vec<Series> = cols.into_iter().map(|(name, v)| Series { name, values: rate(&v) }).collect();
    let (y_cap, title) = match spike_cap(&series) {
        Some((cap, peak)) => (Some(cap), format!("{title}; clipped at {cap:.0}, peak {peak:.0}")),
        None => (None, title.to_string()),
    };
    Some(Chart {
        stem: stem.to_string(),
        title,
        y_label: "per virtual ms".to_string(),
        x: ts.times_ms()[1..].to_vec(),
        series,
        stacked: false,
        y_cap,
    })
}

/// A y cap for a line chart whose few largest values (bursts, such as a
/// workload freeing its whole live set at one instant) dwarf the rest: 1.5
/// times the 99th percentile when the peak is over 3 times that. Returns
/// (cap, peak).
fn spike_cap(series: &[Series]) -> Option<(f64, f64)> {
    let mut all: Vec<f64> = series.iter().flat_map(|s| s.values.iter().copied()).filter(|v| v.is_finite()).collect();
    if all.len() < 20 {
        return None;
    }
    all.sort_by(f64::total_cmp);
    let peak = all[all.len() - 1];
    let p99 = all[(all.len() - 1) * 99 / 100];
    (p99 > 0.0 && peak > 3.0 * p99).then_some((1.5 * p99, peak))
}

/// Meminfo columns by field name, labelled with the field name.
fn mi(fields: &[&'static str]) -> Vec<(String, String)> {
    fields.iter().map(|f| (format!("{f}_kB"), (*f).to_string())).collect()
}

/// Vmstat columns whose names start with one of `prefixes`, in column order.
fn vm(ts: &TimeSeries, prefixes: &[&str]) -> Vec<(String, String)> {
    ts.columns
        .iter()
        .filter(|c| matches!(c.source, oxmm_sim::sampler::Source::Vmstat(_)))
        .filter(|c| prefixes.iter().any(|p| c.name.starts_with(p)))
        .map(|c| (c.name.clone(), c.name.clone()))
        .collect()
}

/// Borrows owned (column, label) pairs for [`nonzero`].
fn pairs(v: &[(String, String)]) -> impl Iterator<Item = (&str, String)> {
    v.iter().map(|(c, l)| (c.as_str(), l.clone()))
}

/// The meminfo fields that make up used memory in the stacked chart, bottom
/// first. `KernelStack` is left out: Linux takes kernel stacks from vmalloc,
/// so they are in `VmallocUsed` already.
const USED_KINDS: &[&str] = &[
    "AnonPages",
    "Cached",
    "SReclaimable",
    "SUnreclaim",
    "PageTables",
    "SecPageTables",
    "VmallocUsed",
    "Percpu",
    "Hugetlb",
];

/// The charts a series supports; a chart whose series would all be zero
/// (or absent) is left out.
pub fn charts(ts: &TimeSeries) -> Vec<Chart> {
    let mut out = Vec::new();
    // Used memory by kind, the rest of MemTotal - MemFree on top.
    let mut used = nonzero(ts, pairs(&mi(USED_KINDS)));
    if let (Some(total), Some(free)) = (ts.column("MemTotal_kB"), ts.column("MemFree_kB")) {
        let (total, free) = (ts.values(total), ts.values(free));
        let other: Vec<u64> = (0..ts.rows.len())
            .map(|i| {
                let known: u64 = used.iter().map(|(_, v)| v[i]).sum();
                total[i].saturating_sub(free[i]).saturating_sub(known)
            })
            .collect();
        if other.iter().any(|&x| x != 0) {
            used.push(("other (alloc_pages callers, pcp lists)".to_string(), other));
        }
    }
    out.extend(mem_chart(ts, "memory", "Memory in use by kind (MemTotal - MemFree, stacked)", true, used));
    let free = nonzero(ts, pairs(&mi(&["MemFree", "MemAvailable"])));
    out.extend(mem_chart(ts, "free", "Free and available memory (meminfo)", false, free));
    let kernel = nonzero(
        ts,
        pairs(&mi(&["Slab", "SReclaimable", "SUnreclaim", "KernelStack", "PageTables", "VmallocUsed", "Percpu"])),
    );
    out.extend(mem_chart(ts, "kernel", "Kernel memory (meminfo)", false, kernel));
    let zones: Vec<(String, Vec<u64>)> = ts
        .columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match &c.source {
            // Pages to kB, so the memory units apply.
            oxmm_sim::sampler::Source::ZoneFree { node, zone } => Some((
                format!("Node {node}, zone {zone}"),
                ts.values(i).iter().map(|p| p.saturating_mul(oxmm::types::PAGE_SIZE >> 10)).collect(),
            )),
            _ => None,
        })
        .collect();
    out.extend(mem_chart(ts, "zone_free", "Free memory per zone (zoneinfo: pages free)", false, zones));
    let alloc = nonzero(ts, pairs(&vm(ts, &["pgalloc_", "pgfree"])));
    out.extend(rate_chart(ts, "alloc_rates", "Page allocation and free rates (vmstat, pages)", alloc));
    let numa = nonzero(ts, pairs(&vm(ts, &["numa_"])));
    out.extend(rate_chart(ts, "numa_rates", "NUMA allocation events (vmstat)", numa));
    let events =
        nonzero(ts, pairs(&vm(ts, &["pgfault", "pgmajfault", "allocstall_", "pgscan_", "pgsteal_", "compact_"])));
    out.extend(rate_chart(ts, "event_rates", "Faults, reclaim and compaction (vmstat)", events));
    out.extend(rss_chart(ts));
    out
}

/// One line per process (even one whose RSS stays 0), over the stretch
/// where any process has memory: from the sample before the first nonzero
/// value to the one after the last.
fn rss_chart(ts: &TimeSeries) -> Option<Chart> {
    let cols: Vec<(String, Vec<u64>)> = ts
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.source, oxmm_sim::sampler::Source::ProcessRss(_)))
        .map(|(i, c)| (c.name.trim_start_matches("rss_").trim_end_matches("_kB").to_string(), ts.values(i)))
        .collect();
    let n = ts.rows.len();
    if cols.is_empty() || n == 0 {
        return None;
    }
    let any = |i: usize| cols.iter().any(|(_, v)| v[i] != 0);
    let (first, last) = match ((0..n).find(|&i| any(i)), (0..n).rev().find(|&i| any(i))) {
        (Some(a), Some(b)) => (a.saturating_sub(1), (b + 1).min(n - 1)),
        _ => (0, n - 1),
    };
    let span = TimeSeries { columns: Vec::new(), rows: ts.rows[first..=last].to_vec() };
    let cols = cols.into_iter().map(|(name, v)| (name, v[first..=last].to_vec())).collect();
    mem_chart(&span, "rss", "Resident set size per process (VmRSS of /proc/PID/status)", false, cols)
}
