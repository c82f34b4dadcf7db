//! The `file` workload end to end: tmpfs files read and written through
//! pread/pwrite and through shared mappings, what meminfo shows, whether
//! files outlive their processes, and that data reads back identical.

use oxmm::vmstat::NodeStat;
use oxmm_sim::file_io::content;
use oxmm_sim::processes::{run_processes, ProcState, ProcessRun};
use oxmm_sim::sampler::parse_meminfo;
use oxmm_sim::scenario::Scenario;
use oxmm_sim::Machine;

const MACHINE: &str = "[machine]\nmem = \"512M\"\ncpus = 2\n";

fn run_with(text: &str, mut tick: impl FnMut(&Machine, &[ProcessRun])) -> (Machine, Vec<ProcessRun>) {
    // A leading `duration = ...` line belongs before the [machine] table.
    let (top, rest) = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("duration") => (format!("{first}\n"), rest),
        _ => (String::new(), text),
    };
    let sc = Scenario::parse(&format!("{top}{MACHINE}{rest}"), "t.toml").unwrap_or_else(|e| panic!("{e}"));
    let mut m = Machine::boot(&sc.machine, 1).unwrap();
    let runs = run_processes(&mut m, &sc.processes, sc.duration_ns, 1, |m, r| {
        tick(m, r);
        None
    });
    (m, runs)
}

fn run(text: &str) -> (Machine, Vec<ProcessRun>) {
    run_with(text, |_, _| {})
}

fn meminfo_kb(m: &Machine, field: &str) -> u64 {
    parse_meminfo(&oxmm::proc::meminfo(&m.kernel))[field]
}

fn shmem_pages(m: &Machine) -> u64 {
    m.kernel.global_node_page_state(NodeStat::NrShmem)
}

#[test]
fn a_kept_file_stays_in_shmem_and_cached_and_reads_back_identical() {
    let (m, runs) = run("[[process]]\nname = \"w\"\nkind = \"file\"\nmode = \"write\"\npath = \"/dev/shm/data\"\n\
         keep = true\nfile_size = \"4M\"\nio_size = \"64k\"\nops = 64\n\
         [[process]]\nname = \"r\"\nstart = \"1ms\"\nkind = \"file\"\nmode = \"read\"\npattern = \"random\"\n\
         path = \"/dev/shm/data\"\nfile_size = \"4M\"\nio_size = \"10000\"\nops = 500\n");
    let (w, r) = (&runs[0], &runs[1]);
    assert_eq!(w.state, ProcState::Exited);
    assert_eq!(w.stats.bytes_written, 4 << 20);
    assert_eq!(w.stats.failures, 0);
    assert_eq!(w.peak_rss_bytes, 0, "pwrite maps nothing");
    assert_eq!(r.stats.bytes_read, 500 * 10000, "10000-byte blocks, none past the end");
    assert_eq!(r.stats.mismatches, 0, "every byte read is the byte written");
    // After both exited the file is still there, all 1024 pages of it.
    assert_eq!(shmem_pages(&m), 1024);
    assert_eq!(meminfo_kb(&m, "Shmem"), 4096);
    assert_eq!(meminfo_kb(&m, "Cached"), 4096);
    let id = m.tmpfs.lookup("/dev/shm/data").expect("linked");
    assert_eq!(m.kernel.file_size(id), Some(4 << 20));
    let data = m.kernel.file_read(id, 0, 4 << 20).unwrap();
    assert!(data.iter().enumerate().all(|(o, &b)| b == content(o as u64)), "the file holds what was written");
    assert_eq!(m.tmpfs.written(id).map(|w| w.bytes()), Some(4 << 20));
}

#[test]
fn an_unlinked_file_goes_with_its_process() {
    let mut peak = 0;
    let (m, runs) = run_with(
        "[[process]]\nname = \"w\"\nkind = \"file\"\nmode = \"write\"\nfile_size = \"2M\"\nio_size = \"4k\"\nops = 512\n",
        |m, _| peak = peak.max(shmem_pages(m)),
    );
    assert_eq!(runs[0].stats.bytes_written, 2 << 20);
    assert_eq!(peak, 512, "its pages were Shmem while it ran");
    assert_eq!(shmem_pages(&m), 0);
    assert_eq!(m.tmpfs.files().count(), 0);
}

