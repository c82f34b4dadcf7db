//! Models for testing the harness itself: [`Perturb`] wraps a model and
//! alters one kind of result, so a test can check that the harness reports
//! that kind of divergence.

use crate::call::{Call, MapEntry, Outcome, StartState};
use crate::model::Model;

/// The kind of result [`Perturb`] alters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alter {
    /// Every errno becomes another one (`EINVAL` <-> `ENOMEM`, others `EINVAL`).
    Errno,
    /// Every returned address (a value of at least 0x10000) moves up a page.
    Address,
    /// Every SIGSEGV becomes SIGBUS and the reverse.
    Signal,
    /// Every `si_code` 1 becomes 2 and the reverse.
    SiCode,
    /// The first byte of every read is inverted.
    Data,
    /// The first entry of every mincore vector is inverted.
    Mincore,
    /// Every VMA list gains an entry at 0x10000.
    Maps,
    /// Every smaps entry's Rss grows by 4 kB.
    Smaps,
}

/// A model that alters one kind of its inner model's results.
pub struct Perturb {
    inner: Box<dyn Model>,
    what: Alter,
}

impl Perturb {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Model>, what: Alter) -> Perturb {
        Perturb { inner, what }
    }

    fn alter(&self, o: Outcome) -> Outcome {
        match (self.what, o) {
            (Alter::Errno, Outcome::Err(e)) => Outcome::Err(match e {
                22 => 12,
                12 => 22,
                _ => 22,
            }),
            (Alter::Address, Outcome::Ok(v)) if v >= 0x10000 => Outcome::Ok(v + 4096),
            (Alter::Signal, Outcome::Signal { sig, code, addr }) => {
                Outcome::Signal { sig: if sig == 11 { 7 } else { 11 }, code, addr }
            }
            (Alter::SiCode, Outcome::Signal { sig, code, addr }) => {
                Outcome::Signal { sig, code: if code == 1 { 2 } else { 1 }, addr }
            }
            (Alter::Data, Outcome::Bytes(mut b)) => {
                if let Some(x) = b.first_mut() {
                    *x = !*x;
                }
                Outcome::Bytes(b)
            }
            (Alter::Mincore, Outcome::Mincore(mut b)) => {
                if let Some(x) = b.first_mut() {
                    *x ^= 1;
                }
                Outcome::Mincore(b)
            }
            (Alter::Maps, Outcome::Maps(mut m)) => {
                m.insert(
                    0,
                    MapEntry { start: 0x10000, end: 0x11000, perms: "r--p".into(), offset: 0, name: String::new() },
                );
                Outcome::Maps(m)
            }
            (Alter::Smaps, Outcome::Smaps(mut m)) => {
                for e in &mut m {
                    e.rss_kb += 4;
                }
                Outcome::Smaps(m)
            }
            (_, o) => o,
        }
    }
}

impl Model for Perturb {
    fn start(&mut self, st: &StartState) -> Result<(), String> {
        self.inner.start(st)
    }
    fn call(&mut self, c: &Call<'_>) -> Outcome {
        let o = self.inner.call(c);
        self.alter(o)
    }
    fn fork_enter(&mut self) -> Outcome {
        self.inner.fork_enter()
    }
    fn fork_exit(&mut self) {
        self.inner.fork_exit()
    }
    fn maps(&mut self) -> Outcome {
        let o = self.inner.maps();
        self.alter(o)
    }
    fn smaps(&mut self) -> Outcome {
        let o = self.inner.smaps();
        self.alter(o)
    }
}

/// A model that answers every step `Unsupported` (and starts fine).
pub struct Nothing;

impl Model for Nothing {
    fn start(&mut self, _st: &StartState) -> Result<(), String> {
        Ok(())
    }
    fn call(&mut self, c: &Call<'_>) -> Outcome {
        Outcome::Unsupported(c.verb().name().to_string())
    }
    fn fork_enter(&mut self) -> Outcome {
        Outcome::Unsupported("fork".into())
    }
    fn fork_exit(&mut self) {}
    fn maps(&mut self) -> Outcome {
        Outcome::Unsupported("maps".into())
    }
    fn smaps(&mut self) -> Outcome {
        Outcome::Unsupported("smaps".into())
    }
}
