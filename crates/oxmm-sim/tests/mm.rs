//! Address spaces: mmap/munmap/brk, faults, COW across fork, the TLB,
//! /proc/PID files, and counters returning to where they started.

use oxmm::arch::x86_64::tlb::Access;
use oxmm::memory::{SEGV_ACCERR, SEGV_MAPERR, SIGSEGV};
use oxmm::mm_types::{default_rlimits, personality, Task};
use oxmm::mmap::{map, prot};
use oxmm::vmstat::NodeStat;
use oxmm::{Errno, Kernel};
use oxmm_sim::{Machine, MachineConfig};
use std::sync::Arc;

fn machine() -> Machine {
    Machine::boot(&MachineConfig::single(1 << 30, 2), 1).unwrap()
}

fn process(k: &Kernel) -> Arc<Task> {
    k.create_process("t", default_rlimits(), personality::ADDR_NO_RANDOMIZE).unwrap()
}

const ANON: u64 = map::PRIVATE | map::ANONYMOUS;
const RW: u64 = prot::READ | prot::WRITE;

/// Pages not in use by user memory or page tables (free, per-CPU lists,
/// slabs, which keep their pages cached), page tables, anonymous and LRU
/// pages.
fn counters(k: &Kernel) -> (u64, u64, u64, u64) {
    let slab =
        k.global_node_page_state(NodeStat::NrSlabReclaimable) + k.global_node_page_state(NodeStat::NrSlabUnreclaimable);
    (
        k.nr_free_pages() + k.pcp_pages() + slab,
        k.global_node_page_state(NodeStat::NrPageTablePages),
        k.global_node_page_state(NodeStat::NrAnonPages),
        k.global_node_page_state(NodeStat::NrInactiveAnon),
    )
}

#[test]
fn anonymous_mapping_faults_in_zeroed_pages_and_returns_everything_on_munmap() {
    let m = machine();
    let k = &m.kernel;
    let t = process(k);
    // A first cycle leaves the upper tables the stack's region shares, as on Linux.
    let w = k.sys_mmap(&t, 0, 10 * 4096, RW, ANON, -1, 0).unwrap();
    k.write_user(&t, w, &[1]).unwrap();
    k.sys_munmap(&t, w, 10 * 4096).unwrap();
    let before = counters(k);
    let a = k.sys_mmap(&t, 0, 10 * 4096, RW, ANON, -1, 0).unwrap();
    assert_eq!(a % 4096, 0);
    let mut buf = [0xffu8; 16];
    k.read_user(&t, a + 100, &mut buf).unwrap();
    assert_eq!(buf, [0; 16], "untouched anonymous memory reads zero");
    assert_eq!(k.global_node_page_state(NodeStat::NrAnonPages), before.2, "reads map the zero page");
    k.write_user(&t, a + 4096 * 3 + 10, b"hello").unwrap();
    let mut back = [0u8; 5];
    k.read_user(&t, a + 4096 * 3 + 10, &mut back).unwrap();
    assert_eq!(&back, b"hello");
    assert_eq!(k.global_node_page_state(NodeStat::NrAnonPages), before.2 + 1);
    assert_eq!(k.global_node_page_state(NodeStat::NrInactiveAnon), before.3 + 1);
    assert_eq!(t.mm.counter(oxmm::mm_types::mm_counter::ANONPAGES), 1);
    k.sys_munmap(&t, a, 10 * 4096).unwrap();
    assert_eq!(counters(k), before, "free pages, page tables, anon and LRU counts return");
    let e = k.read_user(&t, a, &mut buf).unwrap_err();
    assert_eq!((e.signo, e.code, e.addr), (SIGSEGV, SEGV_MAPERR, a));
}

#[test]
fn top_down_addresses_follow_linux_layout() {
    let m = machine();
    let k = &m.kernel;
    let t = process(k);
    let base = t.mm.lock.read().mmap_base;
    // 8 MiB stack limit: the gap is clamped to 128 MiB, no randomization.
    assert_eq!(base, 0x7fff_ffff_f000 - (128 << 20));
    let a = k.sys_mmap(&t, 0, 4096, RW, ANON, -1, 0).unwrap();
    assert_eq!(a, base - 4096);
    let b = k.sys_mmap(&t, 0, 3 * 4096, prot::READ, ANON, -1, 0).unwrap();
    assert_eq!(b, a - 3 * 4096);
    // A 2 MiB multiple is THP-aligned.
    let c = k.sys_mmap(&t, 0, 4 << 20, RW, ANON, -1, 0).unwrap();
    assert_eq!(c % (2 << 20), 0);
    assert!(c + (4 << 20) <= b);
    // A free hint is taken as is; an occupied one is not.
    let h = k.sys_mmap(&t, 0x1000_0000, 4096, RW, ANON, -1, 0).unwrap();
    assert_eq!(h, 0x1000_0000);
    let h2 = k.sys_mmap(&t, 0x1000_0000, 4096, RW, ANON, -1, 0).unwrap();
    assert_ne!(h2, 0x1000_0000);
    assert_eq!(k.sys_mmap(&t, 0x1000_0000, 4096, RW, ANON | map::FIXED_NOREPLACE, -1, 0), Err(Errno::EEXIST));
}

