//! The oxmm side of differential testing: each script runs as a process of
//! one simulated machine (booted once, shared by every script), whose
//! address space starts as a copy of the host child's.
//!
//! The host child's VMAs become image VMAs (no pages); the break, the
//! stack, `mmap_base`, the rlimits, the capabilities and the vm sysctls
//! are the child's. Then every call goes to oxmm's system call of the same
//! name, every memory access through oxmm's MMU, and maps/smaps come from
//! oxmm's /proc renderers, parsed by the same code as the host's.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use oxmm::mm_types::{personality, rlimit, vm, Rlimit, Task};
use oxmm::mmap::{map, ImageLayout, ImageVma, OpenFile};
use oxmm::{Errno, Kernel};
use oxmm_sim::{Machine, MachineConfig};

use crate::call::{parse_maps, parse_smaps, Call, Outcome, StartState};
use crate::model::Model;

const CAP_IPC_LOCK: u64 = 1 << 14;
const CAP_SYS_RAWIO: u64 = 1 << 17;
const CAP_SYS_RESOURCE: u64 = 1 << 24;

/// The simulated machine the scripts share.
pub struct Shared {
    machine: Machine,
}

impl Shared {
    /// Boots the machine (4 GiB, 2 CPUs). Its RAM size matters only where
    /// Linux's answer depends on it: the heuristic overcommit refuses one
    /// request larger than RAM, so requests between 4 GiB and the host's
    /// RAM are refused here and granted on the host.
    pub fn boot() -> Result<Rc<Shared>, String> {
        let machine =
            Machine::boot(&MachineConfig::single(4 << 30, 2), 1).map_err(|e| format!("cannot boot oxmm: {e}"))?;
        Ok(Rc::new(Shared { machine }))
    }
}

/// One script's model process (and the children of its `fork { }` blocks).
pub struct OxmmModel {
    shared: Rc<Shared>,
    /// The current process last; parents before.
    tasks: Vec<Arc<Task>>,
    /// Open descriptors: the host child's at the start (not files we
    /// model: `None`), then the script's own.
    fds: BTreeMap<u64, Option<OpenFile>>,
    /// The parents' descriptor tables while a fork child runs.
    saved_fds: Vec<BTreeMap<u64, Option<OpenFile>>>,
}

impl OxmmModel {
    /// A model on the shared machine.
    pub fn new(shared: Rc<Shared>) -> OxmmModel {
        OxmmModel { shared, tasks: Vec::new(), fds: BTreeMap::new(), saved_fds: Vec::new() }
    }

    fn k(&self) -> &Kernel {
        &self.shared.machine.kernel
    }

    fn task(&self) -> Option<&Arc<Task>> {
        self.tasks.last()
    }
}

impl Drop for OxmmModel {
    fn drop(&mut self) {
        while let Some(t) = self.tasks.pop() {
            self.shared.machine.kernel.exit_task(&t);
        }
        let tables = std::mem::take(&mut self.saved_fds);
        for table in tables.into_iter().chain([std::mem::take(&mut self.fds)]) {
            for f in table.into_values().flatten() {
                self.shared.machine.kernel.file_put(f.id);
            }
        }
    }
}

fn res(r: Result<u64, Errno>) -> Outcome {
    match r {
        Ok(v) => Outcome::Ok(v as i64),
        Err(e) => Outcome::Err(e.code()),
    }
}

fn sig(s: oxmm::memory::SigInfo) -> Outcome {
    Outcome::Signal { sig: s.signo, code: s.code, addr: s.addr }
}

