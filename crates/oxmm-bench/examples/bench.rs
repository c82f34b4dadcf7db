//! Runs one bench by name, as `oxmm bench NAME [--quick]` will:
//! `cargo run --release -p oxmm-bench --example bench -- page_alloc --quick`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let Some(name) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: bench NAME [--quick]; benches: {}", oxmm_bench::names().join(", "));
        return ExitCode::FAILURE;
    };
    let mut out = std::io::stdout().lock();
    match oxmm_bench::run(name, quick, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
