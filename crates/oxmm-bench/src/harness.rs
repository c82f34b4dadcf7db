//! The measuring half shared by every bench: a seeded random source for
//! workload generation, timing of contenders over the same work, the
//! readable result line and the machine-readable `ratio` lines.
//!
//! A bench builds its work once, then hands the harness one closure per
//! contender ([`Contender`]); the first contender is oxmm, the others are
//! its peers. [`compare`] runs every closure once to warm up, then takes
//! [`Settings::samples`] timed samples of each, round-robin (oxmm, peer 1,
//! peer 2, oxmm, ...) so that a slow phase of the host hits every contender
//! alike. A closure returns a checksum of what it did, which goes through
//! [`std::hint::black_box`] so the optimizer cannot drop the work.
//!
//! The ratio for a peer is the peer's median time divided by oxmm's median
//! time: above 1 means oxmm did the same work faster.

use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant};

/// How thoroughly to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Fewer samples, for a smoke run (`oxmm bench NAME --quick`).
    pub quick: bool,
}

impl Settings {
    /// Timed samples per contender (after one untimed warm-up run).
    pub fn samples(&self) -> usize {
        if self.quick {
            5
        } else {
            25
        }
    }
}

/// The seeded random source workloads are generated with: the machine's
/// own (SplitMix64), so every contender replays the same sequence and a
/// seed reproduces it exactly.
pub use oxmm_sim::rng::SimRng as Rng;

/// The body one contender runs for one sample: does the whole work once
/// and returns a checksum of it, or why it could not.
pub type RunFn<'a> = Box<dyn FnMut() -> Result<u64, String> + 'a>;

/// One side of a comparison: a name as it appears in the ratio lines and
/// the work to time.
pub struct Contender<'a> {
    /// Name in the report; no whitespace (see [`check_name`]).
    pub name: String,
    /// Runs the work once.
    pub run: RunFn<'a>,
}

impl<'a> Contender<'a> {
    /// A contender named `name` running `run`.
    pub fn new(name: &str, run: impl FnMut() -> Result<u64, String> + 'a) -> Contender<'a> {
        Contender { name: name.to_string(), run: Box::new(run) }
    }
}

/// The timed samples of one contender.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// Contender name.
    pub name: String,
    /// Wall-clock time of each sample, in the order taken.
    pub samples: Vec<Duration>,
}

impl Timing {
    /// Median sample (the mean of the two middle ones for an even count);
    /// zero when there is no sample.
    pub fn median(&self) -> Duration {
        let mut s = self.samples.clone();
        s.sort_unstable();
        match s.len() {
            0 => Duration::ZERO,
            n if n % 2 == 1 => s[n / 2],
            n => (s[n / 2 - 1] + s[n / 2]) / 2,
        }
    }

    /// Fastest sample; zero when there is no sample.
    pub fn best(&self) -> Duration {
        self.samples.iter().copied().min().unwrap_or(Duration::ZERO)
    }
}

/// The outcome of timing oxmm and its peers on the same work.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Bench name in the ratio lines, e.g. `page_alloc-order0`.
    pub bench: String,
    /// Operations in one run of the work (for the per-operation figures).
    pub ops: u64,
    /// oxmm first, then the peers in the order given.
    pub timings: Vec<Timing>,
}

impl Comparison {
    /// Median nanoseconds per operation of one contender.
    pub fn ns_per_op(&self, t: &Timing) -> f64 {
        t.median().as_nanos() as f64 / self.ops.max(1) as f64
    }

    /// Peer time over oxmm time for each peer, from the medians.
    pub fn ratios(&self) -> Vec<(String, f64)> {
        let Some((subject, peers)) = self.timings.split_first() else {
            return Vec::new();
        };
        let base = subject.median().as_secs_f64();
        peers
            .iter()
            .map(|p| {
                let r = if base > 0.0 { p.median().as_secs_f64() / base } else { f64::INFINITY };
                (p.name.clone(), r)
            })
            .collect()
    }

    /// The readable summary: bench name, then each contender's median
    /// ns/op, e.g. `page_alloc-order0  oxmm 21.3 ns/op  talc 40.1 ns/op`.
    pub fn summary_line(&self) -> String {
        let mut s = self.bench.clone();
        for t in &self.timings {
            let _ = write!(s, "  {} {:.1} ns/op", t.name, self.ns_per_op(t));
        }
        s
    }

