//! `oxmm run --report DIR` end to end: the directory's contents, and that
//! a seed reproduces it byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh directory below the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("oxmm-report-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn oxmm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oxmm")).args(args).output().expect("run oxmm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file below `dir`, by path relative to it, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn report(seed: &str, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let (ok, out, err) = oxmm(&["run", "--quiet", "--seed", seed, "--report", dir.to_str().unwrap()]);
    assert!(ok, "oxmm run --report failed: {err}");
    assert!(out.is_empty(), "--quiet with no --proc prints nothing: {out}");
    files(dir)
}

#[test]
fn same_seed_gives_identical_reports_with_csv_plots_and_index() {
    let (a, b) = (TempDir::new("a"), TempDir::new("b"));
    let fa = report("7", &a.0);
    let fb = report("7", &b.0);
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>(), "same file names");
    for (name, bytes) in &fa {
        assert!(fb[name] == *bytes, "{name} differs between two runs with seed 7");
    }

    // The time series: a header, then at least 10 rows with increasing time.
    let csv = String::from_utf8(fa["timeseries.csv"].clone()).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[0], "time_ms");
    for col in ["MemFree_kB", "Slab_kB", "pgalloc_normal", "pgfree", "node0_DMA32_nr_free_pages"] {
        assert!(header.contains(&col), "column {col} in {header:?}");
    }
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.len() >= 10, "{} rows", rows.len());
    let times: Vec<f64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "time increases");
    assert!(rows.iter().all(|r| r.len() == header.len()), "every row has every column");

    // Plots, and a page that shows them.
    let svgs: Vec<&String> = fa.keys().filter(|n| n.ends_with(".svg")).collect();
    let pngs: Vec<&String> = fa.keys().filter(|n| n.ends_with(".png")).collect();
    assert!(svgs.len() >= 3 && pngs.len() >= 3, "svg {svgs:?}, png {pngs:?}");
    for p in &pngs {
        assert!(fa[*p].starts_with(b"\x89PNG\r\n\x1a\n"), "{p} is a PNG");
    }
    let index = String::from_utf8(fa["index.html"].clone()).unwrap();
    for f in svgs.iter().chain(&pngs) {
        assert!(index.contains(&format!("\"{f}\"")), "index.html references {f}");
    }
    assert!(index.contains("\"timeseries.csv\""), "index.html links the CSV");
    assert!(index.contains("seed 7"));
    assert!(index.contains("[[workload]]"), "index.html shows the scenario");
    assert!(index.contains("MemTotal:"), "index.html shows the end /proc files");

    // The default scenario's processes: one RSS column each, nonzero while
    // they run (the hog's at least); a chart of them; a table on the page.
    for name in ["db", "writer", "reader", "cache", "heap", "hog"] {
        let col = format!("rss_{name}_kB");
        assert!(header.contains(&col.as_str()), "column {col} in {header:?}");
        assert!(index.contains(&format!("<td>{name}</td>")), "index.html lists process {name}");
    }
    let hog = header.iter().position(|c| *c == "rss_hog_kB").unwrap();
    let hog_rss: Vec<u64> = rows.iter().map(|r| r[hog].parse().unwrap()).collect();
    assert!(hog_rss.iter().any(|&v| v > 100 << 10), "the hog grows past 100 MiB");
    assert_eq!(hog_rss.first(), Some(&0));
    assert_eq!(hog_rss.last(), Some(&0), "it exited");
    assert!(fa.contains_key("rss.svg") && fa.contains_key("rss.png"));
    assert!(index.contains("<h3>Processes</h3>"));

    // /proc snapshots at both ends, every file.
    for f in ["meminfo", "vmstat", "zoneinfo", "buddyinfo", "slabinfo", "memblock_memory"] {
        assert!(fa.contains_key(&format!("proc-start/{f}")), "proc-start/{f}");
        assert!(fa.contains_key(&format!("proc-end/{f}")), "proc-end/{f}");
    }
    // Nothing of the host: not the directory the report went to.
    let host = a.0.to_string_lossy().into_owned();
    for (name, bytes) in &fa {
        assert!(!String::from_utf8_lossy(bytes).contains(&host), "{name} names the host directory");
    }
}

#[test]
fn the_run_summary_lists_each_process() {
    let (ok, out, err) = oxmm(&["run"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    for name in ["db", "writer", "reader", "cache", "heap", "hog"] {
        let i = lines
            .iter()
            .position(|l| l.starts_with(&format!("  process    {name} (pid ")))
            .unwrap_or_else(|| panic!("no line for {name}: {out}"));
        let facts = lines[i + 1];
        assert!(facts.contains(" ms to ") && facts.contains("exited"), "{facts}");
        assert!(facts.contains("minor and 0 major faults; peak RSS "), "{facts}");
    }
    assert!(out.contains("last error mmap: ENOMEM"), "the hog's limit bites");
    assert!(out.contains("(0 mismatching reads)"));
    assert!(out.contains("  tmpfs      /dev/shm/data: 33554432 bytes, 32 MiB in memory (Shmem)"), "{out}");
    assert!(out.contains("ms simulated,") && out.contains(" s host"));
}

#[test]
fn another_seed_gives_another_time_series() {
    let (a, c) = (TempDir::new("s7"), TempDir::new("s8"));
    let fa = report("7", &a.0);
    let fc = report("8", &c.0);
    assert_ne!(fa["timeseries.csv"], fc["timeseries.csv"]);
}

#[test]
fn report_interval_key_sets_the_sampling_period() {
    let d = TempDir::new("interval");
    let sc = d.0.join("short.toml");
    std::fs::write(
        &sc,
        "report_interval = \"100us\"\n[machine]\nmem = \"512M\"\ncpus = 1\n\
         [[workload]]\nkind = \"page_churn\"\nops = 4000\nmax_live = \"4M\"\n",
    )
    .unwrap();
    let out = d.0.join("out");
    let (ok, stdout, err) = oxmm(&["run", sc.to_str().unwrap(), "--report", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(stdout.contains("==> /proc/meminfo <==\nMemTotal:"), "the summary and meminfo still print");
    let csv = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    // 4000 ops of 250 ns: 1 ms, so 0.0 to 1.0 ms every 0.1 ms.
    let times: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(times.first(), Some(&"0.000000"));
    assert_eq!(times.get(1), Some(&"0.100000"));
    assert_eq!(times.last(), Some(&"1.000000"));
    assert_eq!(times.len(), 11);
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(index.contains("short.toml") && !index.contains(&d.0.to_string_lossy().into_owned()));
}

#[test]
fn unwritable_report_dir_is_a_clear_error() {
    let d = TempDir::new("unwritable");
    let file = d.0.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let target = file.join("report");
    let (ok, _, err) = oxmm(&["run", "--quiet", "--report", target.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("--report") && err.contains(target.to_str().unwrap()), "{err}");

    let bad = d.0.join("bad.toml");
    std::fs::write(&bad, "report_interval = \"soon\"\n").unwrap();
    let (ok, _, err) = oxmm(&["run", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("key `report_interval`") && err.contains("not a duration"), "{err}");
}
