//! `/proc/slabinfo` (Linux's `slabinfo_show` in `mm/slab_common.c`,
//! format version 2.1) and the SLUB attributes of `/sys/kernel/slab/<cache>/`
//! (`mm/slub.c`'s sysfs files).

use alloc::string::String;
use core::fmt::Write;

use crate::kernel::Kernel;

/// Renders `/proc/slabinfo`: one line per cache, newest first as Linux's
/// `slab_caches` list is; merged caches appear once, under the first name.
pub fn slabinfo(k: &Kernel) -> String {
    let mut s = String::from("slabinfo - version: 2.1\n");
    s.push_str(
        "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n",
    );
    let caches: alloc::vec::Vec<_> = k.slab.caches().collect();
    for c in caches.iter().rev() {
        let i = k.kmem_cache_info(c);
        let _ = writeln!(
            s,
            "{:<17} {:>6} {:>6} {:>6} {:>4} {:>4} : tunables {:>4} {:>4} {:>4} : slabdata {:>6} {:>6} {:>6}",
            c.name,
            i.active_objs,
            i.num_objs,
            c.size,
            c.objects_per_slab,
            1u32 << c.order,
            i.limit,
            i.batchcount,
            i.shared,
            i.active_slabs,
            i.num_slabs,
            i.shared_avail
        );
    }
    s
}

/// Renders `/sys/kernel/slab/<cache>/<attr>` (`path` is `<cache>/<attr>`);
/// `None` when the cache or attribute does not exist, or when the
/// back-end is not SLUB (Linux has this directory only with SLUB).
pub fn sys_kernel_slab(k: &Kernel, path: &str) -> Option<String> {
    let (name, attr) = path.rsplit_once('/')?;
    let c = k.slab.caches().find(|c| c.name == name || c.aliases.lock().iter().any(|a| a == name))?;
    k.slub_sysfs(c, attr)
}
