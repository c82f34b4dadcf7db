//! `oxmm trace` and `oxmm replay`: real programs' memory traces.
//!
//! `oxmm trace -o FILE -- CMD ARGS...` runs the program under valgrind's
//! lackey tool (`--trace-mem=yes`) with lackey's log on a pipe, converts the
//! stream as it comes ([`oxmm_sim::trace::lackey::convert`]) into oxmm's
//! compact page-granular trace, and lets the program's own stdout and
//! stderr through. A missing valgrind is installed with apt-get when we are
//! root and apt-get is there; otherwise the error says how to install it.
//!
//! `oxmm replay FILE` reads a trace in any of the formats
//! ([`oxmm_sim::trace::Format`]), turns it into a dense page-reference
//! string and replays it through each replacement policy with as many page
//! frames as `--ram` holds (by default half the distinct pages), printing a
//! table, the page faults, and one `misses <policy> <frames> <count>` line
//! per policy at the end.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::error::ErrorKind;
use clap::Parser;
use oxmm_sim::trace::{lackey, simulate, Format, Kind, Policy, RefString, TraceReader, PAGE_SHIFT};

/// Environment variable naming the valgrind program to run (default `valgrind`).
pub const VALGRIND_ENV: &str = "OXMM_VALGRIND";

const INSTALL_HOW: &str = "install it with `sudo apt-get install valgrind` (Debian, Ubuntu), \
     `sudo dnf install valgrind` (Fedora) or `sudo pacman -S valgrind` (Arch), then run oxmm trace again";

#[derive(Parser, Debug)]
#[command(
    name = "oxmm trace",
    about = "Record a program's memory accesses with valgrind's lackey tool into oxmm's compact page-granular trace",
    after_help = "The program's stdout and stderr pass through; a summary goes to stderr. \
                  Replay the trace with `oxmm replay FILE`. See docs/traces.md."
)]
struct TraceArgs {
    /// Where to write the trace.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    /// The program to trace and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    command: Vec<OsString>,
}

#[derive(Parser, Debug)]
#[command(
    name = "oxmm replay",
    about = "Replay a memory trace through page-replacement policies and count the page faults",
    after_help = "Formats: oxmm (what `oxmm trace` writes), lackey (valgrind --tool=lackey --trace-mem=yes output), \
                  pages (one page number per line, or a 0x byte address). See docs/traces.md."
)]
struct ReplayArgs {
    /// The trace file.
    file: PathBuf,
    /// Memory to replay with: SIZE / 4 KiB page frames, e.g. 64M (default: half the distinct pages).
    #[arg(long, value_name = "SIZE")]
    ram: Option<String>,
    /// The trace's format: oxmm, lackey or pages (default: detected from the first bytes).
    #[arg(long, value_name = "FORMAT")]
    format: Option<Format>,
    /// Policies to replay, comma-separated (default: lru,fifo,clock,opt,random).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    policy: Vec<Policy>,
}

/// Parses `args` as the options of `oxmm NAME`; `Ok(None)` when they
/// asked for help (printed here).
fn parse<T: Parser>(name: &str, args: Vec<String>) -> Result<Option<T>, String> {
    match T::try_parse_from(std::iter::once(name.to_string()).chain(args)) {
        Ok(a) => Ok(Some(a)),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.print().map_err(|e| format!("cannot write: {e}"))?;
            Ok(None)
        }
        Err(e) => {
            let text = e.render().to_string();
            Err(text.trim_end().strip_prefix("error: ").unwrap_or(text.trim_end()).to_string())
        }
    }
}

