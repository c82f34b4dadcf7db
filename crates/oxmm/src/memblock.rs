//! The early boot allocator (Linux's `mm/memblock.c`).
//!
//! Before the buddy allocator exists, physical memory is two sorted lists of
//! regions: `memory` (what the firmware map says is RAM, with its node) and
//! `reserved` (what is in use: the kernel image, firmware tables, the memmap,
//! every early allocation). Early allocations search the free ranges (memory
//! minus reserved) from the top down, as Linux does by default on x86-64.
//! At the end of boot [`Memblock::free_ranges`] tells `memblock_free_all`
//! what to hand to the buddy allocator; reserved pages are never freed, which
//! is why the memmap and the kernel image are not in MemTotal.
//!
//! Locking: memblock is used only during single-threaded boot (and, later,
//! memory hotplug under the hotplug lock); it holds no lock of its own.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::types::{align_down, align_up, PhysAddr, PAGE_SIZE};

/// Node id meaning "no node" (`NUMA_NO_NODE` / `MAX_NUMNODES` in memblock).
pub const NO_NODE: u32 = u32::MAX;

/// Region flags (Linux's `enum memblock_flags`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MemblockFlags(pub u32);

impl MemblockFlags {
    /// No special handling.
    pub const NONE: MemblockFlags = MemblockFlags(0);
    /// Hot-pluggable memory (movable_node).
    pub const HOTPLUG: MemblockFlags = MemblockFlags(0x1);
    /// Mirrored memory (kernelcore=mirror).
    pub const MIRROR: MemblockFlags = MemblockFlags(0x2);
    /// Not in the kernel's direct map.
    pub const NOMAP: MemblockFlags = MemblockFlags(0x4);
    const NAMES: [&'static str; 6] = ["HOTPLUG", "MIRROR", "NOMAP", "DRV_MNG", "RSV_NIT", "RSV_KERN"];
}

/// One region: `[base, base + size)` on node `nid`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Region {
    /// First byte.
    pub base: u64,
    /// Length in bytes (never zero).
    pub size: u64,
    /// Node, or [`NO_NODE`].
    pub nid: u32,
    /// Flags.
    pub flags: MemblockFlags,
}

impl Region {
    /// One past the last byte.
    #[inline]
    pub fn end(&self) -> u64 {
        self.base + self.size
    }
}

/// A sorted, non-overlapping list of regions; adjacent regions with the same
/// node and flags are merged.
#[derive(Clone, Debug, Default)]
pub struct RegionList {
    regions: Vec<Region>,
}

impl RegionList {
    /// The regions, lowest first.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Sum of region sizes.
    pub fn total_size(&self) -> u64 {
        self.regions.iter().map(|r| r.size).sum()
    }

    /// Adds `[base, base+size)`; the parts already covered keep their
    /// node and flags (Linux's `memblock_add_range`).
    fn add(&mut self, base: u64, size: u64, nid: u32, flags: MemblockFlags) {
        let end = base.saturating_add(size);
        if end <= base {
            return;
        }
        let mut pieces = Vec::new();
        let mut cur = base;
        for r in &self.regions {
            if r.end() <= cur {
                continue;
            }
            if r.base >= end {
                break;
            }
            if r.base > cur {
                pieces.push(Region { base: cur, size: r.base - cur, nid, flags });
            }
            cur = cur.max(r.end());
            if cur >= end {
                break;
            }
        }
        if cur < end {
            pieces.push(Region { base: cur, size: end - cur, nid, flags });
        }
        for p in pieces {
            let at = self.regions.partition_point(|r| r.base < p.base);
            self.regions.insert(at, p);
        }
        self.merge();
    }

    fn merge(&mut self) {
        let mut out: Vec<Region> = Vec::with_capacity(self.regions.len());
        for r in self.regions.drain(..) {
            if let Some(last) = out.last_mut() {
                if last.end() == r.base && last.nid == r.nid && last.flags == r.flags {
                    last.size += r.size;
                    continue;
                }
            }
            out.push(r);
        }
        self.regions = out;
    }

    /// Removes `[base, base+size)`, splitting regions at its edges.
    fn remove(&mut self, base: u64, size: u64) {
        let end = base.saturating_add(size);
        let mut out = Vec::with_capacity(self.regions.len() + 1);
        for r in self.regions.drain(..) {
            if r.end() <= base || r.base >= end {
                out.push(r);
                continue;
            }
            if r.base < base {
                out.push(Region { size: base - r.base, ..r });
            }
            if r.end() > end {
                out.push(Region { base: end, size: r.end() - end, ..r });
            }
        }
        self.regions = out;
    }

