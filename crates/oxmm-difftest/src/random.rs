//! Random programs: generation with edge-case arguments, and shrinking of
//! the ones that diverge.
//!
//! A program is a tree of script lines ([`Item`]); it is rendered to `.mms`
//! text and run like any script. Every program owns the *window*, the
//! [`WINDOW_PAGES`] pages at [`WINDOW`] (16 TiB, far from the binary at
//! 85 TiB, the heap after it, and the libraries and stack near 128 TiB):
//! every call that can destroy memory (`munmap`, `mprotect`, `mremap`,
//! `madvise`, `mlock`, `msync`, `mmap` with `MAP_FIXED`, writes, `exec`)
//! only names addresses in or next to the window, with lengths that end
//! below 80 TiB or that the kernel rejects (wrapping, beyond `TASK_SIZE`).
//! Mappings placed by the kernel (`mmap 0`, hints, `MAP_32BIT`, moves by
//! `mremap`) may land anywhere; only reads and `mincore` refer to them.
//! `brk` only grows the heap from where it was at the start. Lengths that
//! could succeed stay small (a few MiB), so nothing populates or locks a
//! huge range.

use std::fmt::Write as _;

use crate::consts::{self, PAGE_SIZE};
use crate::run::{run_text, ModelSource, Options, Report};

/// The start of the address window random programs own.
pub const WINDOW: u64 = 0x1000_0000_0000;
/// The window's size in pages.
pub const WINDOW_PAGES: u64 = 256;

/// A line of a random program, or a `fork { }` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// One step.
    Line(String),
    /// `fork {` ... `}`.
    Fork(Vec<Item>),
}

/// A generated program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// Its name (`random-SEED-INDEX.mms`).
    pub name: String,
    /// Its steps.
    pub items: Vec<Item>,
}

fn render_items(items: &[Item], depth: usize, out: &mut String) {
    for it in items {
        match it {
            Item::Line(l) => {
                let _ = writeln!(out, "{}{}", "  ".repeat(depth), l);
            }
            Item::Fork(inner) => {
                let _ = writeln!(out, "{}fork {{", "  ".repeat(depth));
                render_items(inner, depth + 1, out);
                let _ = writeln!(out, "{}}}", "  ".repeat(depth));
            }
        }
    }
}

fn count_items(items: &[Item]) -> usize {
    items.iter().map(|i| if let Item::Fork(inner) = i { 1 + count_items(inner) } else { 1 }).sum()
}

impl Program {
    /// The program as script text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        render_items(&self.items, 0, &mut s);
        s
    }

    /// Number of steps, fork blocks included.
    pub fn len(&self) -> usize {
        count_items(&self.items)
    }

    /// Whether it has no steps.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// A small deterministic generator (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `pct`%.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// What the generator may use.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Steps per program.
    pub ops: usize,
    /// Whether the file verbs (`file`, `memfd`, `open`, `ftruncate`,
    /// `pwrite`, `pread`, `fsync`, `close`, and mmap of their fds) are used.
    pub files: bool,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions { ops: 20, files: true }
    }
}

/// Bytes written by random programs: harmless when executed (`add [rax],
/// al` with rax = 0 faults at 0, `nop` slides, `ret` returns).
const SAFE_BYTES: &[u8] = &[0x00, 0x90, 0xc3];

struct Gen<'a> {
    rng: Rng,
    opts: &'a GenOptions,
    /// Bound mmap results with their lengths.
    maps: Vec<(String, u64)>,
    fds: Vec<String>,
    n: usize,
    depth: usize,
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