fn mib(pages: u64) -> String {
    let bytes = pages << PAGE_SHIFT;
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

fn runs(program: &OsString) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn apt_get(args: &[&str]) -> bool {
    eprintln!("oxmm trace: running `apt-get {}`", args.join(" "));
    Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(stderr_as_stdio())
        .status()
        .is_ok_and(|s| s.success())
}

/// Our stderr, to be a child's stdout, so an installer's chatter does not
/// mix with what goes to our stdout.
fn stderr_as_stdio() -> Stdio {
    use std::os::fd::AsFd;
    std::io::stderr().as_fd().try_clone_to_owned().map_or_else(|_| Stdio::null(), Stdio::from)
}

/// The valgrind program to run, installing valgrind when it is missing and
/// we can (root with apt-get).
fn ensure_valgrind() -> Result<OsString, String> {
    if let Some(p) = std::env::var_os(VALGRIND_ENV) {
        return if runs(&p) {
            Ok(p)
        } else {
            Err(format!("valgrind `{}` (from {VALGRIND_ENV}) does not run; {INSTALL_HOW}", p.to_string_lossy()))
        };
    }
    let valgrind = OsString::from("valgrind");
    if runs(&valgrind) {
        return Ok(valgrind);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !runs(&OsString::from("apt-get")) {
        return Err(format!(
            "valgrind is not installed (oxmm trace runs programs under its lackey tool); {INSTALL_HOW}"
        ));
    }
    eprintln!("oxmm trace: valgrind is not installed; installing it with apt-get");
    let installed = apt_get(&["install", "-y", "-q", "valgrind"])
        || (apt_get(&["update", "-q"]) && apt_get(&["install", "-y", "-q", "valgrind"]));
    if installed && runs(&valgrind) {
        Ok(valgrind)
    } else {
        Err(format!("valgrind is not installed and `apt-get install -y valgrind` did not install it; {INSTALL_HOW}"))
    }
}

/// A pipe whose write end the child inherits (close-on-exec cleared) and
/// whose read end stays ours.
fn log_pipe() -> Result<(std::io::PipeReader, std::io::PipeWriter), String> {
    let (r, w) = std::io::pipe().map_err(|e| format!("cannot create a pipe for valgrind's output: {e}"))?;
    let fd = w.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == 0
    };
    if !ok {
        return Err(format!("cannot pass a pipe to valgrind: {}", std::io::Error::last_os_error()));
    }
    // A bigger pipe means fewer switches between valgrind and us; it is
    // only a speed-up, so a refusal is ignored.
    // SAFETY: as above.
    unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    Ok((r, w))
}

/// Runs `oxmm trace -o FILE -- CMD ARGS...`.
pub fn trace(args: Vec<String>) -> Result<(), String> {
    let Some(a) = parse::<TraceArgs>("oxmm trace", args)? else {
        return Ok(());
    };
    let out_name = a.output.display().to_string();
    let shown: Vec<String> = a.command.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    let shown = shown.join(" ");
    let valgrind = ensure_valgrind()?;
    let file = File::create(&a.output).map_err(|e| format!("{out_name}: cannot create: {e}"))?;
    let (reader, writer) = log_pipe()?;
    let start = Instant::now();
    let mut child = Command::new(&valgrind)
        .arg("--tool=lackey")
        .arg("--trace-mem=yes")
        .arg(format!("--log-fd={}", writer.as_raw_fd()))
        .args(&a.command)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", valgrind.to_string_lossy()))?;
    drop(writer);
    let input = BufReader::with_capacity(1 << 20, reader);
    let converted =
        lackey::convert(input, "valgrind's lackey output", BufWriter::with_capacity(1 << 20, file), &out_name);
    let (_, summary) = match converted {
        Ok(x) => x,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.to_string());
        }
    };
    let status = child.wait().map_err(|e| format!("cannot wait for valgrind: {e}"))?;
    let w = summary.written;
    eprintln!(
        "oxmm trace: {shown}: {} accesses, {} records, {} distinct pages ({}), {} bytes written to {out_name} in {:.1} s",
        w.accesses,
        w.records,
        w.distinct_pages,
        mib(w.distinct_pages),
        w.bytes,
        start.elapsed().as_secs_f64()
    );
    if !status.success() {
        return Err(format!("`{shown}` under valgrind ended with {status}; what it did is in {out_name}"));
    }
    Ok(())
}

