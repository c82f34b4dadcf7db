//! `oxmm trace` and `oxmm replay` end to end: contract lines and errors.

use std::path::PathBuf;
use std::process::Command;

fn oxmm_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oxmm")).args(args).envs(env.iter().copied()).output().expect("run oxmm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn oxmm(args: &[&str]) -> (bool, String, String) {
    oxmm_env(args, &[])
}

/// A fresh directory for one test.
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oxmm-trace-test-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn misses(out: &str, policy: &str) -> Option<(u64, u64)> {
    out.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() == 4 && f[0] == "misses" && f[1] == policy {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

#[test]
fn replay_of_a_pages_file_prints_contract_lines_and_faults() {
    let d = dir("pages");
    let f = d.join("belady.txt");
    std::fs::write(&f, "# Belady's anomaly\n1\n2\n3\n4\n1\n2\n5\n1\n2\n3\n4\n5\n").unwrap();
    let (ok, out, err) = oxmm(&["replay", f.to_str().unwrap(), "--ram", "12K"]);
    assert!(ok, "{err}");
    assert_eq!(misses(&out, "fifo"), Some((3, 9)), "{out}");
    assert_eq!(misses(&out, "lru"), Some((3, 10)), "{out}");
    assert_eq!(misses(&out, "opt"), Some((3, 7)), "{out}");
    assert!(misses(&out, "clock").is_some() && misses(&out, "random").is_some(), "{out}");
    assert!(out.contains("(pages format)"), "{out}");
    assert!(out.contains("page faults under fifo: 5 minor (first touch), 4 major (refaults)"), "{out}");
    let (ok, out, _) = oxmm(&["replay", f.to_str().unwrap(), "--ram", "16k", "--policy", "fifo"]);
    assert!(ok);
    assert_eq!(misses(&out, "fifo"), Some((4, 10)), "{out}");
    assert_eq!(misses(&out, "lru"), None, "only the asked policy");
    // Default memory: half the 5 distinct pages.
    let (ok, out, _) = oxmm(&["replay", f.to_str().unwrap()]);
    assert!(ok && out.contains("memory: 2 page frames") && misses(&out, "lru").is_some_and(|m| m.0 == 2), "{out}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn replay_reads_lackey_text() {
    let d = dir("lackey");
    let f = d.join("prog.lackey");
    std::fs::write(&f, "==1== Lackey\nI  1000,4\n L 2ffc,8\n S 1008,4\nI  1000,4\n").unwrap();
    let (ok, out, err) = oxmm(&["replay", f.to_str().unwrap(), "--ram", "1M"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("(lackey format): 5 references (2 instruction fetches, 2 reads, 1 writes) from 4 accesses"),
        "{out}"
    );
    assert_eq!(misses(&out, "lru"), Some((256, 3)), "{out}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn replay_errors_name_the_file_and_line() {
    let d = dir("errors");
    let missing = d.join("nosuch.trace");
    let (ok, _, err) = oxmm(&["replay", missing.to_str().unwrap()]);
    assert!(!ok && err.contains("nosuch.trace: cannot open"), "{err}");

    let bad = d.join("bad.txt");
    std::fs::write(&bad, "1\n2\nthree\n").unwrap();
    let (ok, out, err) = oxmm(&["replay", bad.to_str().unwrap()]);
    assert!(!ok && out.is_empty());
    assert!(err.contains("bad.txt:3: `three` is not a page number"), "{err}");

    let (ok, _, err) = oxmm(&["replay", bad.to_str().unwrap(), "--format", "lackey"]);
    assert!(!ok && err.contains("bad.txt:1: not a lackey line"), "{err}");
    let (ok, _, err) = oxmm(&["replay", bad.to_str().unwrap(), "--format", "oxmm"]);
    assert!(!ok && err.contains("bad.txt: byte 0: not an oxmm trace"), "{err}");
    let (ok, _, err) = oxmm(&["replay", bad.to_str().unwrap(), "--format", "csv"]);
    assert!(!ok && err.contains("unknown trace format `csv` (known: oxmm, lackey, pages)"), "{err}");
    let (ok, _, err) = oxmm(&["replay", bad.to_str().unwrap(), "--ram", "lots"]);
    assert!(!ok && err.contains("--ram: `lots` is not a size"), "{err}");
    let (ok, _, err) = oxmm(&["replay", bad.to_str().unwrap(), "--ram", "100"]);
    assert!(!ok && err.contains("less than one 4 KiB page"), "{err}");
    let (ok, _, err) = oxmm(&["replay", bad.to_str().unwrap(), "--policy", "lfu9"]);
    assert!(!ok && err.contains("unknown policy `lfu9`"), "{err}");
    let (ok, _, err) = oxmm(&["replay"]);
    assert!(!ok && err.contains("FILE"), "{err}");
    let (ok, out, _) = oxmm(&["replay", "--help"]);
    assert!(ok && out.contains("--ram") && out.contains("--format"), "{out}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn trace_errors_say_what_to_do() {
    let d = dir("trace-errors");
    let out = d.join("x.trace");
    let o = out.to_str().unwrap();
    let (ok, _, err) = oxmm(&["trace", "-o", o]);
    assert!(!ok && err.contains("CMD"), "the program is required: {err}");
    let (ok, _, err) = oxmm(&["trace", "--", "true"]);
    assert!(!ok && err.contains("--output"), "the output is required: {err}");
    let (ok, _, err) = oxmm_env(&["trace", "-o", o, "--", "true"], &[("OXMM_VALGRIND", "/nonexistent/valgrind")]);
    assert!(!ok && err.contains("apt-get install valgrind"), "a missing valgrind says how to install it: {err}");
    assert!(!out.exists(), "nothing written without valgrind");
    std::fs::remove_dir_all(&d).ok();
}

fn have_valgrind() -> bool {
    Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn trace_then_replay_a_real_program_when_valgrind_is_installed() {
    if !have_valgrind() {
        eprintln!("valgrind is not installed: skipping the real trace");
        return;
    }
    let d = dir("real");
    let t = d.join("echo.trace");
    let (ok, out, err) = oxmm(&["trace", "-o", t.to_str().unwrap(), "--", "echo", "hello", "-n"]);
    assert!(ok, "{err}");
    assert_eq!(out, "hello -n\n", "the program's output passes through");
    assert!(err.contains("accesses") && err.contains("distinct pages") && err.contains("bytes written"), "{err}");
    assert!(!err.contains("==") && !err.contains("Lackey"), "valgrind's log is not shown: {err}");
    let (ok, out, err) = oxmm(&["replay", t.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("(oxmm format)") && out.contains("major (refaults)"), "{out}");
    let (frames, lru) = misses(&out, "lru").unwrap();
    let (_, opt) = misses(&out, "opt").unwrap();
    assert!(frames > 0 && lru >= opt && opt > 0, "{out}");
    // A failing program still leaves its trace, and the failure is reported.
    let t2 = d.join("false.trace");
    let (ok, _, err) = oxmm(&["trace", "-o", t2.to_str().unwrap(), "--", "false"]);
    assert!(!ok && err.contains("exit status: 1") && t2.exists(), "{err}");
    std::fs::remove_dir_all(&d).ok();
}