impl Gen<'_> {
    fn name(&mut self, prefix: &str) -> String {
        self.n += 1;
        format!("{prefix}{}", self.n)
    }

    /// An address in or next to the window.
    fn waddr(&mut self) -> u64 {
        let r = self.rng.below(100);
        let page = if r < 5 {
            // Just below the window or at its very end.
            return if self.rng.chance(50) { WINDOW - PAGE_SIZE } else { WINDOW + WINDOW_PAGES * PAGE_SIZE };
        } else if r < 60 {
            self.rng.below(16)
        } else {
            self.rng.below(WINDOW_PAGES)
        };
        let mut a = WINDOW + page * PAGE_SIZE;
        if self.rng.chance(8) {
            a += 1 + self.rng.below(PAGE_SIZE - 1);
        }
        a
    }

    /// A length that may succeed: small, unaligned, zero, or spanning the window.
    fn small_len(&mut self) -> u64 {
        match self.rng.below(100) {
            0..=5 => 0,
            6..=11 => self.rng.pick(&[1, 2, PAGE_SIZE - 1, PAGE_SIZE + 1, 3 * PAGE_SIZE + 17]),
            12..=79 => (1 + self.rng.below(8)) * PAGE_SIZE,
            80..=94 => (1 + self.rng.below(64)) * PAGE_SIZE,
            _ => (WINDOW_PAGES + self.rng.below(64)) * PAGE_SIZE,
        }
    }

    /// A length for a range call (`munmap`, `mprotect`, `madvise`, `mlock`,
    /// `msync`): small, or huge but harmless.
    fn range_len(&mut self, munmap: bool) -> u64 {
        if self.rng.chance(6) {
            if munmap {
                self.rng.pick(&[1 << 46, 1 << 47, u64::MAX, u64::MAX - 4095])
            } else {
                self.rng.pick(&[1 << 46, u64::MAX, u64::MAX - 4095])
            }
        } else {
            self.small_len()
        }
    }

    /// A length for mmap or mremap's new length: small, or one the kernel
    /// rejects.
    fn map_len(&mut self) -> u64 {
        if self.rng.chance(5) {
            self.rng.pick(&[1 << 47, 1 << 62, u64::MAX, u64::MAX - 4095])
        } else {
            let l = self.small_len();
            if self.rng.chance(70) && l == 0 {
                PAGE_SIZE
            } else {
                l
            }
        }
    }

    fn prot(&mut self) -> String {
        match self.rng.below(100) {
            0..=84 => self.rng.pick(&["none", "r", "rw", "rx", "rwx", "w", "x", "wx"]).to_string(),
            85..=89 => self.rng.pick(&["rw|growsdown", "r|growsup", "rw|sem"]).to_string(),
            90..=94 => hex(self.rng.next_u64() & 0xff),
            _ => hex(1 << self.rng.below(32)),
        }
    }

    fn flags_from(&mut self, table: &[(&str, i64)], pct: u64) -> String {
        let mut parts: Vec<&str> = Vec::new();
        for (name, v) in table {
            if *v != 0 && v.count_ones() == 1 && self.rng.chance(pct) {
                parts.push(name);
            }
        }
        if parts.is_empty() {
            "0".to_string()
        } else {
            parts.join("|")
        }
    }

    fn mmap(&mut self) -> Vec<Item> {
        let mut out = Vec::new();
        let use_file = self.opts.files && !self.fds.is_empty() && self.rng.chance(25);
        let (fd, off) = if use_file {
            let f = self.fds[self.rng.below(self.fds.len() as u64) as usize].clone();
            let off = match self.rng.below(10) {
                0 => 1,
                1 => 1 << 50,
                _ => self.rng.below(4) * PAGE_SIZE,
            };
            (format!("${f}"), off)
        } else if self.rng.chance(4) {
            ("999".to_string(), 0)
        } else {
            ("-1".to_string(), if self.rng.chance(5) { PAGE_SIZE } else { 0 })
        };
        let kind = match self.rng.below(100) {
            0..=59 => "private",
            60..=84 => "shared",
            85..=92 => "shared_validate",
            93..=96 => "0",
            _ => "private|shared",
        };
        let mut flags = vec![kind.to_string()];
        if !use_file || self.rng.chance(10) {
            flags.push("anonymous".into());
        }
        let place = self.rng.below(100);
        let addr = if place < 30 {
            0
        } else if place < 45 {
            self.waddr()
        } else if place < 80 {
            flags.push("fixed".into());
            self.waddr()
        } else if place < 95 {
            flags.push("fixed_noreplace".into());
            self.waddr()
        } else {
            flags.push(if self.rng.chance(50) { "fixed" } else { "fixed_noreplace" }.into());
            0
        };
        let len = self.map_len();
        let small = len <= 2 * WINDOW_PAGES * PAGE_SIZE;
        for (f, pct) in [("noreserve", 10), ("growsdown", 5), ("stack", 5), ("32bit", 3), ("hugetlb", 2), ("sync", 2)] {
            if self.rng.chance(pct) {
                flags.push(f.into());
            }
        }
        if small {
            for (f, pct) in [("populate", 8), ("locked", 5)] {
                if self.rng.chance(pct) {
                    flags.push(f.into());
                }
            }
        }
        if self.rng.chance(3) {
            flags.push(hex(1 << (21 + self.rng.below(11))));
        }
        // MAP_32BIT without a fixed address lands below 2 GiB: fine. With
        // `fixed` it is ignored for placement.
        let name = self.name("a");
        let line =
            format!("{name} = mmap {} {} {} {} {} {}", hex(addr), hex(len), self.prot(), flags.join("|"), fd, hex(off));
        out.push(Item::Line(line));
        self.maps.push((name, len));
        out
    }

    fn mremap(&mut self) -> String {
        let old = self.waddr();
        let old_len = if self.rng.chance(5) {
            self.rng.pick(&[1 << 46, 1 << 47, u64::MAX])
        } else if self.rng.chance(5) {
            0
        } else {
            self.small_len().max(1)
        };
        let new_len = self.map_len();
        let f = match self.rng.below(100) {
            0..=19 => "0".to_string(),
            20..=59 => "maymove".to_string(),
            60..=79 => "maymove|fixed".to_string(),
            80..=87 => "maymove|dontunmap".to_string(),
            88..=92 => "fixed".to_string(),
            93..=96 => "maymove|fixed|dontunmap".to_string(),
            _ => hex(self.rng.next_u64() & 0xf),
        };
        let new_addr = if f.contains("fixed") || self.rng.chance(10) { self.waddr() } else { 0 };
        format!("mremap {} {} {} {} {}", hex(old), hex(old_len), hex(new_len), f, hex(new_addr))
    }

    fn advice(&mut self) -> String {
        let r = self.rng.below(100);
        if r < 92 {
            let names: Vec<&str> = consts::MADV_NAMES.iter().map(|(n, _)| *n).collect();
            self.rng.pick(&names).to_string()
        } else {
            hex(self.rng.pick(&[5, 6, 7, 26, 99, 104, 1 << 31, u64::MAX]))
        }
    }

    /// An address and a length to read or mincore: in the window, or
    /// inside a mapping the program made (never past its end, where the
    /// harness's own memory may be).
    fn read_target(&mut self, max_len: u64) -> (String, u64) {
        if !self.maps.is_empty() && self.rng.chance(30) {
            let (m, len) = self.maps[self.rng.below(self.maps.len() as u64) as usize].clone();
            let pages = len.div_ceil(PAGE_SIZE).min(WINDOW_PAGES * 2);
            if (1..=WINDOW_PAGES * 2).contains(&pages) {
                let off = self.rng.below(pages) * PAGE_SIZE;
                let l = (1 + self.rng.below(len.min(pages * PAGE_SIZE) - off)).min(max_len);
                return (format!("${m}+{}", hex(off)), l);
            }
        }
        let l = self.small_len().min(max_len);
        (hex(self.waddr()), l)
    }

    fn file_step(&mut self) -> Vec<Item> {
        let r = self.rng.below(100);
        if self.fds.is_empty() || r < 25 {
            let name = self.name("f");
            let size = self.rng.below(8) * PAGE_SIZE + if self.rng.chance(20) { 1 + self.rng.below(4095) } else { 0 };
            let line = if self.rng.chance(70) {
                format!("{name} = file {} {}", hex(size), hex(self.rng.pick(SAFE_BYTES) as u64))
            } else {
                format!("{name} = memfd {}", hex(size))
            };
            self.fds.push(name);
            return vec![Item::Line(line)];
        }
        let f = self.fds[self.rng.below(self.fds.len() as u64) as usize].clone();
        let line = match r {
            25..=39 => format!("ftruncate ${f} {}", hex(self.rng.below(10) * PAGE_SIZE + self.rng.below(2) * 100)),
            40..=54 => format!(
                "pwrite ${f} {} {} {}",
                hex(self.rng.below(8) * 1000),
                hex(self.rng.below(3) * PAGE_SIZE + self.rng.below(300)),
                hex(self.rng.pick(SAFE_BYTES) as u64)
            ),
            55..=69 => format!("pread ${f} {} {}", hex(self.rng.below(8) * 1000), hex(self.rng.below(3 * PAGE_SIZE))),
            70..=79 => format!("fsync ${f}"),
            80..=89 => {
                let name = self.name("f");
                self.fds.push(name.clone());
                format!("{name} = open ${f} {}", self.rng.pick(&["rdonly", "wronly", "rdwr"]))
            }
            _ => format!("close ${f}"),
        };
        vec![Item::Line(line)]
    }

    fn step(&mut self) -> Vec<Item> {
        let r = self.rng.below(100);
        let line = match r {
            0..=17 => return self.mmap(),
            18..=25 => format!("munmap {} {}", hex(self.waddr()), hex(self.range_len(true))),
            26..=34 => format!("mprotect {} {} {}", hex(self.waddr()), hex(self.range_len(false)), self.prot()),
            35..=41 => self.mremap(),
            42..=48 => format!("madvise {} {} {}", hex(self.waddr()), hex(self.range_len(false)), self.advice()),
            49..=55 => {
                let len = self.small_len().min(64 * PAGE_SIZE);
                if self.rng.chance(20) {
                    format!("write {} \"{}\"", hex(self.waddr()), "\\x90\\xc3")
                } else {
                    format!("write {} {} {}", hex(self.waddr()), hex(len), hex(self.rng.pick(SAFE_BYTES) as u64))
                }
            }
            56..=61 => {
                let (a, l) = self.read_target(64 * PAGE_SIZE);
                format!("read {a} {}", hex(l))
            }
            62..=65 => {
                let (a, l) = self.read_target(u64::MAX);
                let l = if a.starts_with('$') || !self.rng.chance(10) { l } else { self.range_len(true) };
                format!("mincore {a} {}", hex(l))
            }
            66..=70 => {
                let a = hex(self.waddr());
                let l = hex(self.range_len(false));
                match self.rng.below(3) {
                    0 => format!("mlock {a} {l}"),
                    1 => format!("mlock2 {a} {l} {}", self.rng.pick(&["0", "onfault", "2", "0x80"])),
                    _ => format!("munlock {a} {l}"),
                }
            }
            71..=72 => {
                if self.rng.chance(50) {
                    format!("mlockall {}", self.flags_from(consts::MLOCKALL_NAMES, 40))
                } else {
                    "munlockall".to_string()
                }
            }
            73..=76 => {
                let f = match self.rng.below(10) {
                    0 => hex(self.rng.below(16)),
                    _ => self.flags_from(consts::MSYNC_NAMES, 35),
                };
                format!("msync {} {} {}", hex(self.waddr()), hex(self.range_len(false)), f)
            }
            77..=79 => {
                let n = self.rng.below(80);
                if self.rng.chance(15) {
                    "brk 0".to_string()
                } else {
                    format!("brk $brk0+{}", hex(n * PAGE_SIZE + if self.rng.chance(10) { 5 } else { 0 }))
                }
            }
            80..=81 => {
                let a = hex(self.waddr() & !0xfff);
                return vec![Item::Line(format!("write {a} 1 0xc3")), Item::Line(format!("exec {a}"))];
            }
            82..=83 => {
                let res = self.rng.pick(&["as", "data", "stack", "memlock"]);
                let v = |g: &mut Gen| -> String {
                    match g.rng.below(5) {
                        0 => "inf".into(),
                        1 => hex(g.rng.below(16) * PAGE_SIZE),
                        2 => hex(8 << 20),
                        _ => hex((64 + g.rng.below(4096)) << 20),
                    }
                };
                if self.rng.chance(50) {
                    format!("setrlimit {res} {}", v(self))
                } else {
                    format!("setrlimit {res} {} {}", v(self), v(self))
                }
            }
            84..=87 => "maps".to_string(),
            88..=89 => "smaps".to_string(),
            90..=93 if self.depth < 2 => {
                self.depth += 1;
                let k = 1 + self.rng.below(5);
                let saved = (self.maps.len(), self.fds.len());
                let mut inner = Vec::new();
                for _ in 0..k {
                    inner.extend(self.step());
                }
                self.maps.truncate(saved.0);
                self.fds.truncate(saved.1);
                self.depth -= 1;
                return vec![Item::Fork(inner)];
            }
            _ if self.opts.files => return self.file_step(),
            _ => {
                let (a, l) = self.read_target(8 * PAGE_SIZE);
                format!("read {a} {}", hex(l))
            }
        };
        vec![Item::Line(line)]
    }
}

