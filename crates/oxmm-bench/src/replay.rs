//! The `replay` bench: how fast oxmm's replay engine
//! ([`oxmm_sim::trace::simulate`]) runs LRU over a page-reference string,
//! against the libCacheSim Python package (`pip install libcachesim`, its
//! C core) simulating LRU over the same string in the same run.
//!
//! Workloads ([`workloads`]), each a few million references generated
//! from a fixed seed:
//!
//! - `replay-zipf`: pages drawn from a zipfian distribution (skew
//!   [`ZIPF_SKEW`]) over 256 Ki pages (1 GiB), the hot ones scattered over
//!   the address range; memory for an eighth of them;
//! - `replay-mixed`: what a program's trace looks like at page
//!   granularity: instruction fetches walking a small code set, stack
//!   accesses, a sequential scan looping over an array larger than memory,
//!   and zipfian heap accesses, interleaved.
//!
//! How each side gets the string and what is timed: the bench writes the
//! page numbers to a file (8 bytes each, little-endian). oxmm reads the
//! file into memory and builds its [`RefString`] (the pages renamed to
//! dense ids, its design: no hashing while simulating); libCacheSim opens
//! the same file with its binary trace reader (`BIN_TRACE`, format `<Q`,
//! object size ignored so each page is one unit of a cache of `frames`
//! units), which maps the file and hands its C simulation loop one request
//! at a time: that is how libCacheSim consumes a trace. Only the
//! simulation is timed on both sides: oxmm's `simulate` call, and
//! libCacheSim's `process_trace` (timed inside the Python process with
//! `time.perf_counter`, the cache built before the clock starts). The
//! loading, remapping and Python start-up are outside the clocks.
//!
//! One untimed warm-up run each, then samples taken alternately (oxmm,
//! libCacheSim, oxmm, ...) so that a slow phase of the host hits both. The
//! ratio is libCacheSim's median time over oxmm's (above 1: oxmm is
//! faster), printed as `ratio replay-<workload> libcachesim-lru <value>`.
//! The LRU miss counts of the two must agree, or the bench fails.
//!
//! libCacheSim is looked for in `$OXMM_PYTHON`, in the bench's own venv
//! ([`venv_dir`]), and in `python3`; when none has it, the bench creates
//! the venv and installs it there with pip.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use oxmm_sim::trace::{simulate, Policy, RefString};

use crate::harness::{ratio_line, Report, Rng, Timing};

/// Seed of every workload.
pub const SEED: u64 = 0x6f78_6d6d_7265_706c;

/// Skew (the exponent `s` of `1 / rank^s`) of the zipfian workloads.
pub const ZIPF_SKEW: f64 = 0.9;

/// Peer name in the ratio lines.
pub const PEER: &str = "libcachesim-lru";

/// oxmm's goal for LRU replay throughput, in accesses per second.
pub const TARGET: f64 = 20e6;

/// Environment variable naming a Python interpreter that has libcachesim.
pub const PYTHON_ENV: &str = "OXMM_PYTHON";

/// First page number of the synthetic address space (a typical x86-64
/// heap address, `0x555550000000`, in pages).
const BASE_PAGE: u64 = 0x5_5555_0000;

/// One page-reference string to replay.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Comparison name, `replay-<workload>`.
    pub name: String,
    /// What it is, for the report.
    pub about: String,
    /// The references, as page numbers.
    pub pages: Vec<u64>,
    /// Page frames of the simulated memory.
    pub frames: usize,
}

/// Draws ranks `0..n` with probability proportional to `1 / (rank + 1)^skew`,
/// by binary search over the cumulative distribution.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// A distribution over `n` ranks (at least one).
    pub fn new(n: usize, skew: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n.max(1));
        let mut sum = 0.0;
        for k in 0..n.max(1) {
            sum += 1.0 / ((k + 1) as f64).powf(skew);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    /// One rank.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1)
    }
}

/// `refs` zipfian references over `n_pages` pages; the page of each rank
/// is a random permutation so hot pages are spread over the range.
pub fn zipf_pages(refs: usize, n_pages: usize, skew: f64, seed: u64) -> Vec<u64> {
    let mut rng = Rng::new(seed);
    let mut place: Vec<u64> = (0..n_pages.max(1) as u64).collect();
    rng.shuffle(&mut place);
    let z = Zipf::new(n_pages, skew);
    (0..refs).map(|_| BASE_PAGE + place[z.sample(&mut rng)]).collect()
}

