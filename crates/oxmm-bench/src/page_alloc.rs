//! The `page_alloc` bench: oxmm's page allocator (`alloc_pages` /
//! `free_pages`, pcp lists over the buddy lists) against two peers managing
//! the same number of 4 KiB frames:
//!
//! - `buddy_system_allocator-frame`: the `buddy_system_allocator` crate's
//!   `FrameAllocator` (a buddy system keeping each order's free blocks in a
//!   `BTreeSet` of frame numbers), given the frames with `add_frame`;
//! - `talc`: the `talc` general-purpose allocator over a host buffer of the
//!   same byte size, asked for `4096 << order` bytes aligned to that size.
//!
//! Two workloads, each generated once from a fixed seed as a list of
//! [`Op`]s that every contender replays ([`replay`]):
//!
//! - `page_alloc-order0`: order-0 only: tight alloc/free pairs, rounds of
//!   "allocate a batch, free it in shuffled order", and a random churn
//!   around a live set of a few thousand pages;
//! - `page_alloc-mixed`: orders 0..=3 plus order 9 (2 MiB, a THP), randomly
//!   interleaved allocations and frees of random live blocks with the live
//!   set bounded in blocks and in pages.
//!
//! Every workload frees all it allocates, so each allocator ends each run
//! where it started; the bench checks that at the end.

use std::alloc::Layout;
use std::io::Write;
use std::ptr::NonNull;

use buddy_system_allocator::FrameAllocator;
use oxmm::{Gfp, Kernel, Pfn};
use oxmm_sim::{Machine, MachineConfig};
use talc::{ErrOnOom, Span, Talc};

use crate::harness::{compare, Contender, Report, Rng, Settings};

/// Seed of the workload generator: every run replays the same sequences.
pub const SEED: u64 = 0x6f78_6d6d_7061_6765;

/// Bytes in a frame.
pub const FRAME_SIZE: usize = 4096;

/// Name of the order-0 comparison in the ratio lines.
pub const BENCH_ORDER0: &str = "page_alloc-order0";
/// Name of the mixed-order comparison in the ratio lines.
pub const BENCH_MIXED: &str = "page_alloc-mixed";
/// Peer name of `buddy_system_allocator`'s `FrameAllocator`.
pub const PEER_BUDDY: &str = "buddy_system_allocator-frame";
/// Peer name of `talc`.
pub const PEER_TALC: &str = "talc";

/// One step of a workload. `slot` names a live block: an `Alloc` fills
/// the slot with the block it gets, the matching `Free` returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Allocate `2^order` frames into `slot`.
    Alloc {
        /// Slot that receives the block.
        slot: u32,
        /// Block order.
        order: u8,
    },
    /// Free the block held in `slot`, allocated with the same `order`.
    Free {
        /// Slot holding the block.
        slot: u32,
        /// Block order, as allocated.
        order: u8,
    },
}

/// A generated operation sequence. Built only by the generators here, so
/// it always frees exactly what it allocated: every `Free` names a live
/// slot with its allocation order and nothing is live at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    ops: Vec<Op>,
    slots: usize,
    peak_pages: u64,
}

