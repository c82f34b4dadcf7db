//! The `oxmm` command end to end: output contracts and error messages.

use std::process::Command;

fn oxmm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oxmm")).args(args).output().expect("run oxmm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn quiet_run_prints_only_the_requested_files() {
    let (ok, out, _) = oxmm(&["run", "--quiet", "--proc", "meminfo,buddyinfo"]);
    assert!(ok);
    let first = out.lines().next().unwrap();
    assert!(first.starts_with("MemTotal:"), "{first}");
    assert!(out.contains("\nNode 0, zone      DMA "), "buddyinfo follows meminfo");
    assert!(!out.contains("=="), "no summary or headers with --quiet");
}

#[test]
fn default_run_prints_summary_then_meminfo() {
    let (ok, out, _) = oxmm(&["run"]);
    assert!(ok);
    assert!(out.starts_with("== oxmm run ==\n"));
    assert!(out.contains("page_churn"));
    assert!(out.contains("==> /proc/meminfo <==\nMemTotal:"));
}

#[test]
fn same_seed_same_output() {
    let a = oxmm(&["run", "--quiet", "--seed", "9", "--proc", "vmstat,buddyinfo"]).1;
    let b = oxmm(&["run", "--quiet", "--seed", "9", "--proc", "vmstat,buddyinfo"]).1;
    let c = oxmm(&["run", "--quiet", "--seed", "10", "--proc", "vmstat,buddyinfo"]).1;
    assert_eq!(a, b);
    assert_ne!(a, c, "another seed moves the counters");
}

#[test]
fn errors_name_the_problem() {
    let dir = std::env::temp_dir().join(format!("oxmm-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[machine]\nmem = \"lots\"\n").unwrap();
    let (ok, _, err) = oxmm(&["run", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("bad.toml: key `machine.mem`") && err.contains("not a size"), "{err}");
    let (ok, _, err) = oxmm(&["run", "--proc", "nosuchfile"]);
    assert!(!ok && err.contains("--proc") && err.contains("nosuchfile"), "{err}");
    let (ok, _, err) = oxmm(&["bench", "nosuchbench"]);
    assert!(!ok && err.contains("page_alloc"), "unknown bench lists the known ones: {err}");
    let (ok, out, _) = oxmm(&["sysctl", "-a"]);
    assert!(
        ok && out.contains("vm.min_free_kbytes = ") && out.contains("vm.lowmem_reserve_ratio = 256\t256\t32\t0\t0")
    );
    std::fs::remove_dir_all(&dir).ok();
}
