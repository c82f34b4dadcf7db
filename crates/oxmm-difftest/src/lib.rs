//! Differential testing of oxmm against the host kernel.
//!
//! Scripts in the `.mms` language ([`lang`]) run on the host kernel, in a
//! freshly forked child that makes only raw system calls ([`host`]), and on
//! a [`Model`], step by step; every divergence of return value, errno,
//! signal, bytes, mincore vector, VMA list or smaps counters is reported
//! ([`run`]). [`random`] generates programs with edge-case arguments and
//! shrinks the ones that diverge. `docs/difftest.md` describes it all.
//!
//! The model side of oxmm implements [`Model`] (in `model_oxmm`); until it
//! does, the host itself can stand in for a model ([`host::TwinModel`]),
//! which is how the harness tests itself ([`testing`]).

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]
#![warn(missing_docs)]

pub mod call;
pub mod consts;
pub mod host;
pub mod lang;
pub mod model;
pub mod model_oxmm;
pub mod models;
pub mod random;
pub mod run;
pub mod testing;
pub mod wire;

pub use call::{Call, MapEntry, Outcome, SmapsEntry, StartState};
pub use lang::{parse, parse_file, ParseError, Script};
pub use model::Model;
pub use run::{run_script, run_text, ModelSource, Options, Report};
