//! Resolved calls, their outcomes, and the process state a model starts from.

use std::fmt;

use crate::consts;
use crate::lang::{Expect, Verb, MAX_ARGS};

/// A call with its arguments resolved to numbers: what a [`crate::Model`]
/// executes. Arguments are raw register values, as the syscall receives them
/// (an fd of -1 is `u64::MAX`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call<'a> {
    /// `mmap(addr, len, prot, flags, fd, off)`.
    Mmap {
        /// Address (hint, or exact with `MAP_FIXED*`).
        addr: u64,
        /// Length in bytes.
        len: u64,
        /// `PROT_*` bits.
        prot: u64,
        /// `MAP_*` bits.
        flags: u64,
        /// File descriptor (`u64::MAX` for none).
        fd: u64,
        /// File offset in bytes.
        off: u64,
    },
    /// `munmap(addr, len)`.
    Munmap {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// `mprotect(addr, len, prot)`.
    Mprotect {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
        /// `PROT_*` bits.
        prot: u64,
    },
    /// `mremap(old, old_len, new_len, flags, new_addr)`.
    Mremap {
        /// Old address.
        old: u64,
        /// Old length.
        old_len: u64,
        /// New length.
        new_len: u64,
        /// `MREMAP_*` bits.
        flags: u64,
        /// New address (with `MREMAP_FIXED`).
        new_addr: u64,
    },
    /// The raw `brk(addr)` syscall: returns the (new or unchanged) break.
    Brk {
        /// Requested break (0 asks).
        addr: u64,
    },
    /// `madvise(addr, len, advice)`.
    Madvise {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
        /// `MADV_*` value.
        advice: u64,
    },
    /// `mlock(addr, len)`.
    Mlock {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// `mlock2(addr, len, flags)`.
    Mlock2 {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
        /// `MLOCK_*` bits.
        flags: u64,
    },
    /// `munlock(addr, len)`.
    Munlock {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// `mlockall(flags)`.
    Mlockall {
        /// `MCL_*` bits.
        flags: u64,
    },
    /// `munlockall()`.
    Munlockall,
    /// `mincore(addr, len, vec)`: the outcome is [`Outcome::Mincore`].
    Mincore {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// `msync(addr, len, flags)`.
    Msync {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
        /// `MS_*` bits.
        flags: u64,
    },
    /// Read `len` bytes at `addr`, in address order, one byte at a time:
    /// [`Outcome::Bytes`], or the signal of the first faulting byte.
    Read {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// Write `byte` to `len` bytes at `addr`, in address order, one at a time:
    /// `Ok(0)`, or the signal of the first faulting byte.
    Write {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
        /// The fill byte.
        byte: u8,
    },
    /// Write `text` at `addr`, like [`Call::Write`].
    WriteText {
        /// Start.
        addr: u64,
        /// The bytes.
        text: &'a [u8],
    },
    /// Call the code at `addr` with every general register 0 except the
    /// stack pointer: `Ok(0)` when it returns, else the signal (an
    /// instruction fetch fault reports `addr` itself).
    Exec {
        /// Entry point.
        addr: u64,
    },
    /// `prlimit64(0, resource, {soft, hard})`; without `hard`, the current
    /// hard limit is kept (read first with `prlimit64`).
    Setrlimit {
        /// `RLIMIT_*` number.
        resource: u64,
        /// Soft limit (`u64::MAX` = infinity).
        soft: u64,
        /// Hard limit, when given.
        hard: Option<u64>,
    },
    /// A new unnamed temporary file (`O_TMPFILE` in /tmp), read-write, `size`
    /// bytes filled with `fill` or, without it, with [`file_pattern`].
    /// `Ok(fd)`.
    File {
        /// Size in bytes.
        size: u64,
        /// Fill byte.
        fill: Option<u8>,
    },
    /// Another descriptor on the file of `fd` (`/proc/self/fd/N`), `Ok(fd)`.
    Open {
        /// The existing descriptor.
        fd: u64,
        /// `O_RDONLY` 0, `O_WRONLY` 1, `O_RDWR` 2 (and any other bits).
        mode: u64,
    },
    /// `memfd_create("oxmm", MFD_ALLOW_SEALING)` then `ftruncate(size)`:
    /// `Ok(fd)`.
    Memfd {
        /// Size in bytes.
        size: u64,
    },
    /// `ftruncate(fd, len)`.
    Ftruncate {
        /// Descriptor.
        fd: u64,
        /// New size.
        len: u64,
    },
    /// `pwrite(fd, [byte; len], off)` (in chunks): `Ok(bytes written)`.
    Pwrite {
        /// Descriptor.
        fd: u64,
        /// Offset.
        off: u64,
        /// Length.
        len: u64,
        /// Fill byte.
        byte: u8,
    },
    /// `pread(fd, buf, len, off)` until `len` bytes or end of file:
    /// [`Outcome::Bytes`].
    Pread {
        /// Descriptor.
        fd: u64,
        /// Offset.
        off: u64,
        /// Length.
        len: u64,
    },
    /// `fsync(fd)`.
    Fsync {
        /// Descriptor.
        fd: u64,
    },
    /// `close(fd)`.
    Close {
        /// Descriptor.
        fd: u64,
    },
}

/// The byte at offset `off` of a `file SIZE` created without a fill byte.
pub fn file_pattern(off: u64) -> u8 {
    ((off / consts::PAGE_SIZE).wrapping_mul(7).wrapping_add(off) % 251) as u8
}

impl<'a> Call<'a> {
    /// Builds a call from a verb, its raw arguments (as [`crate::lang`] lays
    /// them out) and the text of `write ADDR "text"`.
    pub fn from_raw(verb: Verb, a: &[i64; MAX_ARGS], text: &'a [u8]) -> Call<'a> {
        let u = |i: usize| a[i] as u64;
        match verb {
            Verb::Mmap => Call::Mmap { addr: u(0), len: u(1), prot: u(2), flags: u(3), fd: u(4), off: u(5) },
            Verb::Munmap => Call::Munmap { addr: u(0), len: u(1) },
            Verb::Mprotect => Call::Mprotect { addr: u(0), len: u(1), prot: u(2) },
            Verb::Mremap => Call::Mremap { old: u(0), old_len: u(1), new_len: u(2), flags: u(3), new_addr: u(4) },
            Verb::Brk => Call::Brk { addr: u(0) },
            Verb::Madvise => Call::Madvise { addr: u(0), len: u(1), advice: u(2) },
            Verb::Mlock => Call::Mlock { addr: u(0), len: u(1) },
            Verb::Mlock2 => Call::Mlock2 { addr: u(0), len: u(1), flags: u(2) },
            Verb::Munlock => Call::Munlock { addr: u(0), len: u(1) },
            Verb::Mlockall => Call::Mlockall { flags: u(0) },
            Verb::Munlockall => Call::Munlockall,
            Verb::Mincore => Call::Mincore { addr: u(0), len: u(1) },
            Verb::Msync => Call::Msync { addr: u(0), len: u(1), flags: u(2) },
            Verb::Read => Call::Read { addr: u(0), len: u(1) },
            Verb::Write => Call::Write { addr: u(0), len: u(1), byte: a[2] as u8 },
            Verb::WriteText => Call::WriteText { addr: u(0), text },
            Verb::Exec => Call::Exec { addr: u(0) },
            Verb::Setrlimit => {
                Call::Setrlimit { resource: u(0), soft: u(1), hard: if a[3] != 0 { Some(u(2)) } else { None } }
            }
            Verb::File => Call::File { size: u(0), fill: if a[1] < 0 { None } else { Some(a[1] as u8) } },
            Verb::Open => Call::Open { fd: u(0), mode: u(1) },
            Verb::Memfd => Call::Memfd { size: u(0) },
            Verb::Ftruncate => Call::Ftruncate { fd: u(0), len: u(1) },
            Verb::Pwrite => Call::Pwrite { fd: u(0), off: u(1), len: u(2), byte: a[3] as u8 },
            Verb::Pread => Call::Pread { fd: u(0), off: u(1), len: u(2) },
            Verb::Fsync => Call::Fsync { fd: u(0) },
            Verb::Close => Call::Close { fd: u(0) },
        }
    }

    /// The inverse of [`Call::from_raw`]: verb, raw arguments, text.
    pub fn to_raw(&self) -> (Verb, [i64; MAX_ARGS], &'a [u8]) {
        let mut a = [0i64; MAX_ARGS];
        let mut set = |vals: &[u64]| {
            for (i, v) in vals.iter().enumerate() {
                a[i] = *v as i64;
            }
        };
        let mut text: &'a [u8] = &[];
        let verb = match *self {
            Call::Mmap { addr, len, prot, flags, fd, off } => {
                set(&[addr, len, prot, flags, fd, off]);
                Verb::Mmap
            }
            Call::Munmap { addr, len } => {
                set(&[addr, len]);
                Verb::Munmap
            }
            Call::Mprotect { addr, len, prot } => {
                set(&[addr, len, prot]);
                Verb::Mprotect
            }
            Call::Mremap { old, old_len, new_len, flags, new_addr } => {
                set(&[old, old_len, new_len, flags, new_addr]);
                Verb::Mremap
            }
            Call::Brk { addr } => {
                set(&[addr]);
                Verb::Brk
            }
            Call::Madvise { addr, len, advice } => {
                set(&[addr, len, advice]);
                Verb::Madvise
            }
            Call::Mlock { addr, len } => {
                set(&[addr, len]);
                Verb::Mlock
            }
            Call::Mlock2 { addr, len, flags } => {
                set(&[addr, len, flags]);
                Verb::Mlock2
            }
            Call::Munlock { addr, len } => {
                set(&[addr, len]);
                Verb::Munlock
            }
            Call::Mlockall { flags } => {
                set(&[flags]);
                Verb::Mlockall
            }
            Call::Munlockall => Verb::Munlockall,
            Call::Mincore { addr, len } => {
                set(&[addr, len]);
                Verb::Mincore
            }
            Call::Msync { addr, len, flags } => {
                set(&[addr, len, flags]);
                Verb::Msync
            }
            Call::Read { addr, len } => {
                set(&[addr, len]);
                Verb::Read
            }
            Call::Write { addr, len, byte } => {
                set(&[addr, len, byte as u64]);
                Verb::Write
            }
            Call::WriteText { addr, text: t } => {
                set(&[addr]);
                text = t;
                Verb::WriteText
            }
            Call::Exec { addr } => {
                set(&[addr]);
                Verb::Exec
            }
            Call::Setrlimit { resource, soft, hard } => {
                set(&[resource, soft, hard.unwrap_or(0), hard.is_some() as u64]);
                Verb::Setrlimit
            }
            Call::File { size, fill } => {
                set(&[size, fill.map(u64::from).unwrap_or(u64::MAX)]);
                Verb::File
            }
            Call::Open { fd, mode } => {
                set(&[fd, mode]);
                Verb::Open
            }
            Call::Memfd { size } => {
                set(&[size]);
                Verb::Memfd
            }
            Call::Ftruncate { fd, len } => {
                set(&[fd, len]);
                Verb::Ftruncate
            }
            Call::Pwrite { fd, off, len, byte } => {
                set(&[fd, off, len, byte as u64]);
                Verb::Pwrite
            }
            Call::Pread { fd, off, len } => {
                set(&[fd, off, len]);
                Verb::Pread
            }
            Call::Fsync { fd } => {
                set(&[fd]);
                Verb::Fsync
            }
            Call::Close { fd } => {
                set(&[fd]);
                Verb::Close
            }
        };
        (verb, a, text)
    }

    /// The verb of this call.
    pub fn verb(&self) -> Verb {
        self.to_raw().0
    }
}

/// One line of `/proc/PID/maps`, as compared.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapEntry {
    /// Start address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// `rwxp` / `rwxs` as in maps (4 characters).
    pub perms: String,
    /// File offset (the page offset for anonymous mappings, as Linux prints it).
    pub offset: u64,
    /// Name as compared: `[heap]`, `[stack]`, `[vdso]`, `[anon:NAME]`...
    /// kept; a file path becomes `[file]`, a memfd `[memfd]`; empty for
    /// anonymous memory.
    pub name: String,
}

impl fmt::Display for MapEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}-{:x} {} {:x}", self.start, self.end, self.perms, self.offset)?;
        if !self.name.is_empty() {
            write!(f, " {}", self.name)?;
        }
        Ok(())
    }
}

/// A VMA's smaps counters, as compared (kB, as Linux prints them).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SmapsEntry {
    /// The VMA.
    pub vma: MapEntry,
    /// `Rss:` in kB.
    pub rss_kb: u64,
    /// `Anonymous:` in kB.
    pub anonymous_kb: u64,
    /// `Locked:` in kB.
    pub locked_kb: u64,
    /// `Swap:` in kB.
    pub swap_kb: u64,
}

