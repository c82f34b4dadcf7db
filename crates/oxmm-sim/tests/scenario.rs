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

mod fuzz {
    use oxmm_sim::scenario::Scenario;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("0".to_string()),
            Just("-1".to_string()),
            Just("\"4G\"".to_string()),
            Just("\"0x1000\"".to_string()),
            Just("\"100%\"".to_string()),
            Just("\"999999T\"".to_string()),
            Just("[[10, 20], [20, 10]]".to_string()),
            Just("[]".to_string()),
            Just("true".to_string()),
            "[0-9]{1,20}".prop_map(|s| s),
            "\"[0-9a-zA-Z%_.]{0,8}\"".prop_map(|s| s),
        ]
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "mem",
            "cpus",
            "kernel_image",
            "kernelcore",
            "movablecore",
            "pci_hole",
            "distance",
            "nodes",
            "reserved",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any text parses or gives an error naming the file; nothing panics.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            if let Err(e) = Scenario::parse(&text, "f.toml") {
                prop_assert!(e.to_string().starts_with("f.toml: "));
            }
        }

        /// `[[machine.file]]` tables with odd values: an error names the
        /// file, or the files are made on a booted machine or refused with
        /// an error naming the path; nothing panics.
        #[test]
        fn odd_machine_files_are_errors_not_panics(
            files in prop::collection::vec(
                (value(), prop_oneof![Just("\"data\"".to_string()), Just("\"sparse\"".to_string()), value()]),
                1..3,
            )
        ) {
            let mut text = String::from("[machine]\nmem = \"256M\"\ncpus = 1\n");
            for (i, (size, fill)) in files.iter().enumerate() {
                text.push_str(&format!("[[machine.file]]\npath = \"/dev/shm/f{i}\"\nsize = {size}\nfill = {fill}\n"));
            }
            match Scenario::parse(&text, "m.toml") {
                Ok(s) => {
                    let m = oxmm_sim::Machine::boot(&s.machine, 1).unwrap();
                    let mut fs = oxmm_sim::file_io::Tmpfs::default();
                    if let Err(e) = fs.create_files(&m.kernel, &s.files) {
                        prop_assert!(e.starts_with("/dev/shm/f"), "{e}");
                    }
                }
                Err(e) => prop_assert!(e.to_string().starts_with("m.toml: "), "{e}"),
            }
        }

        /// Machine tables with odd values: an error names a key under `machine`, or the machine validates.
        #[test]
        fn odd_machine_values_are_errors_not_panics(kvs in prop::collection::vec((key(), value()), 0..5)) {
            let mut text = String::from("[machine]\n");
            let mut seen = std::collections::HashSet::new();
            for (k, v) in kvs {
                if seen.insert(k) {
                    text.push_str(&format!("{k} = {v}\n"));
                }
            }
            match Scenario::parse(&text, "m.toml") {
                Ok(s) => prop_assert!(s.machine.validate().is_ok()),
                Err(e) => prop_assert!(e.to_string().starts_with("m.toml: "), "{e}"),
            }
        }
    }
}

#[test]
fn la57_reaches_the_machine() {
    let s = Scenario::parse("[machine]\nla57 = true\n", "t").unwrap();
    assert!(s.machine.la57);
    assert!(err("[machine]\nla57 = 5\n").contains("machine.la57"));
}

