//! The `.mms` script language: parsing into [`Script`]s.
//!
//! One step per line, `#` starts a comment; a step is
//! `[name =] verb args... [=> expectation]`, and `fork {` ... `}` runs a block
//! in a child process. See `docs/difftest.md` for the whole language.
//!
//! Parsing resolves everything that does not depend on a run: flag names
//! become numbers, omitted optional arguments get their defaults, and each
//! `$name` becomes a slot index, so that the host child can evaluate
//! arguments without allocating (see [`Expr::eval`]).

use std::collections::HashMap;
use std::fmt;

use crate::consts::{self, PAGE_SIZE};

/// The most arguments a verb takes (`mmap`: 6).
pub const MAX_ARGS: usize = 6;

/// Nesting limit of `fork { }` blocks.
pub const MAX_FORK_DEPTH: usize = 8;

/// A parse error, naming the file and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The script's name (its path).
    pub file: String,
    /// 1-based line number.
    pub line: u32,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}

/// A system call or access verb of the language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Verb {
    /// `mmap ADDR LEN PROT FLAGS [FD [OFFSET]]`
    Mmap = 1,
    /// `munmap ADDR LEN`
    Munmap,
    /// `mprotect ADDR LEN PROT`
    Mprotect,
    /// `mremap OLD OLDLEN NEWLEN FLAGS [NEWADDR]`
    Mremap,
    /// `brk ADDR`
    Brk,
    /// `madvise ADDR LEN ADVICE`
    Madvise,
    /// `mlock ADDR LEN`
    Mlock,
    /// `mlock2 ADDR LEN FLAGS`
    Mlock2,
    /// `munlock ADDR LEN`
    Munlock,
    /// `mlockall FLAGS`
    Mlockall,
    /// `munlockall`
    Munlockall,
    /// `mincore ADDR LEN`
    Mincore,
    /// `msync ADDR LEN FLAGS`
    Msync,
    /// `read ADDR LEN`
    Read,
    /// `write ADDR LEN BYTE`
    Write,
    /// `write ADDR "text"`
    WriteText,
    /// `exec ADDR`
    Exec,
    /// `setrlimit RESOURCE SOFT [HARD]`
    Setrlimit,
    /// `file SIZE [BYTE]`
    File,
    /// `open FD MODE`
    Open,
    /// `memfd SIZE`
    Memfd,
    /// `ftruncate FD LEN`
    Ftruncate,
    /// `pwrite FD OFFSET LEN BYTE`
    Pwrite,
    /// `pread FD OFFSET LEN`
    Pread,
    /// `fsync FD`
    Fsync,
    /// `close FD`
    Close,
}

/// Every verb, for the generator and the wire decoder.
pub const ALL_VERBS: &[Verb] = &[
    Verb::Mmap,
    Verb::Munmap,
    Verb::Mprotect,
    Verb::Mremap,
    Verb::Brk,
    Verb::Madvise,
    Verb::Mlock,
    Verb::Mlock2,
    Verb::Munlock,
    Verb::Mlockall,
    Verb::Munlockall,
    Verb::Mincore,
    Verb::Msync,
    Verb::Read,
    Verb::Write,
    Verb::WriteText,
    Verb::Exec,
    Verb::Setrlimit,
    Verb::File,
    Verb::Open,
    Verb::Memfd,
    Verb::Ftruncate,
    Verb::Pwrite,
    Verb::Pread,
    Verb::Fsync,
    Verb::Close,
];

impl Verb {
    /// The verb's name in scripts.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Mmap => "mmap",
            Verb::Munmap => "munmap",
            Verb::Mprotect => "mprotect",
            Verb::Mremap => "mremap",
            Verb::Brk => "brk",
            Verb::Madvise => "madvise",
            Verb::Mlock => "mlock",
            Verb::Mlock2 => "mlock2",
            Verb::Munlock => "munlock",
            Verb::Mlockall => "mlockall",
            Verb::Munlockall => "munlockall",
            Verb::Mincore => "mincore",
            Verb::Msync => "msync",
            Verb::Read => "read",
            Verb::Write | Verb::WriteText => "write",
            Verb::Exec => "exec",
            Verb::Setrlimit => "setrlimit",
            Verb::File => "file",
            Verb::Open => "open",
            Verb::Memfd => "memfd",
            Verb::Ftruncate => "ftruncate",
            Verb::Pwrite => "pwrite",
            Verb::Pread => "pread",
            Verb::Fsync => "fsync",
            Verb::Close => "close",
        }
    }

    /// The verb with this wire number.
    pub fn from_u8(v: u8) -> Option<Verb> {
        ALL_VERBS.iter().copied().find(|x| *x as u8 == v)
    }

    /// Whether this verb works on files (the `file` family).
    pub fn is_file_verb(self) -> bool {
        matches!(
            self,
            Verb::File
                | Verb::Open
                | Verb::Memfd
                | Verb::Ftruncate
                | Verb::Pwrite
                | Verb::Pread
                | Verb::Fsync
                | Verb::Close
        )
    }
}

