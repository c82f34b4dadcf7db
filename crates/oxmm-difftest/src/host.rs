//! Host execution: scripts run in a freshly forked child of the harness.
//!
//! This is the only module with `unsafe`. Between the start of a script and
//! its end the child makes only raw system calls (the `syscall` instruction,
//! no libc wrapper, no allocation, no std I/O); every buffer it uses was
//! mapped before the fork. Memory accesses (`read`, `write`, `exec`) run in
//! small assembly routines: before each one the routine saves the stack
//! pointer, the callee-saved registers and a recovery address in [`REC`];
//! a fault raises SIGSEGV/SIGBUS (or SIGILL/SIGTRAP/SIGFPE for executed
//! code), whose handler (on an alternate stack) records the signal,
//! `si_code` and `si_addr`, points the interrupted context at the recovery
//! address with the saved registers, and returns: the routine then reports
//! the fault instead of crashing.
//!
//! Results travel to the parent as [`crate::wire`] frames over a pipe. A
//! `fork { }` block runs in a grandchild (raw `fork`) that writes to the same
//! pipe while its parent waits for it, so frames arrive in program order.
//!
//! A second child, the *twin*, can be forked next to the script's child, from
//! the same parent state; it serves calls one at a time over a command pipe
//! ([`TwinModel`]), which makes the host itself usable as a [`Model`]: the
//! harness's tests and `--model host` use it.

use std::arch::asm;
use std::collections::HashMap;
use std::ffi::c_void;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::call::{Call, Outcome, StartState};
use crate::consts::PAGE_SIZE;
use crate::lang::{Block, Script, StepKind, Verb, MAX_ARGS};
use crate::model::Model;
use crate::wire::{self, Decoder, StartPieces};

/// Options of the host side.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// Seconds before a child is killed (`alarm`).
    pub timeout_secs: u32,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions { timeout_secs: 60 }
    }
}

/// The host's results for one script.
#[derive(Debug, Default)]
pub struct HostRun {
    /// The child's state at the start, or why it is unknown.
    pub start: Option<StartState>,
    /// Outcomes by step id (and block end id for end-of-block maps).
    pub outcomes: HashMap<u32, Outcome>,
    /// A failure of the harness itself (the child was killed...).
    pub failure: Option<String>,
}

/// Largest memory access or file write the harness performs in one step.
pub const MAX_ACCESS: u64 = 256 << 20;
/// Largest mincore vector the harness reports (64 GiB of address space).
pub const MAX_MINCORE_PAGES: u64 = 16 << 20;

const IO_LEN: usize = 1 << 20;
const ALT_LEN: usize = 64 << 10;
const CMD_LEN: usize = 64 << 10;
/// Where the children move the harness's pipe descriptors, far above the
/// script's own.
const HIGH_FD: i32 = 1000;
/// The id of start-state frames.
const START_ID: u32 = u32::MAX;
/// The id of the twin's pid report.
const TWIN_PID_ID: u32 = u32::MAX - 2;

// ---------------------------------------------------------------------------
// Raw system calls and the fault-recovering access routines.

/// A raw system call: returns the kernel's value (`-errno` on failure).
#[inline(always)]
fn sys(n: i64, a: [u64; 6]) -> i64 {
    let r: i64;
    // SAFETY: the `syscall` instruction with the kernel's register
    // convention; it clobbers rcx and r11 only. What the call does to
    // memory is the caller's intent (every call in this module passes
    // pointers to live buffers or addresses the script chose, which the
    // kernel checks).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n => r,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    r
}

fn sys1(n: i64, a: u64) -> i64 {
    sys(n, [a, 0, 0, 0, 0, 0])
}
fn sys2(n: i64, a: u64, b: u64) -> i64 {
    sys(n, [a, b, 0, 0, 0, 0])
}
fn sys3(n: i64, a: u64, b: u64, c: u64) -> i64 {
    sys(n, [a, b, c, 0, 0, 0])
}
fn sys4(n: i64, a: u64, b: u64, c: u64, d: u64) -> i64 {
    sys(n, [a, b, c, d, 0, 0])
}

fn exit_group(code: i32) -> ! {
    loop {
        sys1(libc::SYS_exit_group, code as u64);
    }
}

/// The recovery record shared by the access routines and the fault
/// handler. Layout (byte offsets used by the assembly): 0 rip, 8 rsp,
/// 16 rbx, 24 rbp, 32 r12, 40 r13, 48 r14, 56 r15, 64 active, 72 sig,
/// 80 code, 88 addr.
#[repr(C)]
pub struct Rec {
    f: [AtomicU64; 12],
}

/// The recovery record of this process (each child has its own copy).
pub static REC: Rec = Rec { f: [const { AtomicU64::new(0) }; 12] };

static OUT_FD: AtomicI32 = AtomicI32::new(-1);