#[test]
fn mmap_and_munmap_reject_bad_arguments_with_linux_errnos() {
    let m = machine();
    let k = &m.kernel;
    let t = process(k);
    assert_eq!(k.sys_mmap(&t, 0, 0, RW, ANON, -1, 0), Err(Errno::EINVAL));
    assert_eq!(k.sys_mmap(&t, 0, 4096, RW, ANON, -1, 1), Err(Errno::EINVAL));
    assert_eq!(k.sys_mmap(&t, 0, u64::MAX - 10, RW, ANON, -1, 0), Err(Errno::ENOMEM));
    assert_eq!(k.sys_mmap(&t, 0, 4096, RW, map::ANONYMOUS, -1, 0), Err(Errno::EINVAL));
    assert_eq!(k.sys_mmap(&t, 0, 4096, RW, map::PRIVATE, 99, 0), Err(Errno::EBADF));
    assert_eq!(k.sys_munmap(&t, 1, 4096), Err(Errno::EINVAL));
    assert_eq!(k.sys_munmap(&t, 4096, 0), Err(Errno::EINVAL));
    assert_eq!(k.sys_munmap(&t, 0x1000_0000, 4096), Ok(0), "unmapping a hole succeeds");
}

#[test]
fn adjacent_compatible_mappings_merge_and_munmap_splits() {
    let m = machine();
    let k = &m.kernel;
    let t = process(k);
    let a = k.sys_mmap(&t, 0x2000_0000, 4096, RW, ANON | map::FIXED, -1, 0).unwrap();
    let b = k.sys_mmap(&t, 0x2000_1000, 4096, RW, ANON | map::FIXED, -1, 0).unwrap();
    assert_eq!((a, b), (0x2000_0000, 0x2000_1000));
    let count = |t: &Task| t.mm.lock.read().map_count;
    let n = count(&t);
    let c = k.sys_mmap(&t, 0x2000_2000, 4096, prot::READ, ANON | map::FIXED, -1, 0).unwrap();
    assert_eq!(c, 0x2000_2000);
    assert_eq!(count(&t), n + 1, "different protection: no merge");
    let maps = oxmm::proc::pid::maps(k, &t);
    assert!(maps.contains("20000000-20002000 rw-p 00000000 00:00 0 \n"), "{maps}");
    k.sys_munmap(&t, 0x2000_0000 + 4096, 4096).unwrap();
    let maps = oxmm::proc::pid::maps(k, &t);
    assert!(maps.contains("20000000-20001000 rw-p"), "{maps}");
    assert!(!maps.contains("20001000-"), "{maps}");
}

#[test]
fn fork_shares_pages_copy_on_write() {
    let m = machine();
    let k = &m.kernel;
    let before = counters(k);
    let t = process(k);
    let a = k.sys_mmap(&t, 0, 4 * 4096, RW, ANON, -1, 0).unwrap();
    k.fill_user(&t, a, 4 * 4096, 0x41).unwrap();
    let anon = k.global_node_page_state(NodeStat::NrAnonPages);
    let child = k.fork_task(&t).unwrap();
    assert_eq!(k.global_node_page_state(NodeStat::NrAnonPages), anon, "fork shares, copies nothing");
    let mut b = [0u8; 1];
    k.read_user(&child, a + 4096, &mut b).unwrap();
    assert_eq!(b[0], 0x41);
    k.write_user(&child, a + 4096, &[0x43]).unwrap();
    assert_eq!(k.global_node_page_state(NodeStat::NrAnonPages), anon + 1, "the child's write copied one page");
    k.read_user(&t, a + 4096, &mut b).unwrap();
    assert_eq!(b[0], 0x41, "the parent still sees its data");
    k.read_user(&child, a + 4096, &mut b).unwrap();
    assert_eq!(b[0], 0x43);
    // The parent's write to a page the child still shares copies too;
    // to one the child no longer shares, it reuses.
    k.write_user(&t, a, &[0x50]).unwrap();
    k.read_user(&child, a, &mut b).unwrap();
    assert_eq!(b[0], 0x41);
    let smaps = oxmm::proc::pid::smaps(k, &t);
    assert!(smaps.contains("Rss:                  16 kB"), "{smaps}");
    k.exit_task(&child);
    k.write_user(&t, a + 2 * 4096, &[0x51]).unwrap();
    k.exit_task(&t);
    assert_eq!(counters(k), before, "exit returns every page and table");
}