/// An argument: a constant plus a signed sum of bound values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expr {
    /// `(negated, slot)` terms.
    pub terms: Vec<(bool, u32)>,
    /// The constant part.
    pub offset: i64,
}

impl Expr {
    /// A constant.
    pub fn constant(v: i64) -> Expr {
        Expr { terms: Vec::new(), offset: v }
    }

    /// The value with the current bindings (wrapping arithmetic; an unknown
    /// slot counts as 0). Does not allocate.
    pub fn eval(&self, slots: &[i64]) -> i64 {
        let mut v = self.offset;
        for &(neg, s) in &self.terms {
            let b = slots.get(s as usize).copied().unwrap_or(0);
            v = if neg { v.wrapping_sub(b) } else { v.wrapping_add(b) };
        }
        v
    }
}

/// An expectation written after `=>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// `=> ok`: the call succeeded (no errno, no signal).
    Ok,
    /// `=> EINVAL`: the call failed with this errno.
    Errno(i32),
    /// `=> SIGSEGV` or `=> SIGSEGV/SEGV_ACCERR`: the access raised this signal.
    Signal {
        /// Signal number.
        sig: i32,
        /// `si_code`, when given.
        code: Option<i32>,
    },
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Expect::Ok => write!(f, "ok"),
            Expect::Errno(e) => write!(f, "{}", consts::errno_name(e)),
            Expect::Signal { sig, code: None } => write!(f, "{}", consts::signal_name(sig)),
            Expect::Signal { sig, code: Some(c) } => {
                write!(f, "{}/{}", consts::signal_name(sig), consts::si_code_name(sig, c))
            }
        }
    }
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// A call: the verb, its arguments (defaults filled in) and, for
    /// `write ADDR "text"`, the text.
    Call {
        /// The verb.
        verb: Verb,
        /// Arguments in the verb's order, `MAX_ARGS` of them (unused ones 0).
        args: Vec<Expr>,
        /// The text of `write ADDR "text"` (empty otherwise).
        text: Vec<u8>,
    },
    /// `maps`: compare the VMA lists.
    Maps,
    /// `smaps`: compare Rss/Anonymous/Locked/Swap per VMA.
    Smaps,
    /// `fork { ... }`: the block runs in a child process.
    Fork(Block),
}

/// One step of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Unique id in the script (the host's results are keyed by it).
    pub id: u32,
    /// 1-based source line.
    pub line: u32,
    /// The slot `name =` binds, if any.
    pub bind: Option<u32>,
    /// The bound name (for messages).
    pub bind_name: Option<String>,
    /// What the step does.
    pub kind: StepKind,
    /// The expectation after `=>`, if any.
    pub expect: Option<Expect>,
}

impl Step {
    /// The verb as printed in mismatch lines.
    pub fn verb_name(&self) -> &'static str {
        match &self.kind {
            StepKind::Call { verb, .. } => verb.name(),
            StepKind::Maps => "maps",
            StepKind::Smaps => "smaps",
            StepKind::Fork(_) => "fork",
        }
    }
}

/// A sequence of steps run by one process: the script's top level or a
/// `fork { }` body. When it ends, the VMA lists are compared once more
/// (the step id `end_id`, reported at `end_line`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The steps.
    pub steps: Vec<Step>,
    /// The id of the end-of-block maps comparison.
    pub end_id: u32,
    /// The line reported for it: the closing `}`, or the script's last line.
    pub end_line: u32,
}

/// A parsed script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// Its name (the path it was read from).
    pub name: String,
    /// The top-level block.
    pub body: Block,
    /// How many binding slots it uses.
    pub nslots: usize,
    /// How many ids (steps and block ends) it uses.
    pub nids: u32,
}

impl Script {
    /// Number of steps, fork blocks and their steps included (not block ends).
    pub fn step_count(&self) -> usize {
        fn count(b: &Block) -> usize {
            b.steps.iter().map(|s| 1 + if let StepKind::Fork(inner) = &s.kind { count(inner) } else { 0 }).sum()
        }
        count(&self.body)
    }
}

