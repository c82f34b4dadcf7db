//! Files on tmpfs (Linux's `/dev/shm`, or a tmpfs `/tmp`), and the `file`
//! workload that reads and writes them.
//!
//! A tmpfs file is a shmem object of the core (`Kernel::shmem_create`):
//! its pages are page cache that counts as `Shmem` and in `Cached` in
//! `/proc/meminfo`, as on Linux, and a hole reads as zeroes without
//! allocating anything (`read(2)` of a hole uses the zero page). A process
//! reaches a file through `pread`/`pwrite` (`Kernel::file_read`,
//! `Kernel::file_write`) or through a shared mapping and the fault path.
//!
//! [`Tmpfs`] is the machine's namespace of named files. A `file` process
//! opens its `path` (default `/dev/shm/<name>`) if another process left a
//! file there, and creates it otherwise. With `keep = true` the file is
//! linked under its path and outlives the process (it stays in meminfo's
//! Shmem until the end of the run, and later processes open it); with
//! `keep = false` (the default) it is created unlinked, as with
//! `O_TMPFILE`, and goes with the process's last descriptor or mapping.
//!
//! Every byte written is a function of its offset ([`content`]), and the
//! namespace remembers which ranges of each file were written, so every
//! read checks what it got: written bytes must read back identical,
//! holes as zeroes. A read that differs counts as a mismatch.

use std::collections::BTreeMap;

use oxmm::mmap::{map, prot, OpenFile};

use crate::processes::{Program, Step, StepCx};
use crate::user_workloads::{errno_note, signal_note, ACCESS_NS};

/// What a `file` process does with its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileMode {
    /// Reads (`pread`, or loads through the mapping); a new file starts
    /// `file_size` long and sparse (`ftruncate`), all holes.
    Read,
    /// Writes over the file (`pwrite`, or stores through the mapping).
    Write,
    /// Appends at the end; at `file_size` the file is truncated to 0 and
    /// appending starts over, as a rotated log.
    Append,
    /// Reads and writes, `write_ratio` of the operations writing; a new
    /// file starts `file_size` long and sparse, so reads of blocks not
    /// written yet read holes.
    ReadWrite,
}

/// Where the operations of a `file` process go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilePattern {
    /// Block after block, wrapping around at the end.
    Sequential,
    /// Uniformly random blocks (aligned to `io_size`).
    Random,
}

/// A process reading and writing a tmpfs file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileIo {
    /// Reads, writes, appends or both.
    pub mode: FileMode,
    /// Sequential or random blocks.
    pub pattern: FilePattern,
    /// Size the file is written up to (and read within), bytes.
    pub file_size: u64,
    /// Bytes per operation.
    pub io_size: u64,
    /// Operations.
    pub ops: u64,
    /// Fraction of operations that write, for [`FileMode::ReadWrite`].
    pub write_ratio: f64,
    /// Access the file through a shared mapping (`MAP_SHARED`) and the
    /// fault path instead of `pread`/`pwrite`.
    pub mmap: bool,
    /// The file outlives the process (linked under its path).
    pub keep: bool,
    /// The file's path; `None` for `/dev/shm/<process name>`.
    pub path: Option<String>,
}

impl Default for FileIo {
    fn default() -> Self {
        FileIo {
            mode: FileMode::Write,
            pattern: FilePattern::Sequential,
            file_size: 16 << 20,
            io_size: 64 << 10,
            ops: 1000,
            write_ratio: 0.5,
            mmap: false,
            keep: false,
            path: None,
        }
    }
}

impl FileIo {
    /// Virtual time the operations take: [`ACCESS_NS`] per page an
    /// operation spans.
    pub fn expected_virtual_ns(&self) -> u64 {
        self.ops.saturating_mul(self.io_size.div_ceil(4096).max(1)).saturating_mul(ACCESS_NS)
    }
}

