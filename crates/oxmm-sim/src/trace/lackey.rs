//! valgrind lackey's memory trace (`valgrind --tool=lackey --trace-mem=yes`).
//!
//! One access a line, the address in hexadecimal and the size in bytes in
//! decimal:
//!
//! ```text
//! I  0401ab70,3        instruction fetch
//!  L 1fff000690,8      load
//!  S 1fff000688,8      store
//!  M 0403c1e8,4        modify (load then store of the same bytes)
//! ```
//!
//! Lines starting with `==` are valgrind's own messages and blank lines are
//! skipped. A modify becomes one [`Kind::Write`] record (the page is read
//! and written, and a write says both at page granularity). An access
//! whose bytes cross a page boundary yields a record for each page it
//! covers, in address order; a size of 0 touches the page of its address.
//! Any other line is an error naming its line number.

use std::io::{self, BufRead, Write};

use super::binary::{TraceWriter, WriteSummary};
use super::{Dedup, Kind, Location, Record, TraceError, PAGE_SHIFT};

/// The largest access size accepted (lackey's are at most a few hundred bytes).
pub const MAX_SIZE: u64 = 1 << 20;

/// One access of a lackey line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// What the access did (a modify is a write).
    pub kind: Kind,
    /// Its first byte's address.
    pub addr: u64,
    /// Its size in bytes.
    pub size: u64,
}

impl Access {
    /// The first and last page the access touches.
    pub fn pages(&self) -> (u64, u64) {
        // `parse_line` checked that `addr + size - 1` does not overflow.
        let end = self.addr.saturating_add(self.size.max(1) - 1);
        (self.addr >> PAGE_SHIFT, end >> PAGE_SHIFT)
    }
}

fn show(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    let mut shown: String = s.chars().take(60).collect();
    if shown.len() < s.len() {
        shown.push_str("...");
    }
    shown
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &b in s {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        v = v << 4 | u64::from(d);
    }
    Some(v)
}

fn parse_dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

/// Parses one line (without its newline): `Ok(None)` for a line to skip
/// (valgrind's `==` messages, blank lines), the access otherwise, or what
/// is wrong with it.
pub fn parse_line(line: &[u8]) -> Result<Option<Access>, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.starts_with(b"==") || line.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let bad = || format!("not a lackey line: `{}` (expected `I  ADDR,SIZE` or ` L|S|M ADDR,SIZE`)", show(line));
    let (kind, rest) = match line {
        [b'I', b' ', rest @ ..] => (Kind::Instr, rest),
        [b' ', k @ (b'L' | b'S' | b'M'), b' ', rest @ ..] => (if *k == b'L' { Kind::Read } else { Kind::Write }, rest),
        _ => return Err(bad()),
    };
    let rest = rest.trim_ascii();
    let comma = rest.iter().position(|&b| b == b',').ok_or_else(bad)?;
    let addr = parse_hex(&rest[..comma])
        .ok_or_else(|| format!("bad address `{}` (expected up to 16 hex digits)", show(&rest[..comma])))?;
    let size_text = &rest[comma + 1..];
    let size =
        parse_dec(size_text).ok_or_else(|| format!("bad size `{}` (expected a decimal number)", show(size_text)))?;
    if size > MAX_SIZE {
        return Err(format!("access size {size} is larger than {MAX_SIZE} bytes"));
    }
    if addr.checked_add(size.max(1) - 1).is_none() {
        return Err(format!("access of {size} bytes at {addr:#x} runs past the end of the address space"));
    }
    Ok(Some(Access { kind, addr, size }))
}

/// Reads lackey output line by line and yields its page records.
pub struct LackeyReader<R> {
    input: R,
    name: String,
    line: u64,
    accesses: u64,
    buf: Vec<u8>,
    /// Pages still to yield of a straddling access: next, last, kind.
    pending: Option<(u64, u64, Kind)>,
}