/// Parses a number: decimal or hex, optional sign, optional unit `p` (pages),
/// `k`, `m`, `g`.
pub fn parse_number(tok: &str) -> Option<i64> {
    let (neg, body) = match tok.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, tok.strip_prefix('+').unwrap_or(tok)),
    };
    if body.is_empty() {
        return None;
    }
    let (digits, mult): (&str, u64) = match body.as_bytes()[body.len() - 1] {
        b'p' | b'P' => (&body[..body.len() - 1], PAGE_SIZE),
        b'k' | b'K' => (&body[..body.len() - 1], 1 << 10),
        b'm' | b'M' => (&body[..body.len() - 1], 1 << 20),
        b'g' | b'G' => (&body[..body.len() - 1], 1 << 30),
        _ => (body, 1),
    };
    let v: u64 = if let Some(h) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        if h.is_empty() || h.contains('_') {
            return None;
        }
        u64::from_str_radix(h, 16).ok()?
    } else {
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse::<u64>().ok()?
    };
    let v = v.checked_mul(mult)?;
    let v = v as i64;
    Some(if neg { v.wrapping_neg() } else { v })
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// The kind of an argument position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArgKind {
    Val,
    Flags(&'static [(&'static str, i64)]),
    Resource,
    Limit,
}

struct Parser<'a> {
    file: &'a str,
    scopes: Vec<HashMap<String, u32>>,
    nslots: u32,
    nids: u32,
}

struct Line<'a> {
    no: u32,
    /// Tokens: words, and quoted strings (kept with their quotes).
    toks: Vec<&'a str>,
    expect: Option<&'a str>,
}

impl<'a> Parser<'a> {
    fn err(&self, line: u32, msg: impl Into<String>) -> ParseError {
        ParseError { file: self.file.to_string(), line, msg: msg.into() }
    }

    fn lookup(&self, name: &str) -> Option<u32> {
        self.scopes.iter().rev().find_map(|s| s.get(name).copied())
    }

    fn next_id(&mut self) -> u32 {
        let id = self.nids;
        self.nids += 1;
        id
    }

    /// An expression: terms joined by `+`/`-`; a term is a number or `$name`.
    fn expr(&self, line: u32, tok: &str) -> Result<Expr, ParseError> {
        if tok.is_empty() {
            return Err(self.err(line, "empty value"));
        }
        let mut e = Expr::default();
        // Split into signed terms, keeping a leading '-' with a number.
        let b = tok.as_bytes();
        let mut i = 0;
        let mut first = true;
        while i < b.len() {
            let mut neg = false;
            if !first {
                match b[i] {
                    b'+' => {}
                    b'-' => neg = true,
                    _ => return Err(self.err(line, format!("bad value `{tok}`"))),
                }
                i += 1;
            } else if b[i] == b'-' && b.get(1) == Some(&b'$') {
                neg = true;
                i += 1;
            }
            let start = i;
            // A leading '-' of the first term belongs to a number.
            if first && i < b.len() && b[i] == b'-' {
                i += 1;
            }
            while i < b.len() && b[i] != b'+' && b[i] != b'-' {
                i += 1;
            }
            let term = &tok[start..i];
            if term.is_empty() || term == "-" {
                return Err(self.err(line, format!("bad value `{tok}`")));
            }
            if let Some(name) = term.strip_prefix('$') {
                if !is_ident(name) {
                    return Err(self.err(line, format!("bad reference `{term}`")));
                }
                match self.lookup(name) {
                    Some(slot) => e.terms.push((neg, slot)),
                    None => return Err(self.err(line, format!("`${name}` is not bound"))),
                }
            } else {
                let v = parse_number(term).ok_or_else(|| self.err(line, format!("bad number `{term}`")))?;
                e.offset = if neg { e.offset.wrapping_sub(v) } else { e.offset.wrapping_add(v) };
            }
            first = false;
        }
        Ok(e)
    }

    fn flags(&self, line: u32, tok: &str, table: &[(&str, i64)], what: &str) -> Result<Expr, ParseError> {
        let mut v = 0i64;
        for part in tok.split('|') {
            if let Some(x) = consts::lookup(table, part) {
                v |= x;
            } else if let Some(x) = parse_number(part) {
                v |= x;
            } else {
                return Err(self.err(line, format!("unknown {what} `{part}`")));
            }
        }
        Ok(Expr::constant(v))
    }

