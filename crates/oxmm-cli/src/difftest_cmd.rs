//! `oxmm difftest`: differential testing against the host kernel (see
//! docs/difftest.md).

use std::io::Write;
use std::process::ExitCode;

use oxmm_difftest::random::{self, GenOptions};
use oxmm_difftest::run::{ModelSource, Options, Report};
use oxmm_difftest::{host, models, testing, Model};

const USAGE: &str = "\
usage: oxmm difftest [FILES...] [--random N [--seed S] [--ops K]] [options]

Runs .mms scripts (and/or N random programs) on the host kernel and on a
model, and prints every divergence as
  MISMATCH <script>:<line> <verb>: host=<result> oxmm=<result>
then `difftest: <S> scripts, <N> steps, <M> mismatches`. Exits non-zero on a
mismatch, a parse error, a contradicted expectation or a harness error.

options:
  --random N            run N generated programs (deterministic per seed)
  --seed S              seed of the random programs (default 1)
  --ops K               steps per random program (default 20)
  --no-files            random programs without the file verbs
  --shrink N            shrink at most N diverging random programs (default 5)
  --model oxmm|host     the model side (default oxmm; `host` runs a second
                        host child: a self-check of the harness)
  --alter KIND          (with --model host) alter one kind of result:
                        errno address signal si_code data mincore maps smaps
  --allow-unsupported   steps the model cannot run are counted, not mismatches
  --timeout SECS        kill a host child after SECS seconds (default 60)
  --emit DIR            write the random programs to DIR as scripts, run nothing
  --trace               print every step's results (STEP lines)
  --quiet               print only mismatches, errors and the summary
";

struct Args {
    files: Vec<String>,
    random: u64,
    seed: u64,
    ops: usize,
    files_in_random: bool,
    shrink: usize,
    model: String,
    alter: Option<testing::Alter>,
    opts: Options,
    quiet: bool,
    emit: Option<String>,
}

fn parse_args(args: Vec<String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        files: Vec::new(),
        random: 0,
        seed: 1,
        ops: 20,
        files_in_random: true,
        shrink: 5,
        model: models::DEFAULT.to_string(),
        alter: None,
        opts: Options::default(),
        quiet: false,
        emit: None,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let num = |s: String, name: &str| s.parse::<u64>().map_err(|_| format!("{name}: bad number `{s}`"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--random" => a.random = num(val("--random")?, "--random")?,
            "--seed" => a.seed = num(val("--seed")?, "--seed")?,
            "--ops" => a.ops = num(val("--ops")?, "--ops")? as usize,
            "--shrink" => a.shrink = num(val("--shrink")?, "--shrink")? as usize,
            "--timeout" => a.opts.host.timeout_secs = num(val("--timeout")?, "--timeout")?.clamp(1, 86400) as u32,
            "--no-files" => a.files_in_random = false,
            "--allow-unsupported" => a.opts.allow_unsupported = true,
            "--trace" => a.opts.trace = true,
            "--quiet" => a.quiet = true,
            "--emit" => a.emit = Some(val("--emit")?),
            "--model" => {
                let m = val("--model")?;
                if !models::NAMES.contains(&m.as_str()) {
                    return Err(format!("unknown model `{m}` (one of {})", models::NAMES.join(", ")));
                }
                a.model = m;
            }
            "--alter" => {
                use testing::Alter::*;
                let k = val("--alter")?;
                a.alter = Some(match k.as_str() {
                    "errno" => Errno,
                    "address" => Address,
                    "signal" => Signal,
                    "si_code" => SiCode,
                    "data" => Data,
                    "mincore" => Mincore,
                    "maps" => Maps,
                    "smaps" => Smaps,
                    _ => return Err(format!("unknown --alter kind `{k}`")),
                });
            }
            s if s.starts_with('-') && s.len() > 1 => return Err(format!("unknown option `{s}`")),
            _ => a.files.push(arg),
        }
    }
    if a.files.is_empty() && a.random == 0 {
        return Err("no scripts and no --random".into());
    }
    Ok(Some(a))
}

fn print(rep: &Report, quiet: bool) {
    let mut out = std::io::stdout().lock();
    if !quiet {
        for l in &rep.trace {
            let _ = writeln!(out, "{l}");
        }
    }
    for l in rep.lines() {
        let _ = writeln!(out, "{l}");
    }
}

/// Runs `oxmm difftest ARGS...`; exits non-zero on mismatches or parse errors.
pub fn main(args: Vec<String>) -> ExitCode {
    let a = match parse_args(args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("oxmm difftest: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = &a.emit {
        let gen = GenOptions { ops: a.ops, files: a.files_in_random };
        for i in 0..a.random {
            let p = random::generate(a.seed, i, &gen);
            let path = std::path::Path::new(dir).join(&p.name);
            if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, p.render())) {
                eprintln!("oxmm difftest: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    if let Some(note) = host::ensure_no_randomize() {
        eprintln!("oxmm difftest: {note}; addresses may differ between runs");
    }
    let alter = a.alter;
    let wrap = move |m: Box<dyn Model>| -> Box<dyn Model> {
        match alter {
            Some(k) => Box::new(testing::Perturb::new(m, k)),
            None => m,
        }
    };
    let model_name = a.model.clone();
    let mut factory =
        move || -> Box<dyn Model> { models::by_name(&model_name).unwrap_or_else(|| Box::new(testing::Nothing)) };
    if a.model != "host" && models::by_name(&a.model).is_none() {
        eprintln!(
            "oxmm difftest: the `{}` model is not built yet: every step is unsupported (try --model host)",
            a.model
        );
    }
    let mut source = if a.model == "host" { ModelSource::HostTwin(&wrap) } else { ModelSource::Factory(&mut factory) };
    let mut total = Report::default();
    let mut parse_errors = 0usize;
    for f in &a.files {
        match oxmm_difftest::parse_file(f) {
            Ok(s) => {
                let rep = oxmm_difftest::run_script(&s, &mut source, &a.opts);
                print(&rep, a.quiet);
                total.merge(rep);
            }
            Err(e) => {
                println!("ERROR {e}");
                parse_errors += 1;
            }
        }
    }
    if a.random > 0 {
        let gen = GenOptions { ops: a.ops, files: a.files_in_random };
        let quiet = a.quiet;
        let rr = random::run_random(a.seed, a.random, &gen, &mut source, &a.opts, a.shrink, &mut |r| print(r, quiet));
        for s in &rr.shrunk {
            println!("{s}");
        }
        let mut rep = rr.report;
        // Lines were printed as the programs ran.
        rep.trace.clear();
        total.merge(rep);
    }
    total.scripts += parse_errors;
    println!("{}", total.summary());
    if total.failed() || parse_errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