#[test]
fn reading_a_file_never_written_reads_holes_and_allocates_nothing() {
    let mut peak = 0;
    let (m, runs) = run_with(
        "[[process]]\nname = \"r\"\nkind = \"file\"\nmode = \"read\"\npattern = \"random\"\nfile_size = \"8M\"\n\
         io_size = \"64k\"\nops = 200\n",
        |m, _| peak = peak.max(shmem_pages(m)),
    );
    let r = &runs[0];
    assert_eq!(r.stats.bytes_read, 200 * 65536, "the file is 8 MiB long");
    assert_eq!(r.stats.mismatches, 0, "holes read as zeroes");
    assert_eq!(peak, 0, "no page was allocated");
    assert_eq!(r.minor_faults, 0);
    assert_eq!(shmem_pages(&m), 0);
}

#[test]
fn a_shared_mapping_faults_pages_in_and_counts_them_in_rss() {
    let (m, runs) = run("[[process]]\nname = \"mw\"\nkind = \"file\"\nmode = \"write\"\nmmap = true\nkeep = true\n\
         path = \"/dev/shm/m\"\nfile_size = \"1M\"\nio_size = \"4k\"\nops = 256\n\
         [[process]]\nname = \"mr\"\nstart = \"1ms\"\nkind = \"file\"\nmode = \"read\"\nmmap = true\n\
         path = \"/dev/shm/m\"\nfile_size = \"1M\"\nio_size = \"1000\"\nops = 300\n");
    let (w, r) = (&runs[0], &runs[1]);
    // One write fault per page of the shared mapping; RSS counts them (RssShmem).
    assert_eq!(w.minor_faults, 256);
    assert_eq!(w.peak_rss_bytes, 1 << 20);
    assert_eq!(w.stats.bytes_written, 1 << 20);
    // The reader maps the pages the writer left in the file.
    assert_eq!(r.stats.mismatches, 0);
    assert_eq!(r.stats.bytes_read, 300 * 1000);
    assert!(r.minor_faults > 0 && r.peak_rss_bytes > 0 && r.peak_rss_bytes <= 1 << 20);
    assert_eq!(shmem_pages(&m), 256, "the kept file outlives both");
}

#[test]
fn appending_rotates_at_the_file_size_and_readwrite_reads_its_own_writes() {
    let (m, runs) = run("[[process]]\nname = \"log\"\nkind = \"file\"\nmode = \"append\"\nkeep = true\n\
         path = \"/dev/shm/log\"\nfile_size = \"64k\"\nio_size = \"3000\"\nops = 100\n\
         [[process]]\nname = \"rw\"\nkind = \"file\"\nmode = \"readwrite\"\nwrite_ratio = 0.3\npattern = \"random\"\n\
         file_size = \"256k\"\nio_size = \"4k\"\nops = 2000\n");
    let id = m.tmpfs.lookup("/dev/shm/log").unwrap();
    // 21 appends of 3000 bytes fit in 64 KiB; 100 = 4 * 21 + 16.
    assert_eq!(m.kernel.file_size(id), Some(16 * 3000));
    assert_eq!(runs[0].stats.bytes_written, 100 * 3000);
    let rw = &runs[1].stats;
    assert!(rw.bytes_written > 0 && rw.bytes_read > 0);
    assert_eq!(rw.bytes_written + rw.bytes_read, 2000 * 4096);
    assert_eq!(rw.mismatches, 0);
}

#[test]
fn file_runs_are_reproducible() {
    let text = "[[process]]\nname = \"rw\"\nkind = \"file\"\nmode = \"readwrite\"\npattern = \"random\"\nmmap = true\n\
         file_size = \"1M\"\nio_size = \"4k\"\nops = 500\n";
    assert_eq!(run(text).1, run(text).1);
}

