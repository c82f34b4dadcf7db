//! Address spaces: `Mm` (Linux's `mm_struct`), VMAs (`vm_area_struct`)
//! and the process (`task_struct`) that owns them (Linux's
//! `include/linux/mm_types.h`, `mm.h`, `sched.h`).
//!
//! A VMA lives in simulated RAM, an object of the `vm_area_struct` slab
//! cache: [`VmAreaStruct`] is its layout, [`Vma`] a handle to one. The
//! VMA tree (`vma.rs`) indexes those objects by end address, as Linux's
//! maple tree does. The host-side [`Mm`] keeps what Rust needs to own (the
//! tree, the `mmap_lock`); its counters the kernel would read without the
//! lock are atomics.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::hal::RamView;
use crate::kernel::Kernel;
use crate::types::{Pfn, VirtAddr};

/// VMA flags (`VM_*` of `include/linux/mm.h`), with Linux's bit values.
pub mod vm {
    #![allow(missing_docs)]
    pub const NONE: u64 = 0;
    pub const READ: u64 = 0x1;
    pub const WRITE: u64 = 0x2;
    pub const EXEC: u64 = 0x4;
    pub const SHARED: u64 = 0x8;
    pub const MAYREAD: u64 = 0x10;
    pub const MAYWRITE: u64 = 0x20;
    pub const MAYEXEC: u64 = 0x40;
    pub const MAYSHARE: u64 = 0x80;
    pub const GROWSDOWN: u64 = 0x100;
    pub const UFFD_MISSING: u64 = 0x200;
    pub const PFNMAP: u64 = 0x400;
    pub const MAYBE_GUARD: u64 = 0x800;
    pub const UFFD_WP: u64 = 0x1000;
    pub const LOCKED: u64 = 0x2000;
    pub const IO: u64 = 0x4000;
    pub const SEQ_READ: u64 = 0x8000;
    pub const RAND_READ: u64 = 0x10000;
    pub const DONTCOPY: u64 = 0x20000;
    pub const DONTEXPAND: u64 = 0x40000;
    pub const LOCKONFAULT: u64 = 0x80000;
    pub const ACCOUNT: u64 = 0x100000;
    pub const NORESERVE: u64 = 0x200000;
    pub const HUGETLB: u64 = 0x400000;
    pub const SYNC: u64 = 0x800000;
    pub const ARCH_1: u64 = 0x1000000;
    pub const WIPEONFORK: u64 = 0x2000000;
    pub const DONTDUMP: u64 = 0x4000000;
    pub const SOFTDIRTY: u64 = 0x8000000;
    pub const MIXEDMAP: u64 = 0x10000000;
    pub const HUGEPAGE: u64 = 0x20000000;
    pub const NOHUGEPAGE: u64 = 0x40000000;
    pub const MERGEABLE: u64 = 0x80000000;
    /// `VM_DROPPABLE` (a high architecture bit on x86-64).
    pub const DROPPABLE: u64 = 1 << 36;
    /// Stack VMAs grow down on x86.
    pub const STACK: u64 = GROWSDOWN;
    /// Flags that keep a stack's guard gap in front of it.
    pub const STARTGAP_FLAGS: u64 = GROWSDOWN;
    /// Locked, or locked on fault.
    pub const LOCKED_MASK: u64 = LOCKED | LOCKONFAULT;
    /// `VM_SPECIAL`: never merged, never expanded by mremap.
    pub const SPECIAL: u64 = IO | DONTEXPAND | PFNMAP | MIXEDMAP;
    /// Flags that do not stop two VMAs from merging.
    pub const IGNORE_MERGE: u64 = SOFTDIRTY;
    /// Heap and data (`VM_DATA_DEFAULT_FLAGS` on x86-64).
    pub const DATA_DEFAULT: u64 = READ | WRITE | MAYREAD | MAYWRITE | MAYEXEC;
    /// `VM_STACK_FLAGS` (without `VM_ACCOUNT`, added by the caller).
    pub const STACK_DEFAULT: u64 = GROWSDOWN | READ | WRITE | MAYREAD | MAYWRITE | MAYEXEC;
    /// Access flags.
    pub const ACCESS: u64 = READ | WRITE | EXEC;
}