impl Workload {
    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
    /// Number of slots the sequence uses (the live-block table size).
    pub fn slots(&self) -> usize {
        self.slots
    }
    /// Most frames live at once.
    pub fn peak_pages(&self) -> u64 {
        self.peak_pages
    }
    /// Number of operations (allocations plus frees).
    pub fn len(&self) -> u64 {
        self.ops.len() as u64
    }
    /// True for a sequence without operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Builds a workload: hands out slots and keeps the live set so frees
/// always name a live block.
struct Gen {
    rng: Rng,
    ops: Vec<Op>,
    /// Live blocks: (slot, order).
    live: Vec<(u32, u8)>,
    free_slots: Vec<u32>,
    slots: u32,
    live_pages: u64,
    peak_pages: u64,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            rng: Rng::new(seed),
            ops: Vec::new(),
            live: Vec::new(),
            free_slots: Vec::new(),
            slots: 0,
            live_pages: 0,
            peak_pages: 0,
        }
    }

    fn alloc(&mut self, order: u8) {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slots += 1;
            self.slots - 1
        });
        self.ops.push(Op::Alloc { slot, order });
        self.live.push((slot, order));
        self.live_pages += 1 << order;
        self.peak_pages = self.peak_pages.max(self.live_pages);
    }

    /// Frees the live block at index `i` of the live list.
    fn free_at(&mut self, i: usize) {
        let (slot, order) = self.live.swap_remove(i);
        self.ops.push(Op::Free { slot, order });
        self.free_slots.push(slot);
        self.live_pages -= 1 << order;
    }

    fn free_random(&mut self) {
        if !self.live.is_empty() {
            let i = self.rng.below(self.live.len() as u64) as usize;
            self.free_at(i);
        }
    }

    /// Frees every live block, in random order.
    fn drain(&mut self) {
        while !self.live.is_empty() {
            self.free_random();
        }
    }

    fn finish(mut self) -> Workload {
        self.drain();
        Workload { ops: self.ops, slots: self.slots as usize, peak_pages: self.peak_pages }
    }
}

/// Shape of the order-0 workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order0Params {
    /// Allocations each freed right away.
    pub pairs: usize,
    /// Rounds of "allocate `batch` pages, free them in shuffled order".
    pub rounds: usize,
    /// Pages per round.
    pub batch: usize,
    /// Random allocate-or-free steps around a live set.
    pub churn_steps: usize,
    /// Live pages the churn fills to first and then wanders around
    /// (between half and one and a half times this).
    pub churn_live: usize,
}

impl Order0Params {
    /// The shape the bench runs: about 0.8 million operations.
    pub fn standard() -> Order0Params {
        Order0Params { pairs: 100_000, rounds: 100, batch: 1024, churn_steps: 200_000, churn_live: 4096 }
    }
}

/// Generates the order-0 workload from `seed`.
pub fn order0_workload(seed: u64, p: &Order0Params) -> Workload {
    let mut g = Gen::new(seed);
    for _ in 0..p.pairs {
        g.alloc(0);
        g.free_at(g.live.len() - 1);
    }
    for _ in 0..p.rounds {
        for _ in 0..p.batch {
            g.alloc(0);
        }
        g.drain();
    }
    let (low, high) = (p.churn_live / 2, p.churn_live + p.churn_live / 2);
    while g.live.len() < p.churn_live {
        g.alloc(0);
    }
    for _ in 0..p.churn_steps {
        let n = g.live.len();
        if n > low && (n >= high || g.rng.percent(50)) {
            g.free_random();
        } else {
            g.alloc(0);
        }
    }
    g.finish()
}

/// Shape of the mixed-order workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixedParams {
    /// Random allocate-or-free steps after the initial fill.
    pub steps: usize,
    /// Most blocks live at once; the fill goes to half of it.
    pub max_live_blocks: usize,
    /// Most frames live at once.
    pub max_live_pages: u64,
}

impl MixedParams {
    /// The shape the bench runs: about 0.4 million operations, at most
    /// 2048 blocks and 128 MiB live.
    pub fn standard() -> MixedParams {
        MixedParams { steps: 400_000, max_live_blocks: 2048, max_live_pages: 32 * 1024 }
    }
}

/// Orders of the mixed workload with their weights in percent.
pub const MIXED_ORDERS: [(u8, u64); 5] = [(0, 55), (1, 15), (2, 12), (3, 13), (9, 5)];

fn pick_order(rng: &mut Rng) -> u8 {
    let mut r = rng.below(100);
    for (order, weight) in MIXED_ORDERS {
        if r < weight {
            return order;
        }
        r -= weight;
    }
    0
}