/// Runs code at `addr` as the host's exec routine does (every register
/// zero, a call into the page): the few instructions scripts write are
/// interpreted, each fetched through oxmm's MMU. `ret` returns, `nop`
/// goes on, `00 00` (`add [rax], al` with rax = 0) writes to address 0.
fn exec(k: &Kernel, t: &Task, addr: u64) -> Outcome {
    let mut pc = addr;
    for _ in 0..EXEC_LIMIT {
        let op = match k.exec_user(t, pc) {
            Ok(b) => b,
            Err(s) => return sig(s),
        };
        match op {
            0xc3 => return Outcome::Ok(0),
            0x90 => pc += 1,
            0x00 => {
                let modrm = match k.exec_user(t, pc + 1) {
                    Ok(b) => b,
                    Err(s) => return sig(s),
                };
                if modrm != 0x00 {
                    return Outcome::Unsupported(format!("instruction 00 {modrm:02x}"));
                }
                let mut b = [0u8];
                if let Err(s) = k.read_user(t, 0, &mut b) {
                    return sig(s);
                }
                if let Err(s) = k.write_user(t, 0, &b) {
                    return sig(s);
                }
                pc += 2;
            }
            other => return Outcome::Unsupported(format!("instruction {other:02x}")),
        }
    }
    Outcome::Unsupported(format!("more than {EXEC_LIMIT} instructions"))
}

/// `VM_*` flags of this process's VMAs, from the VmFlags lines of
/// /proc/self/smaps, by range.
fn own_vm_flags() -> std::collections::HashMap<(u64, u64), u64> {
    let mut out = std::collections::HashMap::new();
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else { return out };
    let mut cur = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("VmFlags:") {
            if let Some(range) = cur.take() {
                let mut f = 0;
                for m in rest.split_whitespace() {
                    if let Some(&(bit, _)) = oxmm::proc::pid::MNEMONICS.iter().find(|(_, n)| *n == m) {
                        f |= bit;
                    }
                }
                out.insert(range, f);
            }
        } else if let Some(e) = crate::call::parse_maps_line(line) {
            cur = Some((e.start, e.end));
        }
    }
    out
}

/// Instructions the interpreter runs before giving up (a nop sled through
/// a 256 MiB mapping fits).
const EXEC_LIMIT: u64 = 1 << 28;

/// VMA flags for a line of the host's maps.
fn image_flags(perms: &[u8], name: &str, anon: bool) -> u64 {
    let mut f = vm::MAYREAD | vm::MAYWRITE | vm::MAYEXEC;
    if perms[0] == b'r' {
        f |= vm::READ;
    }
    if perms[1] == b'w' {
        f |= vm::WRITE;
    }
    if perms[2] == b'x' {
        f |= vm::EXEC;
    }
    if perms[3] == b's' {
        f |= vm::SHARED | vm::MAYSHARE;
    }
    if name == "[stack]" {
        f |= vm::GROWSDOWN;
    }
    if name == "[vvar]" || name == "[vvar_vclock]" || name == "[vdso]" || name == "[vsyscall]" {
        f |= vm::DONTEXPAND | vm::PFNMAP | vm::IO;
    }
    // maps does not show VM_ACCOUNT or VM_NORESERVE; the heap and the
    // stack are charged for certain, other image VMAs (the harness's own
    // NORESERVE arenas among them) are taken as not charged.
    if f & (vm::WRITE | vm::SHARED) == vm::WRITE && anon && (name == "[heap]" || name == "[stack]") {
        f |= vm::ACCOUNT;
    }
    f
}

impl OxmmModel {
    /// Gives `f` the lowest free descriptor number, as the host does.
    fn install_fd(&mut self, f: OpenFile) -> Outcome {
        let fd = (0..).find(|n| !self.fds.contains_key(n)).unwrap_or(0);
        self.fds.insert(fd, Some(f));
        Outcome::Ok(fd as i64)
    }
}

/// The largest size a file may have: ext4's limit with 4 KiB blocks for
/// the disk-file stand-ins, tmpfs's (`MAX_LFS_FILESIZE`) for memfds.
fn max_bytes(k: &Kernel, id: u64) -> u64 {
    if k.shmem_file(id).is_some_and(|f| f.thp_aligned) {
        0xffff_ffff_f000
    } else {
        i64::MAX as u64
    }
}