#[test]
fn a_killed_process_leaves_its_kept_file_and_loses_its_unlinked_one() {
    let (m, runs) = run(
        "duration = \"100us\"\n\
         [[process]]\nname = \"k\"\nkind = \"file\"\nkeep = true\npath = \"/dev/shm/k\"\nfile_size = \"8M\"\n\
         io_size = \"4k\"\nops = 100000\n\
         [[process]]\nname = \"u\"\nkind = \"file\"\nmmap = true\nfile_size = \"8M\"\nio_size = \"4k\"\nops = 100000\n",
    );
    assert!(runs.iter().all(|r| r.state == ProcState::Killed));
    // 100 us of one-page writes: 1000 pages each.
    assert_eq!(runs[0].stats.bytes_written, 1000 * 4096);
    assert_eq!(runs[1].stats.bytes_written, 1000 * 4096);
    assert_eq!(shmem_pages(&m), 1000, "only the kept file's pages remain");
    assert_eq!(m.tmpfs.files().map(|(p, _)| p.to_string()).collect::<Vec<_>>(), vec!["/dev/shm/k"]);
}

/// `[[machine.file]]`: files on tmpfs from boot. A data file takes its
/// pages at once (Shmem, Cached) and readers see its bytes; a sparse one
/// takes none; bad tables are errors that name the key.
#[test]
fn machine_files_exist_from_boot_and_read_back() {
    let text = format!(
        "{MACHINE}[[machine.file]]\npath = \"/dev/shm/input\"\nsize = \"2M\"\n\
         [[machine.file]]\npath = \"/tmp/holes\"\nsize = \"64M\"\nfill = \"sparse\"\n\
         [[process]]\nname = \"r\"\nkind = \"file\"\nmode = \"read\"\npattern = \"random\"\n\
         path = \"/dev/shm/input\"\nfile_size = \"2M\"\nio_size = \"4096\"\nops = 300\n\
         [[process]]\nname = \"h\"\nkind = \"file\"\nmode = \"read\"\npath = \"/tmp/holes\"\n\
         file_size = \"64M\"\nio_size = \"1M\"\nops = 64\n"
    );
    let sc = Scenario::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sc.files.len(), 2);
    let mut m = Machine::boot(&sc.machine, 1).unwrap();
    let mut fs = std::mem::take(&mut m.tmpfs);
    fs.create_files(&m.kernel, &sc.files).unwrap();
    m.tmpfs = fs;
    assert_eq!(shmem_pages(&m), 512, "the data file's 2 MiB, the sparse file nothing");
    assert_eq!(meminfo_kb(&m, "Shmem"), 2048);
    let id = m.tmpfs.lookup("/dev/shm/input").unwrap();
    let head = m.kernel.file_read(id, 4090, 12).unwrap();
    assert_eq!(head, (4090..4102).map(content).collect::<Vec<u8>>());
    let holes = m.tmpfs.lookup("/tmp/holes").unwrap();
    assert_eq!(m.kernel.file_size(holes), Some(64 << 20));
    let runs = run_processes(&mut m, &sc.processes, sc.duration_ns, 1, |_, _| None);
    assert_eq!(runs[0].stats.bytes_read, 300 * 4096);
    assert_eq!(runs[0].stats.mismatches, 0, "the boot-time data reads back");
    assert_eq!(runs[1].stats.bytes_read, 64 << 20);
    assert_eq!(runs[1].stats.mismatches, 0, "holes read as zeroes");
    assert_eq!(shmem_pages(&m), 512, "reading holes allocated nothing; the files outlive the readers");
    for (bad, key) in [
        ("[[machine.file]]\nsize = \"1M\"\n", "machine.file[0]"),
        ("[[machine.file]]\npath = \"rel\"\nsize = \"1M\"\n", "machine.file[0].path"),
        ("[[machine.file]]\npath = \"/a\"\nsize = \"1M\"\nfill = \"junk\"\n", "machine.file[0].fill"),
        (
            "[[machine.file]]\npath = \"/a\"\nsize = \"1M\"\n[[machine.file]]\npath = \"/a\"\nsize = 1\n",
            "machine.file[1].path",
        ),
        ("[[machine.file]]\npath = \"/a\"\nsize = \"1M\"\nmode = 1\n", "machine.file[0]"),
    ] {
        let e = Scenario::parse(&format!("{MACHINE}{bad}"), "bad.toml").unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains(key), "{e}");
    }
}
