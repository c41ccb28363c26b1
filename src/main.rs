//! The `retrain` command-line tool: a thin shell over the library.

mod cli;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Behave like other Unix tools when piped into `head`: exit quietly on a closed pipe
    // instead of panicking inside println!.
    #[cfg(target_os = "linux")]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // candle allocates a fresh buffer for every tensor op; with glibc's defaults each
    // multi-megabyte activation is an mmap/munmap pair whose pages are faulted in and zeroed
    // again on every step (PatchTST small spent a quarter of its time in the kernel). Keep
    // freed memory in the heap instead: the largest mmap threshold glibc accepts (32 MiB),
    // no trimming. A host engine embedding the library picks its own allocator settings.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
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
