//! oxmm's compact trace format (version 1).
//!
//! ```text
//! header   "OXMMTRC\0"  version: u16 LE = 1  page shift: u8 = 12  reserved: u8 = 0
//! record   varint( zigzag(page - previous page of the same stream) << 2 | kind )
//! end      varint(3)                     (kind code 3: no more records)
//! trailer  varint(records) varint(accesses) varint(distinct pages)
//! ```
//!
//! Varints are LEB128 (7 bits a byte, low bits first, high bit set on every
//! byte but the last). The kind codes are 0 instruction fetch, 1 read,
//! 2 write ([`Kind::code`]). Instruction fetches and data accesses are two
//! streams, each delta-encoded from its own previous page (both start at
//! page 0), so a program that runs code on one page and walks data on
//! another writes one or two bytes a record. Page numbers are at most
//! [`MAX_PAGE`], so a shifted zigzag delta fits in 64 bits. The trailer
//! lets a reader check that the file is whole and tells how many accesses
//! (lackey lines) the records came from; a file without an end mark is
//! reported as truncated.

use std::collections::HashSet;
use std::io::{self, BufRead, Write};

use super::{Kind, Location, PageHash, Record, TraceError, MAX_PAGE, PAGE_SHIFT};

/// The first eight bytes of a compact trace.
pub const MAGIC: [u8; 8] = *b"OXMMTRC\0";

/// The format version this code writes and reads.
pub const VERSION: u16 = 1;

/// Size of the header in bytes.
pub const HEADER_LEN: usize = 12;

const END: u64 = 3;

fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// Appends `v` as a LEB128 varint to `buf`.
#[inline]
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn stream(kind: Kind) -> usize {
    usize::from(kind != Kind::Instr)
}

/// What [`TraceWriter::finish`] reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Records written.
    pub records: u64,
    /// Accesses the records came from (as given to `finish`).
    pub accesses: u64,
    /// Distinct pages among the records.
    pub distinct_pages: u64,
    /// Bytes written, header and trailer included.
    pub bytes: u64,
}

/// The three counts at the end of a compact trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trailer {
    /// Records in the file.
    pub records: u64,
    /// Accesses the records came from.
    pub accesses: u64,
    /// Distinct pages among the records.
    pub distinct_pages: u64,
}