/// Writes `src` (or fills with `byte` when `src` is null) to `dst`, or
/// reads, depending on which side faults: `rep movsb`/`rep stosb` stop at
/// the first faulting byte. Returns whether a fault happened.
fn copy_or_fill(dst: u64, src: u64, len: u64, byte: u8) -> bool {
    let r: u64;
    if src == 0 {
        // SAFETY: `rep stosb` over [dst, dst+len): the caller passes either
        // one of our own buffers or a script address; a fault there is
        // caught by `on_fault`, which resumes at label 2 with rax = 1 and
        // the registers saved in REC (rsp, rbx, rbp, r12-r15: unchanged
        // here). REC is only written through atomics-compatible plain
        // stores by this thread or its signal handler.
        unsafe {
            asm!(
                "lea r8, [rip + {rec}]",
                "lea r9, [rip + 2f]",
                "mov [r8], r9",
                "mov [r8 + 8], rsp",
                "mov [r8 + 16], rbx",
                "mov [r8 + 24], rbp",
                "mov [r8 + 32], r12",
                "mov [r8 + 40], r13",
                "mov [r8 + 48], r14",
                "mov [r8 + 56], r15",
                "mov qword ptr [r8 + 64], 1",
                "rep stosb",
                "xor eax, eax",
                "2:",
                "lea r8, [rip + {rec}]",
                "mov qword ptr [r8 + 64], 0",
                "cld",
                rec = sym REC,
                inout("rax") byte as u64 => r,
                inout("rdi") dst => _,
                inout("rcx") len => _,
                out("r8") _,
                out("r9") _,
            );
        }
    } else {
        // SAFETY: as above, with `rep movsb` from [src, src+len) to
        // [dst, dst+len); one side is our buffer, the other the script's
        // address.
        unsafe {
            asm!(
                "lea r8, [rip + {rec}]",
                "lea r9, [rip + 2f]",
                "mov [r8], r9",
                "mov [r8 + 8], rsp",
                "mov [r8 + 16], rbx",
                "mov [r8 + 24], rbp",
                "mov [r8 + 32], r12",
                "mov [r8 + 40], r13",
                "mov [r8 + 48], r14",
                "mov [r8 + 56], r15",
                "mov qword ptr [r8 + 64], 1",
                "rep movsb",
                "xor eax, eax",
                "2:",
                "lea r8, [rip + {rec}]",
                "mov qword ptr [r8 + 64], 0",
                "cld",
                rec = sym REC,
                out("rax") r,
                inout("rdi") dst => _,
                inout("rsi") src => _,
                inout("rcx") len => _,
                out("r8") _,
                out("r9") _,
            );
        }
    }
    r != 0
}

/// Calls the code at `addr` with every general register zero but rsp.
/// Returns whether a fault happened.
fn exec_at(addr: u64) -> bool {
    let r: u64;
    // SAFETY: the called code may do anything to registers and to the stack
    // below the saved rsp; both exits (return, or fault resumed at label 2
    // by `on_fault`) restore rsp and the callee-saved registers from REC,
    // so the compiler's state is intact; clobber_abi covers the rest. The
    // script asked for the call; only its own memory is at stake.
    unsafe {
        asm!(
            "lea r8, [rip + {rec}]",
            "lea r9, [rip + 2f]",
            "mov [r8], r9",
            "mov [r8 + 8], rsp",
            "mov [r8 + 16], rbx",
            "mov [r8 + 24], rbp",
            "mov [r8 + 32], r12",
            "mov [r8 + 40], r13",
            "mov [r8 + 48], r14",
            "mov [r8 + 56], r15",
            "mov qword ptr [r8 + 64], 1",
            "push rdi",
            "xor eax, eax",
            "xor ebx, ebx",
            "xor ecx, ecx",
            "xor edx, edx",
            "xor esi, esi",
            "xor edi, edi",
            "xor ebp, ebp",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            "xor r13d, r13d",
            "xor r14d, r14d",
            "xor r15d, r15d",
            "call qword ptr [rsp]",
            "xor eax, eax",
            "2:",
            "lea r8, [rip + {rec}]",
            "mov rsp, [r8 + 8]",
            "mov rbx, [r8 + 16]",
            "mov rbp, [r8 + 24]",
            "mov r12, [r8 + 32]",
            "mov r13, [r8 + 40]",
            "mov r14, [r8 + 48]",
            "mov r15, [r8 + 56]",
            "mov qword ptr [r8 + 64], 0",
            "cld",
            rec = sym REC,
            inout("rdi") addr => _,
            out("rax") r,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        );
    }
    r != 0
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut c_void) {
    let f = &REC.f;
    if f[8].load(Ordering::Relaxed) == 0 {
        // A fault of the harness itself: report and die.
        let fd = OUT_FD.load(Ordering::Relaxed);
        let msg = b"harness fault outside an access";
        let h = wire::header(wire::T_HOSTERR, START_ID - 1, msg.len() as u32);
        sys3(libc::SYS_write, fd as u64, h.as_ptr() as u64, h.len() as u64);
        sys3(libc::SYS_write, fd as u64, msg.as_ptr() as u64, msg.len() as u64);
        exit_group(90 + sig);
    }
    // SAFETY: the kernel passes a valid siginfo and ucontext to an
    // SA_SIGINFO handler; we only read the fault fields and rewrite saved
    // registers of the interrupted context, which sigreturn then restores.
    unsafe {
        let info = &*info;
        f[9].store(sig as u64, Ordering::Relaxed);
        f[10].store(info.si_code as u32 as u64, Ordering::Relaxed);
        f[11].store(info.si_addr() as u64, Ordering::Relaxed);
        let uc = &mut *(uc as *mut libc::ucontext_t);
        let g = &mut uc.uc_mcontext.gregs;
        g[libc::REG_RIP as usize] = f[0].load(Ordering::Relaxed) as i64;
        g[libc::REG_RSP as usize] = f[1].load(Ordering::Relaxed) as i64;
        g[libc::REG_RBX as usize] = f[2].load(Ordering::Relaxed) as i64;
        g[libc::REG_RBP as usize] = f[3].load(Ordering::Relaxed) as i64;
        g[libc::REG_R12 as usize] = f[4].load(Ordering::Relaxed) as i64;
        g[libc::REG_R13 as usize] = f[5].load(Ordering::Relaxed) as i64;
        g[libc::REG_R14 as usize] = f[6].load(Ordering::Relaxed) as i64;
        g[libc::REG_R15 as usize] = f[7].load(Ordering::Relaxed) as i64;
        g[libc::REG_RAX as usize] = 1;
        // Clear the direction flag in the saved eflags.
        g[libc::REG_EFL as usize] &= !0x400;
    }
    f[8].store(0, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------
// Buffers mapped once in the parent.

struct Buffers {
    io: usize,
    alt: usize,
    cmd: usize,
}

fn buffers() -> Result<&'static Buffers, String> {
    static B: OnceLock<Result<Buffers, String>> = OnceLock::new();
    B.get_or_init(|| {
        let map = |len: usize| -> Result<usize, String> {
            // SAFETY: a fresh anonymous mapping, never unmapped.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(format!("mmap of a {len}-byte buffer failed"));
            }
            Ok(p as usize)
        };
        // The io buffer is followed by a PROT_NONE guard page (mincore).
        let io = map(IO_LEN + PAGE_SIZE as usize)?;
        // SAFETY: the guard page is inside the mapping just made.
        unsafe { libc::mprotect((io + IO_LEN) as *mut c_void, PAGE_SIZE as usize, libc::PROT_NONE) };
        Ok(Buffers { io, alt: map(ALT_LEN)?, cmd: map(CMD_LEN)? })
    })
    .as_ref()
    .map_err(|e| e.clone())
}