    fn arg(&self, line: u32, kind: ArgKind, tok: &str, what: &str) -> Result<Expr, ParseError> {
        match kind {
            ArgKind::Val => self.expr(line, tok),
            ArgKind::Flags(t) => self.flags(line, tok, t, what),
            ArgKind::Resource => match consts::lookup(consts::RLIMIT_NAMES, tok).or_else(|| parse_number(tok)) {
                Some(v) => Ok(Expr::constant(v)),
                None => Err(self.err(line, format!("unknown rlimit resource `{tok}`"))),
            },
            ArgKind::Limit => {
                if tok == "inf" || tok == "unlimited" {
                    Ok(Expr::constant(consts::RLIM_INFINITY as i64))
                } else {
                    self.expr(line, tok)
                }
            }
        }
    }

    fn expectation(&self, line: u32, s: &str) -> Result<Expect, ParseError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("ok") {
            return Ok(Expect::Ok);
        }
        if let Some(e) = consts::errno_from_name(s) {
            return Ok(Expect::Errno(e));
        }
        let (sname, cname) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        if let Some(sig) = consts::signal_from_name(sname) {
            let code = match cname {
                None => None,
                Some(c) => Some(
                    consts::si_code_from_name(sig, c)
                        .or_else(|| c.parse::<i32>().ok())
                        .ok_or_else(|| self.err(line, format!("unknown si_code `{c}` for {sname}")))?,
                ),
            };
            return Ok(Expect::Signal { sig, code });
        }
        Err(self.err(line, format!("unknown expectation `{s}` (ok, an errno name, or a signal)")))
    }

    fn call(&mut self, ln: &Line<'a>, toks: &[&'a str]) -> Result<StepKind, ParseError> {
        let line = ln.no;
        let verb_tok = toks[0];
        let args = &toks[1..];
        use ArgKind::*;
        let (verb, sig, nreq): (Verb, &[(ArgKind, &str)], usize) = match verb_tok {
            "mmap" => (
                Verb::Mmap,
                &[
                    (Val, "addr"),
                    (Val, "length"),
                    (Flags(consts::PROT_NAMES), "prot"),
                    (Flags(consts::MAP_NAMES), "mmap flag"),
                    (Val, "fd"),
                    (Val, "offset"),
                ],
                4,
            ),
            "munmap" => (Verb::Munmap, &[(Val, "addr"), (Val, "length")], 2),
            "mprotect" => (Verb::Mprotect, &[(Val, "addr"), (Val, "length"), (Flags(consts::PROT_NAMES), "prot")], 3),
            "mremap" => (
                Verb::Mremap,
                &[
                    (Val, "old address"),
                    (Val, "old length"),
                    (Val, "new length"),
                    (Flags(consts::MREMAP_NAMES), "mremap flag"),
                    (Val, "new address"),
                ],
                4,
            ),
            "brk" => (Verb::Brk, &[(Val, "addr")], 1),
            "madvise" => {
                (Verb::Madvise, &[(Val, "addr"), (Val, "length"), (Flags(consts::MADV_NAMES), "madvise advice")], 3)
            }
            "mlock" => (Verb::Mlock, &[(Val, "addr"), (Val, "length")], 2),
            "mlock2" => {
                (Verb::Mlock2, &[(Val, "addr"), (Val, "length"), (Flags(consts::MLOCK2_NAMES), "mlock2 flag")], 3)
            }
            "munlock" => (Verb::Munlock, &[(Val, "addr"), (Val, "length")], 2),
            "mlockall" => (Verb::Mlockall, &[(Flags(consts::MLOCKALL_NAMES), "mlockall flag")], 1),
            "munlockall" => (Verb::Munlockall, &[], 0),
            "mincore" => (Verb::Mincore, &[(Val, "addr"), (Val, "length")], 2),
            "msync" => (Verb::Msync, &[(Val, "addr"), (Val, "length"), (Flags(consts::MSYNC_NAMES), "msync flag")], 3),
            "read" => (Verb::Read, &[(Val, "addr"), (Val, "length")], 2),
            "write" => {
                if args.len() == 2 && args[1].starts_with('"') {
                    let addr = self.expr(line, args[0])?;
                    let text = unquote(args[1]).map_err(|m| self.err(line, m))?;
                    let mut a = vec![addr];
                    a.resize(MAX_ARGS, Expr::default());
                    return Ok(StepKind::Call { verb: Verb::WriteText, args: a, text });
                }
                (Verb::Write, &[(Val, "addr"), (Val, "length"), (Val, "byte")], 3)
            }
            "exec" => (Verb::Exec, &[(Val, "addr")], 1),
            "setrlimit" => {
                (Verb::Setrlimit, &[(Resource, "resource"), (Limit, "soft limit"), (Limit, "hard limit")], 2)
            }
            "file" => (Verb::File, &[(Val, "size"), (Val, "byte")], 1),
            "open" => (Verb::Open, &[(Val, "fd"), (Flags(consts::OPEN_NAMES), "open mode")], 2),
            "memfd" => (Verb::Memfd, &[(Val, "size")], 1),
            "ftruncate" => (Verb::Ftruncate, &[(Val, "fd"), (Val, "length")], 2),
            "pwrite" => (Verb::Pwrite, &[(Val, "fd"), (Val, "offset"), (Val, "length"), (Val, "byte")], 4),
            "pread" => (Verb::Pread, &[(Val, "fd"), (Val, "offset"), (Val, "length")], 3),
            "fsync" => (Verb::Fsync, &[(Val, "fd")], 1),
            "close" => (Verb::Close, &[(Val, "fd")], 1),
            other => return Err(self.err(line, format!("unknown verb `{other}`"))),
        };
        if args.len() < nreq || args.len() > sig.len() {
            let range = if nreq == sig.len() { format!("{nreq}") } else { format!("{nreq} to {}", sig.len()) };
            return Err(
                self.err(line, format!("`{}` takes {range} arguments ({}), got {}", verb_tok, names(sig), args.len()))
            );
        }
        let mut out = Vec::with_capacity(MAX_ARGS);
        for (tok, (kind, what)) in args.iter().zip(sig) {
            if tok.starts_with('"') {
                return Err(self.err(line, format!("a string is not a {what}")));
            }
            out.push(self.arg(line, *kind, tok, what)?);
        }
        // Defaults of the optional arguments.
        match verb {
            Verb::Mmap if out.len() < 5 => out.push(Expr::constant(-1)),
            Verb::Setrlimit => {
                // args: resource, soft, hard, hard-given flag.
                let given = out.len() == 3;
                if !given {
                    out.push(Expr::constant(0));
                }
                out.push(Expr::constant(given as i64));
            }
            Verb::File if out.len() < 2 => out.push(Expr::constant(-1)),
            _ => {}
        }
        out.resize(MAX_ARGS, Expr::default());
        Ok(StepKind::Call { verb, args: out, text: Vec::new() })
    }

    fn block(
        &mut self,
        lines: &[Line<'a>],
        pos: &mut usize,
        depth: usize,
        open_line: u32,
    ) -> Result<Block, ParseError> {
        let mut steps = Vec::new();
        self.scopes.push(HashMap::new());
        loop {
            let Some(ln) = lines.get(*pos) else {
                if depth > 0 {
                    return Err(self.err(open_line, "`fork {` is never closed"));
                }
                let end_line = lines.last().map(|l| l.no).unwrap_or(1);
                self.scopes.pop();
                let end_id = self.next_id();
                return Ok(Block { steps, end_id, end_line });
            };
            *pos += 1;
            let line = ln.no;
            let toks = &ln.toks[..];
            if toks == ["}"] {
                if ln.expect.is_some() {
                    return Err(self.err(line, "`}` takes no expectation"));
                }
                if depth == 0 {
                    return Err(self.err(line, "`}` without `fork {`"));
                }
                self.scopes.pop();
                let end_id = self.next_id();
                return Ok(Block { steps, end_id, end_line: line });
            }
            let (bind, rest) = if toks.len() >= 2 && toks[1] == "=" {
                if !is_ident(toks[0]) {
                    return Err(self.err(line, format!("bad name `{}`", toks[0])));
                }
                (Some(toks[0]), &toks[2..])
            } else {
                (None, toks)
            };
            if rest.is_empty() {
                return Err(self.err(line, "missing verb"));
            }
            let id = self.next_id();
            let expect = match ln.expect {
                Some(e) => Some(self.expectation(line, e)?),
                None => None,
            };
            let kind = match rest[0] {
                "fork" => {
                    if rest != ["fork", "{"] {
                        return Err(self.err(line, "expected `fork {`"));
                    }
                    if bind.is_some() || expect.is_some() {
                        return Err(self.err(line, "`fork {` takes no name and no expectation"));
                    }
                    if depth + 1 > MAX_FORK_DEPTH {
                        return Err(self.err(line, "fork blocks nested too deep"));
                    }
                    StepKind::Fork(self.block(lines, pos, depth + 1, line)?)
                }
                "maps" | "smaps" => {
                    if rest.len() != 1 {
                        return Err(self.err(line, format!("`{}` takes no arguments", rest[0])));
                    }
                    if bind.is_some() || expect.is_some() {
                        return Err(self.err(line, format!("`{}` takes no name and no expectation", rest[0])));
                    }
                    if rest[0] == "maps" {
                        StepKind::Maps
                    } else {
                        StepKind::Smaps
                    }
                }
                _ => self.call(ln, rest)?,
            };
            let slot = match bind {
                Some(name) => {
                    let s = self.nslots;
                    self.nslots += 1;
                    if let Some(scope) = self.scopes.last_mut() {
                        scope.insert(name.to_string(), s);
                    }
                    Some(s)
                }
                None => None,
            };
            steps.push(Step { id, line, bind: slot, bind_name: bind.map(str::to_string), kind, expect });
        }
    }
}