/// The in-RAM layout of a VMA, an object of the `vm_area_struct` cache.
#[repr(C)]
#[derive(Default)]
pub struct VmAreaStruct {
    /// First address.
    pub vm_start: AtomicU64,
    /// First address after the end.
    pub vm_end: AtomicU64,
    /// `VM_*` flags.
    pub vm_flags: AtomicU64,
    /// Offset in the file (or, for anonymous memory, `vm_start >> 12` at creation), in pages.
    pub vm_pgoff: AtomicU64,
    /// Id of the owning [`Mm`].
    pub vm_mm: AtomicU64,
    /// The `anon_vma` object (kernel virtual address) or 0.
    pub anon_vma: AtomicU64,
    /// First `anon_vma_chain` of this VMA (the `anon_vma_chain` list), or 0.
    pub anon_vma_chain: AtomicU64,
    /// File handle id (0: anonymous memory).
    pub vm_file: AtomicU64,
    /// `anon_vma_name` object (kmalloc'd) or 0.
    pub anon_name: AtomicU64,
    /// NUMA policy object or 0 (default policy).
    pub vm_policy: AtomicU64,
    /// userfaultfd context or 0.
    pub vm_userfaultfd_ctx: AtomicU64,
}

// SAFETY: plain atomics, valid for any bits, no Drop.
unsafe impl RamView for VmAreaStruct {}

/// A handle to a VMA object in simulated RAM.
#[derive(Clone, Copy)]
pub struct Vma<'k> {
    /// The object's kernel virtual address.
    pub va: VirtAddr,
    raw: &'k VmAreaStruct,
}

impl core::fmt::Debug for Vma<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Vma({:#x}-{:#x} flags {:#x})", self.start(), self.end(), self.flags())
    }
}

impl PartialEq for Vma<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.va == o.va
    }
}

impl<'k> Vma<'k> {
    /// The VMA at kernel address `va`.
    #[inline]
    pub fn at(k: &'k Kernel, va: VirtAddr) -> Vma<'k> {
        let pa = crate::arch::x86_64::virt_to_phys(va).expect("VMA objects live in the direct map");
        Vma { va, raw: &k.mem.view::<VmAreaStruct>(pa, 1)[0] }
    }
    /// The raw object.
    #[inline]
    pub fn raw(&self) -> &'k VmAreaStruct {
        self.raw
    }
    /// `vm_start`.
    #[inline]
    pub fn start(&self) -> u64 {
        self.raw.vm_start.load(Relaxed)
    }
    /// `vm_end`.
    #[inline]
    pub fn end(&self) -> u64 {
        self.raw.vm_end.load(Relaxed)
    }
    /// `vm_flags`.
    #[inline]
    pub fn flags(&self) -> u64 {
        self.raw.vm_flags.load(Relaxed)
    }
    /// Replaces `vm_flags`.
    #[inline]
    pub fn set_flags(&self, f: u64) {
        self.raw.vm_flags.store(f, Relaxed)
    }
    /// `vm_pgoff`.
    #[inline]
    pub fn pgoff(&self) -> u64 {
        self.raw.vm_pgoff.load(Relaxed)
    }
    /// `anon_vma` (0: none yet).
    #[inline]
    pub fn anon_vma(&self) -> u64 {
        self.raw.anon_vma.load(Relaxed)
    }
    /// File handle (0: anonymous).
    #[inline]
    pub fn file(&self) -> u64 {
        self.raw.vm_file.load(Relaxed)
    }
    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> u64 {
        self.end() - self.start()
    }
    /// Pages.
    #[inline]
    pub fn pages(&self) -> u64 {
        self.len() >> 12
    }
    /// True when the VMA covers nothing (never for a VMA in a tree).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// True when `addr` is inside.
    #[inline]
    pub fn contains(&self, addr: u64) -> bool {
        self.start() <= addr && addr < self.end()
    }
    /// Anonymous memory: no file behind it (`vma_is_anonymous`).
    #[inline]
    pub fn is_anonymous(&self) -> bool {
        self.file() == 0
    }
    /// The page index of `addr` in the VMA's object (`linear_page_index`).
    #[inline]
    pub fn linear_page_index(&self, addr: u64) -> u64 {
        ((addr - self.start()) >> 12) + self.pgoff()
    }
    /// Start less the stack guard gap for stacks (`vm_start_gap`).
    #[inline]
    pub fn start_gap(&self, guard: u64) -> u64 {
        let s = self.start();
        if self.flags() & vm::STARTGAP_FLAGS != 0 {
            s.saturating_sub(guard)
        } else {
            s
        }
    }
    /// End (`vm_end_gap`; x86 has no grows-up VMAs).
    #[inline]
    pub fn end_gap(&self) -> u64 {
        self.end()
    }
    /// Accessible at all (`vma_is_accessible`).
    #[inline]
    pub fn is_accessible(&self) -> bool {
        self.flags() & vm::ACCESS != 0
    }
    /// Private writable: writes copy (`is_cow_mapping`).
    #[inline]
    pub fn is_cow_mapping(&self) -> bool {
        self.flags() & (vm::SHARED | vm::MAYWRITE) == vm::MAYWRITE
    }
}

