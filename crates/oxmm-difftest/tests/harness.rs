//! The harness against the host itself (a twin child) and against altered
//! versions of it: every kind of divergence must be reported.

use oxmm_difftest::testing::{Alter, Perturb};
use oxmm_difftest::{run_text, Model, ModelSource, Options, Report};

const EXAMPLE: &str = "\
a = mmap 0 3p rw private|anonymous
write $a 3p 0x41
mprotect $a+1p 1p r            => ok
write $a+1p 1 0x42             => SIGSEGV/SEGV_ACCERR
b = mremap $a+2p 1p 5p maymove
maps
fork {
  write $b 1 0x43
  read $b 1
}
read $b 1
munmap $b+1 1p                 => EINVAL
";

fn run_with(text: &str, alter: Option<Alter>) -> Report {
    let wrap = move |m: Box<dyn Model>| -> Box<dyn Model> {
        match alter {
            Some(a) => Box::new(Perturb::new(m, a)),
            None => m,
        }
    };
    let mut src = ModelSource::HostTwin(&wrap);
    run_text("t.mms", text, &mut src, &Options::default())
}

#[test]
fn example_agrees_with_the_host() {
    let r = run_with(EXAMPLE, None);
    for l in r.lines() {
        println!("{l}");
    }
    assert!(!r.failed(), "{r:?}");
    assert_eq!(r.steps, 11);
    assert_eq!(r.summary(), "difftest: 1 scripts, 11 steps, 0 mismatches");
}

const ALL_KINDS: &str = "\
a = mmap 0 5p rw private|anonymous
munmap $a+4p 1p
write $a 2p 0x41
mincore $a 4p
mprotect $a+1p 1p r
write $a+1p 1 0x42             => SIGSEGV/SEGV_ACCERR
read $a+4p 1                   => SIGSEGV/SEGV_MAPERR
munmap $a+1 1p                 => EINVAL
read $a 2
maps
smaps
";

fn expect_mismatch(alter: Alter, line: u32, verb: &str) {
    let clean = run_with(ALL_KINDS, None);
    assert!(!clean.failed(), "{clean:?}");
    let r = run_with(ALL_KINDS, Some(alter));
    let want = format!("MISMATCH t.mms:{line} {verb}: host=");
    assert!(r.mismatches.iter().any(|m| m.starts_with(&want)), "{alter:?}: want {want}, got {:#?}", r.mismatches);
    assert!(r.failed());
    assert!(r.summary().starts_with("difftest: 1 scripts, 11 steps, "), "{}", r.summary());
    assert!(!r.summary().contains(", 0 mismatches"));
}

#[test]
fn catches_errno() {
    expect_mismatch(Alter::Errno, 8, "munmap");
}

#[test]
fn catches_address() {
    expect_mismatch(Alter::Address, 1, "mmap");
}

#[test]
fn catches_signal() {
    expect_mismatch(Alter::Signal, 6, "write");
}

#[test]
fn catches_si_code() {
    expect_mismatch(Alter::SiCode, 7, "read");
}

#[test]
fn catches_data() {
    expect_mismatch(Alter::Data, 9, "read");
}

#[test]
fn catches_mincore() {
    expect_mismatch(Alter::Mincore, 4, "mincore");
}

#[test]
fn catches_maps() {
    expect_mismatch(Alter::Maps, 10, "maps");
}

#[test]
fn catches_smaps() {
    expect_mismatch(Alter::Smaps, 11, "smaps");
}

#[test]
fn unsupported_is_a_mismatch_unless_allowed() {
    let mut f = || -> Box<dyn Model> { Box::new(oxmm_difftest::testing::Nothing) };
    let mut src = ModelSource::Factory(&mut f);
    let r = run_text("u.mms", "a = mmap 0 1p rw private|anonymous\n", &mut src, &Options::default());
    assert_eq!(r.unsupported, 2);
    assert_eq!(r.mismatches.len(), 2, "{r:?}");
    let mut src = ModelSource::Factory(&mut f);
    let opts = Options { allow_unsupported: true, ..Options::default() };
    let r = run_text("u.mms", "a = mmap 0 1p rw private|anonymous\n", &mut src, &opts);
    assert_eq!(r.mismatches.len(), 0);
    assert_eq!(r.summary(), "difftest: 1 scripts, 1 steps, 0 mismatches (2 unsupported steps)");
}

#[test]
fn contradicted_expectation_is_a_corpus_error() {
    let r = run_with("a = mmap 0 1p rw private|anonymous => EINVAL\n", None);
    assert_eq!(r.corpus_errors.len(), 1, "{r:?}");
    assert!(r.corpus_errors[0].starts_with("CORPUS t.mms:1 mmap: expected EINVAL but host=0x"));
    assert!(r.failed());
}

