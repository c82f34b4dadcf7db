//! `/proc/PID/maps`, `smaps`, `smaps_rollup`, `status` (memory lines) and
//! `statm` (Linux's `fs/proc/task_mmu.c`), byte for byte as Linux 6.18
//! prints them for the VMAs we have.

use alloc::format;
use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::Ordering::Relaxed;

use crate::arch::x86_64::pgtable::{bits, entry_pfn, pte_present};
use crate::kernel::Kernel;
use crate::mm_types::{mm_counter, vm, MmState, Task, Vma};
use crate::rmap::PAGE_MAPPING_ANON;

/// Column at which maps prints a VMA's name (`25 + sizeof(void *) * 6 - 1`).
const NAME_COLUMN: usize = 73;

/// The name maps shows for a VMA, if any.
fn vma_name(k: &Kernel, st: &MmState, v: Vma<'_>) -> Option<String> {
    if !v.is_anonymous() {
        return k.vma_file_name(v);
    }
    if v.start() < st.brk && v.end() > st.start_brk {
        return Some(String::from("[heap]"));
    }
    if v.start() <= st.start_stack && v.end() >= st.start_stack {
        return Some(String::from("[stack]"));
    }
    let name = v.raw().anon_name.load(Relaxed);
    (name != 0).then(|| format!("[anon:{}]", String::from_utf8_lossy(&k.anon_name_bytes(name))))
}

fn header(out: &mut String, k: &Kernel, st: &MmState, v: Vma<'_>) {
    let f = v.flags();
    let start = out.len();
    let _ = write!(
        out,
        "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {} ",
        v.start(),
        v.end(),
        if f & vm::READ != 0 { 'r' } else { '-' },
        if f & vm::WRITE != 0 { 'w' } else { '-' },
        if f & vm::EXEC != 0 { 'x' } else { '-' },
        if f & vm::MAYSHARE != 0 { 's' } else { 'p' },
        if v.is_anonymous() { 0 } else { v.pgoff() << 12 },
        0,
        0,
        0
    );
    if let Some(name) = vma_name(k, st, v) {
        while out.len() - start < NAME_COLUMN {
            out.push(' ');
        }
        out.push_str(&name);
    }
    out.push('\n');
}

/// `/proc/PID/maps`.
pub fn maps(k: &Kernel, task: &Task) -> String {
    let st = task.mm.lock.read();
    let mut out = String::new();
    for v in k.vmas(&st) {
        header(&mut out, k, &st, v);
    }
    out
}

/// Per-VMA page statistics of smaps (`struct mem_size_stats`), in bytes;
/// PSS values carry 12 extra bits of precision as Linux's do.
#[derive(Default, Clone, Copy, Debug)]
pub struct MemSizeStats {
    /// Resident.
    pub resident: u64,
    /// Shared clean.
    pub shared_clean: u64,
    /// Shared dirty.
    pub shared_dirty: u64,
    /// Private clean.
    pub private_clean: u64,
    /// Private dirty.
    pub private_dirty: u64,
    /// Referenced.
    pub referenced: u64,
    /// Anonymous.
    pub anonymous: u64,
    /// Swap.
    pub swap: u64,
    /// PSS << 12.
    pub pss: u64,
    /// Dirty PSS << 12.
    pub pss_dirty: u64,
    /// Anonymous PSS << 12.
    pub pss_anon: u64,
    /// File PSS << 12.
    pub pss_file: u64,
    /// Locked PSS << 12.
    pub pss_locked: u64,
}

const PSS_SHIFT: u32 = 12;

impl MemSizeStats {
    fn add(&mut self, o: &MemSizeStats) {
        self.resident += o.resident;
        self.shared_clean += o.shared_clean;
        self.shared_dirty += o.shared_dirty;
        self.private_clean += o.private_clean;
        self.private_dirty += o.private_dirty;
        self.referenced += o.referenced;
        self.anonymous += o.anonymous;
        self.swap += o.swap;
        self.pss += o.pss;
        self.pss_dirty += o.pss_dirty;
        self.pss_anon += o.pss_anon;
        self.pss_file += o.pss_file;
        self.pss_locked += o.pss_locked;
    }
}

