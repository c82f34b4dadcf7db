//! Host memory that backs simulated RAM: one anonymous mapping reserved
//! with `MAP_NORESERVE`, so a 64 GiB machine costs the host only the pages
//! the simulation touches. This module holds the sim's only `unsafe` code.

use std::io;
use std::ptr::NonNull;

use oxmm::hal::PhysMem;

/// A host mapping, unmapped on drop.
pub struct HostRam {
    base: NonNull<u8>,
    size: usize,
}

// SAFETY: the mapping is plain memory; sharing rules are PhysMem's.
unsafe impl Send for HostRam {}
// SAFETY: as above.
unsafe impl Sync for HostRam {}

impl HostRam {
    /// Reserves `size` bytes (rounded up to 4 KiB) of address space.
    pub fn new(size: u64) -> io::Result<HostRam> {
        let size = usize::try_from(size.div_ceil(4096) * 4096)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "RAM size does not fit the host address space"))?;
        if size == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "RAM size is zero"));
        }
        // SAFETY: an anonymous private mapping at a kernel-chosen address
        // touches no existing memory; the result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p as *mut u8).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(HostRam { base, size })
    }

    /// Bytes mapped.
    pub fn size(&self) -> u64 {
        self.size as u64
    }

    /// Hands the mapping to the core as physical memory; the `PhysMem`
    /// owns it and unmaps it when dropped.
    pub fn into_phys(self) -> PhysMem {
        let (base, size) = (self.base, self.size as u64);
        // SAFETY: the mapping is `size` bytes, readable and writable, page
        // aligned (mmap), and stays mapped until `self`, moved into the
        // PhysMem as its owner, drops.
        unsafe { PhysMem::with_owner(base, size, Box::new(self)) }
    }
}

impl Drop for HostRam {
    fn drop(&mut self) {
        // SAFETY: base/size are exactly what mmap returned.
        unsafe {
            libc::munmap(self.base.as_ptr() as *mut libc::c_void, self.size);
        }
    }
}
