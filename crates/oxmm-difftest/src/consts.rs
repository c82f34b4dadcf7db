//! Linux's numbers for x86-64: flag names, madvise advice, errno and signal
//! names, rlimit resources. The values are the uapi ones (asm-generic
//! mman-common.h / mman.h, x86's mman.h, errno-base.h / errno.h, siginfo.h).

/// The page size of x86-64 (the `p` unit of the script language).
pub const PAGE_SIZE: u64 = 4096;

/// `PROT_*` names accepted in a prot flag set.
pub const PROT_NAMES: &[(&str, i64)] = &[
    ("none", 0),
    ("read", 0x1),
    ("write", 0x2),
    ("exec", 0x4),
    ("sem", 0x8),
    ("growsdown", 0x0100_0000),
    ("growsup", 0x0200_0000),
    // Shortcuts.
    ("r", 0x1),
    ("w", 0x2),
    ("x", 0x4),
    ("rw", 0x3),
    ("rx", 0x5),
    ("wx", 0x6),
    ("rwx", 0x7),
];

/// `MAP_*` names (x86-64 values).
pub const MAP_NAMES: &[(&str, i64)] = &[
    ("shared", 0x01),
    ("private", 0x02),
    ("shared_validate", 0x03),
    ("droppable", 0x08),
    ("fixed", 0x10),
    ("anonymous", 0x20),
    ("anon", 0x20),
    ("32bit", 0x40),
    ("growsdown", 0x100),
    ("denywrite", 0x800),
    ("executable", 0x1000),
    ("locked", 0x2000),
    ("noreserve", 0x4000),
    ("populate", 0x8000),
    ("nonblock", 0x10000),
    ("stack", 0x20000),
    ("hugetlb", 0x40000),
    ("sync", 0x80000),
    ("fixed_noreplace", 0x10_0000),
    ("uninitialized", 0x400_0000),
];

/// `MREMAP_*` names.
pub const MREMAP_NAMES: &[(&str, i64)] = &[("maymove", 1), ("fixed", 2), ("dontunmap", 4)];

/// `MS_*` names (msync).
pub const MSYNC_NAMES: &[(&str, i64)] = &[("async", 1), ("invalidate", 2), ("sync", 4)];

/// `MCL_*` names (mlockall).
pub const MLOCKALL_NAMES: &[(&str, i64)] = &[("current", 1), ("future", 2), ("onfault", 4)];

/// `MLOCK_*` names (mlock2).
pub const MLOCK2_NAMES: &[(&str, i64)] = &[("onfault", 1)];

/// `MADV_*` advice accepted by Linux 6.x madvise(2).
pub const MADV_NAMES: &[(&str, i64)] = &[
    ("normal", 0),
    ("random", 1),
    ("sequential", 2),
    ("willneed", 3),
    ("dontneed", 4),
    ("free", 8),
    ("remove", 9),
    ("dontfork", 10),
    ("dofork", 11),
    ("mergeable", 12),
    ("unmergeable", 13),
    ("hugepage", 14),
    ("nohugepage", 15),
    ("dontdump", 16),
    ("dodump", 17),
    ("wipeonfork", 18),
    ("keeponfork", 19),
    ("cold", 20),
    ("pageout", 21),
    ("populate_read", 22),
    ("populate_write", 23),
    ("dontneed_locked", 24),
    ("collapse", 25),
    ("hwpoison", 100),
    ("soft_offline", 101),
    ("guard_install", 102),
    ("guard_remove", 103),
];

/// `O_*` access modes for `open`.
pub const OPEN_NAMES: &[(&str, i64)] = &[("rdonly", 0), ("wronly", 1), ("rdwr", 2)];

/// `RLIMIT_*` resources (x86-64 numbering).
pub const RLIMIT_NAMES: &[(&str, i64)] = &[
    ("cpu", 0),
    ("fsize", 1),
    ("data", 2),
    ("stack", 3),
    ("core", 4),
    ("rss", 5),
    ("nproc", 6),
    ("nofile", 7),
    ("memlock", 8),
    ("as", 9),
    ("locks", 10),
    ("sigpending", 11),
    ("msgqueue", 12),
    ("nice", 13),
    ("rtprio", 14),
    ("rttime", 15),
];

/// `RLIM_INFINITY`.
pub const RLIM_INFINITY: u64 = u64::MAX;