/// A resource limit (`struct rlimit`); [`RLIM_INFINITY`] for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// Soft limit.
    pub cur: u64,
    /// Hard limit.
    pub max: u64,
}

/// No limit.
pub const RLIM_INFINITY: u64 = u64::MAX;

/// Resource numbers (`RLIMIT_*`) this layer uses.
pub mod rlimit {
    #![allow(missing_docs)]
    pub const DATA: usize = 2;
    pub const STACK: usize = 3;
    pub const MEMLOCK: usize = 8;
    pub const AS: usize = 9;
    pub const NLIMITS: usize = 16;
}

/// Linux's default limits for a new process (`INIT_RLIMITS` with a
/// distribution's usual 8 MiB stack and 8 MiB memlock).
pub fn default_rlimits() -> [Rlimit; rlimit::NLIMITS] {
    let inf = Rlimit { cur: RLIM_INFINITY, max: RLIM_INFINITY };
    let mut r = [inf; rlimit::NLIMITS];
    r[rlimit::STACK] = Rlimit { cur: 8 << 20, max: RLIM_INFINITY };
    r[rlimit::MEMLOCK] = Rlimit { cur: 8 << 20, max: 8 << 20 };
    r
}

/// Per-mm RSS counter kinds (`MM_FILEPAGES`...).
pub mod mm_counter {
    #![allow(missing_docs)]
    pub const FILEPAGES: usize = 0;
    pub const ANONPAGES: usize = 1;
    pub const SWAPENTS: usize = 2;
    pub const SHMEMPAGES: usize = 3;
    pub const NR: usize = 4;
}

/// State under the `mmap_lock`.
#[derive(Debug, Default)]
pub struct MmState {
    /// VMAs by end address (the maple tree's index): `vm_end -> object`.
    pub tree: BTreeMap<u64, VirtAddr>,
    /// Number of VMAs (`map_count`).
    pub map_count: u64,
    /// Top of the top-down mmap area.
    pub mmap_base: u64,
    /// Base of the bottom-up (legacy) area.
    pub mmap_legacy_base: u64,
    /// Highest user address + 1 (`TASK_SIZE`).
    pub task_size: u64,
    /// Top-down layout (`MMF_TOPDOWN`).
    pub topdown: bool,
    /// Program text.
    pub start_code: u64,
    /// End of text.
    pub end_code: u64,
    /// Start of data.
    pub start_data: u64,
    /// End of data.
    pub end_data: u64,
    /// Start of the heap.
    pub start_brk: u64,
    /// Current break.
    pub brk: u64,
    /// Top of the initial stack.
    pub start_stack: u64,
    /// Pages mapped (`total_vm`).
    pub total_vm: u64,
    /// Pages locked (`locked_vm`).
    pub locked_vm: u64,
    /// Pages pinned (`pinned_vm`).
    pub pinned_vm: u64,
    /// Private writable, not stack (`data_vm`).
    pub data_vm: u64,
    /// Executable, not writable (`exec_vm`).
    pub exec_vm: u64,
    /// Stack (`stack_vm`).
    pub stack_vm: u64,
    /// Peak of `total_vm`.
    pub hiwater_vm: u64,
    /// Flags every new VMA gets (`VM_LOCKED`... from mlockall(MCL_FUTURE)).
    pub def_flags: u64,
}

