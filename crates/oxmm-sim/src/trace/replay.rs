//! The replay engine: a trace as a dense page-reference string, and
//! page-replacement policies simulated over it with a fixed number of
//! page frames.
//!
//! [`RefString`] renames the trace's pages to dense ids `0..distinct` in
//! order of first reference when it is built, so the policies keep their
//! state in plain arrays indexed by id: no hashing while simulating. Every
//! policy is O(1) a reference except [`Policy::Opt`] (a heap, O(log n)).
//!
//! [`simulate`] counts hits and misses. A miss on a page never seen before
//! is a cold miss (a minor fault when a process first touches the page);
//! the other misses are refaults, what a machine with that much memory
//! would read back from swap or the page cache (major faults).

use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::str::FromStr;

use super::{Kind, PageHash, Record, TraceError};
use crate::rng::SimRng;

/// A page-reference string with dense page ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefString {
    refs: Vec<u32>,
    pages: Vec<u64>,
    kinds: [u64; 3],
    /// Each reference's kind ([`Kind::code`]).
    ref_kinds: Vec<u8>,
}

impl RefString {
    /// The reference string of a sequence of page numbers (all reads).
    /// Fails only beyond `u32::MAX - 1` references or distinct pages.
    pub fn from_pages(pages: impl IntoIterator<Item = u64>) -> Result<RefString, String> {
        let mut b = Builder::default();
        for p in pages {
            b.push(Record::new(p, Kind::Read))?;
        }
        Ok(b.finish())
    }

    /// The reference string of a trace's records; stops at the first error.
    pub fn from_records<E>(records: impl IntoIterator<Item = Result<Record, E>>) -> Result<RefString, E>
    where
        E: From<String>,
    {
        let mut b = Builder::default();
        for r in records {
            b.push(r?)?;
        }
        Ok(b.finish())
    }

    /// The reference string of a trace read with a [`super::TraceReader`]
    /// (or any iterator of its items), naming `file` if it is too long.
    pub fn from_trace(
        records: impl IntoIterator<Item = Result<Record, TraceError>>,
        file: &str,
    ) -> Result<RefString, TraceError> {
        let mut b = Builder::default();
        for r in records {
            b.push(r?).map_err(|p| TraceError::new(file, super::Location::File, p))?;
        }
        Ok(b.finish())
    }

    /// The references as dense page ids.
    pub fn refs(&self) -> &[u32] {
        &self.refs
    }

    /// The kind of reference `i` (instruction fetch, read or write).
    pub fn kind(&self, i: usize) -> Kind {
        self.ref_kinds.get(i).and_then(|&c| Kind::from_code(u64::from(c))).unwrap_or(Kind::Read)
    }

    /// Page number of each dense id.
    pub fn pages(&self) -> &[u64] {
        &self.pages
    }

    /// References in the string.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    /// True for an empty string.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// Distinct pages referenced.
    pub fn distinct(&self) -> usize {
        self.pages.len()
    }

    /// References of `kind`.
    pub fn count(&self, kind: Kind) -> u64 {
        self.kinds[kind.code() as usize]
    }
}

#[derive(Default)]
struct Builder {
    ids: HashMap<u64, u32, PageHash>,
    s: RefString,
}

impl Builder {
    #[inline]
    fn push(&mut self, r: Record) -> Result<(), String> {
        if self.s.refs.len() >= u32::MAX as usize - 1 {
            return Err(format!("more than {} references: too many to replay", u32::MAX - 1));
        }
        let next = self.s.pages.len() as u32;
        let id = *self.ids.entry(r.page).or_insert(next);
        if id == next {
            self.s.pages.push(r.page);
        }
        self.s.refs.push(id);
        self.s.ref_kinds.push(r.kind.code() as u8);
        self.s.kinds[r.kind.code() as usize] += 1;
        Ok(())
    }

    fn finish(self) -> RefString {
        self.s
    }
}

