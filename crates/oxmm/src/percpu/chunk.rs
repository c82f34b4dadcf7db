//! One chunk's allocation map and the chunk lists (the bitmap half of
//! Linux's `mm/percpu.c`): allocation and boundary bitmaps at
//! `PCPU_MIN_ALLOC_SIZE` granularity, the largest-free-run hint, populated
//! pages, and the slots chunks are kept on by free space. Everything here
//! runs under `pcpu_lock`.

use alloc::vec;
use alloc::vec::Vec;

use super::*;

/// One chunk (`struct pcpu_chunk`). Offsets are in bits of
/// [`PCPU_MIN_ALLOC_SIZE`] unless named bytes.
pub(super) struct Chunk {
    pub(super) kind: ChunkKind,
    /// Address of offset 0 in the unit-0 address space.
    pub(super) base_addr: u64,
    /// Pages per unit.
    pub(super) nr_pages: usize,
    /// Bytes hidden at the start and end of the region (first chunks).
    pub(super) start_offset: u64,
    pub(super) end_offset: u64,
    pub(super) alloc_map: Vec<u64>,
    /// Set at the first bit of every area and at the bit after its end.
    pub(super) bound_map: Vec<u64>,
    /// Allocated bits in each page (a page is empty at 0).
    pub(super) page_used: Vec<u16>,
    pub(super) populated: Vec<u64>,
    pub(super) nr_populated: usize,
    pub(super) nr_empty_pop_pages: usize,
    pub(super) free_bytes: u64,
    /// The largest free run and where it starts (`chunk_md.contig_hint`).
    pub(super) contig_hint: usize,
    pub(super) contig_hint_start: usize,
    pub(super) first_free: usize,
    pub(super) isolated: bool,
    pub(super) slot: Option<usize>,
}

/// Bit helpers over `u64` words, lowest bit first.
pub(super) fn test_bit(map: &[u64], i: usize) -> bool {
    map[i / 64] & (1 << (i % 64)) != 0
}

pub(super) fn set_bits(map: &mut [u64], start: usize, n: usize) {
    for_word_ranges(start, n, |w, mask| map[w] |= mask);
}

pub(super) fn clear_bits(map: &mut [u64], start: usize, n: usize) {
    for_word_ranges(start, n, |w, mask| map[w] &= !mask);
}

pub(super) fn for_word_ranges(mut start: usize, n: usize, mut f: impl FnMut(usize, u64)) {
    let end = start + n;
    while start < end {
        let b = start % 64;
        let len = (64 - b).min(end - start);
        let mask = if len == 64 { u64::MAX } else { ((1u64 << len) - 1) << b };
        f(start / 64, mask);
        start += len;
    }
}

/// First bit at or after `start` that is `set` (or clear), or `size`.
pub(super) fn find_next(map: &[u64], size: usize, start: usize, set: bool) -> usize {
    if start >= size {
        return size;
    }
    let word = |w: usize| if set { map[w] } else { !map[w] };
    let mut w = start / 64;
    let mut cur = word(w) & (u64::MAX << (start % 64));
    loop {
        if cur != 0 {
            return (w * 64 + cur.trailing_zeros() as usize).min(size);
        }
        w += 1;
        if w * 64 >= size {
            return size;
        }
        cur = word(w);
    }
}

/// Last set bit below `end`.
pub(super) fn find_prev_set(map: &[u64], end: usize) -> Option<usize> {
    let last = end.checked_sub(1)?;
    let mut w = last / 64;
    let mut cur = map[w] & (u64::MAX >> (63 - last % 64));
    loop {
        if cur != 0 {
            return Some(w * 64 + 63 - cur.leading_zeros() as usize);
        }
        w = w.checked_sub(1)?;
        cur = map[w];
    }
}

/// Runs `[s, e)` of bits that are `set` (or clear) inside `[start, end)`.
pub(super) fn bit_ranges(map: &[u64], start: usize, end: usize, set: bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = find_next(map, end, start, set);
    while s < end {
        let e = find_next(map, end, s + 1, !set);
        out.push((s, e));
        s = find_next(map, end, e, set);
    }
    out
}

/// `fls`: one plus the index of the highest set bit, 0 for 0.
pub(super) fn fls(x: u64) -> u32 {
    64 - x.leading_zeros()
}