/// Writes a compact trace record by record. Every record given is written
/// (collapsing repeats is the caller's choice, see [`super::Dedup`]);
/// nothing is complete until [`TraceWriter::finish`].
pub struct TraceWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    prev: [u64; 2],
    records: u64,
    bytes: u64,
    pages: HashSet<u64, PageHash>,
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace on `out` (writes the header).
    pub fn new(mut out: W) -> io::Result<TraceWriter<W>> {
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.push(PAGE_SHIFT as u8);
        header.push(0);
        out.write_all(&header)?;
        Ok(TraceWriter {
            out,
            buf: Vec::with_capacity(1 << 16),
            prev: [0; 2],
            records: 0,
            bytes: HEADER_LEN as u64,
            pages: HashSet::default(),
        })
    }

    /// Appends one record. A page number above [`MAX_PAGE`] is an
    /// `InvalidInput` error and writes nothing.
    #[inline]
    pub fn push(&mut self, r: Record) -> io::Result<()> {
        if r.page > MAX_PAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("page number {:#x} is above the largest, {MAX_PAGE:#x}", r.page),
            ));
        }
        let s = stream(r.kind);
        let delta = r.page.wrapping_sub(self.prev[s]) as i64;
        self.prev[s] = r.page;
        put_varint(&mut self.buf, zigzag(delta) << 2 | r.kind.code());
        self.records += 1;
        self.pages.insert(r.page);
        if self.buf.len() >= (1 << 16) - 16 {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Records pushed so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes the end mark and the trailer (with `accesses`, the number of
    /// accesses the records stand for), flushes, and gives back the
    /// output and the counts.
    pub fn finish(mut self, accesses: u64) -> io::Result<(W, WriteSummary)> {
        let distinct = self.pages.len() as u64;
        put_varint(&mut self.buf, END);
        put_varint(&mut self.buf, self.records);
        put_varint(&mut self.buf, accesses);
        put_varint(&mut self.buf, distinct);
        self.flush_buf()?;
        self.out.flush()?;
        let s = WriteSummary { records: self.records, accesses, distinct_pages: distinct, bytes: self.bytes };
        Ok((self.out, s))
    }
}

/// Writes `records` as a complete compact trace into a byte vector.
pub fn encode(records: &[Record], accesses: u64) -> Result<Vec<u8>, String> {
    let mut w = TraceWriter::new(Vec::new()).map_err(|e| e.to_string())?;
    for r in records {
        w.push(*r).map_err(|e| e.to_string())?;
    }
    Ok(w.finish(accesses).map_err(|e| e.to_string())?.0)
}

/// Reads a compact trace (see the module doc).
pub struct BinaryReader<R> {
    input: R,
    name: String,
    offset: u64,
    prev: [u64; 2],
    records: u64,
    trailer: Option<Trailer>,
}

impl<R: BufRead> BinaryReader<R> {
    /// Reads and checks the header of `input`, called `name` in errors.
    pub fn new(mut input: R, name: &str) -> Result<BinaryReader<R>, TraceError> {
        let mut header = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match input.read(&mut header[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TraceError::new(name, Location::Byte(got as u64), format!("cannot read: {e}"))),
            }
        }
        let err = |at: usize, p: String| Err(TraceError::new(name, Location::Byte(at as u64), p));
        let prefix = got.min(MAGIC.len());
        if got == 0 || header[..prefix] != MAGIC[..prefix] {
            return err(0, "not an oxmm trace (no `OXMMTRC` magic)".into());
        }
        if got < HEADER_LEN {
            return err(got, format!("truncated header ({got} of {HEADER_LEN} bytes)"));
        }
        let version = u16::from_le_bytes([header[8], header[9]]);
        if version != VERSION {
            return err(8, format!("unsupported trace version {version} (this oxmm reads version {VERSION})"));
        }
        if u32::from(header[10]) != PAGE_SHIFT {
            return err(10, format!("page shift {} is not {PAGE_SHIFT} (4 KiB pages)", header[10]));
        }
        Ok(BinaryReader {
            input,
            name: name.to_string(),
            offset: HEADER_LEN as u64,
            prev: [0; 2],
            records: 0,
            trailer: None,
        })
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The trailer, once the end mark has been read.
    pub fn trailer(&self) -> Option<Trailer> {
        self.trailer
    }

    fn error(&self, at: u64, problem: impl Into<String>) -> TraceError {
        TraceError::new(&self.name, Location::Byte(at), problem)
    }

    /// Reads one varint; `Ok(None)` at a clean end of input (no byte read).
    #[inline]
    fn varint(&mut self) -> Result<Option<u64>, TraceError> {
        let start = self.offset;
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let buf = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.error(self.offset, format!("cannot read: {e}"))),
            };
            if buf.is_empty() {
                if self.offset == start {
                    return Ok(None);
                }
                return Err(self.error(start, "truncated: the file ends inside a number"));
            }
            let mut used = 0;
            let mut done = false;
            for &b in buf {
                used += 1;
                if shift == 63 && b > 1 || shift > 63 {
                    let at = self.offset + used as u64 - 1;
                    return Err(self.error(at, "number too large for 64 bits"));
                }
                v |= u64::from(b & 0x7f) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    done = true;
                    break;
                }
            }
            self.input.consume(used);
            self.offset += used as u64;
            if done {
                return Ok(Some(v));
            }
        }
    }

    fn read_trailer(&mut self) -> Result<(), TraceError> {
        let mut vals = [0u64; 3];
        for (i, v) in vals.iter_mut().enumerate() {
            let at = self.offset;
            *v = self.varint()?.ok_or_else(|| {
                self.error(at, format!("truncated: the trailer has {i} of its 3 counts after the end mark"))
            })?;
        }
        let t = Trailer { records: vals[0], accesses: vals[1], distinct_pages: vals[2] };
        if t.records != self.records {
            return Err(self.error(
                self.offset,
                format!("the trailer says {} records but the file holds {}", t.records, self.records),
            ));
        }
        let at = self.offset;
        if self.varint()?.is_some() {
            return Err(self.error(at, "data after the trailer"));
        }
        self.trailer = Some(t);
        Ok(())
    }

    /// The next record, `None` after the trailer.
    #[inline]
    pub fn next_record(&mut self) -> Result<Option<Record>, TraceError> {
        if self.trailer.is_some() {
            return Ok(None);
        }
        let at = self.offset;
        let Some(v) = self.varint()? else {
            return Err(self.error(at, format!("truncated: no end mark after {} records", self.records)));
        };
        let code = v & 3;
        let Some(kind) = Kind::from_code(code) else {
            if v != END {
                return Err(self.error(at, format!("bad record tag {v:#x}")));
            }
            self.read_trailer()?;
            return Ok(None);
        };
        let s = stream(kind);
        let page = self.prev[s].wrapping_add(unzigzag(v >> 2) as u64);
        if page > MAX_PAGE {
            return Err(self.error(at, format!("page number {page:#x} out of range")));
        }
        self.prev[s] = page;
        self.records += 1;
        Ok(Some(Record { page, kind }))
    }
}

impl<R: BufRead> Iterator for BinaryReader<R> {
    type Item = Result<Record, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips_extremes() {
        for d in [0i64, 1, -1, 2, -2, i64::MAX, i64::MIN, MAX_PAGE as i64, -(MAX_PAGE as i64)] {
            assert_eq!(unzigzag(zigzag(d)), d);
        }
        assert!(zigzag(MAX_PAGE as i64) << 2 >> 2 == zigzag(MAX_PAGE as i64));
    }

    #[test]
    fn nearby_pages_take_one_byte() {
        let recs: Vec<Record> = (0..100).map(|i| Record::new(1000 + i, Kind::Read)).collect();
        let bytes = encode(&recs, 100).unwrap();
        // header + first record (2 bytes: delta 1000) + 99 one-byte records + end + 3 trailer counts.
        assert_eq!(bytes.len(), HEADER_LEN + 2 + 99 + 1 + 1 + 1 + 1);
    }
}
