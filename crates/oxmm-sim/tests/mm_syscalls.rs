//! mprotect, mremap, madvise, mlock, mincore, msync: results, errnos,
//! VMA splits and merges, and their effect on pages and counters.

use oxmm::madvise::madv;
use oxmm::memory::{SEGV_ACCERR, SEGV_MAPERR};
use oxmm::mincore::ms;
use oxmm::mlock::mcl;
use oxmm::mm_types::{default_rlimits, personality, rlimit, Task};
use oxmm::mmap::{map, prot};
use oxmm::mremap::mremap_flags::{DONTUNMAP, FIXED, MAYMOVE};
use oxmm::vmstat::ZoneStat;
use oxmm::{Errno, Kernel};
use oxmm_sim::{Machine, MachineConfig};
use std::sync::Arc;

const ANON: u64 = map::PRIVATE | map::ANONYMOUS;
const RW: u64 = prot::READ | prot::WRITE;
const P: u64 = 4096;

fn setup() -> Machine {
    Machine::boot(&MachineConfig::single(1 << 30, 2), 1).unwrap()
}

fn process(k: &Kernel) -> Arc<Task> {
    k.create_process("t", default_rlimits(), personality::ADDR_NO_RANDOMIZE).unwrap()
}

fn maps(k: &Kernel, t: &Task) -> String {
    oxmm::proc::pid::maps(k, t)
}

#[test]
fn mprotect_splits_the_middle_and_merges_back() {
    let m = setup();
    let k = &m.kernel;
    let t = process(k);
    let a = k.sys_mmap(&t, 0x3000_0000, 3 * P, RW, ANON | map::FIXED, -1, 0).unwrap();
    k.fill_user(&t, a, 3 * P, 0x41).unwrap();
    let n0 = t.mm.lock.read().map_count;
    assert_eq!(k.sys_mprotect(&t, a + P, P, prot::READ), Ok(0));
    assert_eq!(t.mm.lock.read().map_count, n0 + 2);
    let s = maps(k, &t);
    assert!(s.contains("30001000-30002000 r--p"), "{s}");
    let e = k.write_user(&t, a + P, &[1]).unwrap_err();
    assert_eq!((e.code, e.addr), (SEGV_ACCERR, a + P));
    let mut b = [0u8];
    k.read_user(&t, a + P, &mut b).unwrap();
    assert_eq!(b[0], 0x41, "data survives the protection change");
    assert_eq!(k.sys_mprotect(&t, a + P, P, RW), Ok(0));
    assert_eq!(t.mm.lock.read().map_count, n0, "same flags again: merged back into one VMA");
    k.write_user(&t, a + P, &[2]).unwrap();
}

#[test]
fn mprotect_errnos() {
    let m = setup();
    let k = &m.kernel;
    let t = process(k);
    let a = k.sys_mmap(&t, 0x3000_0000, 2 * P, RW, ANON | map::FIXED, -1, 0).unwrap();
    assert_eq!(k.sys_mprotect(&t, a + 1, P, prot::READ), Err(Errno::EINVAL));
    assert_eq!(k.sys_mprotect(&t, a, 0, 0xff), Ok(0), "zero length succeeds before the prot check");
    assert_eq!(k.sys_mprotect(&t, a, P, 0x10), Err(Errno::EINVAL));
    assert_eq!(k.sys_mprotect(&t, a, 3 * P, prot::READ), Err(Errno::ENOMEM), "range runs past the mapping");
    assert_eq!(k.sys_mprotect(&t, a - P, P, prot::READ), Err(Errno::ENOMEM));
    assert_eq!(k.sys_mprotect(&t, a, P, prot::GROWSDOWN | prot::READ), Err(Errno::EINVAL));
    assert_eq!(k.sys_mprotect(&t, a, P, prot::GROWSDOWN | prot::GROWSUP), Err(Errno::EINVAL));
}

