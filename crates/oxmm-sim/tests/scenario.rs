//! Scenario files: what parses, and errors that name file, key and problem.

use oxmm_sim::scenario::{parse_size, Scenario, SlabKind};
use oxmm_sim::workload::Workload;

fn err(text: &str) -> String {
    Scenario::parse(text, "t.toml").unwrap_err().to_string()
}

#[test]
fn default_and_examples_parse() {
    let d = Scenario::default_scenario();
    assert_eq!(d.machine.nodes.len(), 2);
    assert_eq!(d.slab, SlabKind::Slub);
    assert!(matches!(d.workloads[0], Workload::PageChurn(_)));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 3);
}

#[test]
fn sizes_parse_with_units() {
    assert_eq!(parse_size("4G"), Some(4 << 30));
    assert_eq!(parse_size("512m"), Some(512 << 20));
    assert_eq!(parse_size("0x1000"), Some(4096));
    assert_eq!(parse_size("1_024"), Some(1024));
    assert_eq!(parse_size("4X"), None);
    assert_eq!(parse_size("99999999999T"), None, "overflow is an error, not a wrap");
}

#[test]
fn errors_name_file_key_and_problem() {
    let e = err("[machine]\nmem = \"4X\"\n");
    assert!(e.starts_with("t.toml: key `machine.mem`:") && e.contains("not a size"), "{e}");
    let e = err("[machine]\nmemory = \"4G\"\n");
    assert!(e.contains("key `machine.memory`") && e.contains("unknown key"), "{e}");
    let e = err("[[machine.node]]\nmem = \"1000M\"\ncpus = 1\n");
    assert!(e.contains("key `machine.node[0].mem`") && e.contains("128 MiB"), "{e}");
    let e = err("[sysctl]\n\"vm.no_such_knob\" = 1\n");
    assert!(e.contains("vm.no_such_knob") && e.contains("unknown sysctl"), "{e}");
    let e = err("slab = \"slib\"\n");
    assert!(e.contains("key `slab`") && e.contains("slub, slab, slob"), "{e}");
    let e = err("[machine]\nmem = \"4G\"\n[machine\n");
    assert!(e.starts_with("t.toml: line 3"), "{e}");
    let e = err("[[workload]]\nkind = \"page_churn\"\nmax_order = 11\n");
    assert!(e.contains("workload[0].max_order"), "{e}");
    let e = err("[machine]\nkernelcore = \"150%\"\n");
    assert!(e.contains("machine.kernelcore"), "{e}");
    let e = Scenario::load(std::path::Path::new("/nonexistent/x.toml")).unwrap_err().to_string();
    assert!(e.starts_with("/nonexistent/x.toml: cannot read"), "{e}");
}

#[test]
fn sysctl_tables_flatten_to_linux_names() {
    let s = Scenario::parse("[sysctl]\nvm.watermark_scale_factor = 20\n\"vm.min_free_kbytes\" = 8192\n", "t").unwrap();
    assert_eq!(
        s.sysctls,
        vec![
            ("vm.watermark_scale_factor".to_string(), "20".to_string()),
            ("vm.min_free_kbytes".to_string(), "8192".to_string())
        ],
        "file order is kept: sysctl writes apply in the order written"
    );
}
