//! Random sequences of memory syscalls, accesses and forks on several
//! processes, with the address-space invariants (`debug_vm::mm`) checked
//! after every step and every page and table returned at the end.

use oxmm::debug_vm::mm::{check_mappings, check_mm};
use oxmm::madvise::madv;
use oxmm::mm_types::{default_rlimits, personality, Task};
use oxmm::mmap::{map, prot, OpenFile};
use oxmm::mremap::mremap_flags::{DONTUNMAP, FIXED, MAYMOVE};
use oxmm::vmstat::NodeStat;
use oxmm::Kernel;
use oxmm_sim::rng::SimRng;
use oxmm_sim::{Machine, MachineConfig};
use std::sync::Arc;

const P: u64 = 4096;
const WINDOW: u64 = 0x1000_0000_0000;
const PAGES: u64 = 64;

fn accounted(k: &Kernel) -> (u64, u64, u64, u64) {
    let slab =
        k.global_node_page_state(NodeStat::NrSlabReclaimable) + k.global_node_page_state(NodeStat::NrSlabUnreclaimable);
    (
        k.nr_free_pages() + k.pcp_pages() + slab,
        k.global_node_page_state(NodeStat::NrPageTablePages),
        k.global_node_page_state(NodeStat::NrAnonPages),
        k.global_node_page_state(NodeStat::NrShmem),
    )
}

/// Checks every process; `merges[i]` says whether process `i` may be held
/// to "merged where Linux merges" (see `check_mm`).
fn check_all(k: &Kernel, tasks: &[Arc<Task>], merges: &[bool], step: &str) {
    for (i, t) in tasks.iter().enumerate() {
        if let Err(e) = check_mm(k, t, merges[i]) {
            panic!("after {step}: pid {}:\n{e}", t.pid);
        }
    }
    if let Err(e) = check_mappings(k) {
        panic!("after {step}:\n{e}");
    }
}

fn addr(r: &mut SimRng) -> u64 {
    WINDOW + r.below(PAGES) * P
}

fn len(r: &mut SimRng) -> u64 {
    (1 + r.below(8)) * P
}

fn run(seed: u64, steps: usize) {
    let m = Machine::boot(&MachineConfig::single(1 << 30, 2), seed).unwrap();
    let k = &m.kernel;
    let before = accounted(k);
    let mut r = SimRng::new(seed);
    let mut tasks = vec![k.create_process("p", default_rlimits(), personality::ADDR_NO_RANDOMIZE).unwrap()];
    // Linux leaves equal neighbours apart after a failed call that had
    // split VMAs already, after MREMAP_DONTUNMAP clears the source's lock
    // and charge, and in a forked child: from then on a process is not
    // held to the merge rule.
    let mut merges = vec![true];
    let file = k.shmem_create("/tmp/prop (deleted)", 16 * P, true);
    k.file_write(file, 0, &[7u8; 16 * 4096]).unwrap();
    let of = OpenFile { id: file, readable: true, writable: true };
    for i in 0..steps {
        let ti = r.below(tasks.len() as u64) as usize;
        let t = tasks[ti].clone();
        let mut failed = false;
        let (a, l) = (addr(&mut r), len(&mut r));
        let prots = [prot::NONE, prot::READ, prot::READ | prot::WRITE, prot::READ | prot::EXEC];
        let pr = prots[r.below(4) as usize];
        let op = r.below(15);
        let what = match op {
            0 | 1 => {
                let kind = if r.below(3) == 0 { map::SHARED } else { map::PRIVATE };
                failed = k.sys_mmap(&t, a, l, pr, kind | map::ANONYMOUS | map::FIXED, -1, 0).is_err();
                "mmap anon"
            }
            2 => {
                let kind = if r.below(2) == 0 { map::SHARED } else { map::PRIVATE };
                failed = k.sys_mmap_file(&t, a, l, pr, kind | map::FIXED, &of, r.below(4) * P).is_err();
                "mmap file"
            }
            3 => {
                failed = k.sys_munmap(&t, a, l).is_err();
                "munmap"
            }
            4 => {
                failed = k.sys_mprotect(&t, a, l, pr).is_err();
                "mprotect"
            }
            5 => {
                let flags = [0, MAYMOVE, MAYMOVE | FIXED, MAYMOVE | DONTUNMAP][r.below(4) as usize];
                let nl = if flags & DONTUNMAP != 0 { l } else { len(&mut r) };
                let na = addr(&mut r);
                let res = k.sys_mremap(&t, a, l, nl, flags, na);
                failed = res.is_err() || flags & DONTUNMAP != 0;
                "mremap"
            }
            6 => {
                let advice = [madv::DONTNEED, madv::FREE, madv::DONTFORK, madv::WIPEONFORK, madv::REMOVE, madv::NORMAL]
                    [r.below(6) as usize];
                failed = k.sys_madvise(&t, a, l, advice).is_err();
                "madvise"
            }
            7 => {
                failed = k.sys_mlock(&t, a, l).is_err();
                "mlock"
            }
            8 => {
                failed = k.sys_munlock(&t, a, l).is_err();
                "munlock"
            }
            9..=11 => {
                let _ = k.fill_user(&t, a, l, i as u8);
                "write"
            }
            12 => {
                let mut b = vec![0u8; l as usize];
                let _ = k.read_user(&t, a, &mut b);
                "read"
            }
            13 if tasks.len() < 4 => {
                tasks.push(k.fork_task(&t).unwrap());
                merges.push(false);
                "fork"
            }
            _ if tasks.len() > 1 => {
                let j = 1 + r.below(tasks.len() as u64 - 1) as usize;
                let gone = tasks.remove(j);
                merges.remove(j);
                k.exit_task(&gone);
                "exit"
            }
            _ => "nothing",
        };
        if failed {
            if let Some(m) = tasks.iter().position(|x| x.pid == t.pid) {
                merges[m] = false;
            }
        }
        let _ = ti;
        check_all(k, &tasks, &merges, &format!("step {i} ({what} {a:#x}+{l:#x})"));
    }
    for t in tasks.drain(..) {
        k.exit_task(&t);
    }
    k.file_put(file);
    assert_eq!(accounted(k), before, "seed {seed}: every page, table and shmem page comes back");
    assert_eq!(k.bad_pages.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn random_address_space_operations_keep_every_invariant() {
    let seeds: u64 = std::env::var("MMPROP_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    for seed in 1..=seeds {
        run(seed, 600);
    }
}