impl Chunk {
    pub(super) fn new(kind: ChunkKind, base_addr: u64, nr_pages: usize) -> Chunk {
        let region_bits = nr_pages * BLOCK_BITS;
        Chunk {
            kind,
            base_addr,
            nr_pages,
            start_offset: 0,
            end_offset: 0,
            alloc_map: vec![0; region_bits.div_ceil(64)],
            bound_map: vec![0; (region_bits + 1).div_ceil(64)],
            page_used: vec![0; nr_pages],
            populated: vec![0; nr_pages.div_ceil(64)],
            nr_populated: 0,
            nr_empty_pop_pages: 0,
            free_bytes: (nr_pages as u64) << PAGE_SHIFT,
            contig_hint: region_bits,
            contig_hint_start: 0,
            first_free: 0,
            isolated: false,
            slot: None,
        }
    }

    pub(super) fn region_bits(&self) -> usize {
        self.nr_pages * BLOCK_BITS
    }

    pub(super) fn immutable(&self) -> bool {
        !matches!(self.kind, ChunkKind::Vm { .. })
    }

    pub(super) fn is_populated(&self, page: usize) -> bool {
        test_bit(&self.populated, page)
    }

    /// Takes in a free run `[start, end)` as a contig-hint candidate
    /// (`pcpu_block_update` on the chunk's hint): a longer run wins, an
    /// equal one wins when its start is better aligned.
    pub(super) fn consider_run(&mut self, start: usize, end: usize) {
        let contig = end - start;
        if contig == 0 {
            return;
        }
        if contig > self.contig_hint {
            self.contig_hint = contig;
            self.contig_hint_start = start;
        } else if contig == self.contig_hint
            && self.contig_hint_start != 0
            && (start == 0 || start.trailing_zeros() > self.contig_hint_start.trailing_zeros())
        {
            self.contig_hint_start = start;
        }
    }

    /// Recomputes the largest free run by a scan (`pcpu_chunk_refresh_hint`).
    pub(super) fn refresh_hint(&mut self) {
        self.contig_hint = 0;
        self.contig_hint_start = 0;
        let size = self.region_bits();
        let mut pos = self.first_free;
        loop {
            let s = find_next(&self.alloc_map, size, pos, false);
            if s >= size {
                break;
            }
            let e = find_next(&self.alloc_map, size, s, true);
            self.consider_run(s, e);
            pos = e;
        }
    }

    /// Marks `[bit_off, bit_off + bits)` allocated in the maps and the page
    /// counts and keeps the hint exact. Returns how many pages stopped being
    /// empty (Linux's `nr_empty_pages` of `pcpu_block_update_hint_alloc`).
    pub(super) fn mark_allocated(&mut self, bit_off: usize, bits: usize) -> usize {
        set_bits(&mut self.alloc_map, bit_off, bits);
        let mut newly_used = 0;
        let end = bit_off + bits;
        for p in bit_off / BLOCK_BITS..=(end - 1) / BLOCK_BITS {
            let lo = bit_off.max(p * BLOCK_BITS);
            let hi = end.min((p + 1) * BLOCK_BITS);
            if self.page_used[p] == 0 {
                newly_used += 1;
            }
            self.page_used[p] += (hi - lo) as u16;
        }
        // Only an allocation that bites into the largest run can change it.
        if bit_off < self.contig_hint_start + self.contig_hint && self.contig_hint_start < end {
            self.refresh_hint();
        }
        newly_used
    }

    /// Clears `[bit_off, bit_off + bits)` and merges the freed run with its
    /// free neighbours into the hint. Returns how many pages became empty.
    pub(super) fn mark_free(&mut self, bit_off: usize, bits: usize) -> usize {
        clear_bits(&mut self.alloc_map, bit_off, bits);
        let mut newly_empty = 0;
        let end = bit_off + bits;
        for p in bit_off / BLOCK_BITS..=(end - 1) / BLOCK_BITS {
            let lo = bit_off.max(p * BLOCK_BITS);
            let hi = end.min((p + 1) * BLOCK_BITS);
            self.page_used[p] -= (hi - lo) as u16;
            if self.page_used[p] == 0 {
                newly_empty += 1;
            }
        }
        let start = find_prev_set(&self.alloc_map, bit_off).map_or(0, |b| b + 1);
        let stop = find_next(&self.alloc_map, self.region_bits(), end, true);
        self.consider_run(start, stop);
        newly_empty
    }

