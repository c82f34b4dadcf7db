//! The kernel log (`printk` and the dmesg ring buffer): reports from the
//! allocators (bad page state, allocation failures, slab corruption) go
//! here so the machine keeps running and a test or a user can read them.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// Most lines kept; older ones are dropped as the ring buffer wraps.
const LOG_LINES: usize = 4096;

/// Message levels (`KERN_ERR`, `KERN_WARNING`, `KERN_INFO`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    /// An error: something was found broken.
    Err,
    /// A warning: a request failed or was odd.
    Warn,
    /// Information.
    Info,
}

/// The log buffer.
#[derive(Default)]
pub struct Log {
    lines: spin::Mutex<Vec<(Level, String)>>,
}

impl Log {
    /// Appends a line.
    pub fn print(&self, level: Level, args: fmt::Arguments<'_>) {
        let mut s = String::new();
        let _ = s.write_fmt(args);
        let mut l = self.lines.lock();
        if l.len() >= LOG_LINES {
            l.remove(0);
        }
        l.push((level, s));
    }
    /// `pr_err`.
    pub fn err(&self, args: fmt::Arguments<'_>) {
        self.print(Level::Err, args)
    }
    /// `pr_warn`.
    pub fn warn(&self, args: fmt::Arguments<'_>) {
        self.print(Level::Warn, args)
    }
    /// `pr_info`.
    pub fn info(&self, args: fmt::Arguments<'_>) {
        self.print(Level::Info, args)
    }
    /// A copy of every line, oldest first.
    pub fn lines(&self) -> Vec<(Level, String)> {
        self.lines.lock().clone()
    }
    /// Lines at a level containing `needle`.
    pub fn count_matching(&self, level: Level, needle: &str) -> usize {
        self.lines.lock().iter().filter(|(l, s)| *l == level && s.contains(needle)).count()
    }
}