    /// Sets the node of every byte in `[base, base+size)` (`memblock_set_node`).
    fn set_node(&mut self, base: u64, size: u64, nid: u32) {
        let end = base.saturating_add(size);
        let mut out = Vec::with_capacity(self.regions.len() + 2);
        for r in self.regions.drain(..) {
            if r.end() <= base || r.base >= end {
                out.push(r);
                continue;
            }
            let lo = r.base.max(base);
            let hi = r.end().min(end);
            if r.base < lo {
                out.push(Region { size: lo - r.base, ..r });
            }
            out.push(Region { base: lo, size: hi - lo, nid, flags: r.flags });
            if r.end() > hi {
                out.push(Region { base: hi, size: r.end() - hi, ..r });
            }
        }
        self.regions = out;
        self.merge();
    }

    /// True when `[base, base+size)` intersects a region.
    pub fn overlaps(&self, base: u64, size: u64) -> bool {
        let end = base.saturating_add(size);
        self.regions.iter().any(|r| r.base < end && base < r.end())
    }

    /// Renders the list as `/sys/kernel/debug/memblock/{memory,reserved}` does.
    pub fn debugfs(&self) -> String {
        let mut s = String::new();
        for (i, r) in self.regions.iter().enumerate() {
            let _ = write!(s, "{i:4}: {:#018x}..{:#018x} ", r.base, r.end() - 1);
            if r.nid == NO_NODE {
                let _ = write!(s, "{:>4} ", 'x');
            } else {
                let _ = write!(s, "{:4} ", r.nid);
            }
            if r.flags.0 == 0 {
                s.push_str("NONE\n");
            } else {
                let name = (0..MemblockFlags::NAMES.len())
                    .find(|j| r.flags.0 & (1 << j) != 0)
                    .map_or("UNKNOWN", |j| MemblockFlags::NAMES[j]);
                s.push_str(name);
                s.push('\n');
            }
        }
        s
    }
}

/// Why an early allocation failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MemblockAllocError {
    /// Bytes asked for.
    pub size: u64,
    /// Alignment asked for.
    pub align: u64,
}

/// The two region lists and the allocation policy.
#[derive(Clone, Debug, Default)]
pub struct Memblock {
    /// RAM, by node.
    pub memory: RegionList,
    /// Bytes in use.
    pub reserved: RegionList,
}

impl Memblock {
    /// An empty memblock.
    pub fn new() -> Memblock {
        Memblock::default()
    }

    /// Registers RAM on a node (`memblock_add_node`).
    pub fn add_node(&mut self, base: PhysAddr, size: u64, nid: u32, flags: MemblockFlags) {
        self.memory.add(base.0, size, nid, flags);
    }

    /// Forgets RAM (`memblock_remove`), for example page 0 or a `mem=` limit.
    pub fn remove(&mut self, base: PhysAddr, size: u64) {
        self.memory.remove(base.0, size);
    }

    /// Assigns a node to a range of memory (`memblock_set_node`), as NUMA
    /// init does once the SRAT is parsed.
    pub fn set_node(&mut self, base: PhysAddr, size: u64, nid: u32) {
        self.memory.set_node(base.0, size, nid);
    }

    /// Marks a range in use (`memblock_reserve`).
    pub fn reserve(&mut self, base: PhysAddr, size: u64) {
        self.reserved.add(base.0, size, NO_NODE, MemblockFlags::NONE);
    }

    /// Releases a reservation (`memblock_phys_free`).
    pub fn free(&mut self, base: PhysAddr, size: u64) {
        self.reserved.remove(base.0, size);
    }

    /// Free ranges, lowest first, as `(base, end, nid)`: memory minus reserved
    /// (`for_each_free_mem_range`). NOMAP memory is never free.
    pub fn free_ranges(&self) -> Vec<(u64, u64, u32)> {
        let mut out = Vec::new();
        let res = self.reserved.regions();
        let mut ri = 0;
        for m in self.memory.regions() {
            if m.flags.0 & MemblockFlags::NOMAP.0 != 0 {
                continue;
            }
            let mut cur = m.base;
            while ri < res.len() && res[ri].end() <= cur {
                ri += 1;
            }
            let mut j = ri;
            while cur < m.end() {
                if j < res.len() && res[j].base < m.end() {
                    if res[j].base > cur {
                        out.push((cur, res[j].base, m.nid));
                    }
                    cur = cur.max(res[j].end());
                    j += 1;
                } else {
                    out.push((cur, m.end(), m.nid));
                    cur = m.end();
                }
            }
        }
        out
    }