// ---------------------------------------------------------------------------
// The child.

struct Child<'a> {
    out: i32,
    io: u64,
    slots: &'a mut [i64],
    timeout: u32,
}

fn fmt_u64(mut v: u64, buf: &mut [u8; 24]) -> usize {
    let mut tmp = [0u8; 24];
    let mut n = 0;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = tmp[n - 1 - i];
    }
    n
}

impl Child<'_> {
    fn write_all(&self, mut p: u64, mut len: u64) {
        while len > 0 {
            let r = sys3(libc::SYS_write, self.out as u64, p, len);
            if r == -(libc::EINTR as i64) {
                continue;
            }
            if r <= 0 {
                exit_group(3);
            }
            p += r as u64;
            len -= r as u64;
        }
    }

    fn frame(&self, tag: u8, id: u32, payload: &[u8]) {
        self.frame_raw(tag, id, payload.as_ptr() as u64, payload.len() as u64);
    }

    fn frame_raw(&self, tag: u8, id: u32, p: u64, len: u64) {
        let h = wire::header(tag, id, len as u32);
        self.write_all(h.as_ptr() as u64, h.len() as u64);
        self.write_all(p, len);
    }

    fn ok(&self, id: u32, v: i64) -> i64 {
        self.frame(wire::T_OK, id, &v.to_le_bytes());
        v
    }

    fn err(&self, id: u32, e: i64) -> i64 {
        self.frame(wire::T_ERR, id, &(e as i32).to_le_bytes());
        -1
    }

    /// Reports a raw syscall result.
    fn ret(&self, id: u32, r: i64) -> i64 {
        if (-4095..0).contains(&r) {
            self.err(id, -r)
        } else {
            self.ok(id, r)
        }
    }

    fn hosterr(&self, id: u32, msg: &[u8]) -> i64 {
        self.frame(wire::T_HOSTERR, id, msg);
        -1
    }

    fn signal(&self, id: u32) -> i64 {
        let f = &REC.f;
        let mut p = [0u8; 16];
        p[0..4].copy_from_slice(&(f[9].load(Ordering::Relaxed) as u32).to_le_bytes());
        p[4..8].copy_from_slice(&(f[10].load(Ordering::Relaxed) as u32).to_le_bytes());
        p[8..16].copy_from_slice(&f[11].load(Ordering::Relaxed).to_le_bytes());
        self.frame(wire::T_SIG, id, &p);
        0
    }

    /// Streams a /proc file as chunks, then `end` for `id`.
    fn send_proc(&self, path: &[u8], id: u32, end: u8) {
        let fd = sys4(libc::SYS_openat, libc::AT_FDCWD as u64, path.as_ptr() as u64, libc::O_RDONLY as u64, 0);
        if fd < 0 {
            self.hosterr(id, b"cannot open a /proc file");
            return;
        }
        loop {
            let r = sys3(libc::SYS_read, fd as u64, self.io, IO_LEN as u64);
            if r == -(libc::EINTR as i64) {
                continue;
            }
            if r < 0 {
                sys1(libc::SYS_close, fd as u64);
                self.hosterr(id, b"cannot read a /proc file");
                return;
            }
            if r == 0 {
                break;
            }
            self.frame_raw(wire::T_CHUNK, id, self.io, r as u64);
        }
        sys1(libc::SYS_close, fd as u64);
        self.frame(end, id, &[]);
    }

    fn send_start(&self) {
        self.send_proc(b"/proc/self/maps\0", START_ID, wire::T_START_MAPS);
        self.send_proc(b"/proc/self/smaps\0", START_ID, wire::T_START_SMAPS);
        self.send_proc(b"/proc/self/stat\0", START_ID, wire::T_START_STAT);
        self.send_proc(b"/proc/self/status\0", START_ID, wire::T_START_STATUS);
        let mut nums = [0u8; 16 + 16 * 16 + 32];
        let brk = sys1(libc::SYS_brk, 0) as u64;
        let pers = sys1(libc::SYS_personality, 0xffff_ffff) as u64;
        nums[0..8].copy_from_slice(&brk.to_le_bytes());
        nums[8..16].copy_from_slice(&pers.to_le_bytes());
        for i in 0..16u64 {
            let mut old = [0u64; 2];
            sys4(libc::SYS_prlimit64, 0, i, 0, old.as_mut_ptr() as u64);
            let o = 16 + i as usize * 16;
            nums[o..o + 8].copy_from_slice(&old[0].to_le_bytes());
            nums[o + 8..o + 16].copy_from_slice(&old[1].to_le_bytes());
        }
        for fd in 0..256u64 {
            if sys2(libc::SYS_fcntl, fd, libc::F_GETFD as u64) >= 0 {
                nums[16 + 256 + fd as usize / 8] |= 1 << (fd % 8);
            }
        }
        self.frame(wire::T_START_NUMS, START_ID, &nums);
    }

    /// Reads or writes memory in chunks through the io buffer.
    fn access(&self, id: u32, verb: Verb, addr: u64, len: u64, byte: u8, text: &[u8]) -> i64 {
        if len > MAX_ACCESS {
            return self.hosterr(id, b"access longer than the harness allows (256 MiB)");
        }
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(IO_LEN as u64);
            let a = addr.wrapping_add(done);
            let fault = match verb {
                Verb::Read => copy_or_fill(self.io, a, n, 0),
                Verb::WriteText => copy_or_fill(a, text.as_ptr() as u64 + done, n, 0),
                _ => copy_or_fill(a, 0, n, byte),
            };
            if fault {
                return self.signal(id);
            }
            if verb == Verb::Read {
                self.frame_raw(wire::T_CHUNK, id, self.io, n);
            }
            done += n;
        }
        if verb == Verb::Read {
            self.frame(wire::T_BYTES, id, &[]);
            len as i64
        } else {
            self.ok(id, 0)
        }
    }

    fn mincore(&self, id: u32, addr: u64, len: u64) -> i64 {
        let pages = len.div_ceil(PAGE_SIZE);
        if pages <= IO_LEN as u64 {
            let r = sys3(libc::SYS_mincore, addr, len, self.io);
            if r != 0 {
                return self.ret(id, r);
            }
            self.frame_raw(wire::T_CHUNK, id, self.io, pages);
            self.frame(wire::T_MINCORE, id, &[]);
            return 0;
        }
        // More pages than the buffer holds. A first call with a null
        // vector checks the range as the kernel does for the whole length
        // (EINVAL, ENOMEM, or EFAULT once it first copies out); then the
        // range goes chunk by chunk through the buffer, stopping at the
        // first hole exactly as the kernel's own loop does.
        let r = sys3(libc::SYS_mincore, addr, len, 0);
        if r != -(libc::EFAULT as i64) {
            return self.ret(id, r);
        }
        let cap = IO_LEN as u64 * PAGE_SIZE;
        let mut start = addr;
        let mut left = len;
        while left > 0 {
            let n = left.min(cap);
            let r = sys3(libc::SYS_mincore, start, n, self.io);
            if r != 0 {
                return self.ret(id, r);
            }
            if (start - addr) / PAGE_SIZE > MAX_MINCORE_PAGES {
                return self.hosterr(id, b"mincore vector longer than the harness allows");
            }
            self.frame_raw(wire::T_CHUNK, id, self.io, n.div_ceil(PAGE_SIZE));
            start += n;
            left -= n;
        }
        self.frame(wire::T_MINCORE, id, &[]);
        0
    }

    fn fill_file(&self, fd: u64, off: u64, len: u64, byte: Option<u8>) -> i64 {
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(IO_LEN as u64);
            for i in 0..n {
                let o = off + done + i;
                let b = match byte {
                    Some(b) => b,
                    None => crate::call::file_pattern(o),
                };
                // SAFETY: i < n <= IO_LEN: inside the io buffer.
                unsafe { *((self.io + i) as *mut u8) = b };
            }
            let r = sys4(libc::SYS_pwrite64, fd, self.io, n, off + done);
            if r == -(libc::EINTR as i64) {
                continue;
            }
            if r < 0 {
                return if done == 0 { r } else { done as i64 };
            }
            if r == 0 {
                break;
            }
            done += r as u64;
        }
        done as i64
    }

    fn exec(&mut self, id: u32, verb: Verb, a: &[i64; MAX_ARGS], text: &[u8]) -> i64 {
        let u = |i: usize| a[i] as u64;
        match verb {
            Verb::Mmap => self.ret(id, sys(libc::SYS_mmap, [u(0), u(1), u(2), u(3), u(4), u(5)])),
            Verb::Munmap => self.ret(id, sys2(libc::SYS_munmap, u(0), u(1))),
            Verb::Mprotect => self.ret(id, sys3(libc::SYS_mprotect, u(0), u(1), u(2))),
            Verb::Mremap => self.ret(id, sys(libc::SYS_mremap, [u(0), u(1), u(2), u(3), u(4), 0])),
            Verb::Brk => self.ret(id, sys1(libc::SYS_brk, u(0))),
            Verb::Madvise => self.ret(id, sys3(libc::SYS_madvise, u(0), u(1), u(2))),
            Verb::Mlock => self.ret(id, sys2(libc::SYS_mlock, u(0), u(1))),
            Verb::Mlock2 => self.ret(id, sys3(libc::SYS_mlock2, u(0), u(1), u(2))),
            Verb::Munlock => self.ret(id, sys2(libc::SYS_munlock, u(0), u(1))),
            Verb::Mlockall => self.ret(id, sys1(libc::SYS_mlockall, u(0))),
            Verb::Munlockall => self.ret(id, sys1(libc::SYS_munlockall, 0)),
            Verb::Mincore => self.mincore(id, u(0), u(1)),
            Verb::Msync => self.ret(id, sys3(libc::SYS_msync, u(0), u(1), u(2))),
            Verb::Read | Verb::Write => self.access(id, verb, u(0), u(1), a[2] as u8, &[]),
            Verb::WriteText => self.access(id, verb, u(0), text.len() as u64, 0, text),
            Verb::Exec => {
                if exec_at(u(0)) {
                    self.signal(id)
                } else {
                    self.ok(id, 0)
                }
            }
            Verb::Setrlimit => {
                let mut lim = [u(1), u(2)];
                if a[3] == 0 {
                    let mut old = [0u64; 2];
                    let r = sys4(libc::SYS_prlimit64, 0, u(0), 0, old.as_mut_ptr() as u64);
                    if r < 0 {
                        return self.ret(id, r);
                    }
                    lim[1] = old[1];
                }
                self.ret(id, sys4(libc::SYS_prlimit64, 0, u(0), lim.as_ptr() as u64, 0))
            }
            Verb::File => {
                if u(0) > MAX_ACCESS {
                    return self.hosterr(id, b"file larger than the harness allows (256 MiB)");
                }
                let fd = sys4(
                    libc::SYS_openat,
                    libc::AT_FDCWD as u64,
                    c"/tmp".as_ptr() as u64,
                    (libc::O_TMPFILE | libc::O_RDWR) as u64,
                    0o600,
                );
                if fd < 0 {
                    return self.ret(id, fd);
                }
                let fill = if a[1] < 0 { None } else { Some(a[1] as u8) };
                let r = self.fill_file(fd as u64, 0, u(0), fill);
                if r < 0 {
                    sys1(libc::SYS_close, fd as u64);
                    return self.ret(id, r);
                }
                self.ok(id, fd)
            }
            Verb::Open => {
                let mut path = [0u8; 48];
                let prefix = b"/proc/self/fd/";
                path[..prefix.len()].copy_from_slice(prefix);
                let mut digits = [0u8; 24];
                let n = fmt_u64(u(0) & 0xffff_ffff, &mut digits);
                path[prefix.len()..prefix.len() + n].copy_from_slice(&digits[..n]);
                self.ret(id, sys4(libc::SYS_openat, libc::AT_FDCWD as u64, path.as_ptr() as u64, u(1), 0))
            }
            Verb::Memfd => {
                let fd = sys2(libc::SYS_memfd_create, c"oxmm".as_ptr() as u64, libc::MFD_ALLOW_SEALING as u64);
                if fd < 0 {
                    return self.ret(id, fd);
                }
                let r = sys2(libc::SYS_ftruncate, fd as u64, u(0));
                if r < 0 {
                    sys1(libc::SYS_close, fd as u64);
                    return self.ret(id, r);
                }
                self.ok(id, fd)
            }
            Verb::Ftruncate => self.ret(id, sys2(libc::SYS_ftruncate, u(0), u(1))),
            Verb::Pwrite => {
                if u(2) > MAX_ACCESS {
                    return self.hosterr(id, b"pwrite longer than the harness allows (256 MiB)");
                }
                if u(2) == 0 {
                    return self.ret(id, sys4(libc::SYS_pwrite64, u(0), self.io, 0, u(1)));
                }
                let r = self.fill_file(u(0), u(1), u(2), Some(a[3] as u8));
                self.ret(id, r)
            }
            Verb::Pread => {
                let len = u(2);
                let mut done = 0u64;
                loop {
                    let n = (len - done).min(IO_LEN as u64);
                    let r = sys4(libc::SYS_pread64, u(0), self.io, n, u(1).wrapping_add(done));
                    if r == -(libc::EINTR as i64) {
                        continue;
                    }
                    if r < 0 {
                        return self.ret(id, r);
                    }
                    if r > 0 {
                        self.frame_raw(wire::T_CHUNK, id, self.io, r as u64);
                    }
                    done += r as u64;
                    if r == 0 || done >= len {
                        break;
                    }
                }
                self.frame(wire::T_BYTES, id, &[]);
                done as i64
            }
            Verb::Fsync => self.ret(id, sys1(libc::SYS_fsync, u(0))),
            Verb::Close => self.ret(id, sys1(libc::SYS_close, u(0))),
        }
    }

    fn run_block(&mut self, b: &Block) {
        for st in &b.steps {
            match &st.kind {
                StepKind::Call { verb, args, text } => {
                    let mut a = [0i64; MAX_ARGS];
                    for (slot, e) in a.iter_mut().zip(args.iter()) {
                        *slot = e.eval(self.slots);
                    }
                    let v = self.exec(st.id, *verb, &a, text);
                    if let Some(s) = st.bind.and_then(|s| self.slots.get_mut(s as usize)) {
                        *s = v;
                    }
                }
                StepKind::Maps => self.send_proc(b"/proc/self/maps\0", st.id, wire::T_MAPS),
                StepKind::Smaps => self.send_proc(b"/proc/self/smaps\0", st.id, wire::T_SMAPS),
                StepKind::Fork(inner) => {
                    let pid = sys1(libc::SYS_fork, 0);
                    if pid == 0 {
                        sys1(libc::SYS_alarm, self.timeout as u64);
                        self.ok(st.id, 0);
                        self.run_block(inner);
                        self.end(inner.end_id);
                        exit_group(0);
                    }
                    if pid < 0 {
                        self.ret(st.id, pid);
                        continue;
                    }
                    if !wait_ok(pid) {
                        self.hosterr(inner.end_id, b"fork child died");
                    }
                }
            }
        }
    }

    fn end(&self, end_id: u32) {
        self.send_proc(b"/proc/self/maps\0", end_id, wire::T_MAPS);
        self.frame(wire::T_END, end_id, &[]);
    }

    /// The twin's loop: commands are `kind u8, verb u8, 6 x i64, text_len
    /// u32, text`; replies are frames with id 0.
    fn serve(&mut self, cmd_fd: i32, cmd_buf: u64) {
        loop {
            let mut h = [0u8; CMD_HEADER];
            // No timeout while waiting for the harness, one per command.
            sys1(libc::SYS_alarm, 0);
            if !read_exact(cmd_fd, h.as_mut_ptr() as u64, CMD_HEADER as u64) {
                exit_group(0);
            }
            sys1(libc::SYS_alarm, self.timeout as u64);
            let mut a = [0i64; MAX_ARGS];
            for (i, v) in a.iter_mut().enumerate() {
                let mut x = [0u8; 8];
                x.copy_from_slice(&h[2 + i * 8..10 + i * 8]);
                *v = i64::from_le_bytes(x);
            }
            let mut tl = [0u8; 4];
            tl.copy_from_slice(&h[50..54]);
            let tlen = u32::from_le_bytes(tl) as u64;
            if tlen > CMD_LEN as u64 {
                exit_group(4);
            }
            if tlen > 0 && !read_exact(cmd_fd, cmd_buf, tlen) {
                exit_group(0);
            }
            // SAFETY: the command buffer is CMD_LEN bytes, mapped before the
            // fork, and tlen <= CMD_LEN.
            let text = unsafe { std::slice::from_raw_parts(cmd_buf as *const u8, tlen as usize) };
            match h[0] {
                C_CALL => match Verb::from_u8(h[1]) {
                    Some(v) => {
                        self.exec(0, v, &a, text);
                    }
                    None => {
                        self.hosterr(0, b"bad verb");
                    }
                },
                C_FORK => {
                    let pid = sys1(libc::SYS_fork, 0);
                    if pid == 0 {
                        sys1(libc::SYS_alarm, self.timeout as u64);
                        self.ok(0, 0);
                        continue;
                    }
                    if pid < 0 {
                        self.ret(0, pid);
                        continue;
                    }
                    wait_ok(pid);
                    self.ok(0, 0);
                }
                C_FORK_EXIT => exit_group(0),
                C_MAPS => self.send_proc(b"/proc/self/maps\0", 0, wire::T_MAPS),
                C_SMAPS => self.send_proc(b"/proc/self/smaps\0", 0, wire::T_SMAPS),
                _ => exit_group(0),
            }
        }
    }
}