#[test]
fn process_tables_parse_with_start_limits_and_workload_keys() {
    use oxmm::mm_types::RLIM_INFINITY;
    let s = Scenario::parse(
        "duration = \"20ms\"\n\
         [[process]]\nname = \"db\"\nstart = \"2ms\"\nlimits = { as = \"1G\", data = \"512M\", stack = \"unlimited\", memlock = \"64k\" }\n\
         kind = \"anon\"\nsize = \"8M\"\npattern = \"zipf\"\nskew = 1.3\n\
         [[process]]\nkind = \"file\"\nmode = \"readwrite\"\nwrite_ratio = 0.25\nmmap = true\nkeep = true\npath = \"/dev/shm/x\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(s.duration_ns, Some(20_000_000));
    let p = &s.processes[0];
    assert_eq!((p.name.as_str(), p.start_ns), ("db", 2_000_000));
    assert_eq!(p.limits.address_space, Some(1 << 30));
    assert_eq!(p.limits.data, Some(512 << 20));
    assert_eq!(p.limits.stack, Some(RLIM_INFINITY));
    assert_eq!(p.limits.memlock, Some(64 << 10));
    let r = p.limits.rlimits();
    assert_eq!((r[oxmm::mm_types::rlimit::AS].cur, r[oxmm::mm_types::rlimit::AS].max), (1 << 30, 1 << 30));
    match &p.workload {
        Workload::Anon(a) => assert_eq!(a.pattern, oxmm_sim::user_workloads::Pattern::Zipf(1.3)),
        w => panic!("{w:?}"),
    }
    assert_eq!(s.processes[1].name, "file", "the kind names an unnamed process");
    assert_eq!(s.processes[1].start_ns, 0);
    match &s.processes[1].workload {
        Workload::File(f) => {
            assert!(f.mmap && f.keep && f.write_ratio == 0.25 && f.path.as_deref() == Some("/dev/shm/x"))
        }
        w => panic!("{w:?}"),
    }
}

#[test]
fn process_errors_name_file_key_and_problem() {
    let e = err("[[process]]\nkind = \"anon\"\nlimits = { as = \"lots\" }\n");
    assert!(e.starts_with("t.toml: key `process[0].limits.as`:") && e.contains("not a size"), "{e}");
    let e = err("[[process]]\nkind = \"anon\"\nlimits = { rss = \"1G\" }\n");
    assert!(e.contains("key `process[0].limits.rss`") && e.contains("unknown key"), "{e}");
    let e = err("[[process]]\nkind = \"anon\"\n[[process]]\nkind = \"page_churn\"\n");
    assert!(e.contains("key `process[1].kind`") && e.contains("kernel workload"), "{e}");
    let e = err("[[process]]\nkind = \"anon\"\nsise = \"1M\"\n");
    assert!(e.contains("key `process[0].sise`") && e.contains("name, start, limits"), "{e}");
    let e = err("[[process]]\nkind = \"anon\"\nstart = \"soon\"\n");
    assert!(e.contains("key `process[0].start`") && e.contains("not a duration"), "{e}");
    let e = err("[[process]]\nkind = \"anon\"\nname = \"a,b\"\n");
    assert!(e.contains("key `process[0].name`"), "{e}");
    let e = err("duration = \"0ms\"\n");
    assert!(e.contains("key `duration`") && e.contains("longer than 0"), "{e}");
    let e = err("duration = 5\n");
    assert!(e.contains("key `duration`"), "{e}");
    let e = err("[[process]]\nkind = \"file\"\nmode = \"scribble\"\n");
    assert!(e.contains("key `process[0].mode`") && e.contains("read, write, append, readwrite"), "{e}");
    let e = err("[[process]]\nkind = \"file\"\nmode = \"append\"\nmmap = true\n");
    assert!(e.contains("key `process[0].mmap`"), "{e}");
    let e = err("[[process]]\nkind = \"file\"\nmode = \"write\"\nwrite_ratio = 0.5\n");
    assert!(e.contains("key `process[0].write_ratio`"), "{e}");
    let e = err("[[process]]\nkind = \"file\"\nio_size = 0\n");
    assert!(e.contains("key `process[0].io_size`"), "{e}");
    let e = err("[[process]]\nkind = \"file\"\npath = \"relative\"\n");
    assert!(e.contains("key `process[0].path`"), "{e}");
    let e = err("[[process]]\nkind = \"replay\"\n");
    assert!(e.contains("key `process[0].trace`") && e.contains("missing"), "{e}");
    let e = err("[[workload]]\nkind = \"anon\"\npattern = \"zipf\"\nphases = [{ accesses = 5 }]\n");
    assert!(e.contains("key `workload[0].pattern`") && e.contains("phases"), "{e}");
    let e = err("[[workload]]\nkind = \"anon\"\nphases = [{ pattern = \"random\" }]\n");
    assert!(e.contains("key `workload[0].phases[0]`") && e.contains("accesses"), "{e}");
    let e = err("[[workload]]\nkind = \"anon\"\nphases = [{ accesses = 5, pattern = \"wavy\" }]\n");
    assert!(e.contains("key `workload[0].phases[0].pattern`"), "{e}");
}

mod process_fuzz {
    use oxmm_sim::scenario::Scenario;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("0".to_string()),
            Just("-1".to_string()),
            Just("\"4G\"".to_string()),
            Just("\"5ms\"".to_string()),
            Just("\"unlimited\"".to_string()),
            Just("\"/dev/shm/f\"".to_string()),
            Just("\"read\"".to_string()),
            Just("\"append\"".to_string()),
            Just("true".to_string()),
            Just("1.5".to_string()),
            Just("{ as = \"1M\" }".to_string()),
            Just("[{ accesses = 3 }]".to_string()),
            "[0-9]{1,20}".prop_map(|s| s),
            "\"[0-9a-zA-Z%_./]{0,8}\"".prop_map(|s| s),
        ]
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "name",
            "start",
            "limits",
            "size",
            "accesses",
            "pattern",
            "phases",
            "mode",
            "file_size",
            "io_size",
            "ops",
            "mmap",
            "keep",
            "path",
            "write_ratio",
            "step",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Process tables with odd values parse or name the file; nothing panics.
        #[test]
        fn odd_process_values_are_errors_not_panics(
            kind in prop::sample::select(vec!["anon", "file", "memory_hog", "heap_churn", "fork_server"]),
            kvs in prop::collection::vec((key(), value()), 0..5),
        ) {
            let mut text = format!("[[process]]\nkind = \"{kind}\"\n");
            let mut seen = std::collections::HashSet::new();
            for (k, v) in kvs {
                if seen.insert(k) {
                    text.push_str(&format!("{k} = {v}\n"));
                }
            }
            if let Err(e) = Scenario::parse(&text, "p.toml") {
                prop_assert!(e.to_string().starts_with("p.toml: "), "{e}");
            }
        }
    }
}