/// The byte every writer stores at offset `off` of a file: a seed per
/// page plus a multiple of the offset in the page, so it varies along the
/// page (a misplaced byte shows) and from page to page, and never 0 (a
/// lost write cannot pass for a hole).
pub fn content(off: u64) -> u8 {
    let mut b = [0u8];
    fill_content(off, &mut b);
    b[0]
}

/// Fills `out` with the [`content`] of `[off, off + out.len())`.
pub fn fill_content(off: u64, out: &mut [u8]) {
    let mut pos = 0usize;
    while pos < out.len() {
        let o = off + pos as u64;
        let page = o >> 12;
        let seed = (page.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8;
        let n = ((4096 - (o & 0xfff)) as usize).min(out.len() - pos);
        let first = (o & 0xfff) as u8;
        for (i, b) in out[pos..pos + n].iter_mut().enumerate() {
            *b = first.wrapping_add(i as u8).wrapping_mul(37).wrapping_add(seed).max(1);
        }
        pos += n;
    }
}

/// Byte ranges of a file that were written: start -> end, disjoint and
/// not touching.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extents(BTreeMap<u64, u64>);

impl Extents {
    /// Adds `[start, end)`.
    pub fn insert(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        // Merge every range that overlaps or touches.
        let touching: Vec<(u64, u64)> =
            self.0.range(..=end).rev().take_while(|(_, &e)| e >= start).map(|(&s, &e)| (s, e)).collect();
        for (s, e) in touching {
            self.0.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.0.insert(start, end);
    }
    /// Forgets everything at or past `len` (a truncation).
    pub fn truncate(&mut self, len: u64) {
        let cut: Vec<(u64, u64)> = self.0.range(..).filter(|(_, &e)| e > len).map(|(&s, &e)| (s, e)).collect();
        for (s, _) in cut {
            self.0.remove(&s);
            if s < len {
                self.0.insert(s, len);
            }
        }
    }
    /// Bytes covered.
    pub fn bytes(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s).sum()
    }
    /// What `[off, off + out.len())` must hold: [`content`] where written,
    /// zeroes elsewhere.
    pub fn expected(&self, off: u64, out: &mut [u8]) {
        out.fill(0);
        let end = off + out.len() as u64;
        let first = self.0.range(..=off).next_back().map_or(off, |(&s, _)| s);
        for (&s, &e) in self.0.range(first..end) {
            let (a, b) = (s.max(off), e.min(end));
            if a < b {
                fill_content(a, &mut out[(a - off) as usize..(b - off) as usize]);
            }
        }
    }
}

/// The machine's named tmpfs files and what was written to every open file.
#[derive(Debug, Default)]
pub struct Tmpfs {
    names: BTreeMap<String, u64>,
    written: BTreeMap<u64, Extents>,
}

impl Tmpfs {
    /// The file linked at `path`.
    pub fn lookup(&self, path: &str) -> Option<u64> {
        self.names.get(path).copied()
    }
    /// Linked files: (path, file handle), in path order.
    pub fn files(&self) -> impl Iterator<Item = (&str, u64)> {
        self.names.iter().map(|(p, &id)| (p.as_str(), id))
    }
    /// The written ranges of an open or linked file.
    pub fn written(&self, id: u64) -> Option<&Extents> {
        self.written.get(&id)
    }
}

impl Tmpfs {
    /// Creates the machine's boot-time files (`[[machine.file]]`): each is
    /// linked under its path, sized, and written with [`content`] unless
    /// it is sparse, so `file` processes that open the path read it back
    /// checked. An error names the file and the errno.
    pub fn create_files(&mut self, k: &oxmm::Kernel, files: &[crate::scenario::MachineFile]) -> Result<(), String> {
        const CHUNK: u64 = 256 << 10;
        for f in files {
            if self.names.contains_key(&f.path) {
                return Err(format!("{}: the file exists already", f.path));
            }
            let id = k.shmem_create(&f.path, 0, false);
            self.names.insert(f.path.clone(), id);
            let mut written = Extents::default();
            k.file_truncate(id, f.size).map_err(|e| format!("{}: ftruncate: {e:?}", f.path))?;
            if f.data {
                let mut buf = vec![0u8; CHUNK.min(f.size) as usize];
                let mut off = 0;
                while off < f.size {
                    let n = CHUNK.min(f.size - off) as usize;
                    fill_content(off, &mut buf[..n]);
                    k.file_write(id, off, &buf[..n]).map_err(|e| format!("{}: write at {off}: {e:?}", f.path))?;
                    written.insert(off, off + n as u64);
                    off += n as u64;
                }
            }
            self.written.insert(id, written);
        }
        Ok(())
    }
}

/// [`FileIo`] as a step machine.
struct FileRun {
    spec: FileIo,
    id: Option<u64>,
    /// The shared mapping: (address, length).
    map: Option<(u64, u64)>,
    i: u64,
}

/// Creates the step machine of a `file` workload.
pub(crate) fn program(f: &FileIo) -> Box<dyn Program> {
    Box::new(FileRun { spec: f.clone(), id: None, map: None, i: 0 })
}

impl FileRun {
    /// Opens or creates the file and maps it when asked.
    fn open(&mut self, cx: &mut StepCx<'_>) -> Step {
        let k = &cx.m.kernel;
        let spec = &self.spec;
        let path = spec.path.clone().unwrap_or_else(|| format!("/dev/shm/{}", cx.task.comm));
        let id = match cx.fs.lookup(&path) {
            Some(id) => {
                k.file_get(id);
                id
            }
            None => {
                let name = if spec.keep { path.clone() } else { format!("{path} (deleted)") };
                let id = k.shmem_create(&name, 0, false);
                if spec.keep {
                    // The link holds the creation's reference; the descriptor takes one.
                    cx.fs.names.insert(path, id);
                    k.file_get(id);
                }
                cx.fs.written.insert(id, Extents::default());
                if matches!(spec.mode, FileMode::Read | FileMode::ReadWrite) {
                    // A reader of a new file sees holes (ftruncate, sparse).
                    let _ = k.file_truncate(id, spec.file_size);
                }
                id
            }
        };
        self.id = Some(id);
        if !spec.mmap {
            return Step::Ran(0);
        }
        let writes = spec.mode != FileMode::Read;
        let size = k.file_size(id).unwrap_or(0);
        if writes && size < spec.file_size {
            if let Err(e) = k.file_truncate(id, spec.file_size) {
                cx.st.failures += 1;
                cx.st.last_error = Some(errno_note("ftruncate", e));
                return Step::Exit;
            }
        }
        let len = (k.file_size(id).unwrap_or(0).min(spec.file_size) + 4095) & !4095;
        if len == 0 {
            return Step::Ran(0);
        }
        let of = OpenFile { id, readable: true, writable: writes };
        let pr = if writes { prot::READ | prot::WRITE } else { prot::READ };
        match k.sys_mmap_file(cx.task, 0, len, pr, map::SHARED, &of, 0) {
            Ok(a) => {
                self.map = Some((a, len));
                Step::Ran(0)
            }
            Err(e) => {
                cx.st.failures += 1;
                cx.st.last_error = Some(errno_note("mmap", e));
                Step::Exit
            }
        }
    }

    /// The offset and length of the next operation over `span` bytes.
    fn place(&self, cx: &mut StepCx<'_>, span: u64) -> (u64, u64) {
        let io = self.spec.io_size.max(1);
        let blocks = (span / io).max(1);
        let b = match self.spec.pattern {
            FilePattern::Sequential => self.i % blocks,
            FilePattern::Random => cx.rng.below(blocks),
        };
        let off = b * io;
        (off, io.min(span - off.min(span)))
    }
}

impl Program for FileRun {
    fn step(&mut self, cx: &mut StepCx<'_>) -> Step {
        let Some(id) = self.id else { return self.open(cx) };
        if self.i >= self.spec.ops {
            return Step::Exit;
        }
        let k = &cx.m.kernel;
        let spec = &self.spec;
        let write = match spec.mode {
            FileMode::Read => false,
            FileMode::Write | FileMode::Append => true,
            FileMode::ReadWrite => cx.rng.unit() < spec.write_ratio,
        };
        let size = k.file_size(id).unwrap_or(0);
        let mapped = self.map.map_or(0, |(_, l)| l);
        let (off, len) = if write && spec.mode == FileMode::Append {
            let io = spec.io_size.max(1);
            if size + io > spec.file_size.max(io) {
                let _ = k.file_truncate(id, 0);
                if let Some(w) = cx.fs.written.get_mut(&id) {
                    w.truncate(0);
                }
                (0, io)
            } else {
                (size, io)
            }
        } else if write {
            let span = if spec.mmap { mapped.min(spec.file_size) } else { spec.file_size };
            self.place(cx, span)
        } else {
            let span = size.min(spec.file_size);
            let span = if spec.mmap { span.min(mapped) } else { span };
            self.place(cx, span)
        };
        let cost = ACCESS_NS * ((off + len).div_ceil(4096) - off / 4096).max(1);
        self.i += 1;
        if len == 0 {
            // Nothing to read yet (an empty file).
            cx.st.allocs += 1;
            return Step::Ran(ACCESS_NS);
        }
        let t = cx.task;
        if write {
            let mut data = vec![0u8; len as usize];
            fill_content(off, &mut data);
            let r = match self.map {
                Some((base, _)) => k.write_user(t, base + off, &data).map_err(|s| signal_note(&s)),
                None => k.file_write(id, off, &data).map(|_| ()).map_err(|e| errno_note("pwrite", e)),
            };
            match r {
                Ok(()) => {
                    cx.fs.written.entry(id).or_default().insert(off, off + len);
                    cx.st.bytes_written += len;
                    cx.st.allocs += 1;
                }
                Err(e) => {
                    cx.st.failures += 1;
                    cx.st.last_error = Some(e);
                }
            }
        } else {
            let got = match self.map {
                Some((base, _)) => {
                    let mut buf = vec![0u8; len as usize];
                    k.read_user(t, base + off, &mut buf).map(|_| buf).map_err(|s| signal_note(&s))
                }
                None => k.file_read(id, off, len).map_err(|e| errno_note("pread", e)),
            };
            match got {
                Ok(buf) => {
                    let mut want = vec![0u8; buf.len()];
                    if let Some(w) = cx.fs.written.get(&id) {
                        w.expected(off, &mut want);
                    }
                    if buf != want {
                        cx.st.mismatches += 1;
                    }
                    cx.st.bytes_read += buf.len() as u64;
                    cx.st.allocs += 1;
                }
                Err(e) => {
                    cx.st.failures += 1;
                    cx.st.last_error = Some(e);
                }
            }
        }
        cx.st.peak_live_bytes = cx.st.peak_live_bytes.max(k.file_size(id).unwrap_or(0));
        Step::Ran(cost)
    }

    fn stop(&mut self, cx: &mut StepCx<'_>) {
        let Some(id) = self.id.take() else { return };
        // Close the descriptor; an unlinked file goes with it (or with
        // its mapping, at exit).
        let linked = cx.fs.names.values().any(|&v| v == id);
        if !linked {
            cx.fs.written.remove(&id);
        }
        cx.m.kernel.file_put(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_merge_truncate_and_give_expected_bytes() {
        let mut e = Extents::default();
        e.insert(10, 20);
        e.insert(30, 40);
        e.insert(20, 30);
        assert_eq!(e.0.len(), 1, "touching ranges merge");
        assert_eq!(e.bytes(), 30);
        e.insert(100, 110);
        e.truncate(35);
        assert_eq!(e.bytes(), 25);
        let mut out = [9u8; 10];
        e.expected(30, &mut out);
        assert_eq!(&out[..5], &(30..35).map(content).collect::<Vec<_>>()[..]);
        assert_eq!(&out[5..], &[0; 5]);
        assert!((0..100_000).all(|o| content(o) != 0));
    }
}