    /// A second readable line with the spread: best and worst sample of each.
    pub fn spread_line(&self) -> String {
        let mut s = format!("{}  ({} ops/run, {} samples; best..worst ns/op:", self.bench, self.ops, self.samples());
        for t in &self.timings {
            let worst = t.samples.iter().copied().max().unwrap_or(Duration::ZERO);
            let per = |d: Duration| d.as_nanos() as f64 / self.ops.max(1) as f64;
            let _ = write!(s, " {} {:.1}..{:.1}", t.name, per(t.best()), per(worst));
        }
        s.push(')');
        s
    }

    fn samples(&self) -> usize {
        self.timings.first().map_or(0, |t| t.samples.len())
    }
}

/// Checks that a bench or contender name fits in one field of a ratio
/// line: non-empty, printable ASCII, no whitespace.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name in a ratio line".to_string());
    }
    if !name.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("name `{name}` must be printable ASCII without whitespace to fit a ratio line"));
    }
    Ok(())
}

/// The machine-readable line `ratio <bench> <peer> <value>` (no newline).
/// `value` is the peer's time over oxmm's; it must be finite.
pub fn ratio_line(bench: &str, peer: &str, value: f64) -> Result<String, String> {
    check_name(bench)?;
    check_name(peer)?;
    if !value.is_finite() {
        return Err(format!("ratio of {peer} to oxmm on {bench} is not a finite number ({value})"));
    }
    Ok(format!("ratio {bench} {peer} {value:.3}"))
}