/// Generates the mixed-order workload from `seed`.
pub fn mixed_workload(seed: u64, p: &MixedParams) -> Workload {
    let mut g = Gen::new(seed);
    let fits =
        |g: &Gen, order: u8| g.live.len() < p.max_live_blocks && g.live_pages + (1u64 << order) <= p.max_live_pages;
    let mut tries = 0;
    while g.live.len() < p.max_live_blocks / 2 && tries < 4 * p.max_live_blocks {
        tries += 1;
        let order = pick_order(&mut g.rng);
        if fits(&g, order) {
            g.alloc(order);
        }
    }
    for _ in 0..p.steps {
        let order = pick_order(&mut g.rng);
        let want_alloc = g.live.is_empty() || g.rng.percent(50);
        if want_alloc && fits(&g, order) {
            g.alloc(order);
        } else {
            g.free_random();
        }
    }
    g.finish()
}

/// A page allocator as the workloads see it: frame numbers in, frame
/// numbers out.
pub trait PageAllocator {
    /// Allocates `2^order` contiguous frames aligned to their size; the
    /// first frame's number, or `None` when out of memory.
    fn alloc(&mut self, order: u32) -> Option<u64>;
    /// Frees a block this allocator returned for the same order.
    fn free(&mut self, frame: u64, order: u32);
}

/// Replays a workload on an allocator; `slots` is the live-block table
/// (at least [`Workload::slots`] long). Returns the wrapping sum of the
/// frame numbers handed out, for [`std::hint::black_box`].
pub fn replay<A: PageAllocator>(a: &mut A, w: &Workload, slots: &mut [u64]) -> Result<u64, String> {
    if slots.len() < w.slots {
        return Err(format!("slot table has {} entries, the workload needs {}", slots.len(), w.slots));
    }
    let mut sum = 0u64;
    for (i, op) in w.ops.iter().enumerate() {
        match *op {
            Op::Alloc { slot, order } => {
                let Some(frame) = a.alloc(u32::from(order)) else {
                    return Err(format!("out of memory at operation {i} (order {order})"));
                };
                sum = sum.wrapping_add(frame);
                slots[slot as usize] = frame;
            }
            Op::Free { slot, order } => a.free(slots[slot as usize], u32::from(order)),
        }
    }
    Ok(sum)
}

/// oxmm's allocator on the running CPU of a booted machine.
pub struct OxmmPages<'k> {
    kernel: &'k Kernel,
    gfp: Gfp,
}

impl<'k> OxmmPages<'k> {
    /// Allocates from `kernel` with `GFP_KERNEL`.
    pub fn new(kernel: &'k Kernel) -> OxmmPages<'k> {
        OxmmPages { kernel, gfp: Gfp::GFP_KERNEL }
    }
    /// Free frames: on the buddy lists plus on per-cpu lists.
    pub fn free_frames(&self) -> u64 {
        self.kernel.nr_free_pages() + self.kernel.pcp_pages()
    }
}

impl PageAllocator for OxmmPages<'_> {
    #[inline]
    fn alloc(&mut self, order: u32) -> Option<u64> {
        self.kernel.alloc_pages(self.gfp, order).map(|p| p.0)
    }
    #[inline]
    fn free(&mut self, frame: u64, order: u32) {
        self.kernel.free_pages(Pfn(frame), order);
    }
}

/// `buddy_system_allocator`'s `FrameAllocator` (its default of 32 orders)
/// over `frames` frames numbered from `first`.
pub struct BuddyFrames {
    inner: FrameAllocator,
    frames: u64,
}

impl BuddyFrames {
    /// Frame number of the first frame handed to the allocator: 4 GiB in,
    /// aligned far above any block order, so the initial blocks are large.
    pub const FIRST_FRAME: u64 = 1 << 20;

    /// An allocator owning frames `FIRST_FRAME..FIRST_FRAME + frames`.
    pub fn new(frames: u64) -> Result<BuddyFrames, String> {
        let start = usize::try_from(Self::FIRST_FRAME).map_err(|e| e.to_string())?;
        let end = usize::try_from(Self::FIRST_FRAME + frames).map_err(|e| e.to_string())?;
        let mut inner = FrameAllocator::new();
        inner.add_frame(start, end);
        Ok(BuddyFrames { inner, frames })
    }