impl<R: BufRead> LackeyReader<R> {
    /// Reads `input`, called `name` in errors.
    pub fn new(input: R, name: &str) -> LackeyReader<R> {
        LackeyReader { input, name: name.to_string(), line: 0, accesses: 0, buf: Vec::with_capacity(64), pending: None }
    }

    /// Access lines read so far.
    pub fn accesses(&self) -> u64 {
        self.accesses
    }

    /// Lines read so far.
    pub fn lines(&self) -> u64 {
        self.line
    }

    /// The next record; `Ok(None)` at the end of the input.
    #[inline]
    pub fn next_record(&mut self) -> Result<Option<Record>, TraceError> {
        if let Some((next, last, kind)) = self.pending {
            self.pending = if next < last { Some((next + 1, last, kind)) } else { None };
            return Ok(Some(Record { page: next, kind }));
        }
        loop {
            self.buf.clear();
            let n = match self.input.read_until(b'\n', &mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(TraceError::new(&self.name, Location::Line(self.line + 1), format!("cannot read: {e}")))
                }
            };
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let text = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            match parse_line(text) {
                Ok(None) => continue,
                Ok(Some(a)) => {
                    self.accesses += 1;
                    let (first, last) = a.pages();
                    if last > first {
                        self.pending = Some((first + 1, last, a.kind));
                    }
                    return Ok(Some(Record { page: first, kind: a.kind }));
                }
                Err(p) => return Err(TraceError::new(&self.name, Location::Line(self.line), p)),
            }
        }
    }
}

impl<R: BufRead> Iterator for LackeyReader<R> {
    type Item = Result<Record, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// What [`convert`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvertSummary {
    /// Lines of lackey output read (valgrind's messages included).
    pub lines: u64,
    /// The counts of the trace written (accesses are lackey's access lines).
    pub written: WriteSummary,
}

/// Converts lackey output (`input`, called `name` in errors) into a
/// compact trace on `out` (called `out_name` in errors) as it streams:
/// each access becomes a record per page it touches, and a record equal
/// to the one before it is dropped ([`Dedup`]). Gives back the output.
pub fn convert<R: BufRead, W: Write>(
    input: R,
    name: &str,
    out: W,
    out_name: &str,
) -> Result<(W, ConvertSummary), TraceError> {
    let werr = |e: io::Error| TraceError::new(out_name, Location::File, format!("cannot write: {e}"));
    let mut reader = LackeyReader::new(input, name);
    let mut writer = TraceWriter::new(out).map_err(werr)?;
    let mut dedup = Dedup::new();
    while let Some(r) = reader.next_record()? {
        if dedup.keep(r) {
            writer.push(r).map_err(werr)?;
        }
    }
    let (out, written) = writer.finish(reader.accesses()).map_err(werr)?;
    Ok((out, ConvertSummary { lines: reader.lines(), written }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_kinds() {
        let a = |k, addr, size| Ok(Some(Access { kind: k, addr, size }));
        assert_eq!(parse_line(b"I  0401ab70,3"), a(Kind::Instr, 0x401ab70, 3));
        assert_eq!(parse_line(b" L 1fff000690,8"), a(Kind::Read, 0x1fff000690, 8));
        assert_eq!(parse_line(b" S 1FFF000688,8\r"), a(Kind::Write, 0x1fff000688, 8));
        assert_eq!(parse_line(b" M 0403c1e8,4"), a(Kind::Write, 0x403c1e8, 4));
        assert_eq!(parse_line(b"==3162== Command: true"), Ok(None));
        assert_eq!(parse_line(b""), Ok(None));
    }

    #[test]
    fn rejects_what_is_not_lackey() {
        for bad in [
            &b"X  0401ab70,3"[..],
            b"I  0401ab70",
            b"I  zz,3",
            b"I  0401ab70,",
            b"I  0401ab70,-3",
            b" L ,8",
            b" L 11112222333344445,8",
            b" L ffffffffffffffff,8",
            b"I  10,99999999999999999999",
            b" Q 10,4",
        ] {
            assert!(parse_line(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