/// A page-replacement policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Least recently used: evicts the page whose last reference is oldest.
    Lru,
    /// First in, first out: evicts the page loaded longest ago.
    Fifo,
    /// CLOCK (second chance): a hand sweeps the frames, clearing referenced
    /// bits, and evicts the first page found unreferenced; a page comes in
    /// with its bit clear.
    Clock,
    /// Belady's optimal (offline): evicts the page whose next reference is
    /// furthest in the future. A lower bound on every policy's misses.
    Opt,
    /// Evicts a frame chosen at random (seeded, so runs repeat).
    Random,
}

impl Policy {
    /// Every policy, in the order `oxmm replay` prints them.
    pub const ALL: [Policy; 5] = [Policy::Lru, Policy::Fifo, Policy::Clock, Policy::Opt, Policy::Random];

    /// The policy's name (`lru`, `fifo`, `clock`, `opt`, `random`).
    pub fn name(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::Fifo => "fifo",
            Policy::Clock => "clock",
            Policy::Opt => "opt",
            Policy::Random => "random",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Policy, String> {
        Policy::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
            format!("unknown policy `{s}` (known: {})", names.join(", "))
        })
    }
}

/// What a simulation counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// References replayed.
    pub accesses: u64,
    /// References to a resident page.
    pub hits: u64,
    /// References to a page not resident (it was loaded, evicting one when
    /// every frame was in use).
    pub misses: u64,
    /// Misses on a page never referenced before (first touch).
    pub cold_misses: u64,
    /// Pages evicted.
    pub evictions: u64,
}

impl Stats {
    /// Misses on pages referenced before (evicted since): major faults.
    pub fn refaults(&self) -> u64 {
        self.misses - self.cold_misses
    }

    /// Misses over accesses (0 for no access).
    pub fn miss_ratio(&self) -> f64 {
        if self.accesses == 0 {
            0.0
        } else {
            self.misses as f64 / self.accesses as f64
        }
    }
}

/// Seed of [`Policy::Random`]'s choices.
pub const RANDOM_SEED: u64 = 0x6f78_6d6d_7265_706c;

/// Replays `refs` through `policy` with `frames` page frames.
pub fn simulate(policy: Policy, frames: usize, refs: &RefString) -> Stats {
    let n = refs.distinct();
    let r = refs.refs();
    let mut st = if frames == 0 {
        Stats { misses: r.len() as u64, ..Stats::default() }
    } else if frames >= n {
        // Everything fits: only first touches miss.
        Stats { misses: n as u64, ..Stats::default() }
    } else {
        match policy {
            Policy::Lru => lru(r, n, frames),
            Policy::Fifo => fifo(r, n, frames),
            Policy::Clock => clock(r, n, frames),
            Policy::Opt => opt(r, n, frames),
            Policy::Random => random(r, n, frames),
        }
    };
    st.accesses = r.len() as u64;
    st.hits = st.accesses - st.misses;
    st.cold_misses = n as u64;
    st.evictions = if frames == 0 { 0 } else { st.misses.saturating_sub(frames.min(n) as u64) };
    st
}

const NIL: u32 = u32::MAX;

/// LRU over a doubly linked list threaded through an array indexed by
/// page id (`[prev, next]`, `next == NIL` when not resident), with a
/// sentinel at index `n`: most recent after the sentinel, least before it.
fn lru(refs: &[u32], n: usize, frames: usize) -> Stats {
    let s = n as u32;
    let mut links = vec![[NIL, NIL]; n + 1];
    links[n] = [s, s];
    let mut used = 0usize;
    let mut misses = 0u64;
    for &p in refs {
        let pi = p as usize;
        let [prev, next] = links[pi];
        if next != NIL {
            if prev == s {
                continue; // already the most recent
            }
            links[prev as usize][1] = next;
            links[next as usize][0] = prev;
        } else {
            misses += 1;
            if used == frames {
                let victim = links[n][0];
                let before = links[victim as usize][0];
                links[before as usize][1] = s;
                links[n][0] = before;
                links[victim as usize] = [NIL, NIL];
            } else {
                used += 1;
            }
        }
        let head = links[n][1];
        links[pi] = [s, head];
        links[head as usize][0] = p;
        links[n][1] = p;
    }
    Stats { misses, ..Stats::default() }
}

