//! The `retrain` command-line tool: a thin shell over the library.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Behave like other Unix tools when piped into `head`: exit quietly on a closed pipe
    // instead of panicking inside println!.
    #[cfg(target_os = "linux")]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    cli::init_tracing(args.verbose);
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
