//! Typed objects in slab memory: a cache of `T` that hands out owning
//! handles ([`SlabBox`]) which free their object on drop.
//!
//! `T` is a [`RamView`] type (plain atomics, valid for any bits), so a
//! handle can give out `&T` into simulated RAM without `unsafe` at the use
//! site: later components keep their kernel objects (VMAs, anon_vmas,
//! xarray nodes, mm_structs...) in slab memory this way, and they show in
//! /proc/slabinfo under Linux's cache names.

use core::marker::PhantomData;
use core::ops::Deref;

use super::{CacheArgs, CacheId, SlabError, SlabFlags};
use crate::arch::x86_64::virt_to_phys;
use crate::gfp::Gfp;
use crate::hal::RamView;
use crate::kernel::Kernel;
use crate::types::VirtAddr;

/// A cache of `T` objects.
pub struct TypedCache<T: RamView> {
    id: CacheId,
    _t: PhantomData<fn() -> T>,
}

impl<T: RamView> Clone for TypedCache<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: RamView> Copy for TypedCache<T> {}

impl<T: RamView> TypedCache<T> {
    /// Creates (or merges into) a cache named `name` sized and aligned for `T`.
    pub fn create(k: &Kernel, name: &str, flags: SlabFlags) -> Result<TypedCache<T>, SlabError> {
        let size = u32::try_from(core::mem::size_of::<T>().max(1)).map_err(|_| SlabError::Invalid("type too large"))?;
        let align = core::mem::align_of::<T>() as u32;
        let id = k.kmem_cache_create(&CacheArgs { name, size, align, flags, ctor: None })?;
        Ok(TypedCache { id, _t: PhantomData })
    }

    /// The cache id.
    pub fn id(&self) -> CacheId {
        self.id
    }

    /// Allocates a zeroed object (`kmem_cache_zalloc`).
    pub fn alloc<'k>(&self, k: &'k Kernel, gfp: Gfp) -> Option<SlabBox<'k, T>> {
        let va = k.kmem_cache_alloc(self.id, gfp | Gfp::ZERO)?;
        Some(SlabBox { k, cache: self.id, va, _t: PhantomData })
    }

    /// Re-owns an object given up with [`SlabBox::into_raw`]; `None` when
    /// `va` is not an object of this cache.
    pub fn from_raw<'k>(&self, k: &'k Kernel, va: VirtAddr) -> Option<SlabBox<'k, T>> {
        let c = k.slab.cache(self.id)?;
        let ok = match &c.imp {
            super::CacheImpl::Slub(_) => k.obj_to_slab(c, va).is_some(),
            super::CacheImpl::Slab(_) => k.slab_obj_to_slab(c, va).is_some(),
            super::CacheImpl::Slob(_) => k.slob_object_valid(c, va),
        };
        // Not `then_some`: its argument is built eagerly, and a dropped
        // handle frees the object.
        if ok {
            Some(SlabBox { k, cache: self.id, va, _t: PhantomData })
        } else {
            None
        }
    }
}

/// An owned object of a [`TypedCache`]; freed when dropped.
pub struct SlabBox<'k, T: RamView> {
    k: &'k Kernel,
    cache: CacheId,
    va: VirtAddr,
    _t: PhantomData<&'k T>,
}

impl<T: RamView> SlabBox<'_, T> {
    /// The object's kernel address.
    pub fn addr(&self) -> VirtAddr {
        self.va
    }
    /// Gives up ownership without freeing; the address can be stored in
    /// another object and re-owned with [`TypedCache::from_raw`].
    pub fn into_raw(self) -> VirtAddr {
        let va = self.va;
        core::mem::forget(self);
        va
    }
}

impl<T: RamView> Deref for SlabBox<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Direct-map addresses handed out by the slab layer always translate.
        let pa = virt_to_phys(self.va).unwrap_or_default();
        &self.k.mem.view::<T>(pa, 1)[0]
    }
}

impl<T: RamView> Drop for SlabBox<'_, T> {
    fn drop(&mut self) {
        self.k.kmem_cache_free(self.cache, self.va);
    }
}