    /// Frames given to the allocator.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Counts the free frames by allocating single frames until none is
    /// left, then frees them all again.
    pub fn count_free(&mut self) -> u64 {
        let mut got = Vec::new();
        while let Some(f) = self.inner.alloc(1) {
            got.push(f);
        }
        let n = got.len() as u64;
        for f in got {
            self.inner.dealloc(f, 1);
        }
        n
    }
}

impl PageAllocator for BuddyFrames {
    #[inline]
    fn alloc(&mut self, order: u32) -> Option<u64> {
        self.inner.alloc(1 << order).map(|f| f as u64)
    }
    #[inline]
    fn free(&mut self, frame: u64, order: u32) {
        self.inner.dealloc(frame as usize, 1 << order);
    }
}

/// One frame of the host buffer talc manages; only its size and
/// alignment matter (the bytes are never read as values).
#[repr(C, align(4096))]
struct HostFrame([u8; FRAME_SIZE]);

/// `talc` over a host buffer of `frames * 4096` bytes. Frame numbers are
/// offsets into the buffer in frames.
///
/// It records the order of each live block (one byte per frame) so that a
/// free of a block it did not hand out is ignored instead of corrupting
/// the heap: that keeps [`PageAllocator::free`] safe to call with any
/// number, at the price of a byte load and store per operation.
pub struct TalcFrames {
    // Declared first so it is dropped before the buffer it points into.
    talc: Talc<ErrOnOom>,
    base: *mut u8,
    /// `order + 1` at the first frame of each live block, else 0.
    live: Vec<u8>,
    /// Largest single allocation the empty heap can satisfy.
    whole: Layout,
    frames: u64,
    /// Never read as a `Vec`: only its buffer is used, through `base`.
    _arena: Vec<HostFrame>,
}

impl TalcFrames {
    /// A talc heap over a fresh host buffer of `frames` frames.
    pub fn new(frames: u64) -> Result<TalcFrames, String> {
        let n = usize::try_from(frames).map_err(|e| e.to_string())?;
        let bytes = n.checked_mul(FRAME_SIZE).ok_or("talc arena size overflows")?;
        let mut arena: Vec<HostFrame> = Vec::new();
        arena.try_reserve_exact(n).map_err(|e| format!("cannot reserve {bytes} bytes for talc: {e}"))?;
        let base = arena.as_mut_ptr().cast::<u8>();
        let mut talc = Talc::new(ErrOnOom);
        let heap = claim(&mut talc, Span::from_base_size(base, bytes))?;
        let mut t = TalcFrames { talc, base, live: vec![0; n], whole: Layout::new::<u8>(), frames, _arena: arena };
        // The metadata talc keeps at the bottom of the heap takes about a
        // kilobyte; find the largest block that still fits.
        let mut size = heap.size();
        loop {
            if size < FRAME_SIZE {
                return Err(format!("talc could not allocate most of its {bytes}-byte heap"));
            }
            let layout = Layout::from_size_align(size, 8).map_err(|e| e.to_string())?;
            if let Some(p) = t.raw_alloc(layout) {
                t.raw_free(p, layout);
                t.whole = layout;
                break;
            }
            size -= 64;
        }
        Ok(t)
    }

    /// Frames of host memory the heap covers.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// True when the heap is back in one piece: a block as large as the
    /// empty heap could give still fits.
    pub fn is_whole(&mut self) -> bool {
        let layout = self.whole;
        match self.raw_alloc(layout) {
            Some(p) => {
                self.raw_free(p, layout);
                true
            }
            None => false,
        }
    }

    fn raw_alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: every layout used here is at least a frame or byte long,
        // never zero-sized, which is all `malloc` requires.
        unsafe { self.talc.malloc(layout) }.ok()
    }

    fn raw_free(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: callers pass a pointer `raw_alloc` returned for this same
        // layout and not freed since: `is_whole`/`new` free right after
        // allocating; `PageAllocator::free` checks the `live` table first.
        unsafe { self.talc.free(ptr, layout) }
    }

    fn layout(order: u32) -> Option<Layout> {
        let size = FRAME_SIZE.checked_shl(order)?;
        Layout::from_size_align(size, size).ok()
    }
}