impl Model for OxmmModel {
    fn start(&mut self, st: &StartState) -> Result<(), String> {
        let k = self.k();
        let s = &k.sysctl;
        s.mmap_min_addr.store(st.mmap_min_addr, Relaxed);
        s.max_map_count.store(st.max_map_count, Relaxed);
        s.overcommit_memory.store(st.overcommit_memory, Relaxed);
        s.overcommit_ratio.store(st.overcommit_ratio, Relaxed);
        let mut rlim = oxmm::mm_types::default_rlimits();
        for (i, &(cur, max)) in st.rlimits.iter().enumerate().take(rlimit::NLIMITS) {
            rlim[i] = Rlimit { cur, max };
        }
        let mut layout = ImageLayout {
            mmap_base: st.mmap_base,
            legacy: st.legacy_layout,
            start_brk: st.start_brk,
            brk: st.brk,
            ..Default::default()
        };
        // The child is a fork of this process: its image VMAs carry the
        // flags this process's VMAs have (less VM_LOCKED), which maps does
        // not show but smaps does.
        let own_flags = own_vm_flags();
        let mut names = k.vm.file_names.lock();
        for line in st.maps_text.lines() {
            let Some(e) = crate::call::parse_maps_line(line) else { continue };
            let raw_name = line.splitn(6, ' ').nth(5).unwrap_or("").trim().to_string();
            let anon =
                raw_name.is_empty() || raw_name == "[heap]" || raw_name == "[stack]" || raw_name.starts_with("[anon:");
            let flags = match own_flags.get(&(e.start, e.end)) {
                Some(&f) if (f & vm::ACCESS) == (image_flags(e.perms.as_bytes(), &raw_name, anon) & vm::ACCESS) => {
                    f & !vm::LOCKED_MASK
                }
                _ => image_flags(e.perms.as_bytes(), &raw_name, anon),
            };
            let file = if anon {
                0
            } else {
                // One handle per distinct name, so the image's pieces of one
                // file keep their offsets and never merge with anything else.
                match names.iter().find(|(_, n)| **n == raw_name) {
                    Some((id, _)) => *id,
                    None => {
                        let id = names.len() as u64 + 1;
                        names.insert(id, raw_name.clone());
                        id
                    }
                }
            };
            if raw_name == "[stack]" {
                layout.start_stack = e.end - 4096;
            }
            let pgoff = if file == 0 { e.start >> 12 } else { e.offset >> 12 };
            // A VMA with anonymous pages at the start came through the
            // harness's fork: its anon_vma is linked to the parent's.
            let forked_anon = st.smaps.iter().any(|s| s.vma.start == e.start && s.anonymous_kb > 0);
            layout.vmas.push(ImageVma { start: e.start, end: e.end, flags, pgoff, file, forked_anon });
        }
        drop(names);
        let pers = if st.no_randomize { personality::ADDR_NO_RANDOMIZE } else { 0 };
        let task = k
            .create_process_with_layout("difftest", rlim, pers, &layout)
            .map_err(|e| format!("oxmm cannot set the process up: {e:?}"))?;
        let caps = st.cap_effective;
        task.cap_ipc_lock.store(caps & CAP_IPC_LOCK != 0, Relaxed);
        task.cap_sys_rawio.store(caps & CAP_SYS_RAWIO != 0, Relaxed);
        task.cap_sys_resource.store(caps & CAP_SYS_RESOURCE != 0, Relaxed);
        self.fds = st.open_fds.iter().map(|&f| (f as u64, None)).collect();
        self.tasks.push(task);
        Ok(())
    }

