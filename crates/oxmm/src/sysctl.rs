//! The `vm.*` sysctl knobs the mm reads (Linux's `kernel/sysctl.c` vm
//! table and the handlers in `mm/page_alloc.c`), with Linux's names,
//! defaults, ranges and side effects.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::kernel::Kernel;
use crate::mmzone::MAX_NR_ZONES;
use crate::types::Errno;

/// The knob values. Atomics so a write from one CPU is seen by others
/// without a lock; the handlers recompute what depends on them.
pub struct Sysctls {
    /// `vm.min_free_kbytes`.
    pub min_free_kbytes: AtomicU64,
    /// The value an administrator wrote, or -1 (`user_min_free_kbytes`).
    pub user_min_free_kbytes: AtomicI64,
    /// `vm.watermark_scale_factor`, in 1/10000 of a zone.
    pub watermark_scale_factor: AtomicU64,
    /// `vm.watermark_boost_factor`, in 1/10000 of the high watermark.
    pub watermark_boost_factor: AtomicU64,
    /// `vm.lowmem_reserve_ratio`, per zone.
    pub lowmem_reserve_ratio: [AtomicU64; MAX_NR_ZONES],
    /// `vm.percpu_pagelist_high_fraction` (0: from the low watermark).
    pub percpu_pagelist_high_fraction: AtomicU64,
    /// `vm.overcommit_memory` (0 heuristic, 1 always, 2 never).
    pub overcommit_memory: AtomicU64,
    /// `vm.overcommit_ratio`, percent of RAM for mode 2.
    pub overcommit_ratio: AtomicU64,
    /// `vm.overcommit_kbytes` (overrides the ratio when non-zero).
    pub overcommit_kbytes: AtomicU64,
    /// `vm.max_map_count`.
    pub max_map_count: AtomicU64,
    /// `vm.swappiness`.
    pub swappiness: AtomicU64,
    /// `vm.dirty_ratio`.
    pub dirty_ratio: AtomicU64,
    /// `vm.dirty_background_ratio`.
    pub dirty_background_ratio: AtomicU64,
    /// `vm.mmap_min_addr`.
    pub mmap_min_addr: AtomicU64,
    /// `vm.mmap_rnd_bits`.
    pub mmap_rnd_bits: AtomicU64,
}

impl Default for Sysctls {
    fn default() -> Self {
        let ratios = [256, 256, 32, 0, 0];
        Sysctls {
            min_free_kbytes: AtomicU64::new(1024),
            user_min_free_kbytes: AtomicI64::new(-1),
            watermark_scale_factor: AtomicU64::new(10),
            watermark_boost_factor: AtomicU64::new(15000),
            lowmem_reserve_ratio: ratios.map(AtomicU64::new),
            percpu_pagelist_high_fraction: AtomicU64::new(0),
            overcommit_memory: AtomicU64::new(0),
            overcommit_ratio: AtomicU64::new(50),
            overcommit_kbytes: AtomicU64::new(0),
            max_map_count: AtomicU64::new(65530),
            swappiness: AtomicU64::new(60),
            dirty_ratio: AtomicU64::new(20),
            dirty_background_ratio: AtomicU64::new(10),
            mmap_min_addr: AtomicU64::new(65536),
            mmap_rnd_bits: AtomicU64::new(28),
        }
    }
}

/// Names of every knob, in `sysctl -a` order.
pub const NAMES: &[&str] = &[
    "vm.dirty_background_ratio",
    "vm.dirty_ratio",
    "vm.lowmem_reserve_ratio",
    "vm.max_map_count",
    "vm.min_free_kbytes",
    "vm.mmap_min_addr",
    "vm.mmap_rnd_bits",
    "vm.overcommit_kbytes",
    "vm.overcommit_memory",
    "vm.overcommit_ratio",
    "vm.percpu_pagelist_high_fraction",
    "vm.swappiness",
    "vm.watermark_boost_factor",
    "vm.watermark_scale_factor",
];

/// Why a write was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SysctlError {
    /// No knob has this name.
    Unknown,
    /// The value is not a number (or not the right count of numbers).
    Parse,
    /// Linux refuses the value with this errno.
    Refused(Errno),
}

fn one(v: &str) -> Result<u64, SysctlError> {
    v.trim().parse::<u64>().map_err(|_| SysctlError::Parse)
}

fn ranged(v: &str, lo: u64, hi: u64) -> Result<u64, SysctlError> {
    let x = one(v)?;
    if x < lo || x > hi {
        return Err(SysctlError::Refused(Errno::EINVAL));
    }
    Ok(x)
}

