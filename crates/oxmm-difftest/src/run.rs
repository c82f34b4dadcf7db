//! The harness: runs a script on the host and on a model, compares every
//! step, reports.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::call::{Call, MapEntry, Outcome, SmapsEntry, StartState};
use crate::host::{self, HostOptions};
use crate::lang::{Block, Script, Step, StepKind, MAX_ARGS};
use crate::model::Model;

/// Makes a fresh model for each script.
pub type ModelFactory<'a> = dyn FnMut() -> Box<dyn Model> + 'a;

/// Where the model side comes from.
pub enum ModelSource<'a> {
    /// A model made by a factory (oxmm's).
    Factory(&'a mut ModelFactory<'a>),
    /// The host itself: a twin child forked beside the script's child
    /// ([`host::TwinModel`]), passed through `wrap` (tests alter it there).
    HostTwin(&'a dyn Fn(Box<dyn Model>) -> Box<dyn Model>),
}

/// Options of a run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Unsupported model steps are counted but are not mismatches.
    pub allow_unsupported: bool,
    /// Host side options.
    pub host: HostOptions,
    /// Record every step's results in [`Report::trace`].
    pub trace: bool,
}

/// What a run found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Scripts run.
    pub scripts: usize,
    /// Steps compared.
    pub steps: usize,
    /// `MISMATCH ...` lines.
    pub mismatches: Vec<String>,
    /// `CORPUS ...` lines: expectations the host contradicts.
    pub corpus_errors: Vec<String>,
    /// `ERROR ...` lines: the harness or the model could not run a script.
    pub errors: Vec<String>,
    /// Steps the model answered `Unsupported`.
    pub unsupported: usize,
    /// `STEP ...` lines, one per comparison, with [`Options::trace`].
    pub trace: Vec<String>,
}

impl Report {
    /// Adds another report's counts and lines.
    pub fn merge(&mut self, o: Report) {
        self.scripts += o.scripts;
        self.steps += o.steps;
        self.mismatches.extend(o.mismatches);
        self.corpus_errors.extend(o.corpus_errors);
        self.errors.extend(o.errors);
        self.unsupported += o.unsupported;
        self.trace.extend(o.trace);
    }

    /// Whether anything went wrong.
    pub fn failed(&self) -> bool {
        !self.mismatches.is_empty() || !self.corpus_errors.is_empty() || !self.errors.is_empty()
    }

    /// All report lines, in order: mismatches, corpus errors, errors.
    pub fn lines(&self) -> impl Iterator<Item = &String> {
        self.mismatches.iter().chain(&self.corpus_errors).chain(&self.errors)
    }

    /// The closing line: `difftest: S scripts, N steps, M mismatches`, with
    /// the other counts in parentheses when there are any.
    pub fn summary(&self) -> String {
        let mut s =
            format!("difftest: {} scripts, {} steps, {} mismatches", self.scripts, self.steps, self.mismatches.len());
        let mut extra = Vec::new();
        if self.unsupported > 0 {
            extra.push(format!("{} unsupported steps", self.unsupported));
        }
        if !self.corpus_errors.is_empty() {
            extra.push(format!("{} corpus errors", self.corpus_errors.len()));
        }
        if !self.errors.is_empty() {
            extra.push(format!("{} errors", self.errors.len()));
        }
        if !extra.is_empty() {
            let _ = write!(s, " ({})", extra.join(", "));
        }
        s
    }
}

/// The part of a VMA list that a script made: entries not in the start
/// list (`+`), and start entries that are gone (`-`).
pub fn restrict_maps(start: &[MapEntry], cur: &[MapEntry]) -> Vec<String> {
    let s: HashSet<&MapEntry> = start.iter().collect();
    let c: HashSet<&MapEntry> = cur.iter().collect();
    let mut out: Vec<String> = cur.iter().filter(|e| !s.contains(e)).map(|e| format!("+{e}")).collect();
    out.extend(start.iter().filter(|e| !c.contains(e)).map(|e| format!("-{e}")));
    out
}

