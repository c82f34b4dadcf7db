//! The byte format in which host children report results to the harness.
//!
//! A frame is `tag: u8, id: u32 LE, len: u32 LE, payload`. Data of any size
//! (bytes read, mincore vectors, /proc text) arrives as `CHUNK` frames for an
//! id, closed by a frame that says what the data is.

use std::collections::HashMap;

use crate::call::{self, Outcome, StartState};

/// Success: payload `i64`.
pub const T_OK: u8 = 1;
/// Failure: payload errno `i32`.
pub const T_ERR: u8 = 2;
/// Signal: payload `sig: i32, code: i32, addr: u64`.
pub const T_SIG: u8 = 3;
/// Data for the id, appended to what came before.
pub const T_CHUNK: u8 = 4;
/// The id's data is [`Outcome::Bytes`].
pub const T_BYTES: u8 = 5;
/// The id's data is [`Outcome::Mincore`].
pub const T_MINCORE: u8 = 6;
/// The id's data is `/proc/self/maps` text.
pub const T_MAPS: u8 = 7;
/// The id's data is `/proc/self/smaps` text.
pub const T_SMAPS: u8 = 8;
/// The id's data is the start maps text.
pub const T_START_MAPS: u8 = 9;
/// The id's data is the start smaps text.
pub const T_START_SMAPS: u8 = 10;
/// The id's data is `/proc/self/stat` at the start.
pub const T_START_STAT: u8 = 11;
/// The id's data is `/proc/self/status` at the start.
pub const T_START_STATUS: u8 = 12;
/// Payload: `brk, personality, 16 x (soft, hard)` as u64, then a 256-bit
/// bitmap of the open descriptors.
pub const T_START_NUMS: u8 = 13;
/// The harness failed at this id: payload is a message.
pub const T_HOSTERR: u8 = 14;
/// A process (the script or a fork block, id = the block's end id) ended.
pub const T_END: u8 = 15;

/// Length of a frame header.
pub const HEADER: usize = 9;

/// Fills a frame header.
pub fn header(tag: u8, id: u32, len: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = tag;
    h[1..5].copy_from_slice(&id.to_le_bytes());
    h[5..9].copy_from_slice(&len.to_le_bytes());
    h
}

fn le64(b: &[u8], i: usize) -> u64 {
    let mut x = [0u8; 8];
    if let Some(s) = b.get(i..i + 8) {
        x.copy_from_slice(s);
    }
    u64::from_le_bytes(x)
}

fn le32(b: &[u8], i: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(i..i + 4) {
        x.copy_from_slice(s);
    }
    u32::from_le_bytes(x)
}

/// Incremental decoder of a frame stream.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    pos: usize,
    pending: HashMap<u32, Vec<u8>>,
    /// Outcomes by id.
    pub outcomes: HashMap<u32, Outcome>,
    /// Ids whose process ended (`T_END`).
    pub ended: Vec<u32>,
    /// Start state pieces.
    pub start: StartPieces,
}

/// The raw start-state reports of a host child.
#[derive(Default, Clone, Debug)]
pub struct StartPieces {
    /// `/proc/self/maps`.
    pub maps: Option<String>,
    /// `/proc/self/smaps`.
    pub smaps: Option<String>,
    /// `/proc/self/stat`.
    pub stat: Option<String>,
    /// `/proc/self/status`.
    pub status: Option<String>,
    /// The `T_START_NUMS` payload.
    pub nums: Option<Vec<u8>>,
}

