//! x86-64 memory layout (Linux's `Documentation/arch/x86/x86_64/mm.rst`,
//! 4-level paging): where the direct map, vmalloc and the vmemmap live.
//! Page-table formats come with the address-space component.

use crate::types::{PhysAddr, VirtAddr};

/// Start of the direct mapping of all physical memory (`PAGE_OFFSET`).
pub const PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;
/// Size of the direct-map region (64 TiB).
pub const DIRECT_MAP_SIZE: u64 = 64 << 40;
/// Start of the vmalloc/ioremap area (`VMALLOC_START`).
pub const VMALLOC_START: u64 = 0xffff_c900_0000_0000;
/// Last byte of the vmalloc area (`VMALLOC_END`): 32 TiB.
pub const VMALLOC_END: u64 = 0xffff_e8ff_ffff_ffff;
/// Start of the virtual memmap (`VMEMMAP_START`).
pub const VMEMMAP_START: u64 = 0xffff_ea00_0000_0000;
/// Top of user space with 4-level paging (`TASK_SIZE_MAX`).
pub const TASK_SIZE_MAX: u64 = 0x0000_7fff_ffff_f000;

/// The kernel virtual address of a physical address (`__va`).
#[inline]
pub const fn phys_to_virt(pa: PhysAddr) -> VirtAddr {
    VirtAddr(pa.0 + PAGE_OFFSET)
}

/// The physical address behind a direct-map address (`__pa`), or `None`
/// when the address is not in the direct map.
#[inline]
pub const fn virt_to_phys(va: VirtAddr) -> Option<PhysAddr> {
    if va.0 >= PAGE_OFFSET && va.0 - PAGE_OFFSET < DIRECT_MAP_SIZE {
        Some(PhysAddr(va.0 - PAGE_OFFSET))
    } else {
        None
    }
}
pub mod pgtable;
pub mod tlb;