/// Hands the buffer to talc.
fn claim(talc: &mut Talc<ErrOnOom>, span: Span) -> Result<Span, String> {
    // SAFETY: the span is the whole buffer of a `Vec` that `TalcFrames`
    // owns and keeps for as long as the `Talc`; nothing else reads or
    // writes it, and an allocation never contains the null address.
    unsafe { talc.claim(span) }.map_err(|()| "talc refused its heap".to_string())
}

impl PageAllocator for TalcFrames {
    #[inline]
    fn alloc(&mut self, order: u32) -> Option<u64> {
        let layout = Self::layout(order)?;
        let p = self.raw_alloc(layout)?;
        let frame = (p.as_ptr() as usize - self.base as usize) / FRAME_SIZE;
        // `order + 1` fits a byte: `layout` failed above for large orders.
        *self.live.get_mut(frame)? = order as u8 + 1;
        Some(frame as u64)
    }
    #[inline]
    fn free(&mut self, frame: u64, order: u32) {
        let Some(layout) = Self::layout(order) else { return };
        let Some(mark) = self.live.get_mut(frame as usize) else { return };
        if u32::from(*mark) != order + 1 {
            return;
        }
        *mark = 0;
        let Some(p) = NonNull::new(self.base.wrapping_add(frame as usize * FRAME_SIZE)) else { return };
        self.raw_free(p, layout);
    }
}

/// Everything that sizes a `page_alloc` run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchConfig {
    /// RAM of the simulated machine.
    pub mem_bytes: u64,
    /// CPUs of the simulated machine (the bench runs on CPU 0).
    pub cpus: usize,
    /// Seed of the workloads and of the machine.
    pub seed: u64,
    /// Order-0 workload shape.
    pub order0: Order0Params,
    /// Mixed workload shape.
    pub mixed: MixedParams,
    /// Sampling.
    pub settings: Settings,
}

impl BenchConfig {
    /// The configuration `oxmm bench page_alloc` runs: a 1 GiB machine.
    pub fn standard(quick: bool) -> BenchConfig {
        BenchConfig {
            mem_bytes: 1 << 30,
            cpus: 2,
            seed: SEED,
            order0: Order0Params::standard(),
            mixed: MixedParams::standard(),
            settings: Settings { quick },
        }
    }
}

/// Runs the bench with the standard configuration.
pub fn run(quick: bool, out: &mut dyn Write) -> Result<(), String> {
    bench(&BenchConfig::standard(quick), out)
}