    /// First fit of `bits` aligned to `align` bits, from the first free bit
    /// (`pcpu_find_block_fit` + `pcpu_find_zero_area`); with `pop_only`,
    /// only inside populated pages (atomic allocations).
    pub(super) fn find_fit(&self, bits: usize, align: usize, pop_only: bool) -> Option<usize> {
        if bits > self.contig_hint {
            return None;
        }
        let size = self.region_bits();
        let mut start = self.first_free;
        loop {
            let index = align_up(find_next(&self.alloc_map, size, start, false) as u64, align as u64) as usize;
            let end = index.checked_add(bits)?;
            if end > size {
                return None;
            }
            let busy = find_next(&self.alloc_map, end, index, true);
            if busy < end {
                start = busy + 1;
                continue;
            }
            if pop_only {
                // pcpu_is_populated: skip past an unpopulated run of pages.
                let (ps, pe) = (index / BLOCK_BITS, (end - 1) / BLOCK_BITS + 1);
                let hole = find_next(&self.populated, pe, ps, false);
                if hole < pe {
                    start = find_next(&self.populated, pe, hole + 1, true) * BLOCK_BITS;
                    continue;
                }
            }
            return Some(index);
        }
    }

    /// The area that starts at `bit_off`, in bits, if one does.
    pub(super) fn area_at(&self, bit_off: usize) -> Option<usize> {
        let size = self.region_bits();
        if bit_off >= size || !test_bit(&self.alloc_map, bit_off) || !test_bit(&self.bound_map, bit_off) {
            return None;
        }
        Some(find_next(&self.bound_map, size + 1, bit_off + 1, true) - bit_off)
    }

    pub(super) fn stats(&self) -> ChunkStats {
        ChunkStats {
            base_addr: VirtAddr(self.base_addr),
            first: self.kind == ChunkKind::First,
            reserved: self.kind == ChunkKind::Reserved,
            nr_pages: self.nr_pages,
            nr_populated: self.nr_populated,
            nr_empty_pop_pages: self.nr_empty_pop_pages,
            free_bytes: self.free_bytes,
            contig_bytes: (self.contig_hint as u64) << PCPU_MIN_ALLOC_SHIFT,
            isolated: self.isolated,
            slot: self.slot,
        }
    }
}

/// Everything `pcpu_lock` guards.
pub(super) struct PcpuInner {
    pub(super) chunks: Vec<Option<Chunk>>,
    /// Chunk ids by slot (`pcpu_chunk_lists`), front first.
    pub(super) slots: Vec<Vec<usize>>,
    pub(super) reserved: Option<usize>,
    pub(super) first: usize,
    /// `pcpu_nr_empty_pop_pages`.
    pub(super) nr_empty_pop_pages: i64,
    /// The balance work is scheduled.
    pub(super) balance_pending: bool,
    /// An atomic allocation failed since the last balance.
    pub(super) atomic_alloc_failed: bool,
    pub(super) warn_limit: u32,
    pub(super) counters: PcpuCounters,
}

impl PcpuInner {
    pub(super) fn chunk(&self, id: usize) -> &Chunk {
        self.chunks[id].as_ref().expect("live chunk id")
    }

    pub(super) fn chunk_mut(&mut self, id: usize) -> &mut Chunk {
        self.chunks[id].as_mut().expect("live chunk id")
    }

    pub(super) fn insert(&mut self, c: Chunk) -> usize {
        match self.chunks.iter().position(Option::is_none) {
            Some(id) => {
                self.chunks[id] = Some(c);
                id
            }
            None => {
                self.chunks.push(Some(c));
                self.chunks.len() - 1
            }
        }
    }

    /// Takes a chunk off its slot list.
    pub(super) fn unlink(&mut self, id: usize) {
        if let Some(s) = self.chunk_mut(id).slot.take() {
            self.slots[s].retain(|&x| x != id);
        }
    }

    /// `__pcpu_chunk_move`: to the front or the back of `slot`.
    pub(super) fn move_chunk(&mut self, id: usize, slot: usize, front: bool) {
        if Some(id) == self.reserved {
            return;
        }
        self.unlink(id);
        if front {
            self.slots[slot].insert(0, id);
        } else {
            self.slots[slot].push(id);
        }
        self.chunk_mut(id).slot = Some(slot);
    }

    /// `pcpu_update_empty_pages`.
    pub(super) fn update_empty_pages(&mut self, id: usize, nr: i64) {
        let c = self.chunk_mut(id);
        c.nr_empty_pop_pages = (c.nr_empty_pop_pages as i64 + nr) as usize;
        let counted = !c.isolated;
        if Some(id) != self.reserved && counted {
            self.nr_empty_pop_pages += nr;
        }
    }

    pub(super) fn isolate(&mut self, st: &PercpuState, id: usize) {
        let c = self.chunk_mut(id);
        if !c.isolated {
            c.isolated = true;
            let n = c.nr_empty_pop_pages as i64;
            self.nr_empty_pop_pages -= n;
        }
        self.move_chunk(id, st.to_depopulate_slot, true);
    }