    /// Allocates and reserves `size` bytes aligned to `align`, inside
    /// `[min, max)`, on node `nid` when possible (any node when `nid` is
    /// [`NO_NODE`], or when the node has no room: Linux falls back too).
    /// Searches from the top down and never returns page 0
    /// (`memblock_alloc_range_nid`).
    pub fn alloc_range_nid(
        &mut self,
        size: u64,
        align: u64,
        min: u64,
        max: u64,
        nid: u32,
    ) -> Result<PhysAddr, MemblockAllocError> {
        let align = align.max(1);
        let size = align_up(size.max(1), PAGE_SIZE.min(align.max(8)));
        let min = min.max(PAGE_SIZE);
        let pick = |want: Option<u32>| {
            self.free_ranges().iter().rev().find_map(|&(b, e, n)| {
                if want.is_some_and(|w| w != n) {
                    return None;
                }
                let lo = b.max(min);
                let hi = e.min(max);
                if hi < lo || hi - lo < size {
                    return None;
                }
                let start = align_down(hi - size, align);
                (start >= lo).then_some(start)
            })
        };
        let found = if nid == NO_NODE { pick(None) } else { pick(Some(nid)).or_else(|| pick(None)) };
        match found {
            Some(base) => {
                self.reserve(PhysAddr(base), size);
                Ok(PhysAddr(base))
            }
            None => Err(MemblockAllocError { size, align }),
        }
    }

    /// Allocates anywhere (`memblock_phys_alloc`).
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<PhysAddr, MemblockAllocError> {
        self.alloc_range_nid(size, align, 0, u64::MAX, NO_NODE)
    }

    /// Total bytes of RAM registered (`memblock_phys_mem_size`).
    pub fn phys_mem_size(&self) -> u64 {
        self.memory.total_size()
    }

    /// Bytes of memory (not holes) inside `[start, end)`, optionally of one node.
    pub fn memory_in(&self, start: u64, end: u64, nid: Option<u32>) -> u64 {
        self.memory
            .regions()
            .iter()
            .filter(|r| nid.is_none_or(|n| n == r.nid))
            .map(|r| r.end().min(end).saturating_sub(r.base.max(start)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_merges_and_reserve_splits_free_ranges() {
        let mut mb = Memblock::new();
        mb.add_node(PhysAddr(0x1000), 0x9e000, 0, MemblockFlags::NONE);
        mb.add_node(PhysAddr(0x100000), 0x100000, 0, MemblockFlags::NONE);
        mb.add_node(PhysAddr(0x200000), 0x100000, 0, MemblockFlags::NONE);
        assert_eq!(mb.memory.regions().len(), 2, "adjacent same-node regions merge");
        mb.reserve(PhysAddr(0x180000), 0x10000);
        let free = mb.free_ranges();
        assert_eq!(free, vec![(0x1000, 0x9f000, 0), (0x100000, 0x180000, 0), (0x190000, 0x300000, 0)]);
    }

    #[test]
    fn alloc_is_top_down_aligned_and_node_local() {
        let mut mb = Memblock::new();
        mb.add_node(PhysAddr(0), 0x400000, 0, MemblockFlags::NONE);
        mb.add_node(PhysAddr(0x400000), 0x400000, 1, MemblockFlags::NONE);
        let a = mb.alloc_range_nid(0x300000, 0x1000, 0, u64::MAX, 0).unwrap();
        assert_eq!(a, PhysAddr(0x100000), "top of node 0");
        let b = mb.alloc_range_nid(0x200000, 0x200000, 0, u64::MAX, 1).unwrap();
        assert_eq!(b, PhysAddr(0x600000), "top of node 1, 2 MiB aligned");
        // Node 0 has [0x1000, 0x100000) left (page 0 is never handed out):
        // a larger request falls back to node 1, top-down.
        let c = mb.alloc_range_nid(0x180000, 0x1000, 0, u64::MAX, 0).unwrap();
        assert_eq!(c, PhysAddr(0x480000));
        assert!(mb.alloc(0x10_0000_0000, 0x1000).is_err());
        assert_eq!(mb.reserved.regions().iter().map(|r| r.size).sum::<u64>(), 0x300000 + 0x200000 + 0x180000);
    }

    #[test]
    fn debugfs_format() {
        let mut mb = Memblock::new();
        mb.add_node(PhysAddr(0x1000), 0x9e000, 0, MemblockFlags::NONE);
        mb.reserve(PhysAddr(0x2000), 0x1000);
        assert_eq!(mb.memory.debugfs(), "   0: 0x0000000000001000..0x000000000009efff    0 NONE\n");
        assert_eq!(mb.reserved.debugfs(), "   0: 0x0000000000002000..0x0000000000002fff    x NONE\n");
    }
}
