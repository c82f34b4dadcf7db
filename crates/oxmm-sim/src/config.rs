//! The machine description: nodes, CPUs, distances and the firmware memory
//! map, and its translation into what boot reads (`BootParams`).
//!
//! The default map is a PC's: RAM below 640 KiB, the legacy hole up to
//! 1 MiB, RAM up to 3 GiB, a 1 GiB PCI hole below 4 GiB when there is more
//! RAM, the rest above 4 GiB. Nodes take RAM in address order.

use std::fmt;

use oxmm::kernel::{BootParams, CoreSize, E820Entry, E820Type};

/// 1 MiB.
pub const MIB: u64 = 1 << 20;
/// 1 GiB.
pub const GIB: u64 = 1 << 30;
/// Start of the PCI hole.
pub const PCI_HOLE_START: u64 = 3 * GIB;
/// End of the PCI hole.
pub const PCI_HOLE_END: u64 = 4 * GIB;
/// Top of conventional memory (640 KiB minus the EBDA).
pub const LOW_RAM_END: u64 = 0x9fc00;
/// Node memory must be a multiple of a memory section.
pub const NODE_ALIGN: u64 = 128 * MIB;

/// One NUMA node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// Bytes of RAM.
    pub mem: u64,
    /// CPUs on the node.
    pub cpus: usize,
}

/// A simulated machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineConfig {
    /// NUMA nodes, in address order.
    pub nodes: Vec<NodeConfig>,
    /// SLIT distances; default 10 local, 20 remote.
    pub distance: Option<Vec<Vec<u8>>>,
    /// Leave the PCI hole below 4 GiB (as PCs do).
    pub pci_hole: bool,
    /// Extra firmware-reserved ranges `(start, size)` carved out of RAM.
    pub reserved: Vec<(u64, u64)>,
    /// Bytes of kernel image reserved at 16 MiB.
    pub kernel_image: u64,
    /// `kernelcore=`.
    pub kernelcore: Option<CoreSize>,
    /// `movablecore=`.
    pub movablecore: Option<CoreSize>,
    /// The slab allocator.
    pub slab: oxmm::slab::SlabKind,
    /// 5-level paging (a CPU with LA57, Linux's `CONFIG_X86_5LEVEL`).
    pub la57: bool,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            nodes: vec![NodeConfig { mem: 4 * GIB, cpus: 2 }],
            distance: None,
            pci_hole: true,
            reserved: Vec::new(),
            kernel_image: 24 * MIB,
            kernelcore: None,
            movablecore: None,
            slab: oxmm::slab::SlabKind::Slub,
            la57: false,
        }
    }
}

/// A machine description that cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting at fault, as a scenario key (`machine.nodes[1].mem`).
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key `{}`: {}", self.key, self.problem)
    }
}

fn err(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError { key: key.into(), problem: problem.into() }
}

impl MachineConfig {
    /// A single-node machine.
    pub fn single(mem: u64, cpus: usize) -> MachineConfig {
        MachineConfig { nodes: vec![NodeConfig { mem, cpus }], ..Default::default() }
    }

    /// Total RAM asked for.
    pub fn total_mem(&self) -> u64 {
        self.nodes.iter().map(|n| n.mem).sum()
    }