/// An address space (`struct mm_struct`).
pub struct Mm {
    /// Unique id (also the TLB tag, like a PCID).
    pub id: u64,
    /// The top-level page table.
    pub pgd: Pfn,
    /// The `mm_struct` object in slab memory.
    pub obj: VirtAddr,
    /// The `mmap_lock`, over what it guards.
    pub lock: spin::RwLock<MmState>,
    /// RSS counters ([`mm_counter`]).
    pub rss: [AtomicI64; mm_counter::NR],
    /// Peak RSS in pages.
    pub hiwater_rss: AtomicU64,
    /// Bytes of page tables (`pgtables_bytes`).
    pub pgtables_bytes: AtomicI64,
    /// CPUs whose TLBs may hold translations of this mm (`mm_cpumask`).
    pub cpumask: AtomicU64,
    /// Set once the mm is torn down.
    pub dead: AtomicBool,
}

impl core::fmt::Debug for Mm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Mm({})", self.id)
    }
}

impl Mm {
    /// RSS of one kind, in pages.
    pub fn counter(&self, kind: usize) -> u64 {
        self.rss[kind].load(Relaxed).max(0) as u64
    }
    /// Anonymous + file + shmem pages (`get_mm_rss`).
    pub fn rss_pages(&self) -> u64 {
        self.counter(mm_counter::FILEPAGES) + self.counter(mm_counter::ANONPAGES) + self.counter(mm_counter::SHMEMPAGES)
    }
    /// Adds to an RSS counter, keeping the peak (`add_mm_counter`).
    /// `unshared` says no other CPU runs meanwhile (all CPUs on one host
    /// thread), so a plain update suffices, as Linux's per-CPU
    /// `percpu_counter` gets without a lock.
    pub fn add_counter_with(&self, kind: usize, n: i64, unshared: bool) {
        if unshared {
            let c = &self.rss[kind];
            c.store(c.load(Relaxed) + n, Relaxed);
        } else {
            self.rss[kind].fetch_add(n, Relaxed);
        }
        if n > 0 {
            let rss = self.rss_pages();
            if rss > self.hiwater_rss.load(Relaxed) {
                self.hiwater_rss.store(rss, Relaxed);
            }
        }
    }

    /// Adds to an RSS counter, keeping the peak (`add_mm_counter`).
    pub fn add_counter(&self, kind: usize, n: i64) {
        self.rss[kind].fetch_add(n, Relaxed);
        if n > 0 {
            let rss = self.rss_pages();
            if rss > self.hiwater_rss.load(Relaxed) {
                self.hiwater_rss.store(rss, Relaxed);
            }
        }
    }
}

/// Personality bits this layer reads.
pub mod personality {
    #![allow(missing_docs)]
    pub const ADDR_NO_RANDOMIZE: u64 = 0x0040000;
    pub const ADDR_COMPAT_LAYOUT: u64 = 0x0200000;
    pub const READ_IMPLIES_EXEC: u64 = 0x0400000;
}

