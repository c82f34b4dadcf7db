//! Address-space invariants (Linux's `validate_mm` under
//! `CONFIG_DEBUG_VM_MAPLE_TREE`, plus the page-table and rmap cross-checks
//! its `page_table_check` and `DEBUG_VM` assertions make one at a time).
//!
//! [`check_mm`] looks at one address space: the VMA tree is sorted,
//! non-overlapping, indexed by end and counted; neighbours that Linux
//! would have merged are not left apart; every PTE lies in a VMA and has
//! no more rights than the VMA; anonymous pages' `index` is where the rmap
//! will look for them and their `anon_vma` reaches the VMA; the RSS
//! counters, `total_vm` and the page-table byte count agree with what the
//! tables hold. [`check_mappings`] then checks every mapped page's
//! mapcount and refcount against the PTEs of all address spaces.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use crate::arch::x86_64::pgtable::{bits, entry_pfn, pte_present, Level};
use crate::kernel::Kernel;
use crate::mm_types::{mm_counter, vm, Task, Vma};
use crate::page::pg;
use crate::rmap::PAGE_MAPPING_ANON;
use crate::types::Pfn;

/// Every leaf entry of an address space: `(address, entry)`.
fn leaf_entries(k: &Kernel, root: Pfn, tables: &mut u64) -> Vec<(u64, u64)> {
    fn walk(k: &Kernel, t: Pfn, l: Level, base: u64, out: &mut Vec<(u64, u64)>, tables: &mut u64) {
        *tables += 1;
        for (i, e) in k.table(t).iter().enumerate() {
            let v = e.load(Relaxed);
            if v == 0 {
                continue;
            }
            let va = base + ((i as u64) << l.shift());
            match l.next() {
                Some(next) if v & bits::PRESENT != 0 && v & bits::PSE == 0 => {
                    walk(k, entry_pfn(v), next, va, out, tables)
                }
                _ => out.push((va, v)),
            }
        }
    }
    let mut out = Vec::new();
    walk(k, root, Level::top(k.pgtable_levels), 0, &mut out, tables);
    out
}

/// Whether two adjacent VMAs are ones Linux never leaves apart: same
/// flags, same file at contiguous offsets, same name and policy, and no
/// anon_vma on either (so no rmap rule can stop the merge).
fn should_have_merged(k: &Kernel, a: Vma<'_>, b: Vma<'_>) -> bool {
    a.end() == b.start()
        && (a.flags() ^ b.flags()) & !vm::SOFTDIRTY == 0
        && a.flags() & (vm::SPECIAL | vm::HUGETLB) == 0
        && a.file() == 0
        && b.file() == 0
        && a.anon_vma() == 0
        && b.anon_vma() == 0
        && a.pgoff() + a.pages() == b.pgoff()
        && k.anon_names_equal(a.raw().anon_name.load(Relaxed), b.raw().anon_name.load(Relaxed))
        && a.raw().vm_policy.load(Relaxed) == b.raw().vm_policy.load(Relaxed)
}