    fn call(&mut self, c: &Call<'_>) -> Outcome {
        let Some(t) = self.task().cloned() else { return Outcome::Unsupported("no process".into()) };
        let shared = self.shared.clone();
        let k = &shared.machine.kernel;
        match *c {
            Call::Mmap { addr, len, prot, flags, fd, off } => {
                if flags & map::ANONYMOUS == 0 {
                    return match self.fds.get(&fd) {
                        Some(Some(f)) => res(k.sys_mmap_file(&t, addr, len, prot, flags, f, off)),
                        Some(None) => Outcome::Unsupported("a descriptor the harness opened".into()),
                        None => res(k.sys_mmap(&t, addr, len, prot, flags, fd as i64, off)),
                    };
                }
                res(k.sys_mmap(&t, addr, len, prot, flags, fd as i64, off))
            }
            Call::Munmap { addr, len } => res(k.sys_munmap(&t, addr, len)),
            Call::Mprotect { addr, len, prot } => res(k.sys_mprotect(&t, addr, len, prot)),
            Call::Mremap { old, old_len, new_len, flags, new_addr } => {
                res(k.sys_mremap(&t, old, old_len, new_len, flags, new_addr))
            }
            Call::Brk { addr } => Outcome::Ok(k.sys_brk(&t, addr) as i64),
            Call::Madvise { addr, len, advice } => res(k.sys_madvise(&t, addr, len, advice)),
            Call::Mlock { addr, len } => res(k.sys_mlock(&t, addr, len)),
            Call::Mlock2 { addr, len, flags } => res(k.sys_mlock2(&t, addr, len, flags)),
            Call::Munlock { addr, len } => res(k.sys_munlock(&t, addr, len)),
            Call::Mlockall { flags } => res(k.sys_mlockall(&t, flags)),
            Call::Munlockall => res(k.sys_munlockall(&t)),
            Call::Mincore { addr, len } => match k.sys_mincore(&t, addr, len) {
                (Ok(_), v) => Outcome::Mincore(v),
                (Err(e), _) => Outcome::Err(e.code()),
            },
            Call::Msync { addr, len, flags } => res(k.sys_msync(&t, addr, len, flags)),
            Call::Read { addr, len } => {
                let mut buf = vec![0u8; len as usize];
                match k.read_user(&t, addr, &mut buf) {
                    Ok(()) => Outcome::Bytes(buf),
                    Err(s) => sig(s),
                }
            }
            Call::Write { addr, len, byte } => match k.fill_user(&t, addr, len, byte) {
                Ok(()) => Outcome::Ok(0),
                Err(s) => sig(s),
            },
            Call::WriteText { addr, text } => match k.write_user(&t, addr, text) {
                Ok(()) => Outcome::Ok(0),
                Err(s) => sig(s),
            },
            Call::Exec { addr } => exec(k, &t, addr),
            Call::Setrlimit { resource, soft, hard } => {
                let old = match k.sys_prlimit(&t, resource, None) {
                    Ok(o) => o,
                    Err(e) => return Outcome::Err(e.code()),
                };
                let new = Rlimit { cur: soft, max: hard.unwrap_or(old.max) };
                res(k.sys_prlimit(&t, resource, Some(new)).map(|_| 0))
            }
            Call::Close { fd } => match self.fds.remove(&fd) {
                Some(f) => {
                    if let Some(f) = f {
                        k.file_put(f.id);
                    }
                    Outcome::Ok(0)
                }
                None => Outcome::Err(Errno::EBADF.code()),
            },
            Call::File { size, fill } => {
                let id = k.shmem_create("/tmp/#oxmm (deleted)", 0, true);
                let mut off = 0;
                while off < size {
                    let n = (size - off).min(1 << 20);
                    let chunk: Vec<u8> =
                        (off..off + n).map(|o| fill.unwrap_or_else(|| crate::call::file_pattern(o))).collect();
                    if let Err(e) = k.file_write(id, off, &chunk) {
                        k.file_put(id);
                        return Outcome::Err(e.code());
                    }
                    off += n;
                }
                self.install_fd(OpenFile { id, readable: true, writable: true })
            }
            Call::Memfd { size } => {
                let id = k.shmem_create("/memfd:oxmm (deleted)", 0, false);
                if let Err(e) = k.file_truncate(id, size) {
                    k.file_put(id);
                    return Outcome::Err(e.code());
                }
                self.install_fd(OpenFile { id, readable: true, writable: true })
            }
            Call::Open { fd, mode } => {
                let f = match self.fds.get(&(fd & 0xffff_ffff)).copied() {
                    Some(Some(f)) => f,
                    // /proc/self/fd/N names no open file.
                    None => return Outcome::Err(Errno::ENOENT.code()),
                    Some(None) => return Outcome::Unsupported("reopening a descriptor we do not model".into()),
                };
                let (readable, writable) = match mode & 3 {
                    0 => (true, false),
                    1 => (false, true),
                    2 => (true, true),
                    _ => return Outcome::Err(Errno::EINVAL.code()),
                };
                k.file_get(f.id);
                self.install_fd(OpenFile { id: f.id, readable, writable })
            }
            Call::Ftruncate { fd, len } => {
                if (len as i64) < 0 {
                    return Outcome::Err(Errno::EINVAL.code());
                }
                match self.fds.get(&fd).copied() {
                    None => Outcome::Err(Errno::EBADF.code()),
                    Some(None) => Outcome::Unsupported("a descriptor the harness opened".into()),
                    Some(Some(f)) if !f.writable => Outcome::Err(Errno::EINVAL.code()),
                    Some(Some(f)) if len > max_bytes(k, f.id) => Outcome::Err(Errno::EFBIG.code()),
                    Some(Some(f)) => res(k.file_truncate(f.id, len).map(|_| 0)),
                }
            }
            Call::Pwrite { fd, off, len, byte } => match self.fds.get(&fd).copied() {
                None => Outcome::Err(Errno::EBADF.code()),
                Some(None) => Outcome::Unsupported("a descriptor the harness opened".into()),
                Some(Some(f)) if !f.writable => Outcome::Err(Errno::EBADF.code()),
                Some(Some(_)) if (off as i64) < 0 => Outcome::Err(Errno::EINVAL.code()),
                Some(Some(f)) => {
                    let max = max_bytes(k, f.id);
                    if len > 0 && off >= max {
                        return Outcome::Err(Errno::EFBIG.code());
                    }
                    let n = len.min(max.saturating_sub(off));
                    res(k.file_write(f.id, off, &vec![byte; n as usize]))
                }
            },
            Call::Pread { fd, off, len } => match self.fds.get(&fd).copied() {
                None => Outcome::Err(Errno::EBADF.code()),
                Some(None) => Outcome::Unsupported("a descriptor the harness opened".into()),
                Some(Some(f)) if !f.readable => Outcome::Err(Errno::EBADF.code()),
                Some(Some(_)) if (off as i64) < 0 => Outcome::Err(Errno::EINVAL.code()),
                Some(Some(f)) => match k.file_read(f.id, off, len) {
                    Ok(b) => Outcome::Bytes(b),
                    Err(e) => Outcome::Err(e.code()),
                },
            },
            Call::Fsync { fd } => match self.fds.get(&fd) {
                None => Outcome::Err(Errno::EBADF.code()),
                Some(_) => Outcome::Ok(0),
            },
        }
    }

