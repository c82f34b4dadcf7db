//! The hardware abstraction: what the core needs from the machine it runs on.
//!
//! Two things only, so the core stays liftable into a kernel:
//! - [`PhysMem`], simulated RAM as one contiguous mapping. The core takes its
//!   base once at boot; `phys_to_virt` is then a base plus an offset, as the
//!   direct map is on Linux. This is the only module that turns physical
//!   addresses into Rust references, and so holds nearly all `unsafe` code.
//! - [`Hal`], the few per-call facts: which CPU is running, the clock.
//!
//! Typed views of RAM ([`PhysMem::view`]) hand out shared references to
//! atomic types, so every memmap or metadata word is read and written with
//! atomic operations (plain `mov` on x86-64 for `Relaxed`). Raw byte copies
//! ([`PhysMem::read`], [`PhysMem::write`], [`PhysMem::fill`]) are for page
//! contents, which no typed view covers.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicU8};

use crate::types::PhysAddr;

/// What the machine provides per call.
pub trait Hal: Send + Sync {
    /// The CPU the caller runs on (`smp_processor_id`), `< nr_cpu_ids()`.
    fn current_cpu(&self) -> usize;
    /// Number of possible CPUs.
    fn nr_cpu_ids(&self) -> usize;
    /// Virtual time since boot, in nanoseconds.
    fn now_ns(&self) -> u64;
    /// When the machine runs all its CPUs on one host thread, the cell
    /// holding the running CPU, so the hot paths read it with one load
    /// instead of a call. Read only while [`crate::Kernel::threaded`] is off.
    fn cpu_cell(&self) -> Option<alloc::sync::Arc<core::sync::atomic::AtomicUsize>> {
        None
    }
}

/// Types that may be viewed in simulated RAM: every bit pattern valid, only
/// interior mutability through atomics, no drop glue.
///
/// # Safety
/// Implementors must be valid for any bit pattern (including all zeroes),
/// contain only atomics or plain integers never mutated through `&self`
/// except atomically, and have no `Drop`.
pub unsafe trait RamView: Sync + Sized {}

// SAFETY: atomics are valid for every bit pattern and mutate only atomically.
unsafe impl RamView for AtomicU8 {}
// SAFETY: as above.
unsafe impl RamView for AtomicU32 {}
// SAFETY: as above.
unsafe impl RamView for AtomicI32 {}
// SAFETY: as above.
unsafe impl RamView for AtomicU64 {}
// SAFETY: as above.
unsafe impl RamView for AtomicI64 {}
// SAFETY: an array of RamView values is valid for any bits and mutated only
// through its elements' atomics.
unsafe impl<T: RamView, const N: usize> RamView for [T; N] {}

#[cold]
#[inline(never)]
fn word_out_of_range(pa: PhysAddr) -> ! {
    panic!("physical word {:#x} outside RAM or misaligned", pa.0)
}

/// Simulated physical memory: `[0, size)` of physical address space backed
/// by one host mapping.
pub struct PhysMem {
    base: NonNull<u8>,
    size: u64,
    /// Whatever owns the mapping; dropped (unmapping it) after the last use.
    _owner: Option<alloc::boxed::Box<dyn core::any::Any + Send + Sync>>,
}

// SAFETY: the mapping is shared memory accessed through atomics (typed views)
// or through copies whose callers own the bytes (page contents).
unsafe impl Send for PhysMem {}
// SAFETY: as above.
unsafe impl Sync for PhysMem {}

impl PhysMem {
    /// Wraps a mapping.
    ///
    /// # Safety
    /// `base` must point to `size` bytes that are readable and writable,
    /// aligned to at least 4096, that stay mapped as long as this value or
    /// any reference it hands out lives, and that nothing else accesses
    /// except through this value.
    pub unsafe fn new(base: NonNull<u8>, size: u64) -> PhysMem {
        PhysMem { base, size, _owner: None }
    }

