//! `oxmm bench fault` and `oxmm bench mmap`: the address-space paths
//! against the host kernel doing the same work in the same run.
//!
//! - `fault-anon-write`: map an anonymous region, write one byte to each
//!   page (one write fault per page: allocate, zero, map), unmap it. The
//!   host does it with real `mmap`, stores and `munmap`; oxmm with
//!   [`Kernel::sys_mmap`], [`Kernel::write_user`] through its software MMU,
//!   and [`Kernel::sys_munmap`]. One operation is one page.
//! - `mmap-pair`: `mmap` of one anonymous page and its `munmap`.
//! - `find_vma`: lookups at random addresses among 100 000 VMAs; there is
//!   no host call that does only this, so it is reported without a ratio.

use std::io::Write;
use std::sync::Arc;

use oxmm::mm_types::{default_rlimits, personality, Task};
use oxmm::mmap::{map, prot};
use oxmm::Kernel;
use oxmm_sim::{Machine, MachineConfig};

use crate::harness::{compare, Contender, Report, Rng, Settings};

/// The host peer's name in the ratio lines.
pub const PEER_HOST: &str = "host-linux";
const PAGE: usize = 4096;

struct Sim {
    machine: Machine,
    task: Arc<Task>,
}

impl Sim {
    fn new(mem: u64) -> Result<Sim, String> {
        let machine = Machine::boot(&MachineConfig::single(mem, 2), 1).map_err(|e| format!("cannot boot: {e}"))?;
        let task = machine
            .kernel
            .create_process("bench", default_rlimits(), personality::ADDR_NO_RANDOMIZE)
            .map_err(|e| format!("cannot create the process: {e:?}"))?;
        Ok(Sim { machine, task })
    }
    fn k(&self) -> &Kernel {
        &self.machine.kernel
    }
}

fn oxmm_touch(s: &Sim, pages: usize) -> Result<u64, String> {
    let k = s.k();
    let len = (pages * PAGE) as u64;
    let a = k
        .sys_mmap(&s.task, 0, len, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, -1, 0)
        .map_err(|e| format!("mmap: {e:?}"))?;
    for i in 0..pages as u64 {
        k.write_user(&s.task, a + i * PAGE as u64, &[1]).map_err(|e| format!("write: {e:?}"))?;
    }
    k.sys_munmap(&s.task, a, len).map_err(|e| format!("munmap: {e:?}"))?;
    Ok(a)
}

fn host_touch(pages: usize) -> Result<u64, String> {
    let len = pages * PAGE;
    // SAFETY: a fresh private anonymous mapping; we write inside it only
    // and unmap it before returning.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return Err("host mmap failed".into());
        }
        let base = p as *mut u8;
        for i in 0..pages {
            std::ptr::write_volatile(base.add(i * PAGE), 1);
        }
        if libc::munmap(p, len) != 0 {
            return Err("host munmap failed".into());
        }
        Ok(base as u64)
    }
}

fn oxmm_pairs(s: &Sim, n: usize) -> Result<u64, String> {
    let k = s.k();
    let mut sum = 0;
    for _ in 0..n {
        let a = k
            .sys_mmap(&s.task, 0, PAGE as u64, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, -1, 0)
            .map_err(|e| format!("mmap: {e:?}"))?;
        k.sys_munmap(&s.task, a, PAGE as u64).map_err(|e| format!("munmap: {e:?}"))?;
        sum ^= a;
    }
    Ok(sum)
}

fn host_pairs(n: usize) -> Result<u64, String> {
    let mut sum = 0;
    for _ in 0..n {
        // SAFETY: map and unmap one fresh anonymous page, touching nothing.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return Err("host mmap failed".into());
            }
            sum ^= p as u64;
            if libc::munmap(p, PAGE) != 0 {
                return Err("host munmap failed".into());
            }
        }
    }
    Ok(sum)
}

/// Runs `oxmm bench fault`.
pub fn run_fault(quick: bool, out: &mut dyn Write) -> Result<(), String> {
    let settings = Settings { quick };
    let pages = if quick { 4096 } else { 16384 };
    let sim = Sim::new(1 << 30)?;
    let mut report = Report::new();
    report.line(out, &format!("fault: {pages} pages (4 KiB) written once each per run, mmap and munmap included"))?;
    let mut contenders =
        [Contender::new("oxmm", || oxmm_touch(&sim, pages)), Contender::new(PEER_HOST, || host_touch(pages))];
    let c = compare("fault-anon-write", pages as u64, settings, &mut contenders)?;
    report.add(out, &c)?;
    let free_before = sim.k().nr_free_pages();
    oxmm_touch(&sim, 16)?;
    if sim.k().nr_free_pages() + 64 < free_before {
        return Err("oxmm leaked pages across a run".into());
    }
    report.finish(out)
}

/// Runs `oxmm bench mmap`.
pub fn run_mmap(quick: bool, out: &mut dyn Write) -> Result<(), String> {
    let settings = Settings { quick };
    let n = if quick { 20_000 } else { 100_000 };
    let sim = Sim::new(256 << 20)?;
    let mut report = Report::new();
    report.line(out, &format!("mmap: {n} mmap+munmap pairs of one anonymous page per run"))?;
    let mut contenders = [Contender::new("oxmm", || oxmm_pairs(&sim, n)), Contender::new(PEER_HOST, || host_pairs(n))];
    let c = compare("mmap-pair", n as u64, settings, &mut contenders)?;
    report.add(out, &c)?;
    find_vma_line(&sim, if quick { 20_000 } else { 100_000 }, out, &mut report)?;
    report.finish(out)
}

/// Builds 100 000 VMAs (alternating protections, so none merge) and times
/// `find_vma` at random addresses.
fn find_vma_line(sim: &Sim, vmas: u64, out: &mut dyn Write, report: &mut Report) -> Result<(), String> {
    let k = sim.k();
    let t = &sim.task;
    let base = 0x1000_0000u64;
    for i in 0..vmas {
        let p = if i % 2 == 0 { prot::READ } else { prot::READ | prot::WRITE };
        k.sys_mmap(t, base + i * 4096, 4096, p, map::PRIVATE | map::ANONYMOUS | map::FIXED, -1, 0)
            .map_err(|e| format!("mmap #{i}: {e:?}"))?;
    }
    let mut rng = Rng::new(7);
    let lookups = 1_000_000u64;
    let addrs: Vec<u64> = (0..lookups).map(|_| base + rng.below(vmas * 4096)).collect();
    let st = t.mm.lock.read();
    let start = std::time::Instant::now();
    let mut hits = 0u64;
    for &a in &addrs {
        if let Some(v) = k.find_vma(&st, a) {
            hits += (v.start() <= a) as u64;
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / lookups as f64;
    drop(st);
    if hits != lookups {
        return Err(format!("find_vma missed {} of {lookups} lookups", lookups - hits));
    }
    report.line(out, &format!("find_vma  oxmm {ns:.1} ns/op over {} VMAs ({lookups} random lookups)", vmas + 1))?;
    k.sys_munmap(t, base, vmas * 4096).map_err(|e| format!("munmap: {e:?}"))?;
    Ok(())
}