impl fmt::Display for SmapsEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} Rss={} Anonymous={} Locked={} Swap={}",
            self.vma, self.rss_kb, self.anonymous_kb, self.locked_kb, self.swap_kb
        )
    }
}

/// Normalizes a maps name for comparison (see [`MapEntry::name`]).
pub fn normalize_name(name: &str) -> String {
    let name = name.trim();
    if name.is_empty() || name.starts_with('[') {
        name.to_string()
    } else if name.starts_with("/memfd:") {
        "[memfd]".to_string()
    } else {
        "[file]".to_string()
    }
}

/// Parses one line of `/proc/PID/maps` (or an smaps header line).
pub fn parse_maps_line(line: &str) -> Option<MapEntry> {
    let mut it = line.splitn(6, ' ');
    let range = it.next()?;
    let perms = it.next()?;
    let offset = it.next()?;
    let _dev = it.next()?;
    let _inode = it.next()?;
    let name = it.next().unwrap_or("");
    let (s, e) = range.split_once('-')?;
    if perms.len() != 4 {
        return None;
    }
    Some(MapEntry {
        start: u64::from_str_radix(s, 16).ok()?,
        end: u64::from_str_radix(e, 16).ok()?,
        perms: perms.to_string(),
        offset: u64::from_str_radix(offset, 16).ok()?,
        name: normalize_name(name),
    })
}