/// The smaps counters of the VMAs a script made (see [`restrict_maps`]).
pub fn restrict_smaps(start: &[MapEntry], cur: &[SmapsEntry]) -> Vec<String> {
    let s: HashSet<&MapEntry> = start.iter().collect();
    let c: HashSet<&MapEntry> = cur.iter().map(|e| &e.vma).collect();
    let mut out: Vec<String> = cur.iter().filter(|e| !s.contains(&e.vma)).map(|e| format!("+{e}")).collect();
    out.extend(start.iter().filter(|e| !c.contains(e)).map(|e| format!("-{e}")));
    out
}

fn list_diff(h: &[String], m: &[String]) -> (String, String) {
    let hs: HashSet<&String> = h.iter().collect();
    let ms: HashSet<&String> = m.iter().collect();
    let only = |a: &[String], other: &HashSet<&String>| {
        let v: Vec<&str> = a.iter().filter(|x| !other.contains(x)).map(|s| s.as_str()).collect();
        format!("[{}]", v.join("; "))
    };
    (only(h, &ms), only(m, &hs))
}

struct Walker<'a> {
    script: &'a Script,
    start: &'a StartState,
    host: HashMap<u32, Outcome>,
    slots: Vec<i64>,
    opts: &'a Options,
    rep: Report,
}

impl Walker<'_> {
    fn take(&mut self, id: u32) -> Outcome {
        self.host.remove(&id).unwrap_or_else(|| Outcome::HostError("no host result".into()))
    }

    fn trace(&mut self, line: u32, verb: &str, host: &Outcome, model: &Outcome) {
        if self.opts.trace {
            self.rep.trace.push(format!("STEP {}:{} {}: host={} oxmm={}", self.script.name, line, verb, host, model));
        }
    }

    fn mismatch(&mut self, line: u32, verb: &str, host: &dyn std::fmt::Display, model: &dyn std::fmt::Display) {
        self.rep
            .mismatches
            .push(format!("MISMATCH {}:{} {}: host={} oxmm={}", self.script.name, line, verb, host, model));
    }

    /// Handles the host-error / unsupported cases; true when a plain
    /// comparison should follow.
    fn common(&mut self, line: u32, verb: &str, host: &Outcome, model: &Outcome) -> bool {
        if let Outcome::HostError(e) = host {
            self.rep.errors.push(format!("ERROR {}:{} {}: host harness: {}", self.script.name, line, verb, e));
            return false;
        }
        if let Outcome::Unsupported(_) = model {
            self.rep.unsupported += 1;
            if !self.opts.allow_unsupported {
                self.mismatch(line, verb, host, model);
            }
            return false;
        }
        true
    }

    fn compare_maps(&mut self, line: u32, verb: &str, host: &Outcome, model: &Outcome) {
        self.trace(line, verb, host, model);
        if !self.common(line, verb, host, model) {
            return;
        }
        let (h, m) = match (host, model) {
            (Outcome::Maps(h), Outcome::Maps(m)) => {
                (restrict_maps(&self.start.maps, h), restrict_maps(&self.start.maps, m))
            }
            (Outcome::Smaps(h), Outcome::Smaps(m)) => {
                (restrict_smaps(&self.start.maps, h), restrict_smaps(&self.start.maps, m))
            }
            _ => {
                self.mismatch(line, verb, host, model);
                return;
            }
        };
        if h != m {
            let (hd, md) = list_diff(&h, &m);
            if hd == "[]" && md == "[]" {
                self.mismatch(line, verb, &format!("[{}]", h.join("; ")), &format!("[{}]", m.join("; ")));
            } else {
                self.mismatch(line, verb, &hd, &md);
            }
        }
    }

    fn check_expect(&mut self, step: &Step, host: &Outcome) {
        if let Some(e) = &step.expect {
            if !matches!(host, Outcome::HostError(_)) && !host.satisfies(e) {
                self.rep.corpus_errors.push(format!(
                    "CORPUS {}:{} {}: expected {} but host={}",
                    self.script.name,
                    step.line,
                    step.verb_name(),
                    e,
                    host
                ));
            }
        }
    }

    fn block(&mut self, b: &Block, model: &mut dyn Model) {
        for step in &b.steps {
            self.rep.steps += 1;
            let verb = step.verb_name();
            match &step.kind {
                StepKind::Call { verb: v, args, text } => {
                    let mut a = [0i64; MAX_ARGS];
                    for (slot, e) in a.iter_mut().zip(args.iter()) {
                        *slot = e.eval(&self.slots);
                    }
                    let call = Call::from_raw(*v, &a, text);
                    let host = self.take(step.id);
                    let m = model.call(&call);
                    self.trace(step.line, verb, &host, &m);
                    self.check_expect(step, &host);
                    if self.common(step.line, verb, &host, &m) && host != m {
                        self.mismatch(step.line, verb, &host, &m);
                    }
                    if let Some(s) = step.bind.and_then(|s| self.slots.get_mut(s as usize)) {
                        *s = host.bound_value();
                    }
                }
                StepKind::Maps => {
                    let host = self.take(step.id);
                    let m = model.maps();
                    self.compare_maps(step.line, verb, &host, &m);
                }
                StepKind::Smaps => {
                    let host = self.take(step.id);
                    let m = model.smaps();
                    self.compare_maps(step.line, verb, &host, &m);
                }
                StepKind::Fork(inner) => {
                    let host = self.take(step.id);
                    let m = model.fork_enter();
                    self.trace(step.line, verb, &host, &m);
                    let host_ok = matches!(host, Outcome::Ok(_));
                    let model_ok = matches!(m, Outcome::Ok(_));
                    if self.common(step.line, verb, &host, &m) && host_ok != model_ok {
                        self.mismatch(step.line, verb, &host, &m);
                    }
                    if host_ok && model_ok {
                        self.block(inner, model);
                    }
                    if model_ok {
                        model.fork_exit();
                    }
                }
            }
        }
        let host = self.take(b.end_id);
        let m = model.maps();
        self.compare_maps(b.end_line, "maps", &host, &m);
    }
}

