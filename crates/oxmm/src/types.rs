//! Unit newtypes shared by every module: page frame numbers, physical and
//! virtual addresses, allocation orders, and the errno type of syscall paths.
//!
//! Linux passes these around as bare `unsigned long`; here a page number can
//! never be passed where a byte address is expected.

use core::fmt;

/// log2 of the base page size (x86-64: 4 KiB pages).
pub const PAGE_SHIFT: u32 = 12;
/// Size of a base page in bytes.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// Mask that clears the offset-in-page bits of an address.
pub const PAGE_MASK: u64 = !(PAGE_SIZE - 1);
/// Largest buddy order (Linux's `MAX_PAGE_ORDER`, 10 on x86-64: 4 MiB blocks).
pub const MAX_PAGE_ORDER: u32 = 10;
/// Number of buddy orders, `MAX_PAGE_ORDER + 1` (Linux's `NR_PAGE_ORDERS`).
pub const NR_PAGE_ORDERS: usize = MAX_PAGE_ORDER as usize + 1;
/// Order of a pageblock (Linux's `pageblock_order`: the PMD order, 9, on x86-64).
pub const PAGEBLOCK_ORDER: u32 = 9;
/// Pages in one pageblock.
pub const PAGEBLOCK_NR_PAGES: u64 = 1 << PAGEBLOCK_ORDER;
/// log2 of the sparsemem section size (x86-64: 128 MiB sections).
pub const SECTION_SIZE_BITS: u32 = 27;
/// Pages in one memory section.
pub const PAGES_PER_SECTION: u64 = 1 << (SECTION_SIZE_BITS - PAGE_SHIFT);

/// A page frame number: a physical address divided by [`PAGE_SIZE`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pfn(pub u64);

impl Pfn {
    /// The physical address of the first byte of this frame.
    #[inline]
    pub const fn phys(self) -> PhysAddr {
        PhysAddr(self.0 << PAGE_SHIFT)
    }
    /// The frame `n` frames after this one.
    #[inline]
    pub const fn add(self, n: u64) -> Pfn {
        Pfn(self.0 + n)
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pfn:{:#x}", self.0)
    }
}

/// A physical (simulated RAM) byte address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysAddr(pub u64);

impl PhysAddr {
    /// The frame that holds this address.
    #[inline]
    pub const fn pfn(self) -> Pfn {
        Pfn(self.0 >> PAGE_SHIFT)
    }
    /// The frame number of the first frame starting at or after this address.
    #[inline]
    pub const fn pfn_up(self) -> Pfn {
        Pfn((self.0 + PAGE_SIZE - 1) >> PAGE_SHIFT)
    }
}

impl fmt::Debug for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pa:{:#x}", self.0)
    }
}

/// A virtual address in some address space (user or kernel).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VirtAddr(pub u64);

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "va:{:#x}", self.0)
    }
}

/// Linux error numbers, as syscall paths return them (positive values).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(i32)]
#[allow(missing_docs)]
pub enum Errno {
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    E2BIG = 7,
    EBADF = 9,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    ENODEV = 19,
    EINVAL = 22,
    ENFILE = 23,
    EMFILE = 24,
    ETXTBSY = 26,
    EFBIG = 27,
    ENOSPC = 28,
    ESPIPE = 29,
    EOVERFLOW = 75,
    EOPNOTSUPP = 95,
    EHWPOISON = 133,
}

impl Errno {
    /// The number Linux uses for this error.
    pub const fn code(self) -> i32 {
        self as i32
    }
    /// The symbolic name, as `strerrorname_np` gives it.
    pub const fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::ENOENT => "ENOENT",
            Errno::ESRCH => "ESRCH",
            Errno::EINTR => "EINTR",
            Errno::EIO => "EIO",
            Errno::E2BIG => "E2BIG",
            Errno::EBADF => "EBADF",
            Errno::EAGAIN => "EAGAIN",
            Errno::ENOMEM => "ENOMEM",
            Errno::EACCES => "EACCES",
            Errno::EFAULT => "EFAULT",
            Errno::EBUSY => "EBUSY",
            Errno::EEXIST => "EEXIST",
            Errno::ENODEV => "ENODEV",
            Errno::EINVAL => "EINVAL",
            Errno::ENFILE => "ENFILE",
            Errno::EMFILE => "EMFILE",
            Errno::ETXTBSY => "ETXTBSY",
            Errno::EFBIG => "EFBIG",
            Errno::ENOSPC => "ENOSPC",
            Errno::ESPIPE => "ESPIPE",
            Errno::EOVERFLOW => "EOVERFLOW",
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
            Errno::EHWPOISON => "EHWPOISON",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Rounds `x` up to a multiple of `align` (a power of two).
#[inline]
pub const fn align_up(x: u64, align: u64) -> u64 {
    (x + align - 1) & !(align - 1)
}

/// Rounds `x` down to a multiple of `align` (a power of two).
#[inline]
pub const fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}