impl Decoder {
    /// Feeds bytes; returns the ids of the outcomes completed by them.
    pub fn feed(&mut self, data: &[u8]) -> Vec<u32> {
        self.buf.extend_from_slice(data);
        let mut done = Vec::new();
        loop {
            let rest = &self.buf[self.pos..];
            if rest.len() < HEADER {
                break;
            }
            let len = le32(rest, 5) as usize;
            if rest.len() < HEADER + len {
                break;
            }
            let tag = rest[0];
            let id = le32(rest, 1);
            let payload = rest[HEADER..HEADER + len].to_vec();
            self.pos += HEADER + len;
            if let Some(id) = self.frame(tag, id, payload) {
                done.push(id);
            }
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        done
    }

    fn frame(&mut self, tag: u8, id: u32, payload: Vec<u8>) -> Option<u32> {
        let text = |p: Vec<u8>| String::from_utf8_lossy(&p).into_owned();
        let outcome = match tag {
            T_OK => Outcome::Ok(le64(&payload, 0) as i64),
            T_ERR => Outcome::Err(le32(&payload, 0) as i32),
            T_SIG => Outcome::Signal {
                sig: le32(&payload, 0) as i32,
                code: le32(&payload, 4) as i32,
                addr: le64(&payload, 8),
            },
            T_CHUNK => {
                self.pending.entry(id).or_default().extend_from_slice(&payload);
                return None;
            }
            T_BYTES => Outcome::Bytes(self.pending.remove(&id).unwrap_or_default()),
            T_MINCORE => Outcome::Mincore(self.pending.remove(&id).unwrap_or_default()),
            T_MAPS => Outcome::Maps(call::parse_maps(&text(self.pending.remove(&id).unwrap_or_default()))),
            T_SMAPS => Outcome::Smaps(call::parse_smaps(&text(self.pending.remove(&id).unwrap_or_default()))),
            T_START_MAPS => {
                self.start.maps = Some(text(self.pending.remove(&id).unwrap_or_default()));
                return None;
            }
            T_START_SMAPS => {
                self.start.smaps = Some(text(self.pending.remove(&id).unwrap_or_default()));
                return None;
            }
            T_START_STAT => {
                self.start.stat = Some(text(self.pending.remove(&id).unwrap_or_default()));
                return None;
            }
            T_START_STATUS => {
                self.start.status = Some(text(self.pending.remove(&id).unwrap_or_default()));
                return None;
            }
            T_START_NUMS => {
                self.start.nums = Some(payload);
                return None;
            }
            T_HOSTERR => {
                self.pending.remove(&id);
                Outcome::HostError(text(payload))
            }
            T_END => {
                self.ended.push(id);
                return None;
            }
            other => Outcome::HostError(format!("bad frame tag {other}")),
        };
        // A failure after data chunks drops them.
        self.pending.remove(&id);
        self.outcomes.insert(id, outcome);
        Some(id)
    }
}

/// Sysctl values read by the parent for the start state.
fn sysctl(name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/sys/vm/{name}")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// `TASK_SIZE` of a 47-bit x86-64 process (`DEFAULT_MAP_WINDOW`).
pub const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// The default `stack_guard_gap`: 256 pages.
pub const STACK_GUARD_GAP: u64 = 256 << 12;

/// `ADDR_NO_RANDOMIZE` personality bit.
pub const ADDR_NO_RANDOMIZE: u64 = 0x0004_0000;
/// `ADDR_COMPAT_LAYOUT` personality bit.
pub const ADDR_COMPAT_LAYOUT: u64 = 0x0020_0000;

/// Linux's x86-64 `mmap_base()` without randomization, for a stack rlimit.
pub fn mmap_base(stack_rlimit: u64) -> u64 {
    let mut gap = stack_rlimit;
    let pad = STACK_GUARD_GAP;
    if gap.wrapping_add(pad) > gap {
        gap += pad;
    }
    let gap_min = 128 << 20;
    let gap_max = TASK_SIZE / 6 * 5;
    let gap = gap.clamp(gap_min, gap_max);
    (TASK_SIZE - gap) & !0xfff
}

/// Builds the [`StartState`] from a child's start reports.
pub fn start_state(p: &StartPieces) -> Result<StartState, String> {
    let maps_text = p.maps.clone().ok_or("no start maps")?;
    let stat = p.stat.as_deref().ok_or("no start stat")?;
    let nums = p.nums.as_deref().ok_or("no start numbers")?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).ok_or("bad /proc/self/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 47 (1-based) is start_brk; fields after ')' start at 3.
    let start_brk = fields.get(44).and_then(|f| f.parse().ok()).ok_or("no start_brk in /proc/self/stat")?;
    let brk = le64(nums, 0);
    let personality = le64(nums, 8);
    let rlimits: Vec<(u64, u64)> = (0..16).map(|i| (le64(nums, 16 + i * 16), le64(nums, 24 + i * 16))).collect();
    let bitmap = nums.get(16 + 16 * 16..).unwrap_or(&[]);
    let open_fds =
        (0..bitmap.len() * 8).filter(|i| bitmap[i / 8] & (1 << (i % 8)) != 0).map(|i| i as i32).collect::<Vec<_>>();
    let cap_effective = p
        .status
        .as_deref()
        .unwrap_or("")
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let stack = rlimits.get(3).map(|r| r.0).unwrap_or(8 << 20);
    Ok(StartState {
        maps: call::parse_maps(&maps_text),
        maps_text,
        smaps: call::parse_smaps(p.smaps.as_deref().unwrap_or("")),
        smaps_text: p.smaps.clone().unwrap_or_default(),
        start_brk,
        brk,
        mmap_base: mmap_base(stack),
        legacy_layout: personality & ADDR_COMPAT_LAYOUT != 0 || sysctl("legacy_va_layout") != 0,
        task_size: TASK_SIZE,
        no_randomize: personality & ADDR_NO_RANDOMIZE != 0,
        rlimits,
        cap_effective,
        open_fds,
        mmap_min_addr: sysctl("mmap_min_addr"),
        max_map_count: sysctl("max_map_count"),
        overcommit_memory: sysctl("overcommit_memory"),
        overcommit_ratio: sysctl("overcommit_ratio"),
    })
}