#[test]
fn mremap_grows_in_place_moves_and_keeps_data() {
    let m = setup();
    let k = &m.kernel;
    let t = process(k);
    let a = k.sys_mmap(&t, 0x4000_0000, 2 * P, RW, ANON | map::FIXED, -1, 0).unwrap();
    k.write_user(&t, a + P, b"moved").unwrap();
    // Room after it: grows in place.
    assert_eq!(k.sys_mremap(&t, a, 2 * P, 4 * P, 0, 0), Ok(a));
    assert!(maps(k, &t).contains("40000000-40004000 rw-p"));
    // Blocked: without MAYMOVE, ENOMEM; with it, a move that keeps the bytes.
    k.sys_mmap(&t, a + 4 * P, P, prot::READ, ANON | map::FIXED, -1, 0).unwrap();
    assert_eq!(k.sys_mremap(&t, a, 4 * P, 8 * P, 0, 0), Err(Errno::ENOMEM));
    let b = k.sys_mremap(&t, a, 4 * P, 8 * P, MAYMOVE, 0).unwrap();
    assert_ne!(b, a);
    let mut buf = [0u8; 5];
    k.read_user(&t, b + P, &mut buf).unwrap();
    assert_eq!(&buf, b"moved");
    assert_eq!(k.read_user(&t, a + P, &mut buf).unwrap_err().code, SEGV_MAPERR);
    // Shrink in place.
    assert_eq!(k.sys_mremap(&t, b, 8 * P, P, 0, 0), Ok(b));
    // FIXED to a chosen address; DONTUNMAP leaves the old range empty.
    let c = k.sys_mremap(&t, b, P, P, MAYMOVE | FIXED, 0x5000_0000).unwrap();
    assert_eq!(c, 0x5000_0000);
    k.write_user(&t, c, b"x").unwrap();
    let d = k.sys_mremap(&t, c, P, P, MAYMOVE | DONTUNMAP, 0).unwrap();
    k.read_user(&t, d, &mut buf[..1]).unwrap();
    assert_eq!(buf[0], b'x');
    k.read_user(&t, c, &mut buf[..1]).unwrap();
    assert_eq!(buf[0], 0, "the old range stays mapped, empty");
}

#[test]
fn mremap_errnos() {
    let m = setup();
    let k = &m.kernel;
    let t = process(k);
    let a = k.sys_mmap(&t, 0x4000_0000, 2 * P, RW, ANON | map::FIXED, -1, 0).unwrap();
    assert_eq!(k.sys_mremap(&t, a, P, 2 * P, 8, 0), Err(Errno::EINVAL));
    assert_eq!(k.sys_mremap(&t, a + 1, P, 2 * P, 0, 0), Err(Errno::EINVAL));
    assert_eq!(k.sys_mremap(&t, a, P, 0, 0, 0), Err(Errno::EINVAL));
    assert_eq!(k.sys_mremap(&t, a, P, P, FIXED, 0x6000_0000), Err(Errno::EINVAL), "FIXED needs MAYMOVE");
    assert_eq!(k.sys_mremap(&t, a, P, 2 * P, MAYMOVE | DONTUNMAP, 0), Err(Errno::EINVAL));
    assert_eq!(k.sys_mremap(&t, a, 2 * P, 2 * P, MAYMOVE | FIXED, a + P), Err(Errno::EINVAL), "overlap");
    assert_eq!(k.sys_mremap(&t, 0x7000_0000, P, 2 * P, MAYMOVE, 0), Err(Errno::EFAULT));
    assert_eq!(k.sys_mremap(&t, a, 3 * P, 4 * P, MAYMOVE, 0), Err(Errno::EFAULT), "old range past the VMA");
    assert_eq!(k.sys_mremap(&t, a, 0, P, MAYMOVE, 0), Err(Errno::EINVAL), "no duplicating private mappings");
}