    /// Wraps a mapping owned by `owner`, which is dropped with this value.
    ///
    /// # Safety
    /// As [`PhysMem::new`], with "stays mapped" meaning: until `owner` drops.
    pub unsafe fn with_owner(
        base: NonNull<u8>,
        size: u64,
        owner: alloc::boxed::Box<dyn core::any::Any + Send + Sync>,
    ) -> PhysMem {
        PhysMem { base, size, _owner: Some(owner) }
    }

    /// Bytes of physical address space.
    #[inline]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The host address of physical address `pa` (the direct map).
    #[inline]
    pub fn host_ptr(&self, pa: PhysAddr) -> *mut u8 {
        debug_assert!(pa.0 <= self.size);
        self.base.as_ptr().wrapping_add(pa.0 as usize)
    }

    #[inline]
    fn check(&self, pa: PhysAddr, len: u64, align: u64) {
        assert!(
            pa.0.is_multiple_of(align) && pa.0.checked_add(len).is_some_and(|end| end <= self.size),
            "physical range {:#x}+{:#x} outside RAM of {:#x} bytes or misaligned",
            pa.0,
            len,
            self.size
        );
    }

    /// The 8-byte word at `pa`, for the allocators' hot paths: one bounds
    /// and alignment test instead of [`PhysMem::view`]'s general ones.
    ///
    /// # Panics
    /// If `pa` is not 8-byte aligned or the word is not inside RAM.
    #[inline(always)]
    pub fn word(&self, pa: PhysAddr) -> &core::sync::atomic::AtomicU64 {
        if pa.0 & 7 != 0 || pa.0 >= self.size & !7 {
            word_out_of_range(pa);
        }
        // SAFETY: the word is inside the mapping and 8-byte aligned
        // (checked; the mapping is page-aligned), AtomicU64 is valid for any
        // bits and only accessed atomically, and the mapping outlives &self.
        unsafe { &*(self.host_ptr(pa) as *const core::sync::atomic::AtomicU64) }
    }

    /// A typed view of `count` values of `T` at `pa`.
    ///
    /// # Panics
    /// If the range leaves RAM or `pa` is not aligned for `T`.
    #[inline]
    pub fn view<T: RamView>(&self, pa: PhysAddr, count: usize) -> &[T] {
        let len = (count * core::mem::size_of::<T>()) as u64;
        self.check(pa, len, core::mem::align_of::<T>() as u64);
        // SAFETY: the range is inside the mapping (checked), aligned for T
        // (checked), T is valid for any bits (RamView) and only mutated
        // atomically, and the mapping outlives &self (PhysMem::new contract).
        unsafe { core::slice::from_raw_parts(self.host_ptr(pa) as *const T, count) }
    }

    /// Copies bytes out of RAM.
    ///
    /// # Panics
    /// If the range leaves RAM.
    pub fn read(&self, pa: PhysAddr, buf: &mut [u8]) {
        self.check(pa, buf.len() as u64, 1);
        // SAFETY: source range checked inside the mapping; the destination
        // is a distinct Rust buffer.
        unsafe { core::ptr::copy_nonoverlapping(self.host_ptr(pa), buf.as_mut_ptr(), buf.len()) }
    }

    /// Copies bytes into RAM.
    ///
    /// # Panics
    /// If the range leaves RAM.
    pub fn write(&self, pa: PhysAddr, buf: &[u8]) {
        self.check(pa, buf.len() as u64, 1);
        // SAFETY: destination range checked inside the mapping; the source
        // is a distinct Rust buffer.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), self.host_ptr(pa), buf.len()) }
    }

    /// Sets `len` bytes at `pa` to `byte` (zeroing a page: `clear_page`).
    ///
    /// # Panics
    /// If the range leaves RAM.
    pub fn fill(&self, pa: PhysAddr, len: u64, byte: u8) {
        self.check(pa, len, 1);
        // SAFETY: range checked inside the mapping.
        unsafe { core::ptr::write_bytes(self.host_ptr(pa), byte, len as usize) }
    }
}