/// A program-like mix of `refs` references: 45% instruction fetches in a
/// code set of 256 pages (a random walk that mostly stays near its last
/// page), 15% stack accesses over 16 pages, 20% a sequential scan that
/// loops over an array of `scan_pages` pages (each page read 4 times in a
/// row of the scan), 20% zipfian accesses to a heap of `heap_pages` pages.
pub fn mixed_pages(refs: usize, scan_pages: u64, heap_pages: usize, seed: u64) -> Vec<u64> {
    const CODE: u64 = 256;
    const STACK: u64 = 16;
    let code_base = 0x4_0000; // text near 0x40000000
    let stack_base = 0x7_ffff_f000 - STACK;
    let scan_base = BASE_PAGE + (1 << 24);
    let heap_base = BASE_PAGE;
    let mut rng = Rng::new(seed);
    let heap = Zipf::new(heap_pages, ZIPF_SKEW);
    let mut place: Vec<u64> = (0..heap_pages.max(1) as u64).collect();
    rng.shuffle(&mut place);
    let (mut code, mut scan, mut scan_reads) = (0u64, 0u64, 0u32);
    let scan_pages = scan_pages.max(1);
    let mut v = Vec::with_capacity(refs);
    for _ in 0..refs {
        let r = rng.below(100);
        let page = if r < 45 {
            match rng.below(16) {
                0 => code = rng.below(CODE),
                1..=3 => code = (code + 1) % CODE,
                _ => {}
            }
            code_base + code
        } else if r < 60 {
            stack_base + rng.below(4).min(rng.below(STACK))
        } else if r < 80 {
            scan_reads += 1;
            if scan_reads == 4 {
                scan_reads = 0;
                scan = (scan + 1) % scan_pages;
            }
            scan_base + scan
        } else {
            heap_base + place[heap.sample(&mut rng)]
        };
        v.push(page);
    }
    v
}

/// The bench's workloads: a few million references each (a quarter of
/// that with `quick`).
pub fn workloads(quick: bool) -> Vec<Workload> {
    let refs = if quick { 2_000_000 } else { 8_000_000 };
    let zipf_pages_n = 1 << 18;
    vec![
        Workload {
            name: "replay-zipf".into(),
            about: format!("zipfian (skew {ZIPF_SKEW}) over {zipf_pages_n} pages"),
            pages: zipf_pages(refs, zipf_pages_n, ZIPF_SKEW, SEED),
            frames: zipf_pages_n / 8,
        },
        Workload {
            name: "replay-mixed".into(),
            about: "program-like: code walk, stack, a looping scan of 96 Ki pages, zipfian heap of 64 Ki pages".into(),
            pages: mixed_pages(refs, 96 * 1024, 64 * 1024, SEED ^ 1),
            frames: 32 * 1024,
        },
    ]
}