/// Generates program number `index` of the run with `seed`.
pub fn generate(seed: u64, index: u64, opts: &GenOptions) -> Program {
    let mut g = Gen {
        rng: Rng::new(seed.wrapping_mul(0x1_0000_0001).wrapping_add(index)),
        opts,
        maps: Vec::new(),
        fds: Vec::new(),
        n: 0,
        depth: 0,
    };
    let mut items = vec![Item::Line("brk0 = brk 0".to_string())];
    while count_items(&items) < opts.ops + 1 {
        items.extend(g.step());
    }
    Program { name: format!("random-{seed}-{index}.mms"), items }
}

fn mismatches(p: &Program, source: &mut ModelSource<'_>, opts: &Options) -> Report {
    run_text(&p.name, &p.render(), source, opts)
}

/// Removes `n` items at `i` of the list at `path` (indices of forks).
fn remove_at(items: &[Item], path: &[usize], i: usize, n: usize) -> Option<Vec<Item>> {
    let mut out = items.to_vec();
    let mut cur = &mut out;
    for &p in path {
        match cur.get_mut(p) {
            Some(Item::Fork(inner)) => cur = inner,
            _ => return None,
        }
    }
    if i + n > cur.len() {
        return None;
    }
    cur.drain(i..i + n);
    Some(out)
}