fn fifo(refs: &[u32], n: usize, frames: usize) -> Stats {
    let mut resident = vec![false; n];
    let mut ring: Vec<u32> = Vec::with_capacity(frames);
    let mut hand = 0;
    let mut misses = 0u64;
    for &p in refs {
        if resident[p as usize] {
            continue;
        }
        misses += 1;
        resident[p as usize] = true;
        if ring.len() < frames {
            ring.push(p);
        } else {
            resident[ring[hand] as usize] = false;
            ring[hand] = p;
            hand = if hand + 1 == frames { 0 } else { hand + 1 };
        }
    }
    Stats { misses, ..Stats::default() }
}

fn clock(refs: &[u32], n: usize, frames: usize) -> Stats {
    const OUT: u8 = 0;
    const IN: u8 = 1;
    const REFERENCED: u8 = 2;
    let mut state = vec![OUT; n];
    let mut ring: Vec<u32> = Vec::with_capacity(frames);
    let mut hand = 0;
    let mut misses = 0u64;
    for &p in refs {
        let st = &mut state[p as usize];
        if *st != OUT {
            *st = REFERENCED;
            continue;
        }
        *st = IN;
        misses += 1;
        if ring.len() < frames {
            ring.push(p);
            continue;
        }
        loop {
            let v = ring[hand] as usize;
            if state[v] == REFERENCED {
                state[v] = IN;
                hand = if hand + 1 == frames { 0 } else { hand + 1 };
            } else {
                state[v] = OUT;
                break;
            }
        }
        ring[hand] = p;
        hand = if hand + 1 == frames { 0 } else { hand + 1 };
    }
    Stats { misses, ..Stats::default() }
}

/// Belady: each resident page's next use is in a max-heap (lazily: an
/// entry is stale when it is not the page's current next use).
fn opt(refs: &[u32], n: usize, frames: usize) -> Stats {
    // Positions are below `u32::MAX - 2` (`Builder::push` checks).
    const NEVER: u32 = u32::MAX - 1;
    let mut next_use = vec![0u32; refs.len()];
    let mut last = vec![NEVER; n];
    for i in (0..refs.len()).rev() {
        let p = refs[i] as usize;
        next_use[i] = last[p];
        last[p] = i as u32;
    }
    // `cur[p]`: p's next use while resident, NIL when not resident.
    let mut cur = vec![NIL; n];
    let mut heap: BinaryHeap<u64> = BinaryHeap::with_capacity(frames * 2);
    let mut used = 0usize;
    let mut misses = 0u64;
    for (i, &p) in refs.iter().enumerate() {
        let nu = next_use[i];
        let pi = p as usize;
        if cur[pi] == NIL {
            misses += 1;
            if used == frames {
                while let Some(top) = heap.pop() {
                    let (when, v) = ((top >> 32) as u32, top as u32 as usize);
                    if cur[v] == when {
                        cur[v] = NIL;
                        break;
                    }
                }
            } else {
                used += 1;
            }
        }
        cur[pi] = nu;
        heap.push(u64::from(nu) << 32 | u64::from(p));
        if heap.len() > 4 * frames + 64 {
            // Drop stale entries so the heap stays O(frames).
            heap.retain(|&e| cur[e as u32 as usize] == (e >> 32) as u32);
        }
    }
    Stats { misses, ..Stats::default() }
}

fn random(refs: &[u32], n: usize, frames: usize) -> Stats {
    let mut rng = SimRng::new(RANDOM_SEED);
    let mut resident = vec![false; n];
    let mut ring: Vec<u32> = Vec::with_capacity(frames);
    let mut misses = 0u64;
    for &p in refs {
        if resident[p as usize] {
            continue;
        }
        misses += 1;
        resident[p as usize] = true;
        if ring.len() < frames {
            ring.push(p);
        } else {
            let slot = rng.below(frames as u64) as usize;
            resident[ring[slot] as usize] = false;
            ring[slot] = p;
        }
    }
    Stats { misses, ..Stats::default() }
}