/// Writes page numbers as 8-byte little-endian words.
pub fn write_pages(path: &Path, pages: &[u64]) -> Result<(), String> {
    let mut bytes = Vec::with_capacity(pages.len() * 8);
    for p in pages {
        bytes.extend_from_slice(&p.to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// Reads what [`write_pages`] wrote.
pub fn read_pages(path: &Path) -> Result<Vec<u64>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    if bytes.len() % 8 != 0 {
        return Err(format!("{}: {} bytes is not a whole number of 8-byte pages", path.display(), bytes.len()));
    }
    Ok(bytes.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect())
}

/// The Python side: reads `run` lines on stdin, answers each with
/// `sample <seconds> <misses>` after one LRU simulation of the file.
const PY_SCRIPT: &str = r#"
import sys, time
import libcachesim as lcs
path, frames, hashpower = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
params = lcs.ReaderInitParam(binary_fmt_str="<Q", ignore_obj_size=True)
params.obj_id_field = 1
reader = lcs.TraceReader(path, lcs.TraceType.BIN_TRACE, params)
n = reader.get_num_of_req()
print("ready", n, getattr(lcs, "__version__", "?"), flush=True)
for line in sys.stdin:
    if line.strip() != "run":
        break
    cache = lcs.LRU(frames, hashpower=hashpower)
    start = time.perf_counter()
    miss_ratio, _ = cache.process_trace(reader)
    elapsed = time.perf_counter() - start
    print("sample", repr(elapsed), round(miss_ratio * n), flush=True)
"#;

/// Where the bench keeps its own venv: `$XDG_CACHE_HOME/oxmm/venv`, else
/// `~/.cache/oxmm/venv`, else under the temporary directory.
pub fn venv_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("oxmm").join("venv")
}

fn has_libcachesim(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import libcachesim"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

const HOW: &str = "install it by hand with `pip install libcachesim` and point OXMM_PYTHON at that python, \
     or make `python3 -m venv` work (on Debian: `apt-get install python3-venv`)";

/// A Python interpreter that can import libcachesim, installing it into
/// [`venv_dir`] when none can. Progress goes to `out`.
pub fn find_python(out: &mut dyn Write) -> Result<PathBuf, String> {
    let venv = venv_dir();
    let venv_python = venv.join("bin").join("python");
    let mut candidates: Vec<PathBuf> = std::env::var_os(PYTHON_ENV).map(PathBuf::from).into_iter().collect();
    candidates.push(venv_python.clone());
    candidates.push(PathBuf::from("python3"));
    if let Some(p) = candidates.into_iter().find(|p| has_libcachesim(p)) {
        return Ok(p);
    }
    let say =
        |out: &mut dyn Write, s: String| writeln!(out, "{s}").map_err(|e| format!("cannot write the report: {e}"));
    say(out, format!("libcachesim is not installed: installing it into {} (pip install libcachesim)", venv.display()))?;
    if !venv_python.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run python3 to make a venv for libcachesim: {e}; {HOW}"))?;
        if !made.success() {
            return Err(format!("`python3 -m venv {}` failed ({made}); {HOW}", venv.display()));
        }
    }
    let pip = Command::new(&venv_python)
        .args(["-m", "pip", "install", "-q", "libcachesim"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {}: {e}; {HOW}", venv_python.display()))?;
    if !pip.success() || !has_libcachesim(&venv_python) {
        return Err(format!("`pip install libcachesim` into {} failed ({pip}); {HOW}", venv.display()));
    }
    Ok(venv_python)
}

/// A running libCacheSim process ready to time LRU over one trace file.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    version: String,
}

impl Peer {
    fn start(python: &Path, file: &Path, frames: usize, refs: usize) -> Result<Peer, String> {
        // A hash table of about twice the cache's objects: libCacheSim's
        // default (2^24 buckets) is made for far larger caches and is slower here.
        let hashpower = (usize::BITS - frames.max(1).leading_zeros() + 1).clamp(16, 26);
        let mut child = Command::new(python)
            .arg("-c")
            .arg(PY_SCRIPT)
            .arg(file)
            .arg(frames.to_string())
            .arg(hashpower.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("no pipes to the libcachesim process".into());
        };
        let mut peer = Peer { child, stdin, stdout: BufReader::new(stdout), version: String::new() };
        let ready = peer.line()?;
        let f: Vec<&str> = ready.split_whitespace().collect();
        match f.as_slice() {
            ["ready", n, v] if n.parse() == Ok(refs) => peer.version = v.to_string(),
            _ => return Err(format!("libcachesim read the trace as `{ready}`, expected {refs} requests")),
        }
        Ok(peer)
    }

    fn line(&mut self) -> Result<String, String> {
        let mut s = String::new();
        match self.stdout.read_line(&mut s) {
            Ok(0) => Err("the libcachesim process ended early (its error is above)".into()),
            Ok(_) => Ok(s.trim_end().to_string()),
            Err(e) => Err(format!("cannot read from the libcachesim process: {e}")),
        }
    }

    /// One timed simulation: (time, misses).
    fn sample(&mut self) -> Result<(Duration, u64), String> {
        writeln!(self.stdin, "run")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("cannot talk to the libcachesim process: {e}"))?;
        let l = self.line()?;
        let f: Vec<&str> = l.split_whitespace().collect();
        let parsed = match f.as_slice() {
            ["sample", secs, misses] => secs
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .zip(misses.parse::<u64>().ok())
                .map(|(s, m)| (Duration::from_secs_f64(s), m)),
            _ => None,
        };
        parsed.ok_or_else(|| format!("unexpected answer from the libcachesim process: `{l}`"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        if self.child.wait().is_err() {
            let _ = self.child.kill();
        }
    }
}

fn rate(refs: usize, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        refs as f64 / s
    } else {
        f64::INFINITY
    }
}

fn rate_line(who: &str, bench: &str, refs: usize, t: &Timing, misses: u64) -> String {
    let worst = t.samples.iter().copied().max().unwrap_or(Duration::ZERO);
    let mut s = format!("{who:<12} {bench:<13} lru {:>8.2} M accesses/s", rate(refs, t.median()) / 1e6);
    let _ = write!(
        s,
        "  (median of {}; best {:.2}, worst {:.2})  misses {misses}",
        t.samples.len(),
        rate(refs, t.best()) / 1e6,
        rate(refs, worst) / 1e6
    );
    s
}

/// Runs the bench (see the module doc) and writes the report.
pub fn run(quick: bool, out: &mut dyn Write) -> Result<(), String> {
    let samples = if quick { 5 } else { 7 };
    let python = find_python(out)?;
    let dir = std::env::temp_dir().join(format!("oxmm-bench-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    let result = run_in(quick, samples, &python, &dir, out);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(quick: bool, samples: usize, python: &Path, dir: &Path, out: &mut dyn Write) -> Result<(), String> {
    let mut report = Report::new();
    let mut ratios = Vec::new();
    for w in workloads(quick) {
        let file = dir.join(format!("{}.bin", w.name));
        write_pages(&file, &w.pages)?;
        drop(w.pages);
        // oxmm's side: load and remap, untimed.
        let loaded = Instant::now();
        let refs = RefString::from_pages(read_pages(&file)?)?;
        let load_time = loaded.elapsed();
        let n = refs.len();
        let mut peer = Peer::start(python, &file, w.frames, n)?;
        report.line(
            out,
            &format!(
                "{}: {n} references to {} pages ({}), {} frames; libcachesim {} from {}",
                w.name,
                refs.distinct(),
                w.about,
                w.frames,
                peer.version,
                python.display()
            ),
        )?;
        let mut ours = Timing { name: "oxmm".into(), samples: Vec::new() };
        let mut theirs = Timing { name: PEER.into(), samples: Vec::new() };
        let (mut our_misses, mut their_misses) = (0, 0);
        for i in 0..=samples {
            let start = Instant::now();
            let st = std::hint::black_box(simulate(Policy::Lru, w.frames, std::hint::black_box(&refs)));
            let t = start.elapsed();
            let (pt, pm) = peer.sample()?;
            if i > 0 {
                ours.samples.push(t);
                theirs.samples.push(pt);
            }
            (our_misses, their_misses) = (st.misses, pm);
        }
        drop(peer);
        report.line(out, &rate_line("oxmm", &w.name, n, &ours, our_misses))?;
        report.line(out, &rate_line("libcachesim", &w.name, n, &theirs, their_misses))?;
        if our_misses != their_misses {
            return Err(format!(
                "{}: LRU misses differ: oxmm {our_misses}, libcachesim {their_misses} ({} frames)",
                w.name, w.frames
            ));
        }
        let ours_rate = rate(n, ours.median());
        report.line(
            out,
            &format!(
                "{}: LRU misses agree ({our_misses}); oxmm {} the {:.0} M accesses/s goal; loading and remapping took {:.2} s (untimed)",
                w.name,
                if ours_rate >= TARGET { "meets" } else { "MISSES" },
                TARGET / 1e6,
                load_time.as_secs_f64()
            ),
        )?;
        let base = ours.median().as_secs_f64();
        let value = if base > 0.0 { theirs.median().as_secs_f64() / base } else { f64::INFINITY };
        ratios.push(ratio_line(&w.name, PEER, value)?);
    }
    for r in &ratios {
        report.line(out, r)?;
    }
    report.finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_deterministic_and_shaped() {
        let a = zipf_pages(10_000, 1000, ZIPF_SKEW, 3);
        assert_eq!(a, zipf_pages(10_000, 1000, ZIPF_SKEW, 3));
        assert_ne!(a, zipf_pages(10_000, 1000, ZIPF_SKEW, 4));
        assert!(a.iter().all(|&p| (BASE_PAGE..BASE_PAGE + 1000).contains(&p)));
        // Zipf: the most frequent page is far above the average.
        let mut counts = std::collections::HashMap::new();
        for p in &a {
            *counts.entry(p).or_insert(0u32) += 1;
        }
        assert!(*counts.values().max().unwrap() > 10 * 10);
        let m = mixed_pages(10_000, 500, 300, 5);
        assert_eq!(m, mixed_pages(10_000, 500, 300, 5));
        assert!(RefString::from_pages(m).unwrap().distinct() > 500);
    }

    #[test]
    fn page_files_round_trip() {
        let dir = std::env::temp_dir().join(format!("oxmm-replay-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("p.bin");
        let pages = vec![0, 1, u64::MAX, BASE_PAGE];
        write_pages(&f, &pages).unwrap();
        assert_eq!(read_pages(&f).unwrap(), pages);
        std::fs::write(&f, [1, 2, 3]).unwrap();
        assert!(read_pages(&f).unwrap_err().contains("not a whole number"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn zipf_ranks_stay_in_range() {
        let z = Zipf::new(1, 2.0);
        let mut rng = Rng::new(1);
        assert!((0..100).all(|_| z.sample(&mut rng) == 0));
        let z = Zipf::new(0, 0.5);
        assert_eq!(z.sample(&mut rng), 0);
    }

    #[test]
    fn rate_lines_name_the_contender() {
        let t = Timing { name: "oxmm".into(), samples: vec![Duration::from_millis(100), Duration::from_millis(50)] };
        let l = rate_line("oxmm", "replay-zipf", 1_000_000, &t, 42);
        assert!(l.starts_with("oxmm") && l.contains("M accesses/s") && l.ends_with("misses 42"), "{l}");
    }
}