/// Replaces the fork at `i` of the list at `path` by its body.
fn unfork_at(items: &[Item], path: &[usize], i: usize) -> Option<Vec<Item>> {
    let mut out = items.to_vec();
    let mut cur = &mut out;
    for &p in path {
        match cur.get_mut(p) {
            Some(Item::Fork(inner)) => cur = inner,
            _ => return None,
        }
    }
    match cur.get(i) {
        Some(Item::Fork(inner)) => {
            let inner = inner.clone();
            cur.splice(i..i + 1, inner);
            Some(out)
        }
        _ => None,
    }
}

fn lists(items: &[Item], path: &mut Vec<usize>, out: &mut Vec<(Vec<usize>, usize)>) {
    out.push((path.clone(), items.len()));
    for (i, it) in items.iter().enumerate() {
        if let Item::Fork(inner) = it {
            path.push(i);
            lists(inner, path, out);
            path.pop();
        }
    }
}

/// Shrinks a diverging program: removes chunks of steps, then single
/// steps, and flattens fork blocks, as long as the result still parses and
/// still has a mismatch. `budget` bounds the number of runs.
pub fn shrink(p: &Program, source: &mut ModelSource<'_>, opts: &Options, mut budget: usize) -> Program {
    let mut best = p.clone();
    let mut still_fails = |cand: &Program, budget: &mut usize| -> bool {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        if crate::lang::parse(&cand.name, &cand.render()).is_err() {
            return false;
        }
        !mismatches(cand, source, opts).mismatches.is_empty()
    };
    loop {
        let mut improved = false;
        let mut ls = Vec::new();
        lists(&best.items, &mut Vec::new(), &mut ls);
        'outer: for (path, len) in ls {
            let mut chunk = len.max(1).next_power_of_two();
            while chunk >= 1 {
                let mut i = 0;
                while i < len {
                    if let Some(items) = remove_at(&best.items, &path, i, chunk.min(len - i)) {
                        let cand = Program { name: best.name.clone(), items };
                        // Keep the leading `brk0 = brk 0` binding.
                        if path.is_empty() && i == 0 {
                            i += chunk;
                            continue;
                        }
                        if still_fails(&cand, &mut budget) {
                            best = cand;
                            improved = true;
                            break 'outer;
                        }
                    }
                    i += chunk;
                }
                chunk /= 2;
            }
            for i in 0..len {
                if let Some(items) = unfork_at(&best.items, &path, i) {
                    let cand = Program { name: best.name.clone(), items };
                    if still_fails(&cand, &mut budget) {
                        best = cand;
                        improved = true;
                        break 'outer;
                    }
                }
            }
        }
        if !improved || budget == 0 {
            return best;
        }
    }
}

/// The result of a random run.
#[derive(Debug, Default)]
pub struct RandomRun {
    /// All programs' results together.
    pub report: Report,
    /// The shrunk programs of the diverging ones, as scripts with a header.
    pub shrunk: Vec<String>,
}

/// Generates and runs `n` programs; shrinks the first `max_shrink` that
/// diverge. `each` sees every program's report as it finishes.
pub fn run_random(
    seed: u64,
    n: u64,
    gen: &GenOptions,
    source: &mut ModelSource<'_>,
    opts: &Options,
    max_shrink: usize,
    each: &mut dyn FnMut(&Report),
) -> RandomRun {
    let mut out = RandomRun::default();
    for i in 0..n {
        let p = generate(seed, i, gen);
        let rep = mismatches(&p, source, opts);
        each(&rep);
        if !rep.mismatches.is_empty() && out.shrunk.len() < max_shrink {
            let s = shrink(&p, source, opts, 400);
            out.shrunk.push(format!("# {} shrunk to {} steps\n{}", p.name, s.len(), s.render()));
        }
        out.report.merge(rep);
    }
    out
}