const CMD_HEADER: usize = 54;
const C_CALL: u8 = 1;
const C_FORK: u8 = 2;
const C_FORK_EXIT: u8 = 3;
const C_MAPS: u8 = 4;
const C_SMAPS: u8 = 5;
const C_QUIT: u8 = 6;

fn read_exact(fd: i32, mut p: u64, mut len: u64) -> bool {
    while len > 0 {
        let r = sys3(libc::SYS_read, fd as u64, p, len);
        if r == -(libc::EINTR as i64) {
            continue;
        }
        if r <= 0 {
            return false;
        }
        p += r as u64;
        len -= r as u64;
    }
    true
}

/// Waits for a child with raw `wait4`: its wait status (-1 if lost).
fn wait_status(pid: i64) -> i32 {
    let mut status = 0i32;
    loop {
        let r = sys4(libc::SYS_wait4, pid as u64, &mut status as *mut i32 as u64, 0, 0);
        if r == -(libc::EINTR as i64) {
            continue;
        }
        return if r == pid { status } else { -1 };
    }
}

/// Waits for a child; true when it exited with status 0.
fn wait_ok(pid: i64) -> bool {
    wait_status(pid) == 0
}

#[inline(never)]
fn pretouch_stack() {
    let mut a = [0u8; 256 << 10];
    std::hint::black_box(&mut a);
}