    pub(super) fn reintegrate(&mut self, st: &PercpuState, id: usize) {
        let c = self.chunk_mut(id);
        if c.isolated {
            c.isolated = false;
            let n = c.nr_empty_pop_pages as i64;
            self.nr_empty_pop_pages += n;
            self.relocate(st, id, None);
        }
    }

    /// `pcpu_chunk_relocate`: moves a chunk to the slot its largest free
    /// run calls for; `oslot` is where it was (`None`: nowhere yet).
    pub(super) fn relocate(&mut self, st: &PercpuState, id: usize, oslot: Option<usize>) {
        let c = self.chunk(id);
        if c.isolated {
            return;
        }
        let nslot = st.chunk_slot(c);
        if oslot != Some(nslot) {
            let front = oslot.is_none_or(|o| o < nslot);
            self.move_chunk(id, nslot, front);
        }
    }

    /// `pcpu_alloc_area`: takes `bits` at `bit_off`; returns the byte offset.
    pub(super) fn alloc_area(&mut self, st: &PercpuState, id: usize, bits: usize, bit_off: usize) -> u64 {
        let oslot = st.chunk_slot(self.chunk(id));
        let c = self.chunk_mut(id);
        let consumed = c.mark_allocated(bit_off, bits);
        set_bits(&mut c.bound_map, bit_off, 1);
        clear_bits(&mut c.bound_map, bit_off + 1, bits - 1);
        set_bits(&mut c.bound_map, bit_off + bits, 1);
        c.free_bytes -= (bits as u64) << PCPU_MIN_ALLOC_SHIFT;
        if bit_off == c.first_free {
            c.first_free = find_next(&c.alloc_map, c.region_bits(), bit_off + bits, false);
        }
        self.update_empty_pages(id, -(consumed as i64));
        if self.chunk(id).slot.is_some() {
            self.relocate(st, id, Some(oslot));
        }
        (bit_off as u64) << PCPU_MIN_ALLOC_SHIFT
    }

    /// `pcpu_free_area`: frees the area at byte offset `off`, returning its size.
    pub(super) fn free_area(&mut self, st: &PercpuState, id: usize, off: u64) -> u64 {
        let oslot = st.chunk_slot(self.chunk(id));
        let bit_off = (off >> PCPU_MIN_ALLOC_SHIFT) as usize;
        let c = self.chunk_mut(id);
        let end = find_next(&c.bound_map, c.region_bits() + 1, bit_off + 1, true);
        let bits = end - bit_off;
        let emptied = c.mark_free(bit_off, bits);
        let freed = (bits as u64) << PCPU_MIN_ALLOC_SHIFT;
        c.free_bytes += freed;
        c.first_free = c.first_free.min(bit_off);
        self.update_empty_pages(id, emptied as i64);
        if self.chunk(id).slot.is_some() {
            self.relocate(st, id, Some(oslot));
        }
        self.counters.nr_dealloc += 1;
        self.counters.nr_cur_alloc = self.counters.nr_cur_alloc.saturating_sub(1);
        freed
    }

    /// `pcpu_chunk_populated`.
    pub(super) fn chunk_populated(&mut self, st: &PercpuState, id: usize, rs: usize, re: usize) {
        let c = self.chunk_mut(id);
        set_bits(&mut c.populated, rs, re - rs);
        c.nr_populated += re - rs;
        st.nr_populated.fetch_add((re - rs) as u64, Relaxed);
        self.update_empty_pages(id, (re - rs) as i64);
    }

    /// `pcpu_chunk_depopulated`.
    pub(super) fn chunk_depopulated(&mut self, st: &PercpuState, id: usize, rs: usize, re: usize) {
        let c = self.chunk_mut(id);
        clear_bits(&mut c.populated, rs, re - rs);
        c.nr_populated -= re - rs;
        st.nr_populated.fetch_sub((re - rs) as u64, Relaxed);
        self.update_empty_pages(id, -((re - rs) as i64));
    }

    /// `pcpu_should_reclaim_chunk`: enough empty populated pages here, and
    /// enough elsewhere, to give this chunk's back.
    pub(super) fn should_reclaim(&self, id: usize) -> bool {
        if id == self.first || Some(id) == self.reserved {
            return false;
        }
        let c = self.chunk(id);
        let empty = c.nr_empty_pop_pages as i64;
        (c.isolated && empty > 0)
            || (self.nr_empty_pop_pages > PCPU_EMPTY_POP_PAGES_HIGH + empty && c.nr_empty_pop_pages >= c.nr_pages / 4)
    }
}
