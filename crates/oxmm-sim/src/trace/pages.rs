//! The plain text page-reference format: one reference a line.
//!
//! ```text
//! # a comment; blank lines are skipped too
//! 42            page 42 (a decimal number is a page number)
//! 0x7ffd1234    the page of byte address 0x7ffd1234 (0x7ffd1)
//! 43 W          page 43, written (R read, the default; W write; I instruction fetch)
//! ```
//!
//! Text after a `#` is a comment. Anything else on a line is an error
//! naming the line. [`write`] produces this format (decimal page numbers,
//! the kind when it is not a read).

use std::io::{self, BufRead, Write};

use super::{Kind, Location, Record, TraceError, MAX_PAGE, PAGE_SHIFT};

fn show(s: &str) -> String {
    let mut shown: String = s.chars().take(40).collect();
    if shown.len() < s.len() {
        shown.push_str("...");
    }
    shown
}

/// Parses one line: `Ok(None)` for a blank or comment line, the record
/// otherwise, or what is wrong with it.
pub fn parse_line(line: &str) -> Result<Option<Record>, String> {
    let text = line.split('#').next().unwrap_or("");
    let mut words = text.split_ascii_whitespace();
    let Some(first) = words.next() else {
        return Ok(None);
    };
    let page = if let Some(hex) = first.strip_prefix("0x").or_else(|| first.strip_prefix("0X")) {
        let addr = u64::from_str_radix(hex, 16)
            .ok()
            .filter(|_| !hex.starts_with('+'))
            .ok_or_else(|| format!("`{}` is not a byte address (0x and up to 16 hex digits)", show(first)))?;
        addr >> PAGE_SHIFT
    } else {
        let page =
            first.parse::<u64>().ok().filter(|_| first.bytes().all(|b| b.is_ascii_digit())).ok_or_else(|| {
                format!("`{}` is not a page number (decimal) or a byte address (0x hexadecimal)", show(first))
            })?;
        if page > MAX_PAGE {
            return Err(format!("page number {page} is above the largest, {MAX_PAGE}"));
        }
        page
    };
    let kind = match words.next() {
        None => Kind::Read,
        Some("R" | "r") => Kind::Read,
        Some("W" | "w") => Kind::Write,
        Some("I" | "i") => Kind::Instr,
        Some(k) => return Err(format!("`{}` is not an access kind (R, W or I)", show(k))),
    };
    if let Some(extra) = words.next() {
        return Err(format!("unexpected `{}` after the access", show(extra)));
    }
    Ok(Some(Record { page, kind }))
}

/// Reads the pages format line by line.
pub struct PagesReader<R> {
    input: R,
    name: String,
    line: u64,
    records: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> PagesReader<R> {
    /// Reads `input`, called `name` in errors.
    pub fn new(input: R, name: &str) -> PagesReader<R> {
        PagesReader { input, name: name.to_string(), line: 0, records: 0, buf: Vec::new() }
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The next record; `Ok(None)` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<Record>, TraceError> {
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
            let err = |p: String| TraceError::new(&self.name, Location::Line(self.line), p);
            let text = std::str::from_utf8(&self.buf).map_err(|_| err("not UTF-8 text".to_string()))?;
            if let Some(r) = parse_line(text).map_err(err)? {
                self.records += 1;
                return Ok(Some(r));
            }
        }
    }
}

impl<R: BufRead> Iterator for PagesReader<R> {
    type Item = Result<Record, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Writes `records` in the pages format, with a comment line first.
pub fn write<W: Write>(records: impl IntoIterator<Item = Record>, mut out: W) -> io::Result<W> {
    writeln!(out, "# oxmm pages trace: a decimal page number per line (0x... would be a byte address); R/W/I kind")?;
    for r in records {
        match r.kind {
            Kind::Read => writeln!(out, "{}", r.page)?,
            k => writeln!(out, "{} {}", r.page, k.letter())?,
        }
    }
    out.flush()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_is_a_page_and_hex_an_address() {
        assert_eq!(parse_line("42"), Ok(Some(Record::new(42, Kind::Read))));
        assert_eq!(parse_line("0x7ffd1234 w # stack"), Ok(Some(Record::new(0x7ffd1, Kind::Write))));
        assert_eq!(parse_line("  7 I"), Ok(Some(Record::new(7, Kind::Instr))));
        assert_eq!(parse_line("# only a comment"), Ok(None));
        assert_eq!(parse_line("   "), Ok(None));
        for bad in ["x", "-1", "+5", "0x", "0x+5", "12 Q", "12 R extra", "0x1ffffffffffffffff", "4503599627370496"] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }
}