#[test]
fn madvise_dontneed_zeroes_free_keeps_and_flags_split() {
    let m = setup();
    let k = &m.kernel;
    let t = process(k);
    let a = k.sys_mmap(&t, 0x3000_0000, 4 * P, RW, ANON | map::FIXED, -1, 0).unwrap();
    k.fill_user(&t, a, 4 * P, 7).unwrap();
    assert_eq!(k.sys_madvise(&t, a, P, madv::DONTNEED), Ok(0));
    let mut b = [9u8];
    k.read_user(&t, a, &mut b).unwrap();
    assert_eq!(b[0], 0, "DONTNEED: anonymous memory reads back zero");
    assert_eq!(k.sys_madvise(&t, a + P, P, madv::FREE), Ok(0));
    k.read_user(&t, a + P, &mut b).unwrap();
    assert_eq!(b[0], 7, "FREE: data stays until reclaim takes the page");
    assert_eq!(k.sys_madvise(&t, a + 2 * P, P, madv::DONTFORK), Ok(0));
    assert!(maps(k, &t).contains("30002000-30003000 rw-p"));
    assert_eq!(k.sys_madvise(&t, a, P, 5), Err(Errno::EINVAL), "no advice 5");
    assert_eq!(k.sys_madvise(&t, a + 1, P, madv::NORMAL), Err(Errno::EINVAL));
    assert_eq!(k.sys_madvise(&t, a, 0, madv::NORMAL), Ok(0));
    assert_eq!(k.sys_madvise(&t, a + 3 * P, 3 * P, madv::NORMAL), Err(Errno::ENOMEM), "hole after");
    assert_eq!(k.sys_madvise(&t, a, P, madv::REMOVE), Err(Errno::EINVAL));
    // Guard regions fault with SIGSEGV and survive DONTNEED.
    assert_eq!(k.sys_madvise(&t, a + 3 * P, P, madv::GUARD_INSTALL), Ok(0));
    assert_eq!(k.read_user(&t, a + 3 * P, &mut b).unwrap_err().code, SEGV_MAPERR);
    assert_eq!(k.sys_madvise(&t, a + 3 * P, P, madv::DONTNEED), Ok(0));
    assert!(k.read_user(&t, a + 3 * P, &mut b).is_err());
    assert_eq!(k.sys_madvise(&t, a + 3 * P, P, madv::GUARD_REMOVE), Ok(0));
    k.read_user(&t, a + 3 * P, &mut b).unwrap();
}

#[test]
fn wipeonfork_and_dontfork_shape_the_child() {
    let m = setup();
    let k = &m.kernel;
    let t = process(k);
    let a = k.sys_mmap(&t, 0x3000_0000, 2 * P, RW, ANON | map::FIXED, -1, 0).unwrap();
    k.fill_user(&t, a, 2 * P, 5).unwrap();
    k.sys_madvise(&t, a, P, madv::WIPEONFORK).unwrap();
    let d = k.sys_mmap(&t, 0x3100_0000, P, RW, ANON | map::FIXED, -1, 0).unwrap();
    k.sys_madvise(&t, d, P, madv::DONTFORK).unwrap();
    let c = k.fork_task(&t).unwrap();
    let mut b = [1u8];
    k.read_user(&c, a, &mut b).unwrap();
    assert_eq!(b[0], 0, "WIPEONFORK: the child sees zeroes");
    k.read_user(&c, a + P, &mut b).unwrap();
    assert_eq!(b[0], 5);
    assert_eq!(k.read_user(&c, d, &mut b).unwrap_err().code, SEGV_MAPERR, "DONTFORK: not in the child");
    k.exit_task(&c);
}

