//! Time series of the machine's memory counters on the virtual clock, for
//! `oxmm run --report`.
//!
//! A [`Sampler`] reads the machine the way a monitoring script reads a
//! Linux host: it renders `/proc/meminfo`, `/proc/vmstat` and
//! `/proc/zoneinfo` and parses their text, so every column keeps the name
//! Linux gives it. Which columns exist is decided once, from the first
//! sample: the fields of [`MEMINFO_FIELDS`] and [`VMSTAT_FIELDS`] that the
//! files print, then the free pages of every zone with present pages.
//!
//! Sampling is driven by the workloads' progress callback: [`Sampler::poll`]
//! takes a sample when the virtual clock has reached the next multiple of
//! the interval, so the rows fall on the virtual clock whatever the host's
//! speed, and a seed reproduces the series exactly. Reading `/proc` does
//! not change the machine.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::machine::Machine;
use crate::workload::Workload;

/// `/proc/meminfo` fields sampled (in kB), when the file has them.
pub const MEMINFO_FIELDS: &[&str] = &[
    "MemTotal",
    "MemFree",
    "MemAvailable",
    "Cached",
    "AnonPages",
    "Shmem",
    "Slab",
    "SReclaimable",
    "SUnreclaim",
    "KernelStack",
    "PageTables",
    "SecPageTables",
    "VmallocUsed",
    "Percpu",
    "Hugetlb",
];

/// `/proc/vmstat` counters sampled, when the file has them.
pub const VMSTAT_FIELDS: &[&str] = &[
    "pgalloc_dma",
    "pgalloc_dma32",
    "pgalloc_normal",
    "pgalloc_movable",
    "pgfree",
    "pgfault",
    "pgmajfault",
    "numa_hit",
    "numa_miss",
    "numa_foreign",
    "numa_interleave",
    "numa_local",
    "numa_other",
    "allocstall_normal",
    "allocstall_movable",
    "pgscan_kswapd",
    "pgscan_direct",
    "pgsteal_kswapd",
    "pgsteal_direct",
    "compact_stall",
    "compact_success",
    "compact_fail",
];

/// Rows a run gets when the sampling period is chosen automatically
/// (at least this many divided by 2.5, by the 1-2-5 rounding).
pub const TARGET_ROWS: u64 = 400;

/// Where a column's values come from, and so their unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A `/proc/meminfo` field by name, in kB.
    Meminfo(&'static str),
    /// A `/proc/vmstat` counter by name, in its own unit (events or pages).
    Vmstat(&'static str),
    /// The free pages of one zone (zoneinfo's `pages free`), in pages.
    ZoneFree {
        /// The node.
        node: u32,
        /// The zone's name as zoneinfo prints it (`DMA32`).
        zone: String,
    },
    /// `VmRSS` of `/proc/PID/status` of the scenario's process with this
    /// index, in kB (0 while it does not run).
    ProcessRss(usize),
}

/// One column of a [`TimeSeries`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The CSV header: the Linux name, with `_kB` for meminfo fields and
    /// `node<N>_<zone>_nr_free_pages` for zones.
    pub name: String,
    /// Where the values come from.
    pub source: Source,
}

/// One sample: the virtual time and a value per column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Virtual nanoseconds since boot.
    pub t_ns: u64,
    /// One value per column, in column order.
    pub values: Vec<u64>,
}

/// Samples of the same columns, in increasing virtual time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeSeries {
    /// The columns, after the time.
    pub columns: Vec<Column>,
    /// The rows, strictly increasing in time.
    pub rows: Vec<Row>,
}

impl TimeSeries {
    /// The index of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The values of column `idx`, one per row.
    pub fn values(&self, idx: usize) -> Vec<u64> {
        self.rows.iter().map(|r| r.values.get(idx).copied().unwrap_or(0)).collect()
    }

    /// The sample times in virtual milliseconds.
    pub fn times_ms(&self) -> Vec<f64> {
        self.rows.iter().map(|r| r.t_ns as f64 / 1e6).collect()
    }

    /// The series as CSV: a header (`time_ms` then the column names) and
    /// one line per row; times are printed exactly, with six decimals.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("time_ms");
        for c in &self.columns {
            s.push(',');
            s.push_str(&c.name);
        }
        s.push('\n');
        for r in &self.rows {
            s.push_str(&format_ms(r.t_ns));
            for v in &r.values {
                let _ = write!(s, ",{v}");
            }
            s.push('\n');
        }
        s
    }
}

/// Virtual nanoseconds as milliseconds with six decimals, exactly
/// (`1500` gives `0.001500`).
pub fn format_ms(ns: u64) -> String {
    format!("{}.{:06}", ns / 1_000_000, ns % 1_000_000)
}

/// A sampling period that gives about [`TARGET_ROWS`] rows for these
/// workloads: their expected virtual length divided by the target,
/// rounded up to 1, 2 or 5 times a power of ten nanoseconds, at least 1 µs.
pub fn auto_interval_ns(workloads: &[Workload]) -> u64 {
    auto_interval_for_ns(workloads.iter().map(Workload::expected_virtual_ns).fold(0, u64::saturating_add))
}

