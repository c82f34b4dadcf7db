//! Back-end skeleton; the implementation replaces this file.

use super::{CacheArgs, CacheId, KmemCache, SlabError, SlabInfo};
use crate::gfp::Gfp;
use crate::kernel::Kernel;
use crate::types::VirtAddr;

/// Back-end state of one cache.
pub struct SlabCache {}

/// Builds a cache.
pub fn new_cache(_k: &Kernel, _id: CacheId, _args: &CacheArgs<'_>) -> Result<KmemCache, SlabError> {
    Err(SlabError::Invalid("back-end not built yet"))
}

impl Kernel {
    /// Allocation.
    pub(crate) fn slab_alloc(&self, _c: &KmemCache, _gfp: Gfp, _nid: usize) -> Option<VirtAddr> {
        None
    }
    /// Free.
    pub(crate) fn slab_free(&self, _c: &KmemCache, _obj: VirtAddr) {}
    /// Shrink.
    pub(crate) fn slab_shrink(&self, _c: &KmemCache) {}
    /// slabinfo numbers.
    pub(crate) fn slab_info(&self, _c: &KmemCache) -> SlabInfo {
        SlabInfo::default()
    }
    /// Exact objects in use.
    pub fn slab_objects_in_use(&self, _c: &KmemCache) -> u64 {
        0
    }
}