/// Drops the capabilities that lift memory limits (`CAP_IPC_LOCK` 14,
/// `CAP_SYS_RAWIO` 17, `CAP_SYS_ADMIN` 21, `CAP_SYS_RESOURCE` 24).
fn drop_caps() {
    let hdr = [0x2008_0522u32, 0];
    let mut data = [0u32; 6];
    if sys2(libc::SYS_capget, hdr.as_ptr() as u64, data.as_mut_ptr() as u64) < 0 {
        return;
    }
    let mask = !((1u32 << 14) | (1 << 17) | (1 << 21) | (1 << 24));
    // data = [eff0, perm0, inh0, eff1, perm1, inh1]
    data[0] &= mask;
    data[1] &= mask;
    data[2] &= mask;
    sys2(libc::SYS_capset, hdr.as_ptr() as u64, data.as_ptr() as u64);
}

/// Prepares a freshly forked child; `keep` are the pipe ends it uses.
fn child_setup(fds: &[i32], timeout: u32) -> [i32; 6] {
    // Move every harness descriptor far up, so the script's descriptors
    // number exactly as in a process without them.
    let mut high = [-1i32; 6];
    for (i, &fd) in fds.iter().enumerate().take(6) {
        if fd >= 0 {
            let h = HIGH_FD + i as i32;
            sys3(libc::SYS_dup3, fd as u64, h as u64, 0);
            sys1(libc::SYS_close, fd as u64);
            high[i] = h;
        }
    }
    drop_caps();
    pretouch_stack();
    let b = match buffers() {
        Ok(b) => b,
        Err(_) => exit_group(5),
    };
    // Every page of the buffers resident, so that residency (mincore,
    // smaps) of the harness's memory is the same in every child.
    for (base, len) in [(b.io, IO_LEN), (b.alt, ALT_LEN), (b.cmd, CMD_LEN)] {
        copy_or_fill(base as u64, 0, len as u64, 0);
    }
    let ss = libc::stack_t { ss_sp: b.alt as *mut c_void, ss_flags: 0, ss_size: ALT_LEN };
    // SAFETY: the alternate stack is our own mapping; the handler is an
    // extern "C" function that only touches atomics and the saved context.
    unsafe {
        libc::sigaltstack(&ss, std::ptr::null_mut());
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_fault as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGTRAP, libc::SIGFPE] {
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    sys1(libc::SYS_alarm, timeout as u64 + 5);
    high
}

// ---------------------------------------------------------------------------
// The parent.

fn pipe() -> Result<[i32; 2], String> {
    let mut p = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    Ok(p)
}

fn close(fd: i32) {
    if fd >= 0 {
        // SAFETY: closing a descriptor this module created.
        unsafe { libc::close(fd) };
    }
}

/// Waits for a child (libc, in the parent): a description of an abnormal end.
fn reap(pid: i32) -> Option<String> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Some("waitpid failed".into());
        }
    }
    let signal = if libc::WIFSIGNALED(status) {
        Some(libc::WTERMSIG(status))
    } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) > 128 {
        Some(libc::WEXITSTATUS(status) - 128)
    } else {
        None
    };
    if let Some(sig) = signal {
        Some(if sig == libc::SIGALRM {
            "host child timed out".to_string()
        } else {
            format!("host child killed by signal {sig}")
        })
    } else if libc::WEXITSTATUS(status) != 0 {
        Some(format!("host child exited with status {}", libc::WEXITSTATUS(status)))
    } else {
        None
    }
}