/// Times every contender on its work: one untimed warm-up run each, then
/// `settings.samples()` timed runs each, round-robin. `ops` is the number
/// of operations in one run. The first contender is the subject (oxmm).
pub fn compare(
    bench: &str,
    ops: u64,
    settings: Settings,
    contenders: &mut [Contender<'_>],
) -> Result<Comparison, String> {
    check_name(bench)?;
    if contenders.len() < 2 {
        return Err(format!("bench {bench} needs oxmm and at least one peer"));
    }
    for c in contenders.iter() {
        check_name(&c.name)?;
    }
    for c in contenders.iter_mut() {
        std::hint::black_box((c.run)().map_err(|e| format!("{bench}: {} (warm-up): {e}", c.name))?);
    }
    let n = settings.samples();
    let mut timings: Vec<Timing> =
        contenders.iter().map(|c| Timing { name: c.name.clone(), samples: Vec::with_capacity(n) }).collect();
    for _ in 0..n {
        for (c, t) in contenders.iter_mut().zip(timings.iter_mut()) {
            let start = Instant::now();
            let sum = (c.run)();
            let elapsed = start.elapsed();
            std::hint::black_box(sum.map_err(|e| format!("{bench}: {}: {e}", c.name))?);
            t.samples.push(elapsed);
        }
    }
    Ok(Comparison { bench: bench.to_string(), ops, timings })
}

/// Collects comparisons: prints each one's readable lines as it lands and
/// all the ratio lines at the end, after every readable line.
#[derive(Debug, Default)]
pub struct Report {
    ratios: Vec<String>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Report {
        Report::default()
    }

    /// Writes a free-form readable line.
    pub fn line(&mut self, out: &mut dyn Write, text: &str) -> Result<(), String> {
        writeln!(out, "{text}").map_err(|e| format!("cannot write the report: {e}"))
    }

    /// Writes a comparison's readable lines and keeps its ratio lines for
    /// [`Report::finish`].
    pub fn add(&mut self, out: &mut dyn Write, c: &Comparison) -> Result<(), String> {
        for (peer, value) in c.ratios() {
            self.ratios.push(ratio_line(&c.bench, &peer, value)?);
        }
        self.line(out, &c.summary_line())?;
        self.line(out, &c.spread_line())
    }

    /// The ratio lines gathered so far.
    pub fn ratio_lines(&self) -> &[String] {
        &self.ratios
    }

    /// Writes the ratio lines.
    pub fn finish(self, out: &mut dyn Write) -> Result<(), String> {
        for r in &self.ratios {
            writeln!(out, "{r}").map_err(|e| format!("cannot write the report: {e}"))?;
        }
        out.flush().map_err(|e| format!("cannot write the report: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comparison(oxmm_ns: &[u64], peer_ns: &[u64]) -> Comparison {
        let t = |name: &str, ns: &[u64]| Timing {
            name: name.to_string(),
            samples: ns.iter().map(|&n| Duration::from_nanos(n)).collect(),
        };
        Comparison { bench: "demo-bench".into(), ops: 10, timings: vec![t("oxmm", oxmm_ns), t("peer-x", peer_ns)] }
    }

    /// Splits a line the way the scripts do: exactly four fields, the
    /// first `ratio`, the last a number.
    fn parse_ratio(line: &str) -> Option<(String, String, f64)> {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 4 || f[0] != "ratio" {
            return None;
        }
        Some((f[1].to_string(), f[2].to_string(), f[3].parse().ok()?))
    }

    #[test]
    fn ratio_line_has_exact_format() {
        let line = ratio_line("page_alloc-order0", "buddy_system_allocator-frame", 4.25).unwrap();
        assert_eq!(line, "ratio page_alloc-order0 buddy_system_allocator-frame 4.250");
        let (b, p, v) = parse_ratio(&line).unwrap();
        assert_eq!((b.as_str(), p.as_str(), v), ("page_alloc-order0", "buddy_system_allocator-frame", 4.25));
    }

    #[test]
    fn ratio_line_rejects_bad_names_and_values() {
        assert!(ratio_line("two words", "talc", 1.0).is_err());
        assert!(ratio_line("bench", "", 1.0).is_err());
        assert!(ratio_line("bench", "tab\there", 1.0).is_err());
        assert!(ratio_line("bench", "talc", f64::NAN).is_err());
        assert!(ratio_line("bench", "talc", f64::INFINITY).is_err());
    }

    #[test]
    fn ratio_is_peer_median_over_oxmm_median() {
        let c = comparison(&[100, 10, 20, 30], &[60, 90, 1000, 30]);
        // oxmm median (20+30)/2 = 25, peer median (60+90)/2 = 75.
        let r = c.ratios();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, "peer-x");
        assert!((r[0].1 - 3.0).abs() < 1e-9);
        assert_eq!(c.timings[0].best(), Duration::from_nanos(10));
    }

    #[test]
    fn report_prints_readable_lines_then_ratio_lines() {
        let mut report = Report::new();
        let mut out = Vec::new();
        report.add(&mut out, &comparison(&[10], &[30])).unwrap();
        report.add(&mut out, &Comparison { bench: "second".into(), ..comparison(&[20], &[10]) }).unwrap();
        report.finish(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let first_ratio = lines.iter().position(|l| l.starts_with("ratio ")).unwrap();
        assert!(first_ratio > 0);
        assert!(lines[first_ratio..].iter().all(|l| parse_ratio(l).is_some()));
        assert!(lines[..first_ratio].iter().all(|l| !l.starts_with("ratio")));
        assert_eq!(lines[first_ratio..], ["ratio demo-bench peer-x 3.000", "ratio second peer-x 0.500"]);
        assert_eq!(lines[0], "demo-bench  oxmm 1.0 ns/op  peer-x 3.0 ns/op");
    }

    #[test]
    fn compare_runs_every_contender_and_reports_errors() {
        let mut calls = [0u32; 2];
        let (a, b) = calls.split_at_mut(1);
        let mut cs = vec![
            Contender::new("oxmm", || {
                a[0] += 1;
                Ok(1)
            }),
            Contender::new("peer", || {
                b[0] += 1;
                Ok(2)
            }),
        ];
        let c = compare("demo", 5, Settings { quick: true }, &mut cs).unwrap();
        drop(cs);
        let n = Settings { quick: true }.samples();
        assert_eq!(c.timings.len(), 2);
        assert!(c.timings.iter().all(|t| t.samples.len() == n));
        assert_eq!(calls, [n as u32 + 1; 2]);

        let mut failing =
            vec![Contender::new("oxmm", || Ok(0)), Contender::new("peer", || Err("out of memory".into()))];
        let e = compare("demo", 5, Settings { quick: true }, &mut failing).unwrap_err();
        assert!(e.contains("peer") && e.contains("out of memory"), "{e}");
        assert!(compare("demo", 5, Settings { quick: true }, &mut failing[..1]).is_err());
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let (x, y) = (a.below(13), b.below(13));
            assert_eq!(x, y);
            assert!(x < 13);
        }
        let mut v: Vec<u32> = (0..100).collect();
        Rng::new(1).shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }

    #[test]
    fn quick_takes_fewer_samples() {
        assert!(Settings { quick: true }.samples() < Settings { quick: false }.samples());
    }
}