/// A process (the parts of `task_struct` memory management reads).
pub struct Task {
    /// Process id.
    pub pid: u64,
    /// Command name.
    pub comm: String,
    /// The address space.
    pub mm: Arc<Mm>,
    /// Resource limits.
    pub rlim: spin::Mutex<[Rlimit; rlimit::NLIMITS]>,
    /// `personality(2)` value.
    pub personality: AtomicU64,
    /// Holds `CAP_IPC_LOCK`.
    pub cap_ipc_lock: AtomicBool,
    /// Holds `CAP_SYS_RESOURCE` (may raise hard limits).
    pub cap_sys_resource: AtomicBool,
    /// Holds `CAP_SYS_RAWIO` (may map below `vm.mmap_min_addr`).
    pub cap_sys_rawio: AtomicBool,
    /// The `task_struct` object in slab memory.
    pub obj: VirtAddr,
}

impl core::fmt::Debug for Task {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Task({} {})", self.pid, self.comm)
    }
}

impl Task {
    /// The soft limit of resource `r`.
    pub fn rlimit(&self, r: usize) -> u64 {
        self.rlim.lock()[r].cur
    }
    /// Holds `CAP_SYS_RAWIO`.
    pub fn cap_sys_rawio(&self) -> bool {
        self.cap_sys_rawio.load(Relaxed)
    }
    /// Address-space randomization on (`PF_RANDOMIZE`).
    pub fn randomize(&self, k: &Kernel) -> bool {
        self.personality.load(Relaxed) & personality::ADDR_NO_RANDOMIZE == 0
            && k.vm.randomize_va_space.load(Relaxed) != 0
    }
}

/// Kernel-wide state of the virtual-memory layer.
pub struct VmState {
    /// Next mm id.
    pub next_mm_id: AtomicU64,
    /// Next pid.
    pub next_pid: AtomicU64,
    /// Committed address space in pages (`vm_committed_as`).
    pub committed_as: AtomicI64,
    /// The shared zero page.
    pub zero_pfn: spin::Once<Pfn>,
    /// The stack guard gap in bytes (`stack_guard_gap`, 256 pages).
    pub stack_guard_gap: AtomicU64,
    /// `kernel.randomize_va_space` (0 off, 1 mmap/stack, 2 also brk).
    pub randomize_va_space: AtomicU64,
    /// `vm.legacy_va_layout`.
    pub legacy_va_layout: AtomicU64,
    /// Processes by pid.
    pub tasks: spin::Mutex<BTreeMap<u64, Arc<Task>>>,
    /// Random state for ASLR (SplitMix64).
    pub rng: AtomicU64,
    /// `vm.admin_reserve_kbytes`.
    pub admin_reserve_kbytes: AtomicU64,
    /// What maps prints for a VMA's file handle (a path, or `[vdso]` for
    /// special mappings); files arrive with the page cache.
    pub file_names: spin::Mutex<BTreeMap<u64, String>>,
    /// Shared memory files.
    pub shmem: crate::shmem::ShmemState,
    /// hugetlbfs files.
    pub hugetlb: crate::hugetlb::HugetlbState,
    /// `vm.user_reserve_kbytes`.
    pub user_reserve_kbytes: AtomicU64,
}

impl Default for VmState {
    fn default() -> Self {
        VmState {
            next_mm_id: AtomicU64::new(1),
            next_pid: AtomicU64::new(1),
            committed_as: AtomicI64::new(0),
            zero_pfn: spin::Once::new(),
            stack_guard_gap: AtomicU64::new(256 << 12),
            randomize_va_space: AtomicU64::new(2),
            legacy_va_layout: AtomicU64::new(0),
            tasks: spin::Mutex::new(BTreeMap::new()),
            rng: AtomicU64::new(0x6f786d6d),
            admin_reserve_kbytes: AtomicU64::new(8192),
            file_names: spin::Mutex::new(BTreeMap::new()),
            shmem: Default::default(),
            hugetlb: Default::default(),
            user_reserve_kbytes: AtomicU64::new(131072),
        }
    }
}

impl VmState {
    /// The next random number (`get_random_long`), from a seeded generator
    /// so that a run is reproducible.
    pub fn random_long(&self) -> u64 {
        let s = self.rng.fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