/// Parses `/proc/PID/maps` text.
pub fn parse_maps(text: &str) -> Vec<MapEntry> {
    text.lines().filter_map(parse_maps_line).collect()
}

/// Parses `/proc/PID/smaps` text.
pub fn parse_smaps(text: &str) -> Vec<SmapsEntry> {
    let mut out: Vec<SmapsEntry> = Vec::new();
    for line in text.lines() {
        if let Some((key, rest)) = line.split_once(':') {
            if !key.contains(' ') && !key.contains('-') {
                let v = rest.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                if let Some(last) = out.last_mut() {
                    match key {
                        "Rss" => last.rss_kb = v,
                        "Anonymous" => last.anonymous_kb = v,
                        "Locked" => last.locked_kb = v,
                        "Swap" => last.swap_kb = v,
                        _ => {}
                    }
                }
                continue;
            }
        }
        if let Some(vma) = parse_maps_line(line) {
            out.push(SmapsEntry { vma, rss_kb: 0, anonymous_kb: 0, locked_kb: 0, swap_kb: 0 });
        }
    }
    out
}

/// The result of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Success with this return value (an address, a count, an fd, 0).
    Ok(i64),
    /// Failure with this errno.
    Err(i32),
    /// A memory access raised a signal.
    Signal {
        /// Signal number (`SIGSEGV` 11, `SIGBUS` 7...).
        sig: i32,
        /// `si_code` (`SEGV_MAPERR` 1, `SEGV_ACCERR` 2...).
        code: i32,
        /// `si_addr`.
        addr: u64,
    },
    /// Bytes read (`read`, `pread`).
    Bytes(Vec<u8>),
    /// The vector of a successful `mincore`.
    Mincore(Vec<u8>),
    /// The whole VMA list (`maps`); the harness restricts it to the script's.
    Maps(Vec<MapEntry>),
    /// The whole smaps list (`smaps`); the harness restricts it likewise.
    Smaps(Vec<SmapsEntry>),
    /// The model cannot run this step (yet): counted apart, a mismatch
    /// unless `--allow-unsupported`.
    Unsupported(String),
    /// The host harness itself failed at this step (never a model result).
    HostError(String),
}