/// Runs the bench: boots the machine, builds the peers over as many
/// frames as oxmm has free, times both workloads, checks every allocator
/// ends with all its frames free, and writes the report.
pub fn bench(cfg: &BenchConfig, out: &mut dyn Write) -> Result<(), String> {
    let mut report = Report::new();
    let machine = Machine::boot(&MachineConfig::single(cfg.mem_bytes, cfg.cpus), cfg.seed)
        .map_err(|e| format!("cannot boot the bench machine: {e}"))?;
    let mut oxmm = OxmmPages::new(&machine.kernel);
    let frames = oxmm.free_frames();
    report.line(
        out,
        &format!(
            "page_alloc: {} MiB machine, {} free frames; peers manage the same {} frames ({} MiB)",
            cfg.mem_bytes >> 20,
            frames,
            frames,
            (frames * FRAME_SIZE as u64) >> 20
        ),
    )?;
    let mut buddy = BuddyFrames::new(frames)?;
    let mut talc = TalcFrames::new(frames)?;

    let workloads = [
        (BENCH_ORDER0, order0_workload(cfg.seed, &cfg.order0)),
        (BENCH_MIXED, mixed_workload(cfg.seed ^ 1, &cfg.mixed)),
    ];
    for (name, w) in &workloads {
        report
            .line(out, &format!("{name}: {} ops, {} slots, peak {} frames live", w.len(), w.slots(), w.peak_pages()))?;
    }
    for (name, w) in &workloads {
        let mut s = [vec![0u64; w.slots()], vec![0u64; w.slots()], vec![0u64; w.slots()]];
        let [s_ox, s_bu, s_ta] = &mut s;
        let mut contenders = [
            Contender::new("oxmm", || replay(&mut oxmm, w, s_ox)),
            Contender::new(PEER_BUDDY, || replay(&mut buddy, w, s_bu)),
            Contender::new(PEER_TALC, || replay(&mut talc, w, s_ta)),
        ];
        let c = compare(name, w.len(), cfg.settings, &mut contenders)?;
        report.add(out, &c)?;
    }

    let after = oxmm.free_frames();
    if after != frames {
        return Err(format!("oxmm ends with {after} free frames, started with {frames}"));
    }
    let bad = machine.kernel.bad_pages.load(std::sync::atomic::Ordering::Relaxed);
    if bad != 0 {
        return Err(format!("oxmm reported {bad} bad pages"));
    }
    let left = buddy.count_free();
    if left != buddy.frames() {
        return Err(format!("{PEER_BUDDY} ends with {left} free frames of {}", buddy.frames()));
    }
    if !talc.is_whole() {
        return Err(format!("{PEER_TALC} did not get all {} frames back", talc.frames()));
    }
    report.finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn small_order0() -> Order0Params {
        Order0Params { pairs: 500, rounds: 4, batch: 300, churn_steps: 3000, churn_live: 200 }
    }

    fn small_mixed() -> MixedParams {
        MixedParams { steps: 3000, max_live_blocks: 128, max_live_pages: 4096 }
    }

    /// Walks a workload as a model: a free always names a live slot with
    /// its allocation order, allocations go to empty slots, and nothing
    /// is live at the end. Returns (allocations, frees, pages allocated).
    fn check_balanced(w: &Workload) -> (usize, usize, u64) {
        let mut live: HashMap<u32, u8> = HashMap::new();
        let (mut allocs, mut frees, mut pages) = (0, 0, 0);
        for op in w.ops() {
            match *op {
                Op::Alloc { slot, order } => {
                    assert!((slot as usize) < w.slots());
                    assert!(live.insert(slot, order).is_none(), "slot {slot} reused while live");
                    allocs += 1;
                    pages += 1u64 << order;
                }
                Op::Free { slot, order } => {
                    assert_eq!(live.remove(&slot), Some(order), "free of slot {slot} does not match");
                    frees += 1;
                }
            }
        }
        assert!(live.is_empty(), "{} blocks left live", live.len());
        (allocs, frees, pages)
    }

    #[test]
    fn workloads_free_everything_they_allocate() {
        for w in [order0_workload(SEED, &small_order0()), mixed_workload(SEED, &small_mixed())] {
            let (allocs, frees, _) = check_balanced(&w);
            assert_eq!(allocs, frees);
            assert_eq!(w.len(), (allocs + frees) as u64);
        }
        let std0 = order0_workload(SEED, &Order0Params::standard());
        check_balanced(&std0);
        let stdm = mixed_workload(SEED, &MixedParams::standard());
        check_balanced(&stdm);
        assert!(stdm.peak_pages() <= MixedParams::standard().max_live_pages);
    }

    #[test]
    fn workloads_are_deterministic_and_shaped() {
        let a = mixed_workload(SEED, &small_mixed());
        assert_eq!(a, mixed_workload(SEED, &small_mixed()));
        assert_ne!(a, mixed_workload(SEED + 1, &small_mixed()));
        let mut orders = [0usize; 10];
        for op in a.ops() {
            if let Op::Alloc { order, .. } = *op {
                orders[order as usize] += 1;
            }
        }
        for (order, _) in MIXED_ORDERS {
            assert!(orders[order as usize] > 0, "order {order} never allocated");
        }
        assert!(a.peak_pages() <= small_mixed().max_live_pages);
        let z = order0_workload(SEED, &small_order0());
        assert!(z.ops().iter().all(|op| matches!(op, Op::Alloc { order: 0, .. } | Op::Free { order: 0, .. })));
        assert!(z.peak_pages() >= small_order0().churn_live as u64);
    }

    fn replay_checked<A: PageAllocator>(a: &mut A, w: &Workload) {
        let mut slots = vec![0; w.slots()];
        replay(a, w, &mut slots).unwrap();
        assert!(replay(a, w, &mut slots[..w.slots() - 1]).is_err(), "short slot table accepted");
    }

    #[test]
    fn every_allocator_returns_to_full_free_state() {
        let machine = Machine::boot(&MachineConfig::single(256 << 20, 1), 1).unwrap();
        let mut oxmm = OxmmPages::new(&machine.kernel);
        let frames = oxmm.free_frames();
        let mut buddy = BuddyFrames::new(frames).unwrap();
        let mut talc = TalcFrames::new(frames).unwrap();
        assert_eq!(buddy.count_free(), frames);
        assert!(talc.is_whole());
        for w in [order0_workload(SEED, &small_order0()), mixed_workload(SEED, &small_mixed())] {
            replay_checked(&mut oxmm, &w);
            replay_checked(&mut buddy, &w);
            replay_checked(&mut talc, &w);
            assert_eq!(oxmm.free_frames(), frames);
            assert_eq!(buddy.count_free(), frames);
            assert!(talc.is_whole());
        }
        assert_eq!(machine.kernel.bad_pages.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn leaks_are_detected() {
        let mut buddy = BuddyFrames::new(4096).unwrap();
        let mut talc = TalcFrames::new(4096).unwrap();
        let b = buddy.alloc(0).unwrap();
        let t = talc.alloc(0).unwrap();
        assert_eq!(buddy.count_free(), 4095);
        assert!(!talc.is_whole());
        // A free of a block talc never handed out is ignored, not obeyed.
        talc.free(t + 1, 0);
        talc.free(t, 1);
        assert!(!talc.is_whole());
        buddy.free(b, 0);
        talc.free(t, 0);
        assert_eq!(buddy.count_free(), 4096);
        assert!(talc.is_whole());
    }

    #[test]
    fn peers_hand_out_aligned_blocks() {
        let mut buddy = BuddyFrames::new(8192).unwrap();
        let mut talc = TalcFrames::new(8192).unwrap();
        for order in [0, 1, 3, 9] {
            let b = buddy.alloc(order).unwrap();
            let t = talc.alloc(order).unwrap();
            assert_eq!(b % (1 << order), 0);
            assert_eq!((talc.base as usize / FRAME_SIZE + t as usize) % (1 << order), 0);
            buddy.free(b, order);
            talc.free(t, order);
        }
        assert!(talc.is_whole());
    }

    #[test]
    fn small_bench_prints_all_ratio_lines() {
        let cfg = BenchConfig {
            mem_bytes: 256 << 20,
            cpus: 1,
            seed: SEED,
            order0: small_order0(),
            mixed: small_mixed(),
            settings: Settings { quick: true },
        };
        let mut out = Vec::new();
        bench(&cfg, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let ratios: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() == 4 && f[0] == "ratio" && f[3].parse::<f64>().is_ok()).then(|| (f[1], f[2]))
            })
            .collect();
        assert_eq!(
            ratios,
            [
                (BENCH_ORDER0, PEER_BUDDY),
                (BENCH_ORDER0, PEER_TALC),
                (BENCH_MIXED, PEER_BUDDY),
                (BENCH_MIXED, PEER_TALC)
            ]
        );
        assert!(BENCH_ORDER0.contains("page_alloc") && BENCH_ORDER0.contains("order0"));
        assert!(PEER_BUDDY.contains("buddy") && PEER_BUDDY.contains("frame"));
        let lines: Vec<&str> = text.lines().collect();
        let last_readable = lines.iter().rposition(|l| !l.starts_with("ratio ")).unwrap();
        let first_ratio = lines.iter().position(|l| l.starts_with("ratio ")).unwrap();
        assert_eq!(last_readable + 1, first_ratio);
    }
}