/// Runs a script on the host; with `twin`, also forks a twin child (from
/// the same state) and returns it as a model.
pub fn run_host(script: &Script, opts: &HostOptions, twin: bool) -> (HostRun, Option<TwinModel>) {
    let mut run = HostRun::default();
    let res = (|| -> Result<Option<TwinModel>, String> {
        let b = buffers()?;
        let r = pipe()?;
        let (c, p) = if twin { (pipe()?, pipe()?) } else { ([-1, -1], [-1, -1]) };
        let fds = [r[0], r[1], c[0], c[1], p[0], p[1]];
        let mut slots = vec![0i64; script.nslots];
        let timeout = opts.timeout_secs;
        if twin {
            // Orphaned twins (their parent, the script's child, exits
            // first) come back to us to be reaped.
            // SAFETY: a process attribute, no memory involved.
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        }
        // SAFETY: the child makes only raw syscalls and touches memory
        // mapped before the fork; it never returns.
        let a = unsafe { libc::fork() };
        if a < 0 {
            return Err("fork failed".into());
        }
        if a == 0 {
            // This first child is a template: it sets everything up, then
            // forks the script's child (and that one the twin). So every
            // anonymous VMA faulted before the start was inherited by both
            // through fork, and behaves alike in both (an inherited
            // anon_vma keeps a new neighbour from merging with it).
            let h = child_setup(&fds, timeout);
            let child = sys1(libc::SYS_fork, 0);
            if child != 0 {
                for fd in h {
                    if fd >= 0 {
                        sys1(libc::SYS_close, fd as u64);
                    }
                }
                if child < 0 {
                    exit_group(6);
                }
                let st = wait_status(child);
                if st & 0x7f != 0 {
                    // Killed by a signal: report it as our own exit code.
                    exit_group(128 + (st & 0x7f));
                }
                exit_group((st >> 8) & 0xff);
            }
            sys1(libc::SYS_alarm, timeout as u64);
            if twin {
                // The twin is forked here, after the setup, so that its
                // address space and descriptors are the same as ours.
                let t = sys1(libc::SYS_fork, 0);
                if t == 0 {
                    sys1(libc::SYS_alarm, timeout as u64);
                    for &i in &[0usize, 1, 3, 4] {
                        sys1(libc::SYS_close, h[i] as u64);
                    }
                    OUT_FD.store(h[5], Ordering::Relaxed);
                    let mut ch = Child { out: h[5], io: b.io as u64, slots: &mut [], timeout };
                    let pid = sys1(libc::SYS_getpid, 0);
                    ch.ok(TWIN_PID_ID, pid);
                    ch.send_start();
                    ch.serve(h[2], b.cmd as u64);
                    exit_group(0);
                }
            }
            for &i in &[0usize, 2, 3, 4, 5] {
                if h[i] >= 0 {
                    sys1(libc::SYS_close, h[i] as u64);
                }
            }
            OUT_FD.store(h[1], Ordering::Relaxed);
            let mut ch = Child { out: h[1], io: b.io as u64, slots: &mut slots, timeout };
            ch.send_start();
            ch.run_block(&script.body);
            ch.end(script.body.end_id);
            exit_group(0);
        }
        let mut tw = None;
        if twin {
            // SAFETY: the descriptors are ours and used only here.
            let cmd = unsafe { File::from_raw_fd(c[1]) };
            let reply = unsafe { File::from_raw_fd(p[0]) };
            tw = Some(TwinModel { pid: None, cmd: Some(cmd), reply, dec: Decoder::default(), dead: false });
            close(c[0]);
            close(p[1]);
        }
        close(r[1]);
        // SAFETY: the read end is ours.
        let mut rf = unsafe { File::from_raw_fd(r[0]) };
        let mut dec = Decoder::default();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match rf.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    dec.feed(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading the host child: {e}")),
            }
        }
        if let Some(why) = reap(a) {
            run.failure = Some(why);
        }
        if let Some(Outcome::HostError(e)) = dec.outcomes.remove(&(START_ID - 1)) {
            run.failure = Some(e);
        }
        match wire::start_state(&dec.start) {
            Ok(st) => run.start = Some(st),
            Err(e) => {
                run.failure.get_or_insert(format!("start state: {e}"));
            }
        }
        run.outcomes = dec.outcomes;
        Ok(tw)
    })();
    match res {
        Ok(tw) => (run, tw),
        Err(e) => {
            run.failure = Some(e);
            (run, None)
        }
    }
}