/// Walks a VMA's PTEs (`smap_gather_stats`).
pub fn smaps_stats(k: &Kernel, task: &Task, v: Vma<'_>) -> MemSizeStats {
    let mut m = MemSizeStats::default();
    let mm = &*task.mm;
    let zero = k.vm.zero_pfn.get().copied();
    let locked = v.flags() & vm::LOCKED != 0;
    let mut a = v.start();
    while a < v.end() {
        let Some(table) = k.pte_table(mm, a) else {
            a = (a | ((1 << 21) - 1)) + 1;
            continue;
        };
        let e = k.table(table)[((a >> 12) & 511) as usize].load(Relaxed);
        if e != 0 && pte_present(e) {
            let pfn = entry_pfn(e);
            if Some(pfn) != zero && e & bits::SPECIAL == 0 {
                let page = k.memmap.page(pfn);
                let anon = page.mapping.load(Relaxed) & PAGE_MAPPING_ANON != 0;
                let mapcount = (page.mapcount.load(Relaxed) + 1).max(1) as u64;
                let dirty = e & bits::DIRTY != 0 || page.test(crate::page::pg::DIRTY);
                let young = e & bits::ACCESSED != 0 || page.test(crate::page::pg::REFERENCED);
                m.resident += 4096;
                if young {
                    m.referenced += 4096;
                }
                if anon {
                    m.anonymous += 4096;
                }
                let pss = (4096u64 << PSS_SHIFT) / mapcount;
                m.pss += pss;
                if dirty {
                    m.pss_dirty += pss;
                }
                if anon {
                    m.pss_anon += pss;
                } else {
                    m.pss_file += pss;
                }
                if locked {
                    m.pss_locked += pss;
                }
                match (mapcount >= 2, dirty) {
                    (true, true) => m.shared_dirty += 4096,
                    (true, false) => m.shared_clean += 4096,
                    (false, true) => m.private_dirty += 4096,
                    (false, false) => m.private_clean += 4096,
                }
            }
        }
        a += 4096;
    }
    m
}

fn smaps_body(out: &mut String, m: &MemSizeStats, rollup: bool) {
    let kb = |out: &mut String, name: &str, bytes: u64| {
        let _ = writeln!(out, "{:<16}{:>8} kB", format!("{name}:"), bytes >> 10);
    };
    kb(out, "Rss", m.resident);
    kb(out, "Pss", m.pss >> PSS_SHIFT);
    kb(out, "Pss_Dirty", m.pss_dirty >> PSS_SHIFT);
    if rollup {
        kb(out, "Pss_Anon", m.pss_anon >> PSS_SHIFT);
        kb(out, "Pss_File", m.pss_file >> PSS_SHIFT);
        kb(out, "Pss_Shmem", 0);
    }
    kb(out, "Shared_Clean", m.shared_clean);
    kb(out, "Shared_Dirty", m.shared_dirty);
    kb(out, "Private_Clean", m.private_clean);
    kb(out, "Private_Dirty", m.private_dirty);
    kb(out, "Referenced", m.referenced);
    kb(out, "Anonymous", m.anonymous);
    kb(out, "KSM", 0);
    kb(out, "LazyFree", 0);
    kb(out, "AnonHugePages", 0);
    kb(out, "ShmemPmdMapped", 0);
    kb(out, "FilePmdMapped", 0);
    kb(out, "Shared_Hugetlb", 0);
    kb(out, "Private_Hugetlb", 0);
    kb(out, "Swap", m.swap);
    kb(out, "SwapPss", 0);
    kb(out, "Locked", m.pss_locked >> PSS_SHIFT);
}

/// The two-letter VmFlags mnemonics of smaps, in Linux's bit order.
pub const MNEMONICS: &[(u64, &str)] = &[
    (vm::READ, "rd"),
    (vm::WRITE, "wr"),
    (vm::EXEC, "ex"),
    (vm::SHARED, "sh"),
    (vm::MAYREAD, "mr"),
    (vm::MAYWRITE, "mw"),
    (vm::MAYEXEC, "me"),
    (vm::MAYSHARE, "ms"),
    (vm::GROWSDOWN, "gd"),
    (vm::PFNMAP, "pf"),
    (vm::LOCKED, "lo"),
    (vm::IO, "io"),
    (vm::SEQ_READ, "sr"),
    (vm::RAND_READ, "rr"),
    (vm::DONTCOPY, "dc"),
    (vm::DONTEXPAND, "de"),
    (vm::LOCKONFAULT, "lf"),
    (vm::ACCOUNT, "ac"),
    (vm::NORESERVE, "nr"),
    (vm::HUGETLB, "ht"),
    (vm::SYNC, "sf"),
    (vm::ARCH_1, "ar"),
    (vm::WIPEONFORK, "wf"),
    (vm::DONTDUMP, "dd"),
    (vm::SOFTDIRTY, "sd"),
    (vm::MIXEDMAP, "mm"),
    (vm::HUGEPAGE, "hg"),
    (vm::NOHUGEPAGE, "nh"),
    (vm::MERGEABLE, "mg"),
    (vm::UFFD_MISSING, "um"),
    (vm::UFFD_WP, "uw"),
    (vm::DROPPABLE, "dp"),
];