#[test]
fn mlock_counts_pages_and_respects_the_limit() {
    let m = setup();
    let k = &m.kernel;
    let t = process(k);
    let mlocked = || k.global_zone_page_state(ZoneStat::NrMlock);
    let before = mlocked();
    let a = k.sys_mmap(&t, 0x3000_0000, 4 * P, RW, ANON | map::FIXED, -1, 0).unwrap();
    // The length counts from the page the start is in: two pages.
    assert_eq!(k.sys_mlock(&t, a + 1, P), Ok(0), "unaligned start rounds down");
    assert_eq!(mlocked(), before + 2, "mlock populates and locks");
    assert_eq!(t.mm.lock.read().locked_vm, 2);
    assert_eq!(k.sys_mlock2(&t, a + 2 * P, P, 2), Err(Errno::EINVAL));
    assert_eq!(k.sys_mlock2(&t, a + 2 * P, P, 1), Ok(0));
    assert_eq!(mlocked(), before + 2, "ONFAULT does not populate");
    k.write_user(&t, a + 2 * P, &[1]).unwrap();
    assert_eq!(mlocked(), before + 3, "...but locks on fault");
    assert_eq!(k.sys_madvise(&t, a, P, madv::DONTNEED), Err(Errno::EINVAL), "locked pages cannot be dropped");
    assert_eq!(k.sys_munlock(&t, a, 3 * P), Ok(0));
    assert_eq!(mlocked(), before);
    assert_eq!(t.mm.lock.read().locked_vm, 0);
    // RLIMIT_MEMLOCK of 8 MiB and no CAP_IPC_LOCK.
    let big = k.sys_mmap(&t, 0, 16 << 20, RW, ANON, -1, 0).unwrap();
    assert_eq!(k.sys_mlock(&t, big, 16 << 20), Err(Errno::ENOMEM));
    assert_eq!(k.sys_mlock(&t, 0x7000_0000, P), Err(Errno::ENOMEM), "nothing mapped there");
    t.rlim.lock()[rlimit::MEMLOCK].cur = 0;
    assert_eq!(k.sys_mlock(&t, a, P), Err(Errno::EPERM));
    assert_eq!(k.sys_mlockall(&t, 0), Err(Errno::EINVAL));
    assert_eq!(k.sys_mlockall(&t, mcl::ONFAULT), Err(Errno::EINVAL));
    assert_eq!(k.sys_mlockall(&t, mcl::CURRENT), Err(Errno::EPERM));
}

#[test]
fn mlockall_future_locks_new_mappings() {
    let m = setup();
    let k = &m.kernel;
    let t = process(k);
    assert_eq!(k.sys_mlockall(&t, mcl::FUTURE), Ok(0));
    let a = k.sys_mmap(&t, 0, 2 * P, RW, ANON, -1, 0).unwrap();
    let (res, vec) = k.sys_mincore(&t, a, 2 * P);
    assert_eq!((res, vec), (Ok(0), vec![1, 1]), "MCL_FUTURE mappings are populated");
    assert_eq!(k.sys_munlockall(&t), Ok(0));
    let b = k.sys_mmap(&t, 0, 2 * P, RW, ANON, -1, 0).unwrap();
    assert_eq!(k.sys_mincore(&t, b, 2 * P).1, vec![0, 0]);
}

#[test]
fn mincore_and_msync_validate_like_linux() {
    let m = setup();
    let k = &m.kernel;
    let t = process(k);
    let a = k.sys_mmap(&t, 0x3000_0000, 3 * P, RW, ANON | map::FIXED, -1, 0).unwrap();
    k.write_user(&t, a + P, &[1]).unwrap();
    assert_eq!(k.sys_mincore(&t, a, 3 * P - 100), (Ok(0), vec![0, 1, 0]));
    assert_eq!(k.sys_mincore(&t, a + 1, P).0, Err(Errno::EINVAL));
    assert_eq!(k.sys_mincore(&t, a, 4 * P).0, Err(Errno::ENOMEM));
    assert_eq!(k.sys_msync(&t, a, P, ms::SYNC), Ok(0));
    assert_eq!(k.sys_msync(&t, a, P, ms::SYNC | ms::ASYNC), Err(Errno::EINVAL));
    assert_eq!(k.sys_msync(&t, a, P, 8), Err(Errno::EINVAL));
    assert_eq!(k.sys_msync(&t, a + 1, P, ms::SYNC), Err(Errno::EINVAL));
    assert_eq!(k.sys_msync(&t, a, 4 * P, ms::SYNC), Err(Errno::ENOMEM));
    k.sys_mlock(&t, a, P).unwrap();
    assert_eq!(k.sys_msync(&t, a, P, ms::INVALIDATE), Err(Errno::EBUSY));
}