/// errno names of Linux x86-64.
pub const ERRNO_NAMES: &[(&str, i32)] = &[
    ("EPERM", 1),
    ("ENOENT", 2),
    ("ESRCH", 3),
    ("EINTR", 4),
    ("EIO", 5),
    ("ENXIO", 6),
    ("E2BIG", 7),
    ("ENOEXEC", 8),
    ("EBADF", 9),
    ("ECHILD", 10),
    ("EAGAIN", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EFAULT", 14),
    ("ENOTBLK", 15),
    ("EBUSY", 16),
    ("EEXIST", 17),
    ("EXDEV", 18),
    ("ENODEV", 19),
    ("ENOTDIR", 20),
    ("EISDIR", 21),
    ("EINVAL", 22),
    ("ENFILE", 23),
    ("EMFILE", 24),
    ("ENOTTY", 25),
    ("ETXTBSY", 26),
    ("EFBIG", 27),
    ("ENOSPC", 28),
    ("ESPIPE", 29),
    ("EROFS", 30),
    ("EMLINK", 31),
    ("EPIPE", 32),
    ("EDOM", 33),
    ("ERANGE", 34),
    ("EDEADLK", 35),
    ("ENAMETOOLONG", 36),
    ("ENOLCK", 37),
    ("ENOSYS", 38),
    ("ENOTEMPTY", 39),
    ("ELOOP", 40),
    ("ENOMSG", 42),
    ("ENODATA", 61),
    ("EOVERFLOW", 75),
    ("EOPNOTSUPP", 95),
    ("ETIMEDOUT", 110),
    ("ECANCELED", 125),
    ("EHWPOISON", 133),
];

/// Aliases accepted in expectations (`EWOULDBLOCK` is `EAGAIN`...).
pub const ERRNO_ALIASES: &[(&str, i32)] = &[("EWOULDBLOCK", 11), ("EDEADLOCK", 35), ("ENOTSUP", 95)];

/// Signal names the access routine can report.
pub const SIGNAL_NAMES: &[(&str, i32)] =
    &[("SIGILL", 4), ("SIGTRAP", 5), ("SIGBUS", 7), ("SIGFPE", 8), ("SIGSEGV", 11), ("SIGALRM", 14)];

/// `si_code` names per signal: (signal, name, code).
pub const SI_CODE_NAMES: &[(i32, &str, i32)] = &[
    (11, "SEGV_MAPERR", 1),
    (11, "SEGV_ACCERR", 2),
    (11, "SEGV_BNDERR", 3),
    (11, "SEGV_PKUERR", 4),
    (7, "BUS_ADRALN", 1),
    (7, "BUS_ADRERR", 2),
    (7, "BUS_OBJERR", 3),
    (7, "BUS_MCEERR_AR", 4),
    (7, "BUS_MCEERR_AO", 5),
    (4, "ILL_ILLOPC", 1),
    (4, "ILL_ILLOPN", 2),
    (4, "ILL_PRVOPC", 5),
    (5, "TRAP_BRKPT", 1),
    (8, "FPE_INTDIV", 1),
];

/// `SI_KERNEL`: a signal the kernel raised without a fault address (#GP).
pub const SI_KERNEL: i32 = 0x80;

/// Finds `name` in a table.
pub fn lookup(table: &[(&str, i64)], name: &str) -> Option<i64> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The errno number of a name (`EINVAL` -> 22), aliases included.
pub fn errno_from_name(name: &str) -> Option<i32> {
    ERRNO_NAMES.iter().chain(ERRNO_ALIASES).find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The name of an errno (`22` -> `EINVAL`), or `E#n` for one not in the table.
pub fn errno_name(e: i32) -> String {
    match ERRNO_NAMES.iter().find(|(_, v)| *v == e) {
        Some((n, _)) => (*n).to_string(),
        None => format!("E#{e}"),
    }
}

/// The number of a signal name (`SIGSEGV` -> 11).
pub fn signal_from_name(name: &str) -> Option<i32> {
    SIGNAL_NAMES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The name of a signal, or `SIG#n`.
pub fn signal_name(sig: i32) -> String {
    match SIGNAL_NAMES.iter().find(|(_, v)| *v == sig) {
        Some((n, _)) => (*n).to_string(),
        None => format!("SIG#{sig}"),
    }
}

/// The `si_code` number of a name for a signal (`SEGV_ACCERR` -> 2).
pub fn si_code_from_name(sig: i32, name: &str) -> Option<i32> {
    if name == "SI_KERNEL" {
        return Some(SI_KERNEL);
    }
    SI_CODE_NAMES.iter().find(|(s, n, _)| *s == sig && *n == name).map(|(_, _, c)| *c)
}

/// The name of a `si_code` for a signal, or its number.
pub fn si_code_name(sig: i32, code: i32) -> String {
    if code == SI_KERNEL {
        return "SI_KERNEL".to_string();
    }
    match SI_CODE_NAMES.iter().find(|(s, _, c)| *s == sig && *c == code) {
        Some((_, n, _)) => (*n).to_string(),
        None => format!("{code}"),
    }
}

/// Renders a flag value with a table's names (`0x22` -> `private|anonymous`),
/// the unknown bits as a hex number. Shortcut and alias names are skipped.
pub fn flags_to_string(table: &[(&str, i64)], value: i64, exact: bool) -> String {
    if exact {
        if let Some((n, _)) = table.iter().find(|(_, v)| *v == value) {
            return (*n).to_string();
        }
        return format!("{value}");
    }
    if value == 0 {
        return "0".to_string();
    }
    let mut parts = Vec::new();
    let mut rest = value;
    for (name, v) in table {
        if *v != 0 && v.count_ones() == 1 && rest & v == *v && name.len() > 1 && *name != "anon" {
            parts.push((*name).to_string());
            rest &= !v;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}
