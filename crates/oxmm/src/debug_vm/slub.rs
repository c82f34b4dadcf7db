//! SLUB invariants (`validate_slab_cache` and more), for tests and
//! self-checks while the machine is quiescent (no CPU mid-operation).
//!
//! For every SLUB cache:
//! - each slab on a node's partial list is a slab page of this cache on
//!   that node, marked as listed, neither full nor with more objects in
//!   use than it has; its freelist holds exactly `objects - inuse`
//!   distinct object slots of the slab; `nr_partial` counts the list;
//! - a cache has sheaves exactly when its capacity is non-zero; then every
//!   CPU has a main sheaf and no sheaf (main, spare, barn) holds more than
//!   the capacity, each sheaf names its cache, barns' counts match their
//!   lists, and the barns' empty sheaves are empty;
//! - every object in a sheaf is an object slot of this cache, appears in
//!   one sheaf once, and is on no slab's freelist (a free object is in one
//!   place only);
//! - no sheaf is referenced twice (main, spare and barns together).
//!
//! Errors name the cache, and the slab or object.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use crate::kernel::Kernel;
use crate::page::pg;
use crate::slab::slub::Counters;
use crate::slab::{CacheImpl, KmemCache, SlabFlags};
use crate::types::{Pfn, VirtAddr};

/// Checks every SLUB cache of the machine.
pub fn check_slub(k: &Kernel) -> Result<(), String> {
    for c in k.slab.caches() {
        if matches!(c.imp, CacheImpl::Slub(_)) {
            check_cache(k, c)?;
        }
    }
    Ok(())
}

/// Checks one SLUB cache (see the module doc).
pub fn check_cache(k: &Kernel, c: &KmemCache) -> Result<(), String> {
    let CacheImpl::Slub(s) = &c.imp else { return Ok(()) };
    let name = &c.name;
    let mut free_on_slabs: BTreeSet<u64> = BTreeSet::new();
    for (nid, n) in s.node.iter().enumerate() {
        let lists = n.list_lock.lock();
        let mut listed = 0u64;
        for slab in lists.partial.iter(&k.memmap) {
            listed += 1;
            let page = k.memmap.page(slab);
            let bad = |what: &str| Err(format!("{name}: partial slab {:#x} on node {nid}: {what}", slab.0));
            if !page.test(pg::SLAB) || page.mapping.load(Relaxed) != u64::from(c.id.0) {
                return bad("not a slab of this cache");
            }
            if page.nid() != nid {
                return bad("on another node's list");
            }
            if !page.test(pg::WORKINGSET) {
                return bad("listed but not marked as on the partial list");
            }
            let cnt = Counters::unpack(page.private.load(Relaxed));
            if cnt.inuse >= cnt.objects && !c.flags.intersects(SlabFlags::DEBUG_FLAGS) {
                return bad("full, or more objects in use than it has");
            }
            let mut seen = 0u32;
            let mut fp = page.index.load(Relaxed);
            while fp != 0 {
                if !k.check_valid_pointer(c, slab, fp) {
                    return bad(&format!("freelist entry {fp:#x} is not an object slot"));
                }
                if !free_on_slabs.insert(fp) {
                    return bad(&format!("object {fp:#x} twice on a freelist"));
                }
                seen += 1;
                if seen > cnt.objects {
                    return bad("freelist longer than the slab");
                }
                fp = k.get_freepointer(c, VirtAddr(fp));
            }
            if seen != cnt.objects - cnt.inuse {
                return bad(&format!("{seen} free objects on the freelist, counters say {}", cnt.objects - cnt.inuse));
            }
        }
        if listed != lists.nr_partial {
            return Err(format!("{name}: node {nid} lists {listed} partial slabs, nr_partial is {}", lists.nr_partial));
        }
    }
    let cap = s.sheaf_capacity.load(Relaxed);
    let mut sheaves: Vec<(u64, u32, &str)> = Vec::new();
    for (cpu, pcs) in s.pcs.iter().enumerate() {
        let main = pcs.main.load(Relaxed);
        if (main != 0) != (cap != 0) {
            return Err(format!("{name}: cpu {cpu} main sheaf {main:#x} with capacity {cap}"));
        }
        if main != 0 {
            sheaves.push((main, pcs.main_size.load(Relaxed), "main"));
        }
        let spare = pcs.spare.load(Relaxed);
        if spare != 0 {
            sheaves.push((spare, k.kread_u64(VirtAddr(spare + 24)) as u32, "spare"));
        }
    }
    for (nid, barn) in s.barn.iter().enumerate() {
        let b = barn.lock.lock();
        if barn.nr_full.load(Relaxed) as usize != b.full.len() || barn.nr_empty.load(Relaxed) as usize != b.empty.len()
        {
            return Err(format!("{name}: barn of node {nid} counts disagree with its lists"));
        }
        for &sh in &b.full {
            sheaves.push((sh, k.kread_u64(VirtAddr(sh + 24)) as u32, "barn full"));
        }
        for &sh in &b.empty {
            let size = k.kread_u64(VirtAddr(sh + 24)) as u32;
            if size != 0 {
                return Err(format!("{name}: empty sheaf {sh:#x} in the barn of node {nid} holds {size} objects"));
            }
            sheaves.push((sh, 0, "barn empty"));
        }
    }
    let mut seen_sheaves = BTreeSet::new();
    let mut in_sheaves = BTreeSet::new();
    for &(sh, size, role) in &sheaves {
        if !seen_sheaves.insert(sh) {
            return Err(format!("{name}: sheaf {sh:#x} ({role}) is referenced twice"));
        }
        if size > cap {
            return Err(format!("{name}: {role} sheaf {sh:#x} holds {size} objects, capacity {cap}"));
        }
        if k.kread_u64(VirtAddr(sh + 16)) != u64::from(c.id.0) {
            return Err(format!("{name}: {role} sheaf {sh:#x} names another cache"));
        }
        for i in 0..u64::from(size) {
            let obj = k.kread_u64(VirtAddr(sh + 32 + 8 * i));
            let slab: Option<Pfn> = k.obj_to_slab(c, VirtAddr(obj));
            if slab.is_none() {
                return Err(format!("{name}: {role} sheaf {sh:#x} holds {obj:#x}, not an object of the cache"));
            }
            if !in_sheaves.insert(obj) {
                return Err(format!("{name}: object {obj:#x} is in sheaves twice"));
            }
            if free_on_slabs.contains(&obj) {
                return Err(format!("{name}: object {obj:#x} is in a {role} sheaf and on its slab's freelist"));
            }
        }
    }
    Ok(())
}
