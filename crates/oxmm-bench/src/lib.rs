//! Side-by-side benchmarks of oxmm against peers (`oxmm bench NAME [--quick]`).
//!
//! Each bench times oxmm and one or more peer implementations on the same
//! work in the same run, prints readable lines, then one machine-readable
//! line per comparison:
//!
//! ```text
//! ratio <bench> <peer> <value>
//! ```
//!
//! where `value` is the peer's time divided by oxmm's time for the same
//! work (above 1: oxmm is faster). The measuring and printing live in
//! [`harness`]; each bench is a module that generates its workload and
//! names its contenders, registered in [`BENCHES`].

#![warn(missing_docs)]

pub mod fault;
pub mod harness;
pub mod page_alloc;
pub mod replay;
pub mod slab;

use std::io::Write;

/// A bench: its name on the command line, a one-line description and its
/// entry point (`quick` asks for fewer samples).
pub struct Bench {
    /// Name given to `oxmm bench`.
    pub name: &'static str,
    /// What it compares.
    pub about: &'static str,
    /// Runs it, writing the report to the writer.
    pub run: fn(quick: bool, out: &mut dyn Write) -> Result<(), String>,
}

/// Every bench, in the order `names` lists them.
pub const BENCHES: &[Bench] = &[
    Bench {
        name: "page_alloc",
        about: "order-0 and mixed-order page alloc/free vs buddy_system_allocator's FrameAllocator and talc",
        run: page_alloc::run,
    },
    Bench {
        name: "slab",
        about: "kmalloc/kfree (SLUB) of 8..4096 bytes on 1 and 2 threads vs glibc malloc/free and slabmalloc",
        run: slab::run,
    },
    Bench {
        name: "fault",
        about: "anonymous write faults (mmap, touch every page, munmap) vs the host kernel",
        run: fault::run_fault,
    },
    Bench {
        name: "mmap",
        about: "mmap/munmap pairs of one anonymous page vs the host kernel, and find_vma over 100k VMAs",
        run: fault::run_mmap,
    },
    Bench {
        name: "replay",
        about: "LRU replay of a page-reference string (accesses/s) vs the libCacheSim Python package's LRU",
        run: replay::run,
    },
];

const NAMES: &[&str] = &{
    let mut names = [""; BENCHES.len()];
    let mut i = 0;
    while i < BENCHES.len() {
        names[i] = BENCHES[i].name;
        i += 1;
    }
    names
};

/// Names of the benches `run` knows.
pub fn names() -> &'static [&'static str] {
    NAMES
}

/// Runs the bench called `name` and writes its report to `out`. An
/// unknown name is an error that lists the known ones.
pub fn run(name: &str, quick: bool, out: &mut dyn Write) -> Result<(), String> {
    match BENCHES.iter().find(|b| b.name == name) {
        Some(b) => (b.run)(quick, out),
        None => Err(format!("unknown bench `{name}`; known benches: {}", names().join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_registry() {
        assert_eq!(names(), ["page_alloc", "slab", "fault", "mmap", "replay"]);
        assert!(BENCHES.iter().zip(names()).all(|(b, n)| b.name == *n && !b.about.is_empty()));
    }

    #[test]
    fn unknown_bench_is_rejected_with_the_known_names() {
        let mut out = Vec::new();
        let e = run("no_such_bench", true, &mut out).unwrap_err();
        assert!(e.contains("no_such_bench"), "{e}");
        for n in names() {
            assert!(e.contains(n), "{e}");
        }
        assert!(out.is_empty());
    }
}