    fn fork_enter(&mut self) -> Outcome {
        let Some(t) = self.task().cloned() else { return Outcome::Unsupported("no process".into()) };
        match self.k().fork_task(&t) {
            Ok(child) => {
                let pid = child.pid as i64;
                self.tasks.push(child);
                // The child gets a copy of the descriptor table.
                for f in self.fds.values().flatten() {
                    self.k().file_get(f.id);
                }
                self.saved_fds.push(self.fds.clone());
                Outcome::Ok(pid)
            }
            Err(e) => Outcome::Err(e.code()),
        }
    }

    fn fork_exit(&mut self) {
        if self.tasks.len() > 1 {
            if let Some(t) = self.tasks.pop() {
                self.k().exit_task(&t);
            }
            if let Some(parent) = self.saved_fds.pop() {
                for f in std::mem::replace(&mut self.fds, parent).into_values().flatten() {
                    self.k().file_put(f.id);
                }
            }
        }
    }

    fn maps(&mut self) -> Outcome {
        let Some(t) = self.task() else { return Outcome::Unsupported("no process".into()) };
        Outcome::Maps(parse_maps(&oxmm::proc::pid::maps(self.k(), t)))
    }

    fn smaps(&mut self) -> Outcome {
        let Some(t) = self.task() else { return Outcome::Unsupported("no process".into()) };
        Outcome::Smaps(parse_smaps(&oxmm::proc::pid::smaps(self.k(), t)))
    }
}