impl Outcome {
    /// The value a `name =` binding takes: the return value (an address, an
    /// fd), -1 for a failure (what libc returns), 0 otherwise.
    pub fn bound_value(&self) -> i64 {
        match self {
            Outcome::Ok(v) => *v,
            Outcome::Err(_) => -1,
            Outcome::Bytes(b) => b.len() as i64,
            _ => 0,
        }
    }

    /// Whether this outcome satisfies an expectation.
    pub fn satisfies(&self, e: &Expect) -> bool {
        match (e, self) {
            (Expect::Ok, Outcome::Ok(_) | Outcome::Bytes(_) | Outcome::Mincore(_)) => true,
            (Expect::Errno(x), Outcome::Err(y)) => x == y,
            (Expect::Signal { sig, code }, Outcome::Signal { sig: s, code: c, .. }) => {
                sig == s && (code.is_none() || *code == Some(*c))
            }
            _ => false,
        }
    }
}

/// Renders bytes run-length encoded: `41*4095 42`, at most `max` runs.
pub fn rle(b: &[u8], max: usize) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if out.len() == max {
            out.push("...".to_string());
            break;
        }
        let mut j = i + 1;
        while j < b.len() && b[j] == b[i] {
            j += 1;
        }
        out.push(if j - i > 1 { format!("{:02x}*{}", b[i], j - i) } else { format!("{:02x}", b[i]) });
        i = j;
    }
    out.join(" ")
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok(v) => {
                if (0..0x10000).contains(v) {
                    write!(f, "{v}")
                } else {
                    write!(f, "{:#x}", *v as u64)
                }
            }
            Outcome::Err(e) => write!(f, "{}", consts::errno_name(*e)),
            Outcome::Signal { sig, code, addr } => {
                write!(f, "{}/{}@{:#x}", consts::signal_name(*sig), consts::si_code_name(*sig, *code), addr)
            }
            Outcome::Bytes(b) => write!(f, "bytes[{}]:{}", b.len(), rle(b, 12)),
            Outcome::Mincore(b) => write!(f, "mincore[{}]:{}", b.len(), rle(b, 12)),
            Outcome::Maps(m) => {
                write!(f, "[")?;
                for (i, e) in m.iter().enumerate() {
                    write!(f, "{}{e}", if i > 0 { "; " } else { "" })?;
                }
                write!(f, "]")
            }
            Outcome::Smaps(m) => {
                write!(f, "[")?;
                for (i, e) in m.iter().enumerate() {
                    write!(f, "{}{e}", if i > 0 { "; " } else { "" })?;
                }
                write!(f, "]")
            }
            Outcome::Unsupported(why) => write!(f, "unsupported({why})"),
            Outcome::HostError(why) => write!(f, "host-error({why})"),
        }
    }
}

