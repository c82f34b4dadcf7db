//! # oxmm: Linux's memory-management subsystem in Rust
//!
//! The `no_std` core: every `mm/` component, over simulated physical memory
//! that the host provides through [`hal`]. Modules are named after the
//! Linux files they follow:
//!
//! | module | Linux | holds |
//! |---|---|---|
//! | [`hal`] | arch hooks | physical memory access, current CPU, clock |
//! | [`types`] | | `Pfn`, `PhysAddr`, `VirtAddr`, `Errno`, page constants |
//! | [`gfp`] | `gfp_types.h` | GFP flags, `gfp_zone`, `gfp_migratetype` |
//! | [`mmzone`] | `mmzone.h` | zone and migratetype enums |
//! | [`memblock`] | `memblock.c` | the early allocator |
//! | [`page`] | `mm_types.h`, `page-flags.h`, `sparse.c` | `Page`, flags, the memmap |
//! | [`folio`] | `mm.h` | compound pages and folios |
//! | [`mm_init`] | `mm_init.c` | boot: zones, memmap, freeing to the buddy |
//! | [`page_alloc`] | `page_alloc.c` | the buddy allocator, pcp lists, watermarks |
//! | [`vmstat`] | `vmstat.c` | counters with Linux's names |
//! | [`proc`] | `fs/proc/*` | /proc renderers in Linux's formats |
//! | [`sysctl`] | `kernel/sysctl.c` | the `vm.*` knobs |
//! | [`printk`] | `printk` | the kernel log |
//! | [`slab`] | `slab_common.c`, `slub.c` | kmem caches, SLUB, kmalloc |
//! | [`vmalloc`] | `vmalloc.c` | kernel virtual areas, lazy purging |
//! | [`percpu`] | `percpu.c`, `percpu-vm.c` | per-cpu chunks: the boot chunk, vmalloc chunks |
//! | [`arch`] | `arch/x86/mm` | the x86-64 layout |
//! | [`debug_vm`] | `debug_vm` | invariant checkers |
//!
//! Lock order (outermost first): slab_mutex -> list_lock -> slab_lock ->
//! pcp lock -> zone lock.

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod arch;
pub mod debug_vm;
pub mod folio;
pub mod fork;
pub mod gfp;
pub mod hal;
pub mod hugetlb;
pub mod kernel;
pub mod madvise;
pub mod memblock;
pub mod memory;
pub mod mincore;
pub mod mlock;
pub mod mm_init;
pub mod mm_types;
pub mod mmap;
pub mod mmzone;
pub mod mprotect;
pub mod mremap;
pub mod page;
pub mod page_alloc;
pub mod percpu;
pub mod printk;
pub mod proc;
pub mod rmap;
pub mod shmem;
pub mod slab;
pub mod swap;
pub mod sysctl;
pub mod types;
pub mod vma;
pub mod vmalloc;
pub mod vmstat;

pub use gfp::Gfp;
pub use kernel::Kernel;
pub use types::{Errno, Pfn, PhysAddr, VirtAddr};
