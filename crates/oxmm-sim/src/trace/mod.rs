//! Real programs' memory traces: page-granular records, the three formats
//! `oxmm replay` reads, and the replay engine.
//!
//! A trace is a sequence of [`Record`]s: a 4 KiB page number and what was
//! done to it ([`Kind`]: instruction fetch, data read, data write). The
//! formats ([`Format`]):
//!
//! - **oxmm** ([`binary`]): the compact trace `oxmm trace` writes. A
//!   12-byte header (magic `OXMMTRC\0`, version, page shift), then one
//!   varint per record holding the zigzag delta of the page number from
//!   the previous record of the same stream (instruction or data) and the
//!   kind in its two low bits, then an end mark and a trailer with the
//!   record, access and distinct-page counts.
//! - **lackey** ([`lackey`]): the text valgrind's lackey tool prints with
//!   `--trace-mem=yes` (`I  04017a30,3`, ` L 1ffefff8b0,8`, ` S ...`,
//!   ` M ...`; valgrind's own `==PID==` lines are skipped). An access that
//!   straddles a page boundary touches every page it covers.
//! - **pages** ([`pages`]): plain text, one reference per line: a decimal
//!   number is a page number, a `0x` hexadecimal number is a byte address
//!   (its page is `address >> 12`); an optional second word `R`, `W` or
//!   `I` gives the kind (read by default); `#` starts a comment.
//!
//! [`TraceReader`] reads any of them, detecting the format from the first
//! bytes when none is given, and yields records; every problem is a
//! [`TraceError`] naming the file and the line (text) or byte offset
//! (binary). The converter from lackey's stream to the compact form is
//! [`lackey::convert`]. The replay engine ([`replay`]) maps a trace to a
//! dense page-reference string and runs page-replacement policies over it.

pub mod binary;
pub mod lackey;
pub mod pages;
pub mod process;
pub mod replay;

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::str::FromStr;

pub use binary::{TraceWriter, WriteSummary};
pub use replay::{simulate, Policy, RefString, Stats};

/// log2 of the page size the traces use (4 KiB pages).
pub const PAGE_SHIFT: u32 = 12;

/// The largest page number a record can hold: that of the last page of a
/// 64-bit address space.
pub const MAX_PAGE: u64 = u64::MAX >> PAGE_SHIFT;

/// What an access did to its page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An instruction fetch (a read of code).
    Instr,
    /// A data load.
    Read,
    /// A data store (or a read-modify-write).
    Write,
}

impl Kind {
    /// The kind's code in the compact format (0, 1, 2).
    pub fn code(self) -> u64 {
        match self {
            Kind::Instr => 0,
            Kind::Read => 1,
            Kind::Write => 2,
        }
    }

    /// The kind of a code; `None` for a code that is not one.
    pub fn from_code(code: u64) -> Option<Kind> {
        match code {
            0 => Some(Kind::Instr),
            1 => Some(Kind::Read),
            2 => Some(Kind::Write),
            _ => None,
        }
    }

    /// The letter the pages format uses: `I`, `R` or `W`.
    pub fn letter(self) -> char {
        match self {
            Kind::Instr => 'I',
            Kind::Read => 'R',
            Kind::Write => 'W',
        }
    }
}

/// One page-granular access of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    /// 4 KiB page number (byte address `>> PAGE_SHIFT`), at most [`MAX_PAGE`].
    pub page: u64,
    /// Instruction fetch, read or write.
    pub kind: Kind,
}

impl Record {
    /// A record of `kind` on `page`.
    pub fn new(page: u64, kind: Kind) -> Record {
        Record { page, kind }
    }
}

/// Where in a trace a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// The file as a whole (it cannot be opened, read or detected).
    File,
    /// A line of a text format, counted from 1.
    Line(u64),
    /// A byte offset of the binary format, counted from 0.
    Byte(u64),
}

/// A problem with a trace: which file, where in it, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError {
    /// The file's name as the user gave it (or a description of the stream).
    pub file: String,
    /// Where in the file.
    pub at: Location,
    /// What is wrong.
    pub problem: String,
}

impl TraceError {
    /// A problem at `at` of `file`.
    pub fn new(file: &str, at: Location, problem: impl Into<String>) -> TraceError {
        TraceError { file: file.to_string(), at, problem: problem.into() }
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Location::File => write!(f, "{}: {}", self.file, self.problem),
            Location::Line(n) => write!(f, "{}:{}: {}", self.file, n, self.problem),
            Location::Byte(n) => write!(f, "{}: byte {}: {}", self.file, n, self.problem),
        }
    }
}

impl std::error::Error for TraceError {}

/// The trace formats `oxmm replay` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// oxmm's compact binary trace ([`binary`]).
    Oxmm,
    /// valgrind lackey's `--trace-mem=yes` output ([`lackey`]).
    Lackey,
    /// One page number or `0x` address per line ([`pages`]).
    Pages,
}