fn names(sig: &[(ArgKind, &str)]) -> String {
    sig.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
}

/// Decodes a quoted string: `\n`, `\t`, `\r`, `\0`, `\\`, `\"` and `\xNN`.
fn unquote(tok: &str) -> Result<Vec<u8>, String> {
    let inner = tok
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|_| tok.len() >= 2)
        .ok_or_else(|| format!("unterminated string {tok}"))?;
    let b = inner.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let c = *b.get(i + 1).ok_or("dangling `\\` in string")?;
            i += 2;
            out.push(match c {
                b'n' => b'\n',
                b't' => b'\t',
                b'r' => b'\r',
                b'0' => 0,
                b'\\' => b'\\',
                b'"' => b'"',
                b'x' => {
                    let h = inner.get(i..i + 2).ok_or("`\\x` needs two hex digits")?;
                    i += 2;
                    u8::from_str_radix(h, 16).map_err(|_| format!("bad escape `\\x{h}`"))?
                }
                other => return Err(format!("unknown escape `\\{}`", other as char)),
            });
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.is_empty() {
        return Err("empty string".to_string());
    }
    Ok(out)
}

/// Splits a line into tokens, a comment off and an expectation off.
fn tokenize(no: u32, text: &str) -> Result<Option<Line<'_>>, String> {
    let mut toks = Vec::new();
    let mut expect = None;
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            break;
        }
        if c == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= b.len() {
                return Err("unterminated string".to_string());
            }
            i += 1;
            toks.push(&text[start..i]);
            continue;
        }
        if c == b'=' && b.get(i + 1) == Some(&b'>') {
            let rest = &text[i + 2..];
            let rest = rest.split('#').next().unwrap_or("").trim();
            if rest.is_empty() {
                return Err("`=>` without an expectation".to_string());
            }
            if rest.split_whitespace().count() != 1 {
                return Err(format!("bad expectation `{rest}`"));
            }
            expect = Some(rest);
            break;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'#' && b[i] != b'"' {
            if b[i] == b'=' && b.get(i + 1) == Some(&b'>') {
                break;
            }
            i += 1;
        }
        toks.push(&text[start..i]);
    }
    if toks.is_empty() {
        if expect.is_some() {
            return Err("expectation without a step".to_string());
        }
        return Ok(None);
    }
    Ok(Some(Line { no, toks, expect }))
}