/// Runs one parsed script on the host and on the model.
pub fn run_script(script: &Script, source: &mut ModelSource<'_>, opts: &Options) -> Report {
    let twin = matches!(source, ModelSource::HostTwin(_));
    let (host, tw) = host::run_host(script, &opts.host, twin);
    let mut rep = Report { scripts: 1, ..Report::default() };
    if let Some(f) = &host.failure {
        rep.errors.push(format!("ERROR {}: host: {}", script.name, f));
    }
    let Some(start) = host.start.as_ref() else {
        return rep;
    };
    let mut model: Box<dyn Model> = match source {
        ModelSource::Factory(f) => f(),
        ModelSource::HostTwin(wrap) => match tw {
            Some(t) => wrap(Box::new(t)),
            None => {
                rep.errors.push(format!("ERROR {}: cannot fork the host twin", script.name));
                return rep;
            }
        },
    };
    if let Err(e) = model.start(start) {
        rep.errors.push(format!("ERROR {}: model start: {}", script.name, e));
        return rep;
    }
    let mut w = Walker { script, start, host: host.outcomes, slots: vec![0; script.nslots], opts, rep };
    w.block(&script.body, model.as_mut());
    w.rep
}

/// Parses and runs script text; a parse error becomes an `ERROR` line.
pub fn run_text(name: &str, text: &str, source: &mut ModelSource<'_>, opts: &Options) -> Report {
    match crate::lang::parse(name, text) {
        Ok(s) => run_script(&s, source, opts),
        Err(e) => Report { scripts: 1, errors: vec![format!("ERROR {e}")], ..Report::default() },
    }
}