#[test]
fn fork_blocks_nest_and_cow() {
    let text = "\
a = mmap 0 1p rw private|anonymous
write $a 1 0x41
fork {
  write $a 1 0x42
  fork {
    read $a 1
    b = mmap 0 2p rw private|anonymous
    maps
  }
  read $a 1
}
read $a 1
x = file 3p
m = mmap 0 3p r shared $x 1p
read $m+1p 2
exec $a                          => SIGSEGV/SEGV_ACCERR
";
    let r = run_with(text, None);
    assert!(!r.failed(), "{r:?}");
    let r = run_with(text, Some(Alter::Data));
    assert_eq!(r.mismatches.len(), 4, "{r:?}");
}

/// Runs the named test again in a fresh process without address-space
/// randomization (MAP_32BIT placement is random otherwise); true in that
/// process, where the test does its work.
fn without_aslr(test: &str) -> bool {
    if std::env::var_os("OXMM_DIFFTEST_INNER").is_some() {
        return true;
    }
    assert!(oxmm_difftest::host::no_randomize_for_execs());
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("OXMM_DIFFTEST_INNER", "1")
        .output()
        .expect("re-run the test");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"), "the inner test did not run");
    false
}

#[test]
fn corpus_passes_on_the_host() {
    if !without_aslr("corpus_passes_on_the_host") {
        return;
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../difftest/corpus");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "mms"))
        .collect();
    files.sort();
    assert!(files.len() >= 150, "{} corpus scripts", files.len());
    let wrap = |m: Box<dyn Model>| m;
    let mut src = ModelSource::HostTwin(&wrap);
    let mut total = Report::default();
    for f in &files {
        let s = oxmm_difftest::parse_file(&f.to_string_lossy()).expect("corpus script parses");
        total.merge(oxmm_difftest::run_script(&s, &mut src, &Options::default()));
    }
    let lines: Vec<_> = total.lines().collect();
    assert!(!total.failed(), "{lines:#?}");
    assert_eq!(total.scripts, files.len());
}

#[test]
fn random_programs_are_deterministic_and_agree_with_the_host() {
    if !without_aslr("random_programs_are_deterministic_and_agree_with_the_host") {
        return;
    }
    use oxmm_difftest::random::{generate, run_random, GenOptions};
    let gen = GenOptions::default();
    assert_eq!(generate(7, 3, &gen), generate(7, 3, &gen));
    assert_ne!(generate(7, 3, &gen).render(), generate(7, 4, &gen).render());
    assert_ne!(generate(7, 3, &gen).render(), generate(8, 3, &gen).render());
    assert!(generate(7, 3, &gen).len() > gen.ops);
    let wrap = |m: Box<dyn Model>| m;
    let mut src = ModelSource::HostTwin(&wrap);
    let rr = run_random(3, 150, &gen, &mut src, &Options::default(), 1, &mut |_| {});
    let lines: Vec<_> = rr.report.lines().collect();
    assert!(!rr.report.failed(), "{lines:#?}");
    assert_eq!(rr.report.scripts, 150);
    assert!(rr.shrunk.is_empty());
}

#[test]
fn a_diverging_random_program_is_shrunk() {
    use oxmm_difftest::random::{run_random, GenOptions};
    let wrap = |m: Box<dyn Model>| -> Box<dyn Model> { Box::new(Perturb::new(m, Alter::Data)) };
    let mut src = ModelSource::HostTwin(&wrap);
    let gen = GenOptions { ops: 30, files: false };
    let rr = run_random(5, 10, &gen, &mut src, &Options::default(), 1, &mut |_| {});
    assert!(!rr.report.mismatches.is_empty());
    assert_eq!(rr.shrunk.len(), 1);
    let shrunk = &rr.shrunk[0];
    // The header, `brk0 = brk 0`, and at most a couple of steps to reach a read.
    let steps = shrunk.lines().filter(|l| !l.starts_with('#')).count();
    assert!(steps <= 4, "{shrunk}");
    assert!(shrunk.lines().any(|l| l.trim_start().starts_with("read ")), "{shrunk}");
    // The shrunk program is a script that still diverges.
    let body: String = shrunk.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    let r = run_with(&body, Some(Alter::Data));
    assert!(!r.mismatches.is_empty(), "{body}");
}

#[test]
fn harness_survives_wild_scripts() {
    // Faults everywhere, a huge mincore, exec of zeros, an unmapped exec,
    // reads of the harness's own heap: the child reports, never dies.
    let text = "\
exec 0                           => SIGSEGV/SEGV_MAPERR
a = mmap 0 2p rwx private|anonymous
exec $a                          => SIGSEGV
mincore $a 0x400000000000        => ENOMEM
read 0xffffffffffff0000 1        => SIGSEGV
write 0x10 1 0x1                 => SIGSEGV/SEGV_MAPERR
b = brk 0
read $b-8 8                      => ok
";
    let r = run_with(text, None);
    let lines: Vec<_> = r.lines().collect();
    assert!(!r.failed(), "{lines:#?}");
}
