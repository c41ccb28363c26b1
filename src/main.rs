//! The `retrain` command-line tool: a thin shell over the library.

mod cli;

use clap::Parser;

// candle allocates a fresh buffer for every tensor op. glibc serves anything above 32 MiB (its
// largest mmap threshold) by mmap/munmap, so PatchTST large's attention scores were faulted in
// and zeroed again on every step: 21.8M page faults and 91 s of kernel time in a 106 s run.
// mimalloc keeps and reuses freed memory (0.17M faults, 10 s), and with purging off (below) it
// never hands it back mid-run (PatchTST small: 50k faults → 1.5k, 7 % faster steps). A host
// engine embedding the library picks its own allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_t` (not exported by libmimalloc-sys).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // SAFETY: sets one allocator option (−1: never purge freed memory); no other effect.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    // Behave like other Unix tools when piped into `head`: exit quietly on a closed pipe
    // instead of panicking inside println!.
    #[cfg(target_os = "linux")]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    // candle sizes its own worker pool from CANDLE_NUM_THREADS (else RAYON_NUM_THREADS, else
    // the cores), not from our rayon pool: pass --threads on so the networks obey it too.
    if let Some(n) = args.threads
        && std::env::var_os("CANDLE_NUM_THREADS").is_none()
    {
        // SAFETY: no other thread exists yet, so nothing reads the environment concurrently.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", n.max(1).to_string()) };
    }
    // candle's element-wise pool spins 25,000 times before its workers sleep, taking a core
    // from our rayon workers between ops on a 2-core machine: sleep after ~200 (5–10 µs).
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // SAFETY: no other thread exists yet, so nothing reads the environment concurrently.
        unsafe { std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "200") };
    }
    cli::init_tracing(args.verbose);
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Library errors already name their cause in their message; print a cause of
            // the chain only when it adds something.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg = format!("{msg}: {c}");
                }
            }
            eprintln!("error: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}