impl Kernel {
    /// Reads a knob as `/proc/sys` prints it.
    pub fn sysctl_get(&self, name: &str) -> Option<String> {
        let s = &self.sysctl;
        let v = |a: &AtomicU64| format!("{}", a.load(Relaxed));
        Some(match name {
            "vm.min_free_kbytes" => v(&s.min_free_kbytes),
            "vm.watermark_scale_factor" => v(&s.watermark_scale_factor),
            "vm.watermark_boost_factor" => v(&s.watermark_boost_factor),
            "vm.lowmem_reserve_ratio" => {
                s.lowmem_reserve_ratio.iter().map(|a| format!("{}", a.load(Relaxed))).collect::<Vec<_>>().join("\t")
            }
            "vm.percpu_pagelist_high_fraction" => v(&s.percpu_pagelist_high_fraction),
            "vm.overcommit_memory" => v(&s.overcommit_memory),
            "vm.overcommit_ratio" => v(&s.overcommit_ratio),
            "vm.overcommit_kbytes" => v(&s.overcommit_kbytes),
            "vm.max_map_count" => v(&s.max_map_count),
            "vm.swappiness" => v(&s.swappiness),
            "vm.dirty_ratio" => v(&s.dirty_ratio),
            "vm.dirty_background_ratio" => v(&s.dirty_background_ratio),
            "vm.mmap_min_addr" => v(&s.mmap_min_addr),
            "vm.mmap_rnd_bits" => v(&s.mmap_rnd_bits),
            _ => return None,
        })
    }

    /// Writes a knob as a write to `/proc/sys` would, with Linux's range
    /// checks and side effects (watermarks, reserves, pcp sizes).
    pub fn sysctl_set(&self, name: &str, value: &str) -> Result<(), SysctlError> {
        let s = &self.sysctl;
        match name {
            "vm.min_free_kbytes" => {
                let x = ranged(value, 0, i32::MAX as u64)?;
                s.min_free_kbytes.store(x, Relaxed);
                s.user_min_free_kbytes.store(x as i64, Relaxed);
                self.setup_per_zone_wmarks();
            }
            "vm.watermark_scale_factor" => {
                s.watermark_scale_factor.store(ranged(value, 1, 3000)?, Relaxed);
                self.setup_per_zone_wmarks();
            }
            "vm.watermark_boost_factor" => s.watermark_boost_factor.store(ranged(value, 0, i32::MAX as u64)?, Relaxed),
            "vm.lowmem_reserve_ratio" => {
                let parts: Vec<i64> = value
                    .split_whitespace()
                    .map(|p| p.parse::<i64>().map_err(|_| SysctlError::Parse))
                    .collect::<Result<_, _>>()?;
                if parts.is_empty() || parts.len() > MAX_NR_ZONES {
                    return Err(SysctlError::Parse);
                }
                for (i, p) in parts.iter().enumerate() {
                    s.lowmem_reserve_ratio[i].store(if *p < 1 { 0 } else { *p as u64 }, Relaxed);
                }
                self.setup_per_zone_lowmem_reserve();
            }
            "vm.percpu_pagelist_high_fraction" => {
                let x = one(value)?;
                if x != 0 && x < crate::page_alloc::watermark::MIN_PERCPU_PAGELIST_HIGH_FRACTION {
                    return Err(SysctlError::Refused(Errno::EINVAL));
                }
                s.percpu_pagelist_high_fraction.store(x, Relaxed);
                for z in self.zones() {
                    self.zone_pcp_update(z);
                }
            }
            "vm.overcommit_memory" => s.overcommit_memory.store(ranged(value, 0, 2)?, Relaxed),
            "vm.overcommit_ratio" => s.overcommit_ratio.store(ranged(value, 0, i64::MAX as u64)?, Relaxed),
            "vm.overcommit_kbytes" => s.overcommit_kbytes.store(ranged(value, 0, i64::MAX as u64)?, Relaxed),
            "vm.max_map_count" => s.max_map_count.store(ranged(value, 0, i32::MAX as u64)?, Relaxed),
            "vm.swappiness" => s.swappiness.store(ranged(value, 0, 200)?, Relaxed),
            "vm.dirty_ratio" => s.dirty_ratio.store(ranged(value, 0, 100)?, Relaxed),
            "vm.dirty_background_ratio" => s.dirty_background_ratio.store(ranged(value, 0, 100)?, Relaxed),
            "vm.mmap_min_addr" => s.mmap_min_addr.store(one(value)?, Relaxed),
            "vm.mmap_rnd_bits" => s.mmap_rnd_bits.store(ranged(value, 28, 32)?, Relaxed),
            _ => return Err(SysctlError::Unknown),
        }
        Ok(())
    }

    /// `sysctl -a` for the vm knobs: `name = value` lines.
    pub fn sysctl_all(&self) -> String {
        let mut out = String::new();
        for n in NAMES {
            if let Some(v) = self.sysctl_get(n) {
                out.push_str(&format!("{n} = {v}\n"));
            }
        }
        out
    }
}
