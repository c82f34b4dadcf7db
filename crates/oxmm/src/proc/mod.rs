//! Renderers for the mm files of `/proc` (Linux's `fs/proc/meminfo.c` and
//! the seq_file views of `mm/vmstat.c`), plus the memblock debugfs files.
//!
//! Each renderer takes the kernel and returns the file's whole text, byte
//! for byte in the layout Linux 6.18 prints on x86-64, so that tools which
//! parse the host's files (`free`, `vmstat`, `numastat`, scripts reading
//! `/proc/zoneinfo`) read ours unchanged. Counters of components that do
//! not exist yet read 0, as they would on a kernel built without them.
//!
//! | file | function | Linux |
//! |---|---|---|
//! | `meminfo` | [`meminfo`] | `meminfo_proc_show` |
//! | `buddyinfo` | [`buddyinfo`] | `frag_show` |
//! | `pagetypeinfo` | [`pagetypeinfo`] | `pagetypeinfo_show` |
//! | `zoneinfo` | [`zoneinfo`] | `zoneinfo_show` |
//! | `vmstat` | [`vmstat`] | `vmstat_show` |
//! | `slabinfo` | [`slabinfo`] | `slabinfo_show` |
//! | `vmallocinfo` | `Kernel::vmallocinfo` | `vmalloc_info_show` |
//! | `sys/kernel/slab/<cache>/<attr>` | [`sys_kernel_slab`] | SLUB's sysfs |
//! | `memblock/memory`, `memblock/reserved` | [`memblock_memory`], [`memblock_reserved`] | `memblock_debug_show` |
//! | `PID/maps`, `smaps`, `smaps_rollup`, `status`, `statm` | [`pid`] | `fs/proc/task_mmu.c` |
//!
//! Locking: free-area counts are read under the zone lock and pcp fields
//! under each pcp lock, one lock at a time, as the Linux readers do; the
//! counters themselves are atomics read without locks. A file is therefore
//! a consistent view of each zone, not a global snapshot, like Linux's.

mod buddyinfo;
mod meminfo;
pub mod pid;
mod slabinfo;
mod vmstat;
mod zoneinfo;

use alloc::string::String;

use crate::kernel::Kernel;

pub use self::buddyinfo::{buddyinfo, pagetypeinfo};
pub use self::meminfo::{meminfo, si_mem_available, vm_commit_limit};
pub use self::slabinfo::{slabinfo, sys_kernel_slab};
pub use self::vmstat::{global_dirty_limits, vmstat, DirtyLimits};
pub use self::zoneinfo::zoneinfo;

/// Every file [`render`] knows, by its path below `/proc` (the memblock
/// files live below `/sys/kernel/debug` on Linux).
pub const FILES: &[&str] = &[
    "meminfo",
    "buddyinfo",
    "pagetypeinfo",
    "zoneinfo",
    "vmstat",
    "slabinfo",
    "vmallocinfo",
    "memblock/memory",
    "memblock/reserved",
];

/// Prefix of the per-cache SLUB attribute files (`sys/kernel/slab/<cache>/<attr>`).
pub const SYS_KERNEL_SLAB: &str = "sys/kernel/slab/";

/// Renders one of [`FILES`] by name; `None` for a name not in the list.
pub fn render(k: &Kernel, path: &str) -> Option<String> {
    Some(match path {
        "meminfo" => meminfo(k),
        "buddyinfo" => buddyinfo(k),
        "pagetypeinfo" => pagetypeinfo(k),
        "zoneinfo" => zoneinfo(k),
        "vmstat" => vmstat(k),
        "slabinfo" => slabinfo(k),
        "vmallocinfo" => k.vmallocinfo(),
        "memblock/memory" => memblock_memory(k),
        "memblock/reserved" => memblock_reserved(k),
        p if p.starts_with(SYS_KERNEL_SLAB) => sys_kernel_slab(k, &p[SYS_KERNEL_SLAB.len()..])?,
        p if p.starts_with(|c: char| c.is_ascii_digit()) => {
            let (pid, file) = p.split_once('/')?;
            let task = k.vm.tasks.lock().get(&pid.parse::<u64>().ok()?)?.clone();
            pid::render_pid(k, &task, file)?
        }
        _ => return None,
    })
}

/// `/sys/kernel/debug/memblock/memory`: the RAM regions memblock knew at
/// the end of boot, one line per region with its node and flags.
pub fn memblock_memory(k: &Kernel) -> String {
    k.boot.memblock.memory.debugfs()
}

/// `/sys/kernel/debug/memblock/reserved`: the regions boot reserved (the
/// first MiB, the kernel image, the memmap and other early allocations).
pub fn memblock_reserved(k: &Kernel) -> String {
    k.boot.memblock.reserved.debugfs()
}

/// log2 of the pages in a PMD-mapped huge page (`HPAGE_PMD_ORDER`, x86-64).
const HPAGE_PMD_ORDER: u32 = 9;

/// Pages to KiB (Linux's `K()` macro).
#[inline]
const fn kb(pages: u64) -> u64 {
    pages << (crate::types::PAGE_SHIFT - 10)
}