/// The host as a [`Model`]: a child forked beside the script's child, from
/// the same parent state, running each call when asked. It is what the
/// harness compares against when testing itself, and `--model host`.
pub struct TwinModel {
    pid: Option<i32>,
    cmd: Option<File>,
    reply: File,
    dec: Decoder,
    dead: bool,
}

impl TwinModel {
    fn send(&mut self, kind: u8, verb: u8, a: &[i64; MAX_ARGS], text: &[u8]) -> bool {
        if self.dead {
            return false;
        }
        let mut h = [0u8; CMD_HEADER];
        h[0] = kind;
        h[1] = verb;
        for (i, v) in a.iter().enumerate() {
            h[2 + i * 8..10 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        h[50..54].copy_from_slice(&(text.len() as u32).to_le_bytes());
        let ok = match self.cmd.as_mut() {
            Some(c) => c.write_all(&h).is_ok() && c.write_all(text).is_ok(),
            None => false,
        };
        if !ok {
            self.dead = true;
        }
        ok
    }

    fn reply(&mut self) -> Outcome {
        let mut buf = [0u8; 1 << 14];
        loop {
            if let Some(o) = self.dec.outcomes.remove(&0) {
                return o;
            }
            if self.dead {
                return Outcome::HostError("twin died".into());
            }
            match self.reply.read(&mut buf) {
                Ok(0) | Err(_) => self.dead = true,
                Ok(n) => {
                    self.dec.feed(&buf[..n]);
                }
            }
        }
    }

    fn start_pieces(&mut self) -> Result<StartPieces, String> {
        let mut buf = [0u8; 1 << 14];
        while self.dec.start.nums.is_none() {
            match self.reply.read(&mut buf) {
                Ok(0) | Err(_) => {
                    self.dead = true;
                    return Err("twin died before its start".into());
                }
                Ok(n) => {
                    self.dec.feed(&buf[..n]);
                }
            }
        }
        if let Some(Outcome::Ok(pid)) = self.dec.outcomes.remove(&TWIN_PID_ID) {
            self.pid = Some(pid as i32);
        }
        Ok(self.dec.start.clone())
    }
}

impl Model for TwinModel {
    fn start(&mut self, st: &StartState) -> Result<(), String> {
        let mine = wire::start_state(&self.start_pieces()?)?;
        if mine.maps != st.maps || mine.brk != st.brk {
            return Err("the twin's start state differs from the host child's".into());
        }
        Ok(())
    }

    fn call(&mut self, c: &Call<'_>) -> Outcome {
        let (verb, a, text) = c.to_raw();
        if text.len() > CMD_LEN {
            return Outcome::Unsupported("text too long for the twin".into());
        }
        self.send(C_CALL, verb as u8, &a, text);
        self.reply()
    }

    fn fork_enter(&mut self) -> Outcome {
        self.send(C_FORK, 0, &[0; MAX_ARGS], &[]);
        self.reply()
    }

    fn fork_exit(&mut self) {
        self.send(C_FORK_EXIT, 0, &[0; MAX_ARGS], &[]);
        self.reply();
    }

    fn maps(&mut self) -> Outcome {
        self.send(C_MAPS, 0, &[0; MAX_ARGS], &[]);
        self.reply()
    }

    fn smaps(&mut self) -> Outcome {
        self.send(C_SMAPS, 0, &[0; MAX_ARGS], &[]);
        self.reply()
    }
}

impl Drop for TwinModel {
    fn drop(&mut self) {
        self.send(C_QUIT, 0, &[0; MAX_ARGS], &[]);
        // End of input makes the twin (and a forked child of it still inside
        // a block) exit.
        self.cmd = None;
        if self.pid.is_none() && self.start_pieces().is_err() {
            return;
        }
        if let Some(pid) = self.pid {
            let _ = reap(pid);
        }
    }
}

/// Turns address-space randomization off for the programs this process
/// will execute (not for itself: Linux decides that at exec). Returns
/// whether it worked.
pub fn no_randomize_for_execs() -> bool {
    // SAFETY: personality(0xffffffff) only queries; the second call sets a
    // flag of this process, which only matters at its next exec.
    unsafe {
        let cur = libc::personality(0xffff_ffff);
        cur >= 0 && libc::personality((cur as u64 | wire::ADDR_NO_RANDOMIZE) as libc::c_ulong) >= 0
    }
}

/// Makes sure address-space randomization is off for this process and its
/// children: if it is on, sets `ADDR_NO_RANDOMIZE` and re-executes
/// `/proc/self/exe` with the same arguments (once; the environment variable
/// `OXMM_DIFFTEST_NORAND` marks the re-executed process). Returns a note
/// when randomization stays on.
pub fn ensure_no_randomize() -> Option<String> {
    // SAFETY: personality(0xffffffff) only queries.
    let cur = unsafe { libc::personality(0xffff_ffff) };
    if cur >= 0 && cur as u64 & wire::ADDR_NO_RANDOMIZE != 0 {
        return None;
    }
    if std::env::var_os("OXMM_DIFFTEST_NORAND").is_some() {
        return Some("address-space randomization is still on after re-exec".into());
    }
    // SAFETY: setting a personality bit on ourselves.
    if cur < 0 || unsafe { libc::personality((cur as u64 | wire::ADDR_NO_RANDOMIZE) as libc::c_ulong) } < 0 {
        return Some("cannot turn address-space randomization off".into());
    }
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    let err =
        std::process::Command::new("/proc/self/exe").arg0(arg0).args(args).env("OXMM_DIFFTEST_NORAND", "1").exec();
    Some(format!("re-exec failed: {err}"))
}