    /// Number of CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.nodes.iter().map(|n| n.cpus).sum()
    }

    fn hole(&self) -> bool {
        self.pci_hole && self.total_mem() > PCI_HOLE_START
    }

    /// Physical address of a RAM offset: RAM fills from 0, skipping the PCI hole.
    fn ram_to_phys(&self, off: u64) -> u64 {
        if self.hole() && off >= PCI_HOLE_START {
            off + (PCI_HOLE_END - PCI_HOLE_START)
        } else {
            off
        }
    }

    /// Bytes of host address space the machine needs: up to the end of RAM.
    pub fn phys_size(&self) -> u64 {
        self.ram_to_phys(self.total_mem())
    }

    /// Checks the description.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.nodes.is_empty() {
            return Err(err("machine.nodes", "a machine needs at least one node"));
        }
        if self.nodes.len() > 64 {
            return Err(err("machine.nodes", format!("{} nodes; at most 64 are supported", self.nodes.len())));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.mem == 0 || n.mem % NODE_ALIGN != 0 {
                return Err(err(
                    format!("machine.nodes[{i}].mem"),
                    format!("{} bytes; node memory must be a non-zero multiple of 128 MiB (a memory section)", n.mem),
                ));
            }
        }
        if self.nr_cpus() == 0 {
            return Err(err("machine.cpus", "a machine needs at least one CPU"));
        }
        if self.nr_cpus() > 1024 {
            return Err(err("machine.cpus", format!("{} CPUs; at most 1024 are supported", self.nr_cpus())));
        }
        if self.total_mem() < 256 * MIB {
            return Err(err("machine.mem", "at least 256 MiB of RAM is needed to boot"));
        }
        if self.total_mem() > 4096 * GIB {
            return Err(err("machine.mem", "at most 4 TiB of RAM is supported"));
        }
        if let Some(d) = &self.distance {
            let n = self.nodes.len();
            if d.len() != n || d.iter().any(|r| r.len() != n) {
                return Err(err("machine.distance", format!("must be a {n} x {n} table")));
            }
            for (a, row) in d.iter().enumerate() {
                for (b, &dist) in row.iter().enumerate() {
                    if a == b && dist != 10 {
                        return Err(err("machine.distance", format!("distance[{a}][{a}] must be 10 (local)")));
                    }
                    if a != b && dist <= 10 {
                        return Err(err("machine.distance", format!("distance[{a}][{b}] must be above 10")));
                    }
                }
            }
        }
        for (i, &(s, len)) in self.reserved.iter().enumerate() {
            if len == 0 || s.checked_add(len).is_none_or(|e| e > self.phys_size()) {
                return Err(err(format!("machine.reserved[{i}]"), "range is empty or beyond the end of RAM"));
            }
        }
        if self.kernel_image > 512 * MIB {
            return Err(err("machine.kernel_image", "the kernel image may be at most 512 MiB"));
        }
        Ok(())
    }

    /// The e820 map this machine's firmware reports, sorted by address.
    pub fn e820(&self) -> Vec<E820Entry> {
        let total = self.total_mem();
        let mut ram: Vec<(u64, u64)> = Vec::new();
        ram.push((0, LOW_RAM_END));
        let low_top = if self.hole() { PCI_HOLE_START } else { total };
        ram.push((MIB, low_top));
        if self.hole() {
            ram.push((PCI_HOLE_END, self.ram_to_phys(total)));
        }
        // Carve the extra reserved ranges out of RAM.
        for &(rs, rl) in &self.reserved {
            let re = rs + rl;
            ram = ram
                .into_iter()
                .flat_map(|(s, e)| {
                    let mut v = Vec::new();
                    if rs < e && re > s {
                        if s < rs {
                            v.push((s, rs));
                        }
                        if re < e {
                            v.push((re, e));
                        }
                    } else {
                        v.push((s, e));
                    }
                    v
                })
                .collect();
        }
        let mut out: Vec<E820Entry> = ram
            .into_iter()
            .filter(|(s, e)| e > s)
            .map(|(s, e)| E820Entry { addr: s, size: e - s, kind: E820Type::Ram })
            .collect();
        out.push(E820Entry { addr: LOW_RAM_END, size: MIB - LOW_RAM_END, kind: E820Type::Reserved });
        for &(rs, rl) in &self.reserved {
            out.push(E820Entry { addr: rs, size: rl, kind: E820Type::Reserved });
        }
        if self.hole() {
            out.push(E820Entry { addr: 0xfffc_0000, size: 0x4_0000, kind: E820Type::Reserved });
        }
        out.sort_by_key(|e| e.addr);
        out
    }

    /// Physical ranges of the nodes (the SRAT).
    pub fn node_ranges(&self) -> Vec<(u64, u64)> {
        let mut off = 0;
        let n = self.nodes.len();
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, nd)| {
                let s = if i == 0 { 0 } else { self.ram_to_phys(off) };
                off += nd.mem;
                let e = if i + 1 == n { self.phys_size() } else { self.ram_to_phys(off) };
                (s, e)
            })
            .collect()
    }

    /// What boot reads.
    pub fn boot_params(&self) -> BootParams {
        let n = self.nodes.len();
        let distance = self
            .distance
            .clone()
            .unwrap_or_else(|| (0..n).map(|a| (0..n).map(|b| if a == b { 10 } else { 20 }).collect()).collect());
        BootParams {
            e820: self.e820(),
            node_ranges: self.node_ranges(),
            cpu_to_node: self.nodes.iter().enumerate().flat_map(|(i, nd)| std::iter::repeat_n(i, nd.cpus)).collect(),
            distance,
            kernel_image_bytes: self.kernel_image,
            kernelcore: self.kernelcore,
            movablecore: self.movablecore,
            slab: self.slab,
            la57: self.la57,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pc_map_has_the_pci_hole_and_nodes_follow_ram() {
        let c = MachineConfig {
            nodes: vec![NodeConfig { mem: 32 * GIB, cpus: 2 }, NodeConfig { mem: 32 * GIB, cpus: 2 }],
            ..Default::default()
        };
        c.validate().unwrap();
        let ram: Vec<_> = c.e820().into_iter().filter(|e| e.kind == E820Type::Ram).collect();
        assert_eq!(ram[0].addr, 0);
        assert_eq!(ram[1].addr, MIB);
        assert_eq!(ram[1].addr + ram[1].size, PCI_HOLE_START);
        assert_eq!(ram[2].addr, PCI_HOLE_END);
        assert_eq!(ram[2].addr + ram[2].size, 65 * GIB);
        assert_eq!(c.node_ranges(), vec![(0, 33 * GIB), (33 * GIB, 65 * GIB)]);
    }

    #[test]
    fn validation_names_the_key() {
        let c = MachineConfig::single(100 * MIB, 1);
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "machine.nodes[0].mem");
        let mut c = MachineConfig::single(GIB, 1);
        c.distance = Some(vec![vec![20]]);
        assert_eq!(c.validate().unwrap_err().key, "machine.distance");
    }
}