/// Runs `oxmm replay FILE [--ram SIZE] [--format lackey|pages|oxmm]`.
pub fn replay(args: Vec<String>) -> Result<(), String> {
    let Some(a) = parse::<ReplayArgs>("oxmm replay", args)? else {
        return Ok(());
    };
    let ram_pages = match &a.ram {
        None => None,
        Some(s) => {
            let bytes = oxmm_sim::scenario::parse_size(s)
                .ok_or_else(|| format!("--ram: `{s}` is not a size (use bytes or a number with K, M, G or T)"))?;
            let pages = bytes >> PAGE_SHIFT;
            if pages == 0 {
                return Err(format!("--ram: {s} is less than one 4 KiB page"));
            }
            Some(pages)
        }
    };
    let name = a.file.display().to_string();
    let start = Instant::now();
    let mut reader = TraceReader::open(&a.file, a.format).map_err(|e| e.to_string())?;
    let refs = RefString::from_trace(&mut reader, &name).map_err(|e| e.to_string())?;
    let loaded = start.elapsed();
    let distinct = refs.distinct() as u64;
    let (frames, why) = match ram_pages {
        Some(p) => (usize::try_from(p).unwrap_or(usize::MAX), format!("--ram {}", a.ram.as_deref().unwrap_or(""))),
        None => ((distinct / 2).max(1) as usize, "default: half the distinct pages".to_string()),
    };
    let policies = if a.policy.is_empty() { Policy::ALL.to_vec() } else { a.policy.clone() };

    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line("== oxmm replay ==".into());
    line(format!(
        "trace: {name} ({} format): {} references ({} instruction fetches, {} reads, {} writes) from {} accesses",
        reader.format(),
        refs.len(),
        refs.count(Kind::Instr),
        refs.count(Kind::Read),
        refs.count(Kind::Write),
        reader.accesses()
    ));
    line(format!("distinct pages: {distinct} ({})", mib(distinct)));
    line(format!("memory: {frames} page frames of 4 KiB ({}; {why})", mib(frames as u64)));
    line(String::new());
    line(format!(
        "{:<8} {:>10} {:>12} {:>12} {:>10} {:>14} {:>14}",
        "policy", "frames", "hits", "misses", "miss ratio", "minor faults", "major faults"
    ));
    let replay_start = Instant::now();
    let mut results = Vec::new();
    for p in &policies {
        let st = simulate(*p, frames, &refs);
        line(format!(
            "{:<8} {:>10} {:>12} {:>12} {:>9.3}% {:>14} {:>14}",
            p.name(),
            frames,
            st.hits,
            st.misses,
            100.0 * st.miss_ratio(),
            st.cold_misses,
            st.refaults()
        ));
        results.push((*p, st));
    }
    let replayed = replay_start.elapsed();
    line(String::new());
    for (p, st) in &results {
        line(format!(
            "page faults under {}: {} minor (first touch), {} major (refaults), {} evictions",
            p.name(),
            st.cold_misses,
            st.refaults(),
            st.evictions
        ));
    }
    line(String::new());
    // The trace as a process of a simulated machine, through oxmm's fault
    // path. Without reclaim yet, the machine holds the whole working set.
    let want = (distinct * 4096 * 2).max(256 << 20);
    let ram = want.div_ceil(128 << 20) * (128 << 20);
    match oxmm_sim::Machine::boot(&oxmm_sim::MachineConfig::single(ram, 1), 1)
        .map_err(|e| e.to_string())
        .and_then(|m| oxmm_sim::trace::process::replay_as_process(&m, &refs))
    {
        Ok(p) => line(format!(
            "as a process ({} MiB machine): {} accesses, {} page faults (minor), peak RSS {} ({} anonymous pages), {} failed",
            ram >> 20,
            p.accesses,
            p.faults,
            mib(p.peak_rss_pages),
            p.anon_pages,
            p.failed
        )),
        Err(e) => line(format!("as a process: not replayed ({e})")),
    }
    line(String::new());
    for (p, st) in &results {
        line(format!("misses {} {} {}", p.name(), frames, st.misses));
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()).map_err(|e| format!("cannot write: {e}"))?;
    eprintln!(
        "oxmm replay: host time {:.2} s to load, {:.2} s to replay {} policies",
        loaded.as_secs_f64(),
        replayed.as_secs_f64(),
        results.len()
    );
    Ok(())
}