impl Format {
    /// Every format, in the order the documentation lists them.
    pub const ALL: [Format; 3] = [Format::Oxmm, Format::Lackey, Format::Pages];

    /// The format's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Oxmm => "oxmm",
            Format::Lackey => "lackey",
            Format::Pages => "pages",
        }
    }

    /// Guesses the format from the first bytes of a trace: the compact
    /// format by its magic, lackey when the first line that is neither
    /// blank nor a `#` comment looks like a lackey or valgrind line
    /// (`I  `, ` L `, ` S `, ` M `, `==`), pages otherwise.
    pub fn detect(head: &[u8]) -> Format {
        if head.starts_with(&binary::MAGIC[..7]) {
            return Format::Oxmm;
        }
        for line in head.split(|&b| b == b'\n') {
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() || trimmed.starts_with(b"#") {
                continue;
            }
            let lackey = line.starts_with(b"==")
                || line.starts_with(b"I ")
                || [b" L ", b" S ", b" M "].iter().any(|p| line.starts_with(*p));
            return if lackey { Format::Lackey } else { Format::Pages };
        }
        Format::Pages
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
            format!("unknown trace format `{s}` (known: {})", names.join(", "))
        })
    }
}

enum Inner<R> {
    Oxmm(binary::BinaryReader<R>),
    Lackey(lackey::LackeyReader<R>),
    Pages(pages::PagesReader<R>),
}

/// Reads the records of a trace in any [`Format`]; an iterator of
/// `Result<Record, TraceError>` that stops after the first error.
pub struct TraceReader<R> {
    format: Format,
    inner: Inner<R>,
    failed: bool,
}

impl TraceReader<BufReader<File>> {
    /// Opens the trace at `path`; `format` `None` detects it from the
    /// file's first bytes ([`Format::detect`]).
    pub fn open(path: &Path, format: Option<Format>) -> Result<TraceReader<BufReader<File>>, TraceError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| TraceError::new(&name, Location::File, format!("cannot open: {e}")))?;
        TraceReader::new(BufReader::with_capacity(1 << 16, file), &name, format)
    }
}

impl<R: BufRead> TraceReader<R> {
    /// Reads a trace from `input`, called `name` in errors; `format`
    /// `None` detects it from the first bytes.
    pub fn new(mut input: R, name: &str, format: Option<Format>) -> Result<TraceReader<R>, TraceError> {
        let format = match format {
            Some(f) => f,
            None => {
                let head =
                    input.fill_buf().map_err(|e| TraceError::new(name, Location::File, format!("cannot read: {e}")))?;
                Format::detect(head)
            }
        };
        let inner = match format {
            Format::Oxmm => Inner::Oxmm(binary::BinaryReader::new(input, name)?),
            Format::Lackey => Inner::Lackey(lackey::LackeyReader::new(input, name)),
            Format::Pages => Inner::Pages(pages::PagesReader::new(input, name)),
        };
        Ok(TraceReader { format, inner, failed: false })
    }

    /// The format being read.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Accesses the trace stands for so far: lackey lines read (an access
    /// that straddles pages is one access but several records), the
    /// recorded count of a compact trace once its trailer is read, and
    /// records for the pages format.
    pub fn accesses(&self) -> u64 {
        match &self.inner {
            Inner::Oxmm(r) => r.trailer().map_or(r.records(), |t| t.accesses),
            Inner::Lackey(r) => r.accesses(),
            Inner::Pages(r) => r.records(),
        }
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<Record, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = match &mut self.inner {
            Inner::Oxmm(r) => r.next(),
            Inner::Lackey(r) => r.next(),
            Inner::Pages(r) => r.next(),
        };
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}

/// Reads every record of a trace from a byte slice (tests and tools).
pub fn read_all(bytes: &[u8], name: &str, format: Option<Format>) -> Result<Vec<Record>, TraceError> {
    TraceReader::new(bytes, name, format)?.collect()
}

/// Drops records equal to the one just before them: the same page and
/// kind twice in a row tell a page-granular replay nothing new.
#[derive(Clone, Debug, Default)]
pub struct Dedup {
    last: Option<Record>,
}

impl Dedup {
    /// A filter that has seen nothing yet.
    pub fn new() -> Dedup {
        Dedup::default()
    }

    /// True when `r` should be kept (it differs from the last record seen).
    #[inline]
    pub fn keep(&mut self, r: Record) -> bool {
        if self.last == Some(r) {
            return false;
        }
        self.last = Some(r);
        true
    }
}

/// A fast hasher for page numbers (a multiply and a rotate): the maps of
/// the trace code key on integers from the program, not from an attacker.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageHasher(u64);

impl std::hash::Hasher for PageHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(26);
    }
}

/// `BuildHasher` of [`PageHasher`], for `HashMap`s and `HashSet`s keyed by page.
pub type PageHash = std::hash::BuildHasherDefault<PageHasher>;