/// A sampling period that gives about [`TARGET_ROWS`] rows over `total`
/// virtual nanoseconds, rounded as [`auto_interval_ns`] rounds.
pub fn auto_interval_for_ns(total: u64) -> u64 {
    let want = (total / TARGET_ROWS).max(1_000);
    let mut decade = 1u64;
    loop {
        for step in [1, 2, 5] {
            let v = decade.saturating_mul(step);
            if v >= want || v == u64::MAX {
                return v;
            }
        }
        decade = decade.saturating_mul(10);
    }
}

/// Parses the `name: value [kB]` lines of `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> BTreeMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let v = rest.split_whitespace().next()?.parse().ok()?;
            Some((name.trim(), v))
        })
        .collect()
}

/// Parses the `name value` lines of `/proc/vmstat`.
pub fn parse_vmstat(text: &str) -> BTreeMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?;
            let v = it.next()?.parse().ok()?;
            Some((name, v))
        })
        .collect()
}

/// One zone of `/proc/zoneinfo`: node, zone name, free and present pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneFree {
    /// The node.
    pub node: u32,
    /// The zone name (`Normal`).
    pub zone: String,
    /// `pages free`.
    pub free: u64,
    /// `present`.
    pub present: u64,
}

/// Parses the zone headers (`Node 0, zone   Normal`) and their `pages
/// free` and `present` lines out of `/proc/zoneinfo`, in file order.
pub fn parse_zoneinfo(text: &str) -> Vec<ZoneFree> {
    let mut out: Vec<ZoneFree> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Node ") {
            let Some((node, zone)) = rest.split_once(", zone") else { continue };
            let Ok(node) = node.trim().parse() else { continue };
            out.push(ZoneFree { node, zone: zone.trim().to_string(), free: 0, present: 0 });
            continue;
        }
        let Some(z) = out.last_mut() else { continue };
        let t = line.trim();
        if let Some(v) = t.strip_prefix("pages free") {
            z.free = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("present") {
            z.present = v.trim().parse().unwrap_or(0);
        }
    }
    out
}

/// The CSV column of each process's RSS: `rss_<name>_kB`, and for a name
/// that several processes share `rss_<name>_<n>_kB`, `n` counting from 1
/// in file order.
pub fn process_columns(names: &[String]) -> Vec<String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    names
        .iter()
        .map(|n| {
            let shared = names.iter().filter(|x| *x == n).count() > 1;
            let k = seen.entry(n.as_str()).or_insert(0);
            *k += 1;
            if shared {
                format!("rss_{n}_{k}_kB")
            } else {
                format!("rss_{n}_kB")
            }
        })
        .collect()
}

/// `VmRSS` of a running task in kB, read from its `/proc/PID/status`.
fn vm_rss_kb(m: &Machine, pid: u64) -> u64 {
    let task = m.kernel.vm.tasks.lock().get(&pid).cloned();
    task.map_or(0, |t| {
        let text = oxmm::proc::pid::status(&m.kernel, &t);
        parse_meminfo(&text).get("VmRSS").copied().unwrap_or(0)
    })
}

/// Takes samples of a machine on the virtual clock.
#[derive(Clone, Debug)]
pub struct Sampler {
    interval_ns: u64,
    next_due_ns: u64,
    series: TimeSeries,
    /// The pid of each process column's process, while it runs.
    pids: Vec<Option<u64>>,
}

impl Sampler {
    /// Starts sampling `m` every `interval_ns` virtual nanoseconds (at
    /// least 1) and takes the first sample now, which fixes the columns.
    pub fn new(m: &Machine, interval_ns: u64) -> Sampler {
        Sampler::with_processes(m, interval_ns, &[])
    }

    /// As [`Sampler::new`], with one RSS column per process of the
    /// scenario (named by [`process_columns`]); [`Sampler::set_pids`] says
    /// which task each one is.
    pub fn with_processes(m: &Machine, interval_ns: u64, names: &[String]) -> Sampler {
        let interval_ns = interval_ns.max(1);
        let k = &m.kernel;
        let meminfo = oxmm::proc::meminfo(k);
        let vmstat = oxmm::proc::vmstat(k);
        let zones = oxmm::proc::zoneinfo(k);
        let mi = parse_meminfo(&meminfo);
        let vs = parse_vmstat(&vmstat);
        let mut columns: Vec<Column> = Vec::new();
        for f in MEMINFO_FIELDS.iter().filter(|f| mi.contains_key(*f)) {
            columns.push(Column { name: format!("{f}_kB"), source: Source::Meminfo(f) });
        }
        for f in VMSTAT_FIELDS.iter().filter(|f| vs.contains_key(*f)) {
            columns.push(Column { name: (*f).to_string(), source: Source::Vmstat(f) });
        }
        for z in parse_zoneinfo(&zones).into_iter().filter(|z| z.present > 0) {
            columns.push(Column {
                name: format!("node{}_{}_nr_free_pages", z.node, z.zone),
                source: Source::ZoneFree { node: z.node, zone: z.zone },
            });
        }
        for (i, name) in process_columns(names).into_iter().enumerate() {
            columns.push(Column { name, source: Source::ProcessRss(i) });
        }
        let mut s = Sampler {
            interval_ns,
            next_due_ns: 0,
            series: TimeSeries { columns, rows: Vec::new() },
            pids: vec![None; names.len()],
        };
        s.sample(m);
        s
    }