/// `/proc/PID/smaps`.
pub fn smaps(k: &Kernel, task: &Task) -> String {
    let st = task.mm.lock.read();
    let mut out = String::new();
    for v in k.vmas(&st) {
        header(&mut out, k, &st, v);
        let m = smaps_stats(k, task, v);
        let _ = writeln!(out, "{:<16}{:>8} kB", "Size:", v.len() >> 10);
        let _ = writeln!(out, "{:<16}{:>8} kB", "KernelPageSize:", 4);
        let _ = writeln!(out, "{:<16}{:>8} kB", "MMUPageSize:", 4);
        smaps_body(&mut out, &m, false);
        let _ = writeln!(out, "THPeligible:    {:>8}", 0);
        out.push_str("VmFlags: ");
        for &(bit, name) in MNEMONICS {
            if v.flags() & bit != 0 {
                out.push_str(name);
                out.push(' ');
            }
        }
        out.push('\n');
    }
    out
}

/// `/proc/PID/smaps_rollup`.
pub fn smaps_rollup(k: &Kernel, task: &Task) -> String {
    let st = task.mm.lock.read();
    let vmas = k.vmas(&st);
    let mut total = MemSizeStats::default();
    for v in &vmas {
        total.add(&smaps_stats(k, task, *v));
    }
    let (lo, hi) = (vmas.first().map_or(0, |v| v.start()), vmas.last().map_or(0, |v| v.end()));
    let mut out = format!("{lo:08x}-{hi:08x} ---p 00000000 00:00 0");
    while out.len() < NAME_COLUMN {
        out.push(' ');
    }
    out.push_str("[rollup]\n");
    smaps_body(&mut out, &total, true);
    out
}

/// The memory lines of `/proc/PID/status` (`task_mem`).
pub fn status(k: &Kernel, task: &Task) -> String {
    let _ = k;
    let mm = &*task.mm;
    let st = mm.lock.read();
    let anon = mm.counter(mm_counter::ANONPAGES);
    let file = mm.counter(mm_counter::FILEPAGES);
    let shmem = mm.counter(mm_counter::SHMEMPAGES);
    let rss = anon + file + shmem;
    let hiwater_rss = mm.hiwater_rss.load(Relaxed).max(rss);
    let hiwater_vm = st.hiwater_vm.max(st.total_vm);
    let text = (page_align(st.end_code) - (st.start_code & !0xfff)) >> 10;
    let text = text.min(st.exec_vm << 2);
    let lib = (st.exec_vm << 2).saturating_sub(text);
    let pte_kb = (mm.pgtables_bytes.load(Relaxed).max(0) as u64) >> 10;
    let mut out = String::new();
    let mut kb = |name: &str, v: u64| {
        let _ = writeln!(out, "{name}:\t{v:>8} kB");
    };
    kb("VmPeak", hiwater_vm << 2);
    kb("VmSize", st.total_vm << 2);
    kb("VmLck", st.locked_vm << 2);
    kb("VmPin", st.pinned_vm << 2);
    kb("VmHWM", hiwater_rss << 2);
    kb("VmRSS", rss << 2);
    kb("RssAnon", anon << 2);
    kb("RssFile", file << 2);
    kb("RssShmem", shmem << 2);
    kb("VmData", st.data_vm << 2);
    kb("VmStk", st.stack_vm << 2);
    kb("VmExe", text);
    kb("VmLib", lib);
    kb("VmPTE", pte_kb);
    kb("VmSwap", mm.counter(mm_counter::SWAPENTS) << 2);
    let _ = writeln!(out, "HugetlbPages:\t{:>8} kB", 0);
    out
}

/// `/proc/PID/statm`: size resident shared text lib data dt, in pages.
pub fn statm(task: &Task) -> String {
    let mm = &*task.mm;
    let st = mm.lock.read();
    let file = mm.counter(mm_counter::FILEPAGES) + mm.counter(mm_counter::SHMEMPAGES);
    let resident = file + mm.counter(mm_counter::ANONPAGES);
    let text = (page_align(st.end_code) - (st.start_code & !0xfff)) >> 12;
    format!("{} {} {} {} 0 {} 0\n", st.total_vm, resident, file, text, st.data_vm + st.stack_vm)
}

const fn page_align(x: u64) -> u64 {
    (x + 4095) & !4095
}

/// Renders `PID/<file>` for a task; `None` for an unknown file.
pub fn render_pid(k: &Kernel, task: &Task, file: &str) -> Option<String> {
    Some(match file {
        "maps" => maps(k, task),
        "smaps" => smaps(k, task),
        "smaps_rollup" => smaps_rollup(k, task),
        "status" => status(k, task),
        "statm" => statm(task),
        _ => return None,
    })
}

impl Kernel {
    /// The path maps prints for a file VMA (files arrive with the page cache).
    pub fn vma_file_name(&self, v: Vma<'_>) -> Option<String> {
        let f = v.file();
        if f == 0 {
            return None;
        }
        Some(self.vm.file_names.lock().get(&f).cloned().unwrap_or_else(|| format!("/oxmm/file/{f}")))
    }
}