#[test]
fn anon_names_show_in_maps_and_split_vmas() {
    let m = setup();
    let k = &m.kernel;
    let t = process(k);
    let a = k.sys_mmap(&t, 0x3000_0000, 3 * P, RW, ANON | map::FIXED, -1, 0).unwrap();
    assert_eq!(k.sys_set_vma_anon_name(&t, a + P, P, Some(b"cache")), Ok(0));
    let s = maps(k, &t);
    let line = s.lines().find(|l| l.starts_with("30001000-30002000 rw-p 00000000 00:00 0 ")).unwrap();
    assert_eq!(&line[73..], "[anon:cache]", "names start in column 73: {s}");
    assert_eq!(k.sys_set_vma_anon_name(&t, a, P, Some(b"bad$name")), Err(Errno::EINVAL));
    assert_eq!(k.sys_set_vma_anon_name(&t, a + P, P, None), Ok(0));
    assert!(maps(k, &t).contains("30000000-30003000 rw-p"), "unnamed again: merged");
}

#[test]
fn shared_anonymous_memory_is_one_object_across_fork() {
    let m = setup();
    let k = &m.kernel;
    let shmem0 = k.shmem_pages();
    let t = process(k);
    let a = k.sys_mmap(&t, 0, 4 * P, RW, map::SHARED | map::ANONYMOUS, -1, 0).unwrap();
    k.fill_user(&t, a, 4 * P, 1).unwrap();
    assert_eq!(k.shmem_pages(), shmem0 + 4);
    assert!(maps(k, &t).contains("/dev/zero (deleted)"));
    let c = k.fork_task(&t).unwrap();
    k.write_user(&c, a + P, &[9]).unwrap();
    let mut b = [0u8];
    k.read_user(&t, a + P, &mut b).unwrap();
    assert_eq!(b[0], 9, "the child's write is seen by the parent");
    k.exit_task(&c);
    assert_eq!(k.sys_madvise(&t, a, P, madv::DONTNEED), Ok(0));
    k.read_user(&t, a, &mut b).unwrap();
    assert_eq!(b[0], 1, "DONTNEED only unmaps: the page cache keeps the data");
    assert_eq!(k.sys_madvise(&t, a + 2 * P, P, madv::REMOVE), Ok(0));
    k.read_user(&t, a + 2 * P, &mut b).unwrap();
    assert_eq!(b[0], 0, "REMOVE punches a hole");
    // Grown past the object's size, the mapping raises SIGBUS there.
    let g = k.sys_mremap(&t, a, 4 * P, 6 * P, MAYMOVE, 0).unwrap();
    assert_eq!(k.read_user(&t, g + 5 * P, &mut b).unwrap_err().signo, oxmm::memory::SIGBUS);
    k.sys_munmap(&t, g, 6 * P).unwrap();
    assert_eq!(k.shmem_pages(), shmem0, "the last unmap frees the object");
}