    /// Which task each process column reads now (`None`: not running).
    pub fn set_pids(&mut self, pids: impl IntoIterator<Item = Option<u64>>) {
        for (slot, pid) in self.pids.iter_mut().zip(pids) {
            *slot = pid;
        }
    }

    /// Virtual time of the next sample [`Sampler::poll`] would take.
    pub fn next_due_ns(&self) -> u64 {
        self.next_due_ns
    }

    /// The sampling period in virtual nanoseconds.
    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// Takes a sample if the clock has reached the next one's time.
    /// Cheap when none is due: call it as often as convenient.
    pub fn poll(&mut self, m: &Machine) {
        if m.now_ns() >= self.next_due_ns {
            self.sample(m);
        }
    }

    /// Takes a sample now. A sample at the time of the previous one
    /// replaces it (the clock did not move, the state did), so times stay
    /// strictly increasing.
    pub fn sample(&mut self, m: &Machine) {
        let t_ns = m.now_ns();
        let k = &m.kernel;
        let columns = &self.series.columns;
        let need_vmstat = columns.iter().any(|c| matches!(c.source, Source::Vmstat(_)));
        let need_zones = columns.iter().any(|c| matches!(c.source, Source::ZoneFree { .. }));
        let meminfo = oxmm::proc::meminfo(k);
        let vmstat = if need_vmstat { oxmm::proc::vmstat(k) } else { String::new() };
        let zoneinfo = if need_zones { oxmm::proc::zoneinfo(k) } else { String::new() };
        let mi = parse_meminfo(&meminfo);
        let vs = parse_vmstat(&vmstat);
        let zones = parse_zoneinfo(&zoneinfo);
        let values = columns
            .iter()
            .map(|c| match &c.source {
                Source::Meminfo(f) => mi.get(f).copied().unwrap_or(0),
                Source::Vmstat(f) => vs.get(f).copied().unwrap_or(0),
                Source::ZoneFree { node, zone } => {
                    zones.iter().find(|z| z.node == *node && &z.zone == zone).map_or(0, |z| z.free)
                }
                Source::ProcessRss(i) => self.pids.get(*i).copied().flatten().map_or(0, |pid| vm_rss_kb(m, pid)),
            })
            .collect();
        let row = Row { t_ns, values };
        match self.series.rows.last_mut() {
            Some(last) if last.t_ns >= t_ns => *last = row,
            _ => self.series.rows.push(row),
        }
        self.next_due_ns = (t_ns / self.interval_ns).saturating_add(1).saturating_mul(self.interval_ns);
    }

    /// The samples so far.
    pub fn series(&self) -> &TimeSeries {
        &self.series
    }

    /// Ends sampling and hands over the series.
    pub fn finish(self) -> TimeSeries {
        self.series
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_are_exact() {
        assert_eq!(format_ms(0), "0.000000");
        assert_eq!(format_ms(1_500), "0.001500");
        assert_eq!(format_ms(175_000_000), "175.000000");
    }

    #[test]
    fn parsers_read_linux_layouts() {
        let mi = parse_meminfo("MemTotal:        8231928 kB\nHugePages_Total:       0\n");
        assert_eq!(mi.get("MemTotal"), Some(&8231928));
        assert_eq!(mi.get("HugePages_Total"), Some(&0));
        let vs = parse_vmstat("nr_free_pages 12\npgfree 3\n");
        assert_eq!(vs.get("pgfree"), Some(&3));
        let z = parse_zoneinfo(
            "Node 1, zone   Normal\n  per-node stats\n      nr_inactive_anon 0\n  pages free     970546\n        \
             boost    0\n        present  1048576\nNode 1, zone  Movable\n  pages free     0\n        present  0\n",
        );
        assert_eq!(z.len(), 2);
        assert_eq!(z[0], ZoneFree { node: 1, zone: "Normal".into(), free: 970546, present: 1048576 });
        assert_eq!(z[1].present, 0);
    }

    #[test]
    fn process_columns_are_unique() {
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(process_columns(&n(&["web", "db", "web"])), vec!["rss_web_1_kB", "rss_db_kB", "rss_web_2_kB"]);
    }

    #[test]
    fn auto_interval_rounds_to_1_2_5() {
        use crate::workload::PageChurn;
        let w = |ops| Workload::PageChurn(PageChurn { ops, ..PageChurn::default() });
        assert_eq!(auto_interval_ns(&[]), 1_000);
        // 700k ops of 250 ns: 175 ms, / 400 = 437.5 us -> 500 us.
        assert_eq!(auto_interval_ns(&[w(400_000), w(300_000)]), 500_000);
        assert_eq!(auto_interval_ns(&[w(u64::MAX)]), 50_000_000_000_000_000);
    }
}
