//! The model side: what the harness drives in step with the host.

use crate::call::{Call, Outcome, StartState};

/// A memory-management implementation under test, driven one step at a time.
///
/// For each script the harness makes a fresh model (see
/// [`crate::run::ModelFactory`]), calls [`Model::start`] with the host child's
/// state at the script's start, then for every step in program order one of
/// [`Model::call`], [`Model::maps`], [`Model::smaps`], or, for `fork { }`,
/// [`Model::fork_enter`] ... (the block's steps) ... [`Model::fork_exit`].
/// At the end of the script and of every fork block it asks [`Model::maps`]
/// once more.
///
/// Arguments that refer to earlier results (`$a+1p`) are resolved from the
/// host's results, so a divergence does not derail the rest of the script.
///
/// Any step may answer [`Outcome::Unsupported`]: it is counted apart and is a
/// mismatch unless the run allows unsupported steps.
pub trait Model {
    /// Sets the model's process up as a copy of the host child at the start:
    /// its VMAs (`st.maps`), break, `mmap_base`, rlimits, capabilities and
    /// open descriptors. An error skips the script (counted as a mismatch).
    fn start(&mut self, st: &StartState) -> Result<(), String>;

    /// Runs one call in the current process (the innermost forked child
    /// while inside `fork { }`).
    fn call(&mut self, c: &Call<'_>) -> Outcome;

    /// `fork()`: from now on the steps run in a child whose address space is
    /// a copy of the current process's (with `MADV_DONTFORK` and
    /// `MADV_WIPEONFORK` honoured). `Ok(_)` on success (the value is not
    /// compared), `Err(errno)` on failure (the block is then skipped).
    fn fork_enter(&mut self) -> Outcome;

    /// The child of the innermost `fork_enter` exits; the parent continues.
    fn fork_exit(&mut self);

    /// The current process's VMA list, all of it ([`Outcome::Maps`]).
    fn maps(&mut self) -> Outcome;

    /// The current process's smaps counters, all VMAs ([`Outcome::Smaps`]).
    fn smaps(&mut self) -> Outcome;
}