#[test]
fn protections_are_enforced_with_the_right_si_code() {
    let m = machine();
    let k = &m.kernel;
    let t = process(k);
    let r = k.sys_mmap(&t, 0, 4096, prot::READ, ANON, -1, 0).unwrap();
    let e = k.write_user(&t, r, &[1]).unwrap_err();
    assert_eq!((e.signo, e.code, e.addr), (SIGSEGV, SEGV_ACCERR, r));
    let n = k.sys_mmap(&t, 0, 4096, prot::NONE, ANON, -1, 0).unwrap();
    let mut b = [0u8];
    let e = k.read_user(&t, n, &mut b).unwrap_err();
    assert_eq!(e.code, SEGV_ACCERR);
    let e = k.exec_user(&t, r).unwrap_err();
    assert_eq!(e.code, SEGV_ACCERR, "no PROT_EXEC: instruction fetch fails");
    let x = k.sys_mmap(&t, 0, 4096, prot::READ | prot::EXEC, ANON, -1, 0).unwrap();
    assert_eq!(k.exec_user(&t, x), Ok(0));
}

#[test]
fn a_missing_tlb_flush_shows_as_a_stale_translation() {
    let m = machine();
    let k = &m.kernel;
    let t = process(k);
    let a = k.sys_mmap(&t, 0, 4096, RW, ANON, -1, 0).unwrap();
    k.write_user(&t, a, &[7]).unwrap();
    let pa = k.mmu_translate(&t.mm, a, Access::Read).unwrap();
    // Clear the PTE behind the kernel's back, without a flush: the TLB
    // still translates.
    let pte = k.pte_of(&t.mm, a).unwrap();
    let old = pte.swap(0, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(k.mmu_translate(&t.mm, a, Access::Read), Ok(pa), "stale entry still used");
    k.flush_tlb_page(&t.mm, a);
    assert!(k.mmu_translate(&t.mm, a, Access::Read).is_err(), "after the flush the walk sees the hole");
    pte.store(old, std::sync::atomic::Ordering::Relaxed);
}

#[test]
fn brk_grows_and_shrinks_the_heap() {
    let m = machine();
    let k = &m.kernel;
    let t = process(k);
    let start = k.sys_brk(&t, 0);
    assert_eq!(k.sys_brk(&t, start + 10_000), start + 10_000);
    k.write_user(&t, start + 9_999, &[1]).unwrap();
    let maps = oxmm::proc::pid::maps(k, &t);
    assert!(maps.contains("[heap]"), "{maps}");
    assert_eq!(k.sys_brk(&t, start + 4096), start + 4096);
    assert!(k.write_user(&t, start + 8192, &[1]).is_err());
    assert_eq!(k.sys_brk(&t, start - 4096), start + 4096, "below start_brk: refused, old break returned");
}

#[test]
fn stack_grows_down_into_the_gap() {
    let m = machine();
    let k = &m.kernel;
    let t = process(k);
    let (lo, stk_kb) = {
        let st = t.mm.lock.read();
        let v = k.find_vma(&st, st.start_stack).unwrap();
        (v.start(), st.stack_vm * 4)
    };
    k.write_user(&t, lo - 3 * 4096, &[1]).unwrap();
    let st = t.mm.lock.read();
    assert_eq!(k.find_vma(&st, lo - 3 * 4096).unwrap().start(), lo - 3 * 4096);
    assert_eq!(st.stack_vm * 4, stk_kb + 12);
}

#[test]
fn rmap_finds_and_unmaps_a_page_in_every_process() {
    let m = machine();
    let k = &m.kernel;
    let t = process(k);
    let a = k.sys_mmap(&t, 0, 2 * 4096, RW, ANON, -1, 0).unwrap();
    k.fill_user(&t, a, 2 * 4096, 9).unwrap();
    let c1 = k.fork_task(&t).unwrap();
    let c2 = k.fork_task(&c1).unwrap();
    let (pfn, _) = k.follow_pte(&t.mm, a + 4096).unwrap();
    let places = k.rmap_walk_anon(pfn);
    assert_eq!(places.len(), 3, "parent, child and grandchild map it");
    assert!(places.iter().all(|&(_, addr)| addr == a + 4096));
    assert_eq!(k.memmap.page(pfn).mapcount.load(std::sync::atomic::Ordering::Relaxed), 2);
    k.memmap.page(pfn).get();
    assert_eq!(k.try_to_unmap(pfn), 3);
    assert_eq!(k.memmap.page(pfn).mapcount.load(std::sync::atomic::Ordering::Relaxed), -1, "mapped nowhere");
    for p in [&t, &c1, &c2] {
        assert!(k.follow_pte(&p.mm, a + 4096).is_none());
        assert!(k.follow_pte(&p.mm, a).is_some(), "the other page stays");
        assert!(oxmm::debug_vm::mm::check_mm(k, p, false).is_ok());
    }
    k.put_user_page(pfn);
    assert!(oxmm::debug_vm::mm::check_mappings(k).is_ok());
    for p in [c2, c1, t] {
        k.exit_task(&p);
    }
}