/// The state of the host child when the script starts: the model's
/// address space starts as a copy of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartState {
    /// `/proc/self/maps` at the start, raw text (device, inode and path
    /// included).
    pub maps_text: String,
    /// The same, parsed and normalized.
    pub maps: Vec<MapEntry>,
    /// `/proc/self/smaps` counters at the start.
    pub smaps: Vec<SmapsEntry>,
    /// `/proc/self/smaps` at the start, raw text (`VmFlags` included).
    ///
    /// Every start VMA was inherited through `fork` (the script's child is
    /// forked from a template child that set everything up), so one that
    /// had an anon_vma then (it has anonymous pages, `Anonymous:` > 0) has
    /// a non-singular anon_vma chain, and Linux does not merge a new VMA
    /// into it (`vma_had_uncowed_parents`).
    pub smaps_text: String,
    /// `start_brk` (field 47 of `/proc/self/stat`).
    pub start_brk: u64,
    /// The current break (`brk(0)`).
    pub brk: u64,
    /// `mm->mmap_base`: where top-down `mmap(0, ...)` searches from. Linux
    /// does not show it; the harness computes it with Linux's `mmap_base()`
    /// for x86-64 (randomization off): `TASK_SIZE - clamp(stack rlimit at
    /// exec + stack_guard_gap, 128 MiB, TASK_SIZE/6*5)`, page aligned.
    pub mmap_base: u64,
    /// Whether the layout is legacy (bottom-up from `TASK_SIZE/3`), as
    /// Linux chooses when the stack rlimit at exec was infinite.
    pub legacy_layout: bool,
    /// `TASK_SIZE` (47-bit: `0x7ffffffff000`).
    pub task_size: u64,
    /// Whether address-space randomization is off (`ADDR_NO_RANDOMIZE`).
    pub no_randomize: bool,
    /// Soft and hard rlimits, indexed by `RLIMIT_*` (0..16).
    pub rlimits: Vec<(u64, u64)>,
    /// The effective capability set (`CapEff` of `/proc/self/status`); the
    /// child drops `CAP_IPC_LOCK`, `CAP_SYS_RESOURCE`, `CAP_SYS_RAWIO` and
    /// `CAP_SYS_ADMIN` so that limits apply as to an ordinary process.
    pub cap_effective: u64,
    /// Open file descriptors (new ones take the lowest free number).
    pub open_fds: Vec<i32>,
    /// `/proc/sys/vm/mmap_min_addr`.
    pub mmap_min_addr: u64,
    /// `/proc/sys/vm/max_map_count`.
    pub max_map_count: u64,
    /// `/proc/sys/vm/overcommit_memory`.
    pub overcommit_memory: u64,
    /// `/proc/sys/vm/overcommit_ratio`.
    pub overcommit_ratio: u64,
}