#[test]
fn process_vm_readv_and_writev_copy_between_address_spaces() {
    let m = setup();
    let k = &m.kernel;
    let a = process(k);
    let b = process(k);
    let src = k.sys_mmap(&b, 0x3000_0000, 2 * P, RW, ANON | map::FIXED, -1, 0).unwrap();
    k.write_user(&b, src + P - 3, b"across").unwrap();
    let dst = k.sys_mmap(&a, 0x4000_0000, 2 * P, RW, ANON | map::FIXED, -1, 0).unwrap();
    // Two local pieces gather one remote range that straddles a page.
    let n = k.sys_process_vm_readv(&a, b.pid, &[(dst, 2), (dst + 100, 4)], &[(src + P - 3, 6)], 0).unwrap();
    assert_eq!(n, 6);
    let mut got = [0u8; 6];
    k.read_user(&a, dst, &mut got[..2]).unwrap();
    k.read_user(&a, dst + 100, &mut got[2..]).unwrap();
    assert_eq!(&got, b"across");
    let n = k.sys_process_vm_writev(&a, b.pid, &[(dst, 2)], &[(src, 2)], 0).unwrap();
    assert_eq!(n, 2);
    let mut back = [0u8; 2];
    k.read_user(&b, src, &mut back).unwrap();
    assert_eq!(&back, b"ac");
    // A remote range running into a hole stops there: a partial count.
    let n = k.sys_process_vm_readv(&a, b.pid, &[(dst, 3 * P)], &[(src + P, 2 * P)], 0).unwrap();
    assert_eq!(n, P);
    assert_eq!(k.sys_process_vm_readv(&a, b.pid, &[(dst, P)], &[(0x5000_0000, P)], 0), Err(Errno::EFAULT));
    assert_eq!(k.sys_process_vm_readv(&a, b.pid, &[(dst, P)], &[(src, P)], 1), Err(Errno::EINVAL));
    assert_eq!(k.sys_process_vm_readv(&a, 9999, &[(dst, P)], &[(src, P)], 0), Err(Errno::ESRCH));
}

#[test]
fn strict_overcommit_refuses_past_the_commit_limit() {
    let m = setup();
    let k = &m.kernel;
    let t = process(k);
    use std::sync::atomic::Ordering::Relaxed;
    k.sysctl.overcommit_memory.store(2, Relaxed);
    k.sysctl.overcommit_ratio.store(50, Relaxed);
    let limit = k.vm_commit_limit();
    let meminfo = oxmm::proc::meminfo(k);
    assert!(meminfo.contains(&format!("CommitLimit:    {:>8} kB", limit * 4)), "{meminfo}");
    let committed = k.vm.committed_as.load(Relaxed) as u64;
    // Private writable memory is charged; more than what is left is refused.
    let room = limit.saturating_sub(committed);
    assert_eq!(k.sys_mmap(&t, 0, (room + 1024) * P, RW, ANON, -1, 0), Err(Errno::ENOMEM));
    // Read-only and MAP_NORESERVE-less shared mappings are not charged here.
    let ro = k.sys_mmap(&t, 0, (room + 1024) * P, prot::READ, ANON, -1, 0).unwrap();
    let small = k.sys_mmap(&t, 0, 16 * P, RW, ANON, -1, 0).unwrap();
    assert_eq!(k.vm.committed_as.load(Relaxed) as u64, committed + 16);
    // Turning the read-only mapping writable is charged too, and refused.
    assert_eq!(k.sys_mprotect(&t, ro, (room + 1024) * P, RW), Err(Errno::ENOMEM));
    k.sys_munmap(&t, small, 16 * P).unwrap();
    assert_eq!(k.vm.committed_as.load(Relaxed) as u64, committed);
    // Mode 1 never refuses.
    k.sysctl.overcommit_memory.store(1, Relaxed);
    let huge = k.sys_mmap(&t, 0, 1 << 40, RW, ANON, -1, 0).unwrap();
    k.sys_munmap(&t, huge, 1 << 40).unwrap();
}

#[test]
fn legacy_layout_grows_bottom_up_from_a_third_of_the_address_space() {
    let m = setup();
    let k = &m.kernel;
    let t = k
        .create_process("legacy", default_rlimits(), personality::ADDR_NO_RANDOMIZE | personality::ADDR_COMPAT_LAYOUT)
        .unwrap();
    let base = oxmm::mmap::task_unmapped_base(oxmm::mmap::TASK_SIZE);
    let a = k.sys_mmap(&t, 0, P, RW, ANON, -1, 0).unwrap();
    let b = k.sys_mmap(&t, 0, P, RW, ANON, -1, 0).unwrap();
    assert_eq!(a, base);
    assert_eq!(b, base + P, "bottom-up: the next mapping goes above");
    // MAP_32BIT places below 2 GiB.
    let c = k.sys_mmap(&t, 0, P, RW, ANON | map::BIT32, -1, 0).unwrap();
    assert!((0x4000_0000..0x8000_0000).contains(&c));
}