/// Parses a script's text. `name` is used in errors and reports.
pub fn parse(name: &str, text: &str) -> Result<Script, ParseError> {
    let mut lines = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let no = (i + 1) as u32;
        match tokenize(no, l) {
            Ok(Some(line)) => lines.push(line),
            Ok(None) => {}
            Err(msg) => return Err(ParseError { file: name.to_string(), line: no, msg }),
        }
    }
    let mut p = Parser { file: name, scopes: Vec::new(), nslots: 0, nids: 0 };
    let mut pos = 0;
    let mut body = p.block(&lines, &mut pos, 0, 1)?;
    body.end_line = body.end_line.max(text.lines().count() as u32).max(1);
    Ok(Script { name: name.to_string(), body, nslots: p.nslots as usize, nids: p.nids })
}

/// Reads and parses a script file.
pub fn parse_file(path: &str) -> Result<Script, ParseError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) => Err(ParseError { file: path.to_string(), line: 0, msg: format!("cannot read: {e}") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(s: &Script, i: usize) -> (Verb, Vec<i64>, Vec<u8>) {
        match &s.body.steps[i].kind {
            StepKind::Call { verb, args, text } => {
                (*verb, args.iter().map(|e| e.eval(&[0x1000, 7, 9])).collect(), text.clone())
            }
            other => panic!("not a call: {other:?}"),
        }
    }

    fn err(text: &str) -> ParseError {
        parse("e.mms", text).expect_err("should not parse")
    }

    #[test]
    fn numbers_and_units() {
        assert_eq!(parse_number("4096"), Some(4096));
        assert_eq!(parse_number("0x30000000"), Some(0x3000_0000));
        assert_eq!(parse_number("3p"), Some(3 * 4096));
        assert_eq!(parse_number("2m"), Some(2 << 20));
        assert_eq!(parse_number("1g"), Some(1 << 30));
        assert_eq!(parse_number("4k"), Some(4096));
        assert_eq!(parse_number("0x10p"), Some(16 * 4096));
        assert_eq!(parse_number("-1"), Some(-1));
        assert_eq!(parse_number("-2p"), Some(-8192));
        assert_eq!(parse_number("0xffffffffffffffff"), Some(-1));
        assert_eq!(parse_number("12q"), None);
        assert_eq!(parse_number("0x"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("p"), None);
        assert_eq!(parse_number("99999999999999999999"), None);
    }

    #[test]
    fn every_verb_and_flag_form() {
        let text = r##"
# a comment line
a = mmap 0 3p rw private|anonymous          # trailing comment
b = mmap $a+1p 1p r|write|exec fixed|private|anonymous|0x40000000 -1 0
c = mmap 0x7000 1p none shared_validate|populate|noreserve|locked|stack|growsdown|32bit|hugetlb|fixed_noreplace 3 2p
munmap $a-1p 4096
mprotect $a 1p rwx|growsdown
mprotect $a 1p 0
mprotect $a 1p 0x80
mremap $a 1p 2p maymove|fixed|dontunmap $b
mremap $a 1p 2p 0
brk 0
madvise $a 1p dontneed
madvise $a 1p guard_install
madvise $a 1p 0x7fff
mlock $a 1p
mlock2 $a 1p onfault
munlock $a 1p
mlockall current|future|onfault
munlockall
mincore $a 3p
msync $a 1p sync|invalidate
read $a 10
write $a 2p 0x41
write $a "hi\n\x00\"#"
exec $a
setrlimit as 1g
setrlimit memlock inf 0x100000
setrlimit 7 inf inf
f = file 3p
g = file 1p 0x5a
h = open $f rdonly
m = memfd 2p
ftruncate $f 1p
pwrite $f 0 10 0x41
pread $f 0 10
fsync $f
close $h
maps
smaps
"##;
        let s = parse("all.mms", text).expect("parses");
        assert_eq!(s.step_count(), 38);
        assert_eq!(s.body.steps[0].line, 3);
        assert_eq!(call(&s, 0), (Verb::Mmap, vec![0, 3 * 4096, 3, 0x22, -1, 0], vec![]));
        assert_eq!(call(&s, 1).1, vec![0x2000, 4096, 7, 0x4000_0032, -1, 0]);
        assert_eq!(call(&s, 2).1[3], 0x3 | 0x8000 | 0x4000 | 0x2000 | 0x20000 | 0x100 | 0x40 | 0x40000 | 0x100000);
        assert_eq!(call(&s, 2).1[4..6], [3, 8192]);
        assert_eq!(call(&s, 3).1[0], 0x1000 - 4096);
        assert_eq!(call(&s, 4).1[2], 0x0100_0007);
        assert_eq!(call(&s, 7).1, vec![0x1000, 4096, 8192, 7, 7, 0]);
        assert_eq!(call(&s, 11).1[2], 102);
        assert_eq!(call(&s, 13).0, Verb::Mlock);
        assert_eq!(call(&s, 16).1[0], 7);
        assert_eq!(call(&s, 19).1[2], 6);
        let (v, _, t) = call(&s, 22);
        assert_eq!((v, t), (Verb::WriteText, b"hi\n\0\"#".to_vec()));
        assert_eq!(call(&s, 24).1[..4], [9, 1 << 30, 0, 0]);
        assert_eq!(call(&s, 25).1[..4], [8, -1, 0x100000, 1]);
        assert_eq!(call(&s, 27).1[..2], [3 * 4096, -1]);
        assert_eq!(call(&s, 28).1[..2], [4096, 0x5a]);
        assert_eq!(s.body.steps[36].kind, StepKind::Maps);
        assert_eq!(s.body.steps[37].kind, StepKind::Smaps);
        assert_eq!(s.body.end_line, 40);
    }

    #[test]
    fn expectations() {
        let s = parse(
            "x.mms",
            "a = mmap 0 1p r private|anonymous => ok\nmunmap 1 1 => EINVAL\nread 0 1 => SIGSEGV\n\
             read 0 1 => SIGSEGV/SEGV_MAPERR\nread 0 1 => SIGBUS\nread 0 1=>SIGBUS/BUS_ADRERR\nbrk 0 => EWOULDBLOCK\n",
        )
        .expect("parses");
        let e: Vec<_> = s.body.steps.iter().map(|x| x.expect).collect();
        assert_eq!(
            e,
            vec![
                Some(Expect::Ok),
                Some(Expect::Errno(22)),
                Some(Expect::Signal { sig: 11, code: None }),
                Some(Expect::Signal { sig: 11, code: Some(1) }),
                Some(Expect::Signal { sig: 7, code: None }),
                Some(Expect::Signal { sig: 7, code: Some(2) }),
                Some(Expect::Errno(11)),
            ]
        );
    }

    #[test]
    fn fork_blocks_nest_and_scope_names() {
        let s = parse("f.mms", "a = mmap 0 1p rw private|anonymous\nfork {\n  b = mmap 0 1p r private|anonymous\n  fork {\n    read $b 1\n    read $a 1\n  }\n}\nread $a 1\n")
            .expect("parses");
        assert_eq!(s.step_count(), 7);
        let StepKind::Fork(inner) = &s.body.steps[1].kind else { panic!("fork") };
        assert_eq!(inner.end_line, 8);
        let StepKind::Fork(inner2) = &inner.steps[1].kind else { panic!("nested fork") };
        assert_eq!(inner2.steps.len(), 2);
        assert_eq!(inner2.end_line, 7);
        assert_eq!(err("fork {\n  b = brk 0\n}\nread $b 1\n").line, 4);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = err("mmap 0 1p rw private|anonymous\n\nfrobnicate 1\n");
        assert_eq!((e.file.as_str(), e.line), ("e.mms", 3));
        assert!(e.to_string().starts_with("e.mms:3: unknown verb"), "{e}");
        assert_eq!(err("munmap 0\n").line, 1);
        assert_eq!(err("munmap 0 1 2\n").line, 1);
        assert_eq!(err("\nmprotect 0 1 rwz\n").line, 2);
        assert_eq!(err("mmap 0 1 rw private|bogus\n").line, 1);
        assert_eq!(err("madvise 0 1 dontwant\n").line, 1);
        assert_eq!(err("read $nope 1\n").line, 1);
        assert_eq!(err("read $a+ 1\n").line, 1);
        assert_eq!(err("read 12x 1\n").line, 1);
        assert_eq!(err("x\n\nread 0 1 => EWHATEVER\n").line, 1);
        assert_eq!(err("read 0 1 => EWHATEVER\n").line, 1);
        assert_eq!(err("read 0 1 => SIGSEGV/BUS_ADRERR\n").line, 1);
        assert_eq!(err("read 0 1 =>\n").line, 1);
        assert_eq!(err("write 0 \"abc\n").line, 1);
        assert_eq!(err("write 0 \"\\q\"\n").line, 1);
        assert_eq!(err("fork {\nread 0 1\n").line, 1);
        assert_eq!(err("read 0 1\n}\n").line, 2);
        assert_eq!(err("fork\n").line, 1);
        assert_eq!(err("x = maps\n").line, 1);
        assert_eq!(err("1x = brk 0\n").line, 1);
        assert_eq!(err("setrlimit bogus 1\n").line, 1);
        assert_eq!(err("open 3 rdwr|sideways\n").line, 1);
        assert_eq!(err("= brk 0\n").line, 1);
        let deep = "fork {\n".repeat(MAX_FORK_DEPTH + 1);
        assert_eq!(err(&deep).line, MAX_FORK_DEPTH as u32 + 1);
    }

    #[test]
    fn never_panics_on_junk() {
        let junk = [
            "",
            "\n\n",
            "=>",
            "a =",
            "a = = b",
            "\"",
            "$",
            "$$a",
            "write 0 \"\\x1\"",
            "mmap -- -- --",
            "}}}",
            "fork { }",
            "read 0x 1",
            "read - 1",
            "read +-1 1",
            "read $ 1",
            "brk 0 => SIGSEGV/",
            "brk 0 # => ok",
            "\u{ff}\u{1234}",
            "write 0 \"\\",
            "read 1p-$x 1",
        ];
        for j in junk {
            let _ = parse("j.mms", j);
        }
        // A comment hides an expectation.
        assert_eq!(parse("c.mms", "brk 0 # => EINVAL\n").expect("parses").body.steps[0].expect, None);
    }
}