/// Checks one address space; `Err` lists every violation. With
/// `merges`, neighbours Linux would have merged are reported too; leave it
/// off for forked children, where fork copies VMAs as they are and can
/// leave equal neighbours apart (the parent's `VM_LOCKED` difference is
/// cleared in the child, for instance), as Linux does.
pub fn check_mm(k: &Kernel, task: &Task, merges: bool) -> Result<(), String> {
    let mm = &*task.mm;
    let st = mm.lock.read();
    let mut errs = Vec::new();
    let vmas = k.vmas(&st);
    if st.map_count as usize != vmas.len() {
        errs.push(format!("map_count {} but {} VMAs in the tree", st.map_count, vmas.len()));
    }
    for (&end, &va) in st.tree.iter() {
        let v = Vma::at(k, va);
        if v.end() != end {
            errs.push(format!("{v:?} indexed at {end:#x}"));
        }
        if v.start() >= v.end() || v.start() & 0xfff != 0 || v.end() & 0xfff != 0 {
            errs.push(format!("{v:?}: bad bounds"));
        }
        if v.raw().vm_mm.load(Relaxed) != mm.id {
            errs.push(format!("{v:?}: belongs to mm {}", v.raw().vm_mm.load(Relaxed)));
        }
    }
    for w in vmas.windows(2) {
        if w[0].end() > w[1].start() {
            errs.push(format!("{:?} overlaps {:?}", w[0], w[1]));
        }
        if merges && should_have_merged(k, w[0], w[1]) {
            errs.push(format!(
                "{:?} (pgoff {:#x}) and {:?} (pgoff {:#x}) should be one VMA",
                w[0],
                w[0].pgoff(),
                w[1],
                w[1].pgoff()
            ));
        }
    }
    let total: u64 = vmas.iter().map(|v| v.pages()).sum();
    if total != st.total_vm {
        errs.push(format!("total_vm {} but the VMAs hold {total} pages", st.total_vm));
    }
    let mut tables = 0;
    let leaves = leaf_entries(k, mm.pgd, &mut tables);
    if tables * 4096 != mm.pgtables_bytes.load(Relaxed).max(0) as u64 {
        errs.push(format!("{tables} table pages but pgtables_bytes {}", mm.pgtables_bytes.load(Relaxed)));
    }
    let zero = k.vm.zero_pfn.get().copied();
    let mut rss = [0u64; mm_counter::NR];
    for &(addr, e) in &leaves {
        let Some(v) = k.vma_lookup(&st, addr) else {
            errs.push(format!("PTE {e:#x} at {addr:#x} outside every VMA"));
            continue;
        };
        if !pte_present(e) {
            continue;
        }
        if e & bits::PRESENT != 0 {
            if e & bits::USER == 0 {
                errs.push(format!("PTE at {addr:#x} without USER"));
            }
            if e & bits::RW != 0 && v.flags() & vm::WRITE == 0 {
                errs.push(format!("PTE at {addr:#x} writable in {v:?}"));
            }
            if e & bits::NX == 0 && v.flags() & vm::EXEC == 0 {
                errs.push(format!("PTE at {addr:#x} executable in {v:?}"));
            }
        } else if v.is_accessible() {
            errs.push(format!("PROT_NONE PTE at {addr:#x} in accessible {v:?}"));
        }
        let pfn = entry_pfn(e);
        if Some(pfn) == zero || e & bits::SPECIAL != 0 {
            continue;
        }
        let page = k.memmap.page(pfn);
        let mapping = page.mapping.load(Relaxed);
        if mapping & PAGE_MAPPING_ANON != 0 {
            rss[mm_counter::ANONPAGES] += 1;
            let index = v.linear_page_index(addr);
            if page.index.load(Relaxed) != index {
                errs.push(format!(
                    "anon page {pfn:?} at {addr:#x}: index {} but the rmap looks at {index}",
                    page.index.load(Relaxed)
                ));
            }
            let av = mapping & !PAGE_MAPPING_ANON;
            if !k.anon_vma_vmas(av).contains(&v.va) {
                errs.push(format!("anon page {pfn:?} at {addr:#x}: its anon_vma does not reach {v:?}"));
            }
        } else {
            rss[crate::shmem::mm_counter_file(page)] += 1;
        }
    }
    for (kind, name) in
        [(mm_counter::ANONPAGES, "anon"), (mm_counter::FILEPAGES, "file"), (mm_counter::SHMEMPAGES, "shmem")]
    {
        if rss[kind] != mm.counter(kind) {
            errs.push(format!("{name} RSS counter {} but {} pages mapped", mm.counter(kind), rss[kind]));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}

/// Checks every mapped page's mapcount and refcount against the PTEs of
/// every process: mapcount + 1 equals the number of PTEs mapping it, and
/// the references cover the mappings (plus the page cache's).
pub fn check_mappings(k: &Kernel) -> Result<(), String> {
    let tasks: Vec<_> = k.vm.tasks.lock().values().cloned().collect();
    let zero = k.vm.zero_pfn.get().copied();
    let mut maps: BTreeMap<u64, i64> = BTreeMap::new();
    for t in &tasks {
        let _st = t.mm.lock.read();
        let mut tables = 0;
        for (_, e) in leaf_entries(k, t.mm.pgd, &mut tables) {
            if !pte_present(e) || e & bits::SPECIAL != 0 || Some(entry_pfn(e)) == zero {
                continue;
            }
            *maps.entry(entry_pfn(e).0).or_default() += 1;
        }
    }
    let mut errs = Vec::new();
    for (&pfn, &n) in &maps {
        let page = k.memmap.page(Pfn(pfn));
        let mapcount = page.mapcount.load(Relaxed) as i64 + 1;
        if mapcount != n {
            errs.push(format!("pfn {pfn:#x}: mapcount {mapcount} but {n} PTEs map it"));
        }
        let cache = i64::from(page.mapping.load(Relaxed) & PAGE_MAPPING_ANON == 0);
        if (page.ref_count() as i64) < n + cache {
            errs.push(format!("pfn {pfn:#x}: refcount {} below {n} mappings", page.ref_count()));
        }
        if page.test(pg::BUDDY) {
            errs.push(format!("pfn {pfn:#x}: mapped but free"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}
